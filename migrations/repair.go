package migrations

import (
	"context"
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/glimpse-analytics/glimpse/internal/chconn"
)

// repair brings every host of the cluster up to the schema the others hold.
// A migration runs once, ON CLUSTER, so a host that was not in the cluster
// then (one added later), or that lost its tables, misses what it created.
// Every table, Distributed table and view of the database that some host
// has is created on the cluster IF NOT EXISTS from that host's own
// definition (system.tables' create_table_query, so with the columns every
// later migration added): the hosts that have it keep theirs, the others
// get it, and a replicated table created there fetches its shard's rows
// from the other replicas. Storage tables come first, then Distributed
// tables, then views (whose target must exist).
func (r *Runner) repair(ctx context.Context) error {
	ctx = r.settings(ctx)
	hosts, err := r.clusterHosts(ctx, false)
	if err != nil {
		return err
	}
	type object struct{ engine, create string }
	all := map[string]object{}
	has := map[string]map[string]bool{}
	for _, h := range hosts {
		conn, err := r.Dial(ctx, h)
		if err != nil {
			return fmt.Errorf("cannot check the tables of cluster host %s: %w", h, err)
		}
		tctx, cancel := context.WithTimeout(ctx, r.Timeout)
		tables, err := hostTables(tctx, conn, r.target.Database)
		cancel()
		conn.Close()
		if err != nil {
			return fmt.Errorf("cannot check the tables of cluster host %s: %w", h, err)
		}
		has[h] = map[string]bool{}
		for name, o := range tables {
			has[h][name] = true
			if _, ok := all[name]; !ok {
				all[name] = object{o[0], o[1]}
			}
		}
	}
	var missing []string
	for name := range all {
		for _, h := range hosts {
			if !has[h][name] {
				missing = append(missing, name)
				break
			}
		}
	}
	rank := func(engine string) int {
		switch engine {
		case "Distributed":
			return 1
		case "MaterializedView", "View":
			return 2
		}
		return 0
	}
	sort.Slice(missing, func(i, j int) bool {
		a, b := all[missing[i]], all[missing[j]]
		if rank(a.engine) != rank(b.engine) {
			return rank(a.engine) < rank(b.engine)
		}
		return missing[i] < missing[j]
	})
	for _, name := range missing {
		o := all[name]
		// A view's inner table (.inner.*) comes with its view.
		if strings.HasPrefix(name, ".inner.") {
			continue
		}
		stmt, err := onClusterIfNotExists(o.create, r.target.Cluster)
		if err != nil {
			return err
		}
		var without []string
		for _, h := range hosts {
			if !has[h][name] {
				without = append(without, h)
			}
		}
		r.log.Info("creating a table missing on cluster hosts", "table", name, "hosts", strings.Join(without, ","))
		sctx, cancel := context.WithTimeout(ctx, r.Timeout)
		err = r.conn.Exec(sctx, stmt)
		cancel()
		if err != nil {
			return fmt.Errorf("cannot create %s.%s on cluster hosts %s: %w", r.target.Database, name, strings.Join(without, ","), err)
		}
	}
	return nil
}

// clusterHosts lists host:port of every host of the cluster, or of the
// first replica of each shard.
func (r *Runner) clusterHosts(ctx context.Context, perShard bool) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, r.Timeout)
	defer cancel()
	shards, err := chconn.ClusterHosts(ctx, r.conn, r.target.Cluster)
	if err != nil {
		return nil, err
	}
	var hosts []string
	for _, replicas := range shards {
		if perShard {
			replicas = replicas[:1]
		}
		hosts = append(hosts, replicas...)
	}
	return hosts, nil
}

// hostTables maps each table of the database on one host to its engine
// and CREATE statement.
func hostTables(ctx context.Context, conn driver.Conn, db string) (map[string][2]string, error) {
	rows, err := conn.Query(ctx, "SELECT name, engine, create_table_query FROM system.tables WHERE database = ?", db)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string][2]string{}
	for rows.Next() {
		var name, engine, create string
		if err := rows.Scan(&name, &engine, &create); err != nil {
			return nil, err
		}
		out[name] = [2]string{engine, create}
	}
	return out, rows.Err()
}

var createHead = regexp.MustCompile(`^CREATE (TABLE|MATERIALIZED VIEW|VIEW) ((?:` + "`[^`]+`" + `|[A-Za-z0-9_]+)\.(?:` + "`[^`]+`" + `|[A-Za-z0-9_.]+)) `)

// onClusterIfNotExists turns a stored CREATE statement into one that
// creates the object on every host of the cluster where it is missing.
func onClusterIfNotExists(create, cluster string) (string, error) {
	m := createHead.FindStringSubmatchIndex(create)
	if m == nil {
		return "", fmt.Errorf("cannot repeat a table's definition on the cluster: unexpected form %.80q", create)
	}
	kind, name := create[m[2]:m[3]], create[m[4]:m[5]]
	return "CREATE " + kind + " IF NOT EXISTS " + name + " ON CLUSTER " + quoteIdent(cluster) + " " + create[m[1]:], nil
}
