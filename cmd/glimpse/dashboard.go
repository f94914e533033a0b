package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/glimpse-analytics/glimpse/aggregator/api"
	"github.com/glimpse-analytics/glimpse/collector"
	"github.com/glimpse-analytics/glimpse/dashboards"
	"github.com/glimpse-analytics/glimpse/internal/config"
)

// serveDashboard builds the dashboard and serves it: on its own listener
// when addr is set, otherwise on the main listener's mux m. The returned stop closes
// its own listener (a no-op otherwise).
func serveDashboard(sites *config.File, stats *api.API, m *mux, addr, mainAddr string, stdout io.Writer, log *slog.Logger) (stop func(context.Context), err error) {
	d, err := dashboards.New(dashboards.Options{Sites: sites, Stats: stats, Log: log.With("component", "dashboard")})
	if err != nil {
		return nil, err
	}
	if addr == "" {
		m.handle(d.Routes())
		fmt.Fprintf(stdout, "dashboard on http://%s%s\n", mainAddr, dashboards.PathHome)
		return func(context.Context) {}, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("cannot listen on %s (set --dashboard-listen): %w", addr, err)
	}
	hs := &fasthttp.Server{
		Handler: d.Handler, Logger: collector.HTTPLogger{Log: log}, Name: "glimpse",
		ReadTimeout: 10 * time.Second, WriteTimeout: time.Minute, IdleTimeout: 60 * time.Second,
		MaxRequestBodySize: 16 << 10, NoDefaultDate: true, DisablePreParseMultipartForm: true,
	}
	go func() {
		if err := hs.Serve(ln); err != nil {
			log.Error("dashboard listener failed", "err", err)
		}
	}()
	fmt.Fprintf(stdout, "dashboard on http://%s%s\n", ln.Addr(), dashboards.PathHome)
	return func(ctx context.Context) {
		if err := hs.ShutdownWithContext(ctx); err != nil {
			log.Warn("dashboard listener did not stop cleanly", "err", err)
		}
	}, nil
}
