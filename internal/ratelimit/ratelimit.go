// Package ratelimit holds token buckets by key, for the read side's
// request limits: the Stats API's per key, the dashboard's per reader and
// per client network.
//
// A key may spend a burst of requests at once and earns them back at a
// steady rate. A key not seen yet, or one whose bucket has refilled, holds
// a full burst; such buckets are forgotten when room is needed, so the
// table stays bounded however many keys come.
package ratelimit

import (
	"math"
	"sync"
	"time"
)

// Limit is a rate and a burst.
type Limit struct {
	// PerHour is how many requests a key earns back per hour, evenly.
	PerHour int
	// Burst is the most a key may make at once (default PerHour: a key
	// may spend its hour in one go).
	Burst int
}

// Buckets are the token buckets of keys K under one Limit. They are safe
// for concurrent use.
type Buckets[K comparable] struct {
	rate  float64 // tokens per second
	burst float64
	max   int

	mu sync.Mutex
	m  map[K]*bucket
}

type bucket struct {
	tokens float64
	at     time.Time
}

// DefaultMaxKeys bounds the keys a Buckets holds: about 64 bytes each.
const DefaultMaxKeys = 100_000

// New returns the buckets of l, holding at most maxKeys keys (0:
// DefaultMaxKeys). l.PerHour must be positive.
func New[K comparable](l Limit, maxKeys int) *Buckets[K] {
	if l.Burst <= 0 {
		l.Burst = l.PerHour
	}
	if maxKeys <= 0 {
		maxKeys = DefaultMaxKeys
	}
	return &Buckets[K]{rate: float64(l.PerHour) / 3600, burst: float64(l.Burst), max: maxKeys, m: map[K]*bucket{}}
}

// Take spends one of key's tokens at now and returns 0, or, when it has
// none, spends nothing and returns how long until it has one.
func (b *Buckets[K]) Take(key K, now time.Time) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	bk := b.m[key]
	if bk == nil {
		if len(b.m) >= b.max {
			b.prune(now)
		}
		bk = &bucket{tokens: b.burst, at: now}
		b.m[key] = bk
	}
	b.refill(bk, now)
	if bk.tokens < 1 {
		return time.Duration(math.Ceil((1 - bk.tokens) / b.rate * float64(time.Second)))
	}
	bk.tokens--
	return 0
}

func (b *Buckets[K]) refill(bk *bucket, now time.Time) {
	if d := now.Sub(bk.at); d > 0 {
		bk.tokens = math.Min(b.burst, bk.tokens+d.Seconds()*b.rate)
		bk.at = now
	}
}

// prune forgets the buckets that have refilled, which a new bucket would
// equal; if none has, the fullest, which loses its owner the least.
func (b *Buckets[K]) prune(now time.Time) {
	var fullest K
	most := -1.0
	for k, bk := range b.m {
		b.refill(bk, now)
		if bk.tokens >= b.burst {
			delete(b.m, k)
		} else if bk.tokens > most {
			fullest, most = k, bk.tokens
		}
	}
	if len(b.m) >= b.max && most >= 0 {
		delete(b.m, fullest)
	}
}
