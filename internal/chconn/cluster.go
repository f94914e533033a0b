package chconn

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// Changing stored rows on one server or on a cluster. A database migrated
// with --cluster NAME (migrations) holds each table's rows in <t>_local,
// a Replicated* table on every host, behind a Distributed table <t>: reads
// and inserts go through <t>, but a mutation or a partition drop must name
// <t>_local (ClickHouse refuses them on a Distributed table). It runs on
// one replica of each shard, which passes it to the shard's other
// replicas through ZooKeeper. Not ON CLUSTER: on ClickHouse 18.16 the
// replicas of a shard race for such a task, and the loser's DDL worker
// stops ("Node exists: .../shards/.../executed"), so that every later ON
// CLUSTER statement waits for it until its server restarts.

// Store is a connection and where its database's tables are.
type Store struct {
	Conn driver.Conn
	// Cluster is the cluster the database was migrated for (the global
	// --cluster option); empty: one server.
	Cluster string
	// Dial connects to one host of the cluster (host:port as
	// system.clusters lists it) in the database, with the store's
	// credentials (DialDSN); on a cluster Alter and WaitMutations need it.
	Dial func(ctx context.Context, addr string) (driver.Conn, error)
}

// DialDSN returns a Store.Dial that connects as dsn does, to addr.
func DialDSN(dsn string) (func(ctx context.Context, addr string) (driver.Conn, error), error) {
	opts, err := ParseDSN(dsn)
	if err != nil {
		return nil, err
	}
	return func(ctx context.Context, addr string) (driver.Conn, error) {
		host := *opts
		host.Addr = []string{addr}
		return clickhouse.Open(&host)
	}, nil
}

// Alter runs ALTER TABLE table <command>, its arguments bound
// client-side: on one server on table; on a cluster on table_local, on
// one replica of each shard (the first that answers; a mutation may
// still be running when it returns: WaitMutations).
func (s Store) Alter(ctx context.Context, table, command string, args ...any) error {
	if s.Cluster == "" {
		return s.Conn.Exec(ctx, "ALTER TABLE "+table+" "+command, args...)
	}
	shards, err := s.hosts(ctx)
	if err != nil {
		return err
	}
	for _, replicas := range shards {
		var errs []error
		for _, h := range replicas {
			err := s.onHost(ctx, h, func(c driver.Conn) error {
				return c.Exec(ctx, "ALTER TABLE "+table+"_local "+command, args...)
			})
			if err == nil {
				errs = nil
				break
			}
			errs = append(errs, err)
		}
		if len(errs) > 0 {
			return fmt.Errorf("ALTER TABLE %s_local on no replica of a shard: %w", table, errors.Join(errs...))
		}
	}
	return nil
}

// hosts lists the cluster's hosts (host:port) by shard.
func (s Store) hosts(ctx context.Context) ([][]string, error) {
	if s.Dial == nil {
		return nil, errors.New("chconn: a cluster's Store has no Dial")
	}
	return ClusterHosts(ctx, s.Conn, s.Cluster)
}

// ClusterHosts lists the hosts of cluster (host:port, an IPv6 address in
// brackets) as conn's server knows them (system.clusters): one slice per
// shard in shard order, each in replica order.
func ClusterHosts(ctx context.Context, conn driver.Conn, cluster string) ([][]string, error) {
	rows, err := conn.Query(ctx, "SELECT shard_num, host_address, port FROM system.clusters WHERE cluster = ? ORDER BY shard_num, replica_num", cluster)
	if err != nil {
		return nil, fmt.Errorf("cannot read system.clusters: %w", err)
	}
	defer rows.Close()
	var out [][]string
	last := uint32(0)
	for rows.Next() {
		var shard uint32
		var addr string
		var port uint16
		if err := rows.Scan(&shard, &addr, &port); err != nil {
			return nil, fmt.Errorf("cannot read system.clusters: %w", err)
		}
		if len(out) == 0 || shard != last {
			out, last = append(out, nil), shard
		}
		out[len(out)-1] = append(out[len(out)-1], net.JoinHostPort(addr, strconv.Itoa(int(port))))
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("cannot read system.clusters: %w", err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("cluster %s is not in system.clusters (remote_servers) of the host connected to", cluster)
	}
	return out, nil
}

func (s Store) onHost(ctx context.Context, addr string, f func(driver.Conn) error) error {
	c, err := s.Dial(ctx, addr)
	if err != nil {
		return fmt.Errorf("cluster host %s: %w", addr, err)
	}
	defer c.Close()
	if err := f(c); err != nil {
		return fmt.Errorf("cluster host %s: %w", addr, err)
	}
	return nil
}

// Storage names table's storage: table on one server, table_local on a
// cluster (as system.parts and system.mutations name it).
func (s Store) Storage(table string) string {
	if s.Cluster == "" {
		return table
	}
	return table + "_local"
}

// System returns the FROM clause reading the system table name (parts)
// of every shard: system.name on one server, through
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
// late. ReplicatedMergeTree never merges or mutates the last part a
// quorum INSERT wrote in a partition until the next one there: use it for
// tables no mutation changes (segments, annotations, report logs). On
// one server ctx is returned as it is.
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

// WaitMutations waits until no mutation of table is pending, on a
// cluster on every host (every replica of every shard), or timeout
// passes.
func (s Store) WaitMutations(ctx context.Context, table string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	wait := func(c driver.Conn, where string) error {
		for d := 20 * time.Millisecond; ; d = min(2*d, time.Second) {
			var pending uint64
			err := c.QueryRow(ctx, "SELECT count() FROM system.mutations WHERE database = currentDatabase() AND table = ? AND is_done = 0",
				s.Storage(table)).Scan(&pending)
			if err != nil {
				return fmt.Errorf("cannot read system.mutations%s: %w", where, err)
			}
			if pending == 0 {
				return nil
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("mutation of %s not done%s after %v (see system.mutations)", table, where, timeout)
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(d):
			}
		}
	}
	if s.Cluster == "" {
		return wait(s.Conn, "")
	}
	shards, err := s.hosts(ctx)
	if err != nil {
		return err
	}
	for _, replicas := range shards {
		for _, h := range replicas {
			if err := s.onHost(ctx, h, func(c driver.Conn) error { return wait(c, " on "+h) }); err != nil {
				return err
			}
		}
	}
	return nil
}
