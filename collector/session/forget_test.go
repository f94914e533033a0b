package session

import (
	"testing"
	"time"

	"github.com/glimpse-analytics/glimpse/internal/model"
)

// TestForget drops sessions by id, whether they changed since the last
// drain, were written and unchanged, or ended and wait to be drained: no
// drain hands them out again, other sessions are untouched, and the next
// touch of a forgotten visitor starts a new session.
func TestForget(t *testing.T) {
	c := NewCache(CacheConfig{MaxSessions: 4})
	tb := newTable()
	id := map[uint64]uint64{}
	for v := uint64(1); v <= 4; v++ {
		_, cur, _ := c.touchSession("example.com", v, t0.Add(time.Duration(v)*time.Second), pageview("/"))
		id[v] = cur.ID
	}
	tb.drain(c)
	c.touchSession("example.com", 1, t0.Add(10*time.Second), pageview("/next")) // changed since
	c.touchSession("example.com", 3, t0.Add(11*time.Second), pageview("/next"))
	// A fifth visitor evicts the least recently seen, 2, whose change
	// then waits in the frozen list: make it dirty first.
	c.touchSession("example.com", 2, t0.Add(12*time.Second), pageview("/next"))
	c.touchSession("example.com", 4, t0.Add(13*time.Second), pageview("/"))
	c.touchSession("example.com", 1, t0.Add(14*time.Second), pageview("/"))
	c.touchSession("example.com", 3, t0.Add(15*time.Second), pageview("/"))
	_, cur, _ := c.touchSession("example.com", 5, t0.Add(16*time.Second), pageview("/"))
	id[5] = cur.ID
	if c.ended.Load() != 1 {
		t.Fatalf("%d ended sessions wait, want 1 (visitor 2's)", c.ended.Load())
	}

	if n := c.Forget("other.example", []uint64{id[1]}); n != 0 {
		t.Fatalf("Forget on another site dropped %d", n)
	}
	if n := c.Forget("example.com", []uint64{id[1], id[2], id[4], 12345}); n != 3 {
		t.Fatalf("Forget dropped %d sessions, want 3", n)
	}
	if c.Len() != 2 || c.ended.Load() != 0 {
		t.Fatalf("after Forget: %d held, %d ended", c.Len(), c.ended.Load())
	}
	drained := map[uint64]bool{}
	c.Drain(func(prev, cur *model.Session, hadPrev bool) { drained[cur.ID] = true }, nil)
	if len(drained) != 2 || !drained[id[3]] || !drained[id[5]] {
		t.Fatalf("drained %v, want the sessions of visitors 3 and 5", drained)
	}
	_, cur, hadPrev := c.touchSession("example.com", 1, t0.Add(20*time.Second), pageview("/"))
	if hadPrev || cur.ID == id[1] {
		t.Fatalf("a forgotten visitor's touch continued session %d", cur.ID)
	}
}
