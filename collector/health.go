package collector

import (
	"context"
	"errors"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/valyala/fasthttp"

	"github.com/glimpse-analytics/glimpse/migrations"
)

// readiness answers /readyz: ClickHouse reachable and the schema current.
type readiness struct {
	conn    driver.Conn
	timeout time.Duration
}

var errSchemaBehind = errors.New("schema not current: run glimpse migrate")

func (r readiness) check(ctx context.Context) error {
	if r.conn == nil {
		return errors.New("no ClickHouse connection")
	}
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	if err := r.conn.Ping(ctx); err != nil {
		return errors.New("ClickHouse unreachable")
	}
	ok, err := migrations.Current(ctx, r.conn)
	if err != nil {
		return errors.New("cannot read the schema version")
	}
	if !ok {
		return errSchemaBehind
	}
	return nil
}

func (s *Server) serveHealthz(ctx *fasthttp.RequestCtx) {
	ctx.SetContentType("text/plain; charset=utf-8")
	ctx.SetBodyString("ok\n")
}

func (s *Server) serveReadyz(ctx *fasthttp.RequestCtx) {
	ctx.SetContentType("text/plain; charset=utf-8")
	ctx.Response.Header.Set("Cache-Control", "no-store")
	// Degraded (the spool is full, or inserts fail and events wait in the
	// spool) still answers 200: ingest works, and the body says why.
	degraded := s.writer.Degraded()
	if err := s.ready.check(ctx); err != nil {
		ctx.SetStatusCode(fasthttp.StatusServiceUnavailable)
		ctx.SetBodyString("not ready: " + err.Error() + "\n")
		if degraded != "" {
			ctx.Response.AppendBodyString("degraded: " + degraded + "\n")
		}
		return
	}
	if degraded != "" {
		ctx.SetBodyString("degraded: " + degraded + "\n")
		return
	}
	ctx.SetBodyString("ready\n")
}
