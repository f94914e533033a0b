package migrations

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// bookkeeping is the table that records applied versions.
const bookkeeping = `CREATE TABLE IF NOT EXISTS schema_migrations (
    version    UInt32,
    name       String,
    applied_at DateTime
) ENGINE = MergeTree
ORDER BY version;`

// clusterBookkeeping is the same table on a cluster: one replicated table
// with every host of the cluster a replica of it (its ZooKeeper path has
// no {shard}), under the plain name, so that each host holds every row, a
// host reads its own copy (as /readyz does) and a host that joins later
// gets the rows from the others.
const clusterBookkeeping = `CREATE TABLE IF NOT EXISTS {{name "schema_migrations"}}{{onCluster}} (
    version    UInt32,
    name       String,
    applied_at DateTime
) ENGINE = ReplicatedMergeTree('/clickhouse/tables/all/{{.Database}}/schema_migrations', '{shard}-{replica}')
ORDER BY version;`

// Runner applies migrations to one database.
type Runner struct {
	conn   driver.Conn
	target Target
	files  fs.FS
	log    *slog.Logger
	// Timeout bounds each statement (default 60 s; on a cluster an ON
	// CLUSTER statement waits for every host, so give it room).
	Timeout time.Duration
	// Dial connects to one host of the cluster (host:port, as in
	// system.clusters) with the runner's credentials. On a cluster the
	// statements marked {{eachShard}} or {{eachHost}} run through it (they
	// fail without it), and Apply ends by repairing hosts missing tables
	// (skipped without it).
	Dial func(ctx context.Context, addr string) (driver.Conn, error)
}

// NewRunner returns a runner for the embedded migrations; files replaces
// them when non-nil (tests use it).
func NewRunner(conn driver.Conn, target Target, files fs.FS, log *slog.Logger) *Runner {
	if files == nil {
		files = embedded
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Runner{conn: conn, target: target, files: files, log: log, Timeout: 60 * time.Second}
}

// Applied returns the versions recorded as applied.
func (r *Runner) Applied(ctx context.Context) (map[int]bool, error) {
	ctx = r.settings(ctx)
	table := "schema_migrations"
	if r.target.Cluster != "" {
		// The database first, on every host: the statements below and
		// every migration's ON CLUSTER statements run in it there.
		db := "CREATE DATABASE IF NOT EXISTS " + quoteIdent(r.target.Database) + " ON CLUSTER " + quoteIdent(r.target.Cluster)
		if err := r.exec(ctx, "database", db); err != nil {
			return nil, err
		}
		if err := r.exec(ctx, "schema_migrations", clusterBookkeeping); err != nil {
			return nil, err
		}
		table = quoteIdent(r.target.Database) + ".schema_migrations"
		// Rows recorded through another host reach this one by
		// replication: wait for them before reading.
		sctx, cancel := context.WithTimeout(ctx, r.Timeout)
		err := r.conn.Exec(sctx, "SYSTEM SYNC REPLICA "+table)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("cannot sync %s with the other replicas: %w", table, err)
		}
	} else if err := r.exec(ctx, "schema_migrations", bookkeeping); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, r.Timeout)
	defer cancel()
	rows, err := r.conn.Query(ctx, "SELECT DISTINCT version FROM "+table)
	if err != nil {
		return nil, fmt.Errorf("cannot read schema_migrations: %w", err)
	}
	defer rows.Close()
	applied := map[int]bool{}
	for rows.Next() {
		var v uint32
		if err := rows.Scan(&v); err != nil {
			return nil, fmt.Errorf("cannot read schema_migrations: %w", err)
		}
		applied[int(v)] = true
	}
	return applied, rows.Err()
}

// settings are the query settings of every statement: on a cluster an
// INSERT through a Distributed table returns once every shard has its rows
// (not later, in the background), so a migration's INSERT ... SELECT is
// done when it returns.
func (r *Runner) settings(ctx context.Context) context.Context {
	if r.target.Cluster == "" {
		return ctx
	}
	return clickhouse.Context(ctx, clickhouse.WithSettings(clickhouse.Settings{"insert_distributed_sync": 1}))
}

// Pending returns the migrations not yet applied, in order.
func (r *Runner) Pending(ctx context.Context) ([]Migration, error) {
	all, err := Load(r.files)
	if err != nil {
		return nil, err
	}
	applied, err := r.Applied(ctx)
	if err != nil {
		return nil, err
	}
	var pending []Migration
	for _, m := range all {
		if !applied[m.Version] {
			pending = append(pending, m)
		}
	}
	return pending, nil
}

// Apply applies every pending migration in order and records each one after
// all its statements succeeded. It stops at the first failure; the failed
// migration is not recorded, so the next run tries it again (statements use
// IF NOT EXISTS, so the part that did run is not repeated harmfully).
func (r *Runner) Apply(ctx context.Context) ([]Migration, error) {
	pending, err := r.Pending(ctx)
	if err != nil {
		return nil, err
	}
	if len(pending) > 0 && r.target.Cluster == "" {
		// A database migrated for a cluster must not get single-server
		// statements (no ON CLUSTER, plain engines) from a runner that was
		// not told: `glimpse serve` migrates at start-up without --cluster.
		var engine string
		row := r.conn.QueryRow(ctx, "SELECT engine FROM system.tables WHERE database = currentDatabase() AND name = 'schema_migrations'")
		if err := row.Scan(&engine); err != nil {
			return nil, fmt.Errorf("cannot read system.tables: %w", err)
		}
		if strings.HasPrefix(engine, "Replicated") {
			return nil, fmt.Errorf("%d migration(s) pending, starting with %s, in a database migrated for a cluster: "+
				"run glimpse migrate --cluster NAME (serve migrates only single servers; use --no-migrate)", len(pending), pending[0].Name)
		}
	}
	if len(pending) > 0 {
		if err := r.resolveVersion(ctx); err != nil {
			return nil, err
		}
	}
	var done []Migration
	for _, m := range pending {
		start := time.Now()
		if err := r.exec(ctx, m.Name, m.text); err != nil {
			return done, err
		}
		if err := r.record(ctx, m); err != nil {
			return done, err
		}
		r.log.Info("migration applied", "migration", m.Name, "took", time.Since(start).Round(time.Millisecond))
		done = append(done, m)
	}
	if r.target.Cluster != "" && r.Dial != nil {
		if err := r.repair(ctx); err != nil {
			return done, err
		}
	}
	return done, nil
}

// resolveVersion sets the version the migrations render for: the
// server's (SELECT version()) unless the target names one, but the 18.16
// rendering for a database whose tables were made in it. A server
// upgraded from 18.16 keeps its tables as they were made; rendering its
// later migrations in the modern schema would mix the two (a new
// migration may rely on the rendering of the tables it alters or reads).
// Which rendering a database has is read from its events table: site_id
// is LowCardinality(String) in the modern schema only.
func (r *Runner) resolveVersion(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, r.Timeout)
	defer cancel()
	server := r.target.Version
	if server == "" {
		if err := r.conn.QueryRow(ctx, "SELECT version()").Scan(&server); err != nil {
			return fmt.Errorf("cannot read the server's version: %w", err)
		}
	}
	var siteID []string
	row := r.conn.QueryRow(ctx, "SELECT groupArray(type) FROM system.columns WHERE database = currentDatabase() AND table = ? AND name = 'site_id'",
		r.local("events"))
	if err := row.Scan(&siteID); err != nil {
		return fmt.Errorf("cannot read system.columns: %w", err)
	}
	r.target.Version = renderVersion(server, siteID)
	schema := "18.16"
	if r.target.Modern() {
		schema = "modern"
	}
	r.log.Info("rendering migrations", "server", server, "schema", schema)
	return nil
}

// renderVersion is the version to render for on a server of version
// server whose events table has site_id of the types given (none: no
// events table yet): the server's, unless the table was made in the
// 18.16 rendering on a server now modern, then "" (the 18.16 rendering).
func renderVersion(server string, siteID []string) string {
	if !versionAtLeast(server, ModernVersion) || len(siteID) == 0 || strings.HasPrefix(siteID[0], "LowCardinality(") {
		return server
	}
	return ""
}

// local names a storage table as the target has it, without the database.
func (r *Runner) local(table string) string {
	if r.target.Cluster == "" {
		return table
	}
	return table + "_local"
}

func (r *Runner) exec(ctx context.Context, name, text string) error {
	ctx = r.settings(ctx)
	stmts, err := render(name, text, r.target)
	if err != nil {
		return err
	}
	for i, s := range stmts {
		var err error
		switch {
		case strings.HasPrefix(s, eachShardMark):
			err = r.onHosts(ctx, true, strings.TrimPrefix(s, eachShardMark))
		case strings.HasPrefix(s, eachHostMark):
			err = r.onHosts(ctx, false, strings.TrimPrefix(s, eachHostMark))
		default:
			sctx, cancel := context.WithTimeout(ctx, r.Timeout)
			err = r.conn.Exec(sctx, s)
			cancel()
		}
		if err != nil {
			return fmt.Errorf("migration %s failed at statement %d of %d (nothing recorded; fix it and run migrate again): %w",
				name, i+1, len(stmts), err)
		}
	}
	return nil
}

// onHosts runs one statement on the first replica of each shard (perShard)
// or on every host of the cluster, in order.
func (r *Runner) onHosts(ctx context.Context, perShard bool, stmt string) error {
	if r.Dial == nil {
		return errors.New("this statement runs on each shard or host of the cluster, and the runner has no Dial")
	}
	hosts, err := r.clusterHosts(ctx, perShard)
	if err != nil {
		return err
	}
	for _, h := range hosts {
		conn, err := r.Dial(ctx, h)
		if err != nil {
			return fmt.Errorf("on cluster host %s: %w", h, err)
		}
		sctx, cancel := context.WithTimeout(ctx, r.Timeout)
		err = conn.Exec(sctx, stmt)
		cancel()
		conn.Close()
		if err != nil {
			return fmt.Errorf("on cluster host %s: %w", h, err)
		}
	}
	return nil
}

func (r *Runner) record(ctx context.Context, m Migration) error {
	ctx, cancel := context.WithTimeout(ctx, r.Timeout)
	defer cancel()
	// INSERT ... VALUES hangs on 18.16 through clickhouse-go; INSERT ... SELECT works.
	table := "schema_migrations"
	if r.target.Cluster != "" {
		table = quoteIdent(r.target.Database) + ".schema_migrations"
	}
	err := r.conn.Exec(ctx, "INSERT INTO "+table+" (version, name, applied_at) SELECT ?, ?, now()",
		uint32(m.Version), m.Name)
	if err != nil {
		return fmt.Errorf("migration %s applied but cannot be recorded: %w", m.Name, err)
	}
	return nil
}

// Current reports whether every embedded migration is applied; it is what
// /readyz checks. It does not create anything.
func Current(ctx context.Context, conn driver.Conn) (bool, error) {
	all, err := Load(embedded)
	if err != nil {
		return false, err
	}
	var n uint64
	row := conn.QueryRow(ctx, "SELECT count() FROM system.tables WHERE database = currentDatabase() AND name = 'schema_migrations'")
	if err := row.Scan(&n); err != nil {
		return false, fmt.Errorf("cannot read system.tables: %w", err)
	}
	if n == 0 {
		return false, nil
	}
	var latest uint32
	if err := conn.QueryRow(ctx, "SELECT max(version) FROM schema_migrations").Scan(&latest); err != nil {
		return false, fmt.Errorf("cannot read schema_migrations: %w", err)
	}
	return len(all) == 0 || int(latest) >= all[len(all)-1].Version, nil
}
