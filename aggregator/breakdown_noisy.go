package aggregator

import (
	"context"
	"math"
	"sort"
)

// maxNoisyKeys bounds the keys a noisy breakdown considers: the keys with
// the most visitors; the rest are neither shown nor folded into (other).
const maxNoisyKeys = 1000

// breakdownNoisy is Breakdown for a site whose aggregates are noisy.
// Which rows are shown is decided by their noisy visitors alone (a row
// with fewer than k is folded into (other)), never by exact counts, so a
// row's presence says nothing exact about it: every key read is a
// candidate, in the order of its noisy visitors. The (other) row is read
// again over the folded keys together (a person of several counts once)
// and carries noise of its own; the number of folded rows is noisy too.
//
// entry are the columns of the visits entering on each page of a
// breakdown by event:page (entry.go): sessions-side cells of the row,
// released and charged beside its events-side ones.
//
// eng are the engagement columns of a breakdown by a visit property
// under a page filter (engagement.go): events-side cells of the row.
func (e *Engine) breakdownNoisy(ctx context.Context, q *Query, pl *plan, src source, cols, entry, eng []string) (*Response, error) {
	s := pl.scan(src, cols, q.Filters)
	s.prop, s.group, s.limit = q.Property, true, maxNoisyKeys
	all, err := e.run(ctx, s)
	if err != nil {
		return nil, err
	}
	keys := make([]string, 0, len(all))
	for _, r := range all {
		keys = append(keys, r.key)
	}
	var entryBy, engBy map[string]map[string]float64
	if len(entry) > 0 {
		if entryBy, err = e.entryRows(ctx, pl, q, entry, keys); err != nil {
			return nil, err
		}
	}
	if len(eng) > 0 {
		if engBy, err = e.engagementRows(ctx, pl, q, eng, keys); err != nil {
			return nil, err
		}
	}
	if hasMetric(q, "conversion_rate") {
		if err := e.conversionTotals(ctx, pl, q, src, all, nil, nil); err != nil {
			return nil, err
		}
	}
	if hasRevenue(q) {
		revBy, err := e.revenueRows(ctx, pl, q, keys)
		if err != nil {
			return nil, err
		}
		for _, raw := range all {
			addRevenue(raw.v, revBy[raw.key])
		}
	}
	r := e.release(q)
	k := float64(q.Site.Privacy.KAnonymity)
	factor := pl.factor()
	side := "ev"
	if q.Property.side == sideSessions {
		side = "se"
	}
	at := func(key string) cell {
		return cell{side: side, from: pl.p.From, to: pl.p.To, by: q.Property.Name, key: key, row: key != Other}
	}
	// entryAt is the sessions-side cell of a row's entering visits.
	entryAt := func(key string) cell {
		c := at(key)
		c.side = "se"
		return c
	}
	// withEntry releases a row's entry components beside v.
	withEntry := func(v, raw map[string]float64, key string) {
		if len(entry) == 0 {
			return
		}
		ev := map[string]float64{}
		for _, c := range entry {
			ev[c] = raw[c]
		}
		setEntry(v, r.values(ev, entryAt(key), factor), entry)
	}
	// engAt is the events-side cell of a row's engagement.
	engAt := func(key string) cell {
		c := at(key)
		c.side = "ev"
		return c
	}
	// withEng releases a row's engagement components beside v.
	withEng := func(v, raw map[string]float64, key string) {
		if len(eng) == 0 {
			return
		}
		x := map[string]float64{}
		for _, c := range eng {
			x[c] = raw[c]
		}
		setComponents(v, r.values(x, engAt(key), factor), eng)
	}
	var shown []row
	var folded []string
	for _, raw := range all {
		v := r.values(raw.v, at(raw.key), factor)
		if tv, ok := raw.v["total_visitors"]; ok {
			v["total_visitors"] = r.totalVisitors(q, pl, raw.key, tv)
		}
		withEntry(v, entryBy[raw.key], raw.key)
		withEng(v, engBy[raw.key], raw.key)
		if v["visitors"] >= k {
			shown = append(shown, row{key: raw.key, v: v})
		} else {
			folded = append(folded, raw.key)
		}
	}
	sort.SliceStable(shown, func(i, j int) bool {
		if shown[i].v["visitors"] != shown[j].v["visitors"] {
			return shown[i].v["visitors"] > shown[j].v["visitors"]
		}
		return shown[i].key < shown[j].key
	})
	off := min((q.Page-1)*q.Limit, len(shown))
	page := shown[off:min(off+q.Limit, len(shown))]
	results := make([]map[string]any, 0, len(page)+1)
	for _, row := range page {
		results = append(results, q.rowValues(row.key, row.v))
	}
	meta := pl.meta()
	n := int(math.Round(max(r.value("keys", at(Other), float64(len(folded)), 1), 0)))
	shownOther := false
	// (other) is charged whether or not anything was folded: what a
	// breakdown costs depends on its question alone.
	for _, c := range cols {
		r.charge(c, at(Other))
	}
	for _, c := range entry {
		r.charge(c, entryAt(Other))
	}
	for _, c := range eng {
		r.charge(c, engAt(Other))
	}
	r.chargeRevenue(q, at(Other))
	if len(folded) == 0 && hasMetric(q, "conversion_rate") {
		r.totalVisitors(q, pl, Other, 0)
	}
	if len(folded) > 0 {
		other, err := e.otherOf(ctx, q, pl, src, cols, folded)
		if err != nil {
			return nil, err
		}
		ov := r.values(other, at(Other), factor)
		if tv, ok := other["total_visitors"]; ok {
			ov["total_visitors"] = r.totalVisitors(q, pl, Other, tv)
		}
		if len(entry) > 0 {
			pred := func(b *sqlb, key func()) { b.w("has(").arg(folded).w(", "); key(); b.w(")") }
			eo, err := e.one(ctx, pl.entryScan(q, entry, false, pred))
			if err != nil {
				return nil, err
			}
			withEntry(ov, eo, Other)
		}
		if len(eng) > 0 {
			pred := func(b *sqlb, key func()) { b.w("has(").arg(folded).w(", "); key(); b.w(")") }
			x, err := e.one(ctx, pl.engagementScan(q, eng, false, pred))
			if err != nil {
				return nil, err
			}
			withEng(ov, x, Other)
		}
		if ov["visitors"] >= k {
			shownOther = true
			if q.Page == 1 {
				results = append(results, q.rowValues(Other, ov))
			}
		}
	}
	meta.FoldedRows, meta.OtherShown = &n, &shownOther
	if q.Compare != nil {
		withOther := shownOther && q.Page == 1
		if err := e.compareNoisy(ctx, q, pl, r, src, cols, entry, eng, page, folded, results, withOther); err != nil {
			return nil, err
		}
		meta.Comparison = q.comparisonMeta()
	}
	if err := e.finish(q, r, &meta); err != nil {
		return nil, err
	}
	return &Response{Results: results, Meta: meta}, nil
}

// otherOf reads the (other) row of a noisy breakdown: the folded keys'
// components together, so that its visitors count each person once (a
// sum over the rows would count one person once per folded row read).
func (e *Engine) otherOf(ctx context.Context, q *Query, pl *plan, src source, cols, folded []string) (map[string]float64, error) {
	pred := func(b *sqlb, key func()) { b.w("has(").arg(folded).w(", "); key(); b.w(")") }
	s := pl.scan(src, cols, q.Filters)
	s.prop, s.keyPred = q.Property, pred
	v, err := e.one(ctx, s)
	if err != nil {
		return nil, err
	}
	if hasRevenue(q) {
		rv, err := e.revenueOf(ctx, pl, q, pred)
		if err != nil {
			return nil, err
		}
		addRevenue(v, rv)
	}
	if hasMetric(q, "conversion_rate") {
		rows := []row{{key: Other, v: v}}
		if err := e.conversionTotals(ctx, pl, q, src, nil, rows, pred); err != nil {
			return nil, err
		}
	}
	return v, nil
}

// rowValues is a breakdown row: the property's key and each metric.
func (q *Query) rowValues(key string, v map[string]float64) map[string]any {
	o := map[string]any{q.Property.Key: key}
	q.releaseRevenue(v)
	v = nonNegative(v)
	for _, m := range q.Metrics {
		o[m] = metrics[m].value(v)
	}
	q.withholdEntry(o, v)
	return o
}

// totalVisitors releases a breakdown row's conversion_rate denominator:
// the row's visitors without the goal filters, or for a breakdown by goal
// or by a custom property the visitors of the whole question without
// them (one cell for all rows, and the same cell as that aggregate's
// visitors).
func (r *release) totalVisitors(q *Query, pl *plan, key string, raw float64) float64 {
	at := cell{side: "ev", from: pl.p.From, to: pl.p.To}
	if !q.Property.siteTotal() {
		if q.Property.side == sideSessions {
			at.side = "se"
		}
		at.by, at.key, at.row = q.Property.Name, key, key != Other
		if key == Other && pl.otherKey != "" {
			at.key = pl.otherKey
		}
	}
	return r.value("visitors", at.withoutGoals(q.Filters), raw, pl.factor())
}
