package collector

import (
	"context"
	"errors"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/valyala/fasthttp"

	"github.com/glimpse-analytics/glimpse/collector/sink"
	"github.com/glimpse-analytics/glimpse/migrations"
)

// Health answers the process's /healthz and /readyz. Ready means that
// what ingest accepts can be stored: ClickHouse reachable, the schema
// current; the writer's degraded state is reported beside it.
type Health struct {
	conn    driver.Conn
	writer  *sink.Writer
	timeout time.Duration
}

// NewHealth returns the health checks of conn and writer. A nil conn is
// never ready.
func NewHealth(conn driver.Conn, writer *sink.Writer) *Health {
	return &Health{conn: conn, writer: writer, timeout: 2 * time.Second}
}

var errSchemaBehind = errors.New("schema not current: run glimpse migrate")

func (h *Health) check(ctx context.Context) error {
	if h.conn == nil {
		return errors.New("no ClickHouse connection")
	}
	ctx, cancel := context.WithTimeout(ctx, h.timeout)
	defer cancel()
	if err := h.conn.Ping(ctx); err != nil {
		return errors.New("ClickHouse unreachable")
	}
	ok, err := migrations.Current(ctx, h.conn)
	if err != nil {
		return errors.New("cannot read the schema version")
	}
	if !ok {
		return errSchemaBehind
	}
	return nil
}

// Healthz answers GET /healthz: 200 while the process is alive.
func (h *Health) Healthz(ctx *fasthttp.RequestCtx) {
	ctx.SetContentType("text/plain; charset=utf-8")
	ctx.SetBodyString("ok\n")
}

// Readyz answers GET /readyz: 200 when ready, 503 with the reason if not.
func (h *Health) Readyz(ctx *fasthttp.RequestCtx) {
	ctx.SetContentType("text/plain; charset=utf-8")
	ctx.Response.Header.Set("Cache-Control", "no-store")
	// Degraded (the spool is full, or inserts fail and events wait in the
	// spool) still answers 200: ingest works, and the body says why.
	degraded := h.writer.Degraded()
	if err := h.check(ctx); err != nil {
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
