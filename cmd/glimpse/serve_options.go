package main

import (
	"fmt"
	"log/slog"
	"net/http"
	_ "net/http/pprof" // profiles on --debug-listen only
	"net/url"
	"os"
	"runtime/debug"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/VictoriaMetrics/metrics"

	"github.com/glimpse-analytics/glimpse/collector"
	"github.com/glimpse-analytics/glimpse/collector/session"
	"github.com/glimpse-analytics/glimpse/collector/sink"
	"github.com/glimpse-analytics/glimpse/internal/identity"
)

// serveOptions are serve's flags beside the global ones, one struct per
// subsystem.
type serveOptions struct {
	writer    writerOptions
	sessions  sessionOptions
	retention retentionOptions
	dashboard dashboardOptions
	admin     adminOptions
	debug     debugOptions
	memory    memoryOptions
	salts     saltOptions
	noMigrate bool
	demo      bool
}

func (o *serveOptions) register(fs *flagSet) {
	o.writer.register(fs)
	o.sessions.register(fs)
	o.retention.register(fs)
	o.retention.registerJob(fs)
	o.dashboard.register(fs)
	o.admin.register(fs)
	o.debug.register(fs)
	o.memory.register(fs)
	o.salts.register(fs)
	fs.BoolVar(&o.noMigrate, "no-migrate", false, "do not apply pending migrations at start-up")
	fs.BoolVar(&o.demo, "demo", false, "also serve a demo site under /demo/ that embeds the beacon for the first configured site (make run uses it)")
}

func (o *serveOptions) validate() error {
	if err := o.writer.validate(); err != nil {
		return err
	}
	if err := o.dashboard.validate(); err != nil {
		return err
	}
	if err := o.sessions.validate(); err != nil {
		return err
	}
	return o.salts.validate()
}

// writerOptions are the writer's settings (collector/sink). The flags are
// bound into a sink.Options, but for the spool's sizes, given in MiB; each
// defaults to sink's default of its field.
type writerOptions struct {
	sink           sink.Options
	mode           string // --sink: clickhouse or discard
	spoolMaxMB     int64
	spoolSegmentMB int64
}

func (o *writerOptions) register(fs *flagSet) {
	fs.StringVar(&o.mode, "sink", "clickhouse", "where events go: clickhouse, or discard (for benchmarks: dequeued and dropped)")
	fs.IntVar(&o.sink.BatchSize, "batch-size", sink.DefaultBatchSize, "rows per insert: a batch is flushed when it has this many")
	fs.DurationVar(&o.sink.Interval, "flush-interval", sink.DefaultInterval, "a non-empty batch is flushed at least this often")
	fs.DurationVar(&o.sink.SessionInterval, "session-flush-interval", sink.DefaultSessionInterval, "session updates are written at least this often; updates of one session in between fold into one")
	fs.IntVar(&o.sink.QueueSize, "queue-size", sink.DefaultQueueSize, "events waiting for the writer; when full, events are answered 503")
	fs.Int64Var(&o.spoolMaxMB, "spool-max-mb", sink.DefaultSpoolMaxBytes>>20, "cap of the spool in MiB; at the cap new events are answered 503 (reason spool-full) and /readyz says degraded")
	fs.DurationVar(&o.sink.SpoolSyncInterval, "spool-sync-interval", sink.DefaultSpoolSyncInterval, "group commit: spooled events are fsynced at least this often")
	fs.Int64Var(&o.spoolSegmentMB, "spool-segment-mb", sink.DefaultSpoolSegmentBytes>>20, "spool segment size in MiB, the unit deleted once its rows are stored")
	fs.DurationVar(&o.sink.MaxBackoff, "retry-max-backoff", sink.DefaultMaxBackoff, "longest wait between retries of a failing spooled insert")
}

func (o *writerOptions) validate() error {
	if o.mode != "clickhouse" && o.mode != "discard" {
		return fmt.Errorf("--sink %q: want clickhouse or discard", o.mode)
	}
	return nil
}

// open opens the writer on conn, with a spool in spoolDir (--spool-dir,
// a global flag) when it is set and in memory only otherwise.
func (o *writerOptions) open(conn driver.Conn, spoolDir string, cluster bool, set *metrics.Set, log *slog.Logger) (*sink.Writer, error) {
	so := o.sink
	so.Cluster = cluster
	so.Conn, so.Discard, so.Metrics, so.Log = conn, o.mode == "discard", set, log.With("component", "sink")
	so.SpoolDir, so.SpoolMaxBytes, so.SpoolSegmentBytes = spoolDir, o.spoolMaxMB<<20, o.spoolSegmentMB<<20
	w, err := sink.Open(so)
	if err != nil {
		return nil, fmt.Errorf("--spool-dir: %w", err)
	}
	return w, nil
}

// sessionOptions are the session cache's settings and the per-visitor
// rate limit it counts.
type sessionOptions struct {
	cache     session.CacheConfig
	rateLimit int
}

func (o *sessionOptions) register(fs *flagSet) {
	fs.IntVar(&o.cache.MaxSessions, "max-sessions", session.DefaultMaxSessions, "live sessions held in memory (230 to 460 bytes each); when full, a new session ends the least recently seen of a few (glimpse_sessions_evicted_total)")
	fs.IntVar(&o.rateLimit, "rate-limit", collector.DefaultRateLimit, "events one visitor may send per second; more are dropped (reason rate-limit); -1: no limit")
}

func (o *sessionOptions) validate() error {
	if o.cache.MaxSessions < 1 {
		return fmt.Errorf("--max-sessions %d: want at least 1", o.cache.MaxSessions)
	}
	return nil
}

// saltOptions say where the daily visitor-id salts live: in memory, or
// shared through ClickHouse, sealed under a key every collector holds.
type saltOptions struct {
	shared bool
	keyEnv string
	key    *identity.SaltKey // with shared, read from keyEnv's variable by validate
}

// defaultSaltKeyEnv is the variable --salt-key-env names by default.
const defaultSaltKeyEnv = "GLIMPSE_SALT_KEY"

func (o *saltOptions) register(fs *flagSet) {
	fs.BoolVar(&o.shared, "shared-salts", false, "share the daily visitor-id salts with other instances through ClickHouse, sealed under the salt key (the sealed_salts table, rows deleted after 48 h); default: in memory only")
	fs.StringVar(&o.keyEnv, "salt-key-env", defaultSaltKeyEnv, "environment variable holding the key that seals shared salts: at least 32 random bytes, the same on every collector (e.g. openssl rand -base64 32); read with --shared-salts only")
}

// validate reads the salt key when salts are shared: without it a
// collector would have to keep salts in ClickHouse in clear, so it does
// not start. Errors name the variable, never its value.
func (o *saltOptions) validate() error {
	if !o.shared {
		return nil
	}
	secret := os.Getenv(o.keyEnv)
	if secret == "" {
		return fmt.Errorf("--shared-salts needs the salt key: set %s (or the variable --salt-key-env names) to the same secret of at least %d random bytes on every collector, e.g. openssl rand -base64 32; shared salts are sealed with it in ClickHouse",
			o.keyEnv, identity.MinSaltKeyLen)
	}
	key, err := identity.NewSaltKey([]byte(secret))
	if err != nil {
		return fmt.Errorf("--shared-salts: %s: %w", o.keyEnv, err)
	}
	o.key = key
	return nil
}

// dashboardOptions say where the web dashboard is served.
type dashboardOptions struct {
	listen string // empty: on the main listener under /dashboard/
	url    string // empty: --public-url
}

func (o *dashboardOptions) register(fs *flagSet) {
	fs.stringEnv(&o.listen, "dashboard-listen", "GLIMPSE_DASHBOARD_LISTEN", "",
		"separate address for the web dashboard (keep it internal while ingest is public); empty: served on --listen under /dashboard/")
	fs.stringEnv(&o.url, "dashboard-url", "GLIMPSE_DASHBOARD_URL", "",
		"base URL browsers open the dashboard at; https:// makes its cookies Secure and adds Strict-Transport-Security (default --public-url)")
}

func (o *dashboardOptions) validate() error {
	if o.url == "" {
		return nil
	}
	if u, err := url.Parse(o.url); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("--dashboard-url %q: want http://host[:port] or https://host[:port]", o.url)
	}
	return nil
}

// https reports whether browsers reach the dashboard over HTTPS: its URL,
// or else publicURL, is https.
func (o *dashboardOptions) https(publicURL string) bool {
	s := o.url
	if s == "" {
		s = publicURL
	}
	u, err := url.Parse(s)
	return err == nil && u.Scheme == "https"
}

// adminOptions say where the process's /metrics and /readyz are served.
type adminOptions struct {
	listen string // empty: on the main listener
}

func (o *adminOptions) register(fs *flagSet) {
	fs.stringEnv(&o.listen, "admin-listen", "GLIMPSE_ADMIN_LISTEN", "",
		"separate address for /metrics and /readyz (keep it internal while ingest is public); the main listener then answers them 404 and keeps /healthz; empty: served on --listen")
}

// debugOptions say where Go's profiles are served.
type debugOptions struct {
	listen string // empty: nowhere
}

func (o *debugOptions) register(fs *flagSet) {
	fs.StringVar(&o.listen, "debug-listen", "", "address for Go's pprof profiles (keep it on loopback); empty: off")
}

// start serves net/http/pprof's handlers on the debug listener, if any.
func (o *debugOptions) start(log *slog.Logger) {
	if o.listen == "" {
		return
	}
	go func() {
		if err := http.ListenAndServe(o.listen, nil); err != nil {
			log.Error("debug listener failed", "err", err)
		}
	}()
}

// memoryOptions bound the Go heap.
type memoryOptions struct {
	limitMB int
}

func (o *memoryOptions) register(fs *flagSet) {
	fs.IntVar(&o.limitMB, "memory-limit-mb", 96, "soft memory limit for the Go heap in MiB (the GC works harder near it); 0: none. GOMEMLIMIT wins when set")
}

// apply sets the soft memory limit, unless GOMEMLIMIT did.
func (o *memoryOptions) apply() {
	if _, set := os.LookupEnv("GOMEMLIMIT"); !set && o.limitMB > 0 {
		debug.SetMemoryLimit(int64(o.limitMB) << 20)
	}
}
