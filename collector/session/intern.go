package session

// The intern table, which the strings of attributions are copied into.

import (
	"hash/maphash"
	"strings"
	"sync"

	"github.com/glimpse-analytics/glimpse/internal/model"
)

// internTable hands out immutable copies of strings, the same copy for
// equal strings. The session cache keeps attribution for up to a day,
// while callers build it in buffers they reuse for the next request;
// interning lets callers pass views of those buffers, costs no allocation
// for values seen before (attribution repeats heavily), and stores each
// value once however many sessions hold it. (Pages are kept by pathTable,
// whole attributions by attrTable.)
//
// The table is bounded: when a shard is full, an arbitrary entry makes
// room, so values that stop being used age out. Safe for concurrent use.
type internTable struct {
	seed   maphash.Seed
	shards [internShards]internShard
}

const (
	internShards = 16
	// defaultInternSize bounds the distinct strings interned, about 6 MiB
	// with typical lengths.
	defaultInternSize = 1 << 16
	// maxInternLen is the longest string interned; longer ones (long
	// referrers, rare campaign names) are copied for each use.
	maxInternLen = 256
)

type internShard struct {
	mu  sync.RWMutex
	m   map[string]string
	max int
	_   [24]byte // pad to 64 bytes so shards do not share cache lines
}

func (t *internTable) init(size int) {
	t.seed = maphash.MakeSeed()
	per := max(1, (size+internShards-1)/internShards)
	for i := range t.shards {
		t.shards[i].m = make(map[string]string)
		t.shards[i].max = per
	}
}

// get returns an immutable string equal to s, which may alias a buffer the
// caller will reuse. It does not allocate when s was interned before.
func (t *internTable) get(s string) string {
	if s == "" {
		return ""
	}
	if len(s) > maxInternLen {
		return strings.Clone(s)
	}
	sh := &t.shards[maphash.String(t.seed, s)%internShards]
	sh.mu.RLock()
	v, ok := sh.m[s]
	sh.mu.RUnlock()
	if ok {
		return v
	}
	v = strings.Clone(s)
	sh.mu.Lock()
	if w, ok := sh.m[v]; ok {
		v = w
	} else {
		if len(sh.m) >= sh.max {
			for k := range sh.m {
				delete(sh.m, k)
				break
			}
		}
		sh.m[v] = v
	}
	sh.mu.Unlock()
	return v
}

// attrs returns a copy of a whose strings are all interned.
func (t *internTable) attrs(a *model.Attrs) model.Attrs {
	v := *a
	for _, d := range model.AttrDims {
		f := d.Attr(&v)
		*f = t.get(*f)
	}
	return v
}
