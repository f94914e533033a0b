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
// sessions_dims_hourly (sessionDims).
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
		if len(dims.groups) > 0 {
			w.sessionDims.flush(ctx, dims.expand())
		}
		dims.reset()
	}
	emit := func(prev, cur *model.Session, hadPrev bool) {
		if hadPrev {
			rows = append(rows, sessionRow{*prev, -1})
		}
		rows = append(rows, sessionRow{*cur, 1})
		dims.add(prev, cur, hadPrev)
	}
	pause := func() {
		if len(rows) >= w.opts.BatchSize || dims.size() >= w.opts.BatchSize {
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

// sessionDims sums session changes for sessions_dims_hourly, in the
// writer rather than in a view on sessions, which expanded every session
// row (two per update) to the rollup's 16 dimensions. Summing is in two
// steps. add sums the changes of sessions that share a site, start quarter
// hour and attribution (a group), and notes the visitor of each session
// written for the first time. expand then turns the groups into rows of
// sessions_dims_input (0008_sessions_dims_input.sql), one per site, quarter
// hour, dimension and value, with the visitors as an array; that table's
// view makes the rollup's states of them.
//
// The sums are those of the view on sessions: a row of sign s adds s to
// visits and s times its bounce, duration, page views and events (an
// update's -1 and +1 rows add up to the difference), and the visitors are
// those of rows with sign +1, of which only a session's first row can
// bring a new one (its later rows have the same visitor, start and
// attribution).
type sessionDims struct {
	groups []dimGroup
	index  map[dimKey]int // of groups
	news   []newVisitor
	rows   []dimRow // expand's output
	rowIdx map[dimRowKey]int
}

// dimKey is what the sessions of a group share.
type dimKey struct {
	site    string
	quarter int64 // Unix seconds of the start's quarter hour
	attrs   *model.Attrs
}

type dimGroup struct {
	key  dimKey
	sums dimSums
	rows []int32 // the group's row per dimension (model.AttrDims), set by expand
}

type dimSums struct{ visits, bounces, duration, pageviews, events int64 }

func (a *dimSums) add(b *dimSums) {
	a.visits += b.visits
	a.bounces += b.bounces
	a.duration += b.duration
	a.pageviews += b.pageviews
	a.events += b.events
}

// addSession adds a row of s with sign.
func (a *dimSums) addSession(s *model.Session, sign int64) {
	a.visits += sign
	a.bounces += sign * bounce(s)
	a.duration += sign * int64(s.DurationSec)
	a.pageviews += sign * int64(s.Pageviews)
	a.events += sign * int64(s.Events)
}

type newVisitor struct {
	group int
	id    uint64
}

// dimRow is a row of sessions_dims_input.
type dimRow struct {
	key      dimRowKey
	visitors []uint64
	sums     dimSums
}

type dimRowKey struct {
	site    string
	quarter int64
	dim     int // index in model.AttrDims
	value   string
}

// size is what the sums hold: groups and new visitors. expand makes up to
// 16 rows of each group and puts each new visitor in 16 rows, so the
// writer flushes at BatchSize of them, as it does session rows.
func (d *sessionDims) size() int { return len(d.groups) + len(d.news) }

func (d *sessionDims) reset() {
	clear(d.groups) // do not pin the attributions
	d.groups = d.groups[:0]
	clear(d.index)
	d.news = d.news[:0]
	for i := range d.rows {
		d.rows[i] = dimRow{visitors: d.rows[i].visitors[:0]}
	}
	d.rows = d.rows[:0]
	clear(d.rowIdx)
}

// add takes one change: cur, replacing prev when hadPrev.
func (d *sessionDims) add(prev, cur *model.Session, hadPrev bool) {
	k := dimKeyOf(cur)
	if hadPrev {
		pk := dimKeyOf(prev)
		if pk == k {
			// An update: its -1 and +1 rows add up to the difference.
			g := d.group(k)
			g.sums.addSession(prev, -1)
			g.sums.addSession(cur, 1)
			return
		}
		// Never seen (a session keeps its start and attribution), but
		// summed as the view would: -1 there, +1 with the visitor here.
		d.group(pk).sums.addSession(prev, -1)
	}
	gi := d.groupIndex(k)
	d.groups[gi].sums.addSession(cur, 1)
	d.news = append(d.news, newVisitor{gi, cur.VisitorID})
}

// group returns the group of k, adding it if it is new.
func (d *sessionDims) group(k dimKey) *dimGroup { return &d.groups[d.groupIndex(k)] }

func (d *sessionDims) groupIndex(k dimKey) int {
	if i, ok := d.index[k]; ok {
		return i
	}
	if d.index == nil {
		d.index = make(map[dimKey]int)
	}
	d.index[k] = len(d.groups)
	d.groups = append(d.groups, dimGroup{key: k})
	return len(d.groups) - 1
}

// expand returns the rows of sessions_dims_input for what was added.
func (d *sessionDims) expand() []dimRow {
	if d.rowIdx == nil {
		d.rowIdx = make(map[dimRowKey]int)
	}
	for gi := range d.groups {
		g := &d.groups[gi]
		if g.rows == nil {
			g.rows = make([]int32, len(model.AttrDims))
		}
		for j, dim := range model.AttrDims {
			rk := dimRowKey{g.key.site, g.key.quarter, j, dim.Value(g.key.attrs)}
			i, ok := d.rowIdx[rk]
			if !ok {
				i = len(d.rows)
				d.rowIdx[rk] = i
				if i < cap(d.rows) {
					d.rows = d.rows[:i+1] // keeps the row's visitors buffer
				} else {
					d.rows = append(d.rows, dimRow{})
				}
				d.rows[i].key = rk
			}
			d.rows[i].sums.add(&g.sums)
			g.rows[j] = int32(i)
		}
	}
	for _, n := range d.news {
		for _, i := range d.groups[n.group].rows {
			d.rows[i].visitors = append(d.rows[i].visitors, n.id)
		}
	}
	return d.rows
}

func dimKeyOf(s *model.Session) dimKey {
	a := s.Attrs
	if a == nil {
		a = &noAttrs
	}
	const quarter = 15 * 60
	u := s.Start.Unix()
	return dimKey{site: s.Site, quarter: u - ((u%quarter)+quarter)%quarter, attrs: a}
}

func bounce(s *model.Session) int64 {
	if s.Bounce {
		return 1
	}
	return 0
}

const sessionDimColumns = "site_id, start, dim, value, visitor_ids, with_visitors, d_visits, d_bounces, d_duration, d_pageviews, d_events"

// noVisitors is the visitor_ids of a row without any: the view's ARRAY
// JOIN would drop a row with an empty array, sums and all.
var noVisitors = []uint64{0}

var sessionDimColumnNames = strings.Split(sessionDimColumns, ", ")

// dimBatch holds column slices reused from one flush to the next.
type dimBatch struct {
	strs   [3][]string
	starts []time.Time
	ids    [][]uint64
	with   []uint8
	sums   [5][]int64
	insert insert.Builder
}

// build returns the INSERT for rows and its column slices.
func (c *dimBatch) build(rows []dimRow) (string, []any) {
	for i := range c.strs {
		c.strs[i] = c.strs[i][:0]
	}
	for i := range c.sums {
		c.sums[i] = c.sums[i][:0]
	}
	c.starts, c.ids, c.with = c.starts[:0], c.ids[:0], c.with[:0]
	for i := range rows {
		r := &rows[i]
		c.strs[0] = append(c.strs[0], r.key.site)
		c.strs[1] = append(c.strs[1], model.AttrDims[r.key.dim].Name)
		c.strs[2] = append(c.strs[2], r.key.value)
		c.starts = append(c.starts, time.Unix(r.key.quarter, 0).UTC())
		if len(r.visitors) > 0 {
			c.ids, c.with = append(c.ids, r.visitors), append(c.with, 1)
		} else {
			c.ids, c.with = append(c.ids, noVisitors), append(c.with, 0)
		}
		for j, v := range [...]int64{r.sums.visits, r.sums.bounces, r.sums.duration, r.sums.pageviews, r.sums.events} {
			c.sums[j] = append(c.sums[j], v)
		}
	}
	cols := []any{c.strs[0], c.starts, c.strs[1], c.strs[2], c.ids, c.with, c.sums[0], c.sums[1], c.sums[2], c.sums[3], c.sums[4]}
	return c.insert.Build("sessions_dims_input", sessionDimColumnNames, cols)
}

func (c *dimBatch) release() {
	for i := range c.strs {
		clear(c.strs[i])
	}
	clear(c.ids)
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
