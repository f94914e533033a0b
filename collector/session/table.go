package session

// The slot tables: the layout of a session in a slot and a cold beside
// it, the lock shards, finding, putting and deleting a slot in a shard's
// open-addressing table, and growing the tables under every shard's lock.

import "sync"

// slot is a session's hot state: its key and what a touch reads and
// writes. 128 bytes, so that a slot is two whole cache lines (the tables
// are page-aligned), which the CPU fetches as a pair.
type slot struct {
	visitor     uint64 // key; 0: the slot is empty
	site        uint32 // key: siteTable id
	flags       uint32 // slotDirty
	id          uint64
	start       int64 // Unix ns
	lastSeen    int64
	lastEventAt int64 // last touch that was not an engagement report
	version     uint32
	pageviews   uint32
	events      uint32
	interactive uint32 // interactive touches so far
	engagement  uint64 // ms, Session.EngagementMS
	tailMS      uint64 // engagement reported since lastEventAt
	entryHash   uint64 // the entry page's key in Cache.paths
	exitHash    uint64 // the exit page's
	rateSec     uint32 // the second (Unix, truncated) rateN counts touches of
	rateN       uint32
	maxDurSec   uint32 // Touch.MaxDurationSec of the first touch; 0: none
	_           [20]byte
}

// slotDirty marks a session changed since the last Drain.
const slotDirty = 1

// cold is the rest of a session, in the array parallel to the slots.
type cold struct {
	visitor0 uint64 // Session.VisitorID: the id that started the session
	attrs    uint64 // the attribution's key in Cache.attrs
	// w is the state that Drain last handed out, which the table holds
	// with sign +1 (w.version 0: none yet).
	w written
}

// written is what a session's last written version holds that changes
// from one version to the next; the rest (id, visitor, site, start,
// attribution) is the same in every version and read from the slot. It
// is numbers and path keys, not a Session: a Session per held session was
// an object with four strings for the GC to mark in every cycle, which
// with a full cache (500,000 sessions) took a third of the CPU.
type written struct {
	lastSeen            int64 // Unix ns
	engagement          uint64
	entryHash, exitHash uint64 // keys in Cache.paths
	version, pageviews  uint32
	events, durationSec uint32
	bounce              bool
}

// frozen is an ended (expired, evicted, swept) session whose last change
// is not drained yet: its slot and the rest, as they were. Like slots and
// colds it holds no pointer, so the garbage collector does not scan it.
type frozen struct {
	s slot
	k cold
}

type sessionShard struct {
	mu     sync.Mutex
	slots  []slot // Cache.per of them, never more than 7/8 used
	colds  []cold // parallel to slots
	used   int
	dirty  int // slots with slotDirty
	max    int
	frozen []frozen
	_      [24]byte // pad to 128 bytes so shards do not share cache lines
}

// maxShards bounds the lock shards; minPerShard keeps small caches in few
// shards so that MaxSessions stays close to exact.
const (
	maxShards   = 64
	minPerShard = 1024
	minSlots    = 16
)

// slotMapping holds the mappings of the slot and cold arrays, if they
// have them.
type slotMapping struct{ slots, colds []byte }

func (m *slotMapping) unmap() {
	unmapArray(m.slots)
	unmapArray(m.colds)
}

func (c *Cache) shardIndex(visitor uint64) int {
	if c.shift == 64 {
		return 0
	}
	// Visitor ids are hashes already; the multiply spreads test ids too.
	return int((visitor * 0x9E3779B97F4A7C15) >> c.shift)
}

// home is where the slot of (site, visitor) is looked for first: bits of a
// hash other than those that chose the shard.
func home(site uint32, visitor uint64) uint64 {
	h := (visitor ^ uint64(site)<<40) * 0xBF58476D1CE4E5B9
	return h ^ h>>29
}

// find returns the index of the slot of (site, visitor), or -1.
func (sh *sessionShard) find(site uint32, visitor uint64) int {
	if sh.used == 0 {
		return -1
	}
	mask := len(sh.slots) - 1
	for i := int(home(site, visitor)) & mask; ; i = (i + 1) & mask {
		s := &sh.slots[i]
		if s.visitor == visitor && s.site == site {
			return i
		}
		if s.visitor == 0 {
			return -1
		}
	}
}

// put stores a session that is not in the table and returns its index.
// The table must have room (see Cache.full); put does not evict.
func (sh *sessionShard) put(s *slot, k *cold) int {
	mask := len(sh.slots) - 1
	i := int(home(s.site, s.visitor)) & mask
	for sh.slots[i].visitor != 0 {
		i = (i + 1) & mask
	}
	sh.slots[i], sh.colds[i] = *s, *k
	sh.used++
	if s.flags&slotDirty != 0 {
		sh.dirty++
	}
	return i
}

// deleteAt empties slot i, moving later slots of its probe run back so
// that no lookup stops early.
func (sh *sessionShard) deleteAt(i int) {
	if sh.slots[i].flags&slotDirty != 0 {
		sh.dirty--
	}
	mask := len(sh.slots) - 1
	for j := (i + 1) & mask; sh.slots[j].visitor != 0; j = (j + 1) & mask {
		h := int(home(sh.slots[j].site, sh.slots[j].visitor)) & mask
		// Slot j may move to i unless its home lies cyclically in (i, j].
		if (i < j && i < h && h <= j) || (i > j && (h > i || h <= j)) {
			continue
		}
		sh.slots[i], sh.colds[i] = sh.slots[j], sh.colds[j]
		i = j
	}
	sh.slots[i], sh.colds[i] = slot{}, cold{}
	sh.used--
}

// full reports whether sh must grow before a session is added: it has
// room under its share of MaxSessions (at that share, a new session
// evicts one) but its table would be more than 7/8 used.
func (c *Cache) full(sh *sessionShard) bool {
	return sh.used < sh.max && (sh.used+1)*8 > c.per*7
}

// resize gives every shard a table of per slots, holding what it held.
// The caller holds every shard's lock (or has the Cache to itself).
func (c *Cache) resize(per int) {
	slots, ms := mapArray[slot](per * len(c.shards))
	colds, mc := mapArray[cold](per * len(c.shards))
	for i := range c.shards {
		sh := &c.shards[i]
		old, olds := sh.slots, sh.colds
		sh.slots, sh.colds = slots[i*per:(i+1)*per:(i+1)*per], colds[i*per:(i+1)*per:(i+1)*per]
		sh.used, sh.dirty = 0, 0
		for j := range old {
			if old[j].visitor != 0 {
				sh.put(&old[j], &olds[j])
			}
		}
	}
	c.mapping.unmap()
	c.mapping.slots, c.mapping.colds, c.per = ms, mc, per
}

// exclusive runs f with every shard's lock held.
func (c *Cache) exclusive(f func()) {
	for i := range c.shards {
		c.shards[i].mu.Lock()
	}
	defer func() {
		for i := range c.shards {
			c.shards[i].mu.Unlock()
		}
	}()
	f()
}

// grow doubles the tables, unless another goroutine did since the caller
// saw them with per slots.
func (c *Cache) grow(per int) {
	c.exclusive(func() {
		if c.per == per {
			c.resize(2 * per)
		}
	})
}
