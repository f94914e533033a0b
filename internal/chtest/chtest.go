// Package chtest gives integration tests a fresh database on a real
// ClickHouse server and drops it when the test ends.
//
// The server comes from GLIMPSE_TEST_CLICKHOUSE (host:port of the native
// protocol, e.g. 127.0.0.1:9000); `make test` starts the project's private
// server and sets it. Without it, integration tests skip with a message
// saying so.
package chtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/glimpse-analytics/glimpse/internal/chconn"
	"github.com/glimpse-analytics/glimpse/migrations"
)

// EnvAddr names the environment variable with the server's address.
const EnvAddr = "GLIMPSE_TEST_CLICKHOUSE"

// EnvData names the environment variable with the test server's data
// directory (its --path), for tests that search the server's files;
// scripts/test sets it when the server is the one scripts/clickhouse runs
// from the repository.
const EnvData = "GLIMPSE_TEST_CLICKHOUSE_DATA"

// EnvHTTP names the environment variable with the test server's HTTP
// address (host:port), for tests that read results as text; without it
// HTTPAddr takes the native port less 877 (9000 → 8123), as
// scripts/clickhouse starts the server.
const EnvHTTP = "GLIMPSE_TEST_CLICKHOUSE_HTTP"

// HTTPAddr returns the test server's HTTP address, skipping t when no
// server is given.
func HTTPAddr(t testing.TB) string {
	t.Helper()
	if a := os.Getenv(EnvHTTP); a != "" {
		return a
	}
	host, port, err := net.SplitHostPort(Addr(t))
	if err != nil {
		t.Fatalf("chtest: %s: %v", EnvAddr, err)
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		t.Fatalf("chtest: %s: %v", EnvAddr, err)
	}
	return net.JoinHostPort(host, strconv.Itoa(p-877))
}

// DB is one test's database.
type DB struct {
	Conn     driver.Conn
	DSN      string // clickhouse://addr/name, for code that opens its own connection
	Addr     string
	Database string
}

// Addr returns the test server's address, skipping t when none is given.
func Addr(t testing.TB) string {
	t.Helper()
	addr := os.Getenv(EnvAddr)
	if addr == "" {
		t.Skipf("integration test skipped: set %s=host:port of a ClickHouse server (make test does)", EnvAddr)
	}
	return addr
}

// New creates an empty database for t and drops it on cleanup.
func New(t testing.TB) *DB {
	t.Helper()
	addr := Addr(t)
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "glimpse_test_" + hex.EncodeToString(b[:])
	dsn := "clickhouse://" + addr + "/" + name
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := chconn.Open(ctx, dsn)
	if err != nil {
		t.Fatalf("chtest: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+name); err != nil {
			t.Errorf("chtest: cannot drop %s: %v", name, err)
		}
		conn.Close()
	})
	return &DB{Conn: conn, DSN: dsn, Addr: addr, Database: name}
}

// Migrated is New with every embedded migration applied.
func Migrated(t testing.TB) *DB {
	t.Helper()
	db := New(t)
	r := migrations.NewRunner(db.Conn, migrations.Target{Database: db.Database}, nil, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := r.Apply(ctx); err != nil {
		t.Fatalf("chtest: %v", err)
	}
	return db
}

// DataDir returns the test server's data directory, skipping t when
// EnvData does not give it.
func DataDir(t testing.TB) string {
	t.Helper()
	dir := os.Getenv(EnvData)
	if dir == "" {
		t.Skipf("the server's files are not searched: set %s to the test server's data directory (scripts/test does)", EnvData)
	}
	return dir
}

// Paths returns the server's directories and files of db's tables, as
// system.tables names them, and fails t unless every one is under dir
// (DataDir): a path elsewhere means dir is not this server's.
func (db *DB) Paths(t testing.TB, dir string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// data_path on 18.16; data_paths on current servers.
	rows, err := db.Conn.Query(ctx, "SELECT data_path, metadata_path FROM system.tables WHERE database = ?", db.Database)
	if err != nil {
		rows, err = db.Conn.Query(ctx, "SELECT arrayJoin(data_paths), metadata_path FROM system.tables WHERE database = ?", db.Database)
	}
	if err != nil {
		t.Fatalf("chtest: %v", err)
	}
	defer rows.Close()
	root := filepath.Clean(dir) + string(filepath.Separator)
	seen := map[string]bool{}
	var out []string
	for rows.Next() {
		var data, meta string
		if err := rows.Scan(&data, &meta); err != nil {
			t.Fatalf("chtest: %v", err)
		}
		for _, p := range []string{data, meta} {
			if p == "" || seen[p] {
				continue
			}
			seen[p] = true
			if !strings.HasPrefix(filepath.Clean(p), root) {
				t.Fatalf("chtest: the server keeps %s at %s, not under %s=%s", db.Database, p, EnvData, dir)
			}
			out = append(out, p)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("chtest: %v", err)
	}
	return out
}

// replacedPartsSettings make ClickHouse delete the files of a part that a
// merge or mutation replaced within seconds: by default it keeps them for
// old_parts_lifetime (8 minutes), then waits for its next cleanup (30 to
// 40 s).
const replacedPartsSettings = "old_parts_lifetime = 1, cleanup_delay_period = 1, cleanup_delay_period_random_add = 0"

// DropReplacedPartsSoon recreates db's MergeTree tables as they are but
// with settings under which ClickHouse deletes replaced parts within
// seconds, for tests that search the server's files for deleted rows
// (WaitReplacedParts); rows already there are copied. ClickHouse 18.16
// cannot change a table's settings (MODIFY SETTING came later).
// Materialized views name their tables, so they feed and read the new
// ones.
func (db *DB) DropReplacedPartsSoon(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rows, err := db.Conn.Query(ctx, "SELECT name FROM system.tables WHERE database = ? AND engine LIKE '%MergeTree'", db.Database)
	if err != nil {
		t.Fatalf("chtest: %v", err)
	}
	var tables []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			t.Fatalf("chtest: %v", err)
		}
		tables = append(tables, name)
	}
	rows.Close()
	exec := func(q string) {
		t.Helper()
		if err := db.Conn.Exec(ctx, q); err != nil {
			t.Fatalf("chtest: %s: %v", q, err)
		}
	}
	for _, name := range tables {
		full, tmp := db.Database+"."+name, db.Database+".chtest_tmp_"+name
		var create string
		if err := db.Conn.QueryRow(ctx, "SHOW CREATE TABLE "+full).Scan(&create); err != nil {
			t.Fatalf("chtest: %v", err)
		}
		if strings.Contains(create, " SETTINGS ") {
			create += ", " + replacedPartsSettings
		} else {
			create += " SETTINGS " + replacedPartsSettings
		}
		at := strings.Index(create, full)
		if at < 0 {
			t.Fatalf("chtest: SHOW CREATE TABLE %s does not name it: %s", full, create)
		}
		exec(create[:at] + tmp + create[at+len(full):])
		exec("INSERT INTO " + tmp + " SELECT * FROM " + full)
		exec("DROP TABLE " + full)
		exec("RENAME TABLE " + tmp + " TO " + full)
	}
}

// WaitReplacedParts waits until ClickHouse has deleted the files of every
// part of db that a merge or mutation replaced (see DropReplacedPartsSoon).
func (db *DB) WaitReplacedParts(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for {
		var n uint64
		if err := db.Conn.QueryRow(ctx, "SELECT count() FROM system.parts WHERE database = ? AND NOT active", db.Database).Scan(&n); err != nil {
			t.Fatalf("chtest: waiting for replaced parts to go: %v", err)
		}
		if n == 0 {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("chtest: %d replaced parts of %s still on disk after 2 minutes", n, db.Database)
		case <-time.After(200 * time.Millisecond):
		}
	}
}
