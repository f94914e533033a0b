package period

import (
	"strings"
	"testing"
	"time"
)

func zone(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

func TestParse(t *testing.T) {
	berlin := zone(t, "Europe/Berlin")
	now := time.Date(2025, 3, 30, 12, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		period, date   string
		from, to, prev string // local days; prev is the previous period's start
	}{
		{"day", "2025-03-30", "2025-03-30", "2025-03-31", "2025-03-29"},
		{"7d", "2025-03-30", "2025-03-24", "2025-03-31", "2025-03-17"},
		{"30d", "", "2025-03-01", "2025-03-31", "2025-01-30"},
		{"month", "2025-02-10", "2025-02-01", "2025-03-01", "2025-01-01"},
		{"6mo", "2025-03-30", "2024-10-01", "2025-04-01", "2024-04-01"},
		{"custom", "2025-03-01,2025-03-03", "2025-03-01", "2025-03-04", "2025-02-26"},
	} {
		p, err := Parse(tt.period, tt.date, berlin, now)
		if err != nil {
			t.Fatalf("%s %s: %v", tt.period, tt.date, err)
		}
		day := func(tm time.Time) string { return tm.In(berlin).Format("2006-01-02") }
		if day(p.From) != tt.from || day(p.To) != tt.to || day(p.Previous().From) != tt.prev || !p.Previous().To.Equal(p.From) {
			t.Errorf("%s %s: [%s, %s) previous from %s; want [%s, %s) previous from %s",
				tt.period, tt.date, day(p.From), day(p.To), day(p.Previous().From), tt.from, tt.to, tt.prev)
		}
	}
	for _, bad := range []struct{ period, date string }{{"7d", "2025-13-01"}, {"week", ""}, {"custom", "2025-03-05,2025-03-01"}} {
		if _, err := Parse(bad.period, bad.date, berlin, now); err == nil {
			t.Errorf("%s %s: no error", bad.period, bad.date)
		} else if _, ok := err.(*Error); !ok {
			t.Errorf("%s %s: %T, want *Error", bad.period, bad.date, err)
		}
	}
}

func TestIntervalsAndBuckets(t *testing.T) {
	berlin := zone(t, "Europe/Berlin")
	p, err := Parse("custom", "2025-10-01,2025-10-20", berlin, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if iv, err := ParseInterval("", p); err != nil || iv != IntervalDate {
		t.Errorf("default interval %q %v, want date", iv, err)
	}
	keys := BucketKeys(p, IntervalWeek)
	want := "2025-09-29 2025-10-06 2025-10-13 2025-10-20"
	if got := strings.Join(keys, " "); got != want {
		t.Errorf("weeks %s, want %s (Mondays)", got, want)
	}
	from, to := BucketRange(p, IntervalWeek, keys[0])
	if !from.Equal(p.From) || !to.Equal(time.Date(2025, 10, 6, 0, 0, 0, 0, berlin)) {
		t.Errorf("first week covers [%s, %s), want the period's start to Monday Oct 6", from, to)
	}
	from, to = BucketRange(p, IntervalWeek, keys[3])
	if !from.Equal(time.Date(2025, 10, 20, 0, 0, 0, 0, berlin)) || !to.Equal(p.To) {
		t.Errorf("last week covers [%s, %s), want Monday Oct 20 to the period's end", from, to)
	}
	// Plausible labels a week cut by the period's start by that start
	// (Oct 1), not by the Monday before it (Sep 29, outside the period);
	// whole weeks keep their Monday.
	var labels []string
	for _, k := range keys {
		labels = append(labels, Label(p, IntervalWeek, k))
	}
	if got, want := strings.Join(labels, " "), "2025-10-01 2025-10-06 2025-10-13 2025-10-20"; got != want {
		t.Errorf("week labels %s, want %s", got, want)
	}
	if got := Label(p, IntervalDate, "2025-10-01"); got != "2025-10-01" {
		t.Errorf("day label %s, want itself", got)
	}
	long, _ := Parse("custom", "2025-01-01,2025-06-30", berlin, time.Now())
	if _, err := ParseInterval(IntervalHour, long); err == nil {
		t.Error("hourly buckets over six months: no error")
	}
	if !HourAligned(p) {
		t.Error("a Berlin period is not hour aligned")
	}
	kolkata, _ := Parse("7d", "2025-03-30", zone(t, "Asia/Kolkata"), time.Now())
	if HourAligned(kolkata) {
		t.Error("a Kolkata period (UTC+5:30) is hour aligned")
	}
}

func TestUntil(t *testing.T) {
	p := Period{From: time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC), To: time.Date(2025, 6, 8, 0, 0, 0, 0, time.UTC), Loc: time.UTC}
	at := time.Date(2025, 6, 7, 14, 0, 0, 0, time.UTC)
	if q := p.Until(at); !q.From.Equal(p.From) || !q.To.Equal(at) {
		t.Errorf("Until(%s) = [%s, %s), want the end moved back", at, q.From, q.To)
	}
	if q := p.Until(p.To.Add(time.Hour)); q != p {
		t.Errorf("Until after the end changed %v to %v", p, q)
	}
	if q := p.Until(time.Time{}); q != p {
		t.Errorf("Until(zero) changed %v to %v", p, q)
	}
	if q := p.Until(p.From.Add(-time.Hour)); !q.From.Equal(q.To) || !q.To.Equal(p.From.Add(-time.Hour)) {
		t.Errorf("Until before the start = [%s, %s), want an empty range", q.From, q.To)
	}
}

func TestYearOverYear(t *testing.T) {
	berlin := zone(t, "Europe/Berlin")
	now := time.Date(2025, 3, 30, 12, 0, 0, 0, time.UTC)
	day := func(tm time.Time) string { return tm.In(berlin).Format("2006-01-02 15:04") }
	for _, tt := range []struct {
		period, date string
		from, to     string // the comparison range, local
	}{
		{"day", "2024-02-29", "2023-02-28 00:00", "2023-03-01 00:00"},
		{"day", "2024-03-01", "2023-03-01 00:00", "2023-03-02 00:00"},
		{"month", "2024-02-10", "2023-02-01 00:00", "2023-03-01 00:00"},
		{"7d", "2024-03-03", "2023-02-26 00:00", "2023-03-04 00:00"},
		{"custom", "2024-02-29,2024-02-29", "2023-02-28 00:00", "2023-03-01 00:00"},
		{"custom", "2024-02-20,2024-02-28", "2023-02-20 00:00", "2023-03-01 00:00"},
		{"custom", "2025-02-28,2025-03-01", "2024-02-28 00:00", "2024-03-02 00:00"},
		// Across the change to summer time: the same wall-clock days.
		{"7d", "2025-03-31", "2024-03-25 00:00", "2024-04-01 00:00"},
	} {
		p, err := Parse(tt.period, tt.date, berlin, now)
		if err != nil {
			t.Fatal(err)
		}
		y := p.YearOverYear()
		if day(y.From) != tt.from || day(y.To) != tt.to {
			t.Errorf("%s %s: a year before is [%s, %s), want [%s, %s)", tt.period, tt.date, day(y.From), day(y.To), tt.from, tt.to)
		}
	}
	// Realtime: the same instants' wall clock a year before.
	rt, _ := Parse("realtime", "", berlin, time.Date(2024, 2, 29, 11, 0, 0, 0, time.UTC))
	if y := rt.YearOverYear(); day(y.From) != "2023-02-28 11:55" || y.To.Sub(y.From) != rt.To.Sub(rt.From) {
		t.Errorf("realtime a year before: [%s, %s)", day(y.From), day(y.To))
	}
	if _, err := Custom("2024-01-01", berlin); err == nil {
		t.Error("Custom without a last day: no error")
	}
}

// TestRecent: 30m is the 30 whole minutes ending with the current one,
// the same range for every moment of a minute, in minute buckets.
func TestRecent(t *testing.T) {
	kolkata, _ := time.LoadLocation("Asia/Kolkata")
	now := time.Date(2025, 6, 7, 18, 7, 40, 0, time.UTC)
	p, err := Parse("30m", "", kolkata, now)
	if err != nil {
		t.Fatal(err)
	}
	q, _ := Parse("30m", "", kolkata, now.Add(19*time.Second))
	if !p.From.Equal(time.Date(2025, 6, 7, 17, 38, 0, 0, time.UTC)) || !p.To.Equal(time.Date(2025, 6, 7, 18, 8, 0, 0, time.UTC)) || p.From != q.From || p.To != q.To || !p.Live() {
		t.Fatalf("30m at %v: %v; 19 s later %v", now, p, q)
	}
	iv, err := ParseInterval("", p)
	if err != nil || iv != IntervalMinute {
		t.Fatalf("default interval %q, %v", iv, err)
	}
	keys := BucketKeys(p, iv)
	if len(keys) != 30 || keys[0] != "2025-06-07 23:08:00" || keys[29] != "2025-06-07 23:37:00" {
		t.Fatalf("keys %v", keys)
	}
	if from, to := BucketRange(p, iv, keys[29]); !from.Equal(time.Date(2025, 6, 7, 18, 7, 0, 0, time.UTC)) || to.Sub(from) != time.Minute {
		t.Errorf("last bucket [%v, %v)", from, to)
	}
	if prev := p.Previous(); !prev.To.Equal(p.From) || prev.To.Sub(prev.From) != Recent {
		t.Errorf("previous %v", prev)
	}
	month, _ := Parse("month", "", kolkata, now)
	if _, err := ParseInterval(IntervalMinute, month); err == nil {
		t.Error("interval=minute over a month: no error")
	}
	day, _ := Parse("day", "", kolkata, now)
	if _, err := ParseInterval(IntervalMinute, day); err != nil {
		t.Errorf("interval=minute over a day: %v", err)
	}
}
