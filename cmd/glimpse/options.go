package main

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/glimpse-analytics/glimpse/internal/chconn"
	"github.com/glimpse-analytics/glimpse/internal/config"
	"github.com/glimpse-analytics/glimpse/internal/storage/retention"
)

// Each subsystem's settings are one options struct whose register method
// binds every flag straight into a field, with the flag's one default:
// globalOptions here (every command), retentionOptions (prune and serve),
// and serve's own in serve_options.go.

// globalOptions are the global flags every command takes. Each falls
// back to a GLIMPSE_* variable (flagSet).
type globalOptions struct {
	Config         string // the sites YAML file
	ClickHouse     string // native-protocol DSN
	Cluster        string // the ClickHouse cluster the schema is rendered for; empty: one server
	Listen         string // main listener address
	GeoIP          string // GeoIP2/GeoLite2 City or Country .mmdb (optional)
	TrustedProxies string // comma-separated CIDRs
	PublicURL      string // the collector's public base URL
	SpoolDir       string // the durable spool directory
	LogLevel       string // debug, info, warn or error
	ShutdownWait   time.Duration
}

// register binds the global flags on fs, each with its variable.
func (o *globalOptions) register(fs *flagSet) {
	fs.stringEnv(&o.Config, "config", "GLIMPSE_CONFIG", "glimpse.yaml", "sites file (YAML)")
	fs.stringEnv(&o.ClickHouse, "clickhouse", "GLIMPSE_CLICKHOUSE", "clickhouse://127.0.0.1:9000/glimpse",
		"ClickHouse DSN, native protocol; the database is created if missing")
	fs.stringEnv(&o.Cluster, "cluster", "GLIMPSE_CLUSTER", "",
		"ClickHouse cluster (remote_servers name) the schema lives on: ON CLUSTER NAME, Replicated*/Distributed tables; empty: one server")
	fs.stringEnv(&o.Listen, "listen", "GLIMPSE_LISTEN", "127.0.0.1:8080", "address the HTTP listener binds")
	fs.stringEnv(&o.GeoIP, "geoip", "GLIMPSE_GEOIP", "", "GeoIP2/GeoLite2 City or Country .mmdb file; empty: no geo")
	fs.stringEnv(&o.TrustedProxies, "trusted-proxies", "GLIMPSE_TRUSTED_PROXIES", "",
		"comma-separated CIDRs whose X-Forwarded-For is believed; default none: the TCP peer is the client")
	fs.stringEnv(&o.PublicURL, "public-url", "GLIMPSE_PUBLIC_URL", "", "the collector's public base URL, used in snippets and links (default http://<listen>)")
	fs.stringEnv(&o.SpoolDir, "spool-dir", "GLIMPSE_SPOOL_DIR", "", "directory of the durable spool")
	fs.stringEnv(&o.LogLevel, "log-level", "GLIMPSE_LOG_LEVEL", "info", "log level: debug, info, warn or error")
	fs.durationEnv(&o.ShutdownWait, "shutdown-timeout", "GLIMPSE_SHUTDOWN_TIMEOUT", 15*time.Second, "how long a stopping server may take to drain and flush")
}

func (o *globalOptions) validate() error {
	switch o.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("--log-level %q: want debug, info, warn or error", o.LogLevel)
	}
	return nil
}

// store is conn and the cluster its database was migrated for
// (--cluster), with a dialler to the cluster's hosts that connects as
// --clickhouse does.
func (o *globalOptions) store(conn driver.Conn) (chconn.Store, error) {
	s := chconn.Store{Conn: conn, Cluster: o.Cluster}
	if o.Cluster != "" {
		dial, err := chconn.DialDSN(o.ClickHouse)
		if err != nil {
			return s, err
		}
		s.Dial = dial
	}
	return s, nil
}

// sitesAndConn loads the sites file and connects to ClickHouse, for the
// commands that work on stored data; the caller closes the connection.
func (o *globalOptions) sitesAndConn(ctx context.Context) (*config.File, driver.Conn, error) {
	sites, err := config.Load(o.Config)
	if err != nil {
		return nil, nil, err
	}
	conn, err := chconn.Open(ctx, o.ClickHouse)
	if err != nil {
		return nil, nil, err
	}
	return sites, conn, nil
}

// publicURL returns --public-url or one derived from --listen.
func (o *globalOptions) publicURL() string {
	if o.PublicURL != "" {
		return strings.TrimRight(o.PublicURL, "/")
	}
	return "http://" + o.Listen
}

// proxies splits --trusted-proxies.
func (o *globalOptions) proxies() []string {
	var out []string
	for _, p := range strings.Split(o.TrustedProxies, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// retentionOptions are the retention job's settings, for prune and for
// serve's daily run.
type retentionOptions struct {
	rollupMonths int
	noJob        bool // serve only
}

func (o *retentionOptions) register(fs *flagSet) {
	fs.IntVar(&o.rollupMonths, "rollup-retention-months", retention.DefaultRollupMonths,
		"months the hourly rollups (aggregates, no identifiers) are kept; raw tables follow each site's privacy.retention_months; -1: for ever")
}

// registerJob binds serve's switch of the daily job.
func (o *retentionOptions) registerJob(fs *flagSet) {
	fs.BoolVar(&o.noJob, "no-prune", false, "do not run the daily retention job (glimpse prune) inside serve")
}

func (o *retentionOptions) options(store chconn.Store, sites *config.File, log *slog.Logger) retention.Options {
	return retention.Options{Conn: store.Conn, Cluster: store.Cluster, Dial: store.Dial, Sites: sites, RollupMonths: o.rollupMonths,
		Log: log.With("component", "retention")}
}

// startDaily runs the retention job inside serve: a first run a minute
// after start, then one a day.
func (o *retentionOptions) startDaily(ctx context.Context, store chconn.Store, sites *config.File, log *slog.Logger) {
	if o.noJob {
		return
	}
	go retention.RunDaily(ctx, o.options(store, sites, log), time.Minute)
}
