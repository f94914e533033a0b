package aggregator

import (
	"context"
	"encoding/json"
	"math"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/glimpse-analytics/glimpse/aggregator/period"
)

// ResponseV2 is a v2 answer: Plausible's results, meta and query echo.
type ResponseV2 struct {
	Results []RowV2 `json:"results"`
	Meta    MetaV2  `json:"meta"`
	Query   EchoV2  `json:"query"`
}

// RowV2 is one result row: the dimensions' values and the metrics', in
// the query's orders.
type RowV2 struct {
	Dimensions []any         `json:"dimensions"`
	Metrics    []any         `json:"metrics"`
	Comparison *ComparisonV2 `json:"comparison,omitempty"`
	// Withheld: the row's metrics are null under the k threshold
	// (Glimpse's; Plausible clients ignore it).
	Withheld string `json:"withheld,omitempty"`
}

// ComparisonV2 is a row's comparison (include.comparisons).
type ComparisonV2 struct {
	Dimensions []any `json:"dimensions"`
	Metrics    []any `json:"metrics"`
	Change     []any `json:"change"`
}

// MetaV2 is Plausible's meta plus Glimpse's (Meta: how the answer was
// computed and released).
type MetaV2 struct {
	TimeLabels        []string                 `json:"time_labels,omitempty"`
	TotalRows         *int                     `json:"total_rows,omitempty"`
	MetricWarnings    map[string]MetricWarning `json:"metric_warnings,omitempty"`
	ImportsIncluded   *bool                    `json:"imports_included,omitempty"`
	ImportsSkipReason string                   `json:"imports_skip_reason,omitempty"`
	Meta
}

// MetricWarning explains a metric answered null.
type MetricWarning struct {
	Code    string `json:"code"`
	Warning string `json:"warning"`
}

// EchoV2 is the query as understood, in Plausible's key order.
type EchoV2 struct {
	SiteID     string          `json:"site_id"`
	Metrics    []string        `json:"metrics"`
	DateRange  [2]string       `json:"date_range"`
	Filters    json.RawMessage `json:"filters"`
	Dimensions []string        `json:"dimensions"`
	OrderBy    [][2]string     `json:"order_by"`
	Include    map[string]any  `json:"include"`
	Pagination struct {
		Offset int `json:"offset"`
		Limit  int `json:"limit"`
	} `json:"pagination"`
}

// v2row is a row before ordering: dimension values and metric values by
// name.
type v2row struct {
	dims []string
	vals map[string]any
	// withheld: every metric of the row is withheld (k threshold), for
	// this reason; note: some are (a page's entry visits).
	withheld, note string
	other          bool // the (other) row of keys under k
}

// QueryV2 answers a v2 query.
func (e *Engine) QueryV2(ctx context.Context, q *QueryV2) (*ResponseV2, error) {
	if q.all {
		from, err := e.firstDay(ctx, q)
		if err != nil {
			return nil, err
		}
		q.Period = period.Span("all", from, q.Period.To, q.Period.Loc)
	}
	q.resolveTime()
	if len(q.OrderBy) == 0 {
		if t := q.timeDim(); t != "" {
			q.OrderBy = append(q.OrderBy, OrderBy{Name: t})
		}
		q.OrderBy = append(q.OrderBy, OrderBy{Name: q.Metrics[0], Desc: true})
	}
	if q.Compare != nil {
		q.Compare.resolve(q.Period, q.now)
	}
	// The engine ranks by visitors: when that is the order asked, it
	// reads only the rows up to the page's end.
	fetch := V2MaxLimit
	if q.Metrics[0] == "visitors" && q.timeDim() == "" && !q.TotalRows && len(q.OrderBy) == 1 && q.OrderBy[0] == (OrderBy{Name: "visitors", Desc: true}) {
		fetch = min(q.Offset+q.Limit, V2MaxLimit)
	}
	rows, meta, err := e.runV2(ctx, q, q.Period, fetch)
	if err != nil {
		return nil, err
	}
	out := &ResponseV2{Results: []RowV2{}}
	out.Meta.Meta = meta
	q.order(rows)
	total := len(rows)
	rows = rows[min(q.Offset, len(rows)):]
	rows = rows[:min(q.Limit, len(rows))]

	var cmp map[string]v2row
	var cmpLabels map[string]string
	if q.Compare != nil {
		cmp, cmpLabels, err = e.compareV2(ctx, q, rows)
		if err != nil {
			return nil, err
		}
	}
	warned := map[string]bool{}
	for _, r := range rows {
		o := RowV2{Dimensions: make([]any, len(r.dims)), Metrics: make([]any, len(q.Metrics)), Withheld: r.withheld + r.note}
		for i, d := range r.dims {
			o.Dimensions[i] = d
		}
		for i, m := range q.Metrics {
			o.Metrics[i] = v2Value(r.vals[m], m, warned)
		}
		if cmp != nil {
			c := cmp[q.cmpKey(r.dims, cmpLabels)]
			cd := make([]any, len(r.dims))
			for i, d := range q.cmpDims(r.dims, cmpLabels) {
				cd[i] = d
			}
			o.Comparison = &ComparisonV2{Dimensions: cd, Metrics: make([]any, len(q.Metrics)), Change: make([]any, len(q.Metrics))}
			for i, m := range q.Metrics {
				old := c.vals[m]
				if old == nil && c.withheld == "" && !isRevenue(m) {
					old = zeroOf(m)
				}
				o.Comparison.Metrics[i] = v2Value(old, m, warned)
				if r.withheld == "" && c.withheld == "" {
					o.Comparison.Change[i] = changeV2(m, r.vals[m], old)
				}
			}
		}
		out.Results = append(out.Results, o)
	}
	if len(warned) > 0 {
		out.Meta.MetricWarnings = map[string]MetricWarning{}
		for m := range warned {
			out.Meta.MetricWarnings[m] = MetricWarning{Code: "no_single_revenue_currency",
				Warning: "Revenue metrics are null as there are multiple currencies in the rows they sum: Glimpse never adds different currencies (see by_currency in the v1 API)."}
		}
	}
	if q.TotalRows {
		out.Meta.TotalRows = &total
	}
	if q.TimeLabels {
		out.Meta.TimeLabels = q.timeLabels(q.Period)
	}
	if q.Imports {
		f := false
		out.Meta.ImportsIncluded, out.Meta.ImportsSkipReason = &f, "no_imported_data"
	}
	out.Query = q.echo()
	return out, nil
}

// firstDay is the first day of the site's data in its zone (today if it
// has none): the start of date_range "all".
func (e *Engine) firstDay(ctx context.Context, q *QueryV2) (time.Time, error) {
	ctx, cancel := context.WithTimeout(ctx, e.opts.QueryTimeout)
	defer cancel()
	var first time.Time
	var n uint64
	row := e.opts.Conn.QueryRow(ctx, "SELECT min(hour), count() FROM events_hourly WHERE site_id = ?", q.Site.Domain)
	if err := row.Scan(&first, &n); err != nil {
		return time.Time{}, err
	}
	if n == 0 {
		return q.Period.From, nil
	}
	f := first.In(q.Period.Loc)
	return time.Date(f.Year(), f.Month(), f.Day(), 0, 0, 0, 0, q.Period.Loc), nil
}

// engineMetrics are the engine metrics a v2 query's metrics are derived
// from.
func (q *QueryV2) engineMetrics() []string {
	var out []string
	add := func(m string) {
		if !slices.Contains(out, m) {
			out = append(out, m)
		}
	}
	for _, m := range q.Metrics {
		switch m {
		case "percentage":
			add("visitors")
		case "conversion_rate":
			if q.conversionDerived() {
				add("visitors")
			} else {
				add("conversion_rate")
			}
		case "group_conversion_rate":
			add("conversion_rate")
		default:
			add(m)
		}
	}
	return out
}

// conversionDerived reports whether v2's conversion_rate is derived here
// (over the visitors of the whole question without goals and dimensions)
// rather than the engine's (without dimensions, or by time alone: the
// same thing).
func (q *QueryV2) conversionDerived() bool {
	return len(q.Dimensions) > 0 && !(q.timeDim() != "" && len(q.Dimensions) == 1)
}

// base is the engine query of q over p.
func (q *QueryV2) base(p period.Period, metrics []string, filters []Filter) *Query {
	b := &Query{Site: q.Site, Period: p, Metrics: metrics, Filters: filters, Reader: q.Reader, Limit: V2MaxLimit, Page: 1}
	b.releasedAt(q.now)
	return b
}

// runV2 computes q's rows over p: at most fetch rows of a breakdown (the
// first by visitors).
func (e *Engine) runV2(ctx context.Context, q *QueryV2, p period.Period, fetch int) ([]v2row, Meta, error) {
	em := q.engineMetrics()
	bq := q.base(p, em, q.Filters)
	td := q.timeDim()
	props := q.propDims()
	var rows []v2row
	var meta Meta
	switch {
	case len(q.Dimensions) == 0:
		res, err := e.Aggregate(ctx, bq)
		if err != nil {
			return nil, Meta{}, err
		}
		r := v2row{dims: []string{}, vals: map[string]any{}}
		for m, o := range res.Results.(map[string]any) {
			ov := o.(map[string]any)
			r.vals[m] = ov["value"]
			if w, ok := ov["withheld"].(string); ok {
				r.withheld = w
			}
		}
		rows, meta = []v2row{r}, res.Meta
	case len(props) == 0:
		bq.Interval = timeDims[td]
		if bq.Interval == period.IntervalHour && p.To.Sub(p.From) > 93*24*time.Hour {
			return nil, Meta{}, badRequest("Invalid dimensions: time:hour is limited to date ranges of at most 93 days")
		}
		res, err := e.Timeseries(ctx, bq)
		if err != nil {
			return nil, Meta{}, err
		}
		for _, o := range res.Results.([]map[string]any) {
			r := v2row{dims: []string{o["date"].(string)}, vals: map[string]any{}}
			empty := true
			for _, m := range em {
				r.vals[m] = o[m]
				if toF(o[m]) != 0 {
					empty = false
				}
			}
			if w, ok := o["withheld"].(string); ok {
				r.withheld, empty = w, false
			}
			if !empty { // Plausible leaves buckets without data out
				rows = append(rows, r)
			}
		}
		meta = res.Meta
	default:
		var prop *Property
		var err error
		if len(q.Dimensions) == 1 {
			if prop, err = parseV2Property(props[0]); err != nil {
				return nil, Meta{}, err
			}
			prop = prop.withVisitGoals(q.Filters)
		} else if prop, err = Dimensions(q.Dimensions, timeDims[td], p.Loc.String()); err != nil {
			return nil, Meta{}, err
		}
		bq.Property, bq.Limit = prop, fetch
		res, err := e.Breakdown(ctx, bq)
		if err != nil {
			return nil, Meta{}, err
		}
		for _, o := range res.Results.([]map[string]any) {
			key, _ := o[prop.Key].(string)
			r := v2row{vals: map[string]any{}}
			if key == Other {
				r.other = true
				r.dims = slices.Repeat([]string{Other}, len(q.Dimensions))
			} else if len(q.Dimensions) == 1 {
				r.dims = []string{key}
			} else if r.dims = SplitKey(key, len(q.Dimensions)); r.dims == nil {
				continue
			}
			for i, d := range q.Dimensions {
				if d == td && !r.other {
					r.dims[i] = period.Label(p, timeDims[td], r.dims[i])
				}
			}
			for _, m := range em {
				r.vals[m] = o[m]
			}
			if w, ok := o["withheld"].(string); ok {
				r.note = w // the entry metrics only (entry.go)
			}
			rows = append(rows, r)
		}
		meta = res.Meta
	}
	if err := e.derivedV2(ctx, q, p, rows); err != nil {
		return nil, Meta{}, err
	}
	for i, d := range q.Dimensions {
		if t := nameTable(d); t != nil {
			for j := range rows {
				if k, ok := slices.BinarySearch(t.Codes, rows[j].dims[i]); ok {
					rows[j].dims[i] = t.Names[k]
				}
			}
		}
	}
	return rows, meta, nil
}

// derivedV2 computes the metrics of rows that v2 derives from others:
// percentage (a row's share of the visitors of the whole question),
// conversion_rate with dimensions (converting visitors over the
// visitors of the question without its goal filters and dimensions) and
// group_conversion_rate (the engine's conversion_rate: over each group's
// visitors).
func (e *Engine) derivedV2(ctx context.Context, q *QueryV2, p period.Period, rows []v2row) error {
	total := func(filters []Filter) (float64, error) {
		res, err := e.Aggregate(ctx, q.base(p, []string{"visitors"}, filters))
		if err != nil {
			return 0, err
		}
		v := res.Results.(map[string]any)["visitors"].(map[string]any)["value"]
		if v == nil {
			return math.NaN(), nil // withheld
		}
		return toF(v), nil
	}
	pct := func(a, b float64) any {
		if math.IsNaN(b) {
			return nil
		}
		return percent(a, b, 2)
	}
	if slices.Contains(q.Metrics, "group_conversion_rate") {
		for i := range rows {
			rows[i].vals["group_conversion_rate"] = rows[i].vals["conversion_rate"]
		}
	}
	for _, m := range q.Metrics {
		switch {
		case m == "percentage":
			t, err := total(q.Filters)
			if err != nil {
				return err
			}
			for i := range rows {
				if rows[i].withheld == "" {
					rows[i].vals[m] = pct(toF(rows[i].vals["visitors"]), t)
				}
			}
		case m == "conversion_rate" && q.conversionDerived():
			t, err := total(withoutGoals(q.Filters))
			if err != nil {
				return err
			}
			for i := range rows {
				if rows[i].withheld == "" {
					rows[i].vals[m] = pct(toF(rows[i].vals["visitors"]), t)
				}
			}
		}
	}
	for i := range rows {
		if rows[i].withheld != "" {
			for _, m := range q.Metrics {
				rows[i].vals[m] = nil
			}
		}
	}
	return nil
}

// isRevenue reports whether m is a money metric.
func isRevenue(m string) bool { return m == "total_revenue" || m == "average_revenue" }

// zeroOf is a metric's value where a comparison has no row.
func zeroOf(m string) any {
	switch m {
	case "views_per_visit", "bounce_rate", "percentage", "conversion_rate", "group_conversion_rate":
		return 0.0
	case "visit_duration", "scroll_depth":
		return nil
	}
	return int64(0)
}

// v2Value renders a metric value as v2 answers it: money as Plausible's
// object, or null (with a warning) when it sums several currencies.
func v2Value(v any, m string, warned map[string]bool) any {
	if !isRevenue(m) || v == nil {
		return v
	}
	if mv, ok := v.(Money); ok && len(mv.ByCurrency) > 0 {
		warned[m] = true
		return nil
	}
	return v
}

// changeV2 is Plausible's change of a metric from old to cur: the
// engine's (change: points for rates, a whole percentage otherwise, 100
// from nothing, money in one currency only), except that a bounce rate
// from 0 has none, as in Plausible's v2.
func changeV2(m string, cur, old any) any {
	if cur == nil || old == nil || (m == "bounce_rate" && toF(old) == 0) {
		return nil
	}
	if m == "group_conversion_rate" {
		m = "conversion_rate" // points, as the engine's
	}
	return change(metrics[m], cur, old)
}

// order sorts rows by q.OrderBy; the (other) row stays last.
func (q *QueryV2) order(rows []v2row) {
	idx := map[string]int{}
	for i, d := range q.Dimensions {
		idx[d] = i
	}
	sort.SliceStable(rows, func(a, b int) bool {
		ra, rb := rows[a], rows[b]
		if ra.other != rb.other {
			return rb.other
		}
		for _, o := range q.OrderBy {
			var c int
			if i, ok := idx[o.Name]; ok {
				c = strings.Compare(ra.dims[i], rb.dims[i])
			} else {
				c = compareValues(ra.vals[o.Name], rb.vals[o.Name])
			}
			if c != 0 {
				return (c < 0) != o.Desc
			}
		}
		return false
	})
}

// compareValues orders metric values, null first.
func compareValues(a, b any) int {
	switch {
	case a == nil && b == nil:
		return 0
	case a == nil:
		return -1
	case b == nil:
		return 1
	}
	x, y := toF(a), toF(b)
	switch {
	case x < y:
		return -1
	case x > y:
		return 1
	}
	return 0
}

// timeLabels lists every bucket of q's time dimension over p.
func (q *QueryV2) timeLabels(p period.Period) []string {
	iv := timeDims[q.timeDim()]
	keys := period.BucketKeys(p, iv)
	out := make([]string, 0, len(keys))
	for _, k := range keys {
		l := period.Label(p, iv, k)
		if len(out) == 0 || out[len(out)-1] != l {
			out = append(out, l)
		}
	}
	return out
}

// resolve sets a comparison's period for the main period p, as
// Plausible's comparisons do: the previous period of the same length
// (up to today), the same dates a year earlier, or the custom dates; with
// match_day_of_week, moved to start on the main period's weekday.
func (c *CompareV2) resolve(p period.Period, now time.Time) {
	n := now.In(p.Loc)
	end := p.To
	if tomorrow := time.Date(n.Year(), n.Month(), n.Day()+1, 0, 0, 0, 0, p.Loc); end.After(tomorrow) && p.From.Before(tomorrow) {
		end = tomorrow // the part of the range up to today
	}
	switch c.Mode {
	case "previous_period":
		// Whole local days shift by days (a DST change keeps midnights);
		// datetime ranges by their duration.
		days := int(math.Round(end.Sub(p.From).Hours() / 24))
		if f := p.From.In(p.Loc); f.Hour() == 0 && f.Minute() == 0 && f.Second() == 0 && days > 0 &&
			end.Equal(time.Date(f.Year(), f.Month(), f.Day()+days, 0, 0, 0, 0, p.Loc)) {
			c.Period = period.Span("custom", p.From.AddDate(0, 0, -days), p.From, p.Loc)
		} else {
			c.Period = period.Span("custom", p.From.Add(-end.Sub(p.From)), p.From, p.Loc)
		}
	case "year_over_year":
		// The same dates a year before, as the v1 API and the dashboard
		// compare them (February 29 is February 28).
		clipped := p
		clipped.To = end
		c.Period = clipped.YearOverYear()
	}
	if c.MatchDayOfWeek {
		from := c.Period.From
		diff := (int(p.From.Weekday()) - int(from.Weekday()) + 7) % 7
		if diff > 3 {
			diff -= 7
		}
		length := c.Period.To.Sub(from)
		from = from.AddDate(0, 0, diff)
		c.Period = period.Span("custom", from, from.Add(length), p.Loc)
	}
}

// compareV2 reads the comparison of rows: the same question over the
// comparison period, for the rows' dimension values. Time values map
// bucket by bucket: the i-th label of the main range to the i-th of the
// comparison's.
func (e *Engine) compareV2(ctx context.Context, q *QueryV2, rows []v2row) (map[string]v2row, map[string]string, error) {
	var labels map[string]string
	if q.timeDim() != "" {
		labels = map[string]string{}
		a, b := q.timeLabels(q.Period), q.timeLabels(q.Compare.Period)
		for i := range a {
			if i < len(b) {
				labels[a[i]] = b[i]
			}
		}
	}
	out := map[string]v2row{}
	if len(rows) == 0 {
		return out, labels, nil
	}
	cr, _, err := e.runV2(ctx, q, q.Compare.Period, V2MaxLimit)
	if err != nil {
		return nil, nil, err
	}
	for _, r := range cr {
		out[strings.Join(r.dims, "\x00")] = r
	}
	return out, labels, nil
}

// cmpDims are a row's dimension values in the comparison period.
func (q *QueryV2) cmpDims(dims []string, labels map[string]string) []string {
	out := slices.Clone(dims)
	for i, d := range q.Dimensions {
		if isTimeDim(d) && labels != nil {
			out[i] = labels[dims[i]]
		}
	}
	return out
}

func (q *QueryV2) cmpKey(dims []string, labels map[string]string) string {
	return strings.Join(q.cmpDims(dims, labels), "\x00")
}

// echo is the query as understood.
func (q *QueryV2) echo() EchoV2 {
	var e EchoV2
	e.SiteID = q.Site.Domain
	e.Metrics = q.Metrics
	const iso = "2006-01-02T15:04:05-07:00"
	e.DateRange = [2]string{q.Period.From.In(q.Period.Loc).Format(iso), q.Period.To.Add(-time.Second).In(q.Period.Loc).Format(iso)}
	e.Filters = q.filtersJSON
	if e.Filters == nil {
		e.Filters = json.RawMessage("[]")
	}
	e.Dimensions = q.Dimensions
	if e.Dimensions == nil {
		e.Dimensions = []string{}
	}
	for _, o := range q.OrderBy {
		d := "asc"
		if o.Desc {
			d = "desc"
		}
		e.OrderBy = append(e.OrderBy, [2]string{o.Name, d})
	}
	e.Include = map[string]any{}
	if q.TimeLabels {
		e.Include["time_labels"] = true
	}
	if q.TotalRows {
		e.Include["total_rows"] = true
	}
	if q.Imports {
		e.Include["imports"] = true
	}
	if c := q.Compare; c != nil {
		m := map[string]any{"mode": c.Mode}
		if c.Mode == "custom" {
			m["date_range"] = [2]string{c.Period.From.In(c.Period.Loc).Format(iso), c.Period.To.Add(-time.Second).In(c.Period.Loc).Format(iso)}
		}
		if c.MatchDayOfWeek {
			m["match_day_of_week"] = true
		}
		e.Include["comparisons"] = m
	}
	e.Pagination.Offset, e.Pagination.Limit = q.Offset, q.Limit
	return e
}
