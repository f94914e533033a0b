package collector_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/glimpse-analytics/glimpse/collector"
	"github.com/glimpse-analytics/glimpse/collector/sink"
	"github.com/glimpse-analytics/glimpse/internal/apptest"
	"github.com/glimpse-analytics/glimpse/internal/model"
)

// The contribution caps of a site with noisy aggregates (example.com:
// the default in mode strict), against a site with exact ones
// (exact.example), through the real handler and ClickHouse.

// fakeClock is the server's clock in a test that moves it.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock(t time.Time) *fakeClock { return &fakeClock{t: t} }

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func (c *fakeClock) set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

var capDay = time.Date(2026, 5, 6, 9, 0, 0, 0, time.UTC)

// sender sends events of one visitor (its client address) and counts
// how they were answered.
type sender struct {
	ts  *testServer
	clk *fakeClock
	ip  string
}

// send sends body after moving the clock on by step, and returns the
// drop reason ("" when taken), failing on anything but a 202.
func (s sender) send(t *testing.T, step time.Duration, body string, hdr ...string) string {
	t.Helper()
	s.clk.add(step)
	h := map[string]string{"X-Forwarded-For": s.ip}
	for i := 0; i+1 < len(hdr); i += 2 {
		h[hdr[i]] = hdr[i+1]
	}
	r := s.ts.do(t, req{body: body, header: h})
	if r.status != 202 {
		t.Fatalf("%s: %d %q %q", body, r.status, r.dropped, r.body)
	}
	return r.dropped
}

// pageviews sends n page views 10 s apart and returns how many were
// taken and how many dropped at a contribution cap.
func (s sender) pageviews(t *testing.T, site string, n int) (stored, capped int) {
	t.Helper()
	for i := range n {
		switch d := s.send(t, 10*time.Second, pageview(site, fmt.Sprintf("https://%s/p/%d", site, i))); d {
		case "":
			stored++
		case "contribution-cap":
			capped++
		default:
			t.Fatalf("page view %d dropped: %q", i, d)
		}
	}
	return stored, capped
}

func TestContributionCapEvents(t *testing.T) {
	clk := newClock(capDay)
	ts := startWith(t, collector.Options{Now: clk.now}, "127.0.0.1/32")
	v := sender{ts, clk, "203.0.113.30"}
	if stored, capped := v.pageviews(t, "example.com", 35); stored != model.MaxEventsPerDay || capped != 5 {
		t.Fatalf("35 page views of a visitor-day: %d stored, %d capped; want %d and 5", stored, capped, model.MaxEventsPerDay)
	}
	// The cap is on all events but engagement reports, which have their own.
	for _, body := range []string{
		`{"n":"Signup","u":"https://example.com/x","d":"example.com"}`,
		`{"n":"Outbound Link: Click","u":"https://example.com/x","d":"example.com","p":{"url":"https://other.org/"}}`,
		`{"n":"File Download","u":"https://example.com/x","d":"example.com","p":{"url":"https://example.com/a.pdf"}}`,
		`{"n":"impression","u":"https://example.com/x","d":"example.com"}`,
	} {
		if d := v.send(t, time.Second, body); d != "contribution-cap" {
			t.Errorf("%s beyond the cap: dropped %q, want contribution-cap", body, d)
		}
	}
	if d := v.send(t, time.Second, `{"n":"engagement","u":"https://example.com/x","d":"example.com","e":1000}`); d != "" {
		t.Errorf("engagement report beyond the events cap: dropped %q", d)
	}
	// Another visitor is not capped; nor is an exact site.
	if stored, capped := (sender{ts, clk, "203.0.113.31"}).pageviews(t, "example.com", 3); stored != 3 || capped != 0 {
		t.Errorf("another visitor: %d stored, %d capped", stored, capped)
	}
	if stored, capped := v.pageviews(t, "exact.example", 35); stored != 35 || capped != 0 {
		t.Errorf("exact site: %d stored, %d capped; want all 35 stored", stored, capped)
	}
	// Anonymous events (mode aggregate, opted out) have no visitor to
	// bound: each is its own unit.
	for i := range 35 {
		if d := v.send(t, 10*time.Second, pageview("aggnoisy.example", fmt.Sprintf("https://aggnoisy.example/%d", i)), "Sec-GPC", "1"); d != "" {
			t.Fatalf("anonymous page view %d dropped: %q", i, d)
		}
	}
	// The next UTC day counts afresh.
	clk.set(capDay.Add(24 * time.Hour))
	if stored, capped := v.pageviews(t, "example.com", 35); stored != model.MaxEventsPerDay || capped != 5 {
		t.Fatalf("next day: %d stored, %d capped; want %d and 5", stored, capped, model.MaxEventsPerDay)
	}
	ts.stop(t)
	for q, want := range map[string]uint64{
		"SELECT count() FROM events WHERE site_id = 'example.com' AND type = 'pageview' AND toDate(ts) = '2026-05-06'": 30 + 3,
		"SELECT count() FROM events WHERE site_id = 'example.com' AND type = 'pageview' AND toDate(ts) = '2026-05-07'": 30,
		"SELECT count() FROM events WHERE site_id = 'example.com' AND type NOT IN ('pageview', 'engagement')":          0,
		"SELECT count() FROM events WHERE site_id = 'example.com' AND type = 'engagement'":                             1,
		"SELECT count() FROM events WHERE site_id = 'exact.example'":                                                   35,
		"SELECT count() FROM events WHERE site_id = 'aggnoisy.example' AND visitor_id = 0":                             35,
	} {
		if got := ts.count(t, q); got != want {
			t.Errorf("%s: %d, want %d", q, got, want)
		}
	}
	if got := apptest.SetMetric(t, ts.metrics, `glimpse_events_dropped_total{reason="contribution-cap"}`); got != 5+4+5 {
		t.Errorf("contribution-cap drops counted %v, want 14", got)
	}
	if got := apptest.SetMetric(t, ts.metrics, "glimpse_contribution_evictions_total"); got != 0 {
		t.Errorf("%v ledger evictions", got)
	}
}

// TestContributionCapVisits: a visitor-day starts at most MaxVisitsPerDay
// visits; the event that would start one more is dropped and starts
// none, and no session row is written for it.
func TestContributionCapVisits(t *testing.T) {
	clk := newClock(capDay)
	ts := startWith(t, collector.Options{Now: clk.now}, "127.0.0.1/32")
	v := sender{ts, clk, "203.0.113.32"}
	for _, site := range []string{"example.com", "exact.example"} {
		clk.set(capDay)
		for visit := range model.MaxVisitsPerDay + 1 {
			capped := site == "example.com" && visit == model.MaxVisitsPerDay
			for i, step := range []time.Duration{31 * time.Minute, time.Minute} { // past the idle timeout, then within the visit
				d := v.send(t, step, pageview(site, fmt.Sprintf("https://%s/v%d/%d", site, visit, i)))
				if want := map[bool]string{true: "contribution-cap"}[capped]; d != want {
					t.Fatalf("%s visit %d event %d: dropped %q, want %q", site, visit+1, i, d, want)
				}
			}
			// A report that finds no session starts none either way, and
			// is not a visit: it is kept.
			if d := v.send(t, time.Second, fmt.Sprintf(`{"n":"engagement","u":"https://%s/","d":%q,"e":500}`, site, site)); d != "" {
				t.Fatalf("%s visit %d: engagement report dropped %q", site, visit+1, d)
			}
		}
	}
	ts.stop(t)
	for q, want := range map[string]uint64{
		"SELECT toUInt64(sum(sign)) FROM sessions WHERE site_id = 'example.com'":                               model.MaxVisitsPerDay,
		"SELECT count() FROM sessions WHERE site_id = 'example.com' AND entry_page LIKE '/v3/%'":               0,
		"SELECT uniqExact(session_id) FROM events WHERE site_id = 'example.com' AND session_id != 0":           model.MaxVisitsPerDay,
		"SELECT count() FROM events WHERE site_id = 'example.com' AND pathname LIKE '/v3/%'":                   0,
		"SELECT toUInt64(sum(sign)) FROM sessions WHERE site_id = 'exact.example'":                             model.MaxVisitsPerDay + 1,
		"SELECT uniqExact(session_id) FROM events WHERE site_id = 'exact.example' AND session_id != 0":         model.MaxVisitsPerDay + 1,
		"SELECT count() FROM events WHERE site_id IN ('example.com', 'exact.example') AND type = 'engagement'": 2 * (model.MaxVisitsPerDay + 1),
	} {
		if got := ts.count(t, q); got != want {
			t.Errorf("%s: %d, want %d", q, got, want)
		}
	}
}

// TestContributionCapVisitDuration: a visit counts at most
// MaxVisitSeconds, in every row of the sessions table and in the rollup
// summed from them.
func TestContributionCapVisitDuration(t *testing.T) {
	clk := newClock(capDay)
	// Sessions written every 20 ms: each page view below is a version of
	// its own, cancelled by the next.
	ts := startWithWriter(t, collector.Options{Now: clk.now}, func(o sink.Options) *sink.Writer {
		o.SessionInterval = 20 * time.Millisecond
		return sink.New(o)
	}, "127.0.0.1/32")
	v := sender{ts, clk, "203.0.113.33"}
	for _, site := range []string{"example.com", "exact.example"} {
		clk.set(capDay)
		for i := range 11 { // a page view every 5 minutes: one visit of 50 minutes
			if d := v.send(t, 5*time.Minute, pageview(site, fmt.Sprintf("https://%s/%d", site, i))); d != "" {
				t.Fatalf("%s page view %d dropped: %q", site, i, d)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	ts.stop(t)
	for q, want := range map[string]uint64{
		"SELECT toUInt64(sum(sign)) FROM sessions WHERE site_id = 'example.com'":                  1,
		"SELECT toUInt64(sum(sign * duration)) FROM sessions WHERE site_id = 'example.com'":       model.MaxVisitSeconds,
		"SELECT toUInt64(countIf(duration > 1800)) FROM sessions WHERE site_id = 'example.com'":   0,
		"SELECT toUInt64(sum(duration_sum)) FROM sessions_hourly WHERE site_id = 'example.com'":   model.MaxVisitSeconds,
		"SELECT toUInt64(sum(sign * duration)) FROM sessions WHERE site_id = 'exact.example'":     50 * 60,
		"SELECT toUInt64(sum(duration_sum)) FROM sessions_hourly WHERE site_id = 'exact.example'": 50 * 60,
	} {
		if got := ts.count(t, q); got != want {
			t.Errorf("%s: %d, want %d", q, got, want)
		}
	}
}

// TestContributionCapEngagement: the engaged time of a visitor-day is
// clamped to MaxEngagedMSPerDay (a report with none left is dropped, any
// other event kept with none), and its reports to MaxEngagementsPerDay.
func TestContributionCapEngagement(t *testing.T) {
	clk := newClock(capDay)
	ts := startWith(t, collector.Options{Now: clk.now}, "127.0.0.1/32")
	report := func(site string, ms int) string {
		return fmt.Sprintf(`{"n":"engagement","u":"https://%s/","d":%q,"e":%d,"sd":40}`, site, site, ms)
	}
	for _, site := range []string{"example.com", "exact.example"} {
		v := sender{ts, clk, "203.0.113.34"}
		v.send(t, time.Second, pageview(site, "https://"+site+"/"))
		for i := range 4 { // 2,800 s reported: 1,800 kept
			d := v.send(t, time.Minute, report(site, 700_000))
			if want := map[bool]string{true: "contribution-cap"}[site == "example.com" && i == 3]; d != want {
				t.Fatalf("%s report %d: dropped %q, want %q", site, i+1, d, want)
			}
		}
		if d := v.send(t, time.Minute, fmt.Sprintf(`{"n":"pageview","u":"https://%s/b","d":%q,"e":5000}`, site, site)); d != "" {
			t.Fatalf("%s page view with engagement: dropped %q", site, d)
		}
		// Another visitor's reports: the count is capped too.
		w := sender{ts, clk, "203.0.113.35"}
		w.send(t, time.Second, pageview(site, "https://"+site+"/"))
		capped := 0
		for range model.MaxEngagementsPerDay + 5 {
			if w.send(t, 10*time.Second, report(site, 1000)) == "contribution-cap" {
				capped++
			}
		}
		if want := map[bool]int{true: 5}[site == "example.com"]; capped != want {
			t.Errorf("%s: %d of %d reports capped, want %d", site, capped, model.MaxEngagementsPerDay+5, want)
		}
	}
	ts.stop(t)
	for q, want := range map[string]uint64{
		"SELECT count() FROM events WHERE site_id = 'example.com' AND type = 'engagement' AND engagement_ms > 1000":              3,
		"SELECT sum(engagement_ms) FROM events WHERE site_id = 'example.com' AND type = 'engagement' AND engagement_ms > 1000":   model.MaxEngagedMSPerDay,
		"SELECT sum(engagement_ms) FROM events WHERE site_id = 'example.com' AND pathname = '/b'":                                0,
		"SELECT count() FROM events WHERE site_id = 'example.com' AND type = 'engagement' AND engagement_ms = 1000":              model.MaxEngagementsPerDay,
		"SELECT toUInt64(max(scroll_depth)) FROM events WHERE site_id = 'example.com'":                                           40,
		"SELECT toUInt64(sum(sign * engagement_ms)) FROM sessions WHERE site_id = 'example.com'":                                 model.MaxEngagedMSPerDay + model.MaxEngagementsPerDay*1000,
		"SELECT sum(engagement_ms) FROM events WHERE site_id = 'exact.example' AND type = 'engagement' AND engagement_ms > 1000": 4 * 700_000,
		"SELECT sum(engagement_ms) FROM events WHERE site_id = 'exact.example' AND pathname = '/b'":                              5000,
	} {
		if got := ts.count(t, q); got != want {
			t.Errorf("%s: %d, want %d", q, got, want)
		}
	}
}
