package session

import (
	"fmt"
	"strings"
	"testing"
	"unsafe"
)

func TestInternTable(t *testing.T) {
	var in internTable
	in.init(32)
	a := in.get(string([]byte("/pricing")))
	b := in.get(string([]byte("/pricing")))
	if a != "/pricing" || unsafe.StringData(a) != unsafe.StringData(b) {
		t.Error("equal strings not interned to one copy")
	}
	if in.get("") != "" {
		t.Error("empty string")
	}
	long := strings.Repeat("x", maxInternLen+1)
	if in.get(long) != long {
		t.Error("long string changed")
	}
	for i := range 1000 {
		in.get(fmt.Sprintf("/p/%d", i))
	}
	n := 0
	for i := range in.shards {
		n += len(in.shards[i].m)
	}
	if n > 32 {
		t.Errorf("intern table holds %d strings, want at most 32", n)
	}
}
