package session

// The cache's public types (Touch, CacheConfig, Cache), its defaults and
// NewCache.

import (
	"math/bits"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/glimpse-analytics/glimpse/internal/model"
)

// Session defaults. A session ends after IdleTimeout without a touch,
// once it is MaxLength old or at 00:00 UTC, whichever is first; the next
// touch starts a new one.
const (
	DefaultIdleTimeout = 30 * time.Minute
	DefaultMaxLength   = 24 * time.Hour
	// DefaultMaxSessions bounds the cache. A session costs its 128-byte
	// slot and 72 bytes beside it (the state last written among them), in
	// tables 7/16 to 7/8 used, so 230 to 460 bytes; paths and attribution
	// are shared. The default is 22 to 44 MiB when full, inside a
	// collector's 150 MB budget. It lives here, beside the option it is
	// the default of, and glimpse serve's --max-sessions defaults to it,
	// so that a zero CacheConfig and serve hold the same number.
	DefaultMaxSessions = 100_000
)

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
	// NoStart makes a touch that finds no live session start none and
	// return id 0, as an engagement report without a session does: for a
	// caller whose visitor may start no more sessions.
	NoStart bool
	// MaxDurationSec caps the duration (Session.DurationSec) of a session
	// this touch starts, in seconds; 0: no cap. A touch that continues a
	// session does not change its cap.
	MaxDurationSec uint32
	// Limit is how many touches a session takes per second (of now's Unix
	// time); those beyond it change nothing and are reported as limited,
	// so that a caller drops them. 0: no limit.
	Limit uint32
}

// Report reports whether t is an engagement report: neither a page view
// nor interactive, with engaged time. A report never starts a session, so
// a caller tells a start that NoStart refused (id 0) from a report that
// found no session by it.
func (t *Touch) Report() bool {
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
