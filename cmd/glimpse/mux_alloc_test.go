//go:build !race

package main

import (
	"net"
	"runtime"
	"testing"

	"github.com/VictoriaMetrics/metrics"
	"github.com/valyala/fasthttp"

	"github.com/glimpse-analytics/glimpse/collector"
	"github.com/glimpse-analytics/glimpse/collector/beacon"
	"github.com/glimpse-analytics/glimpse/collector/email"
)

// TestMuxAllocs: routing an event to the collector adds no allocation to
// the ingest path (collector's TestHandlerAllocs covers the handler), on
// a mux holding routes and prefixes as serve's does.
func TestMuxAllocs(t *testing.T) {
	set := metrics.NewSet()
	srv, w := newTestCollector(t, set)
	none := func(*fasthttp.RequestCtx) {}
	m := newMux(srv.NotFound)
	health := collector.NewHealth(nil, w)
	m.handle(map[string]fasthttp.RequestHandler{"/metrics": metricsHandler(set), "/healthz": health.Healthz, "/readyz": health.Readyz})
	m.handle(srv.Routes())
	m.handle(beacon.NewScript().Routes())
	m.handle(map[string]fasthttp.RequestHandler{email.SignPath: none})
	m.handlePrefixes(map[string]fasthttp.RequestHandler{email.OpenPrefix: none, email.ClickPrefix: none, email.OptOutPrefix: none})
	var req fasthttp.Request
	req.Header.SetMethod("POST")
	req.SetRequestURI(collector.PathEvent)
	req.Header.SetContentType("text/plain")
	req.Header.SetUserAgent("Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0")
	req.SetBodyString(`{"n":"pageview","u":"https://example.com/blog/post?utm_source=news","d":"example.com","r":"https://www.google.com/","w":1280}`)
	var ctx fasthttp.RequestCtx
	ctx.Init(&req, &net.TCPAddr{IP: net.ParseIP("203.0.113.7"), Port: 40000}, nil)
	run := func() {
		ctx.Response.Reset()
		m.serve(&ctx)
		if ctx.Response.StatusCode() != fasthttp.StatusAccepted || len(ctx.Response.Header.Peek("X-Glimpse-Dropped")) > 0 {
			t.Fatalf("status %d, dropped %q, body %q", ctx.Response.StatusCode(), ctx.Response.Header.Peek("X-Glimpse-Dropped"), ctx.Response.Body())
		}
		for w.QueueDepth() > 0 { // as in TestHandlerAllocs: the writer keeps up
			runtime.Gosched()
		}
	}
	for range 2000 {
		run()
	}
	if n := testing.AllocsPerRun(500, run); n != 0 {
		t.Fatalf("routing an event allocates %v times per request", n)
	}
}
