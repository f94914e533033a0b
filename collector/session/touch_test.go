package session

import (
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/glimpse-analytics/glimpse/internal/model"
)

type step struct {
	at      time.Duration // since t0
	visitor uint64        // default 1
	ev      Touch
	// want
	none    bool // nothing to write (cur.ID == 0)
	newSess bool // hadPrev false: a new session started
	view    view
}

func TestSessionTransitions(t *testing.T) {
	tests := []struct {
		name  string
		cfg   CacheConfig
		steps []step
	}{
		{
			name: "new session",
			steps: []step{
				{ev: pageview("/a"), newSess: true, view: view{Version: 1, Pageviews: 1, Events: 1, Bounce: true, EntryPage: "/a", ExitPage: "/a"}},
			},
		},
		{
			name: "continue",
			steps: []step{
				{ev: pageview("/a"), newSess: true, view: view{Version: 1, Pageviews: 1, Events: 1, Bounce: true, EntryPage: "/a", ExitPage: "/a"}},
				{at: 10 * time.Second, ev: pageview("/b"), view: view{Version: 2, Pageviews: 2, Events: 2, DurationSec: 10, EntryPage: "/a", ExitPage: "/b"}},
				{at: 40 * time.Second, ev: pageview("/c"), view: view{Version: 3, Pageviews: 3, Events: 3, DurationSec: 40, EntryPage: "/a", ExitPage: "/c"}},
			},
		},
		{
			name: "idle just under the timeout continues",
			steps: []step{
				{ev: pageview("/a"), newSess: true, view: view{Version: 1, Pageviews: 1, Events: 1, Bounce: true, EntryPage: "/a", ExitPage: "/a"}},
				{at: 30*time.Minute - time.Second, ev: pageview("/b"), view: view{Version: 2, Pageviews: 2, Events: 2, DurationSec: 1799, EntryPage: "/a", ExitPage: "/b"}},
			},
		},
		{
			name: "idle timeout starts a new session",
			steps: []step{
				{ev: pageview("/a"), newSess: true, view: view{Version: 1, Pageviews: 1, Events: 1, Bounce: true, EntryPage: "/a", ExitPage: "/a"}},
				{at: 30 * time.Minute, ev: pageview("/b"), newSess: true, view: view{Version: 1, Pageviews: 1, Events: 1, Bounce: true, EntryPage: "/b", ExitPage: "/b"}},
			},
		},
		{
			name: "custom idle timeout",
			cfg:  CacheConfig{IdleTimeout: time.Minute},
			steps: []step{
				{ev: pageview("/a"), newSess: true, view: view{Version: 1, Pageviews: 1, Events: 1, Bounce: true, EntryPage: "/a", ExitPage: "/a"}},
				{at: time.Minute, ev: pageview("/b"), newSess: true, view: view{Version: 1, Pageviews: 1, Events: 1, Bounce: true, EntryPage: "/b", ExitPage: "/b"}},
			},
		},
		{
			name: "maximum length starts a new session",
			cfg:  CacheConfig{MaxLength: time.Hour},
			steps: []step{
				{ev: pageview("/a"), newSess: true, view: view{Version: 1, Pageviews: 1, Events: 1, Bounce: true, EntryPage: "/a", ExitPage: "/a"}},
				{at: 20 * time.Minute, ev: pageview("/b"), view: view{Version: 2, Pageviews: 2, Events: 2, DurationSec: 1200, EntryPage: "/a", ExitPage: "/b"}},
				{at: 40 * time.Minute, ev: pageview("/c"), view: view{Version: 3, Pageviews: 3, Events: 3, DurationSec: 2400, EntryPage: "/a", ExitPage: "/c"}},
				{at: 60 * time.Minute, ev: pageview("/d"), newSess: true, view: view{Version: 1, Pageviews: 1, Events: 1, Bounce: true, EntryPage: "/d", ExitPage: "/d"}},
			},
		},
		{
			name: "second interactive event clears bounce",
			steps: []step{
				{ev: pageview("/a"), newSess: true, view: view{Version: 1, Pageviews: 1, Events: 1, Bounce: true, EntryPage: "/a", ExitPage: "/a"}},
				{at: 5 * time.Second, ev: event("/a", true), view: view{Version: 2, Pageviews: 1, Events: 2, DurationSec: 5, EntryPage: "/a", ExitPage: "/a"}},
			},
		},
		{
			name: "non-interactive events do not clear bounce",
			steps: []step{
				{ev: pageview("/a"), newSess: true, view: view{Version: 1, Pageviews: 1, Events: 1, Bounce: true, EntryPage: "/a", ExitPage: "/a"}},
				{at: 5 * time.Second, ev: event("/a", false), view: view{Version: 2, Pageviews: 1, Events: 2, Bounce: true, DurationSec: 5, EntryPage: "/a", ExitPage: "/a"}},
				{at: 6 * time.Second, ev: event("/a", false), view: view{Version: 3, Pageviews: 1, Events: 3, Bounce: true, DurationSec: 6, EntryPage: "/a", ExitPage: "/a"}},
				{at: 7 * time.Second, ev: event("/a", true), view: view{Version: 4, Pageviews: 1, Events: 4, DurationSec: 7, EntryPage: "/a", ExitPage: "/a"}},
			},
		},
		{
			name: "session started by a non-interactive event needs two interactive ones",
			steps: []step{
				{ev: event("", false), newSess: true, view: view{Version: 1, Events: 1, Bounce: true}},
				{at: time.Second, ev: pageview("/a"), view: view{Version: 2, Pageviews: 1, Events: 2, Bounce: true, DurationSec: 1, EntryPage: "/a", ExitPage: "/a"}},
				{at: 2 * time.Second, ev: pageview("/b"), view: view{Version: 3, Pageviews: 2, Events: 3, DurationSec: 2, EntryPage: "/a", ExitPage: "/b"}},
			},
		},
		{
			name: "engagement adds to duration after the last event only",
			steps: []step{
				{ev: pageview("/a"), newSess: true, view: view{Version: 1, Pageviews: 1, Events: 1, Bounce: true, EntryPage: "/a", ExitPage: "/a"}},
				// Left /a after 60 s, 45 s of it engaged.
				{at: 60 * time.Second, ev: engagement(45_000), view: view{Version: 2, Pageviews: 1, Events: 1, Bounce: true, DurationSec: 45, EngagementMS: 45_000, EntryPage: "/a", ExitPage: "/a"}},
				// /b: its span already covers the /a report.
				{at: 90 * time.Second, ev: pageview("/b"), view: view{Version: 3, Pageviews: 2, Events: 2, DurationSec: 90, EngagementMS: 45_000, EntryPage: "/a", ExitPage: "/b"}},
				{at: 120 * time.Second, ev: engagement(20_500), view: view{Version: 4, Pageviews: 2, Events: 2, DurationSec: 110, EngagementMS: 65_500, EntryPage: "/a", ExitPage: "/b"}},
				{at: 130 * time.Second, ev: engagement(5_000), view: view{Version: 5, Pageviews: 2, Events: 2, DurationSec: 115, EngagementMS: 70_500, EntryPage: "/a", ExitPage: "/b"}},
			},
		},
		{
			name: "engagement report keeps the session alive",
			steps: []step{
				{ev: pageview("/a"), newSess: true, view: view{Version: 1, Pageviews: 1, Events: 1, Bounce: true, EntryPage: "/a", ExitPage: "/a"}},
				{at: 20 * time.Minute, ev: engagement(1000), view: view{Version: 2, Pageviews: 1, Events: 1, Bounce: true, DurationSec: 1, EngagementMS: 1000, EntryPage: "/a", ExitPage: "/a"}},
				{at: 40 * time.Minute, ev: pageview("/b"), view: view{Version: 3, Pageviews: 2, Events: 2, DurationSec: 2400, EngagementMS: 1000, EntryPage: "/a", ExitPage: "/b"}},
			},
		},
		{
			name: "engagement without a session creates nothing",
			steps: []step{
				{ev: engagement(3000), none: true},
				{at: time.Second, ev: pageview("/a"), newSess: true, view: view{Version: 1, Pageviews: 1, Events: 1, Bounce: true, EntryPage: "/a", ExitPage: "/a"}},
				{at: 40 * time.Minute, ev: engagement(3000), none: true},
			},
		},
		{
			name: "events do not move the exit page",
			steps: []step{
				{ev: pageview("/a"), newSess: true, view: view{Version: 1, Pageviews: 1, Events: 1, Bounce: true, EntryPage: "/a", ExitPage: "/a"}},
				{at: time.Second, ev: pageview("/b"), view: view{Version: 2, Pageviews: 2, Events: 2, DurationSec: 1, EntryPage: "/a", ExitPage: "/b"}},
				{at: 2 * time.Second, ev: event("/c", true), view: view{Version: 3, Pageviews: 2, Events: 3, DurationSec: 2, EntryPage: "/a", ExitPage: "/b"}},
			},
		},
		{
			name: "out of order touch never shrinks duration",
			steps: []step{
				{at: 10 * time.Second, ev: pageview("/a"), newSess: true, view: view{Version: 1, Pageviews: 1, Events: 1, Bounce: true, EntryPage: "/a", ExitPage: "/a"}},
				{at: 20 * time.Second, ev: pageview("/b"), view: view{Version: 2, Pageviews: 2, Events: 2, DurationSec: 10, EntryPage: "/a", ExitPage: "/b"}},
				{at: 5 * time.Second, ev: pageview("/c"), view: view{Version: 3, Pageviews: 3, Events: 3, DurationSec: 10, EntryPage: "/a", ExitPage: "/c"}},
			},
		},
		{
			name: "visitors are separate",
			steps: []step{
				{visitor: 1, ev: pageview("/a"), newSess: true, view: view{Version: 1, Pageviews: 1, Events: 1, Bounce: true, EntryPage: "/a", ExitPage: "/a"}},
				{visitor: 2, ev: pageview("/x"), newSess: true, view: view{Version: 1, Pageviews: 1, Events: 1, Bounce: true, EntryPage: "/x", ExitPage: "/x"}},
				{visitor: 1, at: time.Second, ev: pageview("/b"), view: view{Version: 2, Pageviews: 2, Events: 2, DurationSec: 1, EntryPage: "/a", ExitPage: "/b"}},
			},
		},
		{
			name: "zero visitor creates nothing",
			steps: []step{
				{visitor: 0, ev: pageview("/a"), none: true},
			},
		},
		{
			// t0 is 23:00 UTC.
			name: "midnight ends the session",
			steps: []step{
				{at: 40 * time.Minute, ev: pageview("/a"), newSess: true, view: view{Version: 1, Pageviews: 1, Events: 1, Bounce: true, EntryPage: "/a", ExitPage: "/a"}},
				{at: 59 * time.Minute, ev: pageview("/b"), view: view{Version: 2, Pageviews: 2, Events: 2, DurationSec: 1140, EntryPage: "/a", ExitPage: "/b"}},
				// 00:01: a new session, even under the same id.
				{at: 61 * time.Minute, ev: pageview("/c"), newSess: true, view: view{Version: 1, Pageviews: 1, Events: 1, Bounce: true, EntryPage: "/c", ExitPage: "/c"}},
				{at: 62 * time.Minute, ev: pageview("/d"), view: view{Version: 2, Pageviews: 2, Events: 2, DurationSec: 60, EntryPage: "/c", ExitPage: "/d"}},
			},
		},
		{
			name: "no start: a touch that would start a session starts none",
			steps: []step{
				{visitor: 1, ev: Touch{Pageview: true, Path: "/a", NoStart: true}, none: true},
				{at: time.Second, ev: event("/b", true), newSess: true, view: view{Version: 1, Events: 1, Bounce: true, EntryPage: "/b", ExitPage: "/b"}},
			},
		},
		{
			name: "no start continues a live session",
			steps: []step{
				{ev: pageview("/a"), newSess: true, view: view{Version: 1, Pageviews: 1, Events: 1, Bounce: true, EntryPage: "/a", ExitPage: "/a"}},
				{at: 10 * time.Second, ev: Touch{Pageview: true, Path: "/b", NoStart: true}, view: view{Version: 2, Pageviews: 2, Events: 2, DurationSec: 10, EntryPage: "/a", ExitPage: "/b"}},
			},
		},
		{
			name: "no start after the idle timeout starts none",
			steps: []step{
				{ev: pageview("/a"), newSess: true, view: view{Version: 1, Pageviews: 1, Events: 1, Bounce: true, EntryPage: "/a", ExitPage: "/a"}},
				{visitor: 1, at: 30 * time.Minute, ev: Touch{Pageview: true, Path: "/b", NoStart: true}, none: true},
				{visitor: 1, at: 31 * time.Minute, ev: engagement(1000), none: true},
			},
		},
		{
			name: "duration capped as the first touch asks",
			steps: []step{
				{ev: Touch{Pageview: true, Path: "/a", MaxDurationSec: 60}, newSess: true, view: view{Version: 1, Pageviews: 1, Events: 1, Bounce: true, EntryPage: "/a", ExitPage: "/a"}},
				{at: 50 * time.Second, ev: pageview("/b"), view: view{Version: 2, Pageviews: 2, Events: 2, DurationSec: 50, EntryPage: "/a", ExitPage: "/b"}},
				{at: 100 * time.Second, ev: pageview("/c"), view: view{Version: 3, Pageviews: 3, Events: 3, DurationSec: 60, EntryPage: "/a", ExitPage: "/c"}},
				{at: 130 * time.Second, ev: engagement(20_000), view: view{Version: 4, Pageviews: 3, Events: 3, DurationSec: 60, EngagementMS: 20_000, EntryPage: "/a", ExitPage: "/c"}},
			},
		},
		{
			name: "duration cap given after the start is ignored",
			steps: []step{
				{ev: pageview("/a"), newSess: true, view: view{Version: 1, Pageviews: 1, Events: 1, Bounce: true, EntryPage: "/a", ExitPage: "/a"}},
				{at: 100 * time.Second, ev: Touch{Pageview: true, Path: "/b", MaxDurationSec: 60}, view: view{Version: 2, Pageviews: 2, Events: 2, DurationSec: 100, EntryPage: "/a", ExitPage: "/b"}},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := NewCache(tt.cfg)
			last := map[uint64]model.Session{} // by session ID
			for i, st := range tt.steps {
				visitor := st.visitor
				if visitor == 0 && !st.none {
					visitor = 1
				}
				now := t0.Add(st.at)
				prev, cur, hadPrev := c.touchSession("example.com", visitor, now, st.ev)
				if st.none {
					if cur.ID != 0 || hadPrev {
						t.Fatalf("step %d: got session %+v, want none", i, cur)
					}
					continue
				}
				if cur.ID == 0 || cur.Attrs == nil || cur.Site != "example.com" {
					t.Fatalf("step %d: incomplete session %+v", i, cur)
				}
				if hadPrev == st.newSess {
					t.Fatalf("step %d: hadPrev = %v, want %v", i, hadPrev, !st.newSess)
				}
				if hadPrev {
					if want, ok := last[cur.ID]; !ok || prev != want {
						t.Errorf("step %d: prev is not the last written version:\n got %+v\nwant %+v", i, prev, want)
					}
					if cur.VisitorID != prev.VisitorID || cur.Start != prev.Start {
						t.Errorf("step %d: session identity changed", i)
					}
				} else {
					if _, seen := last[cur.ID]; seen {
						t.Errorf("step %d: new session reuses id %x", i, cur.ID)
					}
					if cur.VisitorID != visitor || !cur.Start.Equal(now) {
						t.Errorf("step %d: new session has visitor %d start %v", i, cur.VisitorID, cur.Start)
					}
				}
				if got := viewOf(cur); got != st.view {
					t.Errorf("step %d:\n got %+v\nwant %+v", i, got, st.view)
				}
				last[cur.ID] = cur
			}
		})
	}
}

func TestSessionAttrsFromFirstTouch(t *testing.T) {
	c := NewCache(CacheConfig{})
	first := &model.Attrs{Referrer: "https://news.example/", Source: "News", Channel: "Referral", UTMCampaign: "spring", Country: "DE", Region: "DE-BE", Browser: "Firefox"}
	_, cur, _ := c.touchSession("example.com", 1, t0, Touch{Pageview: true, Path: "/", Attrs: first})
	first.Referrer = "changed by the caller" // the session holds a copy
	_, cur2, _ := c.touchSession("example.com", 1, t0.Add(time.Second), Touch{Pageview: true, Path: "/b", Attrs: &model.Attrs{Referrer: "other"}})
	for _, s := range []model.Session{cur, cur2} {
		if s.Attrs.Referrer != "https://news.example/" || s.Attrs.UTMCampaign != "spring" || s.Attrs.Region != "DE-BE" {
			t.Errorf("attrs = %+v", *s.Attrs)
		}
	}
	if cur.Attrs != cur2.Attrs {
		t.Error("versions of one session do not share their attrs")
	}
	_, cur3, _ := c.touchSession("example.com", 2, t0, Touch{Pageview: true, Path: "/"})
	if cur3.Attrs == nil || *cur3.Attrs != (model.Attrs{}) {
		t.Errorf("nil attrs gave %+v", cur3.Attrs)
	}
	// Sessions with the same attribution share one copy of it.
	same := model.Attrs{Referrer: "https://news.example/", Source: "News", Channel: "Referral", UTMCampaign: "spring", Country: "DE", Region: "DE-BE", Browser: "Firefox"}
	_, cur4, _ := c.touchSession("example.com", 3, t0, Touch{Pageview: true, Path: "/", Attrs: &same})
	if cur4.Attrs != cur.Attrs {
		t.Error("two sessions with equal attribution hold separate copies")
	}
}

func TestSessionSitesAreSeparate(t *testing.T) {
	c := NewCache(CacheConfig{})
	_, a, _ := c.touchSession("a.example", 1, t0, pageview("/"))
	_, b, hadPrev := c.touchSession("b.example", 1, t0, pageview("/"))
	if hadPrev || a.ID == b.ID {
		t.Error("sessions of two sites with one visitor id were merged")
	}
}

// TestSessionConcurrent exercises touches of returning and new visitors
// and Sweep together; it is meant for -race.
func TestSessionConcurrent(t *testing.T) {
	c := NewCache(CacheConfig{MaxSessions: 5000})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 2000 {
				v := uint64(g*100 + i%100 + 1)
				now := t0.Add(time.Duration(i) * time.Second)
				var prev, cur model.Session
				var hadPrev bool
				if i%7 == 0 {
					prev, cur, hadPrev = c.touchSession("example.com", v+10_000+uint64(i), now, pageview("/"))
				} else {
					prev, cur, hadPrev = c.touchSession("example.com", v, now, pageview("/"))
				}
				if hadPrev && cur.Version != prev.Version+1 {
					t.Errorf("version %d after %d", cur.Version, prev.Version)
					return
				}
				if i%500 == 0 {
					c.Sweep(now)
				}
			}
		})
	}
	wg.Wait()
}

// TestSessionOwnsItsStrings checks that a caller may pass views of buffers
// it reuses: nothing the cache keeps or returns changes with them.
func TestSessionOwnsItsStrings(t *testing.T) {
	c := NewCache(CacheConfig{})
	buf := []byte("example.com/entry?https://ref.example/")
	str := func(i, j int) string { return unsafe.String(&buf[i], j-i) }
	site, path, ref := str(0, 11), str(11, 17), str(18, len(buf))
	_, cur, _ := c.touchSession(site, 1, t0, Touch{Pageview: true, Path: path, Attrs: &model.Attrs{Referrer: ref}})
	_, cur2, _ := c.touchSession(site, 1, t0.Add(time.Second), Touch{Pageview: true, Path: str(11, 14)}) // "/en"
	for i := range buf {
		buf[i] = 'X'
	}
	if cur.Site != "example.com" || cur.EntryPage != "/entry" || cur.Attrs.Referrer != "https://ref.example/" || cur2.ExitPage != "/en" {
		t.Errorf("session strings alias the caller's buffer: %q %q %q %q", cur.Site, cur.EntryPage, cur.Attrs.Referrer, cur2.ExitPage)
	}
	// The key too: the session is still found by its site.
	if _, _, hadPrev := c.touchSession("example.com", 1, t0.Add(2*time.Second), pageview("/x")); !hadPrev {
		t.Error("session lost after the caller reused its buffer")
	}
}

// TestSessionRateLimit checks the per-session limit of touches a second:
// touches beyond it change nothing, a new second starts a new count, and a
// touch without a limit is never limited.
func TestSessionRateLimit(t *testing.T) {
	c := NewCache(CacheConfig{})
	pv := Touch{Pageview: true, Path: "/", Limit: 3}
	at := t0.Add(500 * time.Millisecond)
	var id uint64
	for i := range 5 {
		got, limited := c.Touch("example.com", 1, at, &pv)
		if want := i >= 3; limited != want {
			t.Fatalf("touch %d in one second: limited %v, want %v", i+1, limited, want)
		}
		if i == 0 {
			id = got
		} else if got != id {
			t.Fatalf("touch %d: session %d, want %d", i+1, got, id)
		}
	}
	if _, cur, _ := c.touchSession("example.com", 1, at, Touch{Pageview: true, Path: "/"}); cur.Version != 4 {
		t.Fatalf("after 3 counted touches and an unlimited one, version %d, want 4", cur.Version)
	}
	if _, limited := c.Touch("example.com", 1, at.Add(600*time.Millisecond), &pv); limited {
		t.Fatal("a new second is still limited")
	}
	if _, limited := c.Touch("example.com", 2, at, &pv); limited {
		t.Fatal("another visitor is limited")
	}
}

func TestTouchIDMatchesSession(t *testing.T) {
	c := NewCache(CacheConfig{})
	ev := engagement(500)
	if id, _ := c.Touch("example.com", 1, t0, &ev); id != 0 {
		t.Fatalf("an engagement report with no session started one (%d)", id)
	}
	pv := pageview("/")
	id, _ := c.Touch("example.com", 1, t0, &pv)
	_, cur, hadPrev := c.touchSession("example.com", 1, t0.Add(time.Second), pageview("/b"))
	if id == 0 || cur.ID != id || !hadPrev || cur.Version != 2 {
		t.Fatalf("Touch %d, then touchSession gave id %d version %d hadPrev %v", id, cur.ID, cur.Version, hadPrev)
	}
	if id2, _ := c.Touch("example.com", 1, t0.Add(2*time.Second), &pv); id2 != id {
		t.Fatalf("Touch continued as %d, want %d", id2, id)
	}
}

// TestTouchNoStart: a touch with NoStart continues a live session, and
// where there is none returns id 0 and leaves nothing behind.
func TestTouchNoStart(t *testing.T) {
	c := NewCache(CacheConfig{})
	ev := Touch{Pageview: true, Path: "/", NoStart: true}
	if id, limited := c.Touch("example.com", 1, t0, &ev); id != 0 || limited {
		t.Fatalf("NoStart without a session: id %d, limited %v; want 0, false", id, limited)
	}
	if n := c.Len(); n != 0 {
		t.Fatalf("NoStart left %d sessions held", n)
	}
	if n := c.Drain(func(_, cur *model.Session, _ bool) { t.Errorf("drained %+v", viewOf(*cur)) }, nil); n != 0 {
		t.Fatalf("NoStart left %d changes to write", n)
	}
	pv := pageview("/")
	id, _ := c.Touch("example.com", 1, t0, &pv)
	if got, _ := c.Touch("example.com", 1, t0.Add(time.Second), &ev); got != id || id == 0 {
		t.Fatalf("NoStart with a live session: id %d, want %d", got, id)
	}
}
