package collector

import (
	"sync/atomic"
	"time"
)

// rateLimiter holds the per-visitor limit of events a second. An event of
// a session is counted in the session's slot (session.Touch.Limit); the
// table here counts only events that have no session (engagement reported
// after the session ended), so that those cannot flood either.
//
// The table caps events per visitor per second without allocating: a
// fixed table of counters indexed by the visitor id's low bits, each
// holding the second it counts and the count. Two visitors that share a
// slot in the same second share a budget; with 2^16 slots and a limit well
// above what a person's browser sends, that costs nothing in practice, and
// the table stays 512 KiB however many visitors there are.
type rateLimiter struct {
	limit uint32
	slots [1 << 16]atomic.Uint64 // second<<32 | count
}

// DefaultRateLimit is the events a visitor may send per second before the
// rest of that second is dropped with reason rate-limit. A page view, an
// engagement report and a few clicks in one second stay well under it.
const DefaultRateLimit = 20

// allow counts one event for visitor at now and reports whether it is
// within the limit. A limit of 0 allows everything.
func (r *rateLimiter) allow(visitor uint64, now time.Time) bool {
	if r.limit == 0 {
		return true
	}
	slot := &r.slots[visitor&(1<<16-1)]
	sec := uint64(uint32(now.Unix()))
	for {
		old := slot.Load()
		next := sec<<32 | 1
		if old>>32 == sec {
			n := uint32(old)
			if n >= r.limit {
				return false
			}
			next = old + 1
		}
		if slot.CompareAndSwap(old, next) {
			return true
		}
	}
}
