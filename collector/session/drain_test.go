package session

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/glimpse-analytics/glimpse/internal/model"
)

// table models the sessions table: rows of (session, version) with a sign,
// and what collapsing leaves of them.
type table struct {
	mu   sync.Mutex
	net  map[[2]uint64]int           // (id, version) → sum of signs
	last map[[2]uint64]model.Session // (id, version) → state written with +1
	rows int
	bad  []string // cancel rows that differ from the +1 row they cancel
}

func newTable() *table {
	return &table{net: map[[2]uint64]int{}, last: map[[2]uint64]model.Session{}}
}

func (tb *table) drain(c *Cache) int {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	return c.Drain(tb.emit, nil)
}

// emit records a change as the table would take it; the caller holds mu.
func (tb *table) emit(prev, cur *model.Session, hadPrev bool) {
	if hadPrev {
		k := [2]uint64{prev.ID, uint64(prev.Version)}
		// The rollups sum rows with their sign: a cancel row must
		// repeat every column of the row it cancels.
		if w, ok := tb.last[k]; !ok || !sameSession(*prev, w) {
			tb.bad = append(tb.bad, fmt.Sprintf("cancel row %+v for written %+v", viewOf(*prev), viewOf(w)))
		}
		tb.net[k]--
		tb.rows++
	}
	k := [2]uint64{cur.ID, uint64(cur.Version)}
	tb.net[k]++
	tb.last[k] = *cur
	tb.rows++
}

// heldIDs returns the ids of the sessions c holds.
func heldIDs(c *Cache) map[uint64]bool {
	ids := map[uint64]bool{}
	for _, s := range held(c) {
		ids[s.ID] = true
	}
	return ids
}

// held returns the state of every session c holds.
func held(c *Cache) []model.Session {
	var out []model.Session
	for i := range c.shards {
		sh := &c.shards[i]
		for j := range sh.slots {
			if sh.slots[j].visitor != 0 {
				out = append(out, c.session(sh, j))
			}
		}
	}
	return out
}

// collapsed returns, per session id, the one state left after collapsing,
// failing if a session has no state or more than one, or a cancel row
// without its state.
func (tb *table) collapsed(t *testing.T) map[uint64]model.Session {
	t.Helper()
	if len(tb.bad) > 0 {
		t.Fatalf("%d cancel rows differ from what they cancel; first: %s", len(tb.bad), tb.bad[0])
	}
	out := map[uint64]model.Session{}
	for k, n := range tb.net {
		switch n {
		case 0:
		case 1:
			if _, dup := out[k[0]]; dup {
				t.Fatalf("session %d has two live states", k[0])
			}
			out[k[0]] = tb.last[k]
		default:
			t.Fatalf("session %d version %d nets to %d rows", k[0], k[1], n)
		}
	}
	return out
}

func TestDrainWritesEachChangeOnce(t *testing.T) {
	c := NewCache(CacheConfig{})
	tb := newTable()
	if n := tb.drain(c); n != 0 {
		t.Fatalf("empty cache drained %d", n)
	}
	_, s1, _ := c.touchSession("example.com", 1, t0, pageview("/a"))
	c.touchSession("example.com", 1, t0.Add(time.Second), pageview("/b"))
	if n := tb.drain(c); n != 1 || tb.rows != 1 {
		t.Fatalf("first drain: %d sessions, %d rows; want 1 and 1 (+1 only)", n, tb.rows)
	}
	if n := tb.drain(c); n != 0 {
		t.Fatalf("unchanged session drained again (%d)", n)
	}
	for i := range 50 {
		c.touchSession("example.com", 1, t0.Add(time.Duration(2+i)*time.Second), pageview("/c"))
	}
	if n := tb.drain(c); n != 1 || tb.rows != 3 {
		t.Fatalf("second drain: %d sessions, %d rows in all; want 1 and 3 (-1 and +1)", n, tb.rows)
	}
	got := tb.collapsed(t)
	if s := got[s1.ID]; s.Pageviews != 52 || s.ExitPage != "/c" || s.Version != 52 {
		t.Fatalf("collapsed to %+v", viewOf(s))
	}
}

func TestDrainKeepsEndedAndEvictedSessions(t *testing.T) {
	c := NewCache(CacheConfig{MaxSessions: 2})
	tb := newTable()
	_, a, _ := c.touchSession("example.com", 1, t0, pageview("/a"))
	c.touchSession("example.com", 1, t0.Add(time.Minute), pageview("/a2"))
	// Idle past the timeout: a new session replaces a in the map.
	_, a2, _ := c.touchSession("example.com", 1, t0.Add(time.Hour), pageview("/x"))
	_, b, _ := c.touchSession("example.com", 2, t0.Add(time.Hour), pageview("/b"))
	_, d, _ := c.touchSession("example.com", 3, t0.Add(time.Hour+time.Second), pageview("/d")) // evicts one
	if c.Evictions() != 1 {
		t.Fatalf("evictions %d", c.Evictions())
	}
	tb.drain(c)
	got := tb.collapsed(t)
	for _, s := range []model.Session{a, a2, b, d} {
		if _, ok := got[s.ID]; !ok {
			t.Errorf("session %d (entry %s) was never written", s.ID, s.EntryPage)
		}
	}
	if got[a.ID].Pageviews != 2 || got[a.ID].ExitPage != "/a2" {
		t.Errorf("ended session written as %+v", viewOf(got[a.ID]))
	}
}

// TestDrainCapsDuration: every version of a session started with a
// duration cap is written within it, the cancel rows too and after the
// session ended, so that the rollups summed from them are.
func TestDrainCapsDuration(t *testing.T) {
	c := NewCache(CacheConfig{})
	tb := newTable()
	_, s, _ := c.touchSession("example.com", 1, t0, Touch{Pageview: true, Path: "/a", MaxDurationSec: 90})
	c.touchSession("example.com", 1, t0.Add(time.Minute), pageview("/b"))
	tb.drain(c)
	c.touchSession("example.com", 1, t0.Add(10*time.Minute), pageview("/c"))
	c.touchSession("example.com", 1, t0.Add(12*time.Minute), engagement(60_000))
	tb.drain(c)
	c.touchSession("example.com", 1, t0.Add(20*time.Minute), pageview("/d"))
	c.Sweep(t0.Add(time.Hour)) // ended: drained from the frozen list
	tb.drain(c)
	for k, row := range tb.last {
		if k[0] == s.ID && row.DurationSec > 90 {
			t.Errorf("version %d written with %d s, over the cap of 90", k[1], row.DurationSec)
		}
	}
	if got := tb.collapsed(t)[s.ID]; got.DurationSec != 90 || got.Pageviews != 4 {
		t.Errorf("collapsed to %+v, want 4 page views in 90 s", viewOf(got))
	}
}

// keepLatest notes cur in final unless final holds a later version of it.
func keepLatest(final map[uint64]model.Session, cur model.Session) {
	if old, ok := final[cur.ID]; !ok || cur.Version > old.Version {
		final[cur.ID] = cur
	}
}

// collapsedAll is collapsed, failing unless the table holds exactly the
// sessions of final.
func (tb *table) collapsedAll(t *testing.T, final map[uint64]model.Session) map[uint64]model.Session {
	t.Helper()
	got := tb.collapsed(t)
	if len(got) != len(final) {
		t.Fatalf("table holds %d sessions, touches made %d", len(got), len(final))
	}
	return got
}

// touchAndDrain runs touches in four goroutines (numbered 0 to 3) while
// another drains c into tb every 100 us, then drains once more.
func touchAndDrain(c *Cache, tb *table, touches func(g int)) {
	stop := make(chan struct{})
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		for {
			select {
			case <-stop:
				return
			default:
				tb.drain(c)
				time.Sleep(100 * time.Microsecond)
			}
		}
	}()
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() { touches(g) })
	}
	wg.Wait()
	close(stop)
	<-drained
	tb.drain(c)
}

// TestDrainProperty runs random touches (of visitors seen once, across
// shards, expiries and evictions) against concurrent drains, and checks
// that the modelled table collapses to exactly the cache's last state of
// every session.
func TestDrainProperty(t *testing.T) {
	c := NewCache(CacheConfig{MaxSessions: 4096, IdleTimeout: 30 * time.Second})
	if len(c.shards) < 2 {
		t.Fatalf("want several shards, have %d", len(c.shards))
	}
	tb := newTable()
	var mu sync.Mutex
	final := map[uint64]model.Session{} // session id → last state returned by a touch
	touchAndDrain(c, tb, func(g int) {
		r := rand.New(rand.NewPCG(uint64(g), 7))
		for i := range 20000 {
			now := t0.Add(time.Duration(i) * 10 * time.Millisecond)
			v := uint64(g*1000 + r.IntN(40) + 1)
			var cur model.Session
			if r.IntN(4) == 0 {
				// A visitor seen once.
				_, cur, _ = c.touchSession("example.com", v+uint64(i)*1_000_000, now, pageview("/f"))
			} else {
				_, cur, _ = c.touchSession("example.com", v, now, pageview("/p"))
			}
			mu.Lock()
			keepLatest(final, cur)
			mu.Unlock()
		}
	})
	got := tb.collapsedAll(t, final)
	for id, want := range final {
		if g := got[id]; g.Version != want.Version || g.Pageviews != want.Pageviews {
			t.Fatalf("session %d collapsed to version %d (%d pageviews), want %d (%d)", id, g.Version, g.Pageviews, want.Version, want.Pageviews)
		}
	}
	if tb.rows >= 2*20000*4 {
		t.Errorf("%d rows for %d touches: changes did not fold", tb.rows, 20000*4)
	}
}

// TestDrainPausesWithoutLocks checks that pause runs between shards with
// no lock held (it may call back into the cache) and that it runs often
// enough for a writer to insert a big drain in pieces.
func TestDrainPausesWithoutLocks(t *testing.T) {
	c := NewCache(CacheConfig{MaxSessions: 1 << 16})
	for v := range uint64(5000) {
		c.touchSession("example.com", v+1, t0, pageview("/"))
	}
	pauses, emitted, most := 0, 0, 0
	since := 0
	c.Drain(func(prev, cur *model.Session, hadPrev bool) { emitted++; since++ }, func() {
		pauses++
		_ = c.Len() // locks every shard: would deadlock under a held lock
		most = max(most, since)
		since = 0
	})
	if emitted != 5000 || pauses != len(c.shards) || most > 5000/len(c.shards)*2 {
		t.Fatalf("emitted %d, pauses %d (shards %d), at most %d between pauses", emitted, pauses, len(c.shards), most)
	}
}

// TestDrainPathsUnderCompaction is TestDrainProperty with a page of its
// own for nearly every touch and a path table that compacts every few
// hundred new paths, while drains and touches run concurrently: every
// session must still collapse to the entry and exit pages its touches
// gave it.
func TestDrainPathsUnderCompaction(t *testing.T) {
	c := NewCache(CacheConfig{MaxSessions: 4096, IdleTimeout: 30 * time.Second})
	c.paths.floor = 256
	c.paths.limit.Store(c.paths.floor)
	tb := newTable()
	var mu sync.Mutex
	final := map[uint64]model.Session{}
	pages := map[uint64][2]string{} // session id → entry, exit page
	touchAndDrain(c, tb, func(g int) {
		r := rand.New(rand.NewPCG(uint64(g), 9))
		for i := range 10000 {
			now := t0.Add(time.Duration(i) * 10 * time.Millisecond)
			v := uint64(g*1000 + r.IntN(300) + 1)
			ev := pageview(fmt.Sprintf("/g%d/%d", g, i))
			if r.IntN(5) == 0 {
				ev = event("", true) // no page: entry and exit stay
			}
			_, cur, hadPrev := c.touchSession("example.com", v, now, ev)
			// The pages as the model has them, not as the cache
			// reports them (it reads them from the same table).
			mu.Lock()
			m := pages[cur.ID]
			switch {
			case !hadPrev:
				m = [2]string{ev.Path, ev.Path}
			case ev.Pageview:
				if m[0] == "" {
					m[0] = ev.Path
				}
				m[1] = ev.Path
			}
			pages[cur.ID] = m
			keepLatest(final, cur)
			mu.Unlock()
		}
	})
	got := tb.collapsedAll(t, final)
	for id, want := range final {
		p := pages[id]
		if g := got[id]; g.Version != want.Version || g.EntryPage != p[0] || g.ExitPage != p[1] {
			t.Fatalf("session %d collapsed to version %d, pages %q → %q; want %d, %q → %q",
				id, g.Version, g.EntryPage, g.ExitPage, want.Version, p[0], p[1])
		}
	}
	if held := c.paths.n.Load(); held > 4*4096+256 {
		t.Errorf("%d paths held for at most 4096 sessions: not compacted", held)
	}
}

// sameSession reports whether a and b are the same version with the same
// columns, attribution compared by value.
func sameSession(a, b model.Session) bool {
	if (a.Attrs == nil) != (b.Attrs == nil) || (a.Attrs != nil && *a.Attrs != *b.Attrs) {
		return false
	}
	a.Attrs, b.Attrs = nil, nil
	return a == b
}

// TestPressureDrainsEndedSessions: a full cache that evicts sessions asks
// for a drain of them once an eighth of its size waits (Pressure), and
// DrainEnded writes them without the live sessions' changes; the rows of
// both kinds of drain collapse to every session's last state, once.
func TestPressureDrainsEndedSessions(t *testing.T) {
	c := NewCache(CacheConfig{MaxSessions: 8 * minPerShard})
	tb := newTable()
	final := map[uint64]model.Session{}
	endedDrains, ended := 0, 0
	for i := range 30000 {
		v := uint64(i%20000 + 1) // more visitors than the cache holds: it evicts
		_, cur, _ := c.touchSession("example.com", v, t0.Add(time.Duration(i)*time.Millisecond), pageview(fmt.Sprintf("/%d", i)))
		keepLatest(final, cur)
		select {
		case <-c.Pressure():
			waiting := c.ended.Load()
			if waiting < int64(minPerShard) {
				t.Fatalf("pressure with %d ended sessions waiting, want at least %d", waiting, minPerShard)
			}
			held := heldIDs(c)
			tb.mu.Lock()
			n := c.DrainEnded(func(prev, cur *model.Session, hadPrev bool) {
				if held[cur.ID] {
					t.Fatalf("DrainEnded wrote session %d, which is held", cur.ID)
				}
				tb.emit(prev, cur, hadPrev)
			}, nil)
			tb.mu.Unlock()
			if int64(n) != waiting || c.ended.Load() != 0 {
				t.Fatalf("DrainEnded wrote %d of %d waiting, %d still counted", n, waiting, c.ended.Load())
			}
			endedDrains, ended = endedDrains+1, ended+n
		default:
		}
		if i == 25000 {
			tb.drain(c) // a drain of all changes between drains of ended sessions
		}
	}
	if endedDrains == 0 || c.Evictions() == 0 {
		t.Fatalf("%d evictions, %d drains of ended sessions: the test needs both", c.Evictions(), endedDrains)
	}
	tb.drain(c)
	got := tb.collapsedAll(t, final)
	for id, want := range final {
		if g := got[id]; g.Version != want.Version || g.ExitPage != want.ExitPage {
			t.Fatalf("session %d collapsed to version %d (exit %s), want %d (exit %s)", id, g.Version, g.ExitPage, want.Version, want.ExitPage)
		}
	}
	t.Logf("%d drains of ended sessions wrote %d of %d sessions", endedDrains, ended, len(final))
}
