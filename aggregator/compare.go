package aggregator

import (
	"context"
	"time"
)

// Comparisons (Query.Compare). Every number of the comparison range is a
// cell of that range, released as the query's own numbers are: exact
// sites withhold a comparison of 1 to k-1 visitors (q.under; under
// filters or, for a breakdown row, always, as rows under k are folded),
// noisy sites release it with noise keyed by the comparison range and
// withhold it under k noisy visitors, and the reader's budget is charged
// for it. A breakdown row's comparison is the same key over the
// comparison range (the cell a breakdown of that range would release for
// it); the (other) row's comparison is the keys folded in the current
// range read over the comparison range together, a number of its own
// (a distinct cell, otherKey).

// setComparison puts a row's or point's comparison and change into o: cmp
// are the comparison's components (released), o's metrics the current
// ones. A withheld side (the current one: o["withheld"] set by values) has
// no change.
func (q *Query) setComparison(o map[string]any, cmp map[string]float64, extra map[string]any) {
	c := make(map[string]any, len(q.Metrics)+2)
	for k, v := range extra {
		c[k] = v
	}
	ch := make(map[string]any, len(q.Metrics))
	if q.under(cmp) {
		c["withheld"] = withheldReason(q.Site.Privacy.KAnonymity)
		for _, m := range q.Metrics {
			c[m], ch[m] = nil, nil
		}
	} else {
		v := nonNegative(cmp)
		for _, m := range q.Metrics {
			c[m] = metrics[m].value(v)
		}
		q.withholdEntry(c, v)
		for _, m := range q.Metrics {
			ch[m] = nil
			if o[m] != nil && c[m] != nil {
				ch[m] = change(metrics[m], o[m], c[m])
			}
		}
	}
	o["comparison"], o["change"] = c, ch
}

// comparePlan is pl's plan over the comparison range: the same sources,
// sampled by that range's own ratio where they are raw tables.
func (e *Engine) comparePlan(ctx context.Context, q *Query, pl *plan, src source) (*plan, error) {
	c := &plan{q: q, p: q.released(q.Compare.Period), dim: pl.dim, sources: pl.sources, cluster: pl.cluster}
	c.otherKey = Other + " of " + pl.p.From.UTC().Format(time.RFC3339) + "/" + pl.p.To.UTC().Format(time.RFC3339)
	if !src.rollup() {
		var err error
		if c.sample, err = e.sampleRatio(ctx, q.Site.Domain, c.p); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// compareRows reads, over cp's range, the components cols of each key
// (every key gets a row: a key absent there has none) and, when
// otherPred is set, of the keys it selects together (the (other) row),
// with their entry, engagement and conversion components.
func (e *Engine) compareRows(ctx context.Context, q *Query, cp *plan, src source, cols, entry, eng, keys []string,
	otherPred func(*sqlb, func())) (rows, other []row, err error) {
	by := map[string]map[string]float64{}
	if len(keys) > 0 {
		s := cp.scan(src, cols, q.Filters)
		s.prop, s.group = q.Property, true
		s.keyPred = func(b *sqlb, key func()) { b.w("has(").arg(keys).w(", "); key(); b.w(")") }
		got, err := e.run(ctx, s)
		if err != nil {
			return nil, nil, err
		}
		for _, r := range got {
			by[r.key] = r.v
		}
	}
	for _, k := range keys {
		v := by[k]
		if v == nil {
			v = make(map[string]float64, len(cols))
			for _, c := range cols {
				v[c] = 0
			}
		}
		rows = append(rows, row{key: k, v: v})
	}
	if otherPred != nil {
		s := cp.scan(src, cols, q.Filters)
		s.prop, s.keyPred = q.Property, otherPred
		ov, err := e.one(ctx, s)
		if err != nil {
			return nil, nil, err
		}
		for _, c := range cols {
			ov[c] += 0
		}
		other = []row{{key: Other, v: ov}}
	}
	if hasMetric(q, "conversion_rate") {
		if err := e.conversionTotals(ctx, cp, q, src, rows, other, otherPred); err != nil {
			return nil, nil, err
		}
	}
	// The folded keys are given (otherPred): kRead is not used.
	if len(entry) > 0 {
		if err := e.entryExact(ctx, cp, q, src, 0, entry, rows, other, otherPred); err != nil {
			return nil, nil, err
		}
	}
	if len(eng) > 0 {
		if err := e.engagementExact(ctx, cp, q, src, 0, eng, rows, other, otherPred); err != nil {
			return nil, nil, err
		}
	}
	return rows, other, nil
}

// compareExact adds the comparison to an exact breakdown's results: rows
// are its rows (results[:len(rows)]), and results[len(rows)], when
// withOther, its (other) row, whose keys otherPred selects (nil: those
// under kRead read visitors).
func (e *Engine) compareExact(ctx context.Context, q *Query, pl *plan, src source, cols, entry, eng []string, kRead float64,
	rows []row, otherPred func(*sqlb, func()), results []map[string]any, withOther bool) error {
	cp, err := e.comparePlan(ctx, q, pl, src)
	if err != nil {
		return err
	}
	keys := make([]string, 0, len(rows))
	for _, r := range rows {
		keys = append(keys, r.key)
	}
	var pred func(*sqlb, func())
	if withOther {
		pred = otherPred
		if pred == nil {
			pred = pl.foldedPred(q, src, kRead)
		}
	}
	cmp, other, err := e.compareRows(ctx, q, cp, src, cols, entry, eng, keys, pred)
	if err != nil {
		return err
	}
	for i := range rows {
		q.setComparison(results[i], cmp[i].v, nil)
	}
	if withOther {
		q.setComparison(results[len(rows)], other[0].v, nil)
	}
	return nil
}

// compareNoisy adds the comparison to a noisy breakdown's results: page
// are the rows shown (results[:len(page)]), results[len(page)], when
// withOther, the (other) row of the keys folded. Each comparison
// component is released through r as a cell of the comparison range (a
// row's: the key's cell there; the (other) row's: a cell of its own), and
// every one a breakdown of this question could release is charged,
// whatever was shown or folded.
func (e *Engine) compareNoisy(ctx context.Context, q *Query, pl *plan, r *release, src source, cols, entry, eng []string,
	page []row, folded []string, results []map[string]any, withOther bool) error {
	cp, err := e.comparePlan(ctx, q, pl, src)
	if err != nil {
		return err
	}
	keys := make([]string, 0, len(page))
	for _, row := range page {
		keys = append(keys, row.key)
	}
	var pred func(*sqlb, func())
	if withOther {
		pred = func(b *sqlb, key func()) { b.w("has(").arg(folded).w(", "); key(); b.w(")") }
	}
	rows, other, err := e.compareRows(ctx, q, cp, src, cols, entry, eng, keys, pred)
	if err != nil {
		return err
	}
	side := "ev"
	if q.Property.side == sideSessions {
		side = "se"
	}
	at := func(key, side string) cell {
		if key == Other {
			return cell{side: side, from: cp.p.From, to: cp.p.To, by: q.Property.Name, key: cp.otherKey}
		}
		return cell{side: side, from: cp.p.From, to: cp.p.To, by: q.Property.Name, key: key, row: true}
	}
	factor := cp.factor()
	rel := func(raw map[string]float64, key string) map[string]float64 {
		main := make(map[string]float64, len(cols))
		for _, c := range cols {
			main[c] = raw[c]
		}
		v := r.values(main, at(key, side), factor)
		if tv, ok := raw["total_visitors"]; ok {
			v["total_visitors"] = r.totalVisitors(q, cp, key, tv)
		}
		if len(entry) > 0 {
			x := map[string]float64{}
			for _, c := range entry {
				if c == "visitors" {
					x[c] = raw[entryVisitors]
				} else {
					x[c] = raw[c]
				}
			}
			setEntry(v, r.values(x, at(key, "se"), factor), entry)
		}
		if len(eng) > 0 {
			x := map[string]float64{}
			for _, c := range eng {
				x[c] = raw[c]
			}
			setComponents(v, r.values(x, at(key, "ev"), factor), eng)
		}
		return v
	}
	for i, row := range rows {
		q.setComparison(results[i], rel(row.v, row.key), nil)
	}
	if withOther {
		q.setComparison(results[len(page)], rel(other[0].v, Other), nil)
	}
	// What this question releases does not depend on its answer.
	for _, key := range []string{"", Other} {
		for _, c := range cols {
			r.charge(c, at(key, side))
		}
		for _, c := range entry {
			r.charge(c, at(key, "se"))
		}
		for _, c := range eng {
			r.charge(c, at(key, "ev"))
		}
	}
	if hasMetric(q, "conversion_rate") && !q.Property.siteTotal() {
		r.charge("visitors", cell{side: side, from: cp.p.From, to: cp.p.To, by: q.Property.Name, key: cp.otherKey}.withoutGoals(q.Filters))
	} else if hasMetric(q, "conversion_rate") {
		r.charge("visitors", cell{side: "ev", from: cp.p.From, to: cp.p.To}.withoutGoals(q.Filters))
	}
	return nil
}
