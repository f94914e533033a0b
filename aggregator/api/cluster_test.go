package api_test

// The Stats API on a cluster (issue 25): the oracle's traffic is sent
// once, to a single server, and its stored rows are copied into a
// database migrated for the test cluster (glimpse migrate --cluster),
// through its Distributed tables so that the cluster's own materialized
// views build its rollups. Then every request the oracles ask (v1 over
// the API, the dashboard's JSON and its CSV; v2), funnels, realtime and
// period=30m, and the same on a noisy copy of the sites, goes over real
// listeners to an engine on each, and the answers must be byte for byte
// the same.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/glimpse-analytics/glimpse/aggregator"
	"github.com/glimpse-analytics/glimpse/aggregator/api"
	"github.com/glimpse-analytics/glimpse/dashboards"
	"github.com/glimpse-analytics/glimpse/internal/apptest"
	"github.com/glimpse-analytics/glimpse/internal/chtest"
	"github.com/glimpse-analytics/glimpse/internal/config"
	"github.com/glimpse-analytics/glimpse/internal/ratelimit"
)

// clSites are the oracle's sites as the Stats API reads them, with a
// funnel each; aggregates is exact or noisy.
func clSites(t *testing.T, aggregates string) *config.File {
	t.Helper()
	privacy := "{aggregates: exact, k_anonymity: 2}"
	if aggregates == "noisy" {
		privacy = "{aggregates: noisy, k_anonymity: 2, epsilon: 1, noise_key: \"cluster-parity-noise-key-0123456789\"}"
	}
	y := "sites:\n"
	for _, s := range []struct{ domain, tz string }{{orSiteUTC, "UTC"}, {orSiteNY, "America/New_York"}} {
		y += "  - domain: " + s.domain + "\n    timezone: " + s.tz + "\n    privacy: " + privacy + "\n" +
			"    shared_links: [{name: oracle, token: " + orDashToken(s.domain) + "}]\n" +
			"    funnels:\n" +
			"      - name: Signup\n        steps: [{page: /}, {page: /pricing, name: Pricing}, {goal: Signup}]\n" +
			"      - name: Blog\n        steps: [{page: /blog/*}, {goal: Signup}]\n"
	}
	y += "api_keys:\n  - name: oracle\n    sha256: \"" + apptest.KeyHash(orKey) + "\"\n    sites: [" + orSiteUTC + ", " + orSiteNY + "]\n"
	f, err := config.Parse("cluster.yaml", []byte(y))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// clRollups are the tables materialized views fill from events and
// sessions: on the cluster its own views fill them from the copied rows.
// (sessions_dims_hourly is filled from sessions_dims_input, a Null
// table, so it is copied itself.)
var clRollups = map[string]bool{"events_hourly": true, "pages_hourly": true, "sessions_hourly": true}

// clCopy copies every stored row of db, but the rollups', into the
// cluster's database through its Distributed tables, and waits until
// every replica holds its shard's rows. It returns the rows copied.
func clCopy(t *testing.T, db *chtest.DB, cl *chtest.Cluster) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var tables []string
	if err := db.Conn.QueryRow(ctx, "SELECT arraySort(groupArray(name)) FROM system.tables WHERE database = ? AND engine NOT LIKE '%View' AND name != 'schema_migrations'",
		db.Database).Scan(&tables); err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, tb := range tables {
		if clRollups[tb] {
			continue
		}
		var n uint64
		if err := db.Conn.QueryRow(ctx, "SELECT count() FROM "+tb).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			continue
		}
		var cols []string
		if err := db.Conn.QueryRow(ctx, "SELECT groupArray(name) FROM system.columns WHERE database = ? AND table = ? AND default_kind NOT IN ('MATERIALIZED', 'ALIAS')",
			db.Database, tb).Scan(&cols); err != nil {
			t.Fatal(err)
		}
		list := strings.Join(cols, ", ")
		q := fmt.Sprintf("INSERT INTO %s.%s (%s) SELECT %s FROM remote('%s', %s, %s)", cl.Database, tb, list, list, db.Addr, db.Database, tb)
		if err := cl.Conn.Exec(chtest.SyncInsert(ctx), q); err != nil {
			t.Fatalf("%v\n%s", err, q)
		}
		total += int(n)
	}
	cl.SyncReplicas(t, cl.LocalTables(t)...)
	return total
}

// clTwin serves one Stats API (and dashboard) per database on a loopback
// listener and answers each request with the single server's answer
// after asking both and comparing the two, byte for byte.
type clTwin struct {
	t        *testing.T
	addrs    [2]string // single server, cluster
	client   [2]*fasthttp.HostClient
	mu       sync.Mutex
	requests int
	values   int
	bad      []string
}

// clServe serves a's routes, and the dashboard for every other path.
func clServe(t *testing.T, sites *config.File, a *api.API, now func() time.Time) string {
	t.Helper()
	unlimited := ratelimit.Limit{PerHour: 1 << 30, Burst: 1 << 30}
	d, err := dashboards.New(dashboards.Options{Sites: sites, Stats: a, ReaderLimit: unlimited, ClientLimit: unlimited, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	routes := a.Routes()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &fasthttp.Server{Handler: func(c *fasthttp.RequestCtx) {
		if h := routes[string(c.Path())]; h != nil {
			h(c)
			return
		}
		d.Handler(c)
	}}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Shutdown() })
	return ln.Addr().String()
}

func newTwin(t *testing.T, sites *config.File, engines [2]*aggregator.Engine, now func() time.Time) *clTwin {
	t.Helper()
	tw := &clTwin{t: t}
	for i, e := range engines {
		a, err := api.New(api.Options{Engine: e, Sites: sites, RateLimit: 1 << 30, Now: now, Log: slog.New(&clLog{t: t})})
		if err != nil {
			t.Fatal(err)
		}
		tw.addrs[i] = clServe(t, sites, a, now)
		tw.client[i] = &fasthttp.HostClient{Addr: tw.addrs[i], MaxConns: 16, ReadTimeout: time.Minute}
	}
	return tw
}

// handler asks both servers the request of c and answers it with the
// single server's answer.
func (tw *clTwin) handler(c *fasthttp.RequestCtx) {
	var res [2]fasthttp.Response
	for i := range tw.client {
		var req fasthttp.Request
		c.Request.CopyTo(&req)
		if len(req.Header.Host()) == 0 {
			req.Header.SetHost("dash.example")
		}
		if err := tw.client[i].Do(&req, &res[i]); err != nil {
			tw.t.Errorf("%s %s: %v", tw.addrs[i], c.Request.RequestURI(), err)
			return
		}
	}
	var what string
	if c.IsPost() {
		what = string(c.Request.Body())
	}
	tw.record(string(c.Request.RequestURI())+" "+what, &res[0], &res[1])
	res[0].CopyTo(&c.Response)
}

func (tw *clTwin) record(what string, single, cluster *fasthttp.Response) {
	tw.mu.Lock()
	defer tw.mu.Unlock()
	tw.requests++
	var v any
	if json.Unmarshal(single.Body(), &v) == nil {
		tw.values += clLeaves(v)
	} else {
		tw.values += bytes.Count(single.Body(), []byte(","))
	}
	if single.StatusCode() != cluster.StatusCode() || !bytes.Equal(single.Body(), cluster.Body()) {
		tw.bad = append(tw.bad, fmt.Sprintf("%s\n  single  %d %s\n  cluster %d %s", what,
			single.StatusCode(), clCut(single.Body()), cluster.StatusCode(), clCut(cluster.Body())))
	}
}

func clCut(b []byte) string {
	if len(b) > 600 {
		return string(b[:600]) + "…"
	}
	return string(b)
}

// clLeaves counts the numbers, strings, booleans and nulls in v.
func clLeaves(v any) int {
	switch x := v.(type) {
	case map[string]any:
		n := 0
		for _, y := range x {
			n += clLeaves(y)
		}
		return n
	case []any:
		n := 0
		for _, y := range x {
			n += clLeaves(y)
		}
		return n
	}
	return 1
}

// routes maps every Stats API path to the twin.
func (tw *clTwin) routes() map[string]fasthttp.RequestHandler {
	out := map[string]fasthttp.RequestHandler{}
	for _, p := range []string{api.PathRealtime, api.PathAggregate, api.PathTimeseries, api.PathBreakdown, api.PathFunnel, api.PathQuery} {
		out[p] = tw.handler
	}
	return out
}

// get asks path?params of both, with the API key.
func (tw *clTwin) get(path, params string) {
	var c fasthttp.RequestCtx
	c.Request.SetRequestURI(path + "?" + params)
	c.Request.Header.Set("Authorization", "Bearer "+orKey)
	tw.handler(&c)
}

// TestClusterParity: see the top of the file. Under make test it asks a
// part of the oracles' questions (runShort); with
// GLIMPSE_TEST_CLUSTER_FULL=1 all of them, and the dashboard's.
func TestClusterParity(t *testing.T) {
	start := time.Now()
	full := os.Getenv("GLIMPSE_TEST_CLUSTER_FULL") == "1"
	cl := chtest.MigratedCluster(t)
	t.Logf("cluster database %s migrated in %v", cl.Database, time.Since(start).Round(time.Millisecond))
	evs := orGenerate()
	sessions := orReplay(evs)
	m := &orModel{sessions: sessions}
	v2m := &v2Model{orModel: m, bySess: map[*orSession][]*orEvent{}}
	for _, e := range evs {
		switch {
		case e.email():
			m.emails = append(m.emails, e)
		case e.stored():
			m.events = append(m.events, e)
			if e.sess != nil {
				v2m.bySess[e.sess] = append(v2m.bySess[e.sess], e)
			}
		}
	}
	db := chtest.Migrated(t)
	orSend(t, db, orSites(t), evs)
	loaded := time.Now()
	rows := clCopy(t, db, cl)
	t.Logf("%d events sent, %d rows copied to the cluster in %v", len(evs), rows, time.Since(loaded).Round(time.Millisecond))

	engines := [2]*aggregator.Engine{
		aggregator.New(aggregator.Options{Conn: db.Conn}),
		aggregator.New(aggregator.Options{Conn: cl.Conn, Cluster: true}),
	}
	var clock atomic.Int64
	clock.Store(orNow.UnixNano())
	now := func() time.Time { return time.Unix(0, clock.Load()).UTC() }
	total := &clTwin{t: t}
	for _, mode := range []string{"exact", "noisy"} {
		asked := time.Now()
		sites := clSites(t, mode)
		tw := newTwin(t, sites, engines, now)
		siteList := []string{orSiteUTC, orSiteNY}
		if mode == "noisy" && !full {
			// The noise is keyed per cell, not per server: one site
			// (the zone with DST) shows it, in make test's time.
			siteList = siteList[1:]
		}
		var wg sync.WaitGroup
		for _, site := range siteList {
			loc, _ := time.LoadLocation(sites.Site(site).Timezone)
			wg.Add(2)
			go func() {
				defer wg.Done()
				c := &orChecker{t: t, routes: tw.routes()}
				if full {
					c.dash = tw.handler
					c.run(m, sites, site)
					return
				}
				c.runShort(m, site, loc)
			}()
			go func() {
				defer wg.Done()
				c := &v2Checker{orChecker: &orChecker{t: t, routes: tw.routes()}, m: v2m}
				if full {
					c.run(site, loc)
					return
				}
				c.runShort(site, loc)
			}()
		}
		wg.Wait()
		// Funnels, over periods and with filters.
		for _, site := range siteList {
			for _, f := range []string{"Signup", "Blog"} {
				for _, p := range []string{"period=7d&date=2025-03-12", "period=month&date=2025-03-12", "period=day&date=2025-03-09",
					"period=custom&date=2025-03-03,2025-03-06"} {
					for _, flt := range []string{"", "visit:country==DE", "visit:browser!=Firefox", "event:page==/blog/*"} {
						params := "site_id=" + site + "&funnel=" + f + "&" + p
						if flt != "" {
							params += "&filters=" + url.QueryEscape(flt)
						}
						tw.get(api.PathFunnel, params)
					}
				}
			}
		}
		// Realtime and period=30m at instants through the traffic (the
		// checkers above are done: the clock is this loop's).
		for i, e := range m.events {
			if i%151 != 0 {
				continue
			}
			clock.Store(e.ts.Add(time.Duration(i%5)*time.Minute + 500*time.Millisecond).UnixNano())
			tw.get(api.PathRealtime, "site_id="+e.site)
			tw.get(api.PathAggregate, "site_id="+e.site+"&period=30m&metrics=visitors,pageviews,events,visits")
			tw.get(api.PathTimeseries, "site_id="+e.site+"&period=30m&metrics=visitors,pageviews")
			tw.get(api.PathBreakdown, "site_id="+e.site+"&period=30m&property=event:page&metrics=visitors,pageviews")
			tw.get(api.PathBreakdown, "site_id="+e.site+"&period=realtime&property=visit:source&metrics=visitors")
			tw.get(api.PathAggregate, "site_id="+e.site+"&period=day&metrics=visitors,pageviews,bounce_rate,visit_duration")
		}
		clock.Store(orNow.UnixNano())
		t.Logf("%s: %d requests, %d values compared, %d differ, in %v", mode, tw.requests, tw.values, len(tw.bad), time.Since(asked).Round(time.Millisecond))
		total.requests += tw.requests
		total.values += tw.values
		total.bad = append(total.bad, tw.bad...)
	}
	t.Logf("cluster parity: %d requests, %d values compared, %d differ, in %v", total.requests, total.values, len(total.bad), time.Since(start).Round(time.Millisecond))
	for i, b := range total.bad {
		if i == 40 {
			t.Errorf("... and %d more", len(total.bad)-i)
			break
		}
		t.Error(b)
	}
}

// runShort asks a part of what run asks of one site: every filter of
// orFilters in an aggregate, time series by hour, day and week,
// breakdowns by every property unfiltered and with a goal, pages, and
// comparisons.
func (c *orChecker) runShort(m *orModel, site string, loc *time.Location) {
	q := func(p orPeriod, f string) orQuery {
		return orQuery{site: site, loc: loc, from: p.from, to: p.to, filters: orParseFilters(f)}
	}
	ps := orPeriods(loc)
	day, week, month := ps[2], ps[5], ps[7] // 2025-03-09, 7d, month
	for _, f := range orFilters {
		c.aggregate(m, q(week, f), week, f)
	}
	for _, f := range []string{"", "event:goal==Signup"} {
		c.aggregate(m, q(day, f), day, f)
		c.compareAggregate(m, q(week, f), week, f)
		c.timeseries(m, q(day, f), day, "hour", f)
		c.timeseries(m, q(week, f), week, "date", f)
	}
	c.timeseries(m, q(month, "visit:country==DE"), month, "week", "visit:country==DE")
	for _, prop := range append(orKeys(orVisitProps), orKeys(orEventProps)...) {
		c.breakdown(m, q(week, ""), week, prop, "")
		if prop != "email:campaign" && prop != "event:outbound_link" && prop != "event:download" && prop != "event:hostname" {
			c.breakdown(m, q(week, "event:goal==Signup"), week, prop, "event:goal==Signup")
		}
	}
	c.breakdown(m, q(day, "visit:country==US"), day, "visit:entry_page", "visit:country==US")
	c.breakdown(m, q(day, "event:page==/blog/*"), day, "visit:source", "event:page==/blog/*")
	for _, prop := range []string{"visit:source", "visit:entry_page", "event:page"} {
		c.pages(m, q(month, ""), month, prop, 2)
	}
	cp := orPeriod{"period=custom&date=2025-03-10,2025-03-12", orDay(loc, "2025-03-10"), orDay(loc, "2025-03-13")}
	prev := "compare=previous_period"
	c.compareTimeseries(m, q(cp, ""), cp, "date", "", prev, orDay(loc, "2025-03-07"), orDay(loc, "2025-03-10"))
	for _, prop := range []string{"visit:source", "event:page", "event:goal"} {
		c.compareBreakdown(m, q(cp, ""), cp, prop, "", prev, orDay(loc, "2025-03-07"), orDay(loc, "2025-03-10"))
	}
}

// runShort asks a part of what run asks of one site: every filter tree
// of v2TestFilters, compared aggregates, time dimensions, breakdowns by
// one to three dimensions with metrics incl. percentage and conversion
// rates, order and comparisons.
func (c *v2Checker) runShort(site string, loc *time.Location) {
	p := v2Periods(loc)[2] // 2025-03-05 to 2025-03-11
	goal := []v2F{v2Leaf("is", "event:goal", "Signup")}
	for _, fs := range v2TestFilters {
		c.aggregate(site, p, fs, "")
	}
	c.aggregate(site, p, nil, "previous_period")
	c.aggregate(site, p, goal, "year_over_year")
	for _, td := range []string{"time:day", "time:week"} {
		c.timeseries(site, p, td, nil)
		c.timeseries(site, p, td, []v2F{{op: "has_not_done", sub: goal}})
	}
	c.timeseries(site, v2Periods(loc)[0], "time:hour", []v2F{v2Leaf("matches", "event:page", "^/blog")})
	for _, fs := range [][]v2F{nil, goal, {{op: "or", sub: []v2F{v2Leaf("is", "event:page", "/pricing"), v2Leaf("is", "visit:country", "DE")}}}} {
		ms := []string{"visitors", "visits", "pageviews", "events", "bounce_rate", "visit_duration", "percentage"}
		if len(fs) == 1 && fs[0].isGoal() {
			ms = append(ms, "conversion_rate", "group_conversion_rate")
		}
		for _, prop := range []string{"visit:source", "visit:country", "visit:entry_page", "visit:exit_page", "visit:channel"} {
			c.breakdown(site, p, []string{prop}, ms, fs)
		}
		c.breakdown(site, p, []string{"event:page"}, []string{"visitors", "pageviews", "percentage"}, fs)
		c.breakdown(site, p, []string{"event:goal"}, []string{"visitors", "events", "percentage", "conversion_rate", "group_conversion_rate"}, fs)
		c.breakdown(site, p, []string{"event:props:plan"}, []string{"visitors", "events", "percentage"}, fs)
		c.breakdown(site, p, []string{"visit:source", "visit:country"}, []string{"visitors", "visits", "pageviews", "bounce_rate", "visit_duration", "percentage"}, fs)
		c.breakdown(site, p, []string{"event:goal", "visit:source"}, []string{"visitors", "events", "conversion_rate"}, fs)
		c.breakdown(site, p, []string{"time:day", "visit:country"}, []string{"visitors", "visits", "pageviews", "percentage"}, fs)
		c.breakdown(site, p, []string{"event:goal", "visit:country", "visit:source"}, []string{"visitors", "events"}, fs)
	}
	c.order(site, p, "visit:source", 2)
	c.resolved(site, p, "time:day")
	c.compared(site, p, []string{"visit:source"})
	c.compared(site, p, []string{"time:day"})
}

// clLog logs the internal errors the API answers 500 to, once each.
type clLog struct {
	t    *testing.T
	mu   sync.Mutex
	seen map[string]bool
}

func (l *clLog) Enabled(context.Context, slog.Level) bool { return true }
func (l *clLog) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *clLog) WithGroup(string) slog.Handler            { return l }
func (l *clLog) Handle(_ context.Context, r slog.Record) error {
	if r.Level < slog.LevelWarn {
		return nil
	}
	msg := r.Message
	r.Attrs(func(a slog.Attr) bool { msg += " " + a.String(); return true })
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.seen == nil {
		l.seen = map[string]bool{}
	}
	if k := clCut([]byte(msg)); !l.seen[k] {
		l.seen[k] = true
		l.t.Log(k)
	}
	return nil
}
