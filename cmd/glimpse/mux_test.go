package main

import (
	"strings"
	"testing"

	"github.com/VictoriaMetrics/metrics"
	"github.com/valyala/fasthttp"

	"github.com/glimpse-analytics/glimpse/collector"
	"github.com/glimpse-analytics/glimpse/collector/session"
	"github.com/glimpse-analytics/glimpse/collector/sink"
	"github.com/glimpse-analytics/glimpse/internal/apptest"
	"github.com/glimpse-analytics/glimpse/internal/config"
)

// newTestCollector is a collector on a discarding writer, with its
// metrics in set.
func newTestCollector(t testing.TB, set *metrics.Set) (*collector.Server, *sink.Writer) {
	t.Helper()
	sites, err := config.Parse("t.yaml", []byte(apptest.SitesYAML))
	if err != nil {
		t.Fatal(err)
	}
	w := sink.New(sink.Options{Discard: true, QueueSize: 100000})
	t.Cleanup(func() { _, _ = w.Close(t.Context()) })
	sessions := session.NewCache(session.CacheConfig{})
	w.WriteSessions(sessions)
	srv, err := collector.New(collector.Options{Sites: sites, Writer: w, Sessions: sessions, Metrics: set, RateLimit: -1})
	if err != nil {
		t.Fatal(err)
	}
	return srv, w
}

func TestPrefixRoutes(t *testing.T) {
	set := metrics.NewSet()
	srv, w := newTestCollector(t, set)
	answer := func(s string) fasthttp.RequestHandler {
		return func(ctx *fasthttp.RequestCtx) { ctx.SetBodyString(s) }
	}
	m := newMux(srv.NotFound)
	m.handle(map[string]fasthttp.RequestHandler{"/healthz": collector.NewHealth(nil, w).Healthz})
	m.handle(srv.Routes())
	m.handle(map[string]fasthttp.RequestHandler{"/e/c/exact": answer("exact")})
	m.handlePrefixes(map[string]fasthttp.RequestHandler{"/e/": answer("e"), "/e/c/": answer("c"), "/h": answer("hijack")})
	for path, want := range map[string]string{
		"/e/c/tok":   "c",
		"/e/c/":      "c",
		"/e/o/x.gif": "e",
		"/e/c/exact": "exact",
		"/e":         "not found",
		"/x/e/c/":    "not found",
		"/healthz":   "ok",
	} {
		var ctx fasthttp.RequestCtx
		ctx.Request.SetRequestURI(path)
		m.serve(&ctx)
		if got := string(ctx.Response.Body()); got != want && !(want == "ok" && got != "hijack") {
			t.Errorf("%s: got %q, want %q", path, got, want)
		}
	}
	if got := apptest.SetMetric(t, set, `glimpse_requests_rejected_total{reason="not_found"}`); got != 2 {
		t.Errorf("not_found counted %v times, want 2", got)
	}
	// A component cannot take the process's endpoint.
	defer func() {
		if r := recover(); r == nil || !strings.Contains(r.(string), "/healthz") {
			t.Errorf("routing /healthz twice: recovered %v, want a panic naming it", r)
		}
	}()
	m.handle(map[string]fasthttp.RequestHandler{"/healthz": answer("hijack")})
}
