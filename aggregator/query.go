package aggregator

import (
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/glimpse-analytics/glimpse/aggregator/period"
	"github.com/glimpse-analytics/glimpse/internal/config"
)

// Kind is the Stats API endpoint a query serves.
type Kind int

const (
	KindAggregate Kind = iota
	KindTimeseries
	KindBreakdown
)

// Query is one validated Stats API request.
type Query struct {
	Site     *config.Site
	Period   period.Period
	Metrics  []string
	Filters  []Filter
	Property *Property   // breakdowns
	Interval string      // time series
	Compare  *Comparison // compare=...: every endpoint also answers for this range
	Limit    int         // breakdowns: rows per page (default 100, at most 1000)
	Page     int         // breakdowns: 1-based
	// Raw answers from the raw tables even where a rollup could; the
	// rollup == raw test uses it. Not reachable from the API.
	Raw bool
	// Reader is who the answer is released to (an API key, a dashboard
	// session, a shared link): the privacy budget is theirs.
	Reader string
	// until is a noisy site's release point: data after it is not read
	// (releasedAt).
	until time.Time
}

// Comparison modes (the compare parameter).
const (
	ComparePrevious = "previous_period"
	CompareYear     = "year_over_year"
	CompareCustom   = "custom"
)

// Comparison is the range a query's numbers are compared with, resolved
// at parse time: the previous period (period.Previous), the same dates a
// year earlier (period.YearOverYear) or custom dates. Its numbers are
// released under the same disclosure control as the query's own: they
// are cells of the comparison range.
type Comparison struct {
	Mode   string
	Period period.Period
}

// NewComparison resolves mode for p; dates are the custom range's days
// ("YYYY-MM-DD,YYYY-MM-DD"). Its errors name the parameter at fault.
func NewComparison(mode, dates string, p period.Period) (*Comparison, error) {
	c := &Comparison{Mode: mode}
	switch mode {
	case ComparePrevious:
		c.Period = p.Previous()
	case CompareYear:
		c.Period = p.YearOverYear()
	case CompareCustom:
		if dates == "" {
			return nil, badRequest("compare=custom needs compare_date=YYYY-MM-DD,YYYY-MM-DD")
		}
		if _, _, ok := strings.Cut(dates, ","); !ok {
			return nil, badRequest("invalid compare_date %q: want YYYY-MM-DD,YYYY-MM-DD", dates)
		}
		cp, err := period.Custom(dates, p.Loc)
		if err != nil {
			return nil, badRequest("invalid compare_date: %s", err)
		}
		c.Period = cp
	default:
		return nil, badRequest("invalid compare %q: want previous_period, year_over_year or custom", mode)
	}
	return c, nil
}

// ReleaseHour is how far a noisy site's numbers lag: a range is read up to
// the last full hour, whose data is final, so a number about it cannot
// move (and subtract to who arrived) while its noise stays. The realtime
// count is read up to the last full minute (RealtimeVisitors).
const ReleaseHour = time.Hour

// ReleaseMinute is how far a noisy site's 30m numbers lag: the realtime
// view reads up to the last full minute, and each minute is a cell, so
// that polling within a minute gets the same answer (and costs nothing
// more).
const ReleaseMinute = time.Minute

// releasedAt sets a noisy site's release point for an answer at now.
func (q *Query) releasedAt(now time.Time) {
	if !q.Site.Privacy.Noisy() {
		return
	}
	switch q.Period.Name {
	case "realtime": // RealtimeVisitors
	case "30m":
		q.until = now.UTC().Truncate(ReleaseMinute)
	default:
		q.until = now.UTC().Truncate(ReleaseHour)
	}
}

// released is p as a noisy site releases it: up to the release point.
func (q *Query) released(p period.Period) period.Period { return p.Until(q.until) }

// ParseQuery validates Plausible v1 parameters read through get (site_id
// is resolved by the caller). now anchors default dates and realtime.
func ParseQuery(kind Kind, site *config.Site, get func(string) string, now time.Time) (*Query, error) {
	q := &Query{Site: site}
	loc := site.Location
	if loc == nil {
		loc = time.UTC
	}
	var err error
	if q.Period, err = period.Parse(get("period"), get("date"), loc, now); err != nil {
		return nil, badRequest("%s", err)
	}
	q.releasedAt(now)
	if q.Metrics, err = parseMetrics(get("metrics")); err != nil {
		return nil, err
	}
	f := get("filters")
	if f == "" {
		f = get("filter") // an old spelling some clients send
	}
	if q.Filters, err = ParseFilters(f); err != nil {
		return nil, err
	}
	if c := get("compare"); c != "" {
		if q.Compare, err = NewComparison(c, get("compare_date"), q.Period); err != nil {
			return nil, err
		}
		if c != CompareCustom && get("compare_date") != "" {
			return nil, badRequest("compare_date is for compare=custom only")
		}
	} else if get("compare_date") != "" {
		return nil, badRequest("compare_date needs compare=custom")
	}
	for _, m := range q.Metrics {
		if m == "conversion_rate" && !hasGoal(q.Filters) && (kind != KindBreakdown || get("property") != "event:goal") {
			return nil, badRequest("metric conversion_rate needs an event:goal filter (or a breakdown by event:goal)")
		}
	}
	switch kind {
	case KindTimeseries:
		if q.Period.Name == "realtime" {
			return nil, badRequest("period=realtime is not supported by timeseries; use realtime/visitors")
		}
		if q.Interval, err = period.ParseInterval(get("interval"), q.Period); err != nil {
			return nil, badRequest("%s", err)
		}
		if q.Compare != nil {
			if _, err := period.ParseInterval(q.Interval, q.Compare.Period); err != nil {
				return nil, badRequest("invalid compare_date for interval=%s: %s", q.Interval, err)
			}
		}
	case KindBreakdown:
		p := get("property")
		if p == "" {
			return nil, badRequest("missing property: a breakdown needs property=event:page, visit:source, ...")
		}
		if q.Property, err = ParseProperty(p); err != nil {
			return nil, err
		}
		q.Property = q.Property.withVisitGoals(q.Filters)
		if q.Property.prop != "" && slices.Contains(q.Metrics, q.Property.Key) {
			// A row is one object: the key would overwrite that metric.
			return nil, badRequest("invalid property %q: its key %q is the name of a metric asked for, so a breakdown row cannot carry both; ask without metric %s", p, q.Property.Key, q.Property.Key)
		}
		if q.Property.prop != "" && q.Compare != nil && (q.Property.Key == "comparison" || q.Property.Key == "change") {
			return nil, badRequest("invalid property %q: under compare a breakdown row carries %q itself; break down by this property without compare", p, q.Property.Key)
		}
		for _, m := range q.Metrics {
			d := metrics[m]
			if err := checkRevenue(m, q.Property); err != nil {
				return nil, err
			}
			if byEntry(q.Property) && entryMetrics[m] {
				continue // read by entry page (entry.go)
			}
			if engagementByVisit(q.Property, q.Filters) && engagementMetrics[m] {
				continue // read by visit (engagement.go)
			}
			if (q.Property.side == sideEvents && !d.events) || (q.Property.side == sideSessions && !d.sessions) {
				return nil, badRequest("metric %q is not supported in a breakdown by %s", m, p)
			}
		}
		q.Limit, q.Page = 100, 1
		if s := get("limit"); s != "" {
			if q.Limit, err = strconv.Atoi(s); err != nil || q.Limit < 1 || q.Limit > 1000 {
				return nil, badRequest("invalid limit %q: want 1 to 1000", s)
			}
		}
		if s := get("page"); s != "" {
			if q.Page, err = strconv.Atoi(s); err != nil || q.Page < 1 || q.Page > 100000 {
				return nil, badRequest("invalid page %q: want a positive number", s)
			}
		}
	}
	return q, nil
}
