package reports

import (
	"context"
	"fmt"
	"time"

	"github.com/glimpse-analytics/glimpse/aggregator"
	"github.com/glimpse-analytics/glimpse/aggregator/period"
	"github.com/glimpse-analytics/glimpse/internal/config"
)

// Content is what one report says: the site's numbers over a full week or
// month, each with its change against the period before, and the top
// pages, sources and countries. Every number comes from the Stats API's
// engine, so the k threshold and noisy mode hold as they do for the API.
type Content struct {
	Site  string
	Every string // config.EveryWeek or config.EveryMonth
	// Period is the reported range [From, To) in the report's zone,
	// Previous the one compared with.
	Period, Previous period.Period
	Metrics          []Metric
	Pages            []Row
	Sources          []Row
	Countries        []Row
	// Noisy: every number carries calibrated noise (approximate).
	Noisy bool
	K     int // the site's k threshold
}

// Metric is one headline number. Value and Prev are nil when withheld
// (fewer than k visitors); Change is nil then too.
type Metric struct {
	Name, Label string
	Value, Prev any // int64 or float64
	Change      any // percent, or points (Diff)
	Diff        bool
}

// Row is one line of a top list: the key (a page path, a source, a
// country code) and its visitors.
type Row struct {
	Key      string
	Visitors any
}

// headline are the report's metrics, in order, with their labels.
var headline = []struct{ name, label string }{
	{"visitors", "Unique visitors"},
	{"visits", "Total visits"},
	{"pageviews", "Total pageviews"},
	{"bounce_rate", "Bounce rate"},
	{"visit_duration", "Visit duration"},
}

// tops are the report's top lists: the property broken down.
var tops = []struct{ property, label string }{
	{"event:page", "Top pages"},
	{"visit:source", "Top sources"},
	{"visit:country", "Top countries"},
}

// TopN is the length of each top list.
const TopN = 5

// LastFull is the last full week (Monday to Sunday) or month in loc that
// ended by now, as Stats API parameters: period and date (its last day).
func LastFull(every string, now time.Time, loc *time.Location) (p period.Period, periodParam, dateParam string) {
	n := now.In(loc)
	today := time.Date(n.Year(), n.Month(), n.Day(), 0, 0, 0, 0, loc)
	var last time.Time
	if every == config.EveryMonth {
		periodParam = "month"
		last = time.Date(n.Year(), n.Month(), 1, 0, 0, 0, 0, loc).AddDate(0, 0, -1)
	} else {
		periodParam = "7d"
		monday := today.AddDate(0, 0, -((int(today.Weekday()) + 6) % 7))
		last = monday.AddDate(0, 0, -1)
	}
	dateParam = last.Format(time.DateOnly)
	p, _ = period.Parse(periodParam, dateParam, loc, now) // valid by construction
	return p, periodParam, dateParam
}

// build computes a report of site over the last full period before now,
// released to reader (its privacy budget is charged for a noisy site).
func build(ctx context.Context, e *aggregator.Engine, site *config.Site, r *config.Report, reader string, now time.Time) (*Content, error) {
	// The report's zone may differ from the site's: the engine reads the
	// query's site for it, so the query gets a copy in that zone.
	s := *site
	s.Location = r.Location
	_, pp, dp := LastFull(r.Every, now, r.Location)
	params := map[string]string{
		"period": pp, "date": dp, "compare": aggregator.ComparePrevious,
		"metrics": "visitors,visits,pageviews,bounce_rate,visit_duration",
	}
	get := func(k string) string { return params[k] }
	q, err := aggregator.ParseQuery(aggregator.KindAggregate, &s, get, now)
	if err != nil {
		return nil, fmt.Errorf("cannot build the report query: %w", err)
	}
	q.Reader = reader
	res, err := e.Aggregate(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("cannot compute the report of %s: %w", site.Domain, err)
	}
	c := &Content{Site: site.Domain, Every: r.Every, Period: q.Period, Previous: q.Compare.Period,
		Noisy: site.Privacy.Noisy(), K: site.Privacy.KAnonymity}
	agg, _ := res.Results.(map[string]any)
	for _, h := range headline {
		m := Metric{Name: h.name, Label: h.label, Diff: h.name == "bounce_rate"}
		if o, ok := agg[h.name].(map[string]any); ok {
			m.Value, m.Prev, m.Change = o["value"], o["comparison_value"], o["change"]
		}
		c.Metrics = append(c.Metrics, m)
	}
	delete(params, "compare")
	params["metrics"] = "visitors"
	params["limit"] = fmt.Sprint(TopN)
	for i, t := range tops {
		params["property"] = t.property
		q, err := aggregator.ParseQuery(aggregator.KindBreakdown, &s, get, now)
		if err != nil {
			return nil, fmt.Errorf("cannot build the report query: %w", err)
		}
		q.Reader = reader
		res, err := e.Breakdown(ctx, q)
		if err != nil {
			return nil, fmt.Errorf("cannot compute the report of %s: %w", site.Domain, err)
		}
		rows, _ := res.Results.([]map[string]any)
		var out []Row
		for _, row := range rows {
			if row[q.Property.Key] == aggregator.Other {
				continue // the rows under k folded: not a top anything
			}
			out = append(out, Row{Key: fmt.Sprint(row[q.Property.Key]), Visitors: row["visitors"]})
		}
		switch i {
		case 0:
			c.Pages = out
		case 1:
			c.Sources = out
		case 2:
			c.Countries = out
		}
	}
	return c, nil
}
