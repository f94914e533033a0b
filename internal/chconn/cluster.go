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

// Sync returns ctx for an INSERT whose rows are read back at once, on any
// host: on a cluster the INSERT into the Distributed table returns once
// its shard holds the rows (insert_distributed_sync) on every replica
// (insert_quorum: the replicas of the smallest shard), so that a read
// through any host, which may ask either replica, sees them. While a
// replica of the shard is down such an INSERT fails ("Number of alive
// replicas ... is less than requested quorum") rather than be read back
// late. On one server ctx is returned as it is.
func (s Store) Sync(ctx context.Context) (context.Context, error) {
	if s.Cluster == "" {
		return ctx, nil
	}
	var replicas uint64
	err := s.Conn.QueryRow(ctx, "SELECT min(n) FROM (SELECT shard_num, count() AS n FROM system.clusters WHERE cluster = ? GROUP BY shard_num)",
		s.Cluster).Scan(&replicas)
	if err != nil {
		return nil, fmt.Errorf("cannot read the replicas of cluster %s: %w", s.Cluster, err)
	}
	set := clickhouse.Settings{"insert_distributed_sync": 1}
	if replicas > 1 {
		set["insert_quorum"] = int(replicas)
		set["insert_quorum_timeout"] = 30_000 // ms
	}
	return clickhouse.Context(ctx, clickhouse.WithSettings(set)), nil
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
