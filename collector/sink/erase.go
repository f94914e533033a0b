package sink

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/glimpse-analytics/glimpse/collector/spool"
	"github.com/glimpse-analytics/glimpse/internal/model"
)

// Erasure of a subject's rows that are not stored yet. Writer.Erase
// registers a tombstone (site, subject id, accepted before now); from then
// on the reader skips matching spooled records and every insert leaves
// matching rows out (the filter runs inside the insert, under a lock that
// Erase takes once, so no insert that started before the tombstone is
// still running when Erase returns). A ClickHouse mutation run after Erase
// then sees every row that will ever be stored.
//
// With a spool the tombstones are kept in its directory (file ERASURES),
// so that a restart does not replay erased records, and they are forgotten
// once the segments that could hold such records are deleted. Without a
// spool they are forgotten an hour after the erasure.

const erasuresFile = "ERASURES"

type tombstone struct {
	Site    string    `json:"site"`
	Subject string    `json:"subject"`
	Until   time.Time `json:"until"` // events accepted up to this time
	Seq     uint64    `json:"seq"`   // the active spool segment then
}

type erasures struct {
	mu   sync.RWMutex
	list []tombstone
	n    atomic.Int32
	path string // "" without a spool

	insertMu sync.Mutex     // held by each events insert while it filters and sends
	filtered []*model.Event // the insert's rows without erased ones (owned under insertMu)
}

func (x *erasures) load(dir string) error {
	x.path = filepath.Join(dir, erasuresFile)
	b, err := os.ReadFile(x.path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("cannot read spool erasures: %w", err)
	}
	if err := json.Unmarshal(b, &x.list); err != nil {
		return fmt.Errorf("spool erasures file %s is damaged (%v); erased subjects must not be replayed, so fix or remove it by hand", x.path, err)
	}
	x.n.Store(int32(len(x.list)))
	return nil
}

// save writes the list atomically; the caller holds mu.
func (x *erasures) save() error {
	if x.path == "" {
		return nil
	}
	if len(x.list) == 0 {
		if err := os.Remove(x.path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		return nil
	}
	b, err := json.Marshal(x.list)
	if err != nil {
		return err
	}
	tmp := x.path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	f.Close()
	if err := os.Rename(tmp, x.path); err != nil {
		return err
	}
	syncDir(filepath.Dir(x.path))
	return nil
}

func (x *erasures) match(e *model.Event) bool {
	if x.n.Load() == 0 {
		return false
	}
	x.mu.RLock()
	defer x.mu.RUnlock()
	for _, t := range x.list {
		if t.Site == e.SiteID && t.Subject == string(e.SubjectID) && !e.TS.After(t.Until) {
			return true
		}
	}
	return false
}

// expire forgets tombstones no longer needed: with a spool, when every
// segment that could hold their records is gone (oldest is the oldest
// segment left, 0 for none); without, an hour after the erasure.
func (x *erasures) expire(oldest uint64, spooled bool, now time.Time) {
	if x.n.Load() == 0 {
		return
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	n := len(x.list)
	x.list = slices.DeleteFunc(x.list, func(t tombstone) bool {
		if spooled {
			// Events queued at the erasure may land one segment later.
			return oldest == 0 || oldest > t.Seq+1
		}
		return now.Sub(t.Until) > time.Hour
	})
	if len(x.list) != n {
		x.n.Store(int32(len(x.list)))
		_ = x.save()
	}
}

func (w *Writer) erased(e *model.Event) bool { return w.erasures.match(e) }

// withoutErased returns rows minus erased ones, in a slice reused by the
// next insert (the caller holds insertMu).
func (w *Writer) withoutErased(rows []*model.Event) []*model.Event {
	if w.erasures.n.Load() == 0 {
		return rows
	}
	keep := w.erasures.filtered[:0]
	for _, e := range rows {
		if !w.erasures.match(e) {
			keep = append(keep, e)
		}
	}
	w.erasures.filtered = keep
	return keep
}

// Erase makes the writer drop every event of site with subject id subject
// that was accepted up to now and is not stored yet: queued, spooled, or
// in an insert that has not started. It returns once no insert that could
// still store such a row is running, so a ClickHouse delete issued after
// it is final.
func (w *Writer) Erase(site, subject string) error {
	if subject == "" {
		return errors.New("empty subject id")
	}
	x := &w.erasures
	if w.spool == nil {
		x.expire(0, false, time.Now())
	}
	t := tombstone{Site: site, Subject: subject, Until: time.Now()}
	if w.spool != nil {
		t.Seq = w.spool.Active()
	}
	x.mu.Lock()
	x.list = append(x.list, t)
	x.n.Store(int32(len(x.list)))
	err := x.save()
	x.mu.Unlock()
	if err != nil {
		return fmt.Errorf("cannot record the erasure in the spool: %w", err)
	}
	x.insertMu.Lock()
	//lint:ignore SA2001 an empty critical section: waiting for the running insert is the point
	x.insertMu.Unlock()
	return nil
}

// SubjectEvents calls fn for every spooled event (not yet deleted from
// the spool, possibly stored already) of site with subject id subject;
// without a spool there are none. The event is valid during the call.
func (w *Writer) SubjectEvents(site, subject string, fn func(*model.Event)) error {
	if w.spool == nil {
		return nil
	}
	var in interner
	var e model.Event
	return w.spool.Scan(func(p []byte) {
		e.Reset()
		if decodeRecord(p, &e, &in) == nil && e.SiteID == site && string(e.SubjectID) == subject && !w.erased(&e) {
			fn(&e)
		}
	})
}

// ReadSpool calls fn for every readable event in the spool at dir without
// taking it over (for glimpse subject export next to a running or stopped
// server), skipping events erased through its ERASURES file. A damaged
// record ends its segment, as in a replay.
func ReadSpool(dir string, fn func(*model.Event)) error {
	x := new(erasures)
	if err := x.load(dir); err != nil {
		return err
	}
	var in interner
	var e model.Event
	return spool.ReadDir(dir, func(p []byte) {
		e.Reset()
		if decodeRecord(p, &e, &in) == nil && !x.match(&e) {
			fn(&e)
		}
	})
}

// OfflineSpool is a spool directory that no running server holds, for
// glimpse subject export and erase from the command line: its events are
// read without taking it over, and an erasure is recorded as a tombstone
// that a server opening it later honours.
type OfflineSpool string

// SubjectEvents calls fn for every readable event in the spool of site
// with subject id subject, skipping erased ones.
func (dir OfflineSpool) SubjectEvents(site, subject string, fn func(*model.Event)) error {
	return ReadSpool(string(dir), func(e *model.Event) {
		if e.SiteID == site && string(e.SubjectID) == subject {
			fn(e)
		}
	})
}

// Erase records that site's events of subject accepted up to now must not
// be replayed (AddErasure).
func (dir OfflineSpool) Erase(site, subject string) error {
	return AddErasure(string(dir), site, subject)
}

// AddErasure records, in the spool at dir, that site's events of subject
// accepted up to now must not be replayed: for glimpse subject erase when
// no server holds the spool. It fails when one does (its API must erase).
func AddErasure(dir, site, subject string) error {
	lock, err := spool.LockDir(dir)
	if err != nil {
		return fmt.Errorf("spool %s is held by a running glimpse serve: erase through its API (POST /api/v1/subject/erase) so that spooled rows go too", dir)
	}
	defer lock.Close()
	last, err := spool.LastSegment(dir)
	if err != nil {
		return err
	}
	x := new(erasures)
	if err := x.load(dir); err != nil {
		return err
	}
	x.list = append(x.list, tombstone{Site: site, Subject: subject, Until: time.Now(), Seq: last})
	return x.save()
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
}
