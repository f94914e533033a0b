//go:build !race

package ledger

import (
	"testing"
	"time"
)

// The race detector allocates, so this runs only without it.

func TestUpdateAllocs(t *testing.T) {
	tb := New[counts](1 << 10)
	now, id := t0, uint64(1)
	if n := testing.AllocsPerRun(1000, func() {
		id++
		now = now.Add(time.Second)
		var seen uint32
		tb.Update(1, id%300+1, now, func(v *counts) {
			v.a++
			seen = v.a
		})
		_ = seen
	}); n != 0 {
		t.Errorf("Update allocates %v times", n)
	}
}
