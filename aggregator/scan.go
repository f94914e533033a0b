package aggregator

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"time"
)

// source is the table a scan reads.
type source int

const (
	srcEvents source = iota
	srcSessions
	srcEventsHourly
	srcSessionsHourly
	srcPagesHourly
)

func (s source) rollup() bool { return s >= srcEventsHourly }

func (s source) cols() map[string]string {
	switch s {
	case srcSessions:
		return sessionsCols
	case srcEventsHourly:
		return eventsHourlyCols
	case srcSessionsHourly:
		return sessionsHourlyCols
	case srcPagesHourly:
		return pagesHourlyCols
	}
	return eventsCols
}

func (s source) table() string {
	return [...]string{"events", "sessions", "events_hourly", "sessions_hourly", "pages_hourly"}[s]
}

func (s source) timeCol() string {
	switch s {
	case srcEvents:
		return "ts"
	case srcSessions:
		return "start"
	}
	return "hour"
}

// scan is one SQL query over one source: ungrouped, or grouped by a time
// bucket or a property.
type scan struct {
	src     source
	site    string
	p       Period
	filters []Filter
	cols    []string // raw column names, see metric.go
	sample  float64  // SAMPLE ratio; 0 or 1: none

	bucket string    // the key is this interval's bucket, or
	prop   *Property // this property (and only its scope is counted)
	group  bool      // GROUP BY the key

	minVisitors float64 // HAVING c_visitors >= minVisitors (if > 0)
	maxVisitors float64 // HAVING c_visitors < maxVisitors (if > 0)
	limit       int     // ORDER BY c_visitors DESC, gk LIMIT limit OFFSET offset (if > 0)
	offset      int
	keyPred     func(b *sqlb, key func()) // a predicate on the key, applied before grouping
	countKeys   bool                      // also select uniqExact(key) AS c_keys
}

func (s *scan) grouped() bool { return s.group }

func (s *scan) hasKey() bool { return s.bucket != "" || s.prop != nil }

// key writes the group key expression over the source's rows.
func (s *scan) key(b *sqlb) {
	if s.prop != nil {
		s.prop.expr(b)
		return
	}
	t := s.src.timeCol()
	switch s.bucket {
	case IntervalHour:
		b.w("toString(toStartOfHour(", t, ", ").arg(s.p.Loc.String()).w("))")
	case IntervalWeek:
		b.w("toString(toMonday(toDate(", t, ", ").arg(s.p.Loc.String()).w(")))")
	case IntervalMonth:
		b.w("toString(toStartOfMonth(toDate(", t, ", ").arg(s.p.Loc.String()).w(")))")
	default:
		b.w("toString(toDate(", t, ", ").arg(s.p.Loc.String()).w("))")
	}
}

func (s *scan) sampleClause(b *sqlb) {
	if s.sample > 0 && s.sample < 1 {
		// SAMPLE takes a literal, not an expression, so the ratio cannot be
		// bound. It is never a request value: sampleRatio computes it from
		// row counts and rounds it to three decimals in [0.001, 1).
		b.w(" SAMPLE ", strconv.FormatFloat(s.sample, 'f', 3, 64))
	}
}

func (s *scan) timeRange(b *sqlb, col string, from, to time.Time) {
	b.w(col, " >= toDateTime(").arg(from.Unix()).w(") AND ", col, " < toDateTime(").arg(to.Unix()).w(")")
}

// sessionSlack widens the session start range of the subquery that maps
// visit filters onto events: an event in the period may belong to a visit
// that started before it, and a visit starting in it may end after it.
const sessionSlack = 24 * time.Hour

// build renders the scan's SQL. Selected columns: gk (String) when
// grouped, c_keys when countKeys, then c_<col> (Float64) for each column.
func (s *scan) build() *sqlb {
	b := &sqlb{}
	cols := s.src.cols()
	sel := func(keyExpr func()) {
		b.w("SELECT ")
		if s.grouped() {
			keyExpr()
			b.w(" AS gk, ")
		}
		if s.countKeys {
			b.w("toFloat64(uniqExact(")
			keyExpr()
			b.w(")) AS c_keys, ")
		}
		for i, c := range s.cols {
			if i > 0 {
				b.w(", ")
			}
			b.w("toFloat64(", cols[c], ") AS c_", c)
		}
	}
	tail := func() {
		if !s.grouped() {
			return
		}
		b.w(" GROUP BY gk")
		switch {
		case s.minVisitors > 0:
			b.w(" HAVING c_visitors >= ").arg(s.minVisitors)
		case s.maxVisitors > 0:
			b.w(" HAVING c_visitors < ").arg(s.maxVisitors)
		}
		if s.limit > 0 {
			b.w(" ORDER BY c_visitors DESC, gk ASC LIMIT ").arg(s.limit).w(" OFFSET ").arg(s.offset)
		}
	}
	switch s.src {
	case srcEvents:
		key := func() { s.key(b) }
		sel(key)
		b.w(" FROM events")
		s.sampleClause(b)
		b.w(" WHERE site_id = ").arg(s.site).w(" AND ")
		s.timeRange(b, "ts", s.p.From, s.p.To)
		if s.prop != nil {
			s.prop.scope(b)
		}
		for _, f := range bySide(s.filters, sideEvents) {
			b.w(" AND ")
			f.pred(b)
		}
		if vf := bySide(s.filters, sideSessions); len(vf) > 0 {
			b.w(" AND session_id IN (SELECT session_id FROM sessions")
			s.sampleClause(b)
			b.w(" WHERE site_id = ").arg(s.site).w(" AND ")
			s.timeRange(b, "start", s.p.From.Add(-sessionSlack), s.p.To)
			for _, f := range vf {
				b.w(" AND ")
				f.pred(b)
			}
			b.w(" GROUP BY session_id HAVING sum(sign) > 0)")
		}
		if s.keyPred != nil {
			b.w(" AND ")
			s.keyPred(b, key)
		}
		tail()
	case srcSessions:
		sel(func() { b.w("gk") })
		b.w(" FROM (SELECT ")
		if s.hasKey() {
			s.key(b)
			b.w(" AS gk, ")
		}
		b.w("visitor_id, session_id, sum(sign) AS vs, sum(sign * is_bounce) AS bs, sum(sign * duration) AS ds, " +
			"sum(sign * pageviews) AS ps, sum(sign * events) AS es FROM sessions")
		s.sampleClause(b)
		b.w(" WHERE site_id = ").arg(s.site).w(" AND ")
		s.timeRange(b, "start", s.p.From, s.p.To)
		for _, f := range bySide(s.filters, sideSessions) {
			b.w(" AND ")
			f.pred(b)
		}
		if ef := bySide(s.filters, sideEvents); len(ef) > 0 {
			b.w(" AND session_id IN (SELECT session_id FROM events")
			s.sampleClause(b)
			b.w(" WHERE site_id = ").arg(s.site).w(" AND ")
			s.timeRange(b, "ts", s.p.From, s.p.To.Add(sessionSlack))
			for _, f := range ef {
				b.w(" AND ")
				f.pred(b)
			}
			b.w(")")
		}
		b.w(" GROUP BY ")
		if s.hasKey() {
			b.w("gk, ")
		}
		b.w("visitor_id, session_id HAVING vs > 0)")
		if s.keyPred != nil {
			b.w(" WHERE ")
			s.keyPred(b, func() { b.w("gk") })
		}
		tail()
	default: // rollups: never filtered
		key := func() { s.key(b) }
		sel(key)
		b.w(" FROM ", s.src.table(), " WHERE site_id = ").arg(s.site).w(" AND ")
		s.timeRange(b, "hour", s.p.From, s.p.To)
		if s.keyPred != nil {
			b.w(" AND ")
			s.keyPred(b, key)
		}
		tail()
	}
	return b
}

// row is one result row of a scan: its group key and raw columns.
type row struct {
	key string
	v   map[string]float64
}

// run executes the scan and scales every column by the sample factor.
func (e *Engine) run(ctx context.Context, s *scan) ([]row, error) {
	b := s.build()
	ctx, cancel := context.WithTimeout(ctx, e.opts.QueryTimeout)
	defer cancel()
	rows, err := e.opts.Conn.Query(ctx, b.String(), b.args...)
	if err != nil {
		return nil, fmt.Errorf("cannot query %s: %w", s.src.table(), err)
	}
	defer rows.Close()
	factor := 1.0
	if s.sample > 0 && s.sample < 1 {
		factor = 1 / s.sample
	}
	var out []row
	for rows.Next() {
		var r row
		dest := make([]any, 0, len(s.cols)+2)
		if s.grouped() {
			dest = append(dest, &r.key)
		}
		var keys float64
		if s.countKeys {
			dest = append(dest, &keys)
		}
		vals := make([]float64, len(s.cols))
		for i := range vals {
			dest = append(dest, &vals[i])
		}
		if err := rows.Scan(dest...); err != nil {
			return nil, fmt.Errorf("cannot read %s rows: %w", s.src.table(), err)
		}
		r.v = make(map[string]float64, len(vals)+1)
		for i, c := range s.cols {
			r.v[c] = vals[i] * factor
		}
		if s.countKeys {
			r.v["keys"] = keys
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("cannot read %s rows: %w", s.src.table(), err)
	}
	return out, nil
}

// one runs an ungrouped scan and returns its single row.
func (e *Engine) one(ctx context.Context, s *scan) (map[string]float64, error) {
	rows, err := e.run(ctx, s)
	if err != nil {
		return nil, err
	}
	if len(rows) == 0 {
		return map[string]float64{}, nil
	}
	return rows[0].v, nil
}

// union returns the sorted union of column names.
func union(lists ...[]string) []string {
	seen := map[string]bool{}
	var out []string
	for _, l := range lists {
		for _, c := range l {
			if !seen[c] {
				seen[c] = true
				out = append(out, c)
			}
		}
	}
	sort.Strings(out)
	return out
}

func subset(cols []string, m map[string]string) bool {
	for _, c := range cols {
		if _, ok := m[c]; !ok {
			return false
		}
	}
	return true
}
