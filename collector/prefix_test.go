package collector_test

import (
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/glimpse-analytics/glimpse/collector"
	"github.com/glimpse-analytics/glimpse/collector/session"
	"github.com/glimpse-analytics/glimpse/collector/sink"
	"github.com/glimpse-analytics/glimpse/internal/apptest"
	"github.com/glimpse-analytics/glimpse/internal/config"
)

func TestPrefixRoutes(t *testing.T) {
	sites, err := config.Parse("t.yaml", []byte(apptest.SitesYAML))
	if err != nil {
		t.Fatal(err)
	}
	w := sink.New(sink.Options{Discard: true})
	t.Cleanup(func() { _, _ = w.Close(t.Context()) })
	answer := func(s string) fasthttp.RequestHandler {
		return func(ctx *fasthttp.RequestCtx) { ctx.SetBodyString(s) }
	}
	srv, err := collector.New(collector.Options{Sites: sites, Writer: w, Sessions: session.NewCache(session.CacheConfig{}),
		Routes:   map[string]fasthttp.RequestHandler{"/e/c/exact": answer("exact"), "/healthz": answer("hijack")},
		Prefixes: map[string]fasthttp.RequestHandler{"/e/": answer("e"), "/e/c/": answer("c"), "/h": answer("hijack")},
	})
	if err != nil {
		t.Fatal(err)
	}
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
		srv.Handler(&ctx)
		if got := string(ctx.Response.Body()); got != want && !(want == "ok" && got != "hijack") {
			t.Errorf("%s: got %q, want %q", path, got, want)
		}
	}
}
