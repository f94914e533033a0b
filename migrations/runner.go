package migrations

import (
	"context"
	"fmt"
	"io/fs"
	"log/slog"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// bookkeeping is the table that records applied versions. It is rendered
// like a migration so that cluster mode replicates it too.
const bookkeeping = `CREATE TABLE IF NOT EXISTS {{table "schema_migrations"}}{{onCluster}} (
    version    UInt32,
    name       String,
    applied_at DateTime
) ENGINE = {{engine "MergeTree" "schema_migrations"}}
ORDER BY version;
{{distributed "schema_migrations" "version"}}`

// Runner applies migrations to one database.
type Runner struct {
	conn   driver.Conn
	target Target
	files  fs.FS
	log    *slog.Logger
	// Timeout bounds each statement (default 60 s).
	Timeout time.Duration
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
	if err := r.exec(ctx, "schema_migrations", bookkeeping); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, r.Timeout)
	defer cancel()
	rows, err := r.conn.Query(ctx, "SELECT DISTINCT version FROM schema_migrations")
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
	return done, nil
}

func (r *Runner) exec(ctx context.Context, name, text string) error {
	stmts, err := render(name, text, r.target)
	if err != nil {
		return err
	}
	for i, s := range stmts {
		sctx, cancel := context.WithTimeout(ctx, r.Timeout)
		err := r.conn.Exec(sctx, s)
		cancel()
		if err != nil {
			return fmt.Errorf("migration %s failed at statement %d of %d (nothing recorded; fix it and run migrate again): %w",
				name, i+1, len(stmts), err)
		}
	}
	return nil
}

func (r *Runner) record(ctx context.Context, m Migration) error {
	ctx, cancel := context.WithTimeout(ctx, r.Timeout)
	defer cancel()
	// INSERT ... VALUES hangs on 18.16 through clickhouse-go; INSERT ... SELECT works.
	err := r.conn.Exec(ctx, "INSERT INTO schema_migrations (version, name, applied_at) SELECT ?, ?, now()",
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
