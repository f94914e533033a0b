// Command glimpse-statsbench times the Stats API on seeded data: it seeds
// one site (glimpse seed's generator, through the collector's writer) into
// its own database, then calls each endpoint in-process through the API's
// handlers, interleaved over rounds, and prints p50/p95 per call and its
// ratio to a trivial query (SELECT 1) timed in the same rounds.
package main

import (
	"context"
	"flag"
	"fmt"
	"net/url"
	"os"
	"sort"
	"time"

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
	sites, err := config.Parse("bench.yaml", []byte(`sites:
  - domain: example.com
    timezone: Europe/Berlin
api_keys:
  - name: bench
    sha256: "`+"0f4642e75fcac5f414875163594e3e406cb504b3ad43701bfb107b8559efa727"+`"
    sites: [example.com]
`))
	if err != nil {
		return err
	}
	a, err := api.New(api.Options{Engine: aggregator.New(aggregator.Options{Conn: conn}), Sites: sites, RateLimit: 1 << 30})
	if err != nil {
		return err
	}
	routes := a.Routes()
	date := end.AddDate(0, 0, -1).Format("2006-01-02")
	call := func(path string, kv ...string) func() error {
		v := url.Values{"site_id": {"example.com"}, "period": {"30d"}, "date": {date}}
		for i := 0; i+1 < len(kv); i += 2 {
			v.Set(kv[i], kv[i+1])
		}
		uri := path + "?" + v.Encode()
		return func() error {
			var rc fasthttp.RequestCtx
			rc.Request.SetRequestURI(uri)
			rc.Request.Header.Set("Authorization", "Bearer "+benchKey)
			routes[path](&rc)
			if rc.Response.StatusCode() != 200 {
				return fmt.Errorf("%s: %d %s", uri, rc.Response.StatusCode(), rc.Response.Body())
			}
			return nil
		}
	}
	calls := []struct {
		name string
		fn   func() error
	}{
		{"baseline SELECT 1", func() error { return conn.Exec(ctx, "SELECT 1") }},
		{"aggregate 30d (rollup)", call(api.PathAggregate, "metrics", "visitors,visits,pageviews,bounce_rate,visit_duration")},
		{"timeseries 30d (rollup)", call(api.PathTimeseries, "metrics", "visitors,pageviews,visits")},
		{"top pages (rollup)", call(api.PathBreakdown, "property", "event:page", "metrics", "visitors,pageviews", "limit", "10")},
		{"sources (sessions_dims_hourly)", call(api.PathBreakdown, "property", "visit:source", "metrics", "visitors,visits,bounce_rate", "limit", "10")},
		{"countries (sessions_dims_hourly)", call(api.PathBreakdown, "property", "visit:country", "metrics", "visitors", "limit", "10")},
		{"filtered breakdown (raw)", call(api.PathBreakdown, "property", "event:page", "metrics", "visitors,pageviews", "limit", "10",
			"filters", "visit:country==DE;visit:source==Google")},
		{"filtered aggregate (rollup+raw)", call(api.PathAggregate, "metrics", "visitors,pageviews,bounce_rate", "filters", "visit:device==Mobile")},
	}
	times := make([][]time.Duration, len(calls))
	for r := 0; r < runs+1; r++ {
		for i, c := range calls {
			t0 := time.Now()
			if err := c.fn(); err != nil {
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
	base := pct(times[0], 0.5)
	fmt.Printf("%-28s %10s %10s %12s\n", "call ("+fmt.Sprint(runs)+" runs)", "p50", "p95", "p50/baseline")
	for i, c := range calls {
		p50 := pct(times[i], 0.5)
		fmt.Printf("%-28s %10s %10s %11.1fx\n", c.name, p50.Round(100*time.Microsecond), pct(times[i], 0.95).Round(100*time.Microsecond),
			float64(p50)/float64(base))
	}
	return nil
}

// benchKey is the bench's API key; its SHA-256 is in the config above.
const benchKey = "glimpse-bench-key"
