package session

// Touching a session, in steps: lock the visitor's shard with room for
// what the touch may add, find the live session's slot, then start a
// session or count the touch for the rate limit and apply it.

import (
	"math/rand/v2"
	"time"

	"github.com/glimpse-analytics/glimpse/internal/model"
)

// Touch records an event of visitor on site at now and returns the id of
// its session: the session held under visitor continues, or, if none is
// live, a new one starts. A touch after the idle timeout, the maximum
// length or the midnight UTC after the session started starts a new
// session; the old one keeps its last written version. Changes reach
// storage through Drain.
//
// A zero visitor, an engagement report that finds no live session
// (engagement arriving after the session ended), or a touch with NoStart
// that finds none creates nothing: id is 0. limited reports a touch
// beyond ev.Limit in its second, which changed nothing: the caller drops
// the event. Keeping the count in the session's slot, which the touch
// reads anyway, costs no cache miss of its own.
//
// Touch copies no session out, and does not allocate when it continues a
// session, nor when it starts one whose page and attribution were seen
// before and the table has room.
func (c *Cache) Touch(site string, visitor uint64, now time.Time, ev *Touch) (id uint64, limited bool) {
	id, _, limited = c.touch(site, visitor, now, ev, nil, nil)
	return id, limited
}

// touch is Touch, filling prev (the session before the touch) and cur
// (after it) when they are not nil; hadPrev is false when the touch
// started a new session. Only tests ask for prev and cur.
func (c *Cache) touch(site string, visitor uint64, now time.Time, ev *Touch, prev, cur *model.Session) (id uint64, hadPrev, limited bool) {
	if visitor == 0 {
		return 0, false, false
	}
	sid := c.sites.id(site)
	ns := now.UnixNano()
	sh := &c.shards[c.shardIndex(visitor)]
	c.lockRoom(sh)
	defer sh.mu.Unlock()

	i := c.liveSlot(sh, sid, visitor, ns)
	if i < 0 {
		if ev.Report() || ev.NoStart {
			return 0, false, false
		}
		i = c.start(sh, sid, visitor, now, ev)
		if cur != nil {
			*cur = c.session(sh, i)
		}
		return sh.slots[i].id, false, false
	}
	s := &sh.slots[i]
	if s.overLimit(now, ev.Limit) {
		return s.id, true, true
	}
	if prev != nil {
		*prev = c.session(sh, i)
	}
	c.update(sh, i, ns, ev)
	if cur != nil {
		*cur = c.session(sh, i)
	}
	return s.id, true, false
}

// lockRoom locks sh with room in the tables for what a touch may add: a
// session, a path or an attribution. Growing the slot tables and
// compacting the key tables take every shard's lock, so it does either
// with sh unlocked, and checks again once sh is locked.
func (c *Cache) lockRoom(sh *sessionShard) {
	sh.mu.Lock()
	for c.full(sh) || c.paths.over() || c.attrs.over() {
		per := c.per
		sh.mu.Unlock()
		if c.paths.over() || c.attrs.over() {
			c.compact()
		} else {
			c.grow(per)
		}
		sh.mu.Lock()
	}
}

// liveSlot returns the slot in sh of the live session of (site,
// visitor), or -1 if there is none. A session held under visitor that
// has expired is removed.
func (c *Cache) liveSlot(sh *sessionShard, site uint32, visitor uint64, ns int64) int {
	i := sh.find(site, visitor)
	if i >= 0 && !c.live(&sh.slots[i], ns) {
		c.removeAt(sh, i)
		i = -1
	}
	return i
}

// overLimit counts a touch of s in now's second and reports whether it is
// beyond limit (0: no limit), which it does not count.
func (s *slot) overLimit(now time.Time, limit uint32) bool {
	if limit == 0 {
		return false
	}
	if sec := uint32(now.Unix()); s.rateSec != sec {
		s.rateSec, s.rateN = sec, 1
	} else if s.rateN >= limit {
		return true
	} else {
		s.rateN++
	}
	return false
}

// live reports whether s may continue at ns: seen within the idle
// timeout, younger than the maximum length, and started on ns's UTC day.
// Visitor ids change at 00:00 UTC with the daily salt (identity.Salts),
// so a session that went on past midnight would store one session id
// beside two days' visitor ids, and link them.
func (c *Cache) live(s *slot, ns int64) bool {
	return ns-s.lastSeen < c.idle && ns-s.start < c.maxLength && utcDay(ns) == utcDay(s.start)
}

const nsPerDay = int64(24 * time.Hour)

// utcDay returns the UTC day of ns (Unix nanoseconds) as days since the
// Unix epoch.
func utcDay(ns int64) int64 {
	d := ns / nsPerDay
	if ns%nsPerDay < 0 {
		d--
	}
	return d
}

// noAttrs is the attribution of a touch that has none.
var noAttrs model.Attrs

// start stores the session that ev starts and returns its slot.
func (c *Cache) start(sh *sessionShard, site uint32, visitor uint64, now time.Time, ev *Touch) int {
	ns := now.UnixNano()
	a := ev.Attrs
	if a == nil {
		a = &noAttrs
	}
	path := c.paths.hash(ev.Path)
	c.paths.add(path, ev.Path)
	id := rand.Uint64()
	for id == 0 {
		id = rand.Uint64()
	}
	s := slot{
		visitor:     visitor,
		site:        site,
		flags:       slotDirty,
		id:          id,
		start:       ns,
		lastSeen:    ns,
		lastEventAt: ns,
		version:     1,
		events:      1,
		engagement:  uint64(ev.EngagementMS),
		entryHash:   path,
		exitHash:    path,
		rateSec:     uint32(now.Unix()),
		rateN:       1,
		maxDurSec:   ev.MaxDurationSec,
	}
	if ev.Pageview {
		s.pageviews = 1
	}
	if ev.Pageview || ev.Interactive {
		s.interactive = 1
	}
	ak := c.attrs.hash(a)
	c.attrs.add(ak, func() *model.Attrs {
		v := c.strs.attrs(a) // a's strings may be views of buffers the caller reuses
		return &v
	})
	k := cold{visitor0: visitor, attrs: ak}
	return c.insert(sh, &s, &k, ns)
}

// update applies a touch to the live session in slot i.
func (c *Cache) update(sh *sessionShard, i int, ns int64, ev *Touch) {
	s := &sh.slots[i]
	ns = max(ns, s.lastSeen) // out of order: never move backwards
	s.lastSeen = ns
	s.version++
	s.engagement += uint64(ev.EngagementMS)
	if ev.Report() {
		s.tailMS += uint64(ev.EngagementMS)
	} else {
		s.events++
		s.lastEventAt = ns
		s.tailMS = 0
		if ev.Pageview {
			s.pageviews++
			if h := c.paths.hash(ev.Path); h != s.exitHash {
				c.paths.add(h, ev.Path)
				if s.entryHash == c.noPath {
					s.entryHash = h // the first page view of a session an event started
				}
				s.exitHash = h
			}
		}
		if ev.Pageview || ev.Interactive {
			s.interactive++
		}
	}
	if s.flags&slotDirty == 0 {
		s.flags |= slotDirty
		sh.dirty++
	}
}
