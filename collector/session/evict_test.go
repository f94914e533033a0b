package session

import (
	"testing"
	"time"
)

func TestSessionEviction(t *testing.T) {
	c := NewCache(CacheConfig{MaxSessions: 3})
	for v := uint64(1); v <= 3; v++ {
		c.touchSession("example.com", v, t0.Add(time.Duration(v)*time.Second), pageview("/"))
	}
	c.touchSession("example.com", 1, t0.Add(10*time.Second), pageview("/")) // 2 is now least recently seen
	c.touchSession("example.com", 4, t0.Add(11*time.Second), pageview("/"))
	if n := c.Len(); n != 3 {
		t.Errorf("Len = %d, want 3", n)
	}
	if n := c.Evictions(); n != 1 {
		t.Errorf("Evictions = %d, want 1", n)
	}
	for v, wantLive := range map[uint64]bool{1: true, 2: false, 3: true, 4: true} {
		sh := &c.shards[c.shardIndex(v)] // look without touching

		sh.mu.Lock()
		ok := sh.find(c.sites.id("example.com"), v) >= 0
		sh.mu.Unlock()
		if ok != wantLive {
			t.Errorf("visitor %d held = %v, want %v", v, ok, wantLive)
		}
	}

	// When full, an expired session makes room before a live one.
	c = NewCache(CacheConfig{MaxSessions: 2})
	c.touchSession("example.com", 1, t0, pageview("/"))
	c.touchSession("example.com", 2, t0.Add(40*time.Minute), pageview("/"))
	c.touchSession("example.com", 3, t0.Add(41*time.Minute), pageview("/"))
	if c.Evictions() != 0 || c.Len() != 2 {
		t.Errorf("expired session not preferred: Evictions %d, Len %d", c.Evictions(), c.Len())
	}
}

func TestSessionSweep(t *testing.T) {
	t12 := at("2025-03-01T12:00:00Z")
	c := NewCache(CacheConfig{MaxLength: 2 * time.Hour})
	c.touchSession("example.com", 1, t12, pageview("/"))                     // idle from 12:30
	c.touchSession("example.com", 2, t12.Add(25*time.Minute), pageview("/")) // live
	for i := range 6 {                                                       // too old from 14:00
		c.touchSession("example.com", 3, t12.Add(time.Duration(i)*20*time.Minute), pageview("/"))
	}
	c.touchSession("example.com", 4, at("2025-03-01T23:59:00Z"), pageview("/")) // ends at midnight
	if n := c.Sweep(t12.Add(30 * time.Minute)); n != 1 {
		t.Errorf("Sweep at 12:30 removed %d, want 1", n)
	}
	if n := c.Sweep(t12.Add(2 * time.Hour)); n != 2 {
		t.Errorf("Sweep at 14:00 removed %d, want 2", n)
	}
	if n := c.Sweep(at("2025-03-01T23:59:30Z")); n != 0 {
		t.Errorf("Sweep at 23:59:30 removed %d, want 0", n)
	}
	if n := c.Sweep(at("2025-03-02T00:00:00Z")); n != 1 {
		t.Errorf("Sweep at 00:00 removed %d, want 1: a session ends at midnight UTC", n)
	}
	if n := c.Len(); n != 0 {
		t.Errorf("Len = %d after sweeping everything", n)
	}
}

// TestDirtyListsStayBounded ends far more sessions than the cache holds
// without a Drain (storage down): the dirty lists stop growing at the
// bound, the changes beyond it are counted as dropped, and a Drain then
// still writes every live session.
func TestDirtyListsStayBounded(t *testing.T) {
	c := NewCache(CacheConfig{MaxSessions: 2048, DrainStall: time.Nanosecond})
	for v := range uint64(50_000) {
		c.touchSession("example.com", v+1, t0.Add(time.Duration(v)*time.Millisecond), pageview("/"))
	}
	held := 0
	for i := range c.shards {
		held += len(c.shards[i].frozen) + c.shards[i].dirty
	}
	if bound := 2 * len(c.shards) * max(c.shards[0].max, minPerShard); held > bound {
		t.Fatalf("%d sessions waiting to be drained, bound %d", held, bound)
	}
	if c.Evictions() == 0 || c.DroppedChanges() == 0 {
		t.Fatalf("evictions %d, dropped %d: the bound was never reached", c.Evictions(), c.DroppedChanges())
	}
	tb := newTable()
	n := tb.drain(c)
	if uint64(n)+c.DroppedChanges() != 50_000 {
		t.Fatalf("drained %d + dropped %d, want every one of 50000 sessions accounted for", n, c.DroppedChanges())
	}
	live := tb.collapsed(t)
	for i := range c.shards {
		for _, s := range c.shards[i].slots {
			if _, ok := live[s.id]; s.visitor != 0 && !ok {
				t.Fatalf("live session %d not written", s.id)
			}
		}
	}
}
