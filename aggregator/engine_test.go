package aggregator_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"math"
	"reflect"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/glimpse-analytics/glimpse/aggregator"
	"github.com/glimpse-analytics/glimpse/collector/sink"
	"github.com/glimpse-analytics/glimpse/internal/chtest"
	"github.com/glimpse-analytics/glimpse/internal/config"
	"github.com/glimpse-analytics/glimpse/internal/storage/seed"
	"github.com/glimpse-analytics/glimpse/migrations"
)

func do(t *testing.T, e *aggregator.Engine, kind aggregator.Kind, q *aggregator.Query) *aggregator.Response {
	t.Helper()
	ctx := context.Background()
	var r *aggregator.Response
	var err error
	switch kind {
	case aggregator.KindAggregate:
		r, err = e.Aggregate(ctx, q)
	case aggregator.KindTimeseries:
		r, err = e.Timeseries(ctx, q)
	default:
		r, err = e.Breakdown(ctx, q)
	}
	if err != nil {
		t.Fatal(err)
	}
	// Round-trip through JSON, as clients see it.
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var out aggregator.Response
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return &out
}

func TestEngine(t *testing.T) {
	db := seeded(t)
	e := aggregator.New(aggregator.Options{Conn: db.Conn})
	berlin := testSites(t, "Europe/Berlin", 5).Site(testSite)

	// The hourly rollups must answer exactly what the raw tables answer.
	t.Run("rollup equals raw", func(t *testing.T) {
		utc := testSites(t, "UTC", 5).Site(testSite)
		ny := testSites(t, "America/New_York", 5).Site(testSite) // a DST change on 2025-03-09
		cases := []struct {
			site   *config.Site
			kind   aggregator.Kind
			params string
		}{
			{berlin, aggregator.KindAggregate, "period=30d&date=2025-03-30&metrics=visitors,visits,pageviews,views_per_visit,bounce_rate,visit_duration,events"},
			{utc, aggregator.KindAggregate, "period=7d&date=2025-03-20&metrics=visitors,visits,pageviews,bounce_rate"},
			{ny, aggregator.KindAggregate, "period=month&date=2025-03-20&metrics=visitors,visits,pageviews,bounce_rate"},
			{berlin, aggregator.KindTimeseries, "period=7d&date=2025-03-30&metrics=visitors,pageviews,visits,bounce_rate,visit_duration"},
			{berlin, aggregator.KindTimeseries, "period=day&date=2025-03-30&metrics=visitors,pageviews,visits"},
			{ny, aggregator.KindTimeseries, "period=custom&date=2025-03-08,2025-03-10&interval=hour&metrics=visitors,pageviews,visits"},
			{utc, aggregator.KindTimeseries, "period=30d&date=2025-03-30&interval=week&metrics=visitors,visits"},
			{berlin, aggregator.KindTimeseries, "period=6mo&date=2025-03-30&metrics=visitors,pageviews,views_per_visit"},
			{berlin, aggregator.KindBreakdown, "period=30d&date=2025-03-30&property=event:page&metrics=visitors,pageviews"},
			{utc, aggregator.KindBreakdown, "period=7d&date=2025-03-30&property=event:page&metrics=pageviews&limit=7&page=2"},
		}
		// sessions_dims_hourly: a breakdown by every attribution property
		// (unfiltered, or filtered on itself), and the sessions side of
		// aggregates and time series filtered on one of them.
		for _, p := range []string{"source", "referrer", "channel", "utm_source", "utm_medium", "utm_campaign", "utm_content",
			"utm_term", "country", "region", "city", "browser", "os", "device", "screen", "connection"} {
			cases = append(cases, struct {
				site   *config.Site
				kind   aggregator.Kind
				params string
			}{berlin, aggregator.KindBreakdown, "period=30d&date=2025-03-30&property=visit:" + p +
				"&metrics=visitors,visits,pageviews,events,bounce_rate,visit_duration,views_per_visit"})
		}
		cases = append(cases, []struct {
			site   *config.Site
			kind   aggregator.Kind
			params string
		}{
			{ny, aggregator.KindBreakdown, "period=month&date=2025-03-20&property=visit:city&metrics=visitors,visits&limit=4&page=2"},
			{utc, aggregator.KindBreakdown, "period=7d&date=2025-03-30&property=visit:source&metrics=visitors,bounce_rate&filters=visit:source!=Direct / None"},
			{berlin, aggregator.KindBreakdown, "period=30d&date=2025-03-30&property=visit:city&metrics=visitors&filters=visit:city==S*|Berlin|Tallinn"},
			{berlin, aggregator.KindBreakdown, "period=day&date=2025-03-30&property=visit:country&metrics=visitors,visits"},
			{berlin, aggregator.KindAggregate, "period=30d&date=2025-03-30&metrics=visitors,pageviews,visits,bounce_rate,visit_duration&filters=visit:device==Mobile"},
			{ny, aggregator.KindAggregate, "period=month&date=2025-03-20&metrics=visits,bounce_rate,views_per_visit&filters=visit:country!=US|DE"},
			{berlin, aggregator.KindAggregate, "period=7d&date=2025-03-30&metrics=visits,bounce_rate&filters=visit:country==IS"}, // withheld
			{berlin, aggregator.KindTimeseries, "period=7d&date=2025-03-30&metrics=visitors,visits,bounce_rate&filters=visit:source==Google|Bing"},
			{ny, aggregator.KindTimeseries, "period=custom&date=2025-03-08,2025-03-10&interval=hour&metrics=visits,visit_duration&filters=visit:browser==Firefox"},
		}...)
		for _, c := range cases {
			t.Run(c.site.Timezone+" "+c.params, func(t *testing.T) {
				q := query(t, c.kind, c.site, c.params)
				roll := do(t, e, c.kind, q)
				q.Raw = true
				raw := do(t, e, c.kind, q)
				want := "rollup"
				if len(q.Filters) > 0 && c.kind != aggregator.KindBreakdown {
					want = "rollup+raw" // the events side of a filtered query is raw
					if !strings.Contains(c.params, "visitors") && !strings.Contains(c.params, "pageviews") {
						want = "rollup"
					}
				}
				if roll.Meta.Source != want || raw.Meta.Source != "raw" {
					t.Fatalf("sources: %q and %q, want %s and raw", roll.Meta.Source, raw.Meta.Source, want)
				}
				if !reflect.DeepEqual(roll.Results, raw.Results) || !reflect.DeepEqual(roll.Meta.FoldedRows, raw.Meta.FoldedRows) ||
					!reflect.DeepEqual(roll.Meta.OtherShown, raw.Meta.OtherShown) || roll.Meta.Withheld != raw.Meta.Withheld {
					a, _ := json.Marshal(roll)
					b, _ := json.Marshal(raw)
					t.Fatalf("rollup:\n%s\nraw:\n%s", a, b)
				}
			})
		}
		// Filters on another property, or on two, read raw sessions.
		for _, params := range []string{
			"period=30d&date=2025-03-30&property=visit:source&metrics=visitors&filters=visit:country==DE",
			"period=30d&date=2025-03-30&property=visit:exit_page&metrics=visitors",
		} {
			r := do(t, e, aggregator.KindBreakdown, query(t, aggregator.KindBreakdown, berlin, params))
			if r.Meta.Source != "raw" {
				t.Errorf("%s: source %q, want raw", params, r.Meta.Source)
			}
		}
		r := do(t, e, aggregator.KindAggregate, query(t, aggregator.KindAggregate, berlin, "period=30d&date=2025-03-30&metrics=visits&filters=visit:country==DE;visit:device==Mobile"))
		if r.Meta.Source != "raw" {
			t.Errorf("two-dimension filter: source %q, want raw", r.Meta.Source)
		}
		// A half-hour zone's days start mid-hour: rollups cannot answer.
		kolkata := testSites(t, "Asia/Kolkata", 5).Site(testSite)
		r = do(t, e, aggregator.KindAggregate, query(t, aggregator.KindAggregate, kolkata, "period=7d&date=2025-03-30&metrics=visitors"))
		if r.Meta.Source != "raw" {
			t.Fatalf("Asia/Kolkata: source %q, want raw", r.Meta.Source)
		}
	})

	// Answers equal hand-written SQL over the raw tables, which reads
	// sessions a different way (argMax by version, not sign sums).
	t.Run("hand-written SQL", func(t *testing.T) {
		ctx := context.Background()
		const days = "toDate(ts, 'Europe/Berlin') BETWEEN toDate('2025-03-01') AND toDate('2025-03-30')"
		const sessions = "(SELECT session_id, argMax(is_bounce, version) AS b, argMax(start, version) AS st, " +
			"argMax(country_code, version) AS cc, argMax(referrer_source, version) AS src FROM sessions " +
			"WHERE site_id = 'example.com' GROUP BY session_id HAVING sum(sign) > 0) " +
			"WHERE toDate(st, 'Europe/Berlin') BETWEEN toDate('2025-03-01') AND toDate('2025-03-30')"
		num := func(sql string) float64 {
			t.Helper()
			var v float64
			if err := db.Conn.QueryRow(ctx, "SELECT toFloat64(("+sql+"))").Scan(&v); err != nil {
				t.Fatalf("%s: %v", sql, err)
			}
			return v
		}
		for _, raw := range []bool{false, true} {
			q := query(t, aggregator.KindAggregate, berlin, "period=custom&date=2025-03-01,2025-03-30&metrics=visitors,pageviews,visits,bounce_rate")
			q.Raw = raw
			r := do(t, e, aggregator.KindAggregate, q).Results.(map[string]any)
			want := map[string]float64{
				"visitors":    num("SELECT uniqExact(visitor_id) FROM events WHERE site_id = 'example.com' AND " + days),
				"pageviews":   num("SELECT count() FROM events WHERE site_id = 'example.com' AND type = 'pageview' AND " + days),
				"visits":      num("SELECT count() FROM " + sessions),
				"bounce_rate": math.Round(100 * num("SELECT sum(b) / count() FROM "+sessions)),
			}
			for m, w := range want {
				if got := r[m].(map[string]any)["value"].(float64); got != w {
					t.Errorf("raw=%v %s = %v, SQL says %v", raw, m, got, w)
				}
			}
		}
		// Filtered: a visit filter and an event filter together.
		q := query(t, aggregator.KindAggregate, berlin, "period=custom&date=2025-03-01,2025-03-30&metrics=visitors,pageviews&filters=visit:country==DE;event:page==/pricing")
		r := do(t, e, aggregator.KindAggregate, q).Results.(map[string]any)
		sub := "session_id IN (SELECT session_id FROM sessions WHERE site_id = 'example.com' AND country_code = 'DE')"
		for m, sql := range map[string]string{
			"visitors":  "SELECT uniqExact(visitor_id) FROM events WHERE site_id = 'example.com' AND pathname = '/pricing' AND " + sub + " AND " + days,
			"pageviews": "SELECT count() FROM events WHERE site_id = 'example.com' AND type = 'pageview' AND pathname = '/pricing' AND " + sub + " AND " + days,
		} {
			if got, w := r[m].(map[string]any)["value"].(float64), num(sql); got != w {
				t.Errorf("filtered %s = %v, SQL says %v", m, got, w)
			}
		}
		// Breakdowns: visits by country, page views by page.
		b := do(t, e, aggregator.KindBreakdown, query(t, aggregator.KindBreakdown, berlin, "period=custom&date=2025-03-01,2025-03-30&property=visit:country&metrics=visits"))
		for _, row := range b.Results.([]any) {
			m := row.(map[string]any)
			c := m["country"].(string)
			if c == aggregator.Other {
				continue
			}
			if w := num(fmt.Sprintf("SELECT count() FROM %s AND cc = '%s'", sessions, c)); m["visits"].(float64) != w {
				t.Errorf("visits of %s = %v, SQL says %v", c, m["visits"], w)
			}
		}
		b = do(t, e, aggregator.KindBreakdown, query(t, aggregator.KindBreakdown, berlin, "period=custom&date=2025-03-01,2025-03-30&property=event:page&metrics=pageviews,visitors&limit=20"))
		for _, row := range b.Results.([]any) {
			m := row.(map[string]any)
			p := m["page"].(string)
			w := num(fmt.Sprintf("SELECT count() FROM events WHERE site_id = 'example.com' AND type = 'pageview' AND pathname = '%s' AND %s", p, days))
			if m["pageviews"].(float64) != w {
				t.Errorf("pageviews of %s = %v, SQL says %v", p, m["pageviews"], w)
			}
		}
		// Visitors of a folded breakdown, from the rollup and raw: each
		// shown page's uniq, and (other)'s uniq over the pages not shown
		// (the fold merges only the folded keys' states again).
		k50 := testSites(t, "Europe/Berlin", 50).Site(testSite)
		for _, raw := range []bool{false, true} {
			q := query(t, aggregator.KindBreakdown, k50, "period=custom&date=2025-03-01,2025-03-30&property=event:page&metrics=visitors&limit=1000")
			q.Raw = raw
			r := do(t, e, aggregator.KindBreakdown, q)
			const pv = "FROM events WHERE site_id = 'example.com' AND type = 'pageview' AND "
			var shown []string
			other := -1.0
			for _, row := range r.Results.([]any) {
				m := row.(map[string]any)
				p := m["page"].(string)
				if p == aggregator.Other {
					other = m["visitors"].(float64)
					continue
				}
				shown = append(shown, "'"+p+"'")
				if w := num(fmt.Sprintf("SELECT uniq(visitor_id) %s pathname = '%s' AND %s", pv, p, days)); m["visitors"].(float64) != w {
					t.Errorf("raw=%v visitors of %s = %v, SQL says %v", raw, p, m["visitors"], w)
				}
			}
			if *r.Meta.FoldedRows == 0 || !*r.Meta.OtherShown || len(shown) == 0 {
				t.Fatalf("raw=%v: want shown rows and a shown (other); folded %d, shown %v", raw, *r.Meta.FoldedRows, *r.Meta.OtherShown)
			}
			if w := num(fmt.Sprintf("SELECT uniq(visitor_id) %s pathname NOT IN (%s) AND %s", pv, strings.Join(shown, ", "), days)); other != w {
				t.Errorf("raw=%v visitors of (other) = %v, SQL says %v", raw, other, w)
			}
		}
	})

	// No breakdown row, aggregate or time-series point of 1 to k-1
	// visitors leaves the engine, through any combination of filters.
	t.Run("k-anonymity", func(t *testing.T) {
		const k = 25
		site := testSites(t, "Europe/Berlin", k).Site(testSite)
		props := []string{"event:page", "visit:source", "visit:city", "visit:browser_version", "event:props:plan", "visit:exit_page", "event:goal", "visit:utm_campaign"}
		filters := []string{"", "visit:country==DE", "visit:country==DE;visit:device==Mobile", "visit:country==IS|NZ;event:page==/blog/**",
			"event:goal==Signup;visit:browser==Firefox", "visit:source!=Google;event:page==/docs*"}
		var foldedShown, foldedHidden int
		for _, f := range filters {
			fp := ""
			if f != "" {
				fp = "&filters=" + f
			}
			for _, p := range props {
				base := "period=30d&date=2025-03-30&property=" + p + fp
				r := do(t, e, aggregator.KindBreakdown, query(t, aggregator.KindBreakdown, site, base+"&metrics=visitors&limit=1000"))
				keys := map[any]bool{}
				for _, row := range r.Results.([]any) {
					m := row.(map[string]any)
					if v := m["visitors"].(float64); v < k {
						t.Errorf("%s: row %v has %v visitors < k", base, m, v)
					}
					for key, v := range m {
						if key != "visitors" {
							keys[v] = true
						}
					}
				}
				if n := *r.Meta.FoldedRows; n > 0 {
					if *r.Meta.OtherShown {
						foldedShown++
						if !keys[aggregator.Other] {
							t.Errorf("%s: other_shown but no (other) row", base)
						}
					} else {
						foldedHidden++
						if keys[aggregator.Other] {
							t.Errorf("%s: (other) shown under k", base)
						}
					}
				}
				// Without visitors among the metrics the same rows come back.
				r2 := do(t, e, aggregator.KindBreakdown, query(t, aggregator.KindBreakdown, site, base+"&metrics=events&limit=1000"))
				for _, row := range r2.Results.([]any) {
					for key, v := range row.(map[string]any) {
						if key != "events" && !keys[v] {
							t.Errorf("%s: row %v not among the rows with k visitors", base, row)
						}
					}
				}
			}
			if f == "" {
				continue
			}
			agg := do(t, e, aggregator.KindAggregate, query(t, aggregator.KindAggregate, site, "period=30d&date=2025-03-30&metrics=visitors,bounce_rate"+fp))
			res := agg.Results.(map[string]any)
			// 0 is shown: k-anonymity hides groups of 1 to k-1 people.
			if v, ok := res["visitors"].(map[string]any)["value"].(float64); ok && v > 0 && v < k {
				t.Errorf("aggregate %s: %v visitors < k shown", f, v)
			} else if !ok && res["bounce_rate"].(map[string]any)["value"] != nil {
				t.Errorf("aggregate %s: bounce_rate shown while visitors withheld", f)
			}
			ts := do(t, e, aggregator.KindTimeseries, query(t, aggregator.KindTimeseries, site, "period=7d&date=2025-03-30&metrics=visitors,pageviews"+fp))
			for _, pt := range ts.Results.([]any) {
				m := pt.(map[string]any)
				if v, ok := m["visitors"].(float64); ok && v > 0 && v < k {
					t.Errorf("timeseries %s: point %v under k", f, m)
				} else if !ok && (m["pageviews"] != nil || m["withheld"] == nil) {
					t.Errorf("timeseries %s: withheld point %v leaks or lacks a reason", f, m)
				}
			}
		}
		if foldedShown == 0 || foldedHidden == 0 {
			t.Errorf("want both a shown and a withheld (other) among the cases; got %d shown, %d withheld", foldedShown, foldedHidden)
		}
		// Unfiltered site totals are always shown, even under k.
		tiny := testSites(t, "Europe/Berlin", 100000).Site(testSite)
		agg := do(t, e, aggregator.KindAggregate, query(t, aggregator.KindAggregate, tiny, "period=day&date=2025-03-30&metrics=visitors"))
		if agg.Results.(map[string]any)["visitors"].(map[string]any)["value"] == nil {
			t.Errorf("unfiltered total withheld")
		}
	})

	t.Run("sampling", func(t *testing.T) {
		se := aggregator.New(aggregator.Options{Conn: db.Conn, SampleThreshold: 1000})
		q := query(t, aggregator.KindAggregate, berlin, "period=30d&date=2025-03-30&metrics=visitors,pageviews&filters=visit:country==DE|US")
		r := do(t, se, aggregator.KindAggregate, q)
		exact := do(t, e, aggregator.KindAggregate, q)
		if r.Meta.SampleFactor <= 1 {
			t.Fatalf("sample_factor %v, want > 1", r.Meta.SampleFactor)
		}
		got := r.Results.(map[string]any)["pageviews"].(map[string]any)["value"].(float64)
		want := exact.Results.(map[string]any)["pageviews"].(map[string]any)["value"].(float64)
		if math.Abs(got-want)/want > 0.5 {
			t.Errorf("sampled pageviews %v far from exact %v", got, want)
		}
	})
}

// Sessions written before 0004_session_rollups.sql reach its rollup through
// the migration's backfill, later ones through its view: both together
// answer what the raw tables do.
func TestSessionRollupBackfill(t *testing.T) {
	db := chtest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	before := fstest.MapFS{}
	all := migrations.Files()
	ms, err := migrations.Load(all)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		if m.Version < 4 {
			b, err := fs.ReadFile(all, m.Name+".sql")
			if err != nil {
				t.Fatal(err)
			}
			before[m.Name+".sql"] = &fstest.MapFile{Data: b}
		}
	}
	// before: the schema has no sessions_dims_input yet (0008), whose rows
	// the writer retries until Close's deadline and then loses; everything
	// else must be stored. The sessions are written once, by Close's drain,
	// before the rows for sessions_dims_input that it cannot store.
	write := func(seedN uint64, before bool) {
		t.Helper()
		m := metrics.NewSet()
		o := sink.Options{Conn: db.Conn, BatchSize: 5000, Interval: 50 * time.Millisecond, Metrics: m}
		cctx := ctx
		if before {
			o.SessionInterval, o.MaxBackoff = time.Hour, 100*time.Millisecond
			var cancel context.CancelFunc
			cctx, cancel = context.WithTimeout(ctx, 3*time.Second)
			defer cancel()
		}
		w := sink.New(o)
		if _, err := seed.Generate(ctx, w, seed.Options{Site: testSite, Events: 8000, Days: 10, End: seedEnd, Seed: seedN, Visitors: 1000}); err != nil {
			t.Fatal(err)
		}
		lost, err := w.Close(cctx)
		if before {
			dims := int64(m.GetOrCreateCounter(`glimpse_rows_lost_total{table="sessions_dims_input"}`).Get())
			if dims == 0 || err == nil {
				t.Fatalf("without sessions_dims_input: %d of its rows lost, Close: %v; want some lost at the deadline", dims, err)
			}
			lost, err = lost-dims, nil
		}
		if err != nil || lost != 0 {
			t.Fatalf("seed: lost %d rows: %v", lost, err)
		}
	}
	target := migrations.Target{Database: db.Database}
	if _, err := migrations.NewRunner(db.Conn, target, before, nil).Apply(ctx); err != nil {
		t.Fatal(err)
	}
	write(42, true)
	if _, err := migrations.NewRunner(db.Conn, target, nil, nil).Apply(ctx); err != nil {
		t.Fatal(err)
	}
	write(7, false)

	e := aggregator.New(aggregator.Options{Conn: db.Conn})
	berlin := testSites(t, "Europe/Berlin", 5).Site(testSite)
	for _, c := range []struct {
		kind   aggregator.Kind
		params string
		src    string
	}{
		{aggregator.KindBreakdown, "period=7d&date=2025-03-30&property=visit:source&metrics=visitors,visits,bounce_rate,visit_duration", "rollup"},
		{aggregator.KindBreakdown, "period=7d&date=2025-03-30&property=visit:city&metrics=visitors,pageviews&limit=5", "rollup"},
		{aggregator.KindAggregate, "period=7d&date=2025-03-30&metrics=visitors,visits,bounce_rate&filters=visit:browser==Chrome", "rollup+raw"},
	} {
		q := query(t, c.kind, berlin, c.params)
		roll := do(t, e, c.kind, q)
		q.Raw = true
		raw := do(t, e, c.kind, q)
		if roll.Meta.Source != c.src {
			t.Errorf("%s: source %q, want %s", c.params, roll.Meta.Source, c.src)
		}
		if !reflect.DeepEqual(roll.Results, raw.Results) {
			a, _ := json.Marshal(roll.Results)
			b, _ := json.Marshal(raw.Results)
			t.Errorf("%s:\nrollup: %s\nraw:    %s", c.params, a, b)
		}
	}
	// Applying again copies nothing twice.
	var n uint64
	if err := db.Conn.QueryRow(ctx, "SELECT count() FROM schema_migrations WHERE version = 4").Scan(&n); err != nil || n != 1 {
		t.Fatalf("0004 recorded %d times: %v", n, err)
	}
}
