package session

import (
	"math/bits"
	"math/rand/v2"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/glimpse-analytics/glimpse/internal/model"
)

// Session defaults. A session ends after IdleTimeout without a touch or
// once it is MaxLength old, whichever is first; the next touch starts a
// new one.
const (
	DefaultIdleTimeout = 30 * time.Minute
	DefaultMaxLength   = 24 * time.Hour
	// DefaultMaxSessions bounds the cache. A session costs its 128-byte
	// slot and 72 bytes beside it (the state last written among them), in
	// tables 7/16 to 7/8 used, so 230 to 460 bytes; paths and attribution
	// are shared. The default is 110 to 230 MiB when full.
	DefaultMaxSessions = 500_000
)

// noAttrs is the attribution of a touch that has none.
var noAttrs model.Attrs

// Touch is one event as the session cache sees it.
type Touch struct {
	// Pageview marks a page view. Page views are always interactive.
	Pageview bool
	// Path is the page's path. It may be a view of a buffer the caller
	// reuses: the cache keeps an interned copy.
	Path string
	// Interactive marks a custom event that shows the visitor engaged,
	// such as a click; non-interactive events (scroll depth, an outbound
	// link opened in the background) do not clear the bounce flag.
	Interactive bool
	// EngagementMS is engaged time reported with this touch, in
	// milliseconds. A touch that is neither a page view nor interactive and
	// carries engagement is an engagement report (the beacon's ping when a
	// page is hidden or left); see Session.DurationSec.
	EngagementMS uint32
	// Attrs is copied into a session that this touch starts, and ignored
	// otherwise. It may be nil, and it is not retained.
	Attrs *model.Attrs
	// Limit is how many touches a session takes per second (of now's Unix
	// time); those beyond it change nothing and are reported as limited,
	// so that a caller drops them. 0: no limit.
	Limit uint32
}

func (t *Touch) isReport() bool {
	return !t.Pageview && !t.Interactive && t.EngagementMS > 0
}

// CacheConfig configures NewCache. The zero value gives the defaults.
type CacheConfig struct {
	// MaxSessions bounds the number of sessions held. Default
	// DefaultMaxSessions. When full, a session that starts evicts an
	// expired or the least recently seen of a few sampled sessions.
	MaxSessions int
	// IdleTimeout, default DefaultIdleTimeout.
	IdleTimeout time.Duration
	// MaxLength, default DefaultMaxLength.
	MaxLength time.Duration
	// DrainStall is how long Drain must have made no progress before the
	// changes of ended sessions beyond the cache's size are dropped
	// (default DefaultDrainStall): a burst between two drains never loses
	// anything, storage down for long cannot grow memory without bound.
	DrainStall time.Duration
}

// DefaultDrainStall is CacheConfig.DrainStall's default.
const DefaultDrainStall = time.Minute

// Cache holds live sessions in memory, keyed by site and visitor id. It is
// safe for concurrent use; locks are sharded by visitor id. Cache starts no
// goroutine: call Sweep periodically (say every minute) to free expired
// sessions; Touch never continues an expired one either way.
//
// Each lock shard is an open-addressing table (linear probing, deletion by
// backward shift) of slots that hold a session's key and everything a
// touch reads and writes, in two cache lines and without pointers; what
// only a drain or a new page needs (paths, attribution, the state last
// written) sits in a parallel array. A visitor comes back after tens of
// thousands of other requests, so each memory access of a touch is a cache
// miss: a map of pointers to entries cost two or three dependent ones, a
// slot costs one.
type Cache struct {
	idle      int64 // ns
	maxLength int64 // ns
	shards    []sessionShard
	shift     uint // visitor hash >> shift is the shard index
	evicted   atomic.Uint64
	dropped   atomic.Uint64 // ended sessions' last changes never drained
	// ended counts the sessions waiting in the shards' frozen lists; from
	// endedAt on, pressure asks the writer to drain them (DrainEnded).
	ended    atomic.Int64
	endedAt  int64
	pressure chan struct{}
	drained  atomic.Int64 // when Drain last made progress (Unix ns)
	stall    time.Duration
	strs     internTable
	sites    siteTable
	paths    pathTable
	attrs    attrTable
	noPath   uint64 // paths.hash("")
	// per is the slots of each shard's table. The tables are consecutive
	// parts of one array (in mapped memory once it is big enough, see
	// mapSlots), and grow together: a shard that needs room doubles them
	// all, under every shard's lock, so per may be read under any one.
	per     int
	mapping *slotMapping
}

// NewCache returns an empty session cache.
func NewCache(cfg CacheConfig) *Cache {
	c := &Cache{idle: int64(cfg.IdleTimeout), maxLength: int64(cfg.MaxLength), stall: cfg.DrainStall}
	c.paths.init()
	c.attrs.init()
	c.noPath = c.paths.hash("")
	if c.stall <= 0 {
		c.stall = DefaultDrainStall
	}
	c.drained.Store(time.Now().UnixNano())
	if c.idle <= 0 {
		c.idle = int64(DefaultIdleTimeout)
	}
	if c.maxLength <= 0 {
		c.maxLength = int64(DefaultMaxLength)
	}
	maxSessions := cfg.MaxSessions
	if maxSessions <= 0 {
		maxSessions = DefaultMaxSessions
	}
	n := 1
	for n < maxShards && maxSessions/(n*2) >= minPerShard {
		n *= 2
	}
	c.strs.init(defaultInternSize)
	c.endedAt = int64(max(maxSessions/endedShare, minPerShard))
	c.pressure = make(chan struct{}, 1)
	c.shards = make([]sessionShard, n)
	c.shift = uint(64 - bits.TrailingZeros(uint(n)))
	per := (maxSessions + n - 1) / n
	for i := range c.shards {
		c.shards[i].max = per
	}
	c.mapping = new(slotMapping)
	c.resize(minSlots)
	// The mapping outlives nothing but the Cache.
	runtime.AddCleanup(c, func(m *slotMapping) { m.unmap() }, c.mapping)
	return c
}

// Touch records an event of visitor on site at now and returns the id of
// its session: the session held under visitor continues, or, if none is
// live, a new one starts. A touch after the idle timeout or the maximum
// length starts a new session; the old one keeps its last written
// version. Changes reach storage through Drain.
//
// previous is the visitor's previous-day id in the window after midnight
// (see identity.Salts.VisitorID), 0 otherwise. If no live session is held
// under visitor but one is held under previous, that session continues
// and is re-keyed to visitor, so later touches find it directly.
//
// A zero visitor, or an engagement report that finds no live session
// (engagement arriving after the session ended), creates nothing: id is
// 0. limited reports a touch beyond ev.Limit in its second, which changed
// nothing: the caller drops the event. Keeping the count in the session's
// slot, which the touch reads anyway, costs no cache miss of its own.
//
// Touch copies no session out, and does not allocate when it continues a
// session, nor when it starts one whose page and attribution were seen
// before and the table has room.
func (c *Cache) Touch(site string, visitor, previous uint64, now time.Time, ev *Touch) (id uint64, limited bool) {
	id, _, limited = c.touch(site, visitor, previous, now, ev, nil, nil)
	return id, limited
}

// touch is Touch, filling prev (the session before the touch) and cur
// (after it) when they are not nil; hadPrev is false when the touch
// started a new session. Only tests ask for prev and cur.
func (c *Cache) touch(site string, visitor, previous uint64, now time.Time, ev *Touch, prev, cur *model.Session) (id uint64, hadPrev, limited bool) {
	if visitor == 0 {
		return 0, false, false
	}
	if previous == visitor {
		previous = 0
	}
	sid := c.sites.id(site)
	ns := now.UnixNano()
	si := c.shardIndex(visitor)
	sh := &c.shards[si]
	var old *sessionShard // the previous id's shard, if it differs
	oi := si
	if previous != 0 {
		if oi = c.shardIndex(previous); oi != si {
			old = &c.shards[oi]
		}
	}
	// Two shards are locked in index order, so concurrent fallbacks cannot
	// deadlock.
	lock := func() {
		if old != nil && oi < si {
			old.mu.Lock()
		}
		sh.mu.Lock()
		if old != nil && oi > si {
			old.mu.Lock()
		}
	}
	unlock := func() {
		sh.mu.Unlock()
		if old != nil {
			old.mu.Unlock()
		}
	}
	lock()
	for c.full(sh) || c.paths.over() || c.attrs.over() { // this touch may add a session, a path or an attribution
		per := c.per
		unlock()
		if c.paths.over() || c.attrs.over() {
			c.compact()
		} else {
			c.grow(per)
		}
		lock()
	}
	defer unlock()

	i := sh.find(sid, visitor)
	if i >= 0 && !c.live(&sh.slots[i], ns) {
		c.removeAt(sh, i)
		i = -1
	}
	if i < 0 && previous != 0 {
		src := sh
		if old != nil {
			src = old
		}
		if pi := src.find(sid, previous); pi >= 0 {
			if !c.live(&src.slots[pi], ns) {
				c.removeAt(src, pi)
			} else {
				// Re-key: the session moves, with its dirty mark and the
				// state last written, so Drain finds it where it now is.
				s, k := src.slots[pi], src.colds[pi]
				src.deleteAt(pi)
				s.visitor = visitor
				i = c.insert(sh, &s, &k, ns)
			}
		}
	}
	if i < 0 {
		if ev.isReport() {
			return 0, false, false
		}
		i = c.start(sh, sid, visitor, now, ev)
		if cur != nil {
			*cur = c.session(sh, i)
		}
		return sh.slots[i].id, false, false
	}
	s := &sh.slots[i]
	if ev.Limit > 0 {
		if sec := uint32(now.Unix()); s.rateSec != sec {
			s.rateSec, s.rateN = sec, 1
		} else if s.rateN >= ev.Limit {
			return s.id, true, true
		} else {
			s.rateN++
		}
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

// live reports whether s may continue at ns.
func (c *Cache) live(s *slot, ns int64) bool {
	return ns-s.lastSeen < c.idle && ns-s.start < c.maxLength
}

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
	if ev.isReport() {
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
