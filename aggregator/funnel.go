package aggregator

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/glimpse-analytics/glimpse/aggregator/period"
	"github.com/glimpse-analytics/glimpse/internal/config"
)

// Funnels. A funnel is an ordered list of steps (a page pattern or a
// goal) and a window: a visitor reaches step i when they did steps 1..i
// in that order, every one within the window of their step-1 event.
// ClickHouse's windowFunnel(window)(ts, cond1, ..., condN) gives each
// visitor the deepest step reached over the period; step i's visitors
// are those that reached level i or deeper. Visitor ids are salted per
// UTC day, so a funnel never follows a person across midnight UTC
// (config.MaxFunnelWindow).
//
// Disclosure control: on an exact site a step of 1 to k-1 visitors is
// withheld, and so is every later step (they are subsets of it). On a
// noisy site each step's count is a cell of sensitivity 1 (one
// visitor-day moves each count by at most 1), keyed by the funnel's
// canonical steps and window, the step, the period and the filters, and
// charged to the reader's budget; the noisy counts are then made
// non-increasing (post-processing costs no privacy) and those under k
// withheld.

// FunnelQuery is a validated funnel request.
type FunnelQuery struct {
	Query
	Funnel *config.Funnel
}

// FunnelResult is the "results" of a funnel answer.
type FunnelResult struct {
	Name   string       `json:"name"`
	Window string       `json:"window"`
	Steps  []FunnelStep `json:"steps"`
}

// FunnelStep is one step of a funnel answer. A withheld step has null
// numbers and a reason.
type FunnelStep struct {
	Step int    `json:"step"`
	Name string `json:"name"`
	Page string `json:"page,omitempty"`
	Goal string `json:"goal,omitempty"`
	// Visitors reached this step; ConversionRate is them as a percentage
	// of step 1's, StepConversionRate of the previous step's, Dropoff
	// the previous step's visitors who did not reach this one.
	Visitors           *int64   `json:"visitors"`
	ConversionRate     *float64 `json:"conversion_rate"`
	StepConversionRate *float64 `json:"step_conversion_rate"`
	Dropoff            *int64   `json:"dropoff"`
	Withheld           string   `json:"withheld,omitempty"`
}

// ParseFunnelQuery validates a funnel request's parameters: period,
// date, filters (visit properties only), and either funnel=<name of one
// of the site's funnels> or steps=page:/a|goal:B|... with an optional
// window=<duration> (default 1h). "\|" escapes a | inside a step.
func ParseFunnelQuery(site *config.Site, get func(string) string, now time.Time) (*FunnelQuery, error) {
	fq := &FunnelQuery{Query: Query{Site: site}}
	loc := site.Location
	if loc == nil {
		loc = time.UTC
	}
	var err error
	if get("period") == "realtime" {
		return nil, badRequest("period=realtime is not supported by funnels; use a period of days")
	}
	if fq.Period, err = period.Parse(get("period"), get("date"), loc, now); err != nil {
		return nil, badRequest("%s", err)
	}
	fq.releasedAt(now)
	if get("compare") != "" {
		return nil, badRequest("compare is not supported by funnels")
	}
	f := get("filters")
	if f == "" {
		f = get("filter")
	}
	if fq.Filters, err = ParseFilters(f); err != nil {
		return nil, err
	}
	for _, f := range fq.Filters {
		if f.Prop.side != sideSessions {
			return nil, badRequest("invalid filter on %s: a funnel takes visit filters only (visit:source, visit:country, ...); its steps say which events count", f.Prop.Name)
		}
	}
	name, steps, window := get("funnel"), get("steps"), get("window")
	switch {
	case name != "" && (steps != "" || window != ""):
		return nil, badRequest("give either funnel=<name> or steps=... (with window=), not both")
	case name != "":
		if fq.Funnel = site.FunnelNamed(name); fq.Funnel == nil {
			var names []string
			for _, f := range site.Funnels {
				names = append(names, strconv.Quote(f.Name))
			}
			known := "this site has no funnels configured"
			if len(names) > 0 {
				known = "this site's funnels are " + strings.Join(names, ", ")
			}
			return nil, badRequest("unknown funnel %q: %s", name, known)
		}
	case steps != "":
		fn := &config.Funnel{Name: steps, WindowText: window}
		for _, s := range splitEscaped(steps, '|') {
			kind, v, ok := strings.Cut(unescape(strings.TrimSpace(s)), ":")
			switch {
			case ok && kind == "page":
				fn.Steps = append(fn.Steps, config.FunnelStep{Page: v})
			case ok && kind == "goal":
				fn.Steps = append(fn.Steps, config.FunnelStep{Goal: v})
			default:
				return nil, badRequest("invalid step %q: want page:/path or goal:Name, steps separated by |", s)
			}
		}
		if probs := config.CheckFunnel(fn); len(probs) > 0 {
			return nil, badRequest("invalid funnel: %s", probs[0].Error())
		}
		fq.Funnel = fn
	default:
		return nil, badRequest("missing funnel: give funnel=<name> (one of the site's funnels) or steps=page:/path|goal:Name|...")
	}
	return fq, nil
}

// canonicalFunnel describes a funnel's steps and window regardless of
// its name and its steps' labels: the noise cells' key.
func canonicalFunnel(f *config.Funnel) string {
	var b strings.Builder
	for _, s := range f.Steps {
		if s.Page != "" {
			b.WriteString("p:" + s.Page)
		} else {
			b.WriteString("g:" + s.Goal)
		}
		b.WriteByte('\x1f')
	}
	b.WriteString(strconv.FormatInt(int64(f.Window/time.Second), 10))
	return b.String()
}

// stepPred writes step st's condition over an events row: a page view
// of a matching path, or the event:goal filter's predicate.
func stepPred(b *sqlb, st config.FunnelStep) error {
	if st.Page != "" {
		p, err := ParseProperty("event:page")
		if err != nil {
			return err
		}
		b.w("(type = 'pageview' AND ")
		(&Filter{Prop: p, Values: []string{st.Page}}).leafPred(b)
		b.w(")")
		return nil
	}
	p, err := ParseProperty("event:goal")
	if err != nil {
		return err
	}
	(&Filter{Prop: p, Values: []string{st.Goal}}).leafPred(b)
	return nil
}

// buildFunnel renders the query of per-level visitor counts: rows
// (level, visitors) for the levels reached by someone.
func (fq *FunnelQuery) buildFunnel(p period.Period) (*sqlb, error) {
	s := &scan{src: srcEvents, site: fq.Site.Domain, p: p, filters: fq.Filters}
	b := &sqlb{}
	b.w("SELECT level, toFloat64(count()) AS n FROM (SELECT visitor_id, windowFunnel(").
		w(strconv.FormatInt(int64(fq.Funnel.Window/time.Second), 10)).w(")(ts")
	// The window is a parameter of the aggregate function, which takes
	// a literal: it is an integer of seconds validated by CheckFunnel,
	// never request text.
	for _, st := range fq.Funnel.Steps {
		b.w(", ")
		if err := stepPred(b, st); err != nil {
			return nil, err
		}
	}
	b.w(") AS level FROM events WHERE site_id = ").arg(s.site).w(" AND ")
	s.timeRange(b, "ts", p.From, p.To)
	b.w(" AND type NOT IN " + noVisitTypes)
	if vf := fq.Filters; len(vf) > 0 {
		b.w(" AND session_id IN (SELECT session_id FROM sessions WHERE site_id = ").arg(s.site).w(" AND ")
		s.timeRange(b, "start", p.From.Add(-sessionSlack), p.To)
		for _, f := range vf {
			b.w(" AND ")
			f.pred(b, s, sideSessions)
		}
		if attributionOnly(vf) {
			b.w(" AND sign > 0)")
		} else {
			b.w(" GROUP BY session_id HAVING sum(sign) > 0)")
		}
	}
	b.w(" GROUP BY visitor_id) WHERE level > 0 GROUP BY level")
	return b, nil
}

// Funnel answers /api/v1/stats/funnel.
func (e *Engine) Funnel(ctx context.Context, fq *FunnelQuery) (*Response, error) {
	q := &fq.Query
	p := q.released(q.Period)
	b, err := fq.buildFunnel(p)
	if err != nil {
		return nil, err
	}
	qctx, cancel := context.WithTimeout(ctx, e.opts.QueryTimeout)
	defer cancel()
	rows, err := e.opts.Conn.Query(qctx, e.settings(b).String(), b.args...)
	if err != nil {
		return nil, fmt.Errorf("cannot query the funnel: %w", err)
	}
	defer rows.Close()
	n := len(fq.Funnel.Steps)
	atLevel := make([]float64, n+1)
	for rows.Next() {
		var level uint8
		var c float64
		if err := rows.Scan(&level, &c); err != nil {
			return nil, fmt.Errorf("cannot read the funnel: %w", err)
		}
		if int(level) <= n {
			atLevel[level] = c
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("cannot read the funnel: %w", err)
	}
	// Step i's visitors reached level i or deeper.
	counts := make([]float64, n)
	for i := n; i >= 1; i-- {
		counts[i-1] = atLevel[i]
		if i < n {
			counts[i-1] += counts[i]
		}
	}
	r := e.release(q)
	canon := canonicalFunnel(fq.Funnel)
	k := float64(q.Site.Privacy.KAnonymity)
	for i := range counts {
		counts[i] = r.value("visitors", cell{side: "funnel", from: p.From, to: p.To, by: canon, key: strconv.Itoa(i + 1)}, counts[i], 1)
		if r.noisy {
			// Post-processing: a later step is a subset of an earlier one.
			counts[i] = max(math.Round(counts[i]), 0)
			if i > 0 {
				counts[i] = min(counts[i], counts[i-1])
			}
		}
	}
	res := &FunnelResult{Name: fq.Funnel.Name, Window: config.FormatFunnelWindow(fq.Funnel.Window)}
	reason := withheldReason(q.Site.Privacy.KAnonymity)
	withheld := false
	for i, st := range fq.Funnel.Steps {
		out := FunnelStep{Step: i + 1, Name: st.Label(), Page: st.Page, Goal: st.Goal}
		c := counts[i]
		if r.noisy && c < k || !r.noisy && c > 0 && c < k {
			withheld = true
		}
		if withheld {
			out.Withheld = reason
			res.Steps = append(res.Steps, out)
			continue
		}
		v := int64(c)
		out.Visitors = &v
		prev := c
		if i > 0 {
			prev = counts[i-1]
		}
		drop := int64(prev) - v
		out.Dropoff = &drop
		out.ConversionRate = funnelRate(c, counts[0])
		out.StepConversionRate = funnelRate(c, prev)
		res.Steps = append(res.Steps, out)
	}
	meta := Meta{Source: "raw", SampleFactor: 1, KAnonymity: q.Site.Privacy.KAnonymity, Filtered: len(q.Filters) > 0}
	if err := e.finish(q, r, &meta); err != nil {
		return nil, err
	}
	return &Response{Results: res, Meta: meta}, nil
}

// funnelRate is a of b in percent with two decimals (0 when b is 0).
func funnelRate(a, b float64) *float64 {
	v := 0.0
	if b > 0 {
		v = math.Round(a/b*10000) / 100
	}
	return &v
}
