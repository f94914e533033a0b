// Package period resolves the Stats API's reporting ranges (Plausible's
// period and date parameters) in a site's time zone, and the buckets of a
// time series over them.
package period

import (
	"fmt"
	"strings"
	"time"
)

// Period is a reporting range [From, To) in a site's time zone.
type Period struct {
	Name     string // day, 7d, 30d, month, 6mo, 12mo, custom, realtime or 30m
	From, To time.Time
	Loc      *time.Location
	months   int // the length in calendar months (month, 6mo, 12mo); 0 otherwise
}

// Realtime is the length of the realtime period.
const Realtime = 5 * time.Minute

// Recent is the length of the 30m period: the realtime view's last 30
// minutes, whole minutes ending with the current one.
const Recent = 30 * time.Minute

// Live reports whether p is a period that ends now (realtime or 30m):
// never read from the hourly rollups.
func (p Period) Live() bool { return p.Name == "realtime" || p.Name == "30m" }

// maxCustomDays bounds a custom range.
const maxCustomDays = 3 * 366

// Parse resolves Plausible's period and date parameters in loc. For
// every period but custom, date (YYYY-MM-DD, default today in loc) is the
// last day of the range; for custom it is "YYYY-MM-DD,YYYY-MM-DD", both
// days included.
func Parse(period, date string, loc *time.Location, now time.Time) (Period, error) {
	if period == "" {
		period = "30d"
	}
	p := Period{Name: period, Loc: loc}
	if period == "realtime" {
		p.To = now.Truncate(time.Second).Add(time.Second)
		p.From = p.To.Add(-Realtime)
		return p, nil
	}
	if period == "30m" {
		// Whole minutes, so that every minute bucket is whole and asking
		// again within a minute asks about the same range.
		p.To = now.Truncate(time.Minute).Add(time.Minute)
		p.From = p.To.Add(-Recent)
		return p, nil
	}
	day := func(s string) (time.Time, error) {
		t, err := time.ParseInLocation("2006-01-02", s, loc)
		if err != nil {
			return t, invalid("invalid date %q: want YYYY-MM-DD", s)
		}
		return t, nil
	}
	if period == "custom" {
		a, b, ok := strings.Cut(date, ",")
		if !ok {
			return p, invalid("period=custom needs date=YYYY-MM-DD,YYYY-MM-DD")
		}
		from, err := day(a)
		if err != nil {
			return p, err
		}
		last, err := day(b)
		if err != nil {
			return p, err
		}
		if last.Before(from) {
			return p, invalid("invalid date %q: the first day is after the last", date)
		}
		if last.Sub(from) > maxCustomDays*24*time.Hour {
			return p, invalid("invalid date %q: a custom range may span at most %d days", date, maxCustomDays)
		}
		p.From, p.To = from, last.AddDate(0, 0, 1)
		return p, nil
	}
	var end time.Time
	if date == "" {
		n := now.In(loc)
		end = time.Date(n.Year(), n.Month(), n.Day(), 0, 0, 0, 0, loc)
	} else {
		var err error
		if end, err = day(date); err != nil {
			return p, err
		}
	}
	switch period {
	case "day":
		p.From, p.To = end, end.AddDate(0, 0, 1)
	case "7d":
		p.From, p.To = end.AddDate(0, 0, -6), end.AddDate(0, 0, 1)
	case "30d":
		p.From, p.To = end.AddDate(0, 0, -29), end.AddDate(0, 0, 1)
	case "month", "6mo", "12mo":
		p.months = map[string]int{"month": 1, "6mo": 6, "12mo": 12}[period]
		first := time.Date(end.Year(), end.Month(), 1, 0, 0, 0, 0, loc)
		p.From, p.To = first.AddDate(0, 1-p.months, 0), first.AddDate(0, 1, 0)
	default:
		return p, invalid("invalid period %q: want realtime, 30m, day, 7d, 30d, month, 6mo, 12mo or custom", period)
	}
	return p, nil
}

// Until returns p with its end moved back to t if it lies after t (and
// its start too if it lies after t: an empty range).
func (p Period) Until(t time.Time) Period {
	if t.IsZero() {
		return p
	}
	if p.To.After(t) {
		p.To = t
	}
	if p.From.After(p.To) {
		p.From = p.To
	}
	return p
}

// Previous is the period of the same length just before p: the previous
// calendar month(s) for month periods, the same number of days otherwise.
func (p Period) Previous() Period {
	q := p
	q.To = p.From
	switch {
	case p.Live():
		q.From = p.From.Add(-p.To.Sub(p.From))
	case p.months > 0:
		q.From = p.From.AddDate(0, -p.months, 0)
	default:
		days := int(p.To.Sub(p.From).Round(24*time.Hour) / (24 * time.Hour))
		q.From = p.From.AddDate(0, 0, -days)
	}
	return q
}

// YearOverYear is p one year earlier: the same dates in p's time zone
// (and, for ranges that do not start or end at midnight, the same times
// of day). A February 29 becomes February 28 of the year before: a range
// starting on it starts on the 28th, a range ending on it (its last day)
// ends on the 28th, so a leap-year February compares with the whole of
// the February before.
func (p Period) YearOverYear() Period {
	q := p
	q.From = yearBefore(p.From, p.Loc)
	to := p.To.In(p.Loc)
	if to.Hour() == 0 && to.Minute() == 0 && to.Second() == 0 && to.Nanosecond() == 0 && p.To.After(p.From) {
		// An exclusive midnight: shift the last day, not the day after.
		last := to.AddDate(0, 0, -1)
		l := yearBefore(last, p.Loc)
		q.To = time.Date(l.Year(), l.Month(), l.Day()+1, 0, 0, 0, 0, p.Loc)
	} else {
		q.To = yearBefore(p.To, p.Loc)
	}
	return q
}

// yearBefore is t's wall-clock date and time one year earlier in loc,
// February 29 clamped to February 28.
func yearBefore(t time.Time, loc *time.Location) time.Time {
	t = t.In(loc)
	y, m, d := t.Date()
	if m == time.February && d == 29 {
		d = 28
	}
	return time.Date(y-1, m, d, t.Hour(), t.Minute(), t.Second(), t.Nanosecond(), loc)
}

// Custom is the range of the days first to last (YYYY-MM-DD, both
// included) in loc, as period=custom parses them: a custom comparison
// range.
func Custom(dates string, loc *time.Location) (Period, error) {
	return Parse("custom", dates, loc, time.Time{})
}

func (p Period) String() string {
	return fmt.Sprintf("%s [%s, %s)", p.Name, p.From.Format(time.RFC3339), p.To.Format(time.RFC3339))
}

// Intervals of a time series.
const (
	IntervalMinute = "minute"
	IntervalHour   = "hour"
	IntervalDate   = "date"
	IntervalWeek   = "week"
	IntervalMonth  = "month"
)

// maxMinuteRange bounds a range asked by the minute (a day, 25 hours
// when the clocks go back).
const maxMinuteRange = 25 * time.Hour

// ParseInterval validates interval, defaulting by period as Plausible does:
// hours for one day, months for 6mo and 12mo, days otherwise; minutes for
// 30m.
func ParseInterval(s string, p Period) (string, error) {
	switch s {
	case "":
		switch p.Name {
		case "30m":
			return IntervalMinute, nil
		case "day":
			return IntervalHour, nil
		case "6mo", "12mo":
			return IntervalMonth, nil
		}
		return IntervalDate, nil
	case "day", IntervalDate:
		return IntervalDate, nil
	case IntervalHour, IntervalWeek, IntervalMonth:
		if s == IntervalHour && p.To.Sub(p.From) > 93*24*time.Hour {
			return "", invalid("interval=hour is limited to ranges of at most 93 days")
		}
		return s, nil
	case IntervalMinute:
		if p.To.Sub(p.From) > maxMinuteRange {
			return "", invalid("interval=minute is limited to ranges of at most one day")
		}
		return s, nil
	}
	return "", invalid("invalid interval %q: want minute, hour, date, week or month", s)
}

// minuteLayout is a minute bucket's label, as ClickHouse renders
// toStartOfMinute.
const minuteLayout = "2006-01-02 15:04:00"

// BucketKeys lists the labels of every bucket of p, in order, exactly as
// the SQL bucket expressions render them (the engine's bucket expressions); gaps are filled
// from this list.
func BucketKeys(p Period, interval string) []string {
	var keys []string
	seen := map[string]bool{}
	add := func(k string) {
		if !seen[k] {
			seen[k] = true
			keys = append(keys, k)
		}
	}
	if interval == IntervalHour {
		for t := p.From.Truncate(time.Hour); t.Before(p.To); t = t.Add(time.Hour) {
			if t.Before(p.From) {
				continue
			}
			add(t.In(p.Loc).Format("2006-01-02 15:00:00"))
		}
		return keys
	}
	if interval == IntervalMinute {
		// Zone offsets are whole minutes: a UTC minute is a local one.
		for t := p.From.Truncate(time.Minute); t.Before(p.To); t = t.Add(time.Minute) {
			if t.Before(p.From) {
				continue
			}
			add(t.In(p.Loc).Format(minuteLayout))
		}
		return keys
	}
	f := p.From.In(p.Loc)
	d := time.Date(f.Year(), f.Month(), f.Day(), 0, 0, 0, 0, p.Loc)
	for ; d.Before(p.To); d = d.AddDate(0, 0, 1) {
		add(dayBucket(d, interval).Format("2006-01-02"))
	}
	return keys
}

// BucketRange is the part of p that the bucket labelled key (one of
// BucketKeys) covers: [from, to), clipped to p.
func BucketRange(p Period, interval, key string) (from, to time.Time) {
	if interval == IntervalMinute {
		t, err := time.ParseInLocation(minuteLayout, key, p.Loc)
		if err != nil {
			return p.From, p.From
		}
		from, to = t, t.Add(time.Minute)
	} else if interval == IntervalHour {
		t, err := time.ParseInLocation("2006-01-02 15:00:00", key, p.Loc)
		if err != nil {
			return p.From, p.From
		}
		from, to = t, t.Add(time.Hour)
	} else {
		d, err := time.ParseInLocation("2006-01-02", key, p.Loc)
		if err != nil {
			return p.From, p.From
		}
		switch interval {
		case IntervalWeek:
			from, to = d, d.AddDate(0, 0, 7)
		case IntervalMonth:
			from, to = d, d.AddDate(0, 1, 0)
		default:
			from, to = d, d.AddDate(0, 0, 1)
		}
	}
	if from.Before(p.From) {
		from = p.From
	}
	if to.After(p.To) {
		to = p.To
	}
	return from, to
}

// Label is the date a bucket is answered under: its key, except that a
// week cut by the period's start is labelled by that start, as Plausible
// labels it (a week series from Wednesday Oct 1 starts at "2025-10-01",
// not at the Monday before, which lies outside the period). Months keep
// their first day, as Plausible's do.
func Label(p Period, interval, key string) string {
	if interval != IntervalWeek {
		return key
	}
	start := p.From.In(p.Loc).Format("2006-01-02")
	if key < start { // both are YYYY-MM-DD
		return start
	}
	return key
}

func dayBucket(d time.Time, interval string) time.Time {
	switch interval {
	case IntervalWeek:
		wd := (int(d.Weekday()) + 6) % 7 // Monday = 0
		return d.AddDate(0, 0, -wd)
	case IntervalMonth:
		return time.Date(d.Year(), d.Month(), 1, 0, 0, 0, 0, d.Location())
	}
	return d
}

// HourAligned reports whether every local day, week and month boundary
// inside p and both of its ends fall on whole UTC hours, which is when the
// hourly rollups (whose hours are UTC) answer exactly what the raw tables
// do: each UTC hour then lies inside one local bucket. Zones with a
// half-hour or 45-minute offset (Asia/Kolkata, Australia/Adelaide,
// Asia/Kathmandu) fail this and are answered from raw tables.
func HourAligned(p Period) bool {
	if p.From.Unix()%3600 != 0 || p.To.Unix()%3600 != 0 {
		return false
	}
	for t := p.From; t.Before(p.To); t = t.Add(24 * time.Hour) {
		if _, off := t.In(p.Loc).Zone(); off%3600 != 0 {
			return false
		}
	}
	_, off := p.To.In(p.Loc).Zone()
	return off%3600 == 0
}

// Error is a period or interval parameter that cannot be used; its
// message says what to send instead.
type Error struct{ Message string }

func (e *Error) Error() string { return e.Message }

func invalid(format string, args ...any) error {
	return &Error{Message: fmt.Sprintf(format, args...)}
}
