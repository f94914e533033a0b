// Package identity names visitors and subjects without storing who they
// are: a visitor id is a keyed hash under a salt that changes every day and
// is destroyed soon after (Salts, VisitorID); a consented user id is
// stored only as its HMAC under the site's key (SubjectKey); and
// collectors that share salts keep them in ClickHouse for 48 hours at
// most, sealed under a key only they hold (ClickHouseStore, SaltKey).
//
// Salts: every UTC day has its own random salt. At 00:00 UTC the day's
// salt is replaced by the next day's and its bytes are overwritten with
// zeros: sessions end at midnight too (collector/session), so nothing
// needs yesterday's salt. After that, nobody — including Glimpse — can
// compute yesterday's visitor ids again (in shared mode, once the Store
// has deleted the day too; see Store).
package identity

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// SaltSize is the size of a generated salt. The first 16 bytes of a salt
// are the SipHash key.
const SaltSize = 16

// Store lets several collector instances share their daily salts, so one
// person gets the same visitor id whichever instance answers. Without a
// Store each instance keeps its own salts in memory only, which is the
// default and the most private mode.
//
// The implementation is ClickHouseStore: a table of sealed candidates
// (0009_sealed_salts.sql), where LoadOrStore inserts the sealed candidate
// and then returns the salt of the earliest row of the day, and a
// periodic job (PruneStore) deletes a day 48 hours after it began; the
// shape also runs on ClickHouse 18.16, which has no TTL. "Earliest insert
// wins" is racy among instances inserting at the same moment, and on a
// cluster among instances reading through replicas that have not yet
// fetched each other's candidates; Salts.Run fetches each day's salt
// about a day before it is needed and reads the winner again (Load) a
// minute after start and then every hour, so every instance holds the
// settled winner long before midnight.
type Store struct {
	// LoadOrStore returns the salt stored for the UTC day starting at day,
	// storing candidate first if the day has none. Every caller must get the
	// same bytes for the same day. Salts shorter than 16 bytes are rejected.
	// The Store may keep candidate; Salts copies the result.
	LoadOrStore func(ctx context.Context, day time.Time, candidate []byte) ([]byte, error)
	// Load, if set, returns the salt that wins the UTC day starting at day
	// now, without storing anything (nil if the day has none). Salts.Run
	// reads it again for today and tomorrow after a minute and then every
	// hour, and takes it if it changed: a collector that read through a
	// replica lacking another's earlier candidate, and so took its own,
	// comes round to the winner once the replicas agree.
	Load func(ctx context.Context, day time.Time) ([]byte, error)
}

// SaltsConfig configures NewSalts. The zero value is valid.
type SaltsConfig struct {
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Store, if set, shares salts between instances. Default nil: salts are
	// random and in memory only.
	Store *Store
	// Logger receives Store errors from Run. Default: discard.
	Logger *slog.Logger
}

// Salts holds the current day's salt. It is safe for concurrent use.
//
// Rotation happens lazily in VisitorID, so a Salts works without a
// background goroutine; Run additionally destroys the day's salt on time
// when no requests arrive and, with a Store, fetches salts ahead.
type Salts struct {
	now   func() time.Time
	store *Store
	log   *slog.Logger

	mu   sync.RWMutex
	cur  daySalt
	next daySalt // with a Store: tomorrow's salt, fetched ahead

	// hot is what VisitorID reads: the key of cur, published by every
	// change under mu. Readers take no lock (a read lock's counter is a
	// cache line written by every request on every core).
	hot hotKeys
}

// hotKeys is a seqlock over the key in use: a writer (holding Salts.mu)
// makes seq odd, stores, and makes it even again; a reader retries when
// seq was odd or changed while it read. The fields are overwritten in
// place, so a destroyed key leaves no copy behind.
type hotKeys struct {
	seq    atomic.Uint64
	day    atomic.Int64 // cur.day
	k0, k1 atomic.Uint64
}

// publishLocked copies the key of cur to hot.
func (s *Salts) publishLocked() {
	h := &s.hot
	h.seq.Add(1)
	h.day.Store(s.cur.day)
	h.k0.Store(s.cur.k0)
	h.k1.Store(s.cur.k1)
	h.seq.Add(1)
}

// daySalt is one day's salt and the SipHash key derived from it. The zero
// value is "none".
type daySalt struct {
	day    int64 // UTC days since the Unix epoch
	salt   []byte
	k0, k1 uint64
}

func newDaySalt(d int64, salt []byte) daySalt {
	return daySalt{
		day:  d,
		salt: salt,
		k0:   binary.LittleEndian.Uint64(salt[0:8]),
		k1:   binary.LittleEndian.Uint64(salt[8:16]),
	}
}

func (d *daySalt) ok() bool { return d.salt != nil }

// destroy overwrites the salt and the key derived from it.
func (d *daySalt) destroy() {
	clear(d.salt)
	*d = daySalt{}
}

func randomSalt() []byte {
	b := make([]byte, SaltSize)
	rand.Read(b) // never fails; see crypto/rand.Read
	return b
}

// dayOf returns the UTC day of t as days since the Unix epoch.
func dayOf(t time.Time) int64 {
	s := t.Unix()
	d := s / 86400
	if s%86400 < 0 {
		d--
	}
	return d
}

// dayStart returns 00:00 UTC of day d.
func dayStart(d int64) time.Time {
	return time.Unix(d*86400, 0).UTC()
}

// NewSalts returns Salts for the current day. Without a Store it cannot
// fail. With one, it loads today's salt from the Store (using ctx) and
// fails if it cannot, as an instance with a private salt would split every
// visitor in two.
func NewSalts(ctx context.Context, cfg SaltsConfig) (*Salts, error) {
	s := &Salts{
		now:   cfg.Now,
		store: cfg.Store,
		log:   cfg.Logger,
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.store != nil && s.store.LoadOrStore == nil {
		return nil, errors.New("cannot share salts: Store.LoadOrStore is nil")
	}
	today := dayOf(s.now())
	if s.store != nil {
		salt, err := s.load(ctx, today)
		if err != nil {
			return nil, err
		}
		s.cur = newDaySalt(today, salt)
	} else {
		s.cur = newDaySalt(today, randomSalt())
	}
	s.publishLocked()
	return s, nil
}

// load gets day d's salt from the Store. The candidate and the returned
// slice belong to the Store and are never modified; Salts keeps, and later
// destroys, its own copy.
func (s *Salts) load(ctx context.Context, d int64) ([]byte, error) {
	date := dayStart(d).Format(time.DateOnly)
	salt, err := s.store.LoadOrStore(ctx, dayStart(d), randomSalt())
	if err != nil {
		return nil, fmt.Errorf("cannot load the shared salt for %s: %w", date, err)
	}
	if len(salt) < 16 {
		return nil, fmt.Errorf("cannot use the shared salt for %s: it has %d bytes, want at least 16", date, len(salt))
	}
	return bytes.Clone(salt), nil
}

// Rotate brings the salts up to date with the clock: at midnight UTC it
// destroys the day's salt and takes the next day's. VisitorID does the
// same lazily; Rotate is for callers that want the old salt gone on time
// even when no requests arrive (Run calls it).
func (s *Salts) Rotate() {
	now := s.now()
	s.mu.Lock()
	s.rotateLocked(now)
	s.mu.Unlock()
}

// stale reports whether rotateLocked(now) would change anything.
func (s *Salts) stale(now time.Time) bool {
	return dayOf(now) > s.cur.day
}

func (s *Salts) rotateLocked(now time.Time) {
	if d := dayOf(now); d > s.cur.day {
		s.cur.destroy()
		if s.next.ok() && s.next.day == d {
			s.cur = s.next
			s.next = daySalt{}
		} else {
			if s.next.ok() && s.next.day < d {
				s.next.destroy()
			}
			if s.store != nil {
				// Run could not fetch today's shared salt in the whole
				// previous day; a private salt keeps ingest going.
				s.log.Error("using a private salt for today: the shared salt was not fetched in time", "day", dayStart(d).Format(time.DateOnly))
			}
			s.cur = newDaySalt(d, randomSalt())
		}
	}
	s.publishLocked()
}

// keys returns the SipHash key to use at now, rotating first if needed.
func (s *Salts) keys(now time.Time) (k0, k1 uint64) {
	h := &s.hot
	for range 4 {
		seq := h.seq.Load()
		if seq&1 != 0 {
			continue // a writer is storing
		}
		day := h.day.Load()
		k0, k1 = h.k0.Load(), h.k1.Load()
		if h.seq.Load() != seq {
			continue
		}
		if dayOf(now) > day {
			break // stale: rotate under the lock
		}
		return k0, k1
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stale(now) {
		s.rotateLocked(now)
	}
	return s.cur.k0, s.cur.k1
}

// Run keeps the salts up to date until ctx is done: it rotates at
// midnight, destroying the day's salt, and, with a Store, fetches
// tomorrow's shared salt ahead of time (retrying every
// minute on errors). It sleeps on runtime timers, so tests drive it with
// testing/synctest rather than an injected clock. Run returns ctx.Err().
func (s *Salts) Run(ctx context.Context) error {
	for first := true; ; first = false {
		s.Rotate()
		wait := s.untilNextChange()
		if s.store != nil {
			err := s.prefetch(ctx)
			if err == nil && !first {
				err = s.settle(ctx)
			}
			if err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				s.log.Warn("cannot fetch the shared salts; retrying in a minute", "err", err)
				wait = min(wait, time.Minute)
			}
			if first && s.store.Load != nil {
				wait = min(wait, time.Minute) // settle soon after start
			}
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// untilNextChange returns the time until the next midnight, but at most
// an hour so that a clock step is noticed.
func (s *Salts) untilNextChange() time.Duration {
	now := s.now()
	s.mu.RLock()
	next := dayStart(s.cur.day + 1)
	s.mu.RUnlock()
	return min(max(next.Sub(now), 0)+time.Millisecond, time.Hour)
}

// prefetch loads tomorrow's shared salt unless it is already here.
// Prefetch fetches tomorrow's shared salt now, if the Salts has a Store and
// has not fetched it yet. Run does this on its own; Prefetch is for callers
// that need the salt settled at a known moment (tests, start-up).
func (s *Salts) Prefetch(ctx context.Context) error {
	if s.store == nil {
		return nil
	}
	return s.prefetch(ctx)
}

func (s *Salts) prefetch(ctx context.Context) error {
	s.mu.RLock()
	tomorrow := s.cur.day + 1
	have := s.next.ok() && s.next.day == tomorrow
	s.mu.RUnlock()
	if have {
		return nil
	}
	salt, err := s.load(ctx, tomorrow)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur.day+1 != tomorrow || (s.next.ok() && s.next.day == tomorrow) {
		clear(salt) // the day moved on, or another Run got there first
		return nil
	}
	s.next.destroy()
	s.next = newDaySalt(tomorrow, salt)
	return nil
}

// settle reads today's and tomorrow's winning salts again (Store.Load)
// and takes those that changed, destroying what they replace.
func (s *Salts) settle(ctx context.Context) error {
	if s.store.Load == nil {
		return nil
	}
	s.mu.RLock()
	today := s.cur.day
	s.mu.RUnlock()
	for _, d := range []int64{today, today + 1} {
		salt, err := s.store.Load(ctx, dayStart(d))
		if err != nil {
			return fmt.Errorf("cannot read the shared salt for %s: %w", dayStart(d).Format(time.DateOnly), err)
		}
		if len(salt) < 16 {
			continue // none stored (yet), or unusable: keep what we have
		}
		s.mu.Lock()
		held := &s.next
		if s.cur.day == d {
			held = &s.cur
		}
		if held.ok() && held.day == d && !bytes.Equal(held.salt, salt) {
			held.destroy()
			*held = newDaySalt(d, bytes.Clone(salt))
			if held == &s.cur {
				s.publishLocked()
			}
			s.log.Info("took the shared salt another collector stored first", "day", dayStart(d).Format(time.DateOnly))
		}
		s.mu.Unlock()
	}
	return nil
}

// current returns the current salt itself (not a copy), for tests.
func (s *Salts) current() []byte {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.cur.salt
}
