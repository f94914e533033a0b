package aggregator

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/glimpse-analytics/glimpse/aggregator/period"
	"github.com/glimpse-analytics/glimpse/internal/model"
)

// source is the table a scan reads.
type source int

const (
	srcEvents source = iota
	srcSessions
	srcEventsHourly
	srcSessionsHourly
	srcPagesHourly
	srcSessionDims
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
	case srcSessionDims:
		return sessionDimsCols
	}
	return eventsCols
}

func (s source) table() string {
	return [...]string{"events", "sessions", "events_hourly", "sessions_hourly", "pages_hourly", "sessions_dims_hourly"}[s]
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
	p       period.Period
	filters []Filter
	cols    []string // raw column names, see metric.go
	sample  float64  // SAMPLE ratio; 0 or 1: none
	dim     string   // srcSessionDims: the dimension (a property name) read
	// email: the question is about email campaigns, whose rows' people
	// are visitors (emailScope); otherwise events scans count the site's
	// traffic only.
	email bool

	bucket string    // the key is this interval's bucket, or
	prop   *Property // this property (and only its scope is counted)
	group  bool      // GROUP BY the key

	minVisitors float64 // HAVING c_visitors >= minVisitors (if > 0)
	maxVisitors float64 // HAVING c_visitors < maxVisitors (if > 0)
	limit       int     // ORDER BY c_visitors DESC, gk LIMIT limit OFFSET offset (if > 0)
	offset      int
	keyPred     func(b *sqlb, key func()) // a predicate on the key, applied before grouping
	countKeys   bool                      // also select uniqExact(key) AS c_keys

	// fold > 0 folds the groups with fewer read visitors than fold into
	// one row in the same query (see foldBuild); states selects, instead
	// of c_<col>, c_v (visitors) and m_<col>: values the fold re-aggregates.
	fold   float64
	states bool

	// engagement: an events scan of engagement by a visit property
	// (buildEngagement); with revenue, of revenue by a visit property
	// (buildRevenueByVisit).
	engagement bool

	// revenue: an events scan of the events carrying revenue, grouped by
	// the key (if any) and currency (revenue.go); clip > 0 clips each
	// event's revenue at clip units.
	revenue bool
	clip    int64
}

func (s *scan) grouped() bool { return s.group }

// col returns the SQL of raw column c over the scan's source.
func (s *scan) col(c string) string {
	if s.pageEngagement() {
		if x, ok := pageEngagementCols[c]; ok {
			return x
		}
	}
	if s.src == srcEvents && !s.email {
		if x, ok := siteEventsCols[c]; ok {
			return x
		}
	}
	return s.src.cols()[c]
}

// omitEmpty writes, for a breakdown by a property without an empty row,
// that its value, col, is set.
// sessionsWhere writes the sessions rows a scan reads, after FROM
// sessions: the sample, the site, sessions that started in [from, p.To),
// the visit filters, and for a property that omits empties its set
// values only.
func (s *scan) sessionsWhere(b *sqlb, from time.Time) {
	s.sampleClause(b)
	b.w(" WHERE site_id = ").arg(s.site).w(" AND ")
	s.timeRange(b, "start", from, s.p.To)
	for _, f := range bySide(s.filters, sideSessions) {
		b.w(" AND ")
		f.pred(b, s, sideSessions)
	}
	for _, f := range anySide(s.filters) {
		b.w(" AND ")
		f.pred(b, s, sideSessions)
	}
	s.omitEmpty(b, func() { s.prop.expr(b) })
}

func (s *scan) omitEmpty(b *sqlb, col func()) {
	if s.prop != nil && len(s.prop.parts) > 0 {
		for _, q := range s.prop.parts {
			if q.omitEmpty {
				b.w(" AND ")
				q.expr(b)
				b.w(" != ''")
			}
		}
		return
	}
	if s.prop != nil && s.prop.omitEmpty {
		b.w(" AND ")
		col()
		b.w(" != ''")
	}
}

// pageEngagement reports whether the scan is grouped by a property that
// counts page views (event:page) and asks for engagement, which page
// leaves report as engagement events with the page's path: it then reads
// those events too (Property.scope), still counting the visitors and
// visits of the page views only.
func (s *scan) pageEngagement() bool {
	if s.src != srcEvents || s.prop == nil || len(s.prop.types) != 1 || s.prop.types[0] != model.TypePageview ||
		s.prop.goalScoped(s.filters) {
		return false
	}
	for _, c := range s.cols {
		if engagementCols[c] {
			return true
		}
	}
	return false
}

// siteOnly reports whether an events scan can skip email rows entirely:
// not an email question, and no column counts them.
func (s *scan) siteOnly() bool {
	if s.email {
		return false
	}
	for _, c := range s.cols {
		if emailCols[c] {
			return false
		}
	}
	return true
}

func (s *scan) hasKey() bool { return s.bucket != "" || s.prop != nil }

// key writes the group key expression over the source's rows.
func (s *scan) key(b *sqlb) {
	if s.src == srcSessionDims && s.prop != nil {
		b.w(s.prop.valueCol)
		return
	}
	if s.prop != nil {
		s.prop.expr(b)
		return
	}
	s.bucketKey(b, s.src.timeCol())
}

// bucketKey writes the time bucket of column t.
func (s *scan) bucketKey(b *sqlb, t string) { bucketExpr(b, s.bucket, t, s.p.Loc.String()) }

// bucketExpr writes the bucket of interval iv holding column t's time, in
// the zone loc, as a string ("2025-03-01", or "2025-03-01 13:00:00" for
// hours, "2025-03-01 13:05:00" for minutes).
func bucketExpr(b *sqlb, iv, t, loc string) {
	switch iv {
	case period.IntervalMinute:
		b.w("toString(toStartOfMinute(", t, ", ").arg(loc).w("))")
	case period.IntervalHour:
		b.w("toString(toStartOfHour(", t, ", ").arg(loc).w("))")
	case period.IntervalWeek:
		b.w("toString(toMonday(toDate(", t, ", ").arg(loc).w(")))")
	case period.IntervalMonth:
		b.w("toString(toStartOfMonth(toDate(", t, ", ").arg(loc).w(")))")
	default:
		b.w("toString(toDate(", t, ", ").arg(loc).w("))")
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
	sel := func(keyExpr func()) {
		b.w("SELECT ")
		if s.grouped() {
			keyExpr()
			b.w(" AS gk, ")
		}
		if s.revenue {
			s.revenueSelect(b)
			return
		}
		if s.countKeys {
			b.w("toFloat64(uniqExact(")
			keyExpr()
			b.w(")) AS c_keys, ")
		}
		if s.states {
			for _, c := range s.cols {
				inner, _ := stateExpr(s.col(c))
				b.w(inner, " AS m_", c, ", ")
			}
			// Visitors is a state: finalize it rather than count twice.
			b.w("toFloat64(finalizeAggregation(m_visitors)) AS c_v")
			return
		}
		for i, c := range s.cols {
			if i > 0 {
				b.w(", ")
			}
			b.w("toFloat64(", s.col(c), ") AS c_", c)
		}
	}
	tail := func() {
		if s.revenue {
			b.w(" GROUP BY ")
			if s.grouped() {
				b.w("gk, ")
			}
			b.w("cur")
			return
		}
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
		s.joinVisits(b)
		b.w(" WHERE site_id = ").arg(s.site).w(" AND ")
		s.timeRange(b, "ts", s.p.From, s.p.To)
		if s.siteOnly() {
			b.w(" AND type NOT IN " + emailTypes)
		}
		if s.revenue {
			b.w(" AND " + revenueRows)
		}
		// A page's revenue is that of the events on it, not of its views.
		if s.prop != nil && !s.prop.goalScoped(s.filters) && !(s.revenue && s.prop.pagesOnly()) {
			s.prop.scope(b, s.pageEngagement())
		}
		s.omitEmpty(b, func() { s.prop.expr(b) })
		for _, f := range append(bySide(s.filters, sideEvents), anySide(s.filters)...) {
			b.w(" AND ")
			f.pred(b, s, sideEvents)
		}
		if vf := bySide(s.filters, sideSessions); len(vf) > 0 {
			b.w(" AND session_id IN (SELECT session_id FROM sessions")
			s.sampleClause(b)
			b.w(" WHERE site_id = ").arg(s.site).w(" AND ")
			s.timeRange(b, "start", s.p.From.Add(-sessionSlack), s.p.To)
			for _, f := range vf {
				b.w(" AND ")
				f.pred(b, s, sideSessions)
			}
			if attributionOnly(vf) {
				// Every version of a session has the same attribution, so the
				// live sessions matching vf are those with a +1 row matching
				// it: no collapse needed (see 0004_session_rollups.sql).
				b.w(" AND sign > 0)")
			} else {
				b.w(" GROUP BY session_id HAVING sum(sign) > 0)")
			}
		}
		if s.keyPred != nil {
			b.w(" AND ")
			s.keyPred(b, key)
		}
		tail()
	case srcSessions:
		sel(func() { b.w("gk") })
		if ef := append(bySide(s.filters, sideEvents), eventTrees(anySide(s.filters))...); len(ef) > 0 {
			s.sessionsOfEvents(b, ef)
		} else {
			b.w(" FROM (SELECT ")
			if s.hasKey() {
				s.key(b)
				b.w(" AS gk, ")
			}
			b.w("visitor_id, session_id, " + sessionSums + ", sum(sign * pageviews) AS ps, sum(sign * events) AS es FROM sessions")
			s.sessionsWhere(b, s.p.From)
			b.w(" GROUP BY ")
			if s.hasKey() {
				b.w("gk, ")
			}
			b.w("visitor_id, session_id HAVING vs > 0)")
		}
		if s.keyPred != nil {
			b.w(" WHERE ")
			s.keyPred(b, func() { b.w("gk") })
		}
		tail()
	default: // rollups: never filtered, but for sessions_dims_hourly on its dimension
		key := func() { s.key(b) }
		sel(key)
		b.w(" FROM ", s.src.table(), " WHERE site_id = ").arg(s.site).w(" AND ")
		if s.src == srcSessionDims {
			b.w("dim = ").arg(s.dim).w(" AND ")
			for _, f := range s.filters {
				// Filters here are on s.dim (plan checks): read its value.
				p := *f.Prop
				p.col, p.prop = p.valueCol, ""
				g := f
				g.Prop = &p
				g.leafPred(b)
				b.w(" AND ")
			}
		}
		s.timeRange(b, "hour", s.p.From, s.p.To)
		if s.src == srcSessionDims {
			s.omitEmpty(b, func() { b.w("value") })
		}
		if s.keyPred != nil {
			b.w(" AND ")
			s.keyPred(b, key)
		}
		tail()
	}
	return b
}

// sessionSums are a collapsed session's sign-weighted sums but for its
// page views and events (ps, es): vs its liveness, bs, ds, and vps the
// page views of the whole visit (views_per_visit).
const sessionSums = "sum(sign) AS vs, sum(sign * is_bounce) AS bs, sum(sign * duration) AS ds, sum(sign * pageviews) AS vps"

// sessionsOfEvents writes the FROM clause of a sessions scan under event
// filters ef: the visits that hold a matching event in the period (other
// than engagement, which makes no visit), as Plausible counts them, each
// with ps and es the page views and events that match, not the visit's
// own. A time series files a visit under the bucket of its matching
// events (once per bucket it has some in), not the hour it started.
func (s *scan) sessionsOfEvents(b *sqlb, ef []Filter) {
	b.w(" FROM (SELECT ")
	switch {
	case s.prop != nil:
		b.w("sk AS gk, ")
	case s.bucket != "":
		b.w("ek AS gk, ")
	}
	b.w("visitor_id, session_id, vs, bs, ds, vps, ps, es FROM (SELECT ")
	if s.prop != nil {
		s.key(b)
		b.w(" AS sk, ")
	}
	b.w("visitor_id, session_id, " + sessionSums + " FROM sessions")
	s.sessionsWhere(b, s.p.From.Add(-sessionSlack))
	b.w(" GROUP BY ")
	if s.prop != nil {
		b.w("sk, ")
	}
	b.w("visitor_id, session_id HAVING vs > 0) AS v INNER JOIN (SELECT session_id, ")
	if s.prop == nil && s.bucket != "" {
		s.bucketKey(b, "ts")
		b.w(" AS ek, ")
	}
	b.w("toInt64(countIf(type = 'pageview')) AS ps, " +
		"toInt64(countIf(type IN ('pageview', 'custom', 'outbound', 'download', 'impression'))) AS es FROM events")
	s.sampleClause(b)
	b.w(" WHERE site_id = ").arg(s.site).w(" AND ")
	s.timeRange(b, "ts", s.p.From, s.p.To)
	b.w(" AND type NOT IN " + noVisitTypes)
	for _, f := range ef {
		b.w(" AND ")
		f.pred(b, s, sideEvents)
	}
	b.w(" GROUP BY session_id")
	if s.prop == nil && s.bucket != "" {
		b.w(", ek")
	}
	b.w(") AS e USING session_id)")
}

// stateExpr splits a column's aggregate into one over rows that yields a
// mergeable value (a uniq state, or a count or sum) and the function that
// merges those values across groups.
func stateExpr(expr string) (inner, merge string) {
	if rest, ok := strings.CutPrefix(expr, "uniqIf("); ok {
		return "uniqStateIf(" + rest, "uniqMerge"
	}
	for _, f := range []string{"uniq(", "uniqMerge("} {
		if rest, ok := strings.CutPrefix(expr, f); ok {
			return strings.TrimSuffix(f, "(") + "State(" + rest, "uniqMerge"
		}
	}
	return expr, "sum"
}

// foldBuild renders a grouped scan whose groups under s.fold read visitors
// are folded into one row in the same query: the inner query aggregates
// per key into mergeable values, the outer one merges them per key or,
// for the folded keys, all together (a kept key's visitors are the inner
// query's finalized count: its state is not merged a second time).
// Selected columns: gk (String; empty for the folded row), folded
// (UInt8), c_keys (keys per row), c_<col>;
// rows ordered folded first, then by visitors descending and key, at most
// s.limit + s.offset + 1 of them.
func (s *scan) foldBuild() *sqlb {
	in := *s
	in.fold, in.states, in.group, in.limit, in.offset = 0, true, true, 0, 0
	in.minVisitors, in.maxVisitors, in.countKeys = 0, 0, false
	b := &sqlb{}
	b.w("SELECT if(c_v < ").arg(s.fold).w(", '', gk) AS fk, toUInt8(c_v < ").arg(s.fold).w(") AS folded, toFloat64(count()) AS c_keys")
	for _, c := range s.cols {
		_, merge := stateExpr(s.col(c))
		if c == "visitors" {
			// A kept key's group is its one inner row, whose visitors the
			// inner query has already finalized (c_v): only the folded
			// keys' states are merged again. Re-merging every key's state
			// cost ~20% of a 30-day top-pages query.
			b.w(", if(folded = 1, toFloat64(uniqMergeIf(m_visitors, c_v < ").arg(s.fold).w(")), any(c_v)) AS c_visitors")
			continue
		}
		b.w(", toFloat64(", merge, "(m_", c, ")) AS c_", c)
	}
	b.w(" FROM (").sub(in.build()).w(") GROUP BY folded, fk ORDER BY folded DESC, c_visitors DESC, fk ASC LIMIT ").
		arg(s.limit + s.offset + 1)
	return b
}

// row is one result row of a scan: its group key and raw columns.
type row struct {
	key    string
	v      map[string]float64
	folded bool // a fold's (other) row
}

// run executes the scan and scales every column by the sample factor.
func (e *Engine) run(ctx context.Context, s *scan) ([]row, error) {
	var b *sqlb
	switch {
	case s.engagement:
		b = s.buildEngagement()
	case s.fold > 0:
		b = s.foldBuild()
	default:
		b = s.build()
	}
	ctx, cancel := context.WithTimeout(ctx, e.opts.QueryTimeout)
	defer cancel()
	rows, err := e.opts.Conn.Query(ctx, e.settings(b).String(), b.args...)
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
		var folded uint8
		if s.fold > 0 {
			dest = append(dest, &folded)
		}
		var keys float64
		if s.countKeys || s.fold > 0 {
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
		if s.countKeys || s.fold > 0 {
			r.v["keys"] = keys
		}
		r.folded = folded == 1
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
