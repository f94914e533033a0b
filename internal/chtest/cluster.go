package chtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/glimpse-analytics/glimpse/internal/chconn"
	"github.com/glimpse-analytics/glimpse/migrations"
)

// EnvCluster names the environment variable listing host:port of every
// server of the test cluster (scripts/cluster env prints it; make test
// starts the cluster and sets it); EnvClusterName names the cluster in
// their remote_servers (default glimpse_cluster).
const (
	EnvCluster     = "GLIMPSE_TEST_CLUSTER"
	EnvClusterName = "GLIMPSE_TEST_CLUSTER_NAME"
)

// Cluster is one test's database on the test cluster, migrated for it:
// DB's connection goes to the first host (the one the application
// would be given), Hosts and Conns reach every host, each connection in
// the database.
type Cluster struct {
	DB
	Name  string
	Hosts []string
	Conns []driver.Conn
}

// MigratedCluster creates a fresh database on the test cluster, applies
// every migration to it as `glimpse migrate --cluster` does, and drops it
// on every host on cleanup. It skips t when EnvCluster is not set.
func MigratedCluster(t testing.TB) *Cluster {
	t.Helper()
	list := os.Getenv(EnvCluster)
	if list == "" {
		t.Skipf("cluster test skipped: set %s=host:port,... of a ClickHouse cluster (scripts/cluster start; make test does)", EnvCluster)
	}
	c := &Cluster{Name: os.Getenv(EnvClusterName), Hosts: strings.Split(list, ",")}
	if c.Name == "" {
		c.Name = "glimpse_cluster"
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	c.Database = "glimpse_ctest_" + hex.EncodeToString(b[:])
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		// Each host drops its own copy (replicated tables leave ZooKeeper with it).
		for i, conn := range c.Conns {
			if err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+c.Database); err != nil {
				t.Errorf("chtest: cannot drop %s on %s: %v", c.Database, c.Hosts[i], err)
			}
			conn.Close()
		}
	})
	// The database is created ON CLUSTER by the migrations; connect
	// without it first.
	boot, err := clickhouse.Open(&clickhouse.Options{Addr: []string{c.Hosts[0]}, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatalf("chtest: %v", err)
	}
	defer boot.Close()
	r := migrations.NewRunner(boot, migrations.Target{Database: c.Database, Cluster: c.Name}, nil, nil)
	r.Timeout = 3 * time.Minute
	r.Dial = func(ctx context.Context, addr string) (driver.Conn, error) {
		return clickhouse.Open(&clickhouse.Options{Addr: []string{addr}, DialTimeout: 5 * time.Second})
	}
	if _, err := r.Apply(ctx); err != nil {
		t.Fatalf("chtest: migrate --cluster %s: %v", c.Name, err)
	}
	for _, h := range c.Hosts {
		conn, err := chconn.Open(ctx, "clickhouse://"+h+"/"+c.Database)
		if err != nil {
			t.Fatalf("chtest: cluster host %s: %v", h, err)
		}
		c.Conns = append(c.Conns, conn)
	}
	c.Conn, c.Addr, c.DSN = c.Conns[0], c.Hosts[0], "clickhouse://"+c.Hosts[0]+"/"+c.Database
	return c
}

// SyncInsert returns ctx with insert_distributed_sync=1: an INSERT into a
// Distributed table returns once every shard holds its rows.
func SyncInsert(ctx context.Context) context.Context {
	return clickhouse.Context(ctx, clickhouse.WithSettings(clickhouse.Settings{"insert_distributed_sync": 1}))
}

// SyncReplicas waits until every replica of each table (a *_local
// table's name) holds what its shard was given.
func (c *Cluster) SyncReplicas(t testing.TB, tables ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for i, conn := range c.Conns {
		for _, tb := range tables {
			if err := conn.Exec(ctx, "SYSTEM SYNC REPLICA "+c.Database+"."+tb); err != nil {
				t.Fatalf("chtest: %s: SYSTEM SYNC REPLICA %s: %v", c.Hosts[i], tb, err)
			}
		}
	}
}

// LocalTables returns the names of the database's replicated tables
// (*_local) on the first host.
func (c *Cluster) LocalTables(t testing.TB) []string {
	t.Helper()
	var names []string
	if err := c.Conn.QueryRow(context.Background(),
		"SELECT arraySort(groupArray(name)) FROM system.tables WHERE database = ? AND engine LIKE 'Replicated%' AND name LIKE '%\\_local'",
		c.Database).Scan(&names); err != nil {
		t.Fatalf("chtest: %v", err)
	}
	return names
}

// Dial connects to addr, a host of the cluster, in the database: a
// chconn.Store's Dial.
func (c *Cluster) Dial(ctx context.Context, addr string) (driver.Conn, error) {
	return clickhouse.Open(&clickhouse.Options{Addr: []string{addr}, Auth: clickhouse.Auth{Database: c.Database}, DialTimeout: 5 * time.Second})
}
