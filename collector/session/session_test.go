package session

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/glimpse-analytics/glimpse/internal/model"
)

var t0 = at("2025-03-01T23:00:00Z")

// at parses an RFC 3339 time.
func at(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

// touchSession is Cache.Touch for a test that checks the session before
// (prev) and after (cur) the touch; hadPrev is false when the touch
// started a new session, and cur.ID is 0 when it created nothing.
func (c *Cache) touchSession(site string, visitor uint64, now time.Time, ev Touch) (prev, cur model.Session, hadPrev bool) {
	return c.touchSessionFallback(site, visitor, 0, now, ev)
}

// touchSessionFallback is touchSession with the visitor's previous-day id.
func (c *Cache) touchSessionFallback(site string, visitor, previous uint64, now time.Time, ev Touch) (prev, cur model.Session, hadPrev bool) {
	_, hadPrev, _ = c.touch(site, visitor, previous, now, &ev, &prev, &cur)
	return prev, cur, hadPrev
}

// view is what a test checks of a session.
type view struct {
	Version      uint32
	Pageviews    uint32
	Events       uint32
	Bounce       bool
	DurationSec  uint32
	EngagementMS uint64
	EntryPage    string
	ExitPage     string
}

func viewOf(s model.Session) view {
	return view{s.Version, s.Pageviews, s.Events, s.Bounce, s.DurationSec, s.EngagementMS, s.EntryPage, s.ExitPage}
}

func pageview(path string) Touch { return Touch{Pageview: true, Path: path} }

func event(path string, interactive bool) Touch {
	return Touch{Path: path, Interactive: interactive}
}

func engagement(ms uint32) Touch { return Touch{EngagementMS: ms} }

type step struct {
	at       time.Duration // since t0
	visitor  uint64        // default 1
	previous uint64        // the previous-day id, for touchSessionFallback
	ev       Touch
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
			name: "midnight fallback continues and re-keys",
			steps: []step{
				{visitor: 1, at: 40 * time.Minute, ev: pageview("/a"), newSess: true, view: view{Version: 1, Pageviews: 1, Events: 1, Bounce: true, EntryPage: "/a", ExitPage: "/a"}},
				{visitor: 1, at: 59 * time.Minute, ev: pageview("/b"), view: view{Version: 2, Pageviews: 2, Events: 2, DurationSec: 1140, EntryPage: "/a", ExitPage: "/b"}},
				// 00:05: new day, new id 7, previous id 1.
				{visitor: 7, previous: 1, at: 65 * time.Minute, ev: pageview("/c"), view: view{Version: 3, Pageviews: 3, Events: 3, DurationSec: 1500, EntryPage: "/a", ExitPage: "/c"}},
				// Found under the new id alone.
				{visitor: 7, at: 66 * time.Minute, ev: pageview("/d"), view: view{Version: 4, Pageviews: 4, Events: 4, DurationSec: 1560, EntryPage: "/a", ExitPage: "/d"}},
				// The old key is gone.
				{visitor: 1, at: 67 * time.Minute, ev: pageview("/e"), newSess: true, view: view{Version: 1, Pageviews: 1, Events: 1, Bounce: true, EntryPage: "/e", ExitPage: "/e"}},
			},
		},
		{
			name: "midnight fallback does not revive an expired session",
			steps: []step{
				{visitor: 1, ev: pageview("/a"), newSess: true, view: view{Version: 1, Pageviews: 1, Events: 1, Bounce: true, EntryPage: "/a", ExitPage: "/a"}},
				{visitor: 7, previous: 1, at: 65 * time.Minute, ev: pageview("/c"), newSess: true, view: view{Version: 1, Pageviews: 1, Events: 1, Bounce: true, EntryPage: "/c", ExitPage: "/c"}},
			},
		},
		{
			name: "midnight fallback prefers a session under the new id",
			steps: []step{
				{visitor: 1, at: 50 * time.Minute, ev: pageview("/a"), newSess: true, view: view{Version: 1, Pageviews: 1, Events: 1, Bounce: true, EntryPage: "/a", ExitPage: "/a"}},
				{visitor: 7, at: 61 * time.Minute, ev: pageview("/x"), newSess: true, view: view{Version: 1, Pageviews: 1, Events: 1, Bounce: true, EntryPage: "/x", ExitPage: "/x"}},
				{visitor: 7, previous: 1, at: 62 * time.Minute, ev: pageview("/y"), view: view{Version: 2, Pageviews: 2, Events: 2, DurationSec: 60, EntryPage: "/x", ExitPage: "/y"}},
			},
		},
		{
			name: "fallback with previous equal to visitor",
			steps: []step{
				{visitor: 3, previous: 3, ev: pageview("/a"), newSess: true, view: view{Version: 1, Pageviews: 1, Events: 1, Bounce: true, EntryPage: "/a", ExitPage: "/a"}},
				{visitor: 3, previous: 3, at: time.Second, ev: pageview("/b"), view: view{Version: 2, Pageviews: 2, Events: 2, DurationSec: 1, EntryPage: "/a", ExitPage: "/b"}},
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
				prev, cur, hadPrev := c.touchSessionFallback("example.com", visitor, st.previous, now, st.ev)
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
	c := NewCache(CacheConfig{MaxLength: 2 * time.Hour})
	c.touchSession("example.com", 1, t0, pageview("/"))                     // idle from 00:30
	c.touchSession("example.com", 2, t0.Add(25*time.Minute), pageview("/")) // live
	for i := range 6 {                                                      // too old from 02:00
		c.touchSession("example.com", 3, t0.Add(time.Duration(i)*20*time.Minute), pageview("/"))
	}
	if n := c.Sweep(t0.Add(30 * time.Minute)); n != 1 {
		t.Errorf("Sweep at 00:30 removed %d, want 1", n)
	}
	if n := c.Sweep(t0.Add(2 * time.Hour)); n != 2 {
		t.Errorf("Sweep at 02:00 removed %d, want 2", n)
	}
	if n := c.Len(); n != 0 {
		t.Errorf("Len = %d after sweeping everything", n)
	}
}

func TestNewCacheShards(t *testing.T) {
	for _, tt := range []struct{ max, shards int }{
		{1, 1}, {2047, 1}, {2048, 2}, {0, maxShards}, {DefaultMaxSessions, maxShards},
	} {
		c := NewCache(CacheConfig{MaxSessions: tt.max})
		if len(c.shards) != tt.shards {
			t.Errorf("MaxSessions %d: %d shards, want %d", tt.max, len(c.shards), tt.shards)
		}
		total := 0
		for i := range c.shards {
			total += c.shards[i].max
		}
		want := tt.max
		if want == 0 {
			want = DefaultMaxSessions
		}
		if total < want || total >= want+len(c.shards) {
			t.Errorf("MaxSessions %d: shard capacity %d", tt.max, total)
		}
		for v := range uint64(1000) {
			if i := c.shardIndex(v); i < 0 || i >= len(c.shards) {
				t.Fatalf("shardIndex(%d) = %d", v, i)
			}
		}
	}
}

// TestSessionConcurrent exercises touches, with and without a previous-day
// id, and Sweep together; it is meant for -race.
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
					prev, cur, hadPrev = c.touchSessionFallback("example.com", v+10_000, v, now, pageview("/"))
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

// TestSessionTableModel checks the open-addressing table against a map:
// random puts and deletes (deletion shifts later slots back), in a table
// that grows and runs nearly full, with keys that share their home slot.
// Every key held must be found at a slot that holds it, and no other.
func TestSessionTableModel(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	c := NewCache(CacheConfig{MaxSessions: 2047}) // one shard
	sh := &c.shards[0]
	model := map[[2]uint64]uint64{} // (site, visitor) → session id
	check := func(step int) {
		if sh.used != len(model) {
			t.Fatalf("step %d: %d used, model holds %d", step, sh.used, len(model))
		}
		for k, id := range model {
			i := sh.find(uint32(k[0]), k[1])
			if i < 0 || sh.slots[i].id != id || sh.colds[i].visitor0 != k[1] {
				t.Fatalf("step %d: key %v not found (slot %d)", step, k, i)
			}
		}
		if sh.used*8 > c.per*7 || len(sh.slots) != c.per {
			t.Fatalf("step %d: %d of %d slots used (table of %d)", step, sh.used, c.per, len(sh.slots))
		}
	}
	for step := range 20000 {
		k := [2]uint64{uint64(r.IntN(3)), uint64(r.IntN(600) + 1)}
		if i := sh.find(uint32(k[0]), k[1]); i >= 0 {
			if _, ok := model[k]; !ok {
				t.Fatalf("step %d: found %v, which was deleted", step, k)
			}
			if r.IntN(2) == 0 {
				sh.deleteAt(i)
				delete(model, k)
			}
		} else {
			if _, ok := model[k]; ok {
				t.Fatalf("step %d: lost %v", step, k)
			}
			id := r.Uint64() | 1
			if c.full(sh) {
				c.grow(c.per)
			}
			sh.put(&slot{visitor: k[1], site: uint32(k[0]), id: id}, &cold{visitor0: k[1]})
			model[k] = id
		}
		if step%997 == 0 {
			check(step)
		}
	}
	check(-1)
	if unsafe.Sizeof(slot{}) != 128 {
		t.Errorf("a slot is %d bytes, want 128 (two cache lines)", unsafe.Sizeof(slot{}))
	}
	// Slots and colds live in memory the garbage collector does not scan;
	// frozen sessions wait in arrays it need not scan.
	for _, typ := range []reflect.Type{reflect.TypeFor[slot](), reflect.TypeFor[cold](), reflect.TypeFor[frozen]()} {
		if p := pointerIn(typ); p != "" {
			t.Errorf("%s holds a pointer (%s): it must hold none", typ, p)
		}
	}
}

// pointerIn names a field of typ that is or holds a pointer ("": none).
func pointerIn(typ reflect.Type) string {
	switch typ.Kind() {
	case reflect.Bool, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64, reflect.Int,
		reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uint, reflect.Float32, reflect.Float64:
		return ""
	case reflect.Array:
		return pointerIn(typ.Elem())
	case reflect.Struct:
		for i := range typ.NumField() {
			if p := pointerIn(typ.Field(i).Type); p != "" {
				return typ.Field(i).Name + "." + p
			}
		}
		return ""
	}
	return typ.String()
}

// TestSessionTablesGrowTogether checks that the shards' tables grow as one
// array, in a huge-page mapping once it is big enough, and that the
// sessions survive each growth.
func TestSessionTablesGrowTogether(t *testing.T) {
	c := NewCache(CacheConfig{})
	const n = 40_000
	ids := make([]uint64, n+1)
	for v := uint64(1); v <= n; v++ {
		ids[v], _ = c.Touch("example.com", v, 0, t0, &Touch{Pageview: true, Path: "/"})
	}
	if c.Len() != n || c.Evictions() != 0 {
		t.Fatalf("Len %d, Evictions %d", c.Len(), c.Evictions())
	}
	for v := uint64(1); v <= n; v++ {
		if id, _ := c.Touch("example.com", v, 0, t0.Add(time.Second), &Touch{Pageview: true, Path: "/"}); id != ids[v] {
			t.Fatalf("visitor %d: session %d after growing, was %d", v, id, ids[v])
		}
	}
	first := &c.shards[0].slots[0]
	for i := range c.shards {
		sh := &c.shards[i]
		if len(sh.slots) != c.per || &sh.slots[0] != (*slot)(unsafe.Add(unsafe.Pointer(first), i*c.per*int(unsafe.Sizeof(slot{})))) {
			t.Fatalf("shard %d's table is not part %d of one array of %d slots per shard", i, i, c.per)
		}
	}
	if runtime.GOOS == "linux" {
		for _, a := range []struct {
			name  string
			m     []byte
			first unsafe.Pointer
		}{{"slots", c.mapping.slots, unsafe.Pointer(first)}, {"colds", c.mapping.colds, unsafe.Pointer(&c.shards[0].colds[0])}} {
			if a.m == nil || uintptr(a.first) < uintptr(unsafe.Pointer(&a.m[0])) || uintptr(a.first)%hugePage != 0 {
				t.Fatalf("%d %s per shard are not in a huge-page-aligned mapping", c.per, a.name)
			}
		}
	}
}

func TestSessionShardSize(t *testing.T) {
	if n := unsafe.Sizeof(sessionShard{}); n%64 != 0 {
		t.Errorf("a shard is %d bytes: shards share cache lines", n)
	}
}

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

// TestSessionRateLimit checks the per-session limit of touches a second:
// touches beyond it change nothing, a new second starts a new count, and a
// touch without a limit is never limited.
func TestSessionRateLimit(t *testing.T) {
	c := NewCache(CacheConfig{})
	pv := Touch{Pageview: true, Path: "/", Limit: 3}
	at := t0.Add(500 * time.Millisecond)
	var id uint64
	for i := range 5 {
		got, limited := c.Touch("example.com", 1, 0, at, &pv)
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
	if _, limited := c.Touch("example.com", 1, 0, at.Add(600*time.Millisecond), &pv); limited {
		t.Fatal("a new second is still limited")
	}
	if _, limited := c.Touch("example.com", 2, 0, at, &pv); limited {
		t.Fatal("another visitor is limited")
	}
}
