package eventlog

import (
	"fmt"

	"github.com/glimpse-analytics/glimpse/collector/spool"
	"github.com/glimpse-analytics/glimpse/internal/model"
)

// ReadSpool calls fn for every readable event in the spool at dir without
// taking it over (for glimpse subject export next to a running or stopped
// server), skipping events erased through its ERASURES file (an erasure
// also blanks them; a crash may come in between). A damaged record ends
// its segment, as in a replay.
func ReadSpool(dir string, fn func(*model.Event)) error {
	x := new(Tombstones)
	if err := x.Load(dir); err != nil {
		return err
	}
	var in Interner
	var e model.Event
	return spool.ReadDir(dir, func(p []byte) {
		e.Reset()
		if DecodeRecord(p, &e, &in) == nil && !x.Match(&e) {
			fn(&e)
		}
	})
}

// Offline is a spool directory that no running server holds, for
// glimpse subject export and erase from the command line: its events are
// read without taking it over, and an erasure blanks the erased records
// in its files and is recorded as a tombstone that a server opening the
// spool later honours.
type Offline string

// Events calls fn for every event of site in the spool that match
// selects, less erased ones: those a server would store.
func (dir Offline) Events(site string, match func(*model.Event) bool, fn func(*model.Event)) error {
	return ReadSpool(string(dir), func(e *model.Event) {
		if e.SiteID == site && match(e) {
			fn(e)
		}
	})
}

// Erase records x in the spool, so that a server replaying it stores none
// of its events, and blanks them in the spool's files (spool.RewriteDir);
// it returns the records blanked. It fails while a server holds the spool
// (its API must erase).
func (dir Offline) Erase(x model.Erasure) (int, error) {
	d := string(dir)
	lock, err := spool.LockDir(d)
	if err != nil {
		return 0, fmt.Errorf("spool %s is held by a running glimpse serve: erase through its API (POST /api/v1/subject/erase) so that spooled rows go too", d)
	}
	defer lock.Close()
	last, err := spool.LastSegment(d)
	if err != nil {
		return 0, err
	}
	t := new(Tombstones)
	if err := t.Load(d); err != nil {
		return 0, err
	}
	if err := t.Add(Tombstone{Erasure: x, Seq: last}); err != nil {
		return 0, fmt.Errorf("cannot record the erasure in the spool: %w", err)
	}
	var in Interner
	var e model.Event
	n, err := spool.RewriteDir(d, func(p []byte) bool { return t.MatchRecord(p, &e, &in) })
	if err != nil {
		return n, fmt.Errorf("cannot blank erased records in the spool: %w", err)
	}
	return n, nil
}

// Hold runs fn. Nothing inserts from a spool that no server holds; a
// server writing to the same database from elsewhere is not held.
func (Offline) Hold(fn func() error) error { return fn() }
