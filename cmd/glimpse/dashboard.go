package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/glimpse-analytics/glimpse/aggregator/api"
	"github.com/glimpse-analytics/glimpse/collector/locate"
	"github.com/glimpse-analytics/glimpse/dashboards"
)

// serveDashboard builds the dashboard and serves it: on its own listener
// with --dashboard-listen, otherwise on the main listener's mux. The
// returned stop closes its own listener (a no-op otherwise). Its own
// listener answers and logs requests it cannot read as the main one does.
func (s *server) serveDashboard(stats *api.API, stdout io.Writer) (stop func(context.Context), err error) {
	log := s.log.With("component", "dashboard")
	d, err := dashboards.New(dashboards.Options{
		Sites: s.sites, Stats: stats, ClientNet: clientNet(s.proxies), HTTPS: s.o.dashboard.https(s.g.publicURL()),
		Metrics: s.metrics, Log: log, PublicURL: s.g.publicURL(), HasEvents: s.hasEvents,
		Notes: s.notes,
	})
	if err != nil {
		return nil, err
	}
	addr := s.o.dashboard.listen
	if addr == "" {
		s.mux.handle(d.Routes())
		fmt.Fprintf(stdout, "dashboard on http://%s%s\n", s.g.Listen, dashboards.PathHome)
		return func(context.Context) {}, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("cannot listen on %s (set --dashboard-listen): %w", addr, err)
	}
	hs := &fasthttp.Server{
		Handler: d.Handler, Name: "glimpse",
		ReadTimeout: 10 * time.Second, WriteTimeout: time.Minute, IdleTimeout: 60 * time.Second,
		MaxRequestBodySize: 16 << 10, NoDefaultDate: true, DisablePreParseMultipartForm: true,
	}
	s.ingest.HTTPErrors().Install(hs)
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

// clientNet is the network of a request's client as the collector
// determines and stores it: the client behind the trusted proxies,
// truncated to its /24 or /48. The dashboard throttles sign-ins per it.
func clientNet(proxies locate.TrustedProxies) func(*fasthttp.RequestCtx) netip.Prefix {
	return func(c *fasthttp.RequestCtx) netip.Prefix {
		peer, _ := netip.AddrFromSlice(c.RemoteIP())
		return locate.Prefix(proxies.ClientIP(peer, &c.Request.Header))
	}
}

// hasEvents reports whether site has stored any event: the dashboard
// shows a site without one its install snippet.
func (s *server) hasEvents(ctx context.Context, site string) (bool, error) {
	var n uint64
	err := s.conn.QueryRow(ctx, "SELECT count() FROM (SELECT 1 FROM events WHERE site_id = ? LIMIT 1)", site).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("cannot look for events of %s: %w", site, err)
	}
	return n > 0, nil
}
