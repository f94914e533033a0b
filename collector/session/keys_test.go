package session

import (
	"fmt"
	"testing"
	"time"

	"github.com/glimpse-analytics/glimpse/internal/model"
)

// TestSessionPathsCompacted checks that the paths of sessions that ended
// are dropped once the table holds more than its limit, and that the
// paths of live sessions survive, each under its own session. Ended
// sessions keep their paths until drained, as the writer does every few
// seconds.
func TestSessionPathsCompacted(t *testing.T) {
	c := NewCache(CacheConfig{MaxSessions: 4096})
	n := minKeyLimit + 5000
	for i := range n {
		// Each visitor ends up with a page of its own; few stay held.
		v := uint64(i + 1)
		c.touchSession("example.com", v, t0, pageview(fmt.Sprintf("/entry/%d", i)))
		c.touchSession("example.com", v, t0.Add(time.Second), pageview(fmt.Sprintf("/exit/%d", i)))
		if i%1000 == 999 {
			c.Drain(func(prev, cur *model.Session, hadPrev bool) {}, nil)
		}
	}
	if held := c.paths.n.Load(); held > c.paths.limit.Load() || held > int64(2*4096+minKeyLimit) {
		t.Fatalf("%d paths held for at most 4096 sessions (limit %d)", held, c.paths.limit.Load())
	}
	checked := 0
	for _, s := range held(c) {
		k := s.VisitorID - 1
		if s.EntryPage != fmt.Sprintf("/entry/%d", k) || s.ExitPage != fmt.Sprintf("/exit/%d", k) {
			t.Fatalf("visitor %d: entry %q, exit %q", s.VisitorID, s.EntryPage, s.ExitPage)
		}
		checked++
	}
	if checked != c.Len() || checked < 4000 {
		t.Fatalf("checked %d of %d sessions", checked, c.Len())
	}
}

// TestEndedSessionsKeepPathsThroughCompaction: sessions evicted before a
// Drain wait in their shard with their pages and attribution as keys; a
// compaction meanwhile must keep what those keys name, or the drained rows
// lose their pages and attribution.
func TestEndedSessionsKeepPathsThroughCompaction(t *testing.T) {
	c := NewCache(CacheConfig{MaxSessions: minPerShard})
	c.paths.floor, c.attrs.floor = 256, 256
	c.paths.limit.Store(c.paths.floor)
	c.attrs.limit.Store(c.attrs.floor)
	const n = 5000 // most are evicted, none drained
	for i := range n {
		v := uint64(i + 1)
		ev := pageview(fmt.Sprintf("/a/%d", i))
		ev.Attrs = &model.Attrs{Referrer: fmt.Sprintf("r%d", i), Browser: "Firefox"}
		c.touchSession("example.com", v, t0, ev)
		c.touchSession("example.com", v, t0.Add(time.Second), pageview(fmt.Sprintf("/b/%d", i)))
	}
	if c.Evictions() < n/2 {
		t.Fatalf("%d evictions: the test needs ended sessions", c.Evictions())
	}
	// Every session is held or waits to be drained, so compaction keeps
	// all; it ran if it raised a table's limit above the floor.
	if c.paths.limit.Load() == c.paths.floor || c.attrs.limit.Load() == c.attrs.floor {
		t.Fatalf("limits %d paths, %d attributions: never compacted", c.paths.limit.Load(), c.attrs.limit.Load())
	}
	seen := 0
	c.Drain(func(prev, cur *model.Session, hadPrev bool) {
		i := cur.VisitorID - 1
		if want := [2]string{fmt.Sprintf("/a/%d", i), fmt.Sprintf("/b/%d", i)}; cur.EntryPage != want[0] || cur.ExitPage != want[1] {
			t.Errorf("visitor %d drained with pages %q → %q, want %q → %q", cur.VisitorID, cur.EntryPage, cur.ExitPage, want[0], want[1])
		}
		if want := fmt.Sprintf("r%d", i); cur.Attrs == nil || cur.Attrs.Referrer != want || cur.Attrs.Browser != "Firefox" {
			t.Errorf("visitor %d drained with attribution %+v, want referrer %s", cur.VisitorID, cur.Attrs, want)
		}
		seen++
	}, nil)
	if seen != n {
		t.Errorf("drained %d sessions, want %d", seen, n)
	}
}

// TestSessionAttrsCompacted: attributions of sessions that ended and were
// drained are dropped, held sessions keep theirs, and a session's cancel
// row names the same attribution as the row it cancels (table.drain).
func TestSessionAttrsCompacted(t *testing.T) {
	c := NewCache(CacheConfig{MaxSessions: 4096})
	c.attrs.floor = 256
	c.attrs.limit.Store(c.attrs.floor)
	tb := newTable()
	const n = 20000
	for i := range n {
		v := uint64(i + 1)
		ev := pageview("/")
		ev.Attrs = &model.Attrs{Referrer: fmt.Sprintf("r%d", i), Country: "DE"}
		c.touchSession("example.com", v, t0, ev)
		tb.drain(c)
		c.touchSession("example.com", v, t0.Add(time.Second), pageview("/next"))
		if i%1000 == 999 {
			tb.drain(c)
		}
	}
	tb.drain(c)
	tb.collapsed(t)
	if held := c.attrs.n.Load(); held > 4*4096 {
		t.Errorf("%d attributions held for at most 4096 sessions: not compacted", held)
	}
	for _, s := range held(c) {
		if want := fmt.Sprintf("r%d", s.VisitorID-1); s.Attrs == nil || s.Attrs.Referrer != want || s.Attrs.Country != "DE" {
			t.Fatalf("visitor %d holds attribution %+v, want referrer %s", s.VisitorID, s.Attrs, want)
		}
	}
}
