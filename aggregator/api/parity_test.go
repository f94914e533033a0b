package api_test

import (
	"encoding/json"
	"flag"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/glimpse-analytics/glimpse/aggregator/api"
)

// Plausible parity (issue 22): every example and documented parameter of
// Plausible's Stats API v1 reference (docs/stats-api-v1.md in
// plausible/docs) is run against the seeded site and its answer's shape
// is compared with the documented one: the same top-level keys, the same
// keys in each result, the same JSON types. The site's domain replaces
// $SITE_ID, and date=2025-03-30 puts every period over the seeded days.
// Where Glimpse differs on purpose the difference is asserted here and
// listed in the README ("Differences from Plausible's v1").

var dump = flag.Bool("parity.dump", false, "log every parity answer")

// parityCase is one documented request.
type parityCase struct {
	name  string // the doc section it comes from
	path  string
	query string // as the docs write it, without site_id
	// want: the metrics (aggregate), or the keys of each result item
	// besides the metrics (timeseries: date; breakdown: the property key).
	metrics []string
	key     string
	// empty: the seed has no such data, so [] (the documented shape of
	// no rows) is the answer.
	empty bool
	// buckets: the time series' length, where the period fixes it.
	buckets int
	// gap: a documented request Glimpse does not answer yet (reported,
	// engine work): the 400 it answers contains gap. When it is
	// answered, the case fails: drop gap.
	gap string
}

// jsonType names v's JSON type.
func jsonType(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case float64:
		return "number"
	case string:
		return "string"
	case bool:
		return "bool"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	}
	return fmt.Sprintf("%T", v)
}

func keys(m map[string]any) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

var (
	dayDate  = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}$`)
	hourDate = regexp.MustCompile(`^\d{4}-\d{2}-\d{2} \d{2}:00:00$`)
)

// metaKeys are the keys of Glimpse's meta (a deliberate difference:
// Plausible's v1 answers carry results only); breakdowns add
// folded_rows and other_shown.
var metaKeys = []string{"aggregates", "filtered", "k_anonymity", "sample_factor", "source"}

// checkShape reports how body differs from the documented shape of an
// answer of tc's endpoint; nil if it matches.
func checkShape(tc parityCase, body []byte) []string {
	var errs []string
	bad := func(f string, a ...any) { errs = append(errs, fmt.Sprintf(f, a...)) }
	var top map[string]any
	if err := json.Unmarshal(body, &top); err != nil {
		return []string{fmt.Sprintf("not a JSON object: %v", err)}
	}
	// Deliberate: meta beside results.
	if got := keys(top); !slices.Equal(got, []string{"meta", "results"}) {
		bad("top-level keys %v, want [meta results]", got)
	}
	meta, _ := top["meta"].(map[string]any)
	for _, k := range metaKeys {
		if _, ok := meta[k]; !ok {
			bad("meta has no %s", k)
		}
	}
	compare := strings.Contains(tc.query, "compare=previous_period")
	switch tc.path {
	case api.PathAggregate:
		res, ok := top["results"].(map[string]any)
		if !ok {
			bad("results is %s, want object", jsonType(top["results"]))
			return errs
		}
		want := slices.Clone(tc.metrics)
		slices.Sort(want)
		if got := keys(res); !slices.Equal(got, want) {
			bad("metrics %v, want %v", got, want)
		}
		for m, v := range res {
			o, ok := v.(map[string]any)
			if !ok {
				bad("%s is %s, want {\"value\": ...}", m, jsonType(v))
				continue
			}
			wantKeys := []string{"value"}
			if compare {
				// Plausible's change; comparison_value is ours (v2's name).
				wantKeys = []string{"change", "comparison_value", "value"}
			}
			if _, w := o["withheld"]; w {
				// Deliberate: k-anonymity withholds a small figure.
				if o["value"] != nil || jsonType(o["withheld"]) != "string" {
					bad("%s withheld but value %v", m, o["value"])
				}
				continue
			}
			if got := keys(o); !slices.Equal(got, wantKeys) {
				bad("%s has keys %v, want %v", m, got, wantKeys)
			}
			if jsonType(o["value"]) != "number" {
				bad("%s.value is %s, want number", m, jsonType(o["value"]))
			}
			if compare {
				if t := jsonType(o["change"]); t != "number" && t != "null" {
					bad("%s.change is %s", m, t)
				}
			}
		}
	case api.PathTimeseries, api.PathBreakdown:
		res, ok := top["results"].([]any)
		if !ok {
			bad("results is %s, want array", jsonType(top["results"]))
			return errs
		}
		if len(res) == 0 && !tc.empty {
			bad("no results")
		}
		if tc.buckets > 0 && len(res) != tc.buckets {
			bad("%d buckets, want %d", len(res), tc.buckets)
		}
		want := append([]string{tc.key}, tc.metrics...)
		slices.Sort(want)
		for i, it := range res {
			o, ok := it.(map[string]any)
			if !ok {
				bad("results[%d] is %s", i, jsonType(it))
				continue
			}
			if _, w := o["withheld"]; w && tc.path == api.PathTimeseries {
				// Deliberate: k-anonymity withholds a bucket of 1 to k-1
				// visitors: its metrics are null, the reason beside them.
				delete(o, "withheld")
				for _, m := range tc.metrics {
					if o[m] != nil {
						bad("results[%d] withheld but %s is %v", i, m, o[m])
					}
					o[m] = 0.0
				}
			}
			if _, w := o["withheld"]; w && tc.path == api.PathBreakdown {
				// Deliberate: in a breakdown by event:page, the metrics of
				// the visits entering on a page that 1 to k-1 people
				// made are withheld: null, the reason beside them.
				delete(o, "withheld")
				for _, m := range tc.metrics {
					if m == "visits" || m == "bounce_rate" || m == "visit_duration" {
						if o[m] != nil {
							bad("results[%d] withheld but %s is %v", i, m, o[m])
						}
						o[m] = 0.0
					}
				}
			}
			if got := keys(o); !slices.Equal(got, want) {
				bad("results[%d] keys %v, want %v", i, got, want)
			}
			if jsonType(o[tc.key]) != "string" {
				bad("results[%d].%s is %s, want string", i, tc.key, jsonType(o[tc.key]))
			} else if tc.key == "date" {
				d := o["date"].(string)
				hourly := strings.Contains(tc.query, "period=day") && !strings.Contains(tc.query, "interval=")
				if (hourly && !hourDate.MatchString(d)) || (!hourly && !dayDate.MatchString(d)) {
					bad("results[%d].date %q", i, d)
				}
			}
			for _, m := range tc.metrics {
				switch t := jsonType(o[m]); {
				case t == "number":
				case t == "null" && tc.path == api.PathTimeseries && (m == "bounce_rate" || m == "visit_duration" || m == "views_per_visit" || m == "conversion_rate"):
					// A bucket without visits has no ratio.
				default:
					bad("results[%d].%s is %s, want number", i, m, t)
				}
			}
			if i >= 30 {
				break
			}
		}
	}
	return errs
}

// parityCases are the examples and parameters of the v1 reference.
func parityCases() []parityCase {
	const d = "&date=2025-03-30"
	agg := func(name, query string, metrics ...string) parityCase {
		if len(metrics) == 0 {
			metrics = []string{"visitors"}
		}
		return parityCase{name: name, path: api.PathAggregate, query: query, metrics: metrics}
	}
	ts := func(name, query string, metrics ...string) parityCase {
		if len(metrics) == 0 {
			metrics = []string{"visitors"}
		}
		return parityCase{name: name, path: api.PathTimeseries, query: query, metrics: metrics, key: "date"}
	}
	bd := func(name, query, key string, metrics ...string) parityCase {
		if len(metrics) == 0 {
			metrics = []string{"visitors"}
		}
		return parityCase{name: name, path: api.PathBreakdown, query: query, metrics: metrics, key: key}
	}
	withBuckets := func(tc parityCase, n int) parityCase { tc.buckets = n; return tc }
	cs := []parityCase{
		// Endpoints: the curl examples, verbatim but for the date.
		agg("Endpoints/aggregate", "period=6mo&metrics=visitors,pageviews,bounce_rate,visit_duration"+d,
			"visitors", "pageviews", "bounce_rate", "visit_duration"),
		withBuckets(ts("Endpoints/timeseries", "period=6mo"+d), 6),
		bd("Endpoints/breakdown", "period=6mo&property=visit:source&metrics=visitors,bounce_rate&limit=5"+d, "source", "visitors", "bounce_rate"),
		// Examples of common queries.
		bd("Examples/Top pages", "period=6mo&property=event:page&limit=5"+d, "page"),
		agg("Examples/Number of visitors to a specific page", "period=6mo&filters=event:page%3D%3D%2Fpricing"+d),
		ts("Examples/Monthly traffic from Google", "period=6mo&filters=visit:source%3D%3DGoogle"+d),
		// The seed's custom goal is Signup with property plan, not
		// Download with method.
		bd("Examples/Breakdown custom event by custom properties", "period=6mo&property=event:props:plan&filters=event:goal%3D%3DSignup"+d, "plan"),

		// Parameters: defaults (period 30d, metrics visitors, date today).
		agg("Parameters/aggregate defaults", ""),
		ts("Parameters/timeseries defaults", ""),
		bd("Parameters/breakdown defaults", "property=visit:source", "source"),
		agg("Parameters/compare previous_period", "period=30d&compare=previous_period&metrics=visitors,pageviews,bounce_rate,visit_duration"+d,
			"visitors", "pageviews", "bounce_rate", "visit_duration"),
		agg("Parameters/with_imported=true", "period=30d&with_imported=true"+d),
		ts("Parameters/timeseries with_imported=false", "period=30d&with_imported=false"+d),
		bd("Parameters/breakdown with_imported=true", "period=30d&property=visit:country&with_imported=true"+d, "country"),
		bd("Parameters/breakdown limit and page", "period=30d&property=event:page&limit=3&page=2"+d, "page"),
		bd("Parameters/breakdown limit 1000", "period=30d&property=event:page&limit=1000"+d, "page"),
		withBuckets(ts("Parameters/interval=day", "period=6mo&interval=day"+d), 182),
		withBuckets(ts("Parameters/interval=month", "period=12mo&interval=month"+d), 12),
		withBuckets(ts("Parameters/interval=day of period=day", "period=day&interval=day"+d), 1),
	}
	// Time periods, on each endpoint.
	// Buckets: months for 12mo and 6mo, days, hours for day (23 on
	// 2025-03-30, when Berlin's clocks skip 02:00).
	for _, p := range []struct {
		name    string
		buckets int
	}{{"12mo", 12}, {"6mo", 6}, {"month", 31}, {"30d", 30}, {"7d", 7}, {"day", 23}, {"custom", 30}} {
		q := "period=" + p.name + d
		if p.name == "custom" {
			q = "period=custom&date=2025-03-01,2025-03-30"
		}
		cs = append(cs,
			agg("Time periods/"+p.name+"/aggregate", q),
			withBuckets(ts("Time periods/"+p.name+"/timeseries", q), p.buckets),
			bd("Time periods/"+p.name+"/breakdown", q+"&property=visit:country", "country"))
	}
	// Metrics.
	all := []string{"visitors", "visits", "pageviews", "views_per_visit", "bounce_rate", "visit_duration", "events"}
	for _, m := range all {
		cs = append(cs, agg("Metrics/"+m+"/aggregate", "period=30d&metrics="+m+d, m))
	}
	cs = append(cs,
		agg("Metrics/conversion_rate/aggregate", "period=30d&metrics=conversion_rate&filters=event:goal%3D%3DSignup"+d, "conversion_rate"),
		agg("Metrics/time_on_page/aggregate", "period=30d&metrics=time_on_page&filters=event:page%3D%3D%2Fpricing"+d, "time_on_page"),
		agg("Metrics/all/aggregate", "period=30d&metrics="+strings.Join(all, ",")+d, all...),
		// Timeseries: the metrics its parameter lists.
		ts("Metrics/all/timeseries", "period=7d&metrics="+strings.Join(all, ",")+d, all...),
		ts("Metrics/conversion_rate/timeseries", "period=7d&metrics=visitors,events,conversion_rate&filters=event:goal%3D%3DSignup"+d,
			"visitors", "events", "conversion_rate"),
		// Breakdown: all but views_per_visit ("only Aggregate and
		// Timeseries"); conversion_rate with a goal filter or by goal,
		// time_on_page by page.
		bd("Metrics/all/breakdown by visit:source", "period=30d&property=visit:source&metrics=visitors,visits,pageviews,bounce_rate,visit_duration,events"+d,
			"source", "visitors", "visits", "pageviews", "bounce_rate", "visit_duration", "events"),
		bd("Metrics/all/breakdown by event:page", "period=30d&property=event:page&metrics=visitors,visits,pageviews,events,time_on_page"+d,
			"page", "visitors", "visits", "pageviews", "events", "time_on_page"),
		// The docs list bounce_rate and visit_duration for every
		// breakdown; by event:page they are those of the visits that
		// entered on the page (Glimpse refused them: a gap, closed).
		bd("Metrics/bounce_rate/breakdown by event:page", "period=30d&property=event:page&metrics=visitors,bounce_rate"+d,
			"page", "visitors", "bounce_rate"),
		// time_on_page "requires an event:page filter or event:page
		// property": with the filter, by a visit property too (Glimpse
		// refused it: a gap, closed).
		bd("Metrics/time_on_page/breakdown by visit:source with an event:page filter",
			"period=30d&property=visit:source&metrics=visitors,time_on_page&filters=event:page%3D%3D%2Fpricing"+d,
			"source", "visitors", "time_on_page"),
		bd("Metrics/visit_duration/breakdown by event:page", "period=30d&property=event:page&metrics=visitors,visit_duration"+d,
			"page", "visitors", "visit_duration"),
		bd("Metrics/all/breakdown by event:page with a filter", "period=30d&property=event:page&metrics=visitors,visits,bounce_rate,visit_duration&filters=visit:country%3D%3DDE"+d,
			"page", "visitors", "visits", "bounce_rate", "visit_duration"),
		bd("Metrics/conversion_rate/breakdown by event:goal", "period=30d&property=event:goal&metrics=visitors,events,conversion_rate"+d,
			"goal", "visitors", "events", "conversion_rate"),
		bd("Metrics/conversion_rate/breakdown with a goal filter", "period=30d&property=visit:source&metrics=visitors,conversion_rate&filters=event:goal%3D%3DSignup"+d,
			"source", "visitors", "conversion_rate"),
		bd("Metrics/time_on_page/breakdown by event:page", "period=30d&property=event:page&metrics=visitors,time_on_page"+d,
			"page", "visitors", "time_on_page"),
	)
	// Properties: a breakdown by each (but event:hostname, "unsupported
	// as a breakdown property") and a filter on each.
	props := []struct{ name, value string }{
		{"event:goal", "Signup"}, {"event:page", "/pricing"}, {"event:hostname", "example.com"},
		{"visit:entry_page", "/"}, {"visit:exit_page", "/"}, {"visit:source", "Google"},
		{"visit:referrer", "google.com"}, {"visit:utm_medium", "social"}, {"visit:utm_source", "twitter"},
		{"visit:utm_campaign", "*"}, {"visit:utm_content", "*"}, {"visit:utm_term", "*"},
		{"visit:device", "Desktop"}, {"visit:browser", "Chrome"}, {"visit:browser_version", "*"},
		{"visit:os", "Mac"}, {"visit:os_version", "*"}, {"visit:country", "US"}, {"visit:region", "*"},
		{"visit:city", "*"}, {"event:props:plan", "pro"},
	}
	for _, p := range props {
		if p.name != "event:hostname" {
			key := p.name[strings.LastIndexByte(p.name, ':')+1:]
			tc := bd("Properties/"+p.name+"/breakdown", "period=30d&property="+p.name+d, key)
			// The seed sets no utm_content or utm_term.
			tc.empty = p.name == "visit:utm_content" || p.name == "visit:utm_term"
			cs = append(cs, tc)
		}
		cs = append(cs, agg("Properties/"+p.name+"/filter", "period=30d&metrics=visitors,pageviews&filters="+p.name+"%3D%3D"+p.value+d,
			"visitors", "pageviews"))
	}
	// Filtering: each operator of the table, the escape, goals.
	for _, f := range []struct{ name, filter string }{
		{"==", "event:goal==Signup"},
		{"!=", "visit:country!=FR"},
		{"| (IN)", "visit:source==Github|Twitter"},
		{"; (AND)", "event:goal==Signup;visit:country==DE"},
		{"* (wildcard)", "event:page==/blog/*"},
		{`\| escaped`, `visit:utm_campaign==campaign\|one`},
		{"goal Visit /register", "event:goal==Visit /pricing"},
		{"goal Visit%20/register", "event:goal==Visit%20/pricing"},
		{"goal Outbound+Link:+Click", "event:goal==Outbound+Link:+Click"},
		{"goal IN with a pageview goal", "event:goal==Signup|Visit /pricing"},
		{"hostname wildcard", "event:hostname==*.example.com|example.com"},
	} {
		enc := strings.NewReplacer("=", "%3D", "|", "%7C", ";", "%3B", `\`, "%5C").Replace(f.filter)
		b := bd("Filtering/"+f.name+"/breakdown", "period=30d&property=visit:device&filters="+enc+d, "device")
		b.empty = strings.Contains(f.filter, "campaign") // no such campaign
		cs = append(cs,
			agg("Filtering/"+f.name+"/aggregate", "period=30d&metrics=visitors,events&filters="+enc+d, "visitors", "events"),
			ts("Filtering/"+f.name+"/timeseries", "period=7d&filters="+enc+d), b)
	}
	return cs
}

func TestParity(t *testing.T) {
	db := seeded(t)
	c := newClient(t, db, 100000)

	cases := parityCases()
	matched, gaps := 0, 0
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			uri := tc.path + "?site_id=example.com"
			if tc.query != "" {
				uri += "&" + tc.query
			}
			status, body := c.get(t, "test-key", uri)
			if tc.gap != "" {
				if status != 400 || !strings.Contains(string(body), tc.gap) {
					t.Fatalf("%s: got %d %s; the gap %q seems closed: drop it from the case", uri, status, body, tc.gap)
				}
				gaps++
				return
			}
			if status != 200 {
				t.Fatalf("%s: status %d: %s", uri, status, body)
			}
			if errs := checkShape(tc, body); len(errs) > 0 {
				t.Fatalf("%s: shape differs from the docs:\n  %s\n%s", uri, strings.Join(errs, "\n  "), body)
			}
			if *dump {
				t.Logf("%s\n%s", uri, body)
			}
			matched++
		})
	}

	// Realtime: a bare number, as documented ("21").
	t.Run("Endpoints/realtime", func(t *testing.T) {
		status, body := c.get(t, "test-key", api.PathRealtime+"?site_id=example.com")
		var v any
		if status != 200 || json.Unmarshal(body, &v) != nil || jsonType(v) != "number" {
			t.Fatalf("realtime: %d %s, want a bare number", status, body)
		}
		matched++
	})
	// Deliberate differences, each asserted.
	getJSON := func(t *testing.T, uri string) map[string]any {
		t.Helper()
		status, body := c.get(t, "test-key", uri)
		var v map[string]any
		if status != 200 || json.Unmarshal(body, &v) != nil {
			t.Fatalf("%s: %d %s", uri, status, body)
		}
		return v
	}
	t.Run("Differences/k-anonymity withholds a small figure", func(t *testing.T) {
		v := getJSON(t, q(api.PathAggregate, "period", "day", "date", "2025-03-30", "metrics", "visitors",
			"filters", "visit:country==FR;visit:browser==Safari"))
		m := v["results"].(map[string]any)["visitors"].(map[string]any)
		if m["value"] != nil || jsonType(m["withheld"]) != "string" {
			t.Fatalf("visitors %v, want value null and a withheld reason", m)
		}
	})
	t.Run("Differences/breakdown rows under k fold into (other)", func(t *testing.T) {
		v := getJSON(t, q(api.PathBreakdown, "period", "7d", "date", "2025-03-30", "property", "visit:city"))
		meta := v["meta"].(map[string]any)
		if n, _ := meta["folded_rows"].(float64); n == 0 {
			t.Fatalf("meta %v: want rows folded", meta)
		}
		for _, r := range v["results"].([]any) {
			r := r.(map[string]any)
			if n, _ := r["visitors"].(float64); n < 5 && r["city"] != "(other)" {
				t.Errorf("row %v under k=5", r)
			}
		}
	})
	t.Run("Differences/visit:city is a name, not a GeoName ID", func(t *testing.T) {
		v := getJSON(t, q(api.PathBreakdown, "period", "30d", "date", "2025-03-30", "property", "visit:city", "limit", "1"))
		if r := v["results"].([]any)[0].(map[string]any); r["city"] != "San Francisco" {
			t.Fatalf("first city %v, want San Francisco", r["city"])
		}
		v = getJSON(t, q(api.PathAggregate, "period", "30d", "date", "2025-03-30", "filters", "visit:city==Berlin"))
		if n := v["results"].(map[string]any)["visitors"].(map[string]any)["value"]; n == 0.0 {
			t.Fatalf("visit:city==Berlin: %v visitors", n)
		}
	})
	t.Run("Differences/with_imported is accepted and changes nothing", func(t *testing.T) {
		for _, path := range []string{api.PathAggregate, api.PathTimeseries} {
			a := getJSON(t, q(path, "period", "30d", "date", "2025-03-30"))
			b := getJSON(t, q(path, "period", "30d", "date", "2025-03-30", "with_imported", "true"))
			ja, _ := json.Marshal(a)
			jb, _ := json.Marshal(b)
			if string(ja) != string(jb) {
				t.Fatalf("%s: with_imported=true answered %s, without %s", path, jb, ja)
			}
		}
	})
	t.Run("Differences/accepted where Plausible's v1 refuses", func(t *testing.T) {
		// views_per_visit in a breakdown, != with |, event:hostname as
		// a breakdown property.
		for _, uri := range []string{
			q(api.PathBreakdown, "period", "30d", "date", "2025-03-30", "property", "visit:source", "metrics", "views_per_visit"),
			q(api.PathAggregate, "period", "30d", "date", "2025-03-30", "filters", "visit:browser!=Chrome|Safari"),
			q(api.PathBreakdown, "period", "30d", "date", "2025-03-30", "property", "event:hostname"),
		} {
			getJSON(t, uri)
		}
	})
	// Limitations: "Inequality != operator is currently not supported
	// for goals". Glimpse answered every visitor with any other event.
	t.Run("Filtering/Limitations/!= is not supported for goals", func(t *testing.T) {
		for _, f := range []string{"event:goal!=Signup", "event:goal!~Sign"} {
			status, body := c.get(t, "test-key", q(api.PathAggregate, "period", "30d", "date", "2025-03-30", "filters", f))
			if status != 400 || !strings.Contains(string(body), "not supported for goals") {
				t.Errorf("%s: %d %s, want 400", f, status, body)
			}
		}
	})
	// Plausible names a visit without a referrer "Direct / None" in a
	// breakdown by visit:referrer, as by visit:source, and an empty
	// version, browser, OS or device "(not set)" (72 visitors of the seed
	// have no OS version); a filter by that name matches them. Glimpse
	// answered "" (a reported gap, closed).
	for _, c := range []struct{ prop, key, want string }{
		{"visit:referrer", "referrer", "Direct / None"},
		{"visit:os_version", "os_version", "(not set)"},
	} {
		t.Run("Empty values/"+c.prop+" names none "+c.want, func(t *testing.T) {
			v := getJSON(t, q(api.PathBreakdown, "period", "30d", "date", "2025-03-30", "property", c.prop, "limit", "1000"))
			var n any
			for _, r := range v["results"].([]any) {
				switch r := r.(map[string]any); r[c.key] {
				case "":
					t.Errorf("a \"\" row %v, want %q", r, c.want)
				case c.want:
					n = r["visitors"]
				}
			}
			if n == nil {
				t.Fatalf("no %q row: %v", c.want, v["results"])
			}
			a := getJSON(t, q(api.PathAggregate, "period", "30d", "date", "2025-03-30", "filters", c.prop+"=="+c.want))
			// (The aggregate counts the visitors of events, the row those
			// of visits started in the period: close, not equal.)
			if got, _ := a["results"].(map[string]any)["visitors"].(map[string]any)["value"].(float64); got == 0 {
				t.Errorf("filtered by %s==%s: %v visitors, want about the row's %v", c.prop, c.want, got, n)
			}
			matched++
		})
	}
	// A breakdown by event:goal lists the pageview goals the filter
	// names beside custom events, outbound clicks and downloads, as
	// Plausible lists its configured goals (Glimpse listed none: a
	// reported gap, closed).
	t.Run("Goals/event:goal breakdown lists the Visit goal of the filter", func(t *testing.T) {
		v := getJSON(t, q(api.PathBreakdown, "period", "30d", "date", "2025-03-30", "property", "event:goal",
			"filters", "event:goal==Signup|Visit /pricing"))
		goals := map[any]bool{}
		for _, r := range v["results"].([]any) {
			goals[r.(map[string]any)["goal"]] = true
		}
		if !goals["Signup"] || !goals["Visit /pricing"] || len(goals) != 2 {
			t.Fatalf("rows %v, want Signup and Visit /pricing", v["results"])
		}
		matched++
	})

	t.Logf("parity: %d documented requests: %d match the documented shape, %d known gaps", len(cases)+4, matched, gaps)
}
