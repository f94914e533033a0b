package aggregator

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/glimpse-analytics/glimpse/internal/model"
)

// Revenue. Custom events may carry revenue (events.revenue_micros, the
// amount × 1e6, and revenue_currency, ISO 4217). total_revenue and
// average_revenue (Plausible's names; the average is per event carrying
// revenue, Plausible's average revenue per conversion) are read per
// currency by one extra scan grouped by the question's key and the
// currency (revenueScan), whose sums land in a point's or row's raw
// components as rev_s:<currency> (micros), rev_n:<currency> (events) and
// rev_v:<currency> (visitors): so the k threshold, the noise and the
// budget treat them as every other component. There are no exchange
// rates: currencies are never added together.
//
// Money stays exact: micros are summed as Int64 in SQL and converted at
// the edge (float64 components hold them exactly up to 2^53 micros, about
// 9 billion units per cell). A sum that would pass Int64's range (about
// 9.2 trillion units: nine events of the largest amount the collector
// takes) is not wrapped: the scan flags it and the cell reports the
// largest Int64 with "capped": true.
//
// Noisy sites: each event's revenue is clipped at privacy.revenue_clip
// units (default model.MaxRevenuePerEvent) before it is summed, so one
// visitor-day (at most model.MaxEventsPerDay events) moves a currency's
// sum by at most their product, the sum's sensitivity; the sums, the counts and the buyers of
// every currency carry noise, and a currency is shown only when its noisy
// buyers reach k (as a breakdown's row), so that a single purchase in a
// currency nobody else uses is not told by the currency's presence.

// revenueRows are the events rows that carry revenue: custom events (goals)
// with a currency. type is in the events' sort key, so the scan reads the
// granules of custom events alone. Revenue sent with another kind of event
// (a page view) is stored but not counted, as Plausible counts revenue
// goals only.
const revenueRows = "type = 'custom' AND revenue_currency != ''"

// revenueMetrics are the metrics read by revenueScan.
var revenueMetrics = map[string]bool{"total_revenue": true, "average_revenue": true}

// Revenue components: the prefix of a component, then the currency.
const (
	revSum      = "rev_s" // micros, clipped on noisy sites
	revEvents   = "rev_n" // events carrying revenue
	revVisitors = "rev_v" // their visitors
)

// revenueComponent splits a revenue component into its kind and
// currency.
func revenueComponent(c string) (kind, currency string, ok bool) {
	kind, currency, ok = strings.Cut(c, ":")
	if !ok || (kind != revSum && kind != revEvents && kind != revVisitors) {
		return "", "", false
	}
	return kind, currency, true
}

// revenueSensitivity is the most one visitor-day moves a revenue
// component of one currency (each event's revenue clipped at clip
// units), and whether the component is additive over
// the currencies of a cell (and the rows of a breakdown): each event has
// one currency and falls in one row, so a visitor-day's events move the
// sums and counts of all of them together by at most that much; its
// buyers count once in each currency and row it reaches.
func revenueSensitivity(kind string, clip int64) (s int64, additive bool) {
	switch kind {
	case revSum:
		return clip * 1_000_000 * model.MaxEventsPerDay, true
	case revEvents:
		return model.MaxEventsPerDay, true
	}
	return 1, false
}

// hasRevenue reports whether q asks for a revenue metric.
func hasRevenue(q *Query) bool {
	return slices.ContainsFunc(q.Metrics, func(m string) bool { return revenueMetrics[m] })
}

// revenueProperty reports whether a breakdown by p can read revenue:
// event properties whose rows hold custom events (goals, pages, hostnames,
// custom properties, browser and OS versions) and visit properties (by
// the events of each visit: revenueByVisit). Outbound links, downloads,
// impressions and email campaigns count events that carry no revenue.
func revenueProperty(p *Property) error {
	if p.side == sideSessions || p.prop != "" || len(p.types) == 0 {
		return nil
	}
	for _, t := range p.types {
		if t == model.TypeCustom || t == model.TypePageview {
			return nil
		}
	}
	return fmt.Errorf("its rows count %s events, which carry no revenue", model.TypeName(p.types[0]))
}

// checkRevenue validates the revenue metrics of a breakdown by p.
func checkRevenue(m string, p *Property) error {
	if !revenueMetrics[m] {
		return nil
	}
	if err := revenueProperty(p); err != nil {
		return badRequest("metric %q is not supported in a breakdown by %s: %s", m, p.Name, err)
	}
	return nil
}

// revenueByVisit reports whether a breakdown by p reads revenue by
// visit: the revenue events of each visit joined to its sessions row.
func revenueByVisit(p *Property) bool { return p != nil && p.side == sideSessions }

// revenueGrid is the step, in micros, at which a noisy site releases a
// revenue sum: a cent of a two-decimal currency.
const revenueGrid = 10_000

// maxSumMicros: a sum at or beyond it has passed Int64's range.
const maxSumMicros = 9.2e18

// revenueSelect writes a revenue scan's columns (after SELECT and the
// key): the currency, the sum of micros, whether the sum overflowed,
// the events and their visitors.
func (s *scan) revenueSelect(b *sqlb) {
	micros := s.micros()
	b.w("revenue_currency AS cur, toInt64(sum(", micros, ")) AS r_s, toUInt8(sum(toFloat64(", micros, ")) >= ",
		strconv.FormatFloat(maxSumMicros, 'e', -1, 64), ") AS r_o, toUInt64(count()) AS r_n, toUInt64(uniq(visitor_id)) AS r_v")
}

// micros is the revenue of an events row, clipped at s.clip units (a
// number from the site's configuration, never from a request).
func (s *scan) micros() string {
	if s.clip <= 0 {
		return "revenue_micros"
	}
	return "least(revenue_micros, toInt64(" + strconv.FormatInt(s.clip*1_000_000, 10) + "))"
}

// revenueRow is one key's revenue components.
type revenueRow map[string]float64

// runRevenue executes a revenue scan: components by key ("" when
// ungrouped).
func (e *Engine) runRevenue(ctx context.Context, s *scan) (map[string]revenueRow, error) {
	var b *sqlb
	if s.engagement {
		b = s.buildRevenueByVisit()
	} else {
		b = s.build()
	}
	ctx, cancel := context.WithTimeout(ctx, e.opts.QueryTimeout)
	defer cancel()
	rows, err := e.opts.Conn.Query(ctx, e.settings(b).String(), b.args...)
	if err != nil {
		return nil, fmt.Errorf("cannot query revenue: %w", err)
	}
	defer rows.Close()
	factor := 1.0
	if s.sample > 0 && s.sample < 1 {
		factor = 1 / s.sample
	}
	out := map[string]revenueRow{}
	for rows.Next() {
		var (
			key, cur  string
			sum       int64
			over      uint8
			n, buyers uint64
			dest      = []any{&cur, &sum, &over, &n, &buyers}
		)
		if s.grouped() {
			dest = append([]any{&key}, dest...)
		}
		if err := rows.Scan(dest...); err != nil {
			return nil, fmt.Errorf("cannot read revenue rows: %w", err)
		}
		// A sum that passed Int64 (in SQL, or once scaled up from a
		// sample) is reported at the bound, flagged by revenueValue.
		sumMicros := float64(sum) * factor
		if over == 1 || sumMicros >= maxSumMicros {
			sumMicros = math.MaxInt64
		}
		r := out[key]
		if r == nil {
			r = revenueRow{}
			out[key] = r
		}
		r[revSum+":"+cur] = sumMicros
		r[revEvents+":"+cur] = float64(n) * factor
		r[revVisitors+":"+cur] = float64(buyers) * factor
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("cannot read revenue rows: %w", err)
	}
	return out, nil
}

// revenueScan is the revenue scan of q's question over the plan's range:
// by the time bucket (bucket) or the breakdown's property (group), or
// together; keyPred selects keys.
func (pl *plan) revenueScan(q *Query, bucket string, byProp, group bool, keyPred func(*sqlb, func())) *scan {
	s := pl.scan(srcEvents, nil, q.Filters)
	s.revenue = true
	if q.Site.Privacy.Noisy() {
		s.clip = q.Site.Privacy.RevenueClip
	}
	s.bucket, s.group, s.keyPred = bucket, group, keyPred
	if byProp {
		s.prop = q.Property
		s.engagement = revenueByVisit(q.Property)
	}
	return s
}

// buildRevenueByVisit renders a revenue scan by a visit property: the
// revenue events in the period matching the events-side filters, summed
// per visit and currency, joined to the live visits matching the
// sessions-side filters. An event stored without a visit falls in no row.
func (s *scan) buildRevenueByVisit() *sqlb {
	b := &sqlb{}
	b.w("SELECT ")
	if s.grouped() {
		b.w("sk AS gk, ")
	}
	b.w("cur, toInt64(sum(x_s)) AS r_s, toUInt8(sum(x_f) >= ", strconv.FormatFloat(maxSumMicros, 'e', -1, 64),
		") AS r_o, toUInt64(sum(x_n)) AS r_n, toUInt64(uniq(visitor_id)) AS r_v FROM (SELECT session_id, revenue_currency AS cur, ")
	micros := s.micros()
	b.w("sum(", micros, ") AS x_s, sum(toFloat64(", micros, ")) AS x_f, count() AS x_n FROM events")
	s.sampleClause(b)
	b.w(" WHERE site_id = ").arg(s.site).w(" AND ")
	s.timeRange(b, "ts", s.p.From, s.p.To)
	b.w(" AND " + revenueRows + " AND session_id != 0")
	for _, f := range append(bySide(s.filters, sideEvents), anySide(s.filters)...) {
		b.w(" AND ")
		f.pred(b, s, sideEvents)
	}
	b.w(" GROUP BY session_id, cur) AS e INNER JOIN (SELECT session_id, visitor_id, ")
	s.prop.expr(b)
	b.w(" AS sk FROM sessions")
	s.sessionsWhere(b, s.p.From.Add(-sessionSlack))
	// Only the visits holding revenue: the join's right side is built in
	// memory, and most visits buy nothing.
	b.w(" AND session_id IN (SELECT session_id FROM events")
	s.sampleClause(b)
	b.w(" WHERE site_id = ").arg(s.site).w(" AND ")
	s.timeRange(b, "ts", s.p.From, s.p.To)
	b.w(" AND " + revenueRows + ")")
	b.w(" GROUP BY session_id, visitor_id, sk HAVING sum(sign) > 0) AS v USING session_id")
	if s.keyPred != nil {
		b.w(" WHERE ")
		s.keyPred(b, func() { b.w("sk") })
	}
	b.w(" GROUP BY ")
	if s.grouped() {
		b.w("gk, ")
	}
	b.w("cur")
	return b
}

// addRevenue merges revenue components into v.
func addRevenue(v map[string]float64, r revenueRow) {
	for c, x := range r {
		v[c] = x
	}
}

// revenueRows reads the revenue of each key of keys of q's breakdown.
func (e *Engine) revenueRows(ctx context.Context, pl *plan, q *Query, keys []string) (map[string]revenueRow, error) {
	if len(keys) == 0 {
		return map[string]revenueRow{}, nil // has([], key) does not type-check
	}
	return e.runRevenue(ctx, pl.revenueScan(q, "", true, true, func(b *sqlb, key func()) { b.w("has(").arg(keys).w(", "); key(); b.w(")") }))
}

// revenueOf reads the revenue of the keys pred selects, together.
func (e *Engine) revenueOf(ctx context.Context, pl *plan, q *Query, pred func(*sqlb, func())) (revenueRow, error) {
	by, err := e.runRevenue(ctx, pl.revenueScan(q, "", true, false, pred))
	if err != nil {
		return nil, err
	}
	return by[""], nil
}

// revenueExact fills the revenue of an exact breakdown's rows and of its
// (other) row, whose keys otherPred selects or, when nil, are those with
// fewer than kRead read visitors of the breakdown's scan over src.
func (e *Engine) revenueExact(ctx context.Context, pl *plan, q *Query, src source, kRead float64, rows, otherRows []row,
	otherPred func(*sqlb, func())) error {
	keys := make([]string, 0, len(rows))
	for _, r := range rows {
		keys = append(keys, r.key)
	}
	by, err := e.revenueRows(ctx, pl, q, keys)
	if err != nil {
		return err
	}
	for i := range rows {
		addRevenue(rows[i].v, by[rows[i].key])
	}
	if len(otherRows) == 0 {
		return nil
	}
	if otherPred == nil {
		otherPred = pl.foldedPred(q, src, kRead)
	}
	ov, err := e.revenueOf(ctx, pl, q, otherPred)
	if err != nil {
		return err
	}
	addRevenue(otherRows[0].v, ov)
	return nil
}

// chargeRevenue charges the revenue families of a cell released whatever
// its currencies (a breakdown's (other) row): what a question costs
// depends on the question alone.
func (r *release) chargeRevenue(q *Query, at cell) {
	if !r.noisy || !hasRevenue(q) {
		return
	}
	for _, k := range []string{revSum, revEvents, revVisitors} {
		r.charge(k+":", at)
	}
}

// releaseRevenue drops from v, a noisy site's released components, the
// currencies whose noisy buyers are under k: a currency's presence is
// told by a noisy count, as a breakdown row's.
func (q *Query) releaseRevenue(v map[string]float64) {
	if !q.Site.Privacy.Noisy() {
		return
	}
	k := float64(q.Site.Privacy.KAnonymity)
	for c, x := range v {
		if kind, cur, ok := revenueComponent(c); ok && kind == revVisitors && x < k {
			delete(v, c)
			delete(v, revSum+":"+cur)
			delete(v, revEvents+":"+cur)
		}
	}
}

// Money is a revenue metric's value: Plausible v2's money object for one
// currency. A cell with no revenue has a zero Value and no Currency; a
// cell holding several currencies (Glimpse's extension: there are no
// exchange rates) has a null Value and one Money per currency in
// ByCurrency, sorted by currency.
type Money struct {
	Value    *float64 `json:"value"`
	Currency *string  `json:"currency"`
	Short    string   `json:"short"`
	Long     string   `json:"long"`
	// Capped: the sum passed Int64 micros and is reported at that bound.
	Capped     bool    `json:"capped,omitempty"`
	ByCurrency []Money `json:"by_currency,omitempty"`
}

// noMoney is the value of a cell without revenue.
func noMoney() Money {
	zero := 0.0
	return Money{Value: &zero, Short: "0", Long: "0"}
}

// revenueValue is the value of a revenue metric over components v:
// total (sum) or average (sum over events) per currency.
func revenueValue(average bool) func(v map[string]float64) any {
	return func(v map[string]float64) any {
		var curs []string
		for c := range v {
			if kind, cur, ok := revenueComponent(c); ok && kind == revSum {
				curs = append(curs, cur)
			}
		}
		slices.Sort(curs)
		var each []Money
		for _, cur := range curs {
			micros, n := max(v[revSum+":"+cur], 0), max(v[revEvents+":"+cur], 0)
			capped := micros >= maxSumMicros
			if average {
				micros = ratio(micros, n)
			}
			each = append(each, money(cur, micros, capped))
		}
		switch len(each) {
		case 0:
			return noMoney()
		case 1:
			return each[0]
		}
		return Money{Short: "—", Long: "—", ByCurrency: each}
	}
}

// money is one currency's amount of micros.
func money(cur string, micros float64, capped bool) Money {
	units := micros / 1e6
	d := decimals(cur)
	value := round(units, d)
	c := cur
	return Money{Value: &value, Currency: &c, Short: shortMoney(cur, units), Long: longMoney(cur, units, d), Capped: capped}
}

// zeroDecimal are the currencies without minor units (ISO 4217).
var zeroDecimal = map[string]bool{"BIF": true, "CLP": true, "DJF": true, "GNF": true, "ISK": true, "JPY": true, "KMF": true,
	"KRW": true, "PYG": true, "RWF": true, "UGX": true, "UYI": true, "VND": true, "VUV": true, "XAF": true, "XOF": true, "XPF": true}

func decimals(cur string) int {
	if zeroDecimal[cur] {
		return 0
	}
	return 2
}

// symbols are the signs of common currencies; others are written as
// their code and a space ("CHF 12.50").
var symbols = map[string]string{"EUR": "€", "USD": "$", "GBP": "£", "JPY": "¥", "INR": "₹", "KRW": "₩", "CNY": "CN¥",
	"CAD": "CA$", "AUD": "A$", "BRL": "R$", "ILS": "₪", "VND": "₫", "NZD": "NZ$", "MXN": "MX$", "HKD": "HK$", "TWD": "NT$"}

func sign(cur string) string {
	if s, ok := symbols[cur]; ok {
		return s
	}
	return cur + " "
}

// longMoney writes units with d decimals and thousands separators:
// "€1,234.50".
func longMoney(cur string, units float64, d int) string {
	s := strconv.FormatFloat(units, 'f', d, 64)
	whole, frac, _ := strings.Cut(s, ".")
	var b strings.Builder
	for i, ch := range whole {
		if i > 0 && (len(whole)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(ch)
	}
	if frac != "" {
		b.WriteString("." + frac)
	}
	return sign(cur) + b.String()
}

// shortMoney writes units compactly: "€12.5", "€1.2K", "€3.4M".
func shortMoney(cur string, units float64) string {
	for _, u := range []struct {
		div float64
		suf string
	}{{1e12, "T"}, {1e9, "B"}, {1e6, "M"}, {1e3, "K"}} {
		if units >= u.div {
			return sign(cur) + trimZeros(strconv.FormatFloat(math.Floor(units/u.div*10)/10, 'f', 1, 64)) + u.suf
		}
	}
	return sign(cur) + trimZeros(strconv.FormatFloat(units, 'f', decimals(cur), 64))
}

func trimZeros(s string) string {
	if !strings.Contains(s, ".") {
		return s
	}
	return strings.TrimSuffix(strings.TrimRight(s, "0"), ".")
}

// pagesOnly reports whether p's rows count page views alone (event:page).
func (p *Property) pagesOnly() bool { return len(p.types) == 1 && p.types[0] == model.TypePageview }

// sameCurrency reports whether two values of a metric compare: not money,
// or money of one currency each, the same (or none on a side).
func sameCurrency(a, b any) bool {
	ma, okA := a.(Money)
	mb, okB := b.(Money)
	if !okA || !okB {
		return true
	}
	if ma.Value == nil || mb.Value == nil {
		return false
	}
	return ma.Currency == nil || mb.Currency == nil || *ma.Currency == *mb.Currency
}
