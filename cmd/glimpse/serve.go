package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
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
	"github.com/glimpse-analytics/glimpse/dashboards/reports"
	"github.com/glimpse-analytics/glimpse/internal/chconn"
	"github.com/glimpse-analytics/glimpse/internal/config"
	"github.com/glimpse-analytics/glimpse/internal/identity"
	"github.com/glimpse-analytics/glimpse/internal/storage/notes"
	"github.com/glimpse-analytics/glimpse/internal/storage/subject"
)

// The writer drains a source's ended sessions early, when a full cache
// evicts many, only if the source is an EndedSource: the cache must stay one.
var _ sink.EndedSource = (*session.Cache)(nil)

func serveCommand() *command {
	var o serveOptions
	return &command{
		name:  "serve",
		usage: "run the collector: ingest endpoints, metrics, health and readiness",
		flags: o.register,
		run: func(ctx context.Context, g *globalOptions, _ *flag.FlagSet, _ []string, stdout io.Writer, log *slog.Logger) error {
			return serve(ctx, g, &o, stdout, log)
		},
	}
}

// server is a running glimpse serve: the parts main builds and wires.
type server struct {
	g       *globalOptions
	o       *serveOptions
	log     *slog.Logger
	sites   *config.File
	geo     *locate.Geo
	proxies locate.TrustedProxies
	conn    driver.Conn
	store   chconn.Store // conn, and the cluster it is on (--cluster)
	notes   *notes.Store // segments and annotations (dashboard, Stats API)
	metrics *metrics.Set
	writer  *sink.Writer
	ingest  *collector.Server
	mux     *mux
	// admin routes /metrics and /readyz on --admin-listen; nil without it
	// (they are on mux then).
	admin *mux
	// jobs run in the background until the listeners have stopped.
	jobs     []func(context.Context)
	stopDash func(context.Context)
}

// serve runs the collector until ctx ends: it checks the local inputs
// before it connects to ClickHouse, builds the parts, routes them and
// serves.
func serve(ctx context.Context, g *globalOptions, o *serveOptions, stdout io.Writer, log *slog.Logger) error {
	if err := o.validate(); err != nil {
		return err
	}
	o.memory.apply()
	s := &server{g: g, o: o, log: log, metrics: metrics.NewSet()}
	var err error
	if s.sites, err = config.Load(g.Config); err != nil {
		return err
	}
	optOut, err := beacon.NewOptOut(beacon.OptOutOptions{PublicURL: g.publicURL(), Sites: s.sites, Geo: g.GeoIP != ""})
	if err != nil {
		return err
	}
	if s.proxies, err = locate.ParseTrustedProxies(g.proxies()); err != nil {
		return fmt.Errorf("--trusted-proxies: %w", err)
	}
	if g.GeoIP != "" {
		if s.geo, err = locate.Open(g.GeoIP); err != nil {
			return fmt.Errorf("--geoip: %w", err)
		}
		defer s.geo.Close()
	}
	if s.conn, err = openStore(ctx, g, o.noMigrate, log); err != nil {
		return err
	}
	defer s.conn.Close()
	if s.store, err = g.store(s.conn); err != nil {
		return err
	}
	if err := s.build(ctx); err != nil {
		return err
	}
	if err := s.route(ctx, optOut, stdout); err != nil {
		return err
	}
	return s.run(ctx, stdout)
}

// openStore connects to ClickHouse and applies the pending migrations,
// unless noMigrate.
func openStore(ctx context.Context, g *globalOptions, noMigrate bool, log *slog.Logger) (driver.Conn, error) {
	var settings clickhouse.Settings
	if g.Cluster != "" {
		settings = chconn.ClusterSettings
	}
	conn, err := chconn.OpenWith(ctx, g.ClickHouse, settings)
	if err != nil {
		return nil, err
	}
	if !noMigrate {
		runner, err := migrationRunner(conn, g, "", log)
		if err == nil {
			_, err = runner.Apply(ctx)
		}
		if err != nil {
			conn.Close()
			return nil, err
		}
	}
	return conn, nil
}

// build makes the ingest side: the writer, the session cache it writes
// and the salts, and the collector that feeds the cache and the writer.
func (s *server) build(ctx context.Context) error {
	var err error
	if s.writer, err = s.o.writer.open(s.conn, s.g.SpoolDir, s.g.Cluster != "", s.metrics, s.log); err != nil {
		return err
	}
	salts, err := newSalts(ctx, s.o.salts.key, s.store, s.log)
	if err != nil {
		return err
	}
	if s.o.salts.shared {
		s.jobs = append(s.jobs, func(ctx context.Context) {
			identity.RunStorePrune(ctx, s.store, time.Now, func(err error) { s.log.Warn("cannot prune shared salts", "err", err) })
		})
	}
	sessions := session.NewCache(s.o.sessions.cache)
	s.writer.WriteSessions(sessions)
	s.ingest, err = collector.New(collector.Options{
		Sites: s.sites, Writer: s.writer, Geo: s.geo, Proxies: s.proxies, Metrics: s.metrics, Log: s.log,
		RateLimit: s.o.sessions.rateLimit, Salts: salts, Sessions: sessions,
	})
	if err != nil {
		return err
	}
	s.jobs = append(s.jobs, s.ingest.Run)
	return nil
}

// newSalts returns the daily visitor-id salts: shared through ClickHouse,
// sealed under key, with --shared-salts (key is nil without), otherwise
// this process's own, in memory.
func newSalts(ctx context.Context, key *identity.SaltKey, store chconn.Store, log *slog.Logger) (*identity.Salts, error) {
	if key == nil {
		return identity.NewSalts(ctx, identity.SaltsConfig{})
	}
	log = log.With("component", "salts")
	salts, err := identity.NewSalts(ctx, identity.SaltsConfig{Store: identity.ClickHouseStoreOn(store, key, log), Logger: log})
	if err != nil {
		return nil, fmt.Errorf("--shared-salts: %w", err)
	}
	return salts, nil
}

// newBudget is the readers' daily privacy budget of noisy sites, with its
// spend and refusals in /metrics.
func newBudget(set *metrics.Set) *aggregator.Budget {
	spent := set.NewFloatCounter("glimpse_privacy_budget_spent_total")
	refused := set.NewCounter("glimpse_privacy_budget_refusals_total")
	return aggregator.NewBudget(time.Now, spent.Add, refused.Inc)
}

// route builds the main listener's mux: the process's /healthz, its
// /metrics and /readyz (or, with --admin-listen, the admin listener's mux
// of them), then every component's endpoints. The dashboard goes on the
// mux, or on its own listener with --dashboard-listen.
func (s *server) route(ctx context.Context, optOut *beacon.OptOut, stdout io.Writer) error {
	engine := aggregator.New(aggregator.Options{Conn: s.conn, Budget: newBudget(s.metrics), Cluster: s.g.Cluster != ""})
	s.notes = notes.New(s.conn, nil).OnCluster(s.g.Cluster)
	stats, err := api.New(api.Options{Engine: engine, Sites: s.sites, Notes: s.notes, Log: s.log.With("component", "stats-api")})
	if err != nil {
		return err
	}
	emailRoutes, emailPrefixes, runOptOuts, err := emailEndpoints(ctx, s.g, s.sites, s.conn, s.writer, s.proxies, s.metrics, s.log)
	if err != nil {
		return err
	}
	s.jobs = append(s.jobs, runOptOuts)
	health := collector.NewHealth(s.conn, s.writer)
	s.mux = newMux(s.ingest.NotFound)
	// /healthz stays on the main listener, for load balancers.
	s.mux.handle(map[string]fasthttp.RequestHandler{"/healthz": health.Healthz})
	admin := map[string]fasthttp.RequestHandler{
		"/metrics": metricsHandler(s.metrics),
		"/readyz":  health.Readyz,
	}
	if s.o.admin.listen == "" {
		s.mux.handle(admin)
	} else {
		s.admin = newMux(func(ctx *fasthttp.RequestCtx) { ctx.Error("not found", fasthttp.StatusNotFound) })
		admin["/healthz"] = health.Healthz
		s.admin.handle(admin)
	}
	s.mux.handle(s.ingest.Routes())
	s.mux.handle(beacon.NewScript().Routes())
	s.mux.handle(optOut.Routes())
	s.mux.handle(emailRoutes)
	s.mux.handlePrefixes(emailPrefixes)
	s.mux.handle(stats.Routes())
	if s.sites.SMTP != nil {
		// Scheduled reports and alerts, and their unsubscribe links.
		rep, err := reports.New(reports.Options{Sites: s.sites, Engine: engine, Conn: s.conn, Cluster: s.g.Cluster, PublicURL: s.g.publicURL(), Log: s.log, Metrics: s.metrics})
		if err != nil {
			return err
		}
		s.mux.handlePrefixes(rep.Prefixes())
		s.jobs = append(s.jobs, rep.Run)
	}
	s.mux.handle(subject.New(subject.Options{Conn: s.conn, Cluster: s.store.Cluster, Dial: s.store.Dial, Sites: s.sites, Pending: s.writer}).Routes(s.log.With("component", "subject-api")))
	if s.o.demo {
		pages, err := demoRoutes(s.sites.Sites[0].Domain)
		if err != nil {
			return err
		}
		s.mux.handle(pages)
	}
	s.stopDash, err = s.serveDashboard(stats, stdout)
	return err
}

// run serves the main listener, with the background jobs, until ctx ends
// or the listener fails; then it stops.
func (s *server) run(ctx context.Context, stdout io.Writer) error {
	s.o.debug.start(s.log)
	bg, stopBG := context.WithCancel(context.Background())
	defer stopBG()
	for _, job := range s.jobs {
		go job(bg)
	}
	s.o.retention.startDaily(bg, s.store, s.sites, s.log)

	ln, err := net.Listen("tcp", s.g.Listen)
	if err != nil {
		return fmt.Errorf("cannot listen on %s (set --listen): %w", s.g.Listen, err)
	}
	hs := collector.HTTPServer("glimpse", s.mux.serve)
	s.ingest.HTTPErrors().Install(hs)
	errc := make(chan error, 2)
	var admin *fasthttp.Server
	if s.admin != nil {
		aln, err := net.Listen("tcp", s.o.admin.listen)
		if err != nil {
			ln.Close()
			return fmt.Errorf("cannot listen on %s (set --admin-listen): %w", s.o.admin.listen, err)
		}
		admin = collector.HTTPServer("glimpse", s.admin.serve)
		s.ingest.HTTPErrors().Install(admin)
		go func() {
			if err := admin.Serve(aln); err != nil {
				errc <- fmt.Errorf("admin listener failed: %w", err)
			}
		}()
		fmt.Fprintf(stdout, "metrics and readiness on http://%s\n", aln.Addr())
	}
	go func() {
		if err := hs.Serve(ln); err != nil {
			errc <- fmt.Errorf("listener failed: %w", err)
		}
	}()
	for _, site := range s.sites.Sites {
		if site.Privacy.Noisy() && site.Privacy.NoiseKey == "" {
			s.log.Warn("noisy aggregates without a noise key: this process draws a random one, so a restart "+
				"answers the same questions with new noise, which a patient reader can average; set privacy.noise_key_env",
				"site", site.Domain)
		}
	}
	s.log.Info("serving", "listen", ln.Addr().String(), "sites", len(s.sites.Sites), "sink", s.o.writer.mode, "geo", s.geo != nil)
	fmt.Fprintf(stdout, "glimpse is serving on http://%s\n", ln.Addr())
	var serveErr error
	select {
	case serveErr = <-errc:
	case <-ctx.Done():
	}
	s.stop(hs, admin)
	return serveErr
}

// stop shuts down in order: stop the listeners (admin: nil without
// --admin-listen) and wait for their handlers, then close the writer's
// queues, drain and flush under a fresh deadline.
func (s *server) stop(hs, admin *fasthttp.Server) {
	s.log.Info("stopping: closing the listener")
	sctx, cancel := context.WithTimeout(context.Background(), s.g.ShutdownWait)
	defer cancel()
	if err := hs.ShutdownWithContext(sctx); err != nil {
		s.log.Warn("listener did not stop cleanly", "err", err)
	}
	if admin != nil {
		if err := admin.ShutdownWithContext(sctx); err != nil {
			s.log.Warn("admin listener did not stop cleanly", "err", err)
		}
	}
	s.stopDash(sctx)
	fctx, fcancel := context.WithTimeout(context.Background(), s.g.ShutdownWait)
	defer fcancel()
	lost, err := s.writer.Close(fctx)
	if err != nil {
		s.log.Error("final flush incomplete", "err", err)
	}
	if lost > 0 {
		s.log.Error("rows lost at shutdown", "rows", lost)
	}
	s.log.Info("stopped", "rows_lost", lost)
}
