package sink

import (
	"context"
	"strings"
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
	var rows []sessionRow
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

func (w *Writer) flushSessions(ctx context.Context, rows []sessionRow) []sessionRow {
	return w.drainSessions(ctx, rows, model.SessionSource.Drain)
}

// flushEnded inserts the sessions that ended since the last drain, of
// the sources that can drain them alone.
func (w *Writer) flushEnded(ctx context.Context, rows []sessionRow) []sessionRow {
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
func (w *Writer) drainSessions(ctx context.Context, rows []sessionRow, drain func(model.SessionSource, model.Emit, func()) int) []sessionRow {
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
			rows = append(rows, sessionRow{*prev, -1})
		}
		rows = append(rows, sessionRow{*cur, 1})
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

func bounce(s *model.Session) int64 {
	if s.Bounce {
		return 1
	}
	return 0
}

// sessionRow is a session state with its sign.
type sessionRow struct {
	s    model.Session
	sign int8
}

// sessionColumns are the sessions table's columns that sessionBatch
// appends first; the attribution columns (model.AttrDims) follow. The
// hostname and browser and OS versions are not part of a session's
// attribution: those columns are left out and stay empty.
const sessionColumns = "site_id, session_id, visitor_id, sign, version, start, ts, duration, pageviews, events, " +
	"is_bounce, engagement_ms, entry_page, exit_page"

// sessionBatch holds column slices reused from one flush to the next.
type sessionBatch struct {
	strs   [3][]string
	attrs  [][]string // one per model.AttrDims
	u64    [3][]uint64
	signs  []int8
	u32    [4][]uint32
	times  [2][]time.Time
	u8     []uint8
	cols   []any
	insert insert.Builder
}

var noAttrs model.Attrs

// build returns the INSERT for rows and its column slices, leaving out
// columns that hold only defaults (see eventBatch.build).
func (c *sessionBatch) build(rows []sessionRow) (string, []any) {
	for i := range c.strs {
		c.strs[i] = c.strs[i][:0]
	}
	if c.attrs == nil {
		c.attrs = make([][]string, len(model.AttrDims))
	}
	for i := range c.attrs {
		c.attrs[i] = c.attrs[i][:0]
	}
	for i := range c.u64 {
		c.u64[i] = c.u64[i][:0]
	}
	for i := range c.u32 {
		c.u32[i] = c.u32[i][:0]
	}
	c.times[0], c.times[1], c.signs, c.u8 = c.times[0][:0], c.times[1][:0], c.signs[:0], c.u8[:0]
	for i := range rows {
		r := &rows[i].s
		a := r.Attrs
		if a == nil {
			a = &noAttrs
		}
		c.u64[0] = append(c.u64[0], r.ID)
		c.u64[1] = append(c.u64[1], r.VisitorID)
		c.u64[2] = append(c.u64[2], r.EngagementMS)
		c.signs = append(c.signs, rows[i].sign)
		c.u32[0] = append(c.u32[0], r.Version)
		c.u32[1] = append(c.u32[1], r.DurationSec)
		c.u32[2] = append(c.u32[2], r.Pageviews)
		c.u32[3] = append(c.u32[3], r.Events)
		c.times[0] = append(c.times[0], r.Start)
		c.times[1] = append(c.times[1], r.LastSeen)
		c.u8 = append(c.u8, uint8(bounce(r)))
		c.strs[0] = append(c.strs[0], r.Site)
		c.strs[1] = append(c.strs[1], r.EntryPage)
		c.strs[2] = append(c.strs[2], r.ExitPage)
		for j, d := range model.AttrDims {
			c.attrs[j] = append(c.attrs[j], *d.Attr(a))
		}
	}
	cols := append(c.cols[:0],
		c.strs[0], c.u64[0], c.u64[1], c.signs, c.u32[0], c.times[0], c.times[1], c.u32[1], c.u32[2], c.u32[3],
		c.u8, c.u64[2], c.strs[1], c.strs[2])
	for _, a := range c.attrs {
		cols = append(cols, a)
	}
	c.cols = cols
	return c.insert.Build("sessions", sessionColumnNames, cols)
}

var sessionColumnNames = func() []string {
	names := strings.Split(sessionColumns, ", ")
	for _, d := range model.AttrDims {
		names = append(names, d.Column)
	}
	return names
}()

func (c *sessionBatch) release() {
	for i := range c.strs {
		clear(c.strs[i])
	}
	for i := range c.attrs {
		clear(c.attrs[i])
	}
}
