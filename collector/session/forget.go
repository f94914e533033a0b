package session

// Forgetting sessions: an erasure deletes a person's sessions from
// storage, and the cache must not write them again.

// Forget drops the sessions of site with the given ids, live or ended,
// without handing their changes to a drain: an erasure deletes their rows
// from storage, and a change written afterwards would bring a session
// back (or leave a cancel row that cancels nothing). A later touch of the
// same visitor starts a new session. It returns how many it dropped.
//
// It looks at every slot, under each shard's lock in turn: an erasure is
// rare, and sessions are keyed by visitor, not by id.
func (c *Cache) Forget(site string, ids []uint64) int {
	if len(ids) == 0 {
		return 0
	}
	set := make(map[uint64]struct{}, len(ids))
	for _, id := range ids {
		set[id] = struct{}{}
	}
	gone := func(s *slot) bool {
		_, ok := set[s.id]
		return ok
	}
	sid := c.sites.id(site)
	n := 0
	for i := range c.shards {
		sh := &c.shards[i]
		sh.mu.Lock()
		// Deleting shifts later slots back, never an unvisited one to
		// before j: so j is looked at again after a removal (as in Sweep).
		for j := 0; j < len(sh.slots); {
			if s := &sh.slots[j]; s.visitor != 0 && s.site == sid && gone(s) {
				sh.deleteAt(j)
				n++
				continue
			}
			j++
		}
		keep := sh.frozen[:0]
		for _, f := range sh.frozen {
			if f.s.site == sid && gone(&f.s) {
				c.ended.Add(-1)
				n++
				continue
			}
			keep = append(keep, f)
		}
		sh.frozen = keep
		sh.mu.Unlock()
	}
	return n
}
