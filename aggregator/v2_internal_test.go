package aggregator

import (
	"testing"
	"time"

	"github.com/glimpse-analytics/glimpse/aggregator/period"
)

// TestCompareV2Ranges: v2's comparison ranges, as Plausible's
// comparisons module resolves them (previous period up to today, year
// over year as the v1 API and dashboard do it, match_day_of_week).
func TestCompareV2Ranges(t *testing.T) {
	loc, _ := time.LoadLocation("Europe/Berlin")
	d := func(s string) time.Time { t, _ := time.ParseInLocation("2006-01-02", s, loc); return t }
	now := d("2024-03-10").Add(15 * time.Hour)
	tests := []struct {
		name     string
		p        period.Period
		mode     string
		match    bool
		from, to string // the comparison's first and last day
	}{
		{"7d previous", period.Span("7d", d("2024-03-03"), d("2024-03-10"), loc), "previous_period", false, "2024-02-25", "2024-03-02"},
		{"month to date previous", period.Span("month", d("2024-03-01"), d("2024-04-01"), loc), "previous_period", false, "2024-02-20", "2024-02-29"},
		{"leap day yoy", period.Span("custom", d("2024-02-29"), d("2024-03-01"), loc), "year_over_year", false, "2023-02-28", "2023-02-28"},
		{"month yoy to date", period.Span("month", d("2024-03-01"), d("2024-04-01"), loc), "year_over_year", false, "2023-03-01", "2023-03-10"},
		{"match day of week", period.Span("7d", d("2024-03-04"), d("2024-03-11"), loc), "year_over_year", true, "2023-03-06", "2023-03-12"},
	}
	for _, tt := range tests {
		c := &CompareV2{Mode: tt.mode, MatchDayOfWeek: tt.match}
		c.resolve(tt.p, now)
		got := [2]string{c.Period.From.In(loc).Format("2006-01-02"), c.Period.To.Add(-time.Second).In(loc).Format("2006-01-02")}
		if got != [2]string{tt.from, tt.to} {
			t.Errorf("%s: %v, want [%s %s]", tt.name, got, tt.from, tt.to)
		}
	}
}

// TestPercent: ties round up, as one division of the counts gives them.
func TestPercent(t *testing.T) {
	for _, tt := range []struct {
		a, b   float64
		places int
		want   float64
	}{{23, 80, 1, 28.8}, {1, 8, 0, 13}, {1, 3, 2, 33.33}, {2, 3, 1, 66.7}, {7, 0, 1, 0}, {1, 16, 2, 6.25}, {1, 160, 2, 0.63}} {
		if got := percent(tt.a, tt.b, tt.places); got != tt.want {
			t.Errorf("percent(%v, %v, %d) = %v, want %v", tt.a, tt.b, tt.places, got, tt.want)
		}
	}
}
