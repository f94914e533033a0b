package sink

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/glimpse-analytics/glimpse/collector/eventlog"
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
// The tombstones themselves are eventlog.Tombstones: kept in the spool's
// directory with a spool, in memory without.

// erasures are the writer's tombstones and the lock that makes Erase wait
// for the insert under way.
type erasures struct {
	eventlog.Tombstones
	insertMu sync.Mutex     // held by each events insert while it filters and sends
	filtered []*model.Event // the insert's rows without erased ones (owned under insertMu)
}

func (w *Writer) erased(e *model.Event) bool { return w.erasures.Match(e) }

// withoutErased returns rows minus erased ones, in a slice reused by the
// next insert (the caller holds insertMu).
func (w *Writer) withoutErased(rows []*model.Event) []*model.Event {
	if w.erasures.Empty() {
		return rows
	}
	keep := w.erasures.filtered[:0]
	for _, e := range rows {
		if !w.erasures.Match(e) {
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
		x.Expire(0, false, time.Now())
	}
	t := eventlog.Tombstone{Site: site, Subject: subject, Until: time.Now()}
	if w.spool != nil {
		t.Seq = w.spool.Active()
	}
	if err := x.Add(t); err != nil {
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
	var in eventlog.Interner
	var e model.Event
	return w.spool.Scan(func(p []byte) {
		e.Reset()
		if eventlog.DecodeRecord(p, &e, &in) == nil && e.SiteID == site && string(e.SubjectID) == subject && !w.erased(&e) {
			fn(&e)
		}
	})
}
