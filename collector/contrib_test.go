package collector

import (
	"testing"
	"unsafe"
)

// TestDayCountsLayout: the ledger's value is 16 bytes, so that an entry
// is 32 and a bucket of four two cache lines (collector/ledger).
func TestDayCountsLayout(t *testing.T) {
	if n := unsafe.Sizeof(dayCounts{}); n != 16 {
		t.Errorf("dayCounts is %d bytes, want 16", n)
	}
}
