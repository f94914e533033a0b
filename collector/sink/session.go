package sink

import (
	"context"
	"time"

	"github.com/glimpse-analytics/glimpse/collector/insert"
	"github.com/glimpse-analytics/glimpse/collector/rollup"
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
	for {
		select {
		case <-tick.C:
			w.drainSessions(context.Background(), model.SessionSource.Drain, true)
		case <-w.endedWake:
			w.drainSessions(context.Background(), drainEnded, false)
		case <-w.closing:
			w.drainSessions(*w.final.Load(), model.SessionSource.Drain, true)
			return
		}
	}
}

// drainEnded drains the sessions that ended since the last drain, of the
// sources that can drain them alone.
func drainEnded(src model.SessionSource, emit model.Emit, pause func()) int {
	if e, ok := src.(EndedSource); ok {
		return e.DrainEnded(emit, pause)
	}
	return 0
}

// drainSessions drains every source with drain into the pending rows and
// their sums for sessions_dims_hourly (rollup.Sums), and stores them when
// they reach sessionRowsPerInsert, and with store at the end. The drains of
// ended sessions (between two ticks, when a full cache evicts) only add
// to the pending rows: each INSERT makes parts of sessions, sessions_hourly
// and sessions_dims_hourly, and on 18.16 a part costs about 45 ms of CPU
// and its merges, so one INSERT per drain of BatchSize rows was most of
// what ClickHouse spent at 500,000 visitors. A pending row (about 150
// bytes) is smaller than the ended session it replaces in the cache.
func (w *Writer) drainSessions(ctx context.Context, drain func(model.SessionSource, model.Emit, func()) int, store bool) {
	// Held until the last insert: an erasure that forgets sessions waits
	// for the rows a drain took of them to be stored, then deletes them.
	w.sessionsMu.Lock()
	defer w.sessionsMu.Unlock()
	w.srcMu.Lock()
	srcs := w.sessionSrcs
	w.srcMu.Unlock()
	p := &w.pending
	emit := func(prev, cur *model.Session, hadPrev bool) {
		if hadPrev {
			p.rows = append(p.rows, insert.SessionRow{S: *prev, Sign: -1})
		}
		p.rows = append(p.rows, insert.SessionRow{S: *cur, Sign: 1})
		p.dims.Add(prev, cur, hadPrev)
	}
	pause := func() {
		if len(p.rows) >= w.sessionRowsPerInsert() {
			w.storeSessions(ctx)
		}
	}
	for _, src := range srcs {
		drain(src, emit, pause)
	}
	if store || len(p.rows) >= w.sessionRowsPerInsert() {
		w.storeSessions(ctx)
	}
}

// sessionRowsPerInsert is how many session rows wait, at most, before
// they are stored: 2 blocks of BatchSize. Pending rows hold pointers (the
// GC scans them) and their sums for the rollup grow with them, so the
// bound is lower than maxStreamRows: at 100,000 rows glimpse's RSS grew
// by about 40 MB at 500,000 visitors, and its garbage collection, pressed
// by the soft memory limit, cost more CPU than ClickHouse saved.
func (w *Writer) sessionRowsPerInsert() int { return min(2*w.opts.BatchSize, w.maxStreamRows()) }

// pendingSessions are the session rows drained and not yet stored, and
// their sums for sessions_dims_hourly; the writer's sessionsMu guards them.
type pendingSessions struct {
	rows []insert.SessionRow
	peak int // the most rows held at once since the last shrink
	dims rollup.Sums
}

// storeSessions stores the pending rows as one INSERT into sessions, then
// their sums as one INSERT into sessions_dims_input; the caller holds
// sessionsMu.
func (w *Writer) storeSessions(ctx context.Context) {
	p := &w.pending
	p.peak = max(p.peak, len(p.rows))
	if len(p.rows) > 0 {
		w.sessions.insert(ctx, p.rows)
	}
	clear(p.rows) // do not pin the sessions' strings
	p.rows = p.rows[:0]
	if p.dims.Size() > 0 {
		w.sessionDims.flush(ctx, p.dims.Rows())
	}
	p.dims.Reset()
	// A burst's capacity is not kept.
	if cap(p.rows) > 4*p.peak && cap(p.rows) > 4096 {
		p.rows = nil
	}
	p.peak = 0
}
