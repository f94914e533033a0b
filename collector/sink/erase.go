package sink

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/glimpse-analytics/glimpse/collector/eventlog"
	"github.com/glimpse-analytics/glimpse/internal/model"
)

// Erasure of a person's rows that are not stored yet (internal/storage/
// subject deletes those that are). Writer.Erase registers a tombstone, a
// model.Erasure: the subject's events accepted up to a time and every
// event of their sessions. From then on the reader skips matching records
// and every insert leaves matching rows out (the filter runs inside the
// insert, under a lock that Erase takes once, so no insert that started
// before the tombstone is still running when Erase returns). The session
// sources forget the sessions, under the lock each drain of sessions
// holds, so no row of them is written again. With a spool, the active
// segment is sealed and the erased records are blanked in every sealed
// segment (spool.Rewrite): their bytes leave the disk now, not when their
// segment is released. A ClickHouse delete issued after Erase then sees
// every row that will ever be stored.
//
// The tombstones themselves are eventlog.Tombstones: kept in the spool's
// directory with a spool (a restart neither replays nor keeps erased
// records: Open blanks them again), in memory without.

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

// Forgetter is a session source that can drop sessions for good
// (session.Cache): an erasure makes the writer's sources forget the
// erased sessions.
type Forgetter interface {
	Forget(site string, ids []uint64) int
}

// Erase makes the writer drop every event x matches that is not stored
// yet (queued, in the log, or in an insert that has not started), makes
// its session sources forget x's sessions, and with a spool blanks the
// erased records in its files. It returns once no insert or session
// write that could still store such a row is running, with the number of
// spooled records it blanked.
func (w *Writer) Erase(x model.Erasure) (int, error) {
	if x.Subject == "" && len(x.Sessions) == 0 {
		return 0, errors.New("an erasure without a subject or sessions")
	}
	// One at a time: the tombstone added below is the only unsettled one
	// until the seal settles it.
	w.eraseMu.Lock()
	defer w.eraseMu.Unlock()
	xs := &w.erasures
	if w.spool == nil {
		xs.Expire(0, false, time.Now())
	}
	// With a spool, the tombstone is kept until the segments that hold
	// its records are released; which those are is known once the queue
	// is in the log and the active segment sealed (below), and segments
	// may be released meanwhile.
	t := eventlog.Tombstone{Erasure: x, Seq: eventlog.Unsettled}
	if err := xs.Add(t); err != nil {
		return 0, fmt.Errorf("cannot record the erasure in the spool: %w", err)
	}
	xs.insertMu.Lock()
	//lint:ignore SA2001 an empty critical section: waiting for the running insert is the point
	xs.insertMu.Unlock()

	w.sessionsMu.Lock()
	// Rows drained before the erasure are stored first: stored after it,
	// they would outlive the deletion that follows.
	w.storeSessions(w.stopCtx)
	w.srcMu.Lock()
	srcs := w.sessionSrcs
	w.srcMu.Unlock()
	for _, src := range srcs {
		if f, ok := src.(Forgetter); ok {
			f.Forget(x.Site, x.Sessions)
		}
	}
	w.sessionsMu.Unlock()

	if w.spool == nil {
		return 0, nil
	}
	// Everything queued before now into the log, and the active segment
	// sealed: every erased record is in a segment Rewrite takes.
	if err := w.barrier(true); err != nil {
		return 0, err
	}
	if err := xs.Settle(w.spool.Active()); err != nil {
		return 0, fmt.Errorf("cannot record the erasure in the spool: %w", err)
	}
	return w.blankSpool()
}

// blankSpool blanks the erased records in every sealed segment and
// returns how many.
func (w *Writer) blankSpool() (int, error) {
	segs, active, _, done := w.spool.Segments()
	var in eventlog.Interner
	var e model.Event
	n := 0
	for _, seq := range segs {
		if seq == active && !done {
			continue
		}
		k, err := w.spool.Rewrite(seq, func(p []byte) bool { return w.erasures.MatchRecord(p, &e, &in) })
		n += k
		if err != nil {
			return n, fmt.Errorf("cannot blank erased records in the spool: %w", err)
		}
	}
	return n, nil
}

// Events calls fn for every event of site that match selects among those
// the writer holds and has not let go of, stored already or not, less
// erased ones: with the queue moved into the log first, every event
// accepted before the call. The event is valid during the call.
func (w *Writer) Events(site string, match func(*model.Event) bool, fn func(*model.Event)) error {
	if err := w.barrier(false); err != nil {
		return err
	}
	return w.log.Scan(func(e *model.Event) {
		if e.SiteID == site && match(e) && !w.erased(e) {
			fn(e)
		}
	})
}

// Hold runs fn while the writer inserts nothing: no events, no sessions,
// no session rollup rows (what comes meanwhile waits in the log and the
// session sources). It is for rebuilding rollups from the raw tables
// without a row landing in between.
func (w *Writer) Hold(fn func() error) error {
	w.erasures.insertMu.Lock()
	defer w.erasures.insertMu.Unlock()
	w.sessionsMu.Lock()
	defer w.sessionsMu.Unlock()
	// Rows drained before are stored first, so that a rollup rebuilt from
	// sessions in fn does not get them again afterwards.
	w.storeSessions(w.stopCtx)
	return fn()
}

// barrierReq asks the appender to move what is queued into the log and
// commit it, and with seal to seal the spool's active segment.
type barrierReq struct {
	seal bool
	done chan error
}

// barrier makes every event queued before the call part of the log,
// committed (readable); with seal, it also seals the active segment.
func (w *Writer) barrier(seal bool) error {
	req := barrierReq{seal: seal, done: make(chan error, 1)}
	select {
	case w.barriers <- req:
	case <-w.closing:
		return ErrClosed
	}
	return <-req.done
}
