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
)

// The events pipeline with a spool (spool.go): the appender goroutine
// moves events from the queue into the active segment and fsyncs it; the
// reader goroutine reads committed records back in order and collects
// batches; the flusher goroutine inserts them, retrying until ClickHouse
// takes them, and deletes the segments they came from.

// spoolBatch is a batch read from the spool and where it ends.
type spoolBatch struct {
	rows   []*Event
	end    pos  // just past the batch's last record
	whole  bool // end is the end of its sealed segment
	replay bool // some rows come from segments an earlier process left
}

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
					continue
				}
				if err := a.create(a.seq + 1); err != nil {
					report(err)
					continue
				}
			}
		case <-tick.C:
			report(a.requestSync())
			uncommitted = 0
		}
	}
}

func (w *Writer) readLoop(full chan<- spoolBatch, free <-chan []*Event) {
	defer close(full)
	s := w.spool
	var (
		cur         *segReader
		next        uint64 // first segment to look for when cur is nil
		in          interner
		rows        = <-free
		batchStart  time.Time
		b           spoolBatch
		unconfirmed bool // b.end moved without rows: segments to delete
	)
	defer func() { cur.close() }()
	defer s.dropTail()
	handoff := func() {
		b.rows = rows
		full <- b
		rows = <-free
		b = spoolBatch{end: b.end, whole: b.whole}
		unconfirmed = false
	}
	timer := time.NewTimer(w.opts.Interval)
	defer timer.Stop()
	var lastIOErr time.Time
	for {
		select {
		case <-w.stop:
			for _, e := range rows {
				w.Release(e)
			}
			return
		default:
		}
		s.mu.Lock()
		active, committed, done := s.active, s.committed, s.done
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
			cur = r
		}
		if cur == nil {
			if done {
				if len(rows) > 0 || unconfirmed {
					handoff()
				}
				for _, e := range rows {
					w.Release(e)
				}
				return
			}
			w.wait(&timer, time.Second)
			continue
		}
		sealed := cur.seq < active || done
		limit := committed
		if sealed {
			limit = 1 << 62
		}
		var e *Event
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
			if cur.seq <= s.startupLast {
				b.replay = true
				s.replayed.Inc()
			}
			if w.erased(e) {
				w.Release(e)
			} else {
				if len(rows) == 0 {
					batchStart = time.Now()
				}
				rows = append(rows, e)
			}
			b.end, b.whole, unconfirmed = pos{cur.seq, cur.off}, false, true
			if len(rows) >= w.opts.BatchSize {
				handoff()
			}
		case sealed: // the end of a sealed segment
			b.end, b.whole, unconfirmed = pos{cur.seq, cur.off}, true, true
			next = cur.seq + 1
			cur.close()
			cur = nil
		default: // caught up with the active segment
			wait := w.opts.Interval - time.Since(batchStart)
			if (len(rows) > 0 && wait <= 0) || (len(rows) == 0 && unconfirmed) {
				handoff()
				continue
			}
			if len(rows) == 0 {
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

func (w *Writer) flushLoop(full <-chan spoolBatch, free chan<- []*Event) {
	for b := range full {
		w.insertSpooled(b)
		clear(b.rows)
		if cap(b.rows) > 4*w.opts.BatchSize {
			b.rows = nil
		}
		free <- b.rows[:0]
	}
}

// insertSpooled inserts a batch, retrying with backoff until ClickHouse
// takes it or the writer stops (then the rows stay in the spool), and
// deletes the segments it confirms.
func (w *Writer) insertSpooled(b spoolBatch) {
	t := w.events
	rows := b.rows
	defer func() {
		for _, e := range rows {
			w.Release(e)
		}
	}()
	check := b.replay
	backoff := 250 * time.Millisecond
	start := time.Now()
	for attempt := 1; len(rows) > 0; attempt++ {
		var err error
		if check {
			rows, err = w.dedupe(w.stopCtx, rows)
		}
		if err == nil && len(rows) > 0 {
			err = t.insert1(w.stopCtx, rows)
		}
		if err == nil {
			t.stored.Add(len(rows))
			w.eventsStored().Add(len(rows))
			t.flushes.UpdateDuration(start)
			t.rows.Update(float64(len(rows)))
			break
		}
		// A failed Send may still have committed: check before retrying.
		check = true
		t.errors.Inc()
		w.failing.Store(true)
		if attempt == 1 || attempt%10 == 0 {
			w.opts.Log.Warn("insert failed; the rows stay in the spool and are retried", "table", t.name,
				"rows", len(rows), "attempt", attempt, "err", err)
		}
		select {
		case <-time.After(backoff):
		case <-w.stop:
			return
		}
		backoff = min(2*backoff, w.opts.MaxBackoff)
	}
	if w.failing.Swap(false) {
		w.opts.Log.Info("ClickHouse takes inserts again; draining the spool")
	}
	w.spool.remove(b.end, b.whole)
}

// dedupeChunk bounds the event ids of one check query: 2,000 quoted UUIDs
// stay well inside ClickHouse's default max_query_size (256 KiB).
const dedupeChunk = 2000

// dedupe drops the rows whose event_id is already stored. The query is
// bounded by the rows' sites and time range, which the events sort key
// (site_id, toDate(ts), ...) and toYYYYMM(ts) partitions prune.
func (w *Writer) dedupe(ctx context.Context, rows []*Event) ([]*Event, error) {
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
