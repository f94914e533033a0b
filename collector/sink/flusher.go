package sink

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/glimpse-analytics/glimpse/collector/eventlog"
	"github.com/glimpse-analytics/glimpse/collector/insert"
	"github.com/glimpse-analytics/glimpse/internal/model"
)

// flusher stores the blocks the reader hands over. A block of a batch
// that goes on, or a full batch, starts an INSERT that stays open for the
// next blocks (insert.Stream) until the reader has caught up, the INSERT
// is Interval old, or it holds maxStreamRows; a lone batch is one INSERT
// of a prepared batch. A failed INSERT is dropped and the reader rewinds
// to its first row; the rows are read again and checked against events
// (dedupe: the server may have stored blocks of the dropped INSERT)
// before they are retried, with backoff, until ClickHouse takes them or
// the writer stops. The log lets go of rows once they are stored.
type flusher struct {
	w     *Writer
	t     *eventsTable
	in    <-chan block
	free  chan<- []*model.Event
	acked chan<- struct{}

	s     *insert.Stream // the open INSERT, if any; the erasure guard is held while one is open
	from  eventlog.Pos   // where the rows of the open (or last) INSERT start
	end   eventlog.Pos   // and end
	whole bool           // end is the end of its sealed segment
	// start is when the open INSERT began (PrepareBatch returned), not
	// when its first row was read: a reader held up by a slow INSERT hands
	// over rows read more than Interval ago, and each INSERT would end at
	// its first block.
	start   time.Time
	gen     uint64 // blocks of an older generation were read before a rewind: dropped
	holding bool   // the open INSERT's last rows were a block of a batch the reader has yet to end
	stopped bool   // the writer gave up (Close's deadline): drop what comes
	retry   backoff
	bufs    insert.Buffers
	// unsettled are the query ids of INSERTs that failed and that the
	// server may still be running (settle).
	unsettled []string
	// On a cluster (Options.Cluster) a failed INSERT is sent again as
	// the same rows: sending says rows from from up to sent went to the
	// INSERT being made; redo, that the rows from from up to until are
	// being sent again, in one INSERT that ends there.
	sending bool
	sent    eventlog.Pos
	redo    bool
	until   eventlog.Pos
}

func newFlusher(w *Writer, in <-chan block, free chan<- []*model.Event, acked chan<- struct{}) *flusher {
	return &flusher{w: w, t: w.events, in: in, free: free, acked: acked, retry: newBackoff(w.opts.MaxBackoff)}
}

func (f *flusher) run() {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		var due <-chan time.Time
		if f.s != nil && !f.holding && !f.redo { // after a block, the reader ends the batch; a redo ends at until
			timer.Reset(time.Until(f.start.Add(f.w.opts.Interval)))
			due = timer.C
		}
		select {
		case b, ok := <-f.in:
			timer.Stop()
			if !ok {
				f.abort()
				return
			}
			if f.take(b) && b.kind == logDone {
				close(f.acked) // the log is stored to its end
			}
			clear(b.rows)
			if cap(b.rows) > 4*f.w.blockRows() {
				b.rows = nil
			}
			f.free <- b.rows[:0]
		case <-due:
			if err := f.commit(); err != nil {
				f.fail(err)
			}
		}
	}
}

// take stores b's rows or adds them to the open INSERT, and ends the
// INSERT when it is due. It gives the rows back to the log, and reports
// whether b is dealt with: false if it was dropped (read before a rewind,
// or the writer gave up) or failed.
func (f *flusher) take(b block) bool {
	rows := b.rows
	defer func() { f.w.log.Done(rows) }()
	if !f.stopped {
		select {
		case <-f.w.stop:
			f.stopped = true
			f.abort()
		default:
		}
	}
	if f.stopped || b.gen != f.gen {
		return false
	}
	if f.w.opts.Discard {
		f.end, f.whole = b.end, b.whole
		f.confirm()
		return true
	}
	if f.s == nil {
		f.from = b.from
	}
	var err error
	dedupe := b.replay
	if f.w.opts.Cluster {
		// Rows read again after a failure are sent again as they were
		// (redo); only rows an earlier process left are checked.
		dedupe = b.earlier
	}
	if dedupe && len(rows) > 0 {
		if err = f.settle(); err == nil {
			rows, err = f.dedupe(rows)
		}
	}
	if err == nil {
		err = f.store(b, rows)
	}
	f.holding = err == nil && b.kind == batchGoesOn && f.s != nil
	if err != nil {
		f.fail(err)
		return false
	}
	if f.retry.reset() && f.w.failing.Swap(false) {
		f.w.opts.Log.Info("ClickHouse takes inserts again; storing the backlog")
	}
	return true
}

func (f *flusher) store(b block, rows []*model.Event) error {
	if f.redo {
		return f.storeAgain(b, rows)
	}
	ends := b.kind == batchCaughtUp || b.kind == logDone
	if f.s == nil && ends && len(rows) > 0 {
		// A lone batch: one INSERT, of a prepared batch.
		f.sending, f.sent = true, b.end
		start := time.Now()
		if err := f.t.insertPrepared(f.w.stopCtx, rows); err != nil {
			return err
		}
		f.end, f.whole = b.end, b.whole
		f.stored(len(rows), time.Since(start))
		return nil
	}
	if len(rows) > 0 {
		if err := f.add(b, rows); err != nil {
			return err
		}
	}
	f.end, f.whole = b.end, b.whole
	switch {
	case f.s == nil:
		f.confirm() // no rows to store: what was passed is let go of
	case ends || f.s.Rows() >= f.w.maxStreamRows() || time.Since(f.start) >= f.w.opts.Interval:
		return f.commit()
	}
	return nil
}

// storeAgain sends the rows of a failed INSERT again, in one INSERT that
// ends where the failed one ended, so that each shard receives exactly
// the rows it was sent before and drops them if it stored them then.
func (f *flusher) storeAgain(b block, rows []*model.Event) error {
	if len(rows) > 0 {
		if err := f.add(b, rows); err != nil {
			return err
		}
	}
	f.end, f.whole = b.end, b.whole
	if b.end.Before(f.until) {
		return nil
	}
	f.redo = false
	if f.s == nil {
		f.confirm()
		return nil
	}
	return f.commit()
}

// add sends rows as a block of the open INSERT, or of a new one.
func (f *flusher) add(b block, rows []*model.Event) error {
	t := f.t
	if f.s == nil {
		t.guard.Lock() // until the INSERT ends: Erase waits for it
	}
	query, cols := t.build(rows) // leaves out erased rows, under the guard
	defer t.batch.Release()
	if f.s != nil && f.s.Query() != query {
		// Another column set: end this INSERT, still under the guard, and
		// go on in a new one.
		s := f.s
		f.s = nil
		if err := s.Commit(); err != nil {
			t.guard.Unlock()
			return err
		}
		f.stored(s.Rows(), s.Busy())
		f.from = b.from
	}
	if f.s == nil {
		// The INSERT stays open for up to Interval, then has InsertTimeout
		// to finish.
		s, err := insert.OpenStream(f.w.stopCtx, f.w.opts.Conn, f.w.opts.Interval+f.w.opts.InsertTimeout, t.name, query, &f.bufs)
		if err != nil {
			t.guard.Unlock()
			return err
		}
		f.s, f.start = s, time.Now()
	}
	f.sending, f.sent = true, b.end
	return f.s.Add(cols, len(rows))
}

// commit ends the open INSERT.
func (f *flusher) commit() error {
	s := f.s
	f.s = nil
	err := s.Commit()
	f.t.guard.Unlock()
	if err != nil {
		return err
	}
	f.stored(s.Rows(), s.Busy())
	return nil
}

// abort drops the open INSERT, if any.
func (f *flusher) abort() {
	if f.s != nil {
		f.unsettled = append(f.unsettled, f.s.QueryID())
		f.s.Abort()
		f.s = nil
		f.t.guard.Unlock()
	}
}

// stored counts an INSERT that succeeded and lets the log go of its rows.
func (f *flusher) stored(rows int, busy time.Duration) {
	f.sending = false
	f.t.count(rows, busy)
	f.confirm()
}

// confirm tells the log that everything up to f.end is stored.
func (f *flusher) confirm() { f.w.log.Stored(f.end, f.whole) }

// fail drops the open INSERT, waits, and rewinds the reader to the first
// row not stored.
func (f *flusher) fail(err error) {
	f.abort()
	if id := insert.QueryID(err); id != "" {
		f.unsettled = append(f.unsettled, id)
	}
	w := f.w
	f.t.errors.Inc()
	w.failing.Store(true)
	if n := f.retry.failures + 1; n == 1 || n%10 == 0 {
		w.opts.Log.Warn("insert failed; the rows are kept and retried", "table", f.t.name, "attempt", n, "err", err)
	}
	if w.opts.Cluster {
		// Nothing to settle: the shards drop the rows they have when
		// they are sent again.
		f.unsettled = f.unsettled[:0]
		if f.sending && (!f.redo || f.until.Before(f.sent)) {
			f.until = f.sent
		}
		f.redo = f.redo || f.sending
		f.sending = false
	}
	if !f.retry.wait(w.stop, nil) {
		f.stopped = true
		return
	}
	f.gen = w.rewinds.set(f.from, f.redo, f.until)
}

// settle waits until the server is done with every INSERT that failed
// (waitInserts).
func (f *flusher) settle() error {
	if err := f.w.waitInserts(f.unsettled); err != nil {
		return err
	}
	f.unsettled = f.unsettled[:0]
	return nil
}

// waitInserts waits until the server is done with the INSERTs ids names,
// for up to InsertTimeout: a failed INSERT's rows may still be stored
// after the client saw the failure (18.16 takes a dropped connection for
// the end of the data), and checking them against the table before that
// would send them twice. An error means it cannot tell yet. With no ids
// there is nothing to wait for (and has([], query_id) fails on 18.16).
func (w *Writer) waitInserts(ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	deadline := time.Now().Add(w.opts.InsertTimeout)
	for {
		ctx, cancel := context.WithTimeout(w.stopCtx, w.opts.InsertTimeout)
		n, err := insert.Running(ctx, w.opts.Conn, ids)
		cancel()
		switch {
		case err != nil:
			return err
		case n == 0:
			return nil
		case time.Now().After(deadline):
			return fmt.Errorf("%d failed INSERTs still running after %v", n, w.opts.InsertTimeout)
		}
		select {
		case <-time.After(50 * time.Millisecond):
		case <-w.stop:
			return errors.New("writer stopped")
		}
	}
}

// dedupeChunk bounds the event ids of one check query: 2,000 quoted UUIDs
// stay well inside ClickHouse's default max_query_size (256 KiB).
const dedupeChunk = 2000

// dedupe drops the rows whose event_id is already stored, giving them
// back to the log. The query is bounded by the rows' sites and time range,
// which the events sort key (site_id, toDate(ts), ...) and toYYYYMM(ts)
// partitions prune.
func (f *flusher) dedupe(rows []*model.Event) ([]*model.Event, error) {
	w := f.w
	found := make(map[uuid.UUID]struct{})
	for i := 0; i < len(rows); i += dedupeChunk {
		if err := w.storedIDs(rows[i:min(i+dedupeChunk, len(rows))], found); err != nil {
			return rows, err
		}
	}
	if len(found) == 0 {
		return rows, nil
	}
	keep := rows[:0:0]
	var dups []*model.Event
	for _, e := range rows {
		if _, dup := found[e.EventID]; dup {
			dups = append(dups, e)
			continue
		}
		keep = append(keep, e)
	}
	w.log.Done(dups)
	f.t.dups.Add(len(dups))
	return keep, nil
}

// storedIDs adds to found the ids of part that events holds.
func (w *Writer) storedIDs(part []*model.Event, found map[uuid.UUID]struct{}) error {
	sites := make([]string, 0, 1)
	ids := make([]string, 0, len(part))
	lo, hi := part[0].TS, part[0].TS
	for _, e := range part {
		if len(sites) == 0 || sites[len(sites)-1] != e.SiteID {
			sites = append(sites, e.SiteID)
		}
		ids = append(ids, e.EventID.String())
		lo, hi = minTime(lo, e.TS), maxTime(hi, e.TS)
	}
	ctx, cancel := context.WithTimeout(w.stopCtx, w.opts.InsertTimeout)
	defer cancel()
	res, err := w.opts.Conn.Query(ctx,
		"SELECT event_id FROM events WHERE has(?, site_id) AND ts >= toDateTime(?) AND ts <= toDateTime(?) AND has(?, toString(event_id))",
		sites, lo.Unix(), hi.Unix(), ids)
	if err != nil {
		return fmt.Errorf("cannot check spooled rows against events: %w", err)
	}
	defer res.Close()
	for res.Next() {
		var id uuid.UUID
		if err := res.Scan(&id); err != nil {
			return fmt.Errorf("cannot read stored event ids: %w", err)
		}
		found[id] = struct{}{}
	}
	if err := res.Err(); err != nil {
		return fmt.Errorf("cannot check spooled rows against events: %w", err)
	}
	return nil
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// backoff is the one retry policy of every table's inserts: wait 250 ms
// after the first failure, twice as long after each next one, at most
// max, until the insert succeeds or the writer stops.
type backoff struct {
	next, max time.Duration
	failures  int // consecutive failures
}

func newBackoff(max time.Duration) backoff { return backoff{next: 250 * time.Millisecond, max: max} }

// wait counts a failure and sleeps before the next try; it reports false
// when stop or done ends the wait first.
func (b *backoff) wait(stop <-chan struct{}, done <-chan struct{}) bool {
	b.failures++
	t := time.NewTimer(b.next)
	defer t.Stop()
	b.next = min(2*b.next, b.max)
	select {
	case <-t.C:
		return true
	case <-stop:
	case <-done:
	}
	return false
}

// reset starts over after a success; it reports whether there were
// failures.
func (b *backoff) reset() bool {
	failed := b.failures > 0
	b.failures, b.next = 0, 250*time.Millisecond
	return failed
}
