package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/glimpse-analytics/glimpse/internal/chconn"
	"github.com/glimpse-analytics/glimpse/internal/config"
)

// Options are the global flags every subcommand takes. Each has an
// environment fallback; a flag given on the command line wins.
type Options struct {
	Config         string // --config, GLIMPSE_CONFIG: the sites YAML file
	ClickHouse     string // --clickhouse, GLIMPSE_CLICKHOUSE: native-protocol DSN
	Listen         string // --listen, GLIMPSE_LISTEN: ingest listener address
	GeoIP          string // --geoip, GLIMPSE_GEOIP: GeoIP2/GeoLite2 City or Country .mmdb (optional)
	TrustedProxies string // --trusted-proxies, GLIMPSE_TRUSTED_PROXIES: comma-separated CIDRs
	PublicURL      string // --public-url, GLIMPSE_PUBLIC_URL: the collector's public base URL
	SpoolDir       string // --spool-dir, GLIMPSE_SPOOL_DIR: the durable spool directory
	LogLevel       string // --log-level, GLIMPSE_LOG_LEVEL: debug, info, warn or error
	ShutdownWait   time.Duration
}

// globalFlags registers the global flags on fs. Defaults come from the
// environment when set, so the flag wins over the environment, which wins
// over the built-in default.
func globalFlags(fs *flag.FlagSet, o *Options) {
	str := func(p *string, name, env, def, usage string) {
		if v, ok := os.LookupEnv(env); ok {
			def = v
		}
		fs.StringVar(p, name, def, usage+" (env "+env+")")
	}
	str(&o.Config, "config", "GLIMPSE_CONFIG", "glimpse.yaml", "sites file (YAML)")
	str(&o.ClickHouse, "clickhouse", "GLIMPSE_CLICKHOUSE", "clickhouse://127.0.0.1:9000/glimpse",
		"ClickHouse DSN, native protocol; the database is created if missing")
	str(&o.Listen, "listen", "GLIMPSE_LISTEN", "127.0.0.1:8080", "address the HTTP listener binds")
	str(&o.GeoIP, "geoip", "GLIMPSE_GEOIP", "", "GeoIP2/GeoLite2 City or Country .mmdb file; empty: no geo")
	str(&o.TrustedProxies, "trusted-proxies", "GLIMPSE_TRUSTED_PROXIES", "",
		"comma-separated CIDRs whose X-Forwarded-For is believed; default none: the TCP peer is the client")
	str(&o.PublicURL, "public-url", "GLIMPSE_PUBLIC_URL", "", "the collector's public base URL, used in snippets and links (default http://<listen>)")
	str(&o.SpoolDir, "spool-dir", "GLIMPSE_SPOOL_DIR", "", "directory of the durable spool")
	str(&o.LogLevel, "log-level", "GLIMPSE_LOG_LEVEL", "info", "log level: debug, info, warn or error")
	wait := 15 * time.Second
	if v, ok := os.LookupEnv("GLIMPSE_SHUTDOWN_TIMEOUT"); ok {
		if d, err := time.ParseDuration(v); err == nil {
			wait = d
		}
	}
	fs.DurationVar(&o.ShutdownWait, "shutdown-timeout", wait, "how long a stopping server may take to drain and flush (env GLIMPSE_SHUTDOWN_TIMEOUT)")
}

// publicURL returns --public-url or one derived from --listen.
// sitesAndConn loads the sites file and connects to ClickHouse, for the
// commands that work on stored data; the caller closes the connection.
func (o *Options) sitesAndConn(ctx context.Context) (*config.File, driver.Conn, error) {
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

func (o *Options) publicURL() string {
	if o.PublicURL != "" {
		return strings.TrimRight(o.PublicURL, "/")
	}
	return "http://" + o.Listen
}

// proxies splits --trusted-proxies.
func (o *Options) proxies() []string {
	var out []string
	for _, p := range strings.Split(o.TrustedProxies, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func (o *Options) validate() error {
	switch o.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("--log-level %q: want debug, info, warn or error", o.LogLevel)
	}
	return nil
}
