package chconn

import (
	"context"
	"fmt"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// Changing stored rows on one server or on a cluster. A database migrated
// with --cluster NAME (migrations) holds each table's rows in <t>_local,
// a Replicated* table on every host, behind a Distributed table <t>: reads
// and inserts go through <t>, but a mutation or a partition drop must name
// <t>_local, ON CLUSTER (ClickHouse refuses them on a Distributed table),
// and each shard's replicas then repeat it through ZooKeeper.

// Store is a connection and where its database's tables are.
type Store struct {
	Conn driver.Conn
	// Cluster is the cluster the database was migrated for (the global
	// --cluster option); empty: one server.
	Cluster string
}

// Alter runs ALTER TABLE table <command>, its arguments bound
// client-side: on one server on table, on a cluster on every shard's
// table_local ON CLUSTER (the statement returns once every host has
// taken it; a mutation may still be running: WaitMutations).
func (s Store) Alter(ctx context.Context, table, command string, args ...any) error {
	if s.Cluster == "" {
		return s.Conn.Exec(ctx, "ALTER TABLE "+table+" "+command, args...)
	}
	db, err := s.Database(ctx)
	if err != nil {
		return err
	}
	// An ON CLUSTER statement runs in the default database of each host
	// (18.16): the name is qualified.
	return s.Conn.Exec(ctx, "ALTER TABLE "+db+"."+table+"_local ON CLUSTER "+s.Cluster+" "+command, args...)
}

// Storage names table's storage: table on one server, table_local on a
// cluster (as system.parts and system.mutations name it).
func (s Store) Storage(table string) string {
	if s.Cluster == "" {
		return table
	}
	return table + "_local"
}

// System returns the FROM clause reading the system table name (parts,
// mutations) of every shard: system.name on one server, through
// cluster(NAME, system, name) on a cluster, which asks one replica of
// each shard.
func (s Store) System(name string) string {
	if s.Cluster == "" {
		return "system." + name
	}
	return "cluster('" + s.Cluster + "', system, " + name + ")"
}

// Sync returns ctx with insert_distributed_sync=1: an INSERT into a
// Distributed table returns once every shard has its rows, so what a user
// saved is read back at once. (A setting of no effect on one server.)
func Sync(ctx context.Context) context.Context {
	return clickhouse.Context(ctx, clickhouse.WithSettings(clickhouse.Settings{"insert_distributed_sync": 1}))
}

// Database returns the connection's database (currentDatabase() means
// `default` in a query a cluster() table function sends to other hosts).
func (s Store) Database(ctx context.Context) (string, error) {
	var db string
	if err := s.Conn.QueryRow(ctx, "SELECT currentDatabase()").Scan(&db); err != nil {
		return "", fmt.Errorf("cannot read the current database: %w", err)
	}
	return db, nil
}

// WaitMutations waits until no mutation of table is pending (on a
// cluster: on one replica of each shard, System), or timeout passes.
func (s Store) WaitMutations(ctx context.Context, table string, timeout time.Duration) error {
	db, err := s.Database(ctx)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(timeout)
	for wait := 20 * time.Millisecond; ; wait = min(2*wait, time.Second) {
		var pending uint64
		err := s.Conn.QueryRow(ctx, "SELECT count() FROM "+s.System("mutations")+" WHERE database = ? AND table = ? AND is_done = 0",
			db, s.Storage(table)).Scan(&pending)
		if err != nil {
			return fmt.Errorf("cannot read system.mutations: %w", err)
		}
		if pending == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("mutation of %s not done after %v (see system.mutations)", table, timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
	}
}
