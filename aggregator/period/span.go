package period

import (
	"strconv"
	"strings"
	"time"
)

// Span returns the period [from, to) in loc, named name (a v2 date range:
// "month", "year" and "<n>mo" are calendar months, whose previous period
// is the months before; any other name is a run of days or a custom
// range).
func Span(name string, from, to time.Time, loc *time.Location) Period {
	p := Period{Name: name, From: from, To: to, Loc: loc}
	switch {
	case name == "month":
		p.months = 1
	case name == "year":
		p.months = 12
	case strings.HasSuffix(name, "mo"):
		p.months, _ = strconv.Atoi(strings.TrimSuffix(name, "mo"))
	}
	if p.Name != "day" && p.Name != "month" && p.Name != "6mo" && p.Name != "12mo" {
		// Interval defaults (ParseInterval) and labels treat it as a
		// custom range.
		p.Name = "custom"
	}
	return p
}
