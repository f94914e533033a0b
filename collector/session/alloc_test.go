//go:build !race

package session

import (
	"testing"
	"time"
	"unsafe"

	"github.com/glimpse-analytics/glimpse/internal/model"
)

// The race detector allocates, so these run only without it.

func TestTouchAllocs(t *testing.T) {
	c := NewCache(CacheConfig{})
	attrs := &model.Attrs{Referrer: "https://news.example/", Country: "DE"}
	now := t0
	c.touchSession("example.com", 42, now, Touch{Pageview: true, Path: "/", Attrs: attrs})
	ev := Touch{Pageview: true, Path: "/next", Attrs: attrs}
	if n := testing.AllocsPerRun(100, func() {
		now = now.Add(time.Second)
		c.touchSession("example.com", 42, now, ev)
	}); n != 0 {
		t.Errorf("Touch of an existing session allocates %v times", n)
	}
	// Paths seen before are interned: moving between pages allocates
	// nothing either, even when the path is a view of a reused buffer.
	buf := []byte("/a")
	for _, p := range []string{"/a", "/b", "/c"} {
		c.touchSession("example.com", 42, now, Touch{Pageview: true, Path: p})
	}
	i := 0
	if n := testing.AllocsPerRun(100, func() {
		now = now.Add(time.Second)
		buf[1] = 'a' + byte(i%3)
		i++
		c.touchSession("example.com", 42, now, Touch{Pageview: true, Path: unsafe.String(&buf[0], len(buf))})
	}); n != 0 {
		t.Errorf("Touch moving between pages allocates %v times", n)
	}
	// A new session whose page and attribution were seen before is keys
	// in its slot: nothing to allocate (the table has room).
	v := uint64(1000)
	if n := testing.AllocsPerRun(100, func() {
		v++
		c.Touch("example.com", v, now, &ev)
	}); n != 0 {
		t.Errorf("a new session with known page and attribution allocates %v times", n)
	}
}
