package session

// Ending sessions: a session leaves its slot when it has expired (found so
// by a touch or Sweep) or a full shard evicts it, and its last change
// waits in the shard's frozen list for a drain; with the counts the cache
// reports.

import (
	"math/rand/v2"
	"time"
)

// insert stores a session that is not in sh, evicting first when sh is
// full, and returns its slot.
func (c *Cache) insert(sh *sessionShard, s *slot, k *cold, ns int64) int {
	if sh.used >= sh.max {
		c.evict(sh, ns)
	}
	return sh.put(s, k)
}

// evictSamples is how many sessions eviction looks at, from a random
// place: an approximation of least-recently-seen.
const evictSamples = 5

func (c *Cache) evict(sh *sessionShard, ns int64) {
	if sh.used == 0 {
		return
	}
	mask := len(sh.slots) - 1
	victim, seen := -1, 0
	for i, n := rand.IntN(len(sh.slots)), 0; n < len(sh.slots) && seen < evictSamples; i, n = (i+1)&mask, n+1 {
		s := &sh.slots[i]
		if s.visitor == 0 {
			continue
		}
		if !c.live(s, ns) {
			c.removeAt(sh, i)
			return // expired: no live session lost
		}
		if victim < 0 || s.lastSeen < sh.slots[victim].lastSeen {
			victim = i
		}
		seen++
	}
	c.removeAt(sh, victim)
	c.evicted.Add(1)
}

// removeAt takes the session in slot i out of sh. If it changed since the
// last Drain, its state waits in sh.frozen to be drained. When Drain has
// made no progress for DrainStall (storage down), the frozen sessions of a
// shard are bounded by its share of MaxSessions: beyond it they are
// dropped and counted, so that sessions ending meanwhile cannot grow
// memory without bound.
func (c *Cache) removeAt(sh *sessionShard, i int) {
	if sh.slots[i].flags&slotDirty != 0 {
		sh.frozen = append(sh.frozen, frozen{s: sh.slots[i], k: sh.colds[i]})
		ended := c.ended.Add(1)
		if len(sh.frozen) > max(sh.max, minPerShard) && time.Since(time.Unix(0, c.drained.Load())) >= c.stall {
			c.dropped.Add(uint64(len(sh.frozen)))
			c.ended.Add(-int64(len(sh.frozen)))
			sh.frozen = sh.frozen[:0]
		} else if ended >= c.endedAt {
			select {
			case c.pressure <- struct{}{}:
			default: // asked already
			}
		}
	}
	sh.deleteAt(i)
}

// Sweep removes sessions that have expired at now and returns how many.
func (c *Cache) Sweep(now time.Time) int {
	ns := now.UnixNano()
	removed := 0
	for i := range c.shards {
		sh := &c.shards[i]
		sh.mu.Lock()
		// Deleting shifts later slots back, never an unvisited one to
		// before j: so j is looked at again after a removal.
		for j := 0; j < len(sh.slots); {
			if s := &sh.slots[j]; s.visitor != 0 && !c.live(s, ns) {
				c.removeAt(sh, j)
				removed++
				continue
			}
			j++
		}
		sh.mu.Unlock()
	}
	return removed
}

// Len returns the number of sessions held, live or not yet swept.
func (c *Cache) Len() int {
	n := 0
	for i := range c.shards {
		sh := &c.shards[i]
		sh.mu.Lock()
		n += sh.used
		sh.mu.Unlock()
	}
	return n
}

// Evictions returns how many live sessions were dropped because the cache
// was full. A growing count means MaxSessions is too small.
func (c *Cache) Evictions() uint64 {
	return c.evicted.Load()
}

// DroppedChanges returns how many ended sessions lost their last change
// before a Drain took it: only when Drain does not run for long (storage
// down) while sessions end faster than the cache holds them.
func (c *Cache) DroppedChanges() uint64 {
	return c.dropped.Load()
}
