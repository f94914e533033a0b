package session

import (
	"testing"
	"time"

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
	_, hadPrev, _ = c.touch(site, visitor, now, &ev, &prev, &cur)
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
