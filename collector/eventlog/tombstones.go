package eventlog

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/glimpse-analytics/glimpse/internal/model"
)

// tombstonesFile is the file, in a spool directory, that keeps its
// tombstones across restarts.
const tombstonesFile = "ERASURES"

// Tombstone says that the events an erasure matches must never be
// stored.
type Tombstone struct {
	model.Erasure
	// Seq is the first spool segment that holds no record of an event
	// accepted before the erasure, or Unsettled until that is known (the
	// active segment is sealed: Settle).
	Seq uint64 `json:"seq"`
}

// Unsettled is the Seq of a tombstone whose records may still be
// appended to any segment: it does not expire.
const Unsettled = math.MaxUint64

// Tombstones are the erasures of subjects whose events may still be
// pending. With a spool they are kept in its directory (Load), so that a
// restart does not replay erased records, and forgotten once the segments
// that could hold such records are deleted; without one, an hour after
// the erasure (Expire). Safe for concurrent use.
type Tombstones struct {
	mu   sync.RWMutex
	list []Tombstone
	n    atomic.Int32
	path string // "" without a spool
}

// Load reads the tombstones kept in the spool at dir, and keeps them
// there from then on.
func (x *Tombstones) Load(dir string) error {
	x.path = filepath.Join(dir, tombstonesFile)
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
	for i := range x.list {
		x.list[i].SetSessions(x.list[i].Sessions)
	}
	x.n.Store(int32(len(x.list)))
	return nil
}

// save writes the list atomically; the caller holds mu.
func (x *Tombstones) save() error {
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

// Match reports whether e is erased.
func (x *Tombstones) Match(e *model.Event) bool {
	if x.n.Load() == 0 {
		return false
	}
	x.mu.RLock()
	defer x.mu.RUnlock()
	for i := range x.list {
		if x.list[i].Match(e) {
			return true
		}
	}
	return false
}

// MatchRecord reports whether the spool record p holds an erased event.
func (x *Tombstones) MatchRecord(p []byte, e *model.Event, in *Interner) bool {
	if x.Empty() {
		return false
	}
	e.Reset()
	return DecodeRecord(p, e, in) == nil && x.Match(e)
}

// Expire forgets tombstones no longer needed: with a spool, when every
// segment that could hold their records is gone (oldest is the oldest
// segment left, 0 for none); without, an hour after the erasure.
func (x *Tombstones) Expire(oldest uint64, spooled bool, now time.Time) {
	if x.n.Load() == 0 {
		return
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	n := len(x.list)
	x.list = slices.DeleteFunc(x.list, func(t Tombstone) bool {
		if spooled {
			if t.Seq == Unsettled {
				return false
			}
			// Events touched before the erasure and queued after it
			// (in its sessions) may land one segment later.
			return oldest == 0 || oldest > t.Seq+1
		}
		return now.Sub(t.Until) > time.Hour
	})
	if len(x.list) != n {
		x.n.Store(int32(len(x.list)))
		_ = x.save()
	}
}

// Add records t and saves the list where Load read it.
func (x *Tombstones) Add(t Tombstone) error {
	t.SetSessions(t.Sessions)
	x.mu.Lock()
	defer x.mu.Unlock()
	x.list = append(x.list, t)
	x.n.Store(int32(len(x.list)))
	return x.save()
}

// Settle sets the Seq of the unsettled tombstones to seq, the first
// segment with no record of an event accepted before them.
func (x *Tombstones) Settle(seq uint64) error {
	x.mu.Lock()
	defer x.mu.Unlock()
	n := 0
	for i := range x.list {
		if x.list[i].Seq == Unsettled {
			x.list[i].Seq = seq
			n++
		}
	}
	if n == 0 {
		return nil
	}
	return x.save()
}

// Empty reports whether there are no tombstones, without a lock.
func (x *Tombstones) Empty() bool { return x.n.Load() == 0 }

// syncDir makes a rename in dir durable.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
}
