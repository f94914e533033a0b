package session

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/glimpse-analytics/glimpse/internal/model"
)

func BenchmarkTouch(b *testing.B) {
	attrs := &model.Attrs{Referrer: "https://news.example/", Country: "DE"}
	// existing touches sessions held already: 50,000 of them, more than
	// the CPU caches hold, as in the load run.
	existing := func(b *testing.B, touch func(c *Cache, visitor uint64, now time.Time, ev *Touch)) {
		c := NewCache(CacheConfig{})
		const visitors = 50_000
		for v := uint64(1); v <= visitors; v++ {
			c.touchSession("example.com", v*0x9E3779B97F4A7C15, t0, Touch{Pageview: true, Path: "/", Attrs: attrs})
		}
		var next atomic.Uint64
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			v := next.Add(1) * 7919
			now := t0
			ev := Touch{Pageview: true, Path: "/next"}
			for pb.Next() {
				v++
				now = now.Add(time.Millisecond)
				touch(c, (v%visitors+1)*0x9E3779B97F4A7C15, now, &ev)
			}
		})
	}
	b.Run("existing", func(b *testing.B) {
		existing(b, func(c *Cache, v uint64, now time.Time, ev *Touch) { c.touchSession("example.com", v, now, *ev) })
	})
	b.Run("existing-id", func(b *testing.B) {
		existing(b, func(c *Cache, v uint64, now time.Time, ev *Touch) { c.Touch("example.com", v, now, ev) })
	})
	b.Run("new", func(b *testing.B) {
		c := NewCache(CacheConfig{MaxSessions: 100_000})
		var next atomic.Uint64
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			ev := Touch{Pageview: true, Path: "/", Attrs: attrs}
			for pb.Next() {
				c.touchSession("example.com", next.Add(1)*0x9E3779B97F4A7C15, t0, ev)
			}
		})
	})
}
