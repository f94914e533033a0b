package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	_ "net/http/pprof" // profiles on --debug-listen only
	"os"
	"runtime/debug"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/VictoriaMetrics/metrics"
	"github.com/valyala/fasthttp"

	"github.com/glimpse-analytics/glimpse/aggregator"
	"github.com/glimpse-analytics/glimpse/aggregator/api"
	"github.com/glimpse-analytics/glimpse/collector"
	"github.com/glimpse-analytics/glimpse/collector/beacon"
	"github.com/glimpse-analytics/glimpse/collector/locate"
	"github.com/glimpse-analytics/glimpse/collector/session"
	"github.com/glimpse-analytics/glimpse/collector/sink"
	"github.com/glimpse-analytics/glimpse/internal/chconn"
	"github.com/glimpse-analytics/glimpse/internal/config"
	"github.com/glimpse-analytics/glimpse/internal/identity"
	"github.com/glimpse-analytics/glimpse/internal/storage/subject"
	"github.com/glimpse-analytics/glimpse/migrations"
)

// The writer drains a source's ended sessions early, when a full cache
// evicts many, only if the source is an EndedSource: the cache must stay one.
var _ sink.EndedSource = (*session.Cache)(nil)

func serveCommand() *command {
	var (
		noMigrate bool
		sinkMode  string
		batchSize int
		interval  time.Duration
		sessEvery time.Duration
		queueSize int
		memLimit  int
		spool     spoolFlags
		retain    retentionFlags
		rateLimit int
		maxSess   int
		debugAddr string
		demo      bool
		shared    bool
		dashAddr  string
	)
	return &command{
		name:  "serve",
		usage: "run the collector: ingest endpoints, metrics, health and readiness",
		flags: func(fs *flag.FlagSet) {
			fs.BoolVar(&noMigrate, "no-migrate", false, "do not apply pending migrations at start-up")
			fs.StringVar(&sinkMode, "sink", "clickhouse", "where events go: clickhouse, or discard (for benchmarks: dequeued and dropped)")
			fs.IntVar(&batchSize, "batch-size", 10000, "rows per insert: a batch is flushed when it has this many")
			fs.DurationVar(&interval, "flush-interval", time.Second, "a non-empty batch is flushed at least this often")
			fs.DurationVar(&sessEvery, "session-flush-interval", 10*time.Second, "session updates are written at least this often; updates of one session in between fold into one")
			fs.IntVar(&queueSize, "queue-size", 10000, "events waiting for the writer; when full, events are answered 503")
			fs.BoolVar(&shared, "shared-salts", false, "share the daily visitor-id salts with other instances through ClickHouse (the salts table, rows deleted after 48 h); default: in memory only")
			fs.BoolVar(&demo, "demo", false, "also serve a demo site under /demo/ that embeds the beacon for the first configured site (make run uses it)")
			fs.StringVar(&dashAddr, "dashboard-listen", dashboardFlagDefault(), dashboardFlagUsage)
			fs.StringVar(&debugAddr, "debug-listen", "", "address for Go's pprof profiles (keep it on loopback); empty: off")
			fs.IntVar(&rateLimit, "rate-limit", collector.DefaultRateLimit, "events one visitor may send per second; more are dropped (reason rate-limit); -1: no limit")
			fs.IntVar(&maxSess, "max-sessions", collector.DefaultMaxSessions, "live sessions held in memory (230 to 460 bytes each); when full, a new session ends the least recently seen of a few (glimpse_sessions_evicted_total)")
			spool.register(fs)
			retain.register(fs)
			fs.BoolVar(&retain.noJob, "no-prune", false, "do not run the daily retention job (glimpse prune) inside serve")
			fs.IntVar(&memLimit, "memory-limit-mb", 96, "soft memory limit for the Go heap in MiB (the GC works harder near it); 0: none. GOMEMLIMIT wins when set")
		},
		run: func(ctx context.Context, o *Options, _ *flag.FlagSet, _ []string, stdout io.Writer, log *slog.Logger) error {
			if sinkMode != "clickhouse" && sinkMode != "discard" {
				return fmt.Errorf("--sink %q: want clickhouse or discard", sinkMode)
			}
			if maxSess < 1 {
				return fmt.Errorf("--max-sessions %d: want at least 1", maxSess)
			}
			if _, set := os.LookupEnv("GOMEMLIMIT"); !set && memLimit > 0 {
				debug.SetMemoryLimit(int64(memLimit) << 20)
			}
			sites, err := config.Load(o.Config)
			if err != nil {
				return err
			}
			optOut, err := beacon.NewOptOut(beacon.OptOutOptions{PublicURL: o.publicURL(), Sites: sites})
			if err != nil {
				return err
			}
			proxies, err := locate.ParseTrustedProxies(o.proxies())
			if err != nil {
				return fmt.Errorf("--trusted-proxies: %w", err)
			}
			var geo *locate.Geo
			if o.GeoIP != "" {
				if geo, err = locate.Open(o.GeoIP); err != nil {
					return fmt.Errorf("--geoip: %w", err)
				}
				defer geo.Close()
			}
			conn, err := chconn.Open(ctx, o.ClickHouse)
			if err != nil {
				return err
			}
			defer conn.Close()
			if !noMigrate {
				dsn, _ := chconn.ParseDSN(o.ClickHouse)
				if _, err := migrations.NewRunner(conn, migrations.Target{Database: dsn.Auth.Database}, nil, log).Apply(ctx); err != nil {
					return err
				}
			}
			set := metrics.NewSet()
			wopts := sink.Options{
				Conn: conn, Discard: sinkMode == "discard", BatchSize: batchSize, Interval: interval, QueueSize: queueSize,
				SessionInterval: sessEvery,
				Metrics:         set, Log: log.With("component", "sink"),
			}
			spool.apply(&wopts, o.SpoolDir)
			writer, err := sink.Open(wopts)
			if err != nil {
				return fmt.Errorf("--spool-dir: %w", err)
			}
			stats, err := api.New(api.Options{Engine: aggregator.New(aggregator.Options{Conn: conn}), Sites: sites, Log: log.With("component", "stats-api")})
			if err != nil {
				return err
			}
			emailRoutes, emailPrefixes, runEmailOptOuts, err := emailEndpoints(ctx, o, sites, conn, writer, proxies, set, log)
			if err != nil {
				return err
			}
			salts, err := newSalts(ctx, shared, conn, log)
			if err != nil {
				return err
			}
			sessions := session.NewCache(session.CacheConfig{MaxSessions: maxSess})
			writer.WriteSessions(sessions)
			srv, err := collector.New(collector.Options{
				Sites: sites, Writer: writer, Geo: geo, Proxies: proxies, Metrics: set, Log: log,
				RateLimit: rateLimit, Salts: salts, Sessions: sessions,
			})
			if err != nil {
				return err
			}
			m := newMux(srv.NotFound)
			health := collector.NewHealth(conn, writer)
			m.handle(map[string]fasthttp.RequestHandler{
				"/metrics": metricsHandler(set),
				"/healthz": health.Healthz,
				"/readyz":  health.Readyz,
			})
			m.handle(srv.Routes())
			m.handle(beacon.NewScript().Routes())
			m.handle(optOut.Routes())
			m.handle(emailRoutes)
			m.handlePrefixes(emailPrefixes)
			m.handle(stats.Routes())
			m.handle(subject.New(subject.Options{Conn: conn, Sites: sites, Pending: writer}).Routes(log.With("component", "subject-api")))
			if demo {
				pages, err := demoRoutes(sites.Sites[0].Domain)
				if err != nil {
					return err
				}
				m.handle(pages)
			}
			stopDash, err := serveDashboard(sites, stats, m, dashAddr, o.Listen, stdout, log)
			if err != nil {
				return err
			}
			if debugAddr != "" {
				go func() {
					if err := http.ListenAndServe(debugAddr, nil); err != nil {
						log.Error("debug listener failed", "err", err)
					}
				}()
			}
			bg, stopBG := context.WithCancel(context.Background())
			defer stopBG()
			go srv.Run(bg)
			if shared {
				go identity.RunStorePrune(bg, conn, time.Now, func(err error) { log.Warn("cannot prune shared salts", "err", err) })
			}
			retain.startDaily(bg, conn, sites, log)
			go runEmailOptOuts(bg)

			ln, err := net.Listen("tcp", o.Listen)
			if err != nil {
				return fmt.Errorf("cannot listen on %s (set --listen): %w", o.Listen, err)
			}
			hs := collector.HTTPServer("glimpse", m.serve)
			hs.ErrorHandler, hs.Logger = srv.ErrorHandler, collector.HTTPLogger{Log: log}
			errc := make(chan error, 1)
			go func() { errc <- hs.Serve(ln) }()
			log.Info("serving", "listen", ln.Addr().String(), "sites", len(sites.Sites), "sink", sinkMode, "geo", geo != nil)
			fmt.Fprintf(stdout, "glimpse is serving on http://%s\n", ln.Addr())
			var serveErr error
			select {
			case serveErr = <-errc:
				serveErr = fmt.Errorf("listener failed: %w", serveErr)
			case <-ctx.Done():
			}
			// Shutdown in order: stop the listener and wait for handlers,
			// then close the queues, drain and flush under a fresh deadline.
			log.Info("stopping: closing the listener")
			sctx, cancel := context.WithTimeout(context.Background(), o.ShutdownWait)
			defer cancel()
			if err := hs.ShutdownWithContext(sctx); err != nil {
				log.Warn("listener did not stop cleanly", "err", err)
			}
			stopDash(sctx)
			fctx, fcancel := context.WithTimeout(context.Background(), o.ShutdownWait)
			defer fcancel()
			lost, err := writer.Close(fctx)
			if err != nil {
				log.Error("final flush incomplete", "err", err)
			}
			if lost > 0 {
				log.Error("rows lost at shutdown", "rows", lost)
			}
			log.Info("stopped", "rows_lost", lost)
			return serveErr
		},
	}
}

// newSalts returns the daily visitor-id salts: shared through ClickHouse
// with --shared-salts, otherwise this process's own, in memory.
func newSalts(ctx context.Context, shared bool, conn driver.Conn, log *slog.Logger) (*identity.Salts, error) {
	if !shared {
		return identity.NewSalts(ctx, identity.SaltsConfig{})
	}
	salts, err := identity.NewSalts(ctx, identity.SaltsConfig{Store: identity.ClickHouseStore(conn), Logger: log.With("component", "salts")})
	if err != nil {
		return nil, fmt.Errorf("--shared-salts: %w", err)
	}
	return salts, nil
}
