package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/glimpse-analytics/glimpse/collector"
	"github.com/glimpse-analytics/glimpse/collector/config"
	"github.com/glimpse-analytics/glimpse/migrations"
)

func serveCommand() *command {
	var noMigrate bool
	return &command{
		name:  "serve",
		usage: "run the collector: ingest endpoints, health and readiness",
		flags: func(fs *flag.FlagSet) {
			fs.BoolVar(&noMigrate, "no-migrate", false, "do not apply pending migrations at start-up")
		},
		run: func(ctx context.Context, o *Options, _ *flag.FlagSet, _ []string, stdout io.Writer, log *slog.Logger) error {
			sites, err := config.Load(o.Config)
			if err != nil {
				return err
			}
			conn, err := migrations.Open(ctx, o.ClickHouse)
			if err != nil {
				return err
			}
			defer conn.Close()
			if !noMigrate {
				dsn, _ := migrations.ParseDSN(o.ClickHouse)
				if _, err := migrations.NewRunner(conn, migrations.Target{Database: dsn.Auth.Database}, nil, log).Apply(ctx); err != nil {
					return err
				}
			}
			srv := collector.New(collector.Options{Sites: sites, Conn: conn, Log: log})
			ln, err := net.Listen("tcp", o.Listen)
			if err != nil {
				return fmt.Errorf("cannot listen on %s (set --listen): %w", o.Listen, err)
			}
			hs := &fasthttp.Server{
				Handler:                      srv.Handler,
				Name:                         "glimpse",
				ReadTimeout:                  10 * time.Second,
				WriteTimeout:                 10 * time.Second,
				IdleTimeout:                  60 * time.Second,
				MaxRequestBodySize:           64 << 10,
				NoDefaultDate:                true,
				NoDefaultContentType:         true,
				DisablePreParseMultipartForm: true,
			}
			errc := make(chan error, 1)
			go func() { errc <- hs.Serve(ln) }()
			log.Info("serving", "listen", ln.Addr().String(), "sites", len(sites.Sites))
			fmt.Fprintf(stdout, "glimpse is serving on http://%s\n", ln.Addr())
			select {
			case err := <-errc:
				return fmt.Errorf("listener failed: %w", err)
			case <-ctx.Done():
			}
			log.Info("stopping: closing the listener")
			sctx, cancel := context.WithTimeout(context.Background(), o.ShutdownWait)
			defer cancel()
			if err := hs.ShutdownWithContext(sctx); err != nil {
				log.Warn("listener did not stop cleanly", "err", err)
			}
			log.Info("stopped")
			return nil
		},
	}
}
