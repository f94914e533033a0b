// Package ledger counts what a key (a daily visitor id, a recipient
// pseudonym) has contributed to a site's stored data in the current UTC
// day, in a table of fixed size: the mechanism under the collector's
// contribution caps (model's bounds), which say what the counts mean and
// what they allow.
//
// The table is a set of buckets of a few entries each, found by a hash of
// the key: an entry holds its key, when it was last updated and the
// counts, and no pointer, so the garbage collector never scans the table
// and an update allocates nothing. An entry last updated on an earlier
// UTC day is free: counts age out when the day changes, with no sweep.
// When a key's bucket has no free entry, the least recently updated one
// is evicted and counted (Evictions): its key's counts restart if it comes
// back, so a growing count means the table is too small for the site's
// traffic.
package ledger

import (
	"math/bits"
	"sync"
	"sync/atomic"
	"time"
)

// ways is the entries per bucket: with the collector's 16-byte counts a
// bucket is 128 bytes, two cache lines that the CPU fetches as a pair, so
// an update costs one cache miss.
const ways = 4

// lockShards is the number of locks, each guarding the buckets whose
// index it divides: few enough to stay in the CPU caches (16 KiB), many
// enough that two cores rarely wait for one.
const lockShards = 256

// Table holds the counts V of keys for their UTC day. V must hold no
// pointers (the table is never scanned by the garbage collector, and an
// entry is reset by overwriting it with the zero V). It is safe for
// concurrent use.
type Table[V any] struct {
	buckets []bucket[V]
	shift   uint // hash >> shift is the bucket index
	locks   [lockShards]paddedMutex
	evicted atomic.Uint64
}

type bucket[V any] struct {
	e [ways]entry[V]
}

type entry[V any] struct {
	id   uint64 // key; 0: empty
	site uint32 // key
	seen uint32 // Unix seconds of the last update; its UTC day is the entry's
	v    V
}

type paddedMutex struct {
	sync.Mutex
	_ [56]byte // a cache line each, so that cores do not share one
}

// New returns a table of at least n entries (rounded up to a power of two
// buckets).
func New[V any](n int) *Table[V] {
	nb := max(1, (n+ways-1)/ways)
	shift := 64 - bits.Len(uint(nb-1))
	nb = 1 << (64 - shift)
	return &Table[V]{buckets: make([]bucket[V], nb), shift: uint(shift)}
}

// Len returns the number of entries the table has room for.
func (t *Table[V]) Len() int { return len(t.buckets) * ways }

// Evictions returns how many entries of the current day were dropped for
// another key because their bucket was full.
func (t *Table[V]) Evictions() uint64 { return t.evicted.Load() }

// Update runs f with the counts of (site, id) on now's UTC day, under the
// lock of their bucket: the zero V if the key has none that day. f must
// be quick and must not keep v or call into t. Id 0 marks an empty
// entry, so it is counted as 1 (ids are hashes: it is one in 2^64).
func (t *Table[V]) Update(site uint32, id uint64, now time.Time, f func(v *V)) {
	if id == 0 {
		id = 1
	}
	sec := uint32(now.Unix())
	day := sec / secondsPerDay
	b := t.index(site, id)
	mu := &t.locks[b%lockShards]
	mu.Lock()
	e := t.find(&t.buckets[b], site, id, sec, day)
	e.seen = max(e.seen, sec)
	f(&e.v)
	mu.Unlock()
}

const secondsPerDay = 24 * 60 * 60

// find returns the entry of (site, id) on day in bk; failing that, it
// resets and returns a free entry (empty, or of another day), or else
// the least recently updated one, which it counts as evicted. The caller
// holds bk's lock.
func (t *Table[V]) find(bk *bucket[V], site uint32, id uint64, sec, day uint32) *entry[V] {
	victim, free := 0, false
	for i := range bk.e {
		e := &bk.e[i]
		if e.id == 0 || e.seen/secondsPerDay != day {
			if !free {
				victim, free = i, true
			}
			continue
		}
		if e.id == id && e.site == site {
			return e
		}
		if !free && e.seen < bk.e[victim].seen {
			victim = i
		}
	}
	if !free {
		t.evicted.Add(1)
	}
	e := &bk.e[victim]
	*e = entry[V]{id: id, site: site, seen: sec}
	return e
}

// index returns the bucket of (site, id). Ids are hashes already; the
// multiply mixes in the site and spreads test ids.
func (t *Table[V]) index(site uint32, id uint64) uint64 {
	h := (id ^ uint64(site)<<32) * 0x9E3779B97F4A7C15
	if t.shift == 64 {
		return 0
	}
	return h >> t.shift
}
