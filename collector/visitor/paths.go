package visitor

import (
	"hash/maphash"
	"strings"
	"sync"
	"sync/atomic"
)

// pathTable holds the entry and exit pages of live sessions, keyed by a
// 64-bit hash of the path (with a seed of the process's own, so that no
// one can choose paths that collide). A slot keeps the two hashes, not the
// strings: a touch that changes the exit page then writes only its slot,
// which it has in cache, where writing a string to the parallel array
// cost a cache miss of its own. Drain turns the hashes back into paths.
//
// A path stays in the table while a slot refers to it. When the table
// holds more than limit paths, Cache.compactPaths keeps only those that
// live sessions refer to, so memory is bounded by the sessions held.
type pathTable struct {
	seed   maphash.Seed
	n      atomic.Int64 // paths held
	limit  atomic.Int64
	floor  int64 // the least limit, minPathLimit (tests lower it)
	shards [pathShards]pathShard
}

type pathShard struct {
	mu sync.RWMutex
	m  map[uint64]string
	_  [32]byte // pad to 64 bytes so shards do not share cache lines
}

const (
	pathShards = 16
	// minPathLimit is the fewest paths held before compacting: about
	// 4 MiB with typical lengths.
	minPathLimit = 1 << 16
)

func (t *pathTable) init() {
	t.seed = maphash.MakeSeed()
	for i := range t.shards {
		t.shards[i].m = make(map[uint64]string)
	}
	t.floor = minPathLimit
	t.limit.Store(t.floor)
}

func (t *pathTable) hash(path string) uint64 { return maphash.String(t.seed, path) }

// add makes sure the table holds path under h, its hash. path may be a
// view of a buffer the caller reuses: the table keeps a copy.
func (t *pathTable) add(h uint64, path string) {
	sh := &t.shards[h%pathShards]
	sh.mu.RLock()
	_, ok := sh.m[h]
	sh.mu.RUnlock()
	if ok {
		return
	}
	v := strings.Clone(path)
	sh.mu.Lock()
	if _, ok := sh.m[h]; !ok {
		sh.m[h] = v
		t.n.Add(1)
	}
	sh.mu.Unlock()
}

// get returns the path whose hash is h.
func (t *pathTable) get(h uint64) string {
	sh := &t.shards[h%pathShards]
	sh.mu.RLock()
	v := sh.m[h]
	sh.mu.RUnlock()
	return v
}

// over reports whether the table should be compacted.
func (t *pathTable) over() bool { return t.n.Load() > t.limit.Load() }

// keep drops every path but those whose hashes live holds, and sets the
// next limit to twice what is kept (at least floor).
func (t *pathTable) keep(live map[uint64]struct{}) {
	kept := 0
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.Lock()
		m := make(map[uint64]string)
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
