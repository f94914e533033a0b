package session

// The key tables: the pages and attributions that slots refer to by a
// 64-bit key, and their compaction.

import (
	"hash/maphash"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/glimpse-analytics/glimpse/internal/model"
)

// keyTable holds values that sessions refer to by a 64-bit key, a hash of
// the value with a seed of the process's own (so that no one can choose
// values that collide). A slot keeps keys, not strings or pointers: a
// touch that changes the exit page then writes only its slot, which it
// has in cache, and the arrays of held sessions have no pointers for the
// garbage collector to scan. Drain turns the keys back into values.
//
// A value stays in the table while a session refers to it. When the table
// holds more than limit values, Cache.compact keeps only those that held
// sessions refer to, so memory is bounded by the sessions held.
type keyTable[V any] struct {
	seed   maphash.Seed
	n      atomic.Int64 // values held
	limit  atomic.Int64
	floor  int64 // the least limit, minKeyLimit (tests lower it)
	shards [keyShards]keyShard[V]
}

type keyShard[V any] struct {
	mu sync.RWMutex
	m  map[uint64]V
	_  [32]byte // pad to 64 bytes so shards do not share cache lines
}

const (
	keyShards = 16
	// minKeyLimit is the fewest values held before compacting: about
	// 4 MiB of paths with typical lengths.
	minKeyLimit = 1 << 16
)

func (t *keyTable[V]) init() {
	t.seed = maphash.MakeSeed()
	for i := range t.shards {
		t.shards[i].m = make(map[uint64]V)
	}
	t.floor = minKeyLimit
	t.limit.Store(t.floor)
}

// add makes sure the table holds a value under h; mk makes it when it is
// new (a copy the table may keep).
func (t *keyTable[V]) add(h uint64, mk func() V) {
	sh := &t.shards[h%keyShards]
	sh.mu.RLock()
	_, ok := sh.m[h]
	sh.mu.RUnlock()
	if ok {
		return
	}
	v := mk()
	sh.mu.Lock()
	if _, ok := sh.m[h]; !ok {
		sh.m[h] = v
		t.n.Add(1)
	}
	sh.mu.Unlock()
}

// get returns the value whose key is h.
func (t *keyTable[V]) get(h uint64) V {
	sh := &t.shards[h%keyShards]
	sh.mu.RLock()
	v := sh.m[h]
	sh.mu.RUnlock()
	return v
}

// over reports whether the table should be compacted.
func (t *keyTable[V]) over() bool { return t.n.Load() > t.limit.Load() }

// keep drops every value but those whose keys live holds, and sets the
// next limit to twice what is kept (at least floor).
func (t *keyTable[V]) keep(live map[uint64]struct{}) {
	kept := 0
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.Lock()
		m := make(map[uint64]V)
		for h, v := range sh.m {
			if _, ok := live[h]; ok {
				m[h] = v
			}
		}
		sh.m = m
		kept += len(m)
		sh.mu.Unlock()
	}
	t.n.Store(int64(kept))
	t.limit.Store(max(t.floor, int64(2*kept)))
}

// compact drops the paths and attributions no session refers to any more
// (held, ended but not drained, or in its last written version), under
// every shard's lock (so that no touch adds a reference meanwhile).
func (c *Cache) compact() {
	c.exclusive(func() {
		if !c.paths.over() && !c.attrs.over() {
			return // another touch compacted first
		}
		live, attrs := make(map[uint64]struct{}), make(map[uint64]struct{})
		keep := func(s *slot, k *cold) {
			live[s.entryHash], live[s.exitHash] = struct{}{}, struct{}{}
			if k.w.version != 0 {
				// The last written version's pages: its cancel row
				// must name them.
				live[k.w.entryHash], live[k.w.exitHash] = struct{}{}, struct{}{}
			}
			attrs[k.attrs] = struct{}{}
		}
		for i := range c.shards {
			sh := &c.shards[i]
			for j := range sh.slots {
				if sh.slots[j].visitor != 0 {
					keep(&sh.slots[j], &sh.colds[j])
				}
			}
			for j := range sh.frozen {
				keep(&sh.frozen[j].s, &sh.frozen[j].k)
			}
		}
		c.paths.keep(live)
		c.attrs.keep(attrs)
	})
}

// pathTable holds the entry and exit pages of held sessions.
type pathTable struct{ keyTable[string] }

func (t *pathTable) hash(path string) uint64 { return maphash.String(t.seed, path) }

// add makes sure the table holds path under h, its hash. path may be a
// view of a buffer the caller reuses: the table keeps a copy.
func (t *pathTable) add(h uint64, path string) {
	t.keyTable.add(h, func() string { return strings.Clone(path) })
}

// attrTable holds the attribution of held sessions, one immutable Attrs
// for every session with the same attribution (most visits share a
// handful: direct, Chrome, Windows, one country).
type attrTable struct{ keyTable[*model.Attrs] }

// hash returns a's key: each string with its length, so that no two
// different attributions run together into the same bytes.
func (t *attrTable) hash(a *model.Attrs) uint64 {
	var h maphash.Hash
	h.SetSeed(t.seed)
	for _, d := range model.AttrDims {
		s := *d.Attr(a)
		var n [4]byte
		n[0], n[1], n[2], n[3] = byte(len(s)), byte(len(s)>>8), byte(len(s)>>16), byte(len(s)>>24)
		h.Write(n[:])
		h.WriteString(s)
	}
	return h.Sum64()
}
