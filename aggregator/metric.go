package aggregator

import (
	"math"
	"strings"
)

// personExpr identifies the person behind an events row: the visitor id,
// or for email rows the recipient pseudonym (else the event itself).
const personExpr = "if(visitor_id != 0 OR type NOT IN ('email_open', 'email_click'), visitor_id, " +
	"if(email_recipient != '', cityHash64(email_recipient), cityHash64(toString(event_id))))"

// emailTypes are the event types of the email panel: opens and clicks
// of tracked emails, stored with no visitor or session id. They are not
// the site's traffic: only a question about email campaigns (a breakdown
// by, or a filter on, email:campaign) counts their people as visitors.
const emailTypes = "('email_open', 'email_click')"

// noVisitTypes are the event types that make no visitor or visit of the
// site: email opens and clicks, and engagement, which reports time on a
// page already counted (Plausible leaves it out of visitors). An
// engagement sent after its session ended is stored with no session,
// under the next day's visitor id: it must not count as that visitor.
const noVisitTypes = "('email_open', 'email_click', 'engagement')"

// siteEventsCols replace eventsCols' people and visit counts in every
// other question: site visitors and visits only.
var siteEventsCols = map[string]string{
	"visitors": "uniqIf(visitor_id, type NOT IN " + noVisitTypes + ")",
	"visits":   "uniqIf(session_id, type NOT IN " + noVisitTypes + ")",
}

// emailCols are the raw columns that count email rows.
var emailCols = map[string]bool{"opens": true, "machine_opens": true, "clicks": true, "openers": true, "clickers": true}

// engagementCols are the raw columns read from engagement events.
var engagementCols = map[string]bool{"eng_ms": true, "eng_n": true, "scroll": true}

// pageEngagementCols replace the people and visit counts of a scan by
// event:page that reads engagement events beside page views
// (scan.pageEngagement): a page's visitors are those who viewed it.
var pageEngagementCols = map[string]string{
	"visitors": "uniqIf(visitor_id, type = 'pageview')",
	"visits":   "uniqIf(session_id, type = 'pageview')",
}

// Raw columns: the sums and unique counts metrics are derived from. Each
// source below says how to compute the ones it can; a metric lists the raw
// columns it needs, so one query serves several metrics.
var (
	// eventsCols are aggregates over rows of the events table.
	eventsCols = map[string]string{
		// Email opens and clicks carry no visitor id: the people behind them
		// are recipients (the sender's pseudonym), or, without one, each
		// event counts as its own person. So "visitors" of email rows, and
		// the k-anonymity count over them, count recipients.
		"visitors":      "uniqIf(" + personExpr + ", type != 'engagement')",
		"pageviews":     "countIf(type = 'pageview')",
		"events":        "countIf(type IN ('pageview', 'custom', 'outbound', 'download', 'impression'))",
		"visits":        "uniqIf(session_id, type != 'engagement')",
		"eng_ms":        "sumIf(engagement_ms, type = 'engagement')",
		"eng_n":         "countIf(type = 'engagement')",
		"scroll":        "sumIf(scroll_depth, type = 'engagement')",
		"outbound":      "countIf(type = 'outbound')",
		"opens":         "countIf(type = 'email_open' AND email_verdict != 'machine')",
		"machine_opens": "countIf(type = 'email_open' AND email_verdict = 'machine')",
		"clicks":        "countIf(type = 'email_click' AND email_verdict != 'machine')",
		"openers":       "uniqExactIf(email_recipient, type = 'email_open' AND email_verdict != 'machine' AND email_recipient != '')",
		"clickers":      "uniqExactIf(email_recipient, type = 'email_click' AND email_verdict != 'machine' AND email_recipient != '')",
	}
	// sessionsCols are aggregates over collapsed sessions (one row per
	// live session: vs = sum(sign), bs, ds, ps, es its sign-weighted sums;
	// under event filters ps and es count the matching events, and vps
	// the visit's page views: scan.sessionsOfEvents).
	sessionsCols = map[string]string{
		"visit_pageviews": "sum(vps)",
		"visitors":        "uniq(visitor_id)",
		"visits":          "sum(vs)",
		"bounces":         "sum(bs)",
		"duration":        "sum(ds)",
		"pageviews":       "sum(ps)",
		"events":          "sum(es)",
	}
	// Rollups (0003_hourly_rollups.sql).
	eventsHourlyCols = map[string]string{
		"visitors":  "uniqMerge(visitors)",
		"pageviews": "sumMerge(pageviews)",
		"events":    "sumMerge(events)",
	}
	sessionsHourlyCols = map[string]string{
		"visits":    "sum(visits)",
		"bounces":   "sum(bounces)",
		"duration":  "sum(duration_sum)",
		"pageviews": "sum(pageviews_sum)",
	}
	pagesHourlyCols = map[string]string{
		"visitors":  "uniqMerge(visitors)",
		"pageviews": "sumMerge(pageviews)",
	}
	// sessionDimsCols: 0004_session_rollups.sql, one dimension's rows.
	sessionDimsCols = map[string]string{
		"visitors":  "uniqMerge(visitors)",
		"visits":    "sumMerge(visits)",
		"bounces":   "sumMerge(bounces)",
		"duration":  "sumMerge(duration_sum)",
		"pageviews": "sumMerge(pageviews_sum)",
		"events":    "sumMerge(events_sum)",
	}
)

// Metric is a Plausible v1 metric (or one of Glimpse's own).
type metric struct {
	// home is the side an aggregate or time series reads it from.
	home side
	// sides lists the sides that can compute it (breakdowns read every
	// metric from the property's side).
	events, sessions bool
	needs            []string
	value            func(v map[string]float64) any
	// diff: the change against the previous period is a difference in
	// points (rates), not a percentage.
	diff bool
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

// percent is a over b in percent, rounded half away from zero to places
// decimals: a*100*10^places/b is one division of counts, so a tie
// (23/80 = 28.75%) is exactly one and rounds up, where 100*(a/b) is
// 28.7499... and rounded down.
func percent(a, b float64, places int) float64 {
	if b == 0 {
		return 0
	}
	p := math.Pow(10, float64(places))
	return math.Round(a*100*p/b) / p
}

func round(x float64, places int) float64 {
	p := math.Pow(10, float64(places))
	return math.Round(x*p) / p
}

func count(name string) func(map[string]float64) any {
	return func(v map[string]float64) any { return int64(math.Round(v[name])) }
}

var metrics = map[string]metric{
	"visitors":  {home: sideEvents, events: true, sessions: true, needs: []string{"visitors"}, value: count("visitors")},
	"visits":    {home: sideSessions, events: true, sessions: true, needs: []string{"visits"}, value: count("visits")},
	"pageviews": {home: sideEvents, events: true, sessions: true, needs: []string{"pageviews"}, value: count("pageviews")},
	"events":    {home: sideEvents, events: true, sessions: true, needs: []string{"events"}, value: count("events")},
	"views_per_visit": {home: sideSessions, sessions: true, needs: []string{"pageviews", "visits"},
		value: func(v map[string]float64) any {
			pv, ok := v["visit_pageviews"] // under event filters (visitPageviews)
			if !ok {
				pv = v["pageviews"]
			}
			return round(ratio(pv, v["visits"]), 2)
		}},
	"bounce_rate": {home: sideSessions, sessions: true, needs: []string{"bounces", "visits"}, diff: true,
		value: func(v map[string]float64) any { return int64(percent(v["bounces"], v["visits"], 0)) }},
	"visit_duration": {home: sideSessions, sessions: true, needs: []string{"duration", "visits"},
		value: func(v map[string]float64) any { return int64(math.Round(ratio(v["duration"], v["visits"]))) }},
	"time_on_page": {home: sideEvents, events: true, needs: []string{"eng_ms", "eng_n"},
		value: func(v map[string]float64) any { return int64(math.Round(ratio(v["eng_ms"], v["eng_n"]) / 1000)) }},
	"scroll_depth": {home: sideEvents, events: true, needs: []string{"scroll", "eng_n"},
		value: func(v map[string]float64) any { return int64(math.Round(ratio(v["scroll"], v["eng_n"]))) }},
	"outbound_clicks":     {home: sideEvents, events: true, needs: []string{"outbound"}, value: count("outbound")},
	"email_opens":         {home: sideEvents, events: true, needs: []string{"opens"}, value: count("opens")},
	"email_machine_opens": {home: sideEvents, events: true, needs: []string{"machine_opens"}, value: count("machine_opens")},
	"email_clicks":        {home: sideEvents, events: true, needs: []string{"clicks"}, value: count("clicks")},
	"click_through_rate": {home: sideEvents, events: true, needs: []string{"clicks", "opens"}, diff: true,
		value: func(v map[string]float64) any { return percent(v["clicks"], v["opens"], 1) }},
	// email_unique_opens: recipients (pseudonyms) with a human open.
	"email_unique_opens": {home: sideEvents, events: true, needs: []string{"openers"}, value: count("openers")},
	// click_to_open_rate: recipients who clicked over recipients who opened,
	// both human; without pseudonyms, human clicks over human opens.
	"click_to_open_rate": {home: sideEvents, events: true, needs: []string{"openers", "clickers", "opens", "clicks"}, diff: true,
		value: func(v map[string]float64) any {
			if v["openers"] > 0 {
				return percent(v["clickers"], v["openers"], 1)
			}
			return percent(v["clicks"], v["opens"], 1)
		}},
	// total_revenue, average_revenue: per currency, from the events
	// carrying revenue (revenue.go); their components are added to the
	// events side's by a scan of their own.
	"total_revenue":   {home: sideEvents, events: true, sessions: true, needs: []string{"visitors"}, value: revenueValue(false)},
	"average_revenue": {home: sideEvents, events: true, sessions: true, needs: []string{"visitors"}, value: revenueValue(true)},
	// conversion_rate: visitors who reached the goal over all visitors of
	// the same query without its goal filter ("total_visitors").
	"conversion_rate": {home: sideEvents, events: true, sessions: true, needs: []string{"visitors"}, diff: true,
		value: func(v map[string]float64) any { return percent(v["visitors"], v["total_visitors"], 1) }},
}

// visitPageviews adds to the sessions side's columns cols the page views
// of whole visits when views_per_visit is asked under event filters:
// there the sessions' pageviews count the matching page views only.
func visitPageviews(q *Query, cols []string) []string {
	if hasMetric(q, "views_per_visit") && len(bySide(q.Filters, sideEvents)) > 0 {
		return union(cols, []string{"visit_pageviews"})
	}
	return cols
}

// MetricNames lists the supported metrics.
func MetricNames() []string {
	var out []string
	for n := range metrics {
		out = append(out, n)
	}
	return out
}

// parseMetrics validates the metrics parameter (default visitors); an
// unknown metric is a 400 naming it.
func parseMetrics(s string) ([]string, error) {
	if strings.TrimSpace(s) == "" {
		return []string{"visitors"}, nil
	}
	var out []string
	seen := map[string]bool{}
	for _, m := range strings.Split(s, ",") {
		m = strings.TrimSpace(m)
		if _, ok := metrics[m]; !ok {
			return nil, badRequest("unknown metric %q", m)
		}
		if !seen[m] {
			seen[m] = true
			out = append(out, m)
		}
	}
	return out, nil
}

// change is Plausible's comparison: points for rates, otherwise the
// percentage change rounded, 100 when the previous value was 0.
func change(m metric, cur, prev any) any {
	if !sameCurrency(cur, prev) {
		return nil // no exchange rates: amounts in different currencies do not compare
	}
	c, p := toF(cur), toF(prev)
	if m.diff {
		return round(c-p, 1)
	}
	if p == 0 {
		if c > 0 {
			return int64(100)
		}
		return int64(0)
	}
	return int64(math.Round((c - p) / p * 100))
}

func toF(v any) float64 {
	switch v := v.(type) {
	case int64:
		return float64(v)
	case float64:
		return v
	case Money:
		if v.Value != nil {
			return *v.Value
		}
	}
	return 0
}
