package aggregator

import "context"

// Engagement by visit property. Plausible's v1 allows time_on_page in a
// breakdown by a visit property when the question filters event:page:
// the time spent on the filtered pages in the visits of each row. Page
// leaves report it as engagement events of the page, so the row's
// engagement is read from the events of its visits: an events scan by
// session joined to the sessions of the row (engagementScan). An
// engagement reported after its visit ended is stored without one and
// falls in no row (the aggregate counts it).

// engagementMetrics are the metrics read from engagement events.
var engagementMetrics = map[string]bool{"time_on_page": true, "scroll_depth": true}

// hasPageFilter reports whether fs filter event:page.
func hasPageFilter(fs []Filter) bool {
	for _, f := range fs {
		if f.Prop.Name == "event:page" {
			return true
		}
	}
	return false
}

// engagementByVisit reports whether a breakdown by p under fs reads
// engagement metrics by visit: p is a visit property and fs filter
// event:page (Plausible's condition for time_on_page).
func engagementByVisit(p *Property, fs []Filter) bool {
	return p != nil && p.side == sideSessions && hasPageFilter(fs)
}

// splitEngagement splits a visit property breakdown's columns into the
// sessions side's and the engagement columns.
func splitEngagement(cols []string) (se, eng []string) {
	for _, c := range cols {
		if engagementCols[c] {
			eng = append(eng, c)
		} else {
			se = append(se, c)
		}
	}
	return se, eng
}

// engagementSQL are the engagement columns summed per visit.
var engagementSQL = map[string]string{
	"eng_ms": "sum(engagement_ms)",
	"eng_n":  "count()",
	"scroll": "sum(scroll_depth)",
}

// buildEngagement renders an engagement scan: the engagement events in
// the period matching the events-side filters, summed per visit, joined
// to the live visits matching the sessions-side filters, by the scan's
// property (s.prop, a visit property) and grouped by it or not.
func (s *scan) buildEngagement() *sqlb {
	b := &sqlb{}
	b.w("SELECT ")
	if s.grouped() {
		b.w("sk AS gk, ")
	}
	for i, c := range s.cols {
		if i > 0 {
			b.w(", ")
		}
		b.w("toFloat64(sum(x_", c, ")) AS c_", c)
	}
	b.w(" FROM (SELECT session_id")
	for _, c := range s.cols {
		b.w(", ", engagementSQL[c], " AS x_", c)
	}
	b.w(" FROM events")
	s.sampleClause(b)
	b.w(" WHERE site_id = ").arg(s.site).w(" AND ")
	s.timeRange(b, "ts", s.p.From, s.p.To)
	b.w(" AND type = 'engagement' AND session_id != 0")
	for _, f := range append(bySide(s.filters, sideEvents), anySide(s.filters)...) {
		b.w(" AND ")
		f.pred(b, s, sideEvents)
	}
	b.w(" GROUP BY session_id) AS e INNER JOIN (SELECT session_id, ")
	s.prop.expr(b)
	b.w(" AS sk FROM sessions")
	s.sessionsWhere(b, s.p.From.Add(-sessionSlack))
	b.w(" GROUP BY session_id, sk HAVING sum(sign) > 0) AS v USING session_id")
	if s.keyPred != nil {
		b.w(" WHERE ")
		s.keyPred(b, func() { b.w("sk") })
	}
	if s.grouped() {
		b.w(" GROUP BY gk")
	}
	return b
}

// engagementScan reads the engagement columns cols of q's visits by its
// property, for the keys keyPred selects: grouped by key, or together.
func (pl *plan) engagementScan(q *Query, cols []string, group bool, keyPred func(b *sqlb, key func())) *scan {
	s := pl.scan(srcEvents, cols, q.Filters)
	s.prop, s.group, s.keyPred, s.engagement = q.Property, group, keyPred, true
	return s
}

// engagementRows reads the engagement columns cols of each key of keys.
func (e *Engine) engagementRows(ctx context.Context, pl *plan, q *Query, cols, keys []string) (map[string]map[string]float64, error) {
	out := map[string]map[string]float64{}
	if len(keys) == 0 {
		return out, nil // has([], key) does not type-check
	}
	rows, err := e.run(ctx, pl.engagementScan(q, cols, true, func(b *sqlb, key func()) { b.w("has(").arg(keys).w(", "); key(); b.w(")") }))
	if err != nil {
		return nil, err
	}
	for _, r := range rows {
		out[r.key] = r.v
	}
	return out, nil
}

// setComponents puts the components cols of x (nil: none) into v.
func setComponents(v, x map[string]float64, cols []string) {
	for _, c := range cols {
		v[c] = x[c]
	}
}

// engagementExact fills the engagement columns of an exact breakdown's
// rows and of its (other) row, whose keys otherPred selects or, when
// nil, are those with fewer than kRead read visitors of the breakdown's
// scan over src.
func (e *Engine) engagementExact(ctx context.Context, pl *plan, q *Query, src source, kRead float64, cols []string,
	rows, otherRows []row, otherPred func(*sqlb, func())) error {
	keys := make([]string, 0, len(rows))
	for _, r := range rows {
		keys = append(keys, r.key)
	}
	by, err := e.engagementRows(ctx, pl, q, cols, keys)
	if err != nil {
		return err
	}
	for i := range rows {
		setComponents(rows[i].v, by[rows[i].key], cols)
	}
	if len(otherRows) == 0 {
		return nil
	}
	if otherPred == nil {
		otherPred = pl.foldedPred(q, src, kRead)
	}
	ov, err := e.one(ctx, pl.engagementScan(q, cols, false, otherPred))
	if err != nil {
		return err
	}
	setComponents(otherRows[0].v, ov, cols)
	return nil
}
