package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/glimpse-analytics/glimpse/aggregator"
	"github.com/glimpse-analytics/glimpse/aggregator/api"
	"github.com/glimpse-analytics/glimpse/collector/sink"
	"github.com/glimpse-analytics/glimpse/internal/apptest"
	"github.com/glimpse-analytics/glimpse/internal/chtest"
	"github.com/glimpse-analytics/glimpse/internal/config"
	"github.com/glimpse-analytics/glimpse/internal/storage/seed"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// seedEnd is the fixed end of the seeded range: the golden files depend on it.
var seedEnd = time.Date(2025, 3, 31, 0, 0, 0, 0, time.UTC)

func sites(t *testing.T) *config.File {
	t.Helper()
	y := `sites:
  - domain: example.com
    timezone: Europe/Berlin
    privacy:
      k_anonymity: 5
      aggregates: exact
  - domain: other.example
api_keys:
  - name: test
    sha256: "` + apptest.KeyHash("test-key") + `"
    sites: [example.com]
  - name: other
    sha256: "` + apptest.KeyHash("other-key") + `"
    sites: [other.example]
  - name: dpo
    sha256: "` + apptest.KeyHash("dpo-key") + `"
    sites: [example.com]
    scopes: [subjects]
`
	f, err := config.Parse("test.yaml", []byte(y))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func seeded(t *testing.T) *chtest.DB {
	t.Helper()
	db := chtest.Migrated(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := seed.Write(ctx, sink.New(sink.Options{Conn: db.Conn, BatchSize: 5000, Interval: 50 * time.Millisecond, SessionInterval: seed.SessionInterval}),
		seed.Options{Site: "example.com", Events: 20000, Days: 40, End: seedEnd, Seed: 42, Visitors: 2500}); err != nil {
		t.Fatalf("seed: %v", err)
	}
	return db
}

type client struct {
	routes map[string]fasthttp.RequestHandler
}

// get runs one request through the API's handler and returns the status
// and body.
func (c *client) get(t *testing.T, key, uri string) (int, []byte) {
	t.Helper()
	var rc fasthttp.RequestCtx
	rc.Request.SetRequestURI(uri)
	if key != "" {
		rc.Request.Header.Set("Authorization", "Bearer "+key)
	}
	h := c.routes[string(rc.Request.URI().Path())]
	if h == nil {
		t.Fatalf("no route for %s", uri)
	}
	h(&rc)
	if ct := string(rc.Response.Header.ContentType()); ct != "application/json" {
		t.Errorf("%s: Content-Type %q", uri, ct)
	}
	return rc.Response.StatusCode(), append([]byte(nil), rc.Response.Body()...)
}

// newClient serves the API with the clock just after the last seeded
// event, so realtime has visitors.
func newClient(t *testing.T, db *chtest.DB, rate int) *client {
	t.Helper()
	var last time.Time
	if err := db.Conn.QueryRow(context.Background(), "SELECT max(ts) FROM events").Scan(&last); err != nil {
		t.Fatal(err)
	}
	a, err := api.New(api.Options{
		Engine: aggregator.New(aggregator.Options{Conn: db.Conn}), Sites: sites(t), RateLimit: rate,
		Now: func() time.Time { return last.Add(30 * time.Second) },
	})
	if err != nil {
		t.Fatal(err)
	}
	return &client{routes: a.Routes()}
}

func q(path string, kv ...string) string {
	v := url.Values{}
	v.Set("site_id", "example.com")
	for i := 0; i+1 < len(kv); i += 2 {
		v.Set(kv[i], kv[i+1])
	}
	return path + "?" + v.Encode()
}

func TestStatsAPI(t *testing.T) {
	db := seeded(t)
	c := newClient(t, db, 100000)

	t.Run("golden", func(t *testing.T) {
		cases := []struct{ name, uri string }{
			{"realtime", q(api.PathRealtime)},
			{"aggregate_30d", q(api.PathAggregate, "period", "30d", "date", "2025-03-30",
				"metrics", "visitors,visits,pageviews,views_per_visit,bounce_rate,visit_duration,events")},
			{"aggregate_compare", q(api.PathAggregate, "period", "7d", "date", "2025-03-30", "metrics", "visitors,pageviews,bounce_rate", "compare", "previous_period")},
			{"timeseries_compare_custom", q(api.PathTimeseries, "period", "7d", "date", "2025-03-30", "metrics", "visitors,bounce_rate",
				"compare", "custom", "compare_date", "2025-03-01,2025-03-06")},
			{"breakdown_compare_yoy", q(api.PathBreakdown, "period", "7d", "date", "2025-03-30", "property", "visit:source", "metrics", "visitors,bounce_rate",
				"compare", "year_over_year", "limit", "3")},
			{"breakdown_compare_filtered", q(api.PathBreakdown, "period", "7d", "date", "2025-03-30", "property", "event:page", "metrics", "visitors,pageviews",
				"filters", "visit:country==DE", "compare", "previous_period", "limit", "5")},
			{"aggregate_month_engagement", q(api.PathAggregate, "period", "month", "date", "2025-03-15",
				"metrics", "visitors,time_on_page,scroll_depth,outbound_clicks")},
			{"aggregate_filter_country_page", q(api.PathAggregate, "period", "30d", "date", "2025-03-30",
				"metrics", "visitors,visits,pageviews,bounce_rate", "filters", "visit:country==DE;event:page==/blog/**")},
			{"aggregate_filter_or_negate", q(api.PathAggregate, "period", "custom", "date", "2025-03-01,2025-03-30",
				"metrics", "visitors,pageviews", "filters", "visit:browser==Chrome|Firefox;visit:device!=Mobile")},
			{"aggregate_conversion", q(api.PathAggregate, "period", "30d", "date", "2025-03-30",
				"metrics", "visitors,events,conversion_rate", "filters", "event:goal==Signup")},
			{"aggregate_withheld", q(api.PathAggregate, "period", "day", "date", "2025-03-30",
				"metrics", "visitors,pageviews", "filters", "visit:country==FR;visit:browser==Safari")},
			{"aggregate_nobody", q(api.PathAggregate, "period", "day", "date", "2025-03-30",
				"metrics", "visitors,pageviews", "filters", "visit:country==IS;visit:browser==Safari")},
			{"timeseries_7d", q(api.PathTimeseries, "period", "7d", "date", "2025-03-30", "metrics", "visitors,pageviews,visits,bounce_rate")},
			{"timeseries_day_hours", q(api.PathTimeseries, "period", "day", "date", "2025-03-29", "metrics", "visitors,pageviews")},
			{"timeseries_6mo_month", q(api.PathTimeseries, "period", "6mo", "date", "2025-03-30", "metrics", "visitors")},
			{"timeseries_30d_week", q(api.PathTimeseries, "period", "30d", "date", "2025-03-30", "interval", "week", "metrics", "visitors,visit_duration")},
			{"timeseries_filtered", q(api.PathTimeseries, "period", "7d", "date", "2025-03-30", "metrics", "visitors,pageviews",
				"filters", "visit:source==Google;visit:country==US")},
			{"breakdown_pages", q(api.PathBreakdown, "period", "30d", "date", "2025-03-30", "property", "event:page", "metrics", "visitors,pageviews", "limit", "10")},
			{"breakdown_pages_page2", q(api.PathBreakdown, "period", "30d", "date", "2025-03-30", "property", "event:page", "limit", "10", "page", "2")},
			{"breakdown_sources", q(api.PathBreakdown, "period", "30d", "date", "2025-03-30", "property", "visit:source",
				"metrics", "visitors,visits,bounce_rate,visit_duration,views_per_visit")},
			{"breakdown_countries", q(api.PathBreakdown, "period", "30d", "date", "2025-03-30", "property", "visit:country", "metrics", "visitors,pageviews")},
			{"breakdown_cities_filtered", q(api.PathBreakdown, "period", "30d", "date", "2025-03-30", "property", "visit:city",
				"metrics", "visitors", "filters", "visit:device==Desktop;event:page==/pricing")},
			{"breakdown_entry_exit", q(api.PathBreakdown, "period", "30d", "date", "2025-03-30", "property", "visit:exit_page",
				"metrics", "visitors,visits,bounce_rate", "limit", "5")},
			{"breakdown_goals", q(api.PathBreakdown, "period", "30d", "date", "2025-03-30", "property", "event:goal", "metrics", "visitors,events,conversion_rate")},
			{"breakdown_props", q(api.PathBreakdown, "period", "30d", "date", "2025-03-30", "property", "event:props:plan", "metrics", "visitors,events")},
			{"breakdown_source_conversion", q(api.PathBreakdown, "period", "30d", "date", "2025-03-30", "property", "visit:source",
				"metrics", "visitors,conversion_rate", "filters", "event:goal==Signup")},
			{"breakdown_utm_campaign", q(api.PathBreakdown, "period", "30d", "date", "2025-03-30", "property", "visit:utm_campaign",
				"metrics", "visitors", "filters", "visit:utm_source!=")},
			{"breakdown_browser_version", q(api.PathBreakdown, "period", "30d", "date", "2025-03-30", "property", "visit:browser_version",
				"metrics", "visitors", "filters", "visit:browser==Safari")},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				status, body := c.get(t, "test-key", tc.uri)
				if status != 200 {
					t.Fatalf("%s: status %d: %s", tc.uri, status, body)
				}
				var pretty bytes.Buffer
				if err := json.Indent(&pretty, body, "", "  "); err != nil {
					t.Fatal(err)
				}
				pretty.WriteByte('\n')
				path := filepath.Join("testdata", tc.name+".json")
				if *update {
					if err := os.WriteFile(path, pretty.Bytes(), 0o644); err != nil {
						t.Fatal(err)
					}
				}
				want, err := os.ReadFile(path)
				if err != nil {
					t.Fatalf("%v (run go test -update to create it)", err)
				}
				if !bytes.Equal(pretty.Bytes(), want) {
					t.Errorf("%s differs from %s:\n%s", tc.uri, path, pretty.Bytes())
				}
			})
		}
	})

	t.Run("auth", func(t *testing.T) {
		uri := q(api.PathAggregate, "period", "day", "date", "2025-03-30")
		tests := []struct {
			name, key, uri string
			status         int
			want           string
		}{
			{"no key", "", uri, 401, "missing API key"},
			{"wrong key", "nope", uri, 401, "invalid API key"},
			{"other site's key", "other-key", uri, 403, `cannot read site \"example.com\"`},
			{"key without the stats scope", "dpo-key", uri, 403, "may not read stats"},
			{"unknown site", "test-key", strings.Replace(uri, "example.com", "unknown.example", 1), 403, "cannot read site"},
			{"missing site_id", "test-key", api.PathAggregate + "?period=day", 400, "missing site_id"},
			{"ok", "test-key", uri, 200, `"results"`},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				status, body := c.get(t, tt.key, tt.uri)
				if status != tt.status || !strings.Contains(string(body), tt.want) {
					t.Fatalf("got %d %s, want %d containing %q", status, body, tt.status, tt.want)
				}
			})
		}
	})

	t.Run("bad parameters", func(t *testing.T) {
		tests := []struct{ uri, want string }{
			{q(api.PathAggregate, "metrics", "visitors,bogus"), `unknown metric \"bogus\"`},
			{q(api.PathBreakdown, "property", "visit:nope"), `unknown property \"visit:nope\"`},
			{q(api.PathBreakdown), "missing property"},
			{q(api.PathAggregate, "filters", "visit:nope==x"), `unknown property \"visit:nope\"`},
			{q(api.PathAggregate, "filters", "visit:country=DE"), "invalid filter"},
			{q(api.PathAggregate, "period", "3y"), `invalid period \"3y\"`},
			{q(api.PathAggregate, "period", "day", "date", "yesterday"), `invalid date \"yesterday\"`},
			{q(api.PathAggregate, "period", "custom", "date", "2025-03-10,2025-03-01"), "first day is after the last"},
			{q(api.PathAggregate, "compare", "year"), `invalid compare \"year\"`},
			{q(api.PathTimeseries, "compare", "yoy"), `invalid compare \"yoy\": want previous_period, year_over_year or custom`},
			{q(api.PathBreakdown, "property", "event:page", "compare", "last_year"), `invalid compare \"last_year\"`},
			{q(api.PathAggregate, "compare", "custom"), "compare=custom needs compare_date=YYYY-MM-DD,YYYY-MM-DD"},
			{q(api.PathTimeseries, "compare", "custom", "compare_date", "2025-01-01"), `invalid compare_date \"2025-01-01\"`},
			{q(api.PathBreakdown, "property", "event:page", "compare", "custom", "compare_date", "2025-01-01,January"), `invalid compare_date: invalid date \"January\"`},
			{q(api.PathAggregate, "compare", "custom", "compare_date", "2025-02-10,2025-02-01"), `invalid compare_date: invalid date \"2025-02-10,2025-02-01\": the first day is after the last`},
			{q(api.PathAggregate, "compare", "custom", "compare_date", "2015-01-01,2025-01-01"), "invalid compare_date"},
			{q(api.PathAggregate, "compare_date", "2025-01-01,2025-01-07"), "compare_date needs compare=custom"},
			{q(api.PathAggregate, "compare", "year_over_year", "compare_date", "2025-01-01,2025-01-07"), "compare_date is for compare=custom only"},
			{q(api.PathTimeseries, "period", "7d", "interval", "hour", "compare", "custom", "compare_date", "2024-01-01,2024-12-31"), "invalid compare_date for interval=hour"},
			{q(api.PathBreakdown, "property", "event:props:change", "compare", "previous_period"), `breakdown row carries \"change\" itself`},
			{q(api.PathAggregate, "metrics", "conversion_rate"), "needs an event:goal filter"},
			{q(api.PathTimeseries, "interval", "second"), `invalid interval \"second\"`},
			{q(api.PathTimeseries, "interval", "minute"), "interval=minute is limited to ranges of at most one day"},
			{q(api.PathTimeseries, "period", "realtime"), "period=realtime is not supported by timeseries"},
			{q(api.PathBreakdown, "property", "event:page", "metrics", "views_per_visit"), `metric \"views_per_visit\" is not supported in a breakdown by event:page`},
			{q(api.PathBreakdown, "property", "event:page", "limit", "0"), `invalid limit \"0\"`},
			{q(api.PathBreakdown, "property", "event:page", "page", "x"), `invalid page \"x\"`},
			// Audit, issue 21: a wildcard of invalid UTF-8 reached RE2 and
			// answered 500; a property key named like a metric overwrote
			// that metric in every row.
			{q(api.PathAggregate, "filters", "event:page==/\xff*"), "not valid UTF-8"},
			{q(api.PathAggregate, "filters", "visit:country==\xc3"), "not valid UTF-8"},
			{q(api.PathBreakdown, "property", "event:props:visitors", "metrics", "visitors,events"), `key \"visitors\" is the name of a metric asked for`},
			{q(api.PathBreakdown, "property", "event:props:events", "metrics", "visitors,events"), `key \"events\" is the name of a metric asked for`},
		}
		for _, tt := range tests {
			t.Run(tt.want, func(t *testing.T) {
				status, body := c.get(t, "test-key", tt.uri)
				if status != 400 || !strings.Contains(string(body), tt.want) || !json.Valid(body) {
					t.Fatalf("%s: got %d %s, want 400 containing %q", tt.uri, status, body, tt.want)
				}
			})
		}
	})

	// Audit, issue 21: a NUL in a wildcard became ".*" and matched every
	// page. A NUL is a literal byte like any other: no stored path has
	// one, so the filter matches nobody, as a wildcard of an unknown path
	// does, and unlike one matching every path.
	t.Run("NUL in a wildcard", func(t *testing.T) {
		get := func(filter string) string {
			t.Helper()
			status, body := c.get(t, "test-key", q(api.PathAggregate, "period", "30d", "date", "2025-03-30",
				"metrics", "visitors,pageviews", "filters", filter))
			if status != 200 {
				t.Fatalf("%s: status %d: %s", filter, status, body)
			}
			return string(body)
		}
		nul, nobody, all := get("event:page==/\x00*"), get("event:page==/no-such-page-*"), get("event:page==/**")
		if nul != nobody {
			t.Errorf("/\\x00* answered %s, want what a wildcard matching nobody answers: %s", nul, nobody)
		}
		if nul == all {
			t.Errorf("/\\x00* answered as /** does: %s", all)
		}
	})

	t.Run("method", func(t *testing.T) {
		var rc fasthttp.RequestCtx
		rc.Request.SetRequestURI(q(api.PathAggregate))
		rc.Request.Header.SetMethod("POST")
		rc.Request.Header.Set("Authorization", "Bearer test-key")
		c.routes[api.PathAggregate](&rc)
		if rc.Response.StatusCode() != 405 {
			t.Fatalf("POST: %d", rc.Response.StatusCode())
		}
	})

	t.Run("rate limit", func(t *testing.T) {
		lc := newClient(t, db, 3)
		uri := q(api.PathRealtime)
		for i := 0; i < 3; i++ {
			if status, body := lc.get(t, "test-key", uri); status != 200 {
				t.Fatalf("request %d: %d %s", i, status, body)
			}
		}
		status, body := lc.get(t, "test-key", uri)
		if status != 429 || !strings.Contains(string(body), "too many requests") {
			t.Fatalf("4th request: %d %s, want 429", status, body)
		}
		// Another key has its own budget.
		if status, _ := lc.get(t, "other-key", strings.Replace(uri, "example.com", "other.example", 1)); status != 200 {
			t.Fatalf("other key: %d, want 200", status)
		}
	})
}
