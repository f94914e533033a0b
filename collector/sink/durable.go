package sink

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/glimpse-analytics/glimpse/collector/insert"
	"github.com/glimpse-analytics/glimpse/internal/model"
)

// The events pipeline with a spool (spool.go): the appender goroutine
// moves events from the queue into the active segment and fsyncs it; the
// reader goroutine reads committed records back in order and collects
// batches; the flusher goroutine inserts them, retrying until ClickHouse
// takes them, and deletes the segments they came from.

// spoolBatch is a batch read from the spool and where it ends.
type spoolBatch struct {
	rows   []*model.Event
	from   pos  // where its first record starts: the previous batch's end
	end    pos  // just past the batch's last record
	whole  bool // end is the end of its sealed segment
	replay bool // some rows may be stored already: an earlier process left them, or a failed insert is retried
	more   bool // handed off full, or as a block: the reader may have more at once
	// block: one block of a batch still being read (blockRows); the
	// reader hands over the rest, and ends the batch, itself.
	block bool
	last  bool // the spool is closed and read to its end
	gen   uint64
	start time.Time // when its batch's first row was read
}

// before reports whether p comes before q in the spool.
func (p pos) before(q pos) bool { return p.seq < q.seq || (p.seq == q.seq && p.off < q.off) }

func (w *Writer) appendLoop(a *appender) {
	defer w.wg.Done()
	s := w.spool
	tick := time.NewTicker(s.every)
	defer tick.Stop()
	var lastErr atomic.Int64
	uncommitted := 0 // records added since the last sync request
	report := func(err error) {
		if last := lastErr.Load(); err != nil && time.Since(time.Unix(0, last)) > 10*time.Second &&
			lastErr.CompareAndSwap(last, time.Now().UnixNano()) {
			s.log.Error("spool write failed; retrying", "err", err)
		}
	}
	a.signal = make(chan struct{}, 1)
	syncStop, syncDone := make(chan struct{}), make(chan struct{})
	go func() { defer close(syncDone); a.syncLoop(syncStop, report) }()
	stopSync := sync.OnceFunc(func() { close(syncStop); <-syncDone })
	defer stopSync()
	var gather gatherer
	// take writes e to the spool and hands it to the reader's tail.
	take := func(e *model.Event) {
		start, end := a.add(e)
		s.pushTail(e, a.seq, start, end)
		if uncommitted++; uncommitted >= s.tailCap/4 {
			// Sync early under load, so the reader can take the tail
			// before it outgrows its cap.
			report(a.requestSync())
			uncommitted = 0
		} else if len(a.buf) >= appendBufLimit {
			report(a.write())
		}
		if a.off+int64(len(a.buf)) >= s.segSize {
			// A sealed segment is read to its end, so it is synced
			// here, in line, before the next one starts.
			if err := a.commit(); err != nil {
				report(err)
				return
			}
			if err := a.create(a.seq + 1); err != nil {
				report(err)
				return
			}
		}
	}
	for {
		select {
		case e, ok := <-w.events.queue:
			if !ok {
				for err := a.commit(); err != nil; err = a.commit() {
					report(err)
					select {
					case <-w.stop:
						s.log.Error("spool: final commit failed", "err", err)
						goto out
					case <-time.After(100 * time.Millisecond):
					}
				}
			out:
				stopSync()
				a.close()
				s.mu.Lock()
				s.done = true
				s.mu.Unlock()
				s.wake()
				return
			}
			take(e)
			gather.wait()
			takeQueued(w.events.queue, 1024, take)
		case <-tick.C:
			report(a.requestSync())
			uncommitted = 0
		}
	}
}

// gatherer lets a queue's consumer take events in batches under load. A
// consumer blocked on an empty queue is woken by every event sent to it, a
// goroutine switch that costs more than handling the event; when events
// arrive closer together than gatherGap, the consumer waits gatherWait
// after the first one instead, and takes what has queued meanwhile in one
// go. Under light load nothing waits.
type gatherer struct{ last time.Time }

const (
	gatherGap  = 200 * time.Microsecond // 5,000 events a second
	gatherWait = 500 * time.Microsecond
)

// takeQueued calls take for what q holds, at most n, without a select per
// element (a select on the queue and a ticker costs more than writing a
// record) and without blocking. A closed q is left to the caller's select.
func takeQueued[T any](q <-chan T, n int, take func(T)) {
	for range n {
		select {
		case v, ok := <-q:
			if !ok {
				return
			}
			take(v)
		default:
			return
		}
	}
}

// wait is called when an event is taken from a queue that was found empty.
func (g *gatherer) wait() {
	if g.busy(time.Now()) {
		time.Sleep(gatherWait)
	}
}

// busy notes a wake-up at now and reports whether it came within
// gatherGap of the last one.
func (g *gatherer) busy(now time.Time) bool {
	busy := now.Sub(g.last) < gatherGap
	g.last = now
	return busy
}

// readLoop reads the spool in order and hands batches to flushLoop. When an
// insert fails, flushLoop asks it to rewind (spool.rewind) to where the
// failed INSERT's rows start, and it reads them again, from disk. Once the
// spool is closed and read to its end it hands over a last batch and waits
// until flushLoop has stored it (acked) or asks for a rewind.
func (w *Writer) readLoop(full chan<- spoolBatch, free <-chan []*model.Event, acked <-chan struct{}) {
	defer close(full)
	s := w.spool
	var (
		cur         *segReader
		next        uint64 // first segment to look for when cur is nil
		skip        pos    // where to start in segment skip.seq (a rewind)
		in          interner
		rows        = <-free
		b           spoolBatch
		unconfirmed bool // b.end moved without rows: segments to delete
		gen         uint64
		read        pos  // the furthest record read: rows before it may be stored
		lastSent    bool // the last batch is with flushLoop
		blockRows   int  // rows of the batch being read handed over already, as blocks
	)
	defer func() { cur.close() }()
	defer s.dropTail()
	release := func() {
		for _, e := range rows {
			w.Release(e)
		}
		clear(rows)
		rows = rows[:0]
	}
	// send hands rows to flushLoop: handoff ends the batch being read,
	// full (more) or not; handBlock hands over its rows so far and goes on
	// with it.
	send := func(more, block bool) {
		b.rows, b.more, b.block, b.gen = rows, more, block, gen
		full <- b
		rows = <-free
		next := spoolBatch{from: b.end, end: b.end, whole: b.whole}
		if block {
			blockRows += len(b.rows)
			next.start = b.start
		} else {
			blockRows = 0
		}
		b = next
		unconfirmed = false
	}
	handoff := func(more bool) { send(more, false) }
	handBlock := func() { send(true, true) }
	timer := time.NewTimer(w.opts.Interval)
	defer timer.Stop()
	var lastIOErr time.Time
	for {
		select {
		case <-w.stop:
			release()
			return
		default:
		}
		s.mu.Lock()
		active, committed, done := s.active, s.committed, s.done
		if s.rewindGen != gen {
			gen = s.rewindGen
			if cur != nil {
				cur.close()
				cur = nil
			}
			release()
			next, skip = s.rewindTo.seq, s.rewindTo
			b = spoolBatch{from: skip, end: skip}
			unconfirmed, lastSent, blockRows = false, false, 0
		}
		if cur == nil {
			for _, seq := range s.segs {
				if seq >= next {
					next = seq
					break
				}
			}
			if len(s.segs) == 0 || s.segs[len(s.segs)-1] < next {
				next = 0 // nothing to read
			}
		}
		s.mu.Unlock()
		if cur == nil && next != 0 {
			r, err := openSegReader(s.path(next), next)
			if err != nil {
				if errors.Is(err, os.ErrNotExist) {
					next++
					continue
				}
				if time.Since(lastIOErr) > 10*time.Second {
					lastIOErr = time.Now()
					s.log.Error("cannot open spool segment", "segment", segName(next), "err", err)
				}
				time.Sleep(100 * time.Millisecond)
				continue
			}
			if skip.seq == r.seq {
				r.skipTo(skip.off)
			}
			skip = pos{}
			cur = r
		}
		if cur == nil {
			if done {
				if !lastSent {
					b.last = true
					handoff(false)
					lastSent = true
				}
				select {
				case <-acked:
					release()
					return
				case <-s.notify: // a rewind, maybe
				case <-w.stop:
				}
				continue
			}
			w.wait(&timer, time.Second)
			continue
		}
		sealed := cur.seq < active || done
		limit := committed
		if sealed {
			limit = 1 << 62
		}
		var e *model.Event
		var err error
		if te, end := s.takeTail(pos{cur.seq, cur.off}, limit); te != nil {
			e = te // written by this process and committed: no need to read it back
			cur.skipTo(end)
			s.fromMemory.Inc()
		} else {
			var p []byte
			p, err = cur.next(limit)
			if err == nil && p == nil && sealed && len(cur.buf) > 0 {
				err = errCorrupt // a torn record at the end of the file
			}
			if err == nil && p != nil {
				e = w.NewEvent()
				if derr := decodeRecord(p, e, &in); derr != nil {
					w.Release(e)
					e, err = nil, errCorrupt
				} else {
					s.fromDisk.Inc()
				}
			}
		}
		switch {
		case errors.Is(err, errCorrupt):
			w.corrupt(cur, sealed, committed)
			if sealed {
				b.end, b.whole, unconfirmed = pos{cur.seq, cur.off}, true, true
				next = cur.seq + 1
				cur.close()
				cur = nil
			} else {
				cur.buf, cur.off = nil, committed // records after the damage cannot be framed
			}
		case err != nil:
			if time.Since(lastIOErr) > 10*time.Second {
				lastIOErr = time.Now()
				s.log.Error("cannot read spool segment", "segment", segName(cur.seq), "err", err)
			}
			time.Sleep(100 * time.Millisecond)
		case e != nil:
			at := pos{cur.seq, cur.off}
			if cur.seq <= s.startupLast {
				b.replay = true
				s.replayed.Inc()
			} else if !read.before(at) {
				b.replay = true // read before a rewind
			} else {
				read = at
			}
			if w.erased(e) {
				w.Release(e)
			} else {
				if len(rows) == 0 && blockRows == 0 {
					b.start = time.Now()
				}
				rows = append(rows, e)
			}
			b.end, b.whole, unconfirmed = at, false, true
			switch {
			case blockRows+len(rows) >= w.opts.BatchSize:
				handoff(true)
			case len(rows) >= w.blockRows():
				handBlock()
			}
		case sealed: // the end of a sealed segment
			b.end, b.whole, unconfirmed = pos{cur.seq, cur.off}, true, true
			next = cur.seq + 1
			cur.close()
			cur = nil
		default: // caught up with the active segment
			reading := len(rows) > 0 || blockRows > 0 // a batch was begun
			wait := w.opts.Interval - time.Since(b.start)
			if (reading && wait <= 0) || (!reading && unconfirmed) {
				handoff(false)
				continue
			}
			if !reading {
				wait = w.opts.Interval
			}
			w.wait(&timer, wait)
		}
	}
}

// wait blocks until the spool has news, d passes or the writer stops.
func (w *Writer) wait(timer **time.Timer, d time.Duration) {
	t := *timer
	t.Reset(d)
	select {
	case <-w.spool.notify:
	case <-t.C:
		return
	case <-w.stop:
	}
	if !t.Stop() {
		select {
		case <-t.C:
		default:
		}
	}
}

// corrupt counts and logs the unreadable rest of a segment.
func (w *Writer) corrupt(r *segReader, sealed bool, committed int64) {
	s := w.spool
	end := committed
	if sealed {
		if info, err := r.f.Stat(); err == nil {
			end = info.Size()
		}
	}
	lost := max(end-r.off, 0)
	s.corruptBytes.Add(int(lost))
	s.corruptSegs.Inc()
	s.log.Error("spool segment damaged: the good prefix is kept, the rest is lost (a torn tail is what a crash leaves of the records written in its last fsync interval)",
		"segment", segName(r.seq), "good_bytes", r.off, "lost_bytes", lost)
}

// maxStreamRows bounds the rows of one INSERT that flushLoop streams:
// below ClickHouse's min_insert_block_size_rows, so that the server writes
// them as one part when the INSERT ends.
func (w *Writer) maxStreamRows() int { return min(10*w.opts.BatchSize, 500_000) }

// blockRows is how many rows the spool reader hands to the flusher at a
// time: one block of the open INSERT (an INSERT still takes up to
// maxStreamRows rows, as one part). Every row of a block is an Event in
// memory, and its columns are built and encoded whole, so the block, not
// the INSERT, sets the memory the flush path holds: with 10,000-row blocks
// the benchmark's store peaked at about 20 MB more RSS than with 2,048-row
// ones, for no CPU saved.
func (w *Writer) blockRows() int { return min(w.opts.BatchSize, 2048) }

// flushLoop stores the batches readLoop hands over. A batch that was handed
// over full, so that more are ready, or in blocks (blockRows), starts an
// INSERT that stays open for the next ones (insert.Stream) until the reader
// has caught up, the INSERT is Interval old, or it holds maxStreamRows; a
// lone batch is one INSERT of a prepared batch. A failed INSERT is dropped
// and the reader rewinds to its first row; the rows are read again and checked against
// events (dedupe: the server may have stored blocks of the dropped INSERT)
// before they are retried, with backoff, until
// ClickHouse takes them or the writer stops (then they stay in the spool).
// Segments are deleted once every row in them is stored.
func (w *Writer) flushLoop(full <-chan spoolBatch, free chan<- []*model.Event, acked chan<- struct{}) {
	f := &flusher{w: w, t: w.events, backoff: 250 * time.Millisecond}
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		var due <-chan time.Time
		if f.s != nil && !f.block { // after a block, the reader ends the batch
			timer.Reset(time.Until(f.start.Add(w.opts.Interval)))
			due = timer.C
		}
		select {
		case b, ok := <-full:
			timer.Stop()
			if !ok {
				f.abort()
				return
			}
			if f.take(b) && b.last {
				close(acked) // the spool is stored to its end
			}
			clear(b.rows)
			if cap(b.rows) > 4*w.blockRows() {
				b.rows = nil
			}
			free <- b.rows[:0]
		case <-due:
			if err := f.commit(); err != nil {
				f.fail(err)
			}
		}
	}
}

// flusher is flushLoop's state.
type flusher struct {
	w     *Writer
	t     *table[*model.Event]
	s     *insert.Stream // the open INSERT, if any; the erasure guard is held while one is open
	from  pos            // where the rows of the open (or last) INSERT start
	end   pos            // and end
	whole bool           // end is the end of its sealed segment
	// start is when the open INSERT began (PrepareBatch returned). Not
	// when its first row was read: a reader held up by a slow INSERT hands
	// over rows read more than Interval ago, and each INSERT would end at
	// its first block.
	start    time.Time
	gen      uint64 // batches of an older generation were read before a rewind: dropped
	failures int    // consecutive failed inserts
	backoff  time.Duration
	stopped  bool // the writer gave up (Close's deadline): drop what comes
	block    bool // the open INSERT's last rows were a block of a batch the reader has yet to end
	bufs     insert.Buffers
}

// take stores b's rows or adds them to the open INSERT, and ends the INSERT
// when it is due. It releases the rows, and reports whether b is dealt
// with: false if it was dropped (read before a rewind, or the writer gave
// up) or failed.
func (f *flusher) take(b spoolBatch) bool {
	rows := b.rows
	defer func() {
		for _, e := range rows {
			f.w.Release(e)
		}
	}()
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
	if f.s == nil {
		f.from = b.from
	}
	var err error
	if b.replay && len(rows) > 0 {
		rows, err = f.w.dedupe(f.w.stopCtx, rows)
	}
	if err == nil {
		err = f.store(b, rows)
	}
	f.block = err == nil && b.block && f.s != nil
	if err != nil {
		f.fail(err)
		return false
	}
	if f.failures > 0 {
		f.failures, f.backoff = 0, 250*time.Millisecond
		if f.w.failing.Swap(false) {
			f.w.opts.Log.Info("ClickHouse takes inserts again; draining the spool")
		}
	}
	return true
}

func (f *flusher) store(b spoolBatch, rows []*model.Event) error {
	if f.s == nil && !b.more && len(rows) > 0 {
		// A lone batch: one INSERT, of a prepared batch.
		start := time.Now()
		if err := f.t.insert1(f.w.stopCtx, rows); err != nil {
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
		f.confirm() // no rows to store: segments to delete
	case !b.more || f.s.Rows() >= f.w.maxStreamRows() || time.Since(f.start) >= f.w.opts.Interval:
		return f.commit()
	}
	return nil
}

// add sends rows as a block of the open INSERT, or of a new one.
func (f *flusher) add(b spoolBatch, rows []*model.Event) error {
	t := f.t
	if f.s == nil {
		t.guard.Lock() // until the INSERT ends: Erase waits for it
	}
	query, cols := t.build(rows) // leaves out erased rows, under the guard
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
		f.s.Abort()
		f.s = nil
		f.t.guard.Unlock()
	}
}

// stored counts an INSERT that succeeded and deletes the segments it
// completes.
func (f *flusher) stored(rows int, busy time.Duration) {
	f.t.count(rows, busy)
	f.confirm()
}

// confirm deletes the segments that are stored up to f.end.
func (f *flusher) confirm() { f.w.spool.remove(f.end, f.whole) }

// fail drops the open INSERT, waits, and rewinds the reader to the first
// row not stored.
func (f *flusher) fail(err error) {
	f.abort()
	w := f.w
	f.t.errors.Inc()
	w.failing.Store(true)
	f.failures++
	if f.failures == 1 || f.failures%10 == 0 {
		w.opts.Log.Warn("insert failed; the rows stay in the spool and are retried", "table", f.t.name,
			"attempt", f.failures, "err", err)
	}
	select {
	case <-time.After(f.backoff):
	case <-w.stop:
		f.stopped = true
		return
	}
	f.backoff = min(2*f.backoff, w.opts.MaxBackoff)
	f.gen = w.spool.rewind(f.from)
}

// dedupeChunk bounds the event ids of one check query: 2,000 quoted UUIDs
// stay well inside ClickHouse's default max_query_size (256 KiB).
const dedupeChunk = 2000

// dedupe drops the rows whose event_id is already stored. The query is
// bounded by the rows' sites and time range, which the events sort key
// (site_id, toDate(ts), ...) and toYYYYMM(ts) partitions prune.
func (w *Writer) dedupe(ctx context.Context, rows []*model.Event) ([]*model.Event, error) {
	found := make(map[uuid.UUID]struct{})
	for i := 0; i < len(rows); i += dedupeChunk {
		part := rows[i:min(i+dedupeChunk, len(rows))]
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
		qctx, cancel := context.WithTimeout(ctx, w.opts.InsertTimeout)
		res, err := w.opts.Conn.Query(qctx,
			"SELECT event_id FROM events WHERE has(?, site_id) AND ts >= toDateTime(?) AND ts <= toDateTime(?) AND has(?, toString(event_id))",
			sites, lo.Unix(), hi.Unix(), ids)
		if err != nil {
			cancel()
			return rows, fmt.Errorf("cannot check spooled rows against events: %w", err)
		}
		for res.Next() {
			var id uuid.UUID
			if err := res.Scan(&id); err != nil {
				res.Close()
				cancel()
				return rows, fmt.Errorf("cannot read stored event ids: %w", err)
			}
			found[id] = struct{}{}
		}
		err = res.Err()
		res.Close()
		cancel()
		if err != nil {
			return rows, fmt.Errorf("cannot check spooled rows against events: %w", err)
		}
	}
	if len(found) == 0 {
		return rows, nil
	}
	keep := rows[:0]
	for _, e := range rows {
		if _, dup := found[e.EventID]; dup {
			w.Release(e)
			continue
		}
		keep = append(keep, e)
	}
	w.spool.dups.Add(len(rows) - len(keep))
	clear(rows[len(keep):])
	return keep, nil
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
