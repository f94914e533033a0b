package api_test

import (
	"fmt"
	"math"
	"net/url"
	"slices"
	"time"

	"github.com/glimpse-analytics/glimpse/aggregator/api"
)

// Comparisons in the oracle: time series and breakdowns asked with
// compare, each comparison value and change recomputed from the model
// over the comparison range (API, dashboard JSON and CSV alike).

// orCmpChange is the change the engine reports: orChange, and the email
// rates in points too.
func orCmpChange(metric string, old, cur float64) float64 {
	switch metric {
	case "click_through_rate", "click_to_open_rate":
		return math.Round(10*(cur-old)) / 10
	}
	return orChange(metric, old, cur)
}

// comparisons checks the comparisons of one site: a three-day range
// against the three days before it and against four days of its own
// (a longer comparison: the fourth bucket is left out), and a day by
// hours against the day before.
func (c *orChecker) comparisons(m *orModel, site string, loc *time.Location) {
	p := orPeriod{"period=custom&date=2025-03-10,2025-03-12", orDay(loc, "2025-03-10"), orDay(loc, "2025-03-13")}
	cmps := []struct {
		params   string
		from, to time.Time
	}{
		{"compare=previous_period", orDay(loc, "2025-03-07"), orDay(loc, "2025-03-10")},
		{"compare=custom&compare_date=" + url.QueryEscape("2025-03-03,2025-03-06"), orDay(loc, "2025-03-03"), orDay(loc, "2025-03-07")},
	}
	q := func(f string) orQuery {
		return orQuery{site: site, loc: loc, from: p.from, to: p.to, filters: orParseFilters(f)}
	}
	for _, cmp := range cmps {
		for _, iv := range []string{"date", "week"} {
			for _, f := range []string{"", "visit:country==DE", "event:goal==Signup"} {
				c.compareTimeseries(m, q(f), p, iv, f, cmp.params, cmp.from, cmp.to)
			}
		}
		for _, prop := range append(orKeys(orVisitProps), orKeys(orEventProps)...) {
			for _, f := range []string{"", "visit:country==US", "event:goal==Signup"} {
				if f != "" && prop == "email:campaign" {
					continue
				}
				if f == "event:goal==Signup" && (prop == "event:outbound_link" || prop == "event:download" || prop == "event:hostname") {
					continue
				}
				c.compareBreakdown(m, q(f), p, prop, f, cmp.params, cmp.from, cmp.to)
			}
		}
	}
	day := orPeriod{"period=day&date=2025-03-10", orDay(loc, "2025-03-10"), orDay(loc, "2025-03-11")}
	for _, f := range []string{"", "visit:country==DE"} {
		c.compareTimeseries(m, orQuery{site: site, loc: loc, from: day.from, to: day.to, filters: orParseFilters(f)}, day, "hour", f,
			"compare=previous_period", orDay(loc, "2025-03-09"), orDay(loc, "2025-03-10"))
	}
}

// compareTimeseries checks each point's comparison: the comparison
// range's bucket of the same index (its date and metrics, withheld as any
// bucket), and the change.
func (c *orChecker) compareTimeseries(m *orModel, q orQuery, p orPeriod, interval, filters, cmp string, cf, ct time.Time) {
	params := orSiteParams(q.site, p.params, "interval="+interval, cmp, orEsc(filters))
	metrics := slices.Clone(orTSMetrics)
	if slices.ContainsFunc(q.filters, orFilter.goal) {
		metrics = append(metrics, "conversion_rate")
	}
	labels, from, to := orBuckets(p, interval)
	cLabels, cFrom, cTo := orBuckets(orPeriod{from: cf, to: ct}, interval)
	c.each(orAll, func() {
		got := c.ask(api.PathTimeseries, params, metrics)
		for _, mt := range metrics {
			body := got[mt]
			if body == nil {
				continue
			}
			list, _ := body["results"].([]any)
			if len(list) != len(labels) {
				c.count()
				c.mismatch("timeseries?%s | %s | : %d points, want %d", params, mt, len(list), len(labels))
				continue
			}
			for i, l := range labels {
				pt, _ := list[i].(map[string]any)
				bq := q
				bq.from, bq.to = from[i], to[i]
				cur := m.aggregate(bq)
				if i >= len(cLabels) {
					c.count()
					if pt["comparison"] != nil || pt["change"] != nil {
						c.mismatch("timeseries?%s | %s | %s: comparison %v past the comparison's buckets, want null", params, mt, l, pt["comparison"])
					}
					continue
				}
				cq := q
				cq.from, cq.to = cFrom[i], cTo[i]
				prev := m.aggregate(cq)
				got, _ := pt["comparison"].(map[string]any)
				change, _ := pt["change"].(map[string]any)
				c.count()
				if got == nil || got["date"] != cLabels[i] {
					c.mismatch("timeseries?%s | %s | %s: comparison %v, want the bucket %s", params, mt, l, pt["comparison"], cLabels[i])
					continue
				}
				var w, wc *float64
				if !orWithheld(filters != "", prev["visitors"]) {
					x := prev[mt]
					w = &x
					if !orWithheld(filters != "", cur["visitors"]) {
						y := orCmpChange(mt, prev[mt], cur[mt])
						wc = &y
					}
				}
				c.compare("timeseries?"+params, mt+" comparison", l, w, got[mt])
				c.compare("timeseries?"+params, mt+" change", l, wc, change[mt])
			}
		}
	})
}

// compareBreakdown checks each row's comparison: the same key over the
// comparison range (0 when absent there, withheld under k as a row is
// folded), and for (other) the keys folded in the current range read
// there together.
func (c *orChecker) compareBreakdown(m *orModel, q orQuery, p orPeriod, prop, filters, cmp string, cf, ct time.Time) {
	key := orVisitProps[prop]
	metrics := append([]string(nil), orAggMetrics...)
	if key == "" {
		key = orEventProps[prop]
		metrics = slices.Clone(orPropMetrics)
		switch prop {
		case "event:page":
			metrics = []string{"visitors", "pageviews", "time_on_page", "scroll_depth"}
		case "email:campaign":
			metrics = []string{"visitors", "email_opens", "email_clicks", "email_unique_opens", "email_machine_opens",
				"click_through_rate", "click_to_open_rate"}
		}
	}
	if slices.ContainsFunc(q.filters, orFilter.goal) || prop == "event:goal" {
		metrics = append(metrics, "conversion_rate")
	}
	params := orSiteParams(q.site, p.params, "property="+url.QueryEscape(prop), "limit=1000", cmp, orEsc(filters))
	cq := q
	cq.from, cq.to = cf, ct
	rows, prev := m.breakdown(q, prop), m.breakdown(cq, prop)
	type want struct{ cur, prev *orRow }
	wants := map[string]want{}
	other := map[string]bool{}
	var folded []*orRow // the folded keys' rows in the comparison range
	for k, r := range rows {
		if len(r.visitors) >= orK {
			wants[k] = want{r, prev[k]}
			continue
		}
		for v := range r.visitors {
			other[v] = true
		}
		if pr := prev[k]; pr != nil {
			folded = append(folded, pr)
		}
	}
	if len(other) >= orK {
		ov := map[string]bool{}
		for _, r := range folded {
			for v := range r.visitors {
				ov[v] = true
			}
		}
		om := m.other(cq, prop, folded)
		if om == nil {
			om = map[string]float64{}
		}
		om["visitors"] = float64(len(ov))
		wants["(other)"] = want{nil, &orRow{metrics: om, visitors: ov}}
	}
	c.each(orAll, func() {
		got := c.ask(api.PathBreakdown, params, metrics)
		for _, mt := range metrics {
			body := got[mt]
			if body == nil {
				continue
			}
			gotRows := map[string]map[string]any{}
			list, _ := body["results"].([]any)
			for _, x := range list {
				r := x.(map[string]any)
				gotRows[fmt.Sprint(r[key])] = r
			}
			for k, w := range wants {
				g, ok := gotRows[k]
				if !ok {
					continue // the breakdown check reports it
				}
				gc, _ := g["comparison"].(map[string]any)
				gch, _ := g["change"].(map[string]any)
				n := 0
				if w.prev != nil {
					n = len(w.prev.visitors)
				}
				var wv, wc *float64
				if n == 0 || n >= orK {
					x, ok := 0.0, true
					if w.prev != nil {
						x, ok = w.prev.metrics[mt]
					}
					if !ok {
						continue // not modelled: (other) of some breakdowns
					}
					wv = &x
					// The change from the comparison modelled here to the
					// current value as answered: the current values are the
					// breakdown check's (a conversion rate of exactly
					// x.x5% is rounded down by the engine, 23/80 = 28.7,
					// and up by the model: not this check's concern).
					if cur, ok := g[mt].(float64); ok && w.cur != nil {
						y := orCmpChange(mt, x, cur)
						wc = &y
					}
				}
				c.compare("breakdown?"+params, mt+" comparison", k, wv, gc[mt])
				if w.cur != nil {
					c.compare("breakdown?"+params, mt+" change", k, wc, gch[mt])
				}
			}
		}
	})
}
