// Command glimpse-statsbench times the Stats API on seeded data: it seeds
// one site (glimpse seed's generator, through the collector's writer) into
// its own database, then calls each endpoint in-process through the API's
// handlers, interleaved over rounds, and prints p50/p95 per call and its
// ratio to a trivial query (SELECT 1) timed in the same rounds, each call
// against exact and against noisy aggregates (disclosure control), and
// as Plausible's v2 asks the same question (v2/v1).
package main

import (
	"context"
	"flag"
	"fmt"
	"net/url"
	"os"
	"sort"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/valyala/fasthttp"

	"github.com/glimpse-analytics/glimpse/aggregator"
	"github.com/glimpse-analytics/glimpse/aggregator/api"
	"github.com/glimpse-analytics/glimpse/collector/sink"
	"github.com/glimpse-analytics/glimpse/internal/chconn"
	"github.com/glimpse-analytics/glimpse/internal/config"
	"github.com/glimpse-analytics/glimpse/internal/storage/seed"
	"github.com/glimpse-analytics/glimpse/migrations"
)

func main() {
	dsn := flag.String("clickhouse", "clickhouse://127.0.0.1:9000/glimpse_statsbench", "database to (re)create and seed")
	events := flag.Int("events", 10_000_000, "events to seed")
	days := flag.Int("days", 30, "days the events span")
	runs := flag.Int("runs", 20, "rounds of calls")
	reuse := flag.Bool("reuse", false, "keep the database if it already holds the seeded events")
	flag.Parse()
	if err := run(*dsn, *events, *days, *runs, *reuse); err != nil {
		fmt.Fprintln(os.Stderr, "glimpse-statsbench:", err)
		os.Exit(1)
	}
}

func run(dsn string, events, days, runs int, reuse bool) error {
	ctx := context.Background()
	conn, err := chconn.Open(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close()
	opts, _ := chconn.ParseDSN(dsn)
	db := opts.Auth.Database
	end := time.Now().UTC().Truncate(24 * time.Hour)
	var have uint64
	_ = conn.QueryRow(ctx, "SELECT count() FROM "+db+".events").Scan(&have)
	if !reuse || have != uint64(events) {
		if err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+db); err != nil {
			return err
		}
		if err := conn.Exec(ctx, "CREATE DATABASE "+db); err != nil {
			return err
		}
		if _, err := migrations.NewRunner(conn, migrations.Target{Database: db}, nil, nil).Apply(ctx); err != nil {
			return err
		}
		began := time.Now()
		st, err := seed.Write(ctx, sink.New(sink.Options{Conn: conn, BatchSize: 100000, QueueSize: 400000, SessionInterval: seed.SessionInterval}),
			seed.Options{Site: "example.com", Events: events, Days: days, End: end, Seed: 1})
		if err != nil {
			return err
		}
		fmt.Printf("seeded %d events, %d sessions, %d visitors over %d days in %s\n",
			st.Events, st.Sessions, st.Visitors, days, time.Since(began).Round(time.Second))
		_ = conn.Exec(ctx, "OPTIMIZE TABLE "+db+".sessions FINAL")
	}
	// Each call runs twice per round: against the site with exact
	// aggregates and against the same data with noisy ones (disclosure
	// control), so their ratio is measured in the same rounds.
	exact, err := newAPI(conn, config.AggregatesExact)
	if err != nil {
		return err
	}
	noisy, err := newAPI(conn, config.AggregatesNoisy)
	if err != nil {
		return err
	}
	date := end.AddDate(0, 0, -1).Format("2006-01-02")
	// Each call also as Plausible's v2 asks it (the same question over
	// the same 30 days), timed beside v1: v2 runs on the same engine.
	from, last := end.AddDate(0, 0, -30).Format("2006-01-02"), date
	rng := `"site_id":"example.com","date_range":["` + from + `","` + last + `"]`
	calls := []struct {
		name string
		path string
		kv   []string
		v2   string
	}{
		{"aggregate 30d (rollup)", api.PathAggregate, []string{"metrics", "visitors,visits,pageviews,bounce_rate,visit_duration"},
			`{` + rng + `,"metrics":["visitors","visits","pageviews","bounce_rate","visit_duration"]}`},
		{"timeseries 30d (rollup)", api.PathTimeseries, []string{"metrics", "visitors,pageviews,visits"},
			`{` + rng + `,"metrics":["visitors","pageviews","visits"],"dimensions":["time:day"]}`},
		{"top pages (rollup)", api.PathBreakdown, []string{"property", "event:page", "metrics", "visitors,pageviews", "limit", "10"},
			`{` + rng + `,"metrics":["visitors","pageviews"],"dimensions":["event:page"],"pagination":{"limit":10}}`},
		{"sources (sessions_dims_hourly)", api.PathBreakdown, []string{"property", "visit:source", "metrics", "visitors,visits,bounce_rate", "limit", "10"},
			`{` + rng + `,"metrics":["visitors","visits","bounce_rate"],"dimensions":["visit:source"],"pagination":{"limit":10}}`},
		{"countries (sessions_dims_hourly)", api.PathBreakdown, []string{"property", "visit:country", "metrics", "visitors", "limit", "10"},
			`{` + rng + `,"metrics":["visitors"],"dimensions":["visit:country"],"pagination":{"limit":10}}`},
		{"filtered breakdown (raw)", api.PathBreakdown, []string{"property", "event:page", "metrics", "visitors,pageviews", "limit", "10",
			"filters", "visit:country==DE;visit:source==Google"},
			`{` + rng + `,"metrics":["visitors","pageviews"],"dimensions":["event:page"],"pagination":{"limit":10},"filters":[["is","visit:country",["DE"]],["is","visit:source",["Google"]]]}`},
		{"sources by device (raw sessions)", api.PathBreakdown, []string{"property", "visit:source", "metrics", "visitors,pageviews", "limit", "10",
			"filters", "visit:device==Mobile"},
			`{` + rng + `,"metrics":["visitors","pageviews"],"dimensions":["visit:source"],"pagination":{"limit":10},"filters":[["is","visit:device",["Mobile"]]]}`},
		{"filtered aggregate (rollup+raw)", api.PathAggregate, []string{"metrics", "visitors,pageviews,bounce_rate", "filters", "visit:device==Mobile"},
			`{` + rng + `,"metrics":["visitors","pageviews","bounce_rate"],"filters":[["is","visit:device",["Mobile"]]]}`},
	}
	// v2 only: several dimensions, a filter tree.
	v2only := []struct{ name, body string }{
		{"v2 source x country (raw)", `{` + rng + `,"metrics":["visitors","pageviews"],"dimensions":["visit:source","visit:country"],"pagination":{"limit":10}}`},
		{"v2 day x page, or-tree (raw)", `{` + rng + `,"metrics":["visitors"],"dimensions":["time:day","event:page"],"pagination":{"limit":50},` +
			`"filters":[["or",[["contains","event:page",["blog"],{"case_sensitive":false}],["is","visit:country",["DE"]]]]]}`},
	}
	baseline := func() error { return conn.Exec(ctx, "SELECT 1") }
	var fns []func() error
	for _, c := range calls {
		fns = append(fns, exact.call(date, c.path, c.kv...), noisy.call(date, c.path, c.kv...), exact.post(c.v2))
	}
	v2failed := make([]error, len(v2only))
	for i, c := range v2only {
		post := exact.post(c.body)
		fns = append(fns, func() error {
			// A v2-only shape that times out is reported, not fatal:
			// the calls beside it are still measured.
			if err := post(); err != nil && v2failed[i] == nil {
				v2failed[i] = err
			}
			return nil
		})
	}
	fns = append(fns, baseline)
	times := make([][]time.Duration, len(fns))
	for r := 0; r < runs+1; r++ {
		for i, fn := range fns {
			t0 := time.Now()
			if err := fn(); err != nil {
				return err
			}
			if r > 0 { // round 0 warms caches
				times[i] = append(times[i], time.Since(t0))
			}
		}
	}
	pct := func(d []time.Duration, p float64) time.Duration {
		s := append([]time.Duration(nil), d...)
		sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
		return s[min(len(s)-1, int(float64(len(s))*p))]
	}
	ms := func(d time.Duration) time.Duration { return d.Round(100 * time.Microsecond) }
	base := pct(times[len(fns)-1], 0.5)
	fmt.Printf("baseline SELECT 1: p50 %s over %d runs\n", ms(base), runs)
	fmt.Printf("%-34s %9s %9s %9s %9s %9s %12s %9s %9s %7s\n", "call", "p50", "p95", "p50/base", "noisy p50", "noisy p95", "noisy/exact",
		"v2 p50", "v2 p95", "v2/v1")
	for i, c := range calls {
		e50, n50, v50 := pct(times[3*i], 0.5), pct(times[3*i+1], 0.5), pct(times[3*i+2], 0.5)
		fmt.Printf("%-34s %9s %9s %8.1fx %9s %9s %11.2fx %9s %9s %6.2fx\n", c.name, ms(e50), ms(pct(times[3*i], 0.95)),
			float64(e50)/float64(base), ms(n50), ms(pct(times[3*i+1], 0.95)), float64(n50)/float64(e50),
			ms(v50), ms(pct(times[3*i+2], 0.95)), float64(v50)/float64(e50))
	}
	for i, c := range v2only {
		t := times[3*len(calls)+i]
		fmt.Printf("%-34s %9s %9s %8.1fx\n", c.name, ms(pct(t, 0.5)), ms(pct(t, 0.95)), float64(pct(t, 0.5))/float64(base))
		if v2failed[i] != nil {
			fmt.Printf("  (failed at least once: %v)\n", v2failed[i])
		}
	}
	return nil
}

// statsAPI is the Stats API over the seeded site, its aggregates as asked.
type statsAPI struct {
	routes map[string]fasthttp.RequestHandler
}

func newAPI(conn driver.Conn, aggregates string) (*statsAPI, error) {
	sites, err := config.Parse("bench.yaml", []byte(`sites:
  - domain: example.com
    timezone: Europe/Berlin
    privacy: {aggregates: `+aggregates+`, noise_key: "statsbench-noise-key-0123456789abcdef"}
api_keys:
  - name: bench
    sha256: "`+"0f4642e75fcac5f414875163594e3e406cb504b3ad43701bfb107b8559efa727"+`"
    sites: [example.com]
`))
	if err != nil {
		return nil, err
	}
	a, err := api.New(api.Options{Engine: aggregator.New(aggregator.Options{Conn: conn}), Sites: sites, RateLimit: 1 << 30})
	if err != nil {
		return nil, err
	}
	return &statsAPI{a.Routes()}, nil
}

// call returns one request to path for the 30 days before date.
func (a *statsAPI) call(date, path string, kv ...string) func() error {
	v := url.Values{"site_id": {"example.com"}, "period": {"30d"}, "date": {date}}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Set(kv[i], kv[i+1])
	}
	uri := path + "?" + v.Encode()
	return func() error {
		var rc fasthttp.RequestCtx
		rc.Request.SetRequestURI(uri)
		rc.Request.Header.Set("Authorization", "Bearer "+benchKey)
		a.routes[path](&rc)
		if rc.Response.StatusCode() != 200 {
			return fmt.Errorf("%s: %d %s", uri, rc.Response.StatusCode(), rc.Response.Body())
		}
		return nil
	}
}

// post returns one v2 query.
func (a *statsAPI) post(body string) func() error {
	return func() error {
		var rc fasthttp.RequestCtx
		rc.Request.SetRequestURI(api.PathQuery)
		rc.Request.Header.SetMethod("POST")
		rc.Request.SetBodyString(body)
		rc.Request.Header.Set("Authorization", "Bearer "+benchKey)
		a.routes[api.PathQuery](&rc)
		if rc.Response.StatusCode() != 200 {
			return fmt.Errorf("v2 %s: %d %s", body, rc.Response.StatusCode(), rc.Response.Body())
		}
		return nil
	}
}

// benchKey is the bench's API key; its SHA-256 is in the config above.
const benchKey = "glimpse-bench-key"
