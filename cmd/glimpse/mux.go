package main

import (
	"cmp"
	"slices"

	"github.com/VictoriaMetrics/metrics"
	"github.com/valyala/fasthttp"
)

// mux routes the main listener's requests to the components' handlers:
// the handler of the exact path first, then that of the longest prefix of
// the path, else notFound. Routes are added before serving and never
// after, so lookups take no lock; a lookup allocates nothing (indexing
// the map and comparing strings do not copy the path).
type mux struct {
	exact    map[string]fasthttp.RequestHandler
	prefixes []prefixRoute // longest first
	notFound fasthttp.RequestHandler
}

type prefixRoute struct {
	prefix string
	h      fasthttp.RequestHandler
}

func newMux(notFound fasthttp.RequestHandler) *mux {
	return &mux{exact: map[string]fasthttp.RequestHandler{}, notFound: notFound}
}

// handle routes each exact path to its handler. A path routed twice is a
// wiring mistake and panics: no component may take another's endpoint,
// nor the process's /healthz.
func (m *mux) handle(routes map[string]fasthttp.RequestHandler) {
	for p, h := range routes {
		if _, dup := m.exact[p]; dup {
			panic("glimpse: " + p + " is routed twice")
		}
		m.exact[p] = h
	}
}

// handlePrefixes routes the paths under each prefix (paths with a
// parameter, like /e/c/{token}) to its handler.
func (m *mux) handlePrefixes(prefixes map[string]fasthttp.RequestHandler) {
	for p, h := range prefixes {
		if slices.ContainsFunc(m.prefixes, func(r prefixRoute) bool { return r.prefix == p }) {
			panic("glimpse: prefix " + p + " is routed twice")
		}
		m.prefixes = append(m.prefixes, prefixRoute{p, h})
	}
	slices.SortFunc(m.prefixes, func(a, b prefixRoute) int {
		return cmp.Or(cmp.Compare(len(b.prefix), len(a.prefix)), cmp.Compare(a.prefix, b.prefix))
	})
}

// serve is the fasthttp handler.
func (m *mux) serve(ctx *fasthttp.RequestCtx) {
	path := ctx.Path()
	if h, ok := m.exact[string(path)]; ok {
		h(ctx)
		return
	}
	for _, r := range m.prefixes {
		if len(path) >= len(r.prefix) && string(path[:len(r.prefix)]) == r.prefix {
			r.h(ctx)
			return
		}
	}
	m.notFound(ctx)
}

// metricsHandler answers GET /metrics with every metric of set, in
// Prometheus' text format.
func metricsHandler(set *metrics.Set) fasthttp.RequestHandler {
	return func(ctx *fasthttp.RequestCtx) {
		ctx.SetContentType("text/plain; version=0.0.4; charset=utf-8")
		set.WritePrometheus(ctx)
	}
}
