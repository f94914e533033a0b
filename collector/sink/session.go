package sink

import (
	"context"
	"time"

	"github.com/glimpse-analytics/glimpse/collector/insert"
	"github.com/glimpse-analytics/glimpse/internal/model"
)

// EndedSource is a model.SessionSource that asks for the sessions that ended
// since the last drain to be drained early, alone (session.Cache does when
// many wait, so that a full cache evicting live sessions does not hold
// them all until the next drain).
type EndedSource interface {
	model.SessionSource
	// Pressure receives a value when the source wants DrainEnded called.
	Pressure() <-chan struct{}
	// DrainEnded is Drain for the ended sessions alone.
	DrainEnded(emit model.Emit, pause func()) int
}

// WriteSessions makes the writer write the sessions src changes: every
// SessionInterval, and a last time on Close, it drains src and inserts
// each changed session as a cancel row (sign -1) of the state it wrote
// before, if any, and a row of the new state (sign +1). sessions is a
// VersionedCollapsingMergeTree (0002_sessions.sql), so the table collapses
// to each session's newest state. A writer drains every source it is
// given; call it before the source's first change.
func (w *Writer) WriteSessions(src model.SessionSource) {
	w.srcMu.Lock()
	defer w.srcMu.Unlock()
	w.sessionSrcs = append(w.sessionSrcs, src)
	if e, ok := src.(EndedSource); ok {
		// Between two drains, an EndedSource that asks has its ended
		// sessions written at once.
		go func() {
			for {
				select {
				case <-e.Pressure():
					select {
					case w.endedWake <- struct{}{}:
					default:
					}
				case <-w.closing:
					return
				}
			}
		}()
	}
}

// runSessions drains the session source on every tick, and once more on
// Close.
func (w *Writer) runSessions() {
	defer w.wg.Done()
	tick := time.NewTicker(w.opts.SessionInterval)
	defer tick.Stop()
	var rows []insert.SessionRow
	for {
		select {
		case <-tick.C:
			rows = w.flushSessions(context.Background(), rows)
		case <-w.endedWake:
			rows = w.flushEnded(context.Background(), rows)
		case <-w.closing:
			w.flushSessions(*w.final.Load(), rows)
			return
		}
	}
}

func (w *Writer) flushSessions(ctx context.Context, rows []insert.SessionRow) []insert.SessionRow {
	return w.drainSessions(ctx, rows, model.SessionSource.Drain)
}

// flushEnded inserts the sessions that ended since the last drain, of
// the sources that can drain them alone.
func (w *Writer) flushEnded(ctx context.Context, rows []insert.SessionRow) []insert.SessionRow {
	return w.drainSessions(ctx, rows, func(src model.SessionSource, emit model.Emit, pause func()) int {
		if e, ok := src.(EndedSource); ok {
			return e.DrainEnded(emit, pause)
		}
		return 0
	})
}

// drainSessions drains every source with drain and inserts the changes,
// in batches of at most about BatchSize rows, together with their sums for
// sessions_dims_hourly (rollup.Sums).
func (w *Writer) drainSessions(ctx context.Context, rows []insert.SessionRow, drain func(model.SessionSource, model.Emit, func()) int) []insert.SessionRow {
	// Held until the last insert: an erasure that forgets sessions waits
	// for the rows a drain took of them to be stored, then deletes them.
	w.sessionsMu.Lock()
	defer w.sessionsMu.Unlock()
	w.srcMu.Lock()
	srcs := w.sessionSrcs
	w.srcMu.Unlock()
	rows = rows[:0]
	peak := 0 // the most rows held at once
	dims := &w.dimSums
	flush := func() {
		peak = max(peak, len(rows))
		if len(rows) > 0 {
			w.sessions.flush(ctx, rows)
		}
		clear(rows) // do not pin the sessions' strings
		rows = rows[:0]
		if dims.Size() > 0 {
			w.sessionDims.flush(ctx, dims.Rows())
		}
		dims.Reset()
	}
	emit := func(prev, cur *model.Session, hadPrev bool) {
		if hadPrev {
			rows = append(rows, insert.SessionRow{S: *prev, Sign: -1})
		}
		rows = append(rows, insert.SessionRow{S: *cur, Sign: 1})
		dims.Add(prev, cur, hadPrev)
	}
	pause := func() {
		if len(rows) >= w.opts.BatchSize || dims.Size() >= w.opts.BatchSize {
			flush()
		}
	}
	for _, src := range srcs {
		drain(src, emit, pause)
	}
	flush()
	// A burst's capacity is not kept.
	if cap(rows) > 4*peak && cap(rows) > 4096 {
		rows = nil
	}
	return rows
}
