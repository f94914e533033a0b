package api_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/glimpse-analytics/glimpse/aggregator"
	"github.com/glimpse-analytics/glimpse/aggregator/api"
	"github.com/glimpse-analytics/glimpse/internal/apptest"
	"github.com/glimpse-analytics/glimpse/internal/chtest"
	"github.com/glimpse-analytics/glimpse/internal/config"
)

// v2server serves the Stats API (v1 and v2) on a real listener, with the
// clock just after the last seeded event.
type v2server struct {
	base string
}

func newV2Server(t *testing.T, db *chtest.DB) *v2server {
	t.Helper()
	c := newClient(t, db, 1_000_000)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &fasthttp.Server{Handler: func(rc *fasthttp.RequestCtx) {
		if h := c.routes[string(rc.Path())]; h != nil {
			h(rc)
			return
		}
		rc.SetStatusCode(404)
	}}
	go srv.Serve(ln) //nolint:errcheck // stopped by Shutdown
	t.Cleanup(func() { _ = srv.Shutdown() })
	return &v2server{base: "http://" + ln.Addr().String()}
}

// post sends a v2 query and decodes the answer.
func (s *v2server) post(t *testing.T, body string) (int, map[string]any, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", s.base+api.PathQuery, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer test-key")
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	var out map[string]any
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	if err := d.Decode(&out); err != nil {
		t.Fatalf("%s: not JSON: %s", body, raw)
	}
	return res.StatusCode, out, string(raw)
}

// get sends a v1 query.
func (s *v2server) get(t *testing.T, uri string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest("GET", s.base+uri, nil)
	req.Header.Set("Authorization", "Bearer test-key")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var out map[string]any
	d := json.NewDecoder(res.Body)
	d.UseNumber()
	if err := d.Decode(&out); err != nil {
		t.Fatal(err)
	}
	return res.StatusCode, out
}

func rowsOf(t *testing.T, out map[string]any) [][2][]any {
	t.Helper()
	var rows [][2][]any
	for _, r := range out["results"].([]any) {
		m := r.(map[string]any)
		rows = append(rows, [2][]any{m["dimensions"].([]any), m["metrics"].([]any)})
	}
	return rows
}

// TestV2Conformance runs Plausible's documented v2 examples (its docs'
// request bodies, on the seeded site) and checks each answer's shape
// and what the example shows: the row layout, the query echo, time
// labels, pagination against the unpaginated rows, total_rows.
func TestV2Conformance(t *testing.T) {
	db := seeded(t)
	s := newV2Server(t, db)
	site := `"site_id":"example.com",`
	type check func(t *testing.T, out map[string]any, raw string)
	shape := func(dims, metrics int) check {
		return func(t *testing.T, out map[string]any, raw string) {
			rows := rowsOf(t, out)
			if len(rows) == 0 {
				t.Fatalf("no rows: %s", raw)
			}
			for _, r := range rows {
				if len(r[0]) != dims || len(r[1]) != metrics {
					t.Fatalf("row %v: want %d dimensions and %d metrics", r, dims, metrics)
				}
			}
		}
	}
	tests := []struct {
		name, body string
		checks     []check
	}{
		{"E1 aggregate", `{"metrics":["visitors","events"],"date_range":"7d"}`, []check{shape(0, 2), func(t *testing.T, out map[string]any, raw string) {
			q := out["query"].(map[string]any)
			if got := fmt.Sprint(q["order_by"]); got != "[[visitors desc]]" {
				t.Errorf("order_by echo %s", got)
			}
			// 7d: the seven days before today (Mar 24..30; today, in
			// Berlin, is Mar 31).
			if got := fmt.Sprint(q["date_range"]); got != "[2025-03-24T00:00:00+01:00 2025-03-30T23:59:59+02:00]" {
				t.Errorf("date_range echo %s", got)
			}
			if !strings.HasPrefix(raw, `{"results":`) || !(strings.Index(raw, `,"meta":{`) < strings.Index(raw, `},"query":{"site_id":"example.com","metrics":`)) {
				t.Errorf("key order: %s", raw)
			}
		}}},
		{"E2 custom range", `{"metrics":["visitors"],"date_range":["2025-03-01","2025-03-15"]}`, []check{shape(0, 1)}},
		{"E3 case-insensitive", `{"metrics":["visitors"],"date_range":"30d","filters":[["contains","event:page",["PRICING"],{"case_sensitive":false}]]}`,
			[]check{shape(0, 1), func(t *testing.T, out map[string]any, raw string) {
				if n := rowsOf(t, out)[0][1][0]; fmt.Sprint(n) == "0" {
					t.Errorf("case-insensitive contains matched nothing: %s", raw)
				}
			}}},
		{"E4 country and city", `{"metrics":["visitors","pageviews","bounce_rate"],"date_range":"30d","filters":[["is_not","visit:country_name",[""]]],"dimensions":["visit:country_name","visit:city_name"]}`,
			[]check{shape(2, 3), func(t *testing.T, out map[string]any, raw string) {
				names := map[string]bool{}
				for _, r := range rowsOf(t, out) {
					names[r[0][0].(string)] = true
				}
				if !names["Germany"] || !names["United States"] {
					t.Errorf("country names %v: want Germany and United States among them", names)
				}
			}}},
		{"E5 utm", `{"metrics":["visitors","events","pageviews"],"date_range":"30d","dimensions":["visit:utm_medium","visit:utm_source"]}`, []check{shape(2, 3)}},
		{"E6 filtering", `{"metrics":["visitors"],"date_range":"30d","filters":[["contains","event:page",["/docs","/pricing"]],["is","visit:country",["DE","US"]]]}`, []check{shape(0, 1)}},
		{"E7 timeseries", `{"metrics":["visitors","events"],"date_range":"7d","filters":[["is","visit:os",["Windows","Mac"]]],"dimensions":["time:day"]}`,
			[]check{shape(1, 2), func(t *testing.T, out map[string]any, raw string) {
				if got := fmt.Sprint(out["query"].(map[string]any)["order_by"]); got != "[[time:day asc] [visitors desc]]" {
					t.Errorf("order_by echo %s", got)
				}
				if n := len(rowsOf(t, out)); n != 7 {
					t.Errorf("%d days, want 7", n)
				}
			}}},
		{"E8 time labels", `{"metrics":["visitors"],"date_range":["2025-03-29","2025-03-29"],"dimensions":["time:hour"],"include":{"time_labels":true}}`,
			[]check{shape(1, 1), func(t *testing.T, out map[string]any, raw string) {
				labels := out["meta"].(map[string]any)["time_labels"].([]any)
				if len(labels) != 24 || labels[0] != "2025-03-29 00:00:00" || labels[23] != "2025-03-29 23:00:00" {
					t.Errorf("time_labels %v", labels)
				}
				for _, r := range rowsOf(t, out) {
					if fmt.Sprint(r[1][0]) == "0" {
						t.Errorf("an empty bucket is a row: %v", r)
					}
				}
			}}},
		{"E9 custom props", `{"metrics":["visitors"],"date_range":"30d","dimensions":["time:day","event:props:plan"],"order_by":[["time:day","asc"],["event:props:plan","desc"]]}`,
			[]check{shape(2, 1), func(t *testing.T, out map[string]any, raw string) {
				rows := rowsOf(t, out)
				for i := 1; i < len(rows); i++ {
					a, b := rows[i-1][0], rows[i][0]
					if b[0] == aggregator.Other {
						continue // (other) comes last
					}
					if a[0].(string) > b[0].(string) || (a[0] == b[0] && a[1].(string) < b[1].(string) && a[1] != "(other)" && b[1] != "(other)") {
						t.Errorf("rows %v then %v: not by day asc, plan desc", a, b)
					}
				}
			}}},
		{"E10 pagination", `{"metrics":["visitors","events","pageviews"],"date_range":"30d","dimensions":["visit:source","visit:country"],"include":{"total_rows":true},"pagination":{"limit":3,"offset":1}}`,
			[]check{shape(2, 3), func(t *testing.T, out map[string]any, raw string) {
				_, all, _ := s.post(t, `{`+site+`"metrics":["visitors","events","pageviews"],"date_range":"30d","dimensions":["visit:source","visit:country"]}`)
				allRows := rowsOf(t, all)
				if got, want := rowsOf(t, out), allRows[1:4]; !reflect.DeepEqual(got, want) {
					t.Errorf("page %v, want %v", got, want)
				}
				if got := fmt.Sprint(out["meta"].(map[string]any)["total_rows"]); got != fmt.Sprint(len(allRows)) {
					t.Errorf("total_rows %s, want %d", got, len(allRows))
				}
				if got := fmt.Sprint(out["query"].(map[string]any)["pagination"]); got != "map[limit:3 offset:1]" {
					t.Errorf("pagination echo %s", got)
				}
			}}},
		{"E11 imports", `{"metrics":["visitors"],"date_range":"all","dimensions":["visit:source"],"filters":[["is","visit:country",["DE"]]],"include":{"imports":true}}`,
			[]check{shape(1, 1), func(t *testing.T, out map[string]any, raw string) {
				m := out["meta"].(map[string]any)
				if m["imports_included"] != false {
					t.Errorf("meta %v", m)
				}
			}}},
		{"E14 behavioural", `{"metrics":["visitors"],"date_range":"all","filters":[["is","event:goal",["Signup"]],["has_done",["is","event:page",["/pricing"]]]]}`, []check{shape(0, 1)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := "{" + site + tt.body[1:]
			st, out, raw := s.post(t, body)
			if st != 200 {
				t.Fatalf("%d %s", st, raw)
			}
			for _, c := range tt.checks {
				c(t, out, raw)
			}
		})
	}
}

// TestV1V2Pairs: v1 and v2 give the same numbers for the same question.
func TestV1V2Pairs(t *testing.T) {
	db := seeded(t)
	s := newV2Server(t, db)
	const rng = `"date_range":["2025-03-01","2025-03-30"]`
	v1 := func(path string, kv ...string) string {
		return q(path, append([]string{"period", "custom", "date", "2025-03-01,2025-03-30", "limit", "1000"}, kv...)...)
	}
	type pair struct {
		name, v1, v2 string
		metrics      []string
	}
	ms := []string{"visitors", "visits", "pageviews", "events", "bounce_rate", "visit_duration"}
	msq := `"visitors","visits","pageviews","events","bounce_rate","visit_duration"`
	pairs := []pair{
		{"aggregate", v1(api.PathAggregate, "metrics", strings.Join(ms, ",")), `{"metrics":[` + msq + `],` + rng + `}`, ms},
		{"aggregate filtered", v1(api.PathAggregate, "metrics", strings.Join(ms, ","), "filters", "visit:country==DE;event:page==/pricing"),
			`{"metrics":[` + msq + `],` + rng + `,"filters":[["is","visit:country",["DE"]],["is","event:page",["/pricing"]]]}`, ms},
		{"aggregate contains", v1(api.PathAggregate, "metrics", "visitors,pageviews", "filters", "event:page~blog"),
			`{"metrics":["visitors","pageviews"],` + rng + `,"filters":[["contains","event:page",["blog"]]]}`, []string{"visitors", "pageviews"}},
		{"aggregate is_not", v1(api.PathAggregate, "metrics", "visitors,visits", "filters", "visit:browser!=Chrome|Safari"),
			`{"metrics":["visitors","visits"],` + rng + `,"filters":[["is_not","visit:browser",["Chrome","Safari"]]]}`, []string{"visitors", "visits"}},
		{"aggregate goal conversion", v1(api.PathAggregate, "metrics", "visitors,events,conversion_rate", "filters", "event:goal==Signup"),
			`{"metrics":["visitors","events","conversion_rate"],` + rng + `,"filters":[["is","event:goal",["Signup"]]]}`, []string{"visitors", "events", "conversion_rate"}},
		{"timeseries day", v1(api.PathTimeseries, "metrics", strings.Join(ms, ","), "interval", "date"),
			`{"metrics":[` + msq + `],` + rng + `,"dimensions":["time:day"]}`, ms},
		{"timeseries week filtered", v1(api.PathTimeseries, "metrics", "visitors,pageviews", "interval", "week", "filters", "visit:source==Google"),
			`{"metrics":["visitors","pageviews"],` + rng + `,"dimensions":["time:week"],"filters":[["is","visit:source",["Google"]]]}`, []string{"visitors", "pageviews"}},
		{"breakdown source", v1(api.PathBreakdown, "metrics", strings.Join(ms, ","), "property", "visit:source"),
			`{"metrics":[` + msq + `],` + rng + `,"dimensions":["visit:source"]}`, ms},
		{"breakdown page", v1(api.PathBreakdown, "metrics", "visitors,pageviews,visits,bounce_rate", "property", "event:page"),
			`{"metrics":["visitors","pageviews","visits","bounce_rate"],` + rng + `,"dimensions":["event:page"]}`, []string{"visitors", "pageviews", "visits", "bounce_rate"}},
		{"breakdown goal", v1(api.PathBreakdown, "metrics", "visitors,events", "property", "event:goal"),
			`{"metrics":["visitors","events"],` + rng + `,"dimensions":["event:goal"]}`, []string{"visitors", "events"}},
		{"breakdown country filtered", v1(api.PathBreakdown, "metrics", "visitors,visits", "property", "visit:country", "filters", "visit:device==Desktop"),
			`{"metrics":["visitors","visits"],` + rng + `,"dimensions":["visit:country"],"filters":[["is","visit:device",["Desktop"]]]}`, []string{"visitors", "visits"}},
		{"breakdown source by goal", v1(api.PathBreakdown, "metrics", "visitors,conversion_rate", "property", "visit:source", "filters", "event:goal==Signup"),
			`{"metrics":["visitors","group_conversion_rate"],` + rng + `,"dimensions":["visit:source"],"filters":[["is","event:goal",["Signup"]]]}`, []string{"visitors", "conversion_rate"}},
		{"breakdown by country name", v1(api.PathBreakdown, "metrics", "visitors,pageviews", "property", "visit:country", "filters", "visit:country==DE|US|FR"),
			`{"metrics":["visitors","pageviews"],` + rng + `,"dimensions":["visit:country"],"filters":[["matches","visit:country_name",["^(germany|united states|france)$"],{"case_sensitive":false}]]}`,
			[]string{"visitors", "pageviews"}},
		{"breakdown prop", v1(api.PathBreakdown, "metrics", "visitors,events", "property", "event:props:plan"),
			`{"metrics":["visitors","events"],` + rng + `,"dimensions":["event:props:plan"]}`, []string{"visitors", "events"}},
	}
	checked := 0
	for _, p := range pairs {
		t.Run(p.name, func(t *testing.T) {
			st1, a := s.get(t, p.v1)
			st2, b, raw := s.post(t, `{"site_id":"example.com",`+p.v2[1:])
			if st1 != 200 || st2 != 200 {
				t.Fatalf("v1 %d %v; v2 %d %s", st1, a, st2, raw)
			}
			// v1's rows as v2's: dimensions → metric values.
			want := map[string][]string{}
			switch r := a["results"].(type) {
			case map[string]any:
				var vs []string
				for _, m := range p.metrics {
					vs = append(vs, fmt.Sprint(r[m].(map[string]any)["value"]))
				}
				want[""] = vs
			case []any:
				for _, row := range r {
					o := row.(map[string]any)
					key := ""
					for k, v := range o {
						if k == "date" || (!contains(p.metrics, k) && k != "withheld") {
							key = fmt.Sprint(v)
						}
					}
					var vs []string
					for _, m := range p.metrics {
						vs = append(vs, fmt.Sprint(o[m]))
					}
					if allZero(vs) && strings.Contains(p.v1, "timeseries") {
						continue // v2 leaves empty buckets out
					}
					want[key] = vs
				}
			}
			got := map[string][]string{}
			for _, r := range rowsOf(t, b) {
				key := ""
				if len(r[0]) > 0 {
					key = fmt.Sprint(r[0][0])
				}
				var vs []string
				for _, v := range r[1] {
					vs = append(vs, fmt.Sprint(v))
				}
				got[key] = vs
			}
			for k, v := range want {
				if !reflect.DeepEqual(got[k], v) {
					t.Errorf("%q: v2 %v, v1 %v", k, got[k], v)
				}
			}
			for k, v := range got {
				if _, ok := want[k]; !ok {
					t.Errorf("%q: v2 %v, not in v1", k, v)
				}
			}
			for _, vs := range want {
				checked += len(vs)
			}
		})
	}
	t.Logf("v1 == v2 on %d pairs, %d values", len(pairs), checked)
	if checked < 300 {
		t.Errorf("only %d values compared: the pairs are too empty to mean anything", checked)
	}
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

func allZero(vs []string) bool {
	for _, v := range vs {
		if v != "0" && v != "<nil>" {
			return false
		}
	}
	return true
}

// TestV2BadQueries: malformed or incompatible queries get Plausible's 400
// messages, never a 500.
func TestV2BadQueries(t *testing.T) {
	db := chtest.Migrated(t)
	s := newV2Server(t, db)
	long := strings.Repeat("a", aggregator.V2MaxRegex+1)
	tests := []struct{ body, want string }{
		{`{"site_id":"example.com","metrics":["visitors","baa"],"date_range":"all"}`, `#/metrics/1: Invalid metric "baa"`},
		{`{"site_id":"example.com","metrics":[],"date_range":"all"}`, `#/metrics: Expected a minimum of 1 items but got 0.`},
		{`{"site_id":"example.com","metrics":["visitors","visitors"],"date_range":"all"}`, `#/metrics: Expected items to be unique but they were not.`},
		{`{"site_id":"example.com","metrics":"visitors","date_range":"all"}`, `#/metrics: Type mismatch. Expected Array but got String.`},
		{`{"site_id":"example.com","date_range":"all"}`, `#: Required properties metrics were not present.`},
		{`{"site_id":"example.com","metrics":["visitors"],"date_range":"all","dimensions":["badproperty"]}`, `#/dimensions/0: Invalid dimension "badproperty"`},
		{`{"site_id":"example.com","metrics":["visitors"],"date_range":"all","dimensions":["event:props:"]}`, `#/dimensions/0: Invalid dimension "event:props:"`},
		{`{"site_id":"example.com","metrics":["visitors"],"date_range":"bad_period"}`, `#/date_range: Invalid date range "bad_period"`},
		{`{"site_id":"example.com","metrics":["visitors"],"date_range":["2025-03-10","2025-03-01"]}`, `Invalid date_range '["2025-03-10", "2025-03-01"]'.`},
		{`{"site_id":"example.com","metrics":["visitors"],"date_range":"all","filters":[["exists?","event:name",["foo"]]]}`, `Unknown operator for filter '["exists?", "event:name", ["foo"]]'.`},
		{`{"site_id":"example.com","metrics":["visitors"],"date_range":"all","filters":[["is","visit:os_version",[123]]]}`, `#/filters/0: Invalid filter ["is", "visit:os_version", [123]]`},
		{`{"site_id":"example.com","metrics":["visitors"],"date_range":"all","filters":"x"}`, `#/filters: Type mismatch. Expected Array but got String.`},
		{`{"site_id":"example.com","metrics":["visitors"],"date_range":"all","filters":[["or",[["is","event:goal",["Signup"]]]]]}`, "Invalid filters. Dimension `event:goal` can only be filtered at the top level."},
		{`{"site_id":"example.com","metrics":["visitors"],"date_range":"all","filters":[["has_done",["has_done",["is","event:page",["/"]]]]]}`, `Invalid filters. Behavioral filters (has_done, has_not_done) cannot be nested.`},
		{`{"site_id":"example.com","metrics":["visitors"],"date_range":"all","filters":[["has_done",["is","visit:country",["DE"]]]]}`, `Invalid filters. Behavioral filters (has_done, has_not_done) can only be used with event dimension filters.`},
		{`{"site_id":"example.com","metrics":["visitors"],"date_range":"all","filters":[["matches","event:page",["` + long + `"]]]}`, fmt.Sprintf("Invalid filters. The regular expression of event:page is %d bytes long; at most %d are allowed.", len(long), aggregator.V2MaxRegex)},
		{`{"site_id":"example.com","metrics":["visitors"],"date_range":"all","filters":[["matches","event:page",["(a"]]]}`, "Invalid filters. \"(a\" is not a valid regular expression: error parsing regexp: missing closing ): `(a`"},
		{`{"site_id":"example.com","metrics":["visitors"],"date_range":"all","filters":[["is","visit:country",["Germany"]]]}`, `Invalid visit:country filter, visit:country needs to be a valid 2-letter country code.`},
		{`{"site_id":"example.com","metrics":["conversion_rate"],"date_range":"all"}`, "Metric `conversion_rate` can only be queried with event:goal filters or dimensions."},
		{`{"site_id":"example.com","metrics":["scroll_depth"],"date_range":"all"}`, "Metric `scroll_depth` can only be queried with event:page filters or dimensions."},
		{`{"site_id":"example.com","metrics":["views_per_visit"],"date_range":"all","dimensions":["event:name"]}`, "Metric `views_per_visit` cannot be queried with `dimensions`."},
		{`{"site_id":"example.com","metrics":["bounce_rate"],"date_range":"all","dimensions":["event:goal"]}`, "Session metric(s) `bounce_rate` cannot be queried along with event dimension(s) `event:goal`"},
		{`{"site_id":"example.com","metrics":["visitors"],"date_range":"all","include":{"time_labels":true}}`, `Invalid include.time_labels: requires a time dimension.`},
		{`{"site_id":"example.com","metrics":["visitors"],"date_range":"all","include":"x"}`, `#/include: Type mismatch. Expected Object but got String.`},
		{`{"site_id":"example.com","metrics":["visitors"],"date_range":"all","order_by":[["events","desc"]]}`, `Invalid order_by entry '{:events, :desc}'. Entry is not a queried metric or dimension.`},
		{`{"site_id":"example.com","metrics":["visitors"],"date_range":"all","pagination":{"limit":10001}}`, `#/pagination/limit: Expected the value to be <= 10000`},
		{`{"site_id":"example.com","metrics":["visitors"],"date_range":"all","bogus":1}`, `#/bogus: Schema does not allow additional properties.`},
		{`{"site_id":"example.com","metrics":["visitors"],"date_range":"all","dimensions":["time:day","time:hour"]}`, `Invalid dimensions '["time:day", "time:hour"]'`},
		{`{"site_id":"example.com","metrics":["visitors"],"date_range":"all","include":{"comparisons":{"mode":"last_week"}}}`, `#/include/comparisons/mode: Invalid comparison mode "last_week": want previous_period, year_over_year or custom`},
		{`[1,2]`, `#: Type mismatch. Expected Object but got Array.`},
		{`not json`, `Invalid JSON in the request body: invalid character 'o' in literal null (expecting 'u')`},
	}
	for _, tt := range tests {
		st, out, raw := s.post(t, tt.body)
		if st != 400 || out["error"] != tt.want {
			t.Errorf("%s\n got %d %s\nwant 400 %q", tt.body, st, raw, tt.want)
		}
	}
	// Not one of Plausible's, but never a 500: a query that reaches
	// ClickHouse with an unusual shape.
	for _, body := range []string{
		`{"site_id":"example.com","metrics":["visitors","percentage"],"date_range":"24h","dimensions":["time:hour","visit:source","event:page"]}`,
		`{"site_id":"example.com","metrics":["visitors"],"date_range":"all","filters":[["not",["or",[["matches","visit:referrer",["^$"]],["has_not_done",["contains","event:props:plan",["pro"],{"case_sensitive":false}]]]]]]}`,
		`{"site_id":"example.com","metrics":["visitors","events"],"date_range":["2025-03-01T10:00:00+01:00","2025-03-01T11:59:59+01:00"],"dimensions":["time"]}`,
	} {
		if st, _, raw := s.post(t, body); st != 200 {
			t.Errorf("%s: %d %s", body, st, raw)
		}
	}
}

// FuzzParseQueryV2: any body parses or fails with a 400, never panics.
func FuzzParseQueryV2(f *testing.F) {
	for _, s := range []string{
		`{"site_id":"a","metrics":["visitors"],"date_range":"7d"}`,
		`{"site_id":"a","metrics":["visitors","percentage"],"date_range":["2024-01-01","2024-01-31"],"dimensions":["time","visit:source"],"order_by":[["time","asc"]]}`,
		`{"site_id":"a","metrics":["visitors"],"date_range":"all","filters":[["or",[["is","event:page",["/"]],["not",["matches","visit:source",["^G"]]]]],["has_done",["contains","event:goal",["x"],{"case_sensitive":false}]]]}`,
		`{"site_id":"a","metrics":["visitors"],"date_range":"12mo","include":{"comparisons":{"mode":"custom","date_range":["2023-01-01","2023-12-31"]},"total_rows":true},"pagination":{"limit":5,"offset":2}}`,
		`{}`, `[]`, `null`, `{"metrics":[1]}`,
	} {
		f.Add([]byte(s))
	}
	site := sites(&testing.T{}).Site("example.com")
	now := time.Date(2025, 3, 31, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, body []byte) {
		q, err := aggregator.ParseQueryV2(site, body, now)
		if err != nil {
			if e, ok := err.(*aggregator.Error); !ok || e.Status != 400 || e.Message == "" {
				t.Fatalf("%q: %T %v, want a 400", body, err, err)
			}
			return
		}
		if len(q.Metrics) == 0 || !q.Period.From.Before(q.Period.To) && !q.Period.From.Equal(q.Period.To) {
			t.Fatalf("%q: accepted with metrics %v, period %v", body, q.Metrics, q.Period)
		}
	})
}

// TestV2Noisy: on a noisy site v2 answers the same question with the
// same noisy numbers as v1 (the same cells: asking both gains nothing),
// spellings of one filter draw one noise, and a repeat costs nothing.
func TestV2Noisy(t *testing.T) {
	db := seeded(t)
	f, err := config.Parse("noisy.yaml", []byte(`sites:
  - domain: example.com
    timezone: Europe/Berlin
    privacy: {aggregates: noisy, epsilon: 0.5, k_anonymity: 5, budget: 1000, noise_key: "0123456789abcdef0123456789abcdef"}
api_keys:
  - name: test
    sha256: "`+apptest.KeyHash("test-key")+`"
    sites: [example.com]
`))
	if err != nil {
		t.Fatal(err)
	}
	now := seedEnd.Add(2 * time.Hour)
	a, err := api.New(api.Options{
		Engine: aggregator.New(aggregator.Options{Conn: db.Conn, Budget: aggregator.NewBudget(func() time.Time { return now }, nil, nil)}),
		Sites:  f, Now: func() time.Time { return now }, RateLimit: 1 << 20,
	})
	if err != nil {
		t.Fatal(err)
	}
	routes := a.Routes()
	do := func(method, uri, body string) (string, string) {
		var rc fasthttp.RequestCtx
		rc.Request.SetRequestURI(uri)
		rc.Request.Header.SetMethod(method)
		rc.Request.SetBodyString(body)
		rc.Request.Header.Set("Authorization", "Bearer test-key")
		routes[string(rc.Request.URI().Path())](&rc)
		if rc.Response.StatusCode() != 200 {
			t.Fatalf("%s %s: %d %s", uri, body, rc.Response.StatusCode(), rc.Response.Body())
		}
		return string(rc.Response.Body()), string(rc.Response.Header.Peek(api.HeaderBudget))
	}
	v2 := func(body string) ([][2][]any, string) {
		raw, budget := do("POST", api.PathQuery, `{"site_id":"example.com","date_range":["2025-03-01","2025-03-30"],`+body[1:])
		var out map[string]any
		d := json.NewDecoder(strings.NewReader(raw))
		d.UseNumber()
		if err := d.Decode(&out); err != nil {
			t.Fatal(err)
		}
		return rowsOf(t, out), budget
	}
	v1 := func(path string, kv ...string) map[string]any {
		raw, _ := do("GET", q(path, append([]string{"period", "custom", "date", "2025-03-01,2025-03-30"}, kv...)...), "")
		var out map[string]any
		d := json.NewDecoder(strings.NewReader(raw))
		d.UseNumber()
		if err := d.Decode(&out); err != nil {
			t.Fatal(err)
		}
		return out
	}
	// An aggregate under filters, in v1 and in three v2 spellings.
	agg := v1(api.PathAggregate, "metrics", "visitors,pageviews,bounce_rate", "filters", "visit:country==DE|FR;event:page==/pricing")["results"].(map[string]any)
	want := []any{agg["visitors"].(map[string]any)["value"], agg["pageviews"].(map[string]any)["value"], agg["bounce_rate"].(map[string]any)["value"]}
	var budgets []string
	for _, filters := range []string{
		`[["is","visit:country",["DE","FR"]],["is","event:page",["/pricing"]]]`,
		`[["or",[["is","visit:country",["FR"]],["is","visit:country",["DE"]]]],["and",[["is","event:page",["/pricing"]]]]]`,
		`[["not",["not",["and",[["is","event:page",["/pricing"]],["or",[["is","visit:country",["DE"]],["or",[["is","visit:country",["FR"]]]]]]]]]]]`,
	} {
		rows, budget := v2(`{"metrics":["visitors","pageviews","bounce_rate"],"filters":` + filters + `}`)
		if fmt.Sprint(rows[0][1]) != fmt.Sprint(want) {
			t.Errorf("filters %s: v2 %v, v1 %v", filters, rows[0][1], want)
		}
		budgets = append(budgets, budget)
	}
	if budgets[0] != budgets[1] || budgets[1] != budgets[2] || budgets[0] == "" {
		t.Errorf("budget left %v: a question already answered (in v1) must cost nothing again", budgets)
	}
	// A breakdown: v2's rows are v1's.
	bd := v1(api.PathBreakdown, "metrics", "visitors,visits", "property", "visit:source", "limit", "1000")["results"].([]any)
	rows, _ := v2(`{"metrics":["visitors","visits"],"dimensions":["visit:source"]}`)
	got := map[string]string{}
	for _, r := range rows {
		got[fmt.Sprint(r[0][0])] = fmt.Sprint(r[1])
	}
	for _, r := range bd {
		o := r.(map[string]any)
		if w := fmt.Sprint([]any{o["visitors"], o["visits"]}); got[o["source"].(string)] != w {
			t.Errorf("%s: v2 %s, v1 %s", o["source"], got[o["source"].(string)], w)
		}
	}
	if len(bd) < 3 || len(got) != len(bd) {
		t.Errorf("v1 %d rows, v2 %d", len(bd), len(got))
	}
}

// TestV2NeverFails asks 400 random combinations of metrics, dimensions,
// filters, ranges, orders and includes: each is answered 200 with one
// value per metric and dimension in every row, or refused with a 400
// that says why; never a 500 (an SQL error of an unusual shape).
func TestV2NeverFails(t *testing.T) {
	db := seeded(t)
	s := newV2Server(t, db)
	rng := rand.New(rand.NewPCG(7, 23))
	pick := func(xs []string, n int) []string {
		var out []string
		for _, i := range rng.Perm(len(xs))[:min(n, len(xs))] {
			out = append(out, xs[i])
		}
		return out
	}
	// Common metrics weigh more: the rare ones are mostly refused (a goal
	// or page filter they need is left to chance).
	metrics := []string{"visitors", "visitors", "visitors", "visits", "visits", "pageviews", "pageviews", "events", "events",
		"bounce_rate", "visit_duration", "views_per_visit", "percentage", "percentage", "conversion_rate", "group_conversion_rate",
		"time_on_page", "scroll_depth", "total_revenue", "average_revenue"}
	dims := []string{"time", "time:hour", "time:day", "time:week", "time:month", "event:page", "event:goal", "event:name", "event:hostname",
		"event:props:plan", "visit:source", "visit:referrer", "visit:channel", "visit:utm_source", "visit:country", "visit:country_name",
		"visit:region_name", "visit:city_name", "visit:browser", "visit:browser_version", "visit:os", "visit:device", "visit:screen",
		"visit:entry_page", "visit:exit_page", "visit:entry_page_hostname"}
	leaves := []string{
		`["is","event:page",["/","/pricing"]]`, `["is_not","visit:country",["DE"]]`, `["contains","visit:source",["oo"],{"case_sensitive":false}]`,
		`["contains_not","event:page",["blog"]]`, `["matches","visit:browser",["^(Chrome|Fire)"]]`, `["matches_not","event:page",["^/docs/"],{"case_sensitive":false}]`,
		`["is","event:goal",["Signup","Visit /pricing"]]`, `["contains","event:goal",["Click"]]`, `["is","event:props:plan",["pro"]]`,
		`["is","visit:country_name",["Germany"]]`, `["is","visit:exit_page",["/"]]`,
	}
	tree := func() string {
		switch rng.IntN(5) {
		case 0:
			return `["or",[` + strings.Join(pick(leaves, 2), ",") + `]]`
		case 1:
			return `["not",` + leaves[rng.IntN(len(leaves))] + `]`
		case 2:
			return `["has_done",["is","event:page",["/pricing"]]]`
		case 3:
			return `["has_not_done",["or",[["is","event:goal",["Signup"]],["contains","event:page",["docs"]]]]]`
		}
		return leaves[rng.IntN(len(leaves))]
	}
	ranges := []string{`"day"`, `"7d"`, `"28d"`, `"30d"`, `"91d"`, `"month"`, `"6mo"`, `"12mo"`, `"year"`, `"all"`, `"24h"`,
		`["2025-03-01","2025-03-30"]`, `["2025-03-29T10:00:00+01:00","2025-03-30T09:59:59+02:00"]`}
	quote := func(xs []string) string {
		b, _ := json.Marshal(xs)
		return string(b)
	}
	counts, reasons := map[int]int{}, map[string]int{}
	for i := 0; i < 400; i++ {
		ms := slices.Compact(pick(metrics, 1+rng.IntN(3)))
		slices.Sort(ms)
		ms = slices.Compact(ms)
		ds := pick(dims, rng.IntN(4))
		var fs []string
		for j := rng.IntN(3); j > 0; j-- {
			fs = append(fs, tree())
		}
		body := `{"site_id":"example.com","metrics":` + quote(ms) + `,"date_range":` + ranges[rng.IntN(len(ranges))] +
			`,"dimensions":` + quote(ds) + `,"filters":[` + strings.Join(fs, ",") + `]`
		if len(ds) > 0 && rng.IntN(2) == 0 {
			body += `,"order_by":[["` + ds[0] + `","asc"]],"pagination":{"limit":5,"offset":2},"include":{"total_rows":true}`
		} else if rng.IntN(3) == 0 {
			body += `,"include":{"comparisons":{"mode":"year_over_year"}}`
		}
		body += "}"
		st, out, raw := s.post(t, body)
		counts[st]++
		if st == 400 {
			reasons[strings.SplitN(fmt.Sprint(out["error"]), " ", 3)[0]]++
		}
		switch st {
		case 200:
			for _, r := range rowsOf(t, out) {
				if len(r[0]) != len(ds) || len(r[1]) != len(ms) {
					t.Errorf("%s: row %v", body, r)
				}
			}
		case 400:
			if e, _ := out["error"].(string); e == "" {
				t.Errorf("%s: 400 without a reason: %s", body, raw)
			}
		default:
			t.Errorf("%s: %d %s", body, st, raw)
		}
	}
	t.Logf("answers by status: %v; 400s by first word: %v", counts, reasons)
	if counts[200] < 100 {
		t.Errorf("only %d of 400 answered: the generator asks mostly what is refused", counts[200])
	}
}
