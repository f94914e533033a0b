// Package collector is Glimpse's ingest side: the fasthttp handlers that
// take page views, events and email hits, the privacy gate, enrichment, and
// the hand-off to the batch writer.
package collector

import (
	"log/slog"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/valyala/fasthttp"

	"github.com/glimpse-analytics/glimpse/collector/config"
)

// Options configure a Server.
type Options struct {
	Sites *config.File
	Conn  driver.Conn
	Log   *slog.Logger
}

// Server routes the collector's HTTP endpoints.
type Server struct {
	sites *config.File
	log   *slog.Logger
	ready readiness
}

// New returns a Server.
func New(o Options) *Server {
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Server{
		sites: o.Sites,
		log:   log.With("component", "collector"),
		ready: readiness{conn: o.Conn, timeout: 2 * time.Second},
	}
}

// Handler is the fasthttp request handler.
func (s *Server) Handler(ctx *fasthttp.RequestCtx) {
	switch string(ctx.Path()) {
	case "/healthz":
		s.serveHealthz(ctx)
	case "/readyz":
		s.serveReadyz(ctx)
	default:
		ctx.Error("not found", fasthttp.StatusNotFound)
	}
}
