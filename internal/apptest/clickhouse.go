package apptest

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/glimpse-analytics/glimpse/internal/chconn"
	"github.com/glimpse-analytics/glimpse/internal/chtest"
)

// ClickHouse is a ClickHouse server of the test's own, on free ports with
// its data in a temporary directory, started and stopped with the
// project's scripts/clickhouse, for a test that takes the database away
// from the binary. The shared test server (chtest) is never stopped.
type ClickHouse struct {
	// Port is the native protocol's port on 127.0.0.1.
	Port int

	t      testing.TB
	script string
	env    []string
}

// StartClickHouse starts a private server and stops it when t ends. It
// skips like the other integration tests when no test server is given
// (a sign that ClickHouse is not installed) and under -short.
func StartClickHouse(t testing.TB) *ClickHouse {
	t.Helper()
	chtest.Addr(t)
	if testing.Short() {
		t.Skip("starts a ClickHouse server")
	}
	ch := &ClickHouse{t: t, Port: FreePort(t), script: filepath.Join(repoRoot(t), "scripts", "clickhouse")}
	ch.env = append(CleanEnv(),
		fmt.Sprintf("GLIMPSE_CH_PORT=%d", ch.Port),
		fmt.Sprintf("GLIMPSE_CH_HTTP_PORT=%d", FreePort(t)),
		fmt.Sprintf("GLIMPSE_CH_INTERSERVER_PORT=%d", FreePort(t)),
		"GLIMPSE_CH_DIR="+t.TempDir())
	ch.Start()
	t.Cleanup(ch.Stop)
	return ch
}

// Start starts the server again after Stop, on the same data; it returns
// once the server answers.
func (ch *ClickHouse) Start() { ch.run("start") }

// Stop stops the server; stopping a stopped server does nothing.
func (ch *ClickHouse) Stop() { ch.run("stop") }

func (ch *ClickHouse) run(arg string) {
	ch.t.Helper()
	cmd := exec.Command(ch.script, arg)
	cmd.Env = ch.env
	if out, err := cmd.CombinedOutput(); err != nil {
		ch.t.Fatalf("scripts/clickhouse %s: %v\n%s", arg, err, out)
	}
}

// DSN is the server's database glimpse, for --clickhouse.
func (ch *ClickHouse) DSN() string {
	return fmt.Sprintf("clickhouse://127.0.0.1:%d/glimpse", ch.Port)
}

// Connect opens a connection to the server's database (after serve has
// created it); it is closed when t ends.
func (ch *ClickHouse) Connect() driver.Conn {
	ch.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := chconn.Open(ctx, ch.DSN())
	if err != nil {
		ch.t.Fatal(err)
	}
	ch.t.Cleanup(func() { conn.Close() })
	return conn
}

// QueryCount runs q, which selects one UInt64 (a count()), with a 5 s
// bound.
func QueryCount(conn driver.Conn, q string) (uint64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var n uint64
	err := conn.QueryRow(ctx, q).Scan(&n)
	return n, err
}

// Count is QueryCount that fails t on an error.
func Count(t testing.TB, conn driver.Conn, q string) uint64 {
	t.Helper()
	n, err := QueryCount(conn, q)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// WaitRows polls until the events table holds at least want rows and
// returns when it did; it fails t after limit. A failing query counts as
// not yet: the server may be starting.
func WaitRows(t testing.TB, conn driver.Conn, want uint64, limit time.Duration) time.Time {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		n, err := QueryCount(conn, "SELECT count() FROM events")
		if err == nil && n >= want {
			return time.Now()
		}
		if time.Now().After(deadline) {
			t.Fatalf("events holds %d rows (err %v) after %v, want %d", n, err, limit, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
