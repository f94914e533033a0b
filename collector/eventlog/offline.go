package eventlog

import (
	"fmt"
	"time"

	"github.com/glimpse-analytics/glimpse/collector/spool"
	"github.com/glimpse-analytics/glimpse/internal/model"
)

// ReadSpool calls fn for every readable event in the spool at dir without
// taking it over (for glimpse subject export next to a running or stopped
// server), skipping events erased through its ERASURES file. A damaged
// record ends its segment, as in a replay.
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
// read without taking it over, and an erasure is recorded as a tombstone
// that a server opening it later honours.
type Offline string

// SubjectEvents calls fn for every readable event in the spool of site
// with subject id subject, skipping erased ones.
func (dir Offline) SubjectEvents(site, subject string, fn func(*model.Event)) error {
	return ReadSpool(string(dir), func(e *model.Event) {
		if e.SiteID == site && string(e.SubjectID) == subject {
			fn(e)
		}
	})
}

// Erase records that site's events of subject accepted up to now must not
// be replayed (AddErasure).
func (dir Offline) Erase(site, subject string) error {
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
	x := new(Tombstones)
	if err := x.Load(dir); err != nil {
		return err
	}
	return x.Add(Tombstone{Site: site, Subject: subject, Until: time.Now(), Seq: last})
}
