package session

// The site table, which numbers the sites so that a slot keys its site in
// 4 bytes.

import (
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
)

// siteTable numbers the sites the cache has seen, so that a slot keys its
// site in 4 bytes. Sites come from the configuration, so the table stays
// small and is never pruned. Lookups take no lock.
type siteTable struct {
	mu  sync.Mutex
	cur atomic.Pointer[siteList]
}

type siteList struct {
	names []string
	ids   map[string]uint32 // for many sites
}

// id returns site's number, adding it if it is new.
func (t *siteTable) id(site string) uint32 {
	if l := t.cur.Load(); l != nil {
		if len(l.names) <= 8 {
			for i, n := range l.names {
				if n == site {
					return uint32(i)
				}
			}
		} else if id, ok := l.ids[site]; ok {
			return id
		}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	l := t.cur.Load()
	if l == nil {
		l = &siteList{ids: map[string]uint32{}}
	}
	if id, ok := l.ids[site]; ok {
		return id
	}
	next := &siteList{names: append(slices.Clip(l.names), strings.Clone(site)), ids: maps.Clone(l.ids)}
	id := uint32(len(l.names))
	next.ids[next.names[id]] = id
	t.cur.Store(next)
	return id
}

// name returns the site numbered id.
func (t *siteTable) name(id uint32) string {
	return t.cur.Load().names[id]
}
