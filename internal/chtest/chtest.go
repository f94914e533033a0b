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
	"os"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/glimpse-analytics/glimpse/internal/chconn"
	"github.com/glimpse-analytics/glimpse/migrations"
)

// EnvAddr names the environment variable with the server's address.
const EnvAddr = "GLIMPSE_TEST_CLICKHOUSE"

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
