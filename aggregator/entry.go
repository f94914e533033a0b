package aggregator

import (
	"context"
	"fmt"
)

// Visits by entry page. Plausible's v1 computes visits, bounce_rate and
// visit_duration in a breakdown by event:page over the visits that
// entered on each page: a page's row holds the page views of the page
// and, beside them, the visits whose entry page it is. Those are read on
// the sessions side (a breakdown by visit:entry_page of the same
// question, restricted to the pages of the rows), and they are
// sessions-side cells of the row in noisy mode.

// entryCols are the sessions-side columns of those metrics.
var entryCols = map[string]bool{"visits": true, "bounces": true, "duration": true}

// entryMetrics are the metrics a breakdown by event:page reads from the
// visits entering on each page.
var entryMetrics = map[string]bool{"visits": true, "bounce_rate": true, "visit_duration": true}

// entryVisitors is the row component holding the visitors of the visits
// entering on the row's page: their metrics are withheld when 1 to k-1
// people made them (entryWithheld).
const entryVisitors = "entry_visitors"

// byEntry reports whether a breakdown by p reads entryMetrics by entry
// page.
func byEntry(p *Property) bool { return p != nil && p.Name == "event:page" }

// splitEntry splits the columns of a breakdown by event:page into those
// of its page views and those of the visits entering on it (with their
// visitors, for the k threshold); none of the latter if no entry metric
// is asked.
func splitEntry(cols []string) (ev, se []string) {
	for _, c := range cols {
		if entryCols[c] {
			se = append(se, c)
		} else {
			ev = append(ev, c)
		}
	}
	if len(se) > 0 {
		se = union(se, []string{"visitors"})
	}
	return ev, se
}

// entryProp is visit:entry_page, whose values are paths as event:page's.
var entryProp = func() *Property {
	p, err := ParseProperty("visit:entry_page")
	if err != nil {
		panic(err)
	}
	return p
}()

// entryScan reads cols of the visits of q's question entering on the
// pages that keyPred selects: grouped by page, or (group false) together.
func (pl *plan) entryScan(q *Query, cols []string, group bool, keyPred func(b *sqlb, key func())) *scan {
	s := pl.scan(srcSessions, cols, q.Filters)
	s.prop, s.group, s.keyPred = entryProp, group, keyPred
	return s
}

// entryRows reads the entry columns cols of each page of keys, by page.
func (e *Engine) entryRows(ctx context.Context, pl *plan, q *Query, cols []string, keys []string) (map[string]map[string]float64, error) {
	out := map[string]map[string]float64{}
	if len(keys) == 0 {
		return out, nil // has([], key) does not type-check
	}
	rows, err := e.run(ctx, pl.entryScan(q, cols, true, func(b *sqlb, key func()) { b.w("has(").arg(keys).w(", "); key(); b.w(")") }))
	if err != nil {
		return nil, err
	}
	for _, r := range rows {
		out[r.key] = r.v
	}
	return out, nil
}

// setEntry puts a page's entry components ev (nil: no visit entered
// there) into its row's components v.
func setEntry(v, ev map[string]float64, cols []string) {
	for _, c := range cols {
		if c == "visitors" {
			v[entryVisitors] = ev[c]
		} else {
			v[c] = ev[c]
		}
	}
}

// entryWithheld reports whether the entry metrics of a row with
// components v are withheld: 1 to k-1 people made the visits entering on
// its page (in noisy mode, fewer than k noisy ones), though the page had
// k visitors or more.
func (q *Query) entryWithheld(v map[string]float64) bool {
	n, ok := v[entryVisitors]
	return ok && q.under(map[string]float64{"visitors": n})
}

// withholdEntry nulls the entry metrics of a breakdown row o whose
// components v are entryWithheld, with the reason beside them.
func (q *Query) withholdEntry(o map[string]any, v map[string]float64) {
	if !q.entryWithheld(v) {
		return
	}
	for _, m := range q.Metrics {
		if entryMetrics[m] {
			o[m] = nil
		}
	}
	o["withheld"] = fmt.Sprintf("k-anonymity: fewer than %d visitors entered on this page", q.Site.Privacy.KAnonymity)
}

// entryExact fills the entry columns of an exact breakdown's rows and of
// its (other) row, the visits entering on the folded pages: otherPred
// selects those, or, when nil, they are the pages with fewer than kRead
// read visitors of the breakdown's scan over src.
func (e *Engine) entryExact(ctx context.Context, pl *plan, q *Query, src source, kRead float64, cols []string,
	rows, otherRows []row, otherPred func(*sqlb, func())) error {
	keys := make([]string, 0, len(rows))
	for _, r := range rows {
		keys = append(keys, r.key)
	}
	by, err := e.entryRows(ctx, pl, q, cols, keys)
	if err != nil {
		return err
	}
	for i := range rows {
		setEntry(rows[i].v, by[rows[i].key], cols)
	}
	if len(otherRows) == 0 {
		return nil
	}
	if otherPred == nil {
		otherPred = pl.foldedPred(q, src, kRead)
	}
	ov, err := e.one(ctx, pl.entryScan(q, cols, false, otherPred))
	if err != nil {
		return err
	}
	setEntry(otherRows[0].v, ov, cols)
	return nil
}

// foldedPred is the predicate of a key folded into (other) by an exact
// breakdown of q over src: fewer than kRead read visitors.
func (pl *plan) foldedPred(q *Query, src source, kRead float64) func(*sqlb, func()) {
	folded := pl.scan(src, []string{"visitors"}, q.Filters)
	folded.prop, folded.group = q.Property, true
	folded.maxVisitors = kRead
	return func(b *sqlb, key func()) {
		key()
		b.w(pl.in(), "(SELECT gk FROM (").sub(folded.build()).w("))")
	}
}
