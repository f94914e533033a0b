package visitor

import (
	"math/bits"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// Session defaults. A session ends after IdleTimeout without a touch or
// once it is MaxLength old, whichever is first; the next touch starts a
// new one.
const (
	DefaultIdleTimeout = 30 * time.Minute
	DefaultMaxLength   = 24 * time.Hour
	// DefaultMaxSessions bounds the cache. A session costs about 0.5 KiB
	// (its strings are interned and shared), so the default is about
	// 250 MiB when full.
	DefaultMaxSessions = 500_000
)

// Attrs is a session's attribution, taken from the touch that starts it.
// The caller fills it from the enriched request. Its strings may be views
// of buffers the caller reuses: the cache keeps interned copies.
type Attrs struct {
	Referrer       string
	Source         string
	Channel        string
	UTMSource      string
	UTMMedium      string
	UTMCampaign    string
	UTMTerm        string
	UTMContent     string
	Country        string
	Region         string
	City           string
	Browser        string
	OS             string
	Device         string
	Screen         string
	ConnectionType string
}

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
	Attrs *Attrs
}

func (t *Touch) isReport() bool {
	return !t.Pageview && !t.Interactive && t.EngagementMS > 0
}

// Session is one version of a session: the row written to the sessions
// table (a VersionedCollapsingMergeTree on Version). Its strings are
// immutable and owned by the cache, so a Session may be kept as long as
// needed (for example until its row is flushed).
type Session struct {
	// ID is random and never 0; a zero ID means "no session".
	ID uint64
	// VisitorID is the visitor id that started the session. It stays the
	// same when the session continues across midnight under a new id, so
	// every version of the session has the same key.
	VisitorID uint64
	Site      string
	Start     time.Time
	LastSeen  time.Time
	// Version starts at 1 and grows by one with every touch.
	Version uint32
	// Pageviews counts page views; Events counts page views and custom
	// events, but not engagement reports.
	Pageviews uint32
	Events    uint32
	// Bounce holds until the second interactive touch (page views count).
	Bounce bool
	// DurationSec is the time from the first to the last page view or
	// event, plus the engagement reported after that last one: reports
	// arrive when a page is left, so earlier reports are already inside
	// the first-to-last span and adding them again would count them twice.
	DurationSec uint32
	// EngagementMS is all engagement reported in the session.
	EngagementMS uint64
	// EntryPage is the path of the touch that started the session (or of
	// the first page view, if that touch had none); ExitPage is the path of
	// the last page view (until there is one, the starting touch's path).
	EntryPage string
	ExitPage  string
	// Attrs is the attribution of the touch that started the session; never
	// nil. It is shared by all versions of the session, and by other
	// sessions with the same attribution, and must not be modified.
	Attrs *Attrs
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
type Cache struct {
	idle      time.Duration
	maxLength time.Duration
	shards    []sessionShard
	shift     uint // visitor hash >> shift is the shard index
	evicted   atomic.Uint64
	dropped   atomic.Uint64 // ended sessions' last changes never drained
	drained   atomic.Int64  // when Drain last made progress (Unix ns)
	stall     time.Duration
	strs      internTable
}

type sessionKey struct {
	site    string
	visitor uint64
}

// entry is a cached session and what is needed to update it.
type entry struct {
	// dirty marks an entry changed since the last Drain, which is then in
	// its shard's dirty list; written is the state that Drain last handed
	// out, which the table holds with sign +1 (nil: none yet). written is
	// a pointer, allocated on the first Drain, to keep the entry small: a
	// touch's cost is mostly the cache and TLB misses of reaching its
	// entry among many, and small entries pack more to a page.
	// What a touch reads and writes comes first, to share cache lines.
	dirty       bool
	frozen      bool   // out of the map while dirty: no touch changes it again
	handedOver  bool   // a continuing copy counts its state as written: never dropped
	interactive uint32 // interactive touches so far
	tailMS      uint64 // engagement reported since lastEventAt
	s           Session
	lastEventAt time.Time // last touch that was not an engagement report
	written     *Session
}

type sessionShard struct {
	mu  sync.Mutex
	m   map[sessionKey]*entry
	max int
	// dirty lists the entries changed since the last Drain, including ones
	// that have since ended, been evicted or been replaced in m: Drain
	// writes their last state too. An entry in a shard's list is in that
	// shard's map or in none, so the shard's lock guards it.
	dirty  []*entry
	frozen int     // entries of dirty that are out of the map
	_      [8]byte // pad to 64 bytes so shards do not share cache lines
}

// maxShards bounds the lock shards; minPerShard keeps small caches in few
// shards so that MaxSessions stays close to exact.
const (
	maxShards   = 64
	minPerShard = 1024
)

// NewCache returns an empty session cache.
func NewCache(cfg CacheConfig) *Cache {
	c := &Cache{idle: cfg.IdleTimeout, maxLength: cfg.MaxLength, stall: cfg.DrainStall}
	if c.stall <= 0 {
		c.stall = DefaultDrainStall
	}
	c.drained.Store(time.Now().UnixNano())
	if c.idle <= 0 {
		c.idle = DefaultIdleTimeout
	}
	if c.maxLength <= 0 {
		c.maxLength = DefaultMaxLength
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
	c.shards = make([]sessionShard, n)
	c.shift = uint(64 - bits.TrailingZeros(uint(n)))
	per := (maxSessions + n - 1) / n
	for i := range c.shards {
		c.shards[i].m = make(map[sessionKey]*entry)
		c.shards[i].max = per
	}
	return c
}

func (c *Cache) shardIndex(visitor uint64) int {
	if c.shift == 64 {
		return 0
	}
	// Visitor ids are hashes already; the multiply spreads test ids too.
	return int((visitor * 0x9E3779B97F4A7C15) >> c.shift)
}

// Touch records an event of visitor on site at now and returns the
// session before (prev) and after (cur) it. hadPrev is false when the
// touch started a new session; otherwise the caller writes prev with sign
// -1 and cur with sign +1. A touch after the idle timeout or the maximum
// length starts a new session; the old one keeps its last written version.
//
// A zero visitor, or an engagement report that finds no live session
// (engagement arriving after the session ended), creates nothing: cur.ID
// is 0 and nothing is to be written.
//
// Touch does not allocate when it continues a session.
func (c *Cache) Touch(site string, visitor uint64, now time.Time, ev Touch) (prev, cur Session, hadPrev bool) {
	return c.TouchFallback(site, visitor, 0, now, ev)
}

// TouchFallback is Touch for the window after midnight, when a visitor has
// a current and a previous-day id (see Salts.VisitorID). If no live session
// is held under visitor but one is held under previous, that session
// continues and is re-keyed to visitor, so later touches find it directly.
// previous 0 means none.
func (c *Cache) TouchFallback(site string, visitor, previous uint64, now time.Time, ev Touch) (prev, cur Session, hadPrev bool) {
	_, hadPrev = c.touch(site, visitor, previous, now, &ev, &prev, &cur)
	return prev, cur, hadPrev
}

// TouchID is TouchFallback for a caller that needs only the session id
// (0 when there is no session); it copies no session out.
func (c *Cache) TouchID(site string, visitor, previous uint64, now time.Time, ev *Touch) uint64 {
	id, _ := c.touch(site, visitor, previous, now, ev, nil, nil)
	return id
}

// touch is TouchFallback, filling prev and cur when they are not nil.
func (c *Cache) touch(site string, visitor, previous uint64, now time.Time, ev *Touch, prev, cur *Session) (id uint64, hadPrev bool) {
	if visitor == 0 {
		return 0, false
	}
	if previous == visitor {
		previous = 0
	}
	k := sessionKey{site, visitor}
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
	if old != nil && oi < si {
		old.mu.Lock()
	}
	sh.mu.Lock()
	if old != nil && oi > si {
		old.mu.Lock()
	}
	defer func() {
		sh.mu.Unlock()
		if old != nil {
			old.mu.Unlock()
		}
	}()

	e := sh.m[k]
	if e != nil && !c.live(e, now) {
		c.removeLocked(sh, k, e)
		e = nil
	}
	if e == nil && previous != 0 {
		src := sh
		if old != nil {
			src = old
		}
		pk := sessionKey{site, previous}
		if pe := src.m[pk]; pe != nil {
			delete(src.m, pk)
			if !c.live(pe, now) {
				c.freezeLocked(src, pe)
			} else {
				e = pe
				if pe.dirty && old != nil {
					// pe stays in the other shard's dirty list, frozen, and
					// Drain writes its state from there; the session goes on
					// in a copy that counts that state as written.
					e = new(entry)
					*e = *pe
					w := pe.s
					e.written, e.dirty = &w, false
					pe.handedOver = true
					c.freezeLocked(old, pe)
				}
				k.site = e.s.Site
				c.insertLocked(sh, k, e, now)
			}
		}
	}
	if e == nil {
		if ev.isReport() {
			return 0, false
		}
		e = c.start(site, visitor, now, ev)
		k.site = e.s.Site // the key must not alias the caller's buffer either
		c.insertLocked(sh, k, e, now)
		markDirty(sh, e)
		if cur != nil {
			*cur = e.s
		}
		return e.s.ID, false
	}
	if prev != nil {
		*prev = e.s
	}
	c.update(e, now, ev)
	markDirty(sh, e)
	if cur != nil {
		*cur = e.s
	}
	return e.s.ID, true
}

func markDirty(sh *sessionShard, e *entry) {
	if !e.dirty {
		e.dirty = true
		sh.dirty = append(sh.dirty, e)
	}
}

// Drain hands every session changed since the last Drain to emit, once,
// with its state now (cur) and, when an earlier state was handed out, that
// state (prev): the table then cancels prev with sign -1 and holds cur with
// sign +1. Sessions that ended, were evicted or were replaced since their
// last change are included, so their last state is written too. This is
// how sessions reach storage: a busy session costs at most two rows per
// Drain, however many events it had in between. It returns the number of
// sessions emitted.
//
// emit runs with a lock held: it must be quick, must not keep the
// pointers, and must not call into the Cache. pause, if not nil, runs
// after each lock shard's sessions, with no lock held.
func (c *Cache) Drain(emit func(prev, cur *Session, hadPrev bool), pause func()) int {
	n := 0
	var none Session
	for i := range c.shards {
		sh := &c.shards[i]
		c.drained.Store(time.Now().UnixNano())
		sh.mu.Lock()
		for j, e := range sh.dirty {
			if e.written != nil {
				emit(e.written, &e.s, true)
			} else {
				emit(&none, &e.s, false)
				e.written = new(Session)
			}
			*e.written, e.dirty = e.s, false
			sh.dirty[j] = nil
		}
		n += len(sh.dirty)
		sh.frozen = 0
		if cap(sh.dirty) > 4*len(sh.dirty) && cap(sh.dirty) > 1024 {
			sh.dirty = nil // a burst's capacity is not kept
		} else {
			sh.dirty = sh.dirty[:0]
		}
		sh.mu.Unlock()
		if pause != nil {
			pause()
		}
	}
	return n
}

// live reports whether e may continue at now.
func (c *Cache) live(e *entry, now time.Time) bool {
	return now.Sub(e.s.LastSeen) < c.idle && now.Sub(e.s.Start) < c.maxLength
}

// start makes the entry of a session started by ev.
func (c *Cache) start(site string, visitor uint64, now time.Time, ev *Touch) *entry {
	e := &entry{lastEventAt: now}
	a := ev.Attrs
	if a == nil {
		a = &Attrs{}
	}
	attrs := c.strs.sharedAttrs(a)
	path := c.strs.get(ev.Path)
	id := rand.Uint64()
	for id == 0 {
		id = rand.Uint64()
	}
	e.s = Session{
		ID:           id,
		VisitorID:    visitor,
		Site:         c.strs.get(site),
		Start:        now,
		LastSeen:     now,
		Version:      1,
		Events:       1,
		Bounce:       true,
		EngagementMS: uint64(ev.EngagementMS),
		EntryPage:    path,
		ExitPage:     path,
		Attrs:        attrs,
	}
	if ev.Pageview {
		e.s.Pageviews = 1
	}
	if ev.Pageview || ev.Interactive {
		e.interactive = 1
	}
	return e
}

// update applies a touch to the live session e.
func (c *Cache) update(e *entry, now time.Time, ev *Touch) {
	s := &e.s
	if now.Before(s.LastSeen) {
		now = s.LastSeen // out of order: never move backwards
	}
	s.LastSeen = now
	s.Version++
	s.EngagementMS += uint64(ev.EngagementMS)
	if ev.isReport() {
		e.tailMS += uint64(ev.EngagementMS)
	} else {
		s.Events++
		e.lastEventAt = now
		e.tailMS = 0
		if ev.Pageview {
			s.Pageviews++
			if ev.Path != s.ExitPage {
				s.ExitPage = c.strs.get(ev.Path)
			}
			if s.EntryPage == "" {
				s.EntryPage = s.ExitPage
			}
		}
		if ev.Pageview || ev.Interactive {
			e.interactive++
		}
	}
	s.Bounce = e.interactive < 2
	ms := uint64(e.lastEventAt.Sub(s.Start).Milliseconds()) + e.tailMS
	s.DurationSec = uint32(min(ms/1000, 1<<32-1))
}

// insertLocked adds e under k, evicting when the shard is full.
func (c *Cache) insertLocked(sh *sessionShard, k sessionKey, e *entry, now time.Time) {
	if len(sh.m) >= sh.max {
		c.evictLocked(sh, now)
	}
	sh.m[k] = e
}

// evictSamples is how many sessions eviction looks at; map iteration
// starts at a random place, so this approximates least-recently-seen.
const evictSamples = 5

func (c *Cache) evictLocked(sh *sessionShard, now time.Time) {
	var victim sessionKey
	var oldest time.Time
	found, n := false, 0
	for k, e := range sh.m {
		if !c.live(e, now) {
			c.removeLocked(sh, k, e)
			return // expired: no live session lost
		}
		if !found || e.s.LastSeen.Before(oldest) {
			victim, oldest, found = k, e.s.LastSeen, true
		}
		if n++; n == evictSamples {
			break
		}
	}
	if found {
		c.removeLocked(sh, victim, sh.m[victim])
		c.evicted.Add(1)
	}
}

// Sweep removes sessions that have expired at now and returns how many.
func (c *Cache) Sweep(now time.Time) int {
	removed := 0
	for i := range c.shards {
		sh := &c.shards[i]
		sh.mu.Lock()
		for k, e := range sh.m {
			if !c.live(e, now) {
				c.removeLocked(sh, k, e)
				removed++
			}
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
		n += len(sh.m)
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

// removeLocked takes e, held under k, out of sh's map.
func (c *Cache) removeLocked(sh *sessionShard, k sessionKey, e *entry) {
	delete(sh.m, k)
	c.freezeLocked(sh, e)
}

// freezeLocked notes that e, out of every map, waits in sh's dirty list
// for its last change to be drained. When Drain has made no progress for
// DrainStall (storage down), the frozen entries of a shard are bounded by
// its share of MaxSessions: beyond it they are dropped from the list and
// counted, so that sessions ending meanwhile cannot grow memory without
// bound. An entry handed over to a continuing copy (midnight) is kept:
// the copy will cancel its state.
func (c *Cache) freezeLocked(sh *sessionShard, e *entry) {
	if !e.dirty || e.frozen {
		return
	}
	e.frozen = true
	if sh.frozen++; sh.frozen <= max(sh.max, minPerShard) || time.Since(time.Unix(0, c.drained.Load())) < c.stall {
		return
	}
	kept := sh.dirty[:0]
	for _, d := range sh.dirty {
		if d.frozen && !d.handedOver {
			d.dirty = false
			c.dropped.Add(1)
			continue
		}
		kept = append(kept, d)
	}
	clear(sh.dirty[len(kept):])
	sh.dirty, sh.frozen = kept, 0
	for _, d := range kept {
		if d.frozen {
			sh.frozen++
		}
	}
}
