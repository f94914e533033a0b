// Package aggregator is Glimpse's query side: Plausible v1 metrics,
// properties, periods, filters, time series and breakdowns over the raw
// tables and the hourly rollups, with k-anonymity applied to everything
// that leaves it.
//
// Rollups versus raw tables: an aggregate or time series is answered from
// events_hourly and sessions_hourly when it has no filters, asks only for
// visitors, pageviews, events, visits, bounce_rate, visit_duration or
// views_per_visit, is not realtime, and every boundary of the period and
// of its buckets falls on a whole UTC hour (the rollups' hours are UTC; in
// a zone with a half-hour offset a local day starts mid-hour). A breakdown
// by event:page with no filters asking for visitors and pageviews reads
// pages_hourly under the same condition. sessions_dims_hourly holds visits
// per hour and attribution property (source, UTM, geo, browser, OS,
// device, screen, connection; not entry or exit page): a breakdown by one
// of them, unfiltered or filtered on that property only, reads it, and so
// does the sessions side of an aggregate or time series filtered on one
// of them (its events side stays raw: meta.source rollup+raw). Everything
// else reads the raw tables. Sessions are always read collapsed: a
// session's rows are summed with their sign, so an update's cancelled
// state (-1) and its replacement (+1) net out whether or not ClickHouse
// has merged them yet (no FINAL).
//
// Breakdowns fold the keys under k into "(other)" in the same query that
// ranks the keys: per-key uniq states and sums, merged per key or across
// the folded keys (scan.foldBuild).
//
// Sampling: when the events rollup says a raw query would cover more than
// Options.SampleThreshold events, raw scans read SAMPLE r (by visitor_id,
// so visitors, their sessions and events are sampled together) and every
// count is scaled by 1/r, reported as meta.sample_factor.
package aggregator

import (
	"context"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/glimpse-analytics/glimpse/aggregator/noise"
	"github.com/glimpse-analytics/glimpse/aggregator/period"
)

// Options configure an Engine.
type Options struct {
	Conn driver.Conn
	// QueryTimeout bounds each SQL query (default 30 s).
	QueryTimeout time.Duration
	// SampleThreshold: raw queries over ranges with more events than this
	// are sampled (default 10,000,000; negative: never sample).
	SampleThreshold int64
	// Budget charges readers for the numbers noisy sites release
	// (disclosure.go); nil charges nothing.
	Budget *Budget
	// Cluster: Conn reaches a host of a cluster whose database was
	// migrated with --cluster, so every table read is a Distributed table
	// (cluster.go).
	Cluster bool
}

// Engine answers queries.
type Engine struct {
	opts    Options
	noiseMu sync.Mutex
	noises  map[string]*noise.Noise // by site
}

// New returns an Engine.
func New(o Options) *Engine {
	if o.QueryTimeout <= 0 {
		o.QueryTimeout = 30 * time.Second
	}
	if o.SampleThreshold == 0 {
		o.SampleThreshold = 10_000_000
	}
	return &Engine{opts: o}
}

// finish charges the reader for what r released and completes meta.
func (e *Engine) finish(q *Query, r *release, meta *Meta) error {
	meta.Aggregates = q.Site.Privacy.Aggregates
	if !r.noisy {
		return nil
	}
	meta.Epsilon = q.Site.Privacy.Epsilon
	if !q.until.IsZero() && q.until.Before(q.Period.To) {
		meta.ReleasedUntil = &q.until
	}
	left, err := e.opts.Budget.spend(q.Reader, q.Site, r)
	if err != nil {
		return err
	}
	if !math.IsInf(left, 1) {
		meta.BudgetRemaining = &left
	}
	return nil
}

// Meta describes how a response was computed; Plausible clients ignore it.
type Meta struct {
	Source       string  `json:"source"`        // rollup, raw, or rollup+raw
	SampleFactor float64 `json:"sample_factor"` // 1: not sampled; n: one in n visitors read, counts scaled by n
	KAnonymity   int     `json:"k_anonymity"`
	Filtered     bool    `json:"filtered"`
	FoldedRows   *int    `json:"folded_rows,omitempty"` // breakdowns: rows under k folded into (other)
	OtherShown   *bool   `json:"other_shown,omitempty"` // breakdowns: whether (other) reached k
	Withheld     int     `json:"withheld,omitempty"`    // time series: points withheld
	// Aggregates is noisy (every number carries calibrated noise) or exact
	// (k threshold only: not protected against differencing).
	Aggregates string `json:"aggregates"`
	// Epsilon is the privacy loss of each number released (noisy only),
	// and BudgetRemaining what is left of the reader's daily budget.
	Epsilon         float64  `json:"epsilon,omitempty"`
	BudgetRemaining *float64 `json:"budget_remaining,omitempty"`
	// ReleasedUntil is where a noisy answer's data stops when its range
	// reaches past the last full hour (ReleaseHour).
	ReleasedUntil *time.Time `json:"released_until,omitempty"`
	// Comparison is the range compared with, under compare.
	Comparison *ComparisonMeta `json:"comparison,omitempty"`
}

// ComparisonMeta describes a comparison range: its mode and its first and
// last days (the site's time zone).
type ComparisonMeta struct {
	Mode      string    `json:"mode"`
	DateRange [2]string `json:"date_range"`
}

func (q *Query) comparisonMeta() *ComparisonMeta {
	p := q.Compare.Period
	last := p.To.Add(-time.Nanosecond)
	if !p.To.After(p.From) {
		last = p.From
	}
	return &ComparisonMeta{Mode: q.Compare.Mode, DateRange: [2]string{p.From.In(p.Loc).Format(time.DateOnly), last.In(p.Loc).Format(time.DateOnly)}}
}

// Response is a Stats API answer: Plausible's "results" plus Glimpse's meta.
type Response struct {
	Results any  `json:"results"`
	Meta    Meta `json:"meta"`
}

// Withheld explains a value withheld by k-anonymity.
func withheldReason(k int) string {
	return fmt.Sprintf("k-anonymity: fewer than %d visitors match the filters", k)
}

// plan decides the sources and sample ratio of a query over p.
type plan struct {
	q      *Query
	p      period.Period
	evCols []string
	seCols []string
	evSrc  source
	seSrc  source
	dim    string // srcSessionDims: the dimension read
	// otherKey, when set, is the key of the (other) row's cells: a
	// comparison's, which folds the keys of another range (compare.go).
	otherKey string
	sample   float64
	sources  map[string]bool
	cluster  bool // Options.Cluster (cluster.go)
}

func (e *Engine) plan(ctx context.Context, q *Query, p period.Period, evCols, seCols []string) (*plan, error) {
	pl := &plan{q: q, p: p, evCols: evCols, seCols: seCols, evSrc: srcEvents, seSrc: srcSessions, sources: map[string]bool{}, cluster: e.opts.Cluster}
	// The hourly rollups answer neither minutes nor a live period.
	rollup := !q.Raw && !p.Live() && q.Interval != period.IntervalMinute && period.HourAligned(p)
	if rollup && len(q.Filters) == 0 && subset(evCols, eventsHourlyCols) && (len(seCols) == 0 || subset(seCols, sessionsHourlyCols)) {
		pl.evSrc = srcEventsHourly
		pl.seSrc = srcSessionsHourly
	} else if dim, ok := oneDim(q.Filters); rollup && ok && len(seCols) > 0 && subset(seCols, sessionDimsCols) {
		// Filtered on one attribution property: the sessions side reads
		// that dimension's rollup; the events side stays raw.
		pl.seSrc, pl.dim = srcSessionDims, dim
	}
	if (len(evCols) > 0 && !pl.evSrc.rollup()) || (len(seCols) > 0 && !pl.seSrc.rollup()) {
		var err error
		if pl.sample, err = e.sampleRatio(ctx, q.Site.Domain, p); err != nil {
			return nil, err
		}
	}
	return pl, nil
}

// sampleRatio estimates the events in p from the rollup and returns the
// SAMPLE ratio keeping about SampleThreshold of them (0: no sampling).
func (e *Engine) sampleRatio(ctx context.Context, site string, p period.Period) (float64, error) {
	if e.opts.SampleThreshold < 0 {
		return 0, nil
	}
	s := &scan{src: srcEventsHourly, site: site, p: period.Period{From: p.From.Truncate(time.Hour), To: p.To, Loc: p.Loc}, cols: []string{"events"}}
	v, err := e.one(ctx, s)
	if err != nil {
		return 0, err
	}
	n := v["events"]
	if n <= float64(e.opts.SampleThreshold) {
		return 0, nil
	}
	r := math.Floor(float64(e.opts.SampleThreshold)/n*1000) / 1000
	return max(r, 0.001), nil
}

func (pl *plan) factor() float64 {
	if pl.sample > 0 && pl.sample < 1 {
		return 1 / pl.sample
	}
	return 1
}

func (pl *plan) meta() Meta {
	src := "raw"
	switch {
	case pl.sources["rollup"] && pl.sources["raw"]:
		src = "rollup+raw"
	case pl.sources["rollup"]:
		src = "rollup"
	}
	return Meta{Source: src, SampleFactor: pl.factor(), KAnonymity: pl.q.Site.Privacy.KAnonymity, Filtered: len(pl.q.Filters) > 0}
}

func (pl *plan) scan(src source, cols []string, filters []Filter) *scan {
	if src.rollup() {
		pl.sources["rollup"] = true
	} else {
		pl.sources["raw"] = true
	}
	s := &scan{src: src, site: pl.q.Site.Domain, p: pl.p, filters: filters, cols: cols, email: emailScope(pl.q)}
	if src == srcSessionDims {
		s.dim = pl.dim
	}
	if !src.rollup() {
		s.sample = pl.sample
	}
	return s
}

// emailScope reports whether q is about email campaigns: a breakdown by
// email:campaign or a filter on it. Only such a question counts the
// people behind email opens and clicks (recipients) as visitors.
func emailScope(q *Query) bool {
	if q.Property != nil && q.Property.Name == "email:campaign" {
		return true
	}
	for _, f := range q.Filters {
		if f.Prop.Name == "email:campaign" && !f.Negate {
			return true
		}
	}
	return false
}

// sideCols splits the raw columns the metrics need by their home side.
// Filtered queries always count visitors on every side they read, for
// the k-anonymity check.
func sideCols(q *Query) (ev, se []string) {
	for _, m := range q.Metrics {
		d := metrics[m]
		if d.home == sideEvents {
			ev = union(ev, d.needs)
		} else {
			se = union(se, d.needs)
		}
	}
	if len(se) > 0 {
		se = visitPageviews(q, se)
	}
	if len(q.Filters) > 0 {
		if len(ev) > 0 {
			ev = union(ev, []string{"visitors"})
		}
		if len(se) > 0 {
			se = union(se, []string{"visitors"})
		}
	}
	return ev, se
}

func hasMetric(q *Query, name string) bool {
	for _, m := range q.Metrics {
		if m == name {
			return true
		}
	}
	return false
}

// point is the raw columns of one aggregate or bucket, by side.
type point struct{ ev, se map[string]float64 }

// values derives the requested metrics of a point, or reports it
// withheld. In noisy mode the point's components carry noise already:
// counts are reported as at least 0.
func (q *Query) values(pt point) (map[string]any, bool) {
	if len(q.Filters) > 0 && (q.under(pt.ev) || q.under(pt.se)) {
		return nil, true
	}
	q.releaseRevenue(pt.ev)
	out := make(map[string]any, len(q.Metrics))
	for _, m := range q.Metrics {
		d := metrics[m]
		v := pt.ev
		if d.home == sideSessions {
			v = pt.se
		}
		if v == nil {
			v = map[string]float64{}
		}
		out[m] = d.value(nonNegative(v))
	}
	return out, false
}

// under reports whether one side of a filtered point counts fewer than k
// visitors, and is withheld. An exact zero is not: k-anonymity hides
// groups of 1 to k-1 people, and nobody is no group (Plausible answers 0
// too). Noisy visitors are compared with k whatever their value, so that
// an empty answer and a small one look alike.
func (q *Query) under(v map[string]float64) bool {
	if v == nil {
		return false
	}
	n, k := v["visitors"], float64(q.Site.Privacy.KAnonymity)
	if q.Site.Privacy.Noisy() {
		return n < k
	}
	return n > 0 && n < k
}

// nonNegative returns v with negative components (noise on a small
// count) raised to 0.
func nonNegative(v map[string]float64) map[string]float64 {
	for _, x := range v {
		if x < 0 {
			out := make(map[string]float64, len(v))
			for c, x := range v {
				out[c] = max(x, 0)
			}
			return out
		}
	}
	return v
}

// noisy releases pt's components for the range [from, to) through r.
func (pl *plan) noisy(r *release, pt point, from, to time.Time) point {
	f := pl.factor()
	return point{
		ev: r.values(pt.ev, cell{side: "ev", from: from, to: to}, f),
		se: r.values(pt.se, cell{side: "se", from: from, to: to}, f),
	}
}

// aggregate computes one period's point, released through r.
func (e *Engine) aggregate(ctx context.Context, q *Query, p period.Period, r *release) (map[string]any, bool, Meta, error) {
	evCols, seCols := sideCols(q)
	pl, err := e.plan(ctx, q, p, evCols, seCols)
	if err != nil {
		return nil, false, Meta{}, err
	}
	var pt point
	if len(evCols) > 0 {
		if pt.ev, err = e.one(ctx, pl.scan(pl.evSrc, evCols, q.Filters)); err != nil {
			return nil, false, Meta{}, err
		}
	}
	if len(seCols) > 0 {
		if pt.se, err = e.one(ctx, pl.scan(pl.seSrc, seCols, q.Filters)); err != nil {
			return nil, false, Meta{}, err
		}
	}
	if hasRevenue(q) {
		rv, err := e.runRevenue(ctx, pl.revenueScan(q, "", false, false, nil))
		if err != nil {
			return nil, false, Meta{}, err
		}
		addRevenue(pt.ev, rv[""])
	}
	pt = pl.noisy(r, pt, p.From, p.To)
	if hasMetric(q, "conversion_rate") {
		tot, err := e.one(ctx, pl.scan(srcEvents, []string{"visitors"}, withoutGoals(q.Filters)))
		if err != nil {
			return nil, false, Meta{}, err
		}
		// The same cell as the visitors of the query without its goals.
		at := cell{side: "ev", from: p.From, to: p.To}.withoutGoals(q.Filters)
		pt.ev["total_visitors"] = r.value("visitors", at, tot["visitors"], pl.factor())
	}
	vals, withheld := q.values(pt)
	return vals, withheld, pl.meta(), nil
}

// Aggregate answers /api/v1/stats/aggregate: {"results": {"visitors":
// {"value": 12, "change": 50}}}, with "comparison_value": 8 under
// compare (the range of q.Compare). A filtered aggregate of 1 to k-1
// visitors (q.under) has every value null with a "withheld" reason; a
// withheld comparison has a null comparison_value and change, and a
// "comparison_withheld" reason.
func (e *Engine) Aggregate(ctx context.Context, q *Query) (*Response, error) {
	r := e.release(q)
	cur, withheld, meta, err := e.aggregate(ctx, q, q.released(q.Period), r)
	if err != nil {
		return nil, err
	}
	var prev map[string]any
	prevWithheld := false
	if q.Compare != nil {
		if prev, prevWithheld, _, err = e.aggregate(ctx, q, q.released(q.Compare.Period), r); err != nil {
			return nil, err
		}
		meta.Comparison = q.comparisonMeta()
	}
	res := make(map[string]any, len(q.Metrics))
	reason := withheldReason(q.Site.Privacy.KAnonymity)
	for _, m := range q.Metrics {
		o := map[string]any{"value": nil}
		if withheld {
			o["withheld"] = reason
		} else {
			o["value"] = cur[m]
		}
		if q.Compare != nil {
			o["change"] = nil
			// The comparison's value itself, as Plausible's v2 reports
			// it: a change of 100% from nothing is not growth.
			if prevWithheld {
				o["comparison_value"] = nil
				o["comparison_withheld"] = reason
			} else {
				o["comparison_value"] = prev[m]
			}
			if !withheld && !prevWithheld {
				o["change"] = change(metrics[m], cur[m], prev[m])
			}
		}
		res[m] = o
	}
	if err := e.finish(q, r, &meta); err != nil {
		return nil, err
	}
	return &Response{Results: res, Meta: meta}, nil
}

// Timeseries answers /api/v1/stats/timeseries: one point per bucket of
// the interval, gaps filled with zeros. Under filters a point with 1 to
// k-1 visitors (in noisy mode: fewer than k noisy visitors) has null
// metrics and a "withheld" reason.
//
// Under compare each point also carries "comparison": the comparison
// range's bucket of the same index (its "date" and metrics, or a
// "withheld" reason), and "change": each metric's change against it, as
// the aggregate's. A point past the comparison range's last bucket has
// both null.
func (e *Engine) Timeseries(ctx context.Context, q *Query) (*Response, error) {
	r := e.release(q)
	out, meta, err := e.series(ctx, q, q.Period, r)
	if err != nil {
		return nil, err
	}
	if q.Compare != nil {
		cmp, _, err := e.series(ctx, q, q.Compare.Period, r)
		if err != nil {
			return nil, err
		}
		for i, o := range out {
			if i >= len(cmp) {
				o["comparison"], o["change"] = nil, nil
				continue
			}
			o["comparison"] = cmp[i]
			ch := make(map[string]any, len(q.Metrics))
			for _, m := range q.Metrics {
				ch[m] = nil
				if o["withheld"] == nil && cmp[i]["withheld"] == nil {
					ch[m] = change(metrics[m], o[m], cmp[i][m])
				}
			}
			o["change"] = ch
		}
		meta.Comparison = q.comparisonMeta()
	}
	if err := e.finish(q, r, &meta); err != nil {
		return nil, err
	}
	return &Response{Results: out, Meta: meta}, nil
}

// series is the time series of q over p (buckets of q.Interval),
// released through r.
func (e *Engine) series(ctx context.Context, q *Query, p period.Period, r *release) ([]map[string]any, Meta, error) {
	evCols, seCols := sideCols(q)
	pl, err := e.plan(ctx, q, q.released(p), evCols, seCols)
	if err != nil {
		return nil, Meta{}, err
	}
	keys := period.BucketKeys(p, q.Interval)
	pts := make(map[string]*point, len(keys))
	for _, k := range keys {
		pts[k] = &point{}
		if len(evCols) > 0 {
			pts[k].ev = map[string]float64{}
		}
		if len(seCols) > 0 {
			pts[k].se = map[string]float64{}
		}
	}
	get := func(src source, cols []string, filters []Filter, set func(p *point, v map[string]float64)) error {
		if len(cols) == 0 {
			return nil
		}
		s := pl.scan(src, cols, filters)
		s.bucket, s.group = q.Interval, true
		rows, err := e.run(ctx, s)
		if err != nil {
			return err
		}
		for _, r := range rows {
			if p := pts[r.key]; p != nil {
				set(p, r.v)
			}
		}
		return nil
	}
	if err := get(pl.evSrc, evCols, q.Filters, func(p *point, v map[string]float64) { p.ev = v }); err != nil {
		return nil, Meta{}, err
	}
	if err := get(pl.seSrc, seCols, q.Filters, func(p *point, v map[string]float64) { p.se = v }); err != nil {
		return nil, Meta{}, err
	}
	if hasRevenue(q) {
		rv, err := e.runRevenue(ctx, pl.revenueScan(q, q.Interval, false, true, nil))
		if err != nil {
			return nil, Meta{}, err
		}
		for k, v := range rv {
			if p := pts[k]; p != nil {
				addRevenue(p.ev, v)
			}
		}
	}
	if hasMetric(q, "conversion_rate") {
		if err := get(srcEvents, []string{"visitors"}, withoutGoals(q.Filters), func(p *point, v map[string]float64) {
			p.ev["total_visitors"] = v["visitors"]
		}); err != nil {
			return nil, Meta{}, err
		}
	}
	meta := pl.meta()
	reason := withheldReason(q.Site.Privacy.KAnonymity)
	out := make([]map[string]any, 0, len(keys))
	for _, k := range keys {
		from, to := period.BucketRange(p, q.Interval, k)
		pt := *pts[k]
		// A bucket after the release point read nothing: its zeros are
		// released as they are. The bucket of the release point is the
		// cell of its released part.
		if to.After(pl.p.To) {
			to = pl.p.To
		}
		if from.Before(to) {
			pt = pl.noisy(r, pt, from, to)
			if tv, ok := pts[k].ev["total_visitors"]; ok && r.noisy {
				at := cell{side: "ev", from: from, to: to}.withoutGoals(q.Filters)
				pt.ev["total_visitors"] = r.value("visitors", at, tv, pl.factor())
			}
		}
		vals, withheld := q.values(pt)
		o := map[string]any{"date": period.Label(p, q.Interval, k)}
		if withheld {
			meta.Withheld++
			o["withheld"] = reason
			for _, m := range q.Metrics {
				o[m] = nil
			}
		} else {
			for m, v := range vals {
				o[m] = v
			}
		}
		out = append(out, o)
	}
	return out, meta, nil
}

// Other is the key of the row that folds breakdown rows under k.
const Other = "(other)"

// Breakdown answers /api/v1/stats/breakdown: rows of the property with at
// least k visitors, by visitors descending, paginated; the rows under k
// are folded into one "(other)" row, shown on the first page when it
// reaches k itself. meta.folded_rows says how many rows were folded.
func (e *Engine) Breakdown(ctx context.Context, q *Query) (*Response, error) {
	var cols []string
	for _, m := range q.Metrics {
		cols = union(cols, metrics[m].needs)
	}
	cols = union(cols, []string{"visitors"})
	var entry []string // by event:page: the columns of the visits entering on each page
	if byEntry(q.Property) {
		cols, entry = splitEntry(cols)
	}
	var eng []string // by a visit property under a page filter: engagement by visit
	if engagementByVisit(q.Property, q.Filters) {
		cols, eng = splitEngagement(cols)
	}
	src := srcEvents
	if q.Property.side == sideSessions {
		src = srcSessions
		cols = visitPageviews(q, cols)
	}
	pl := &plan{q: q, p: q.released(q.Period), sources: map[string]bool{}, cluster: e.opts.Cluster}
	rollup := !q.Raw && !q.Period.Live() && period.HourAligned(pl.p)
	dim, oneDimFiltered := oneDim(q.Filters)
	switch {
	case rollup && src == srcEvents && q.Property.Name == "event:page" && len(q.Filters) == 0 && subset(cols, pagesHourlyCols):
		src = srcPagesHourly
	case rollup && src == srcSessions && isAttribution(q.Property.Name) && subset(cols, sessionDimsCols) &&
		(len(q.Filters) == 0 || (oneDimFiltered && dim == q.Property.Name)):
		src, pl.dim = srcSessionDims, q.Property.Name
	default:
		var err error
		if pl.sample, err = e.sampleRatio(ctx, q.Site.Domain, pl.p); err != nil {
			return nil, err
		}
	}
	if q.Site.Privacy.Noisy() {
		return e.breakdownNoisy(ctx, q, pl, src, cols, entry, eng)
	}
	k := float64(q.Site.Privacy.KAnonymity)
	// Thresholds compare sampled counts: k scaled visitors are k/factor read.
	kRead := k / pl.factor()

	var rows, otherRows []row
	var otherPred func(*sqlb, func())
	if !hasMetric(q, "conversion_rate") {
		// One query: the rows of the page and the (other) row folded
		// from the same per-key aggregates.
		s := pl.scan(src, cols, q.Filters)
		s.prop, s.group = q.Property, true
		s.fold = kRead
		s.limit, s.offset = q.Limit, (q.Page-1)*q.Limit
		all, err := e.run(ctx, s)
		if err != nil {
			return nil, err
		}
		for _, r := range all {
			if r.folded {
				otherRows = append(otherRows, r)
			} else {
				rows = append(rows, r)
			}
		}
		rows = rows[min(s.offset, len(rows)):]
		rows = rows[:min(q.Limit, len(rows))]
	} else {
		// conversion_rate needs the folded keys again for the (other)
		// row's total, so the fold is a predicate on a subquery.
		top := pl.scan(src, cols, q.Filters)
		top.prop, top.group = q.Property, true
		top.minVisitors = kRead
		top.limit, top.offset = q.Limit, (q.Page-1)*q.Limit
		var err error
		if rows, err = e.run(ctx, top); err != nil {
			return nil, err
		}
		folded := pl.scan(src, []string{"visitors"}, q.Filters)
		folded.prop, folded.group = q.Property, true
		folded.maxVisitors = kRead
		other := pl.scan(src, cols, q.Filters)
		other.prop = q.Property
		other.countKeys = true
		other.keyPred = func(b *sqlb, key func()) {
			key()
			b.w(pl.in(), "(SELECT gk FROM (").sub(folded.build()).w("))")
		}
		otherPred = other.keyPred
		if otherRows, err = e.run(ctx, other); err != nil {
			return nil, err
		}
	}

	if hasMetric(q, "conversion_rate") {
		if err := e.conversionTotals(ctx, pl, q, src, rows, otherRows, otherPred); err != nil {
			return nil, err
		}
	}
	if len(entry) > 0 {
		if err := e.entryExact(ctx, pl, q, src, kRead, entry, rows, otherRows, otherPred); err != nil {
			return nil, err
		}
	}
	if len(eng) > 0 {
		if err := e.engagementExact(ctx, pl, q, src, kRead, eng, rows, otherRows, otherPred); err != nil {
			return nil, err
		}
	}
	if hasRevenue(q) {
		if err := e.revenueExact(ctx, pl, q, src, kRead, rows, otherRows, otherPred); err != nil {
			return nil, err
		}
	}

	results := make([]map[string]any, 0, len(rows)+1)
	for _, r := range rows {
		o := map[string]any{q.Property.Key: r.key}
		for _, m := range q.Metrics {
			o[m] = metrics[m].value(r.v)
		}
		q.withholdEntry(o, r.v)
		results = append(results, o)
	}
	meta := pl.meta()
	n, shown := 0, false
	if len(otherRows) > 0 {
		ov := otherRows[0].v
		n = int(ov["keys"])
		if n > 0 && ov["visitors"] >= k {
			shown = true
			if q.Page == 1 {
				o := map[string]any{q.Property.Key: Other}
				for _, m := range q.Metrics {
					o[m] = metrics[m].value(ov)
				}
				q.withholdEntry(o, ov)
				results = append(results, o)
			}
		}
	}
	meta.FoldedRows, meta.OtherShown = &n, &shown
	meta.Aggregates = q.Site.Privacy.Aggregates
	if q.Compare != nil {
		withOther := len(results) > len(rows)
		if err := e.compareExact(ctx, q, pl, src, cols, entry, eng, kRead, rows, otherPred, results, withOther); err != nil {
			return nil, err
		}
		meta.Comparison = q.comparisonMeta()
	}
	return &Response{Results: results, Meta: meta}, nil
}

// conversionTotals fills total_visitors: per row for a breakdown by a
// property every visitor has a value of, the site's visitors (of the
// question without its goals) for one by event:goal or a custom property
// (siteTotal).
func (e *Engine) conversionTotals(ctx context.Context, pl *plan, q *Query, src source, rows, otherRows []row, otherPred func(*sqlb, func())) error {
	switch src {
	case srcPagesHourly:
		src = srcEvents
	case srcSessionDims:
		src = srcSessions
	}
	if q.Property.siteTotal() {
		tot, err := e.one(ctx, pl.scan(srcEvents, []string{"visitors"}, withoutGoals(q.Filters)))
		if err != nil {
			return err
		}
		for i := range rows {
			rows[i].v["total_visitors"] = tot["visitors"]
		}
		for i := range otherRows {
			otherRows[i].v["total_visitors"] = tot["visitors"]
		}
		return nil
	}
	keys := make([]string, 0, len(rows))
	for _, r := range rows {
		keys = append(keys, r.key)
	}
	if len(keys) == 0 {
		// has([], key) does not type-check: an empty array is Array(Nothing).
		keys = append(keys, "")
		rows = nil
	}
	s := pl.scan(src, []string{"visitors"}, withoutGoals(q.Filters))
	s.prop, s.group = q.Property, true
	s.keyPred = func(b *sqlb, key func()) { b.w("has(").arg(keys).w(", "); key(); b.w(")") }
	tots, err := e.run(ctx, s)
	if err != nil {
		return err
	}
	by := map[string]float64{}
	for _, t := range tots {
		by[t.key] = t.v["visitors"]
	}
	for i := range rows {
		rows[i].v["total_visitors"] = by[rows[i].key]
	}
	// (other): all visitors of the folded keys, without the goal filter.
	if len(otherRows) == 0 {
		return nil
	}
	os := pl.scan(src, []string{"visitors"}, withoutGoals(q.Filters))
	os.prop, os.keyPred = q.Property, otherPred
	ot, err := e.one(ctx, os)
	if err != nil {
		return err
	}
	otherRows[0].v["total_visitors"] = ot["visitors"]
	return nil
}

// RealtimeVisitors answers /api/v1/stats/realtime/visitors: unique
// visitors in the last 5 minutes (an unfiltered site total: never
// withheld).
//
// In noisy mode the count is read up to the last full minute and carries
// noise keyed by that minute, so that polling within a minute gets one
// answer (and costs one number).
func (e *Engine) RealtimeVisitors(ctx context.Context, q *Query) (int64, error) {
	p := q.Period
	r := e.release(q)
	if r.noisy {
		// Up to the last full minute: a number that cannot move while
		// its noise stays.
		p.To = p.To.Truncate(time.Minute)
		p.From = p.To.Add(-period.Realtime)
	}
	pl := &plan{q: q, p: p, sources: map[string]bool{}, cluster: e.opts.Cluster}
	v, err := e.one(ctx, pl.scan(srcEvents, []string{"visitors"}, nil))
	if err != nil {
		return 0, err
	}
	n := r.value("visitors", cell{side: "ev", from: p.From, to: p.To, by: "realtime"}, v["visitors"], 1)
	var meta Meta
	if err := e.finish(q, r, &meta); err != nil {
		return 0, err
	}
	return int64(math.Round(max(n, 0))), nil
}
