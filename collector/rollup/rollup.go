// Package rollup sums the writer's drains of session changes for
// sessions_dims_hourly: per site, quarter hour of the start, attribution
// dimension (model.AttrDims) and value, the change of visits, bounces,
// duration, page views and events, and the visitors of new sessions, as
// rows of sessions_dims_input (0008_sessions_dims_input.sql), whose view
// makes the rollup's states of them.
package rollup

import (
	"strings"
	"time"

	"github.com/glimpse-analytics/glimpse/collector/insert"
	"github.com/glimpse-analytics/glimpse/internal/model"
)

// Sums sums session changes for sessions_dims_hourly, in the
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
type Sums struct {
	groups []dimGroup
	index  map[dimKey]int // of groups
	news   []newVisitor
	rows   []Row // expand's output
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

// Row is a row of sessions_dims_input.
type Row struct {
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

// Size is what the sums hold: groups and new visitors. expand makes up to
// 16 rows of each group and puts each new visitor in 16 rows, so the
// writer flushes at BatchSize of them, as it does session rows.
func (d *Sums) Size() int { return len(d.groups) + len(d.news) }

func (d *Sums) Reset() {
	clear(d.groups) // do not pin the attributions
	d.groups = d.groups[:0]
	clear(d.index)
	d.news = d.news[:0]
	for i := range d.rows {
		d.rows[i] = Row{visitors: d.rows[i].visitors[:0]}
	}
	d.rows = d.rows[:0]
	clear(d.rowIdx)
}

// Add takes one change: cur, replacing prev when hadPrev.
func (d *Sums) Add(prev, cur *model.Session, hadPrev bool) {
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
func (d *Sums) group(k dimKey) *dimGroup { return &d.groups[d.groupIndex(k)] }

func (d *Sums) groupIndex(k dimKey) int {
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

// Rows returns the rows of sessions_dims_input for what was added.
func (d *Sums) Rows() []Row {
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
					d.rows = append(d.rows, Row{})
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

// noAttrs is the attribution of a session that has none.
var noAttrs model.Attrs

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

// Columns holds column slices reused from one flush to the next.
type Columns struct {
	// Table is the table the INSERT names; empty: sessions_dims_input.
	Table  string
	strs   [3][]string
	starts []time.Time
	ids    [][]uint64
	with   []uint8
	sums   [5][]int64
	insert insert.Builder
}

// Build returns the INSERT for rows and its column slices.
func (c *Columns) Build(rows []Row) (string, []any) {
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
	table := c.Table
	if table == "" {
		table = "sessions_dims_input"
	}
	return c.insert.Build(table, sessionDimColumnNames, cols)
}

func (c *Columns) Release() {
	for i := range c.strs {
		clear(c.strs[i])
	}
	clear(c.ids)
}
