package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/glimpse-analytics/glimpse/internal/apptest"
	"github.com/glimpse-analytics/glimpse/migrations"
)

// The live cluster of the tests: GLIMPSE_TEST_CLUSTER lists host:port of
// every server (scripts/cluster env prints it; make test starts the
// cluster and sets it), GLIMPSE_TEST_CLUSTER_NAME names the cluster in
// their remote_servers (default glimpse_cluster).
type testCluster struct {
	name  string
	hosts []string
	conns []driver.Conn
	db    string
}

func liveCluster(t *testing.T) *testCluster {
	t.Helper()
	list := os.Getenv("GLIMPSE_TEST_CLUSTER")
	if list == "" {
		t.Skip("cluster test skipped: set GLIMPSE_TEST_CLUSTER=host:port,... of a ClickHouse cluster (scripts/cluster start; make test does)")
	}
	c := &testCluster{name: os.Getenv("GLIMPSE_TEST_CLUSTER_NAME"), hosts: strings.Split(list, ",")}
	if c.name == "" {
		c.name = "glimpse_cluster"
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	c.db = "glimpse_ctest_" + hex.EncodeToString(b[:])
	for _, h := range c.hosts {
		conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{h}, DialTimeout: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		if err := conn.Ping(context.Background()); err != nil {
			t.Fatalf("cluster host %s does not answer: %v", h, err)
		}
		c.conns = append(c.conns, conn)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		// Each host drops its own copy (replicated tables leave ZooKeeper with it).
		for i, conn := range c.conns {
			if err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+c.db); err != nil {
				t.Errorf("cannot drop %s on %s: %v", c.db, c.hosts[i], err)
			}
			conn.Close()
		}
	})
	return c
}

func (c *testCluster) dsn(host int) string { return "clickhouse://" + c.hosts[host] + "/" + c.db }

func (c *testCluster) migrate(t *testing.T, host int) string {
	t.Helper()
	start := time.Now()
	out, errOut, code := apptest.Run(t, nil, "migrate", "--cluster", c.name, "--clickhouse", c.dsn(host))
	if code != 0 {
		t.Fatalf("migrate --cluster %s via %s: code %d\n%s\n%s", c.name, c.hosts[host], code, out, errOut)
	}
	t.Logf("migrate via %s took %v", c.hosts[host], time.Since(start).Round(time.Millisecond))
	return out + errOut
}

// tables maps each host to the sorted names of the test database's tables.
func (c *testCluster) tables(t *testing.T) []string {
	t.Helper()
	var out []string
	for i, conn := range c.conns {
		var names []string
		if err := conn.QueryRow(context.Background(),
			"SELECT arraySort(groupArray(name)) FROM system.tables WHERE database = ?", c.db).Scan(&names); err != nil {
			t.Fatalf("%s: %v", c.hosts[i], err)
		}
		out = append(out, strings.Join(names, " "))
	}
	return out
}

// syncReplicas waits until every replica holds what its shard was given.
func (c *testCluster) syncReplicas(t *testing.T, tables ...string) {
	t.Helper()
	for i, conn := range c.conns {
		for _, tb := range tables {
			if err := conn.Exec(context.Background(), "SYSTEM SYNC REPLICA "+c.db+"."+tb); err != nil {
				t.Fatalf("%s: SYSTEM SYNC REPLICA %s: %v", c.hosts[i], tb, err)
			}
		}
	}
}

// TestClusterMigrate: `glimpse migrate --cluster` on a live cluster from
// an empty database creates every table on every host; a second run, via
// another host, applies nothing; events written through the Distributed
// tables read back the same from every host, raw and through the rollups;
// a host whose tables were dropped gets them back, with its shard's rows,
// when migrate runs again.
func TestClusterMigrate(t *testing.T) {
	c := liveCluster(t)
	if len(c.hosts) < 2 {
		t.Fatalf("GLIMPSE_TEST_CLUSTER lists %d host(s); the test needs at least 2", len(c.hosts))
	}
	out := c.migrate(t, 0)
	all, _ := migrations.Load(migrations.Files())
	if !strings.Contains(out, "applied "+all[len(all)-1].Name) {
		t.Fatalf("first migrate did not apply %s:\n%s", all[len(all)-1].Name, out)
	}
	tables := c.tables(t)
	for _, want := range []string{"events", "events_local", "events_hourly_mv", "sessions_dims_input_mv", "schema_migrations",
		"sealed_salts_local", "report_unsubscribes"} {
		if !strings.Contains(" "+tables[0]+" ", " "+want+" ") {
			t.Errorf("%s lacks %s: %s", c.hosts[0], want, tables[0])
		}
	}
	if strings.Contains(" "+tables[0]+" ", " salts ") {
		t.Errorf("%s still has salts (dropped by 0009): %s", c.hosts[0], tables[0])
	}
	for i := range c.hosts {
		if tables[i] != tables[0] {
			t.Errorf("host %s has tables\n%s\nhost %s has\n%s", c.hosts[i], tables[i], c.hosts[0], tables[0])
		}
		// Every host is a replica of the bookkeeping; the one migrate
		// wrote through answers at once, the others once they fetched
		// the rows (one was a row short right after migrate, once).
		if err := c.conns[i].Exec(context.Background(), "SYSTEM SYNC REPLICA "+c.db+".schema_migrations"); err != nil {
			t.Fatalf("%s: SYSTEM SYNC REPLICA schema_migrations: %v", c.hosts[i], err)
		}
		var n uint64
		if err := c.conns[i].QueryRow(context.Background(), "SELECT count() FROM "+c.db+".schema_migrations").Scan(&n); err != nil || int(n) != len(all) {
			t.Errorf("%s: schema_migrations has %d rows (%v), want %d", c.hosts[i], n, err, len(all))
		}
	}

	// A second run, through the last host, applies nothing.
	if out := c.migrate(t, len(c.hosts)-1); !strings.Contains(out, "nothing to apply") || strings.Contains(out, "applied 0") {
		t.Fatalf("second migrate applied something:\n%s", out)
	}
	// /readyz's check, on a host that did not migrate.
	hc, err := clickhouse.Open(&clickhouse.Options{Addr: []string{c.hosts[len(c.hosts)-1]}, Auth: clickhouse.Auth{Database: c.db}})
	if err != nil {
		t.Fatal(err)
	}
	defer hc.Close()
	if ok, err := migrations.Current(context.Background(), hc); !ok || err != nil {
		t.Errorf("Current on %s = %v, %v; want true", c.hosts[len(c.hosts)-1], ok, err)
	}

	// 2,000 page views of 300 visitors over 5 hours, through the
	// Distributed table (sharded by visitor), waiting for every shard.
	ins := clickhouse.Context(context.Background(), clickhouse.WithSettings(clickhouse.Settings{"insert_distributed_sync": 1}))
	if err := c.conns[0].Exec(ins, "INSERT INTO "+c.db+".events (site_id, event_id, ts, type, visitor_id, session_id, pathname) "+
		"SELECT 'cluster.test', generateUUIDv4(), toDateTime('2026-11-02 10:00:00') + number * 9, 'pageview', "+
		"1 + number % 300, 1 + number % 300, concat('/p', toString(number % 7)) FROM system.numbers LIMIT 2000"); err != nil {
		t.Fatal(err)
	}
	c.syncReplicas(t, "events_local", "events_hourly_local", "pages_hourly_local")
	shardRows := map[string]uint64{}
	for i, conn := range c.conns {
		var n, visitors, pageviews, hourlyVisitors, pages uint64
		if err := conn.QueryRow(context.Background(), "SELECT count(), uniqExact(visitor_id) FROM "+c.db+".events WHERE site_id = 'cluster.test'").Scan(&n, &visitors); err != nil {
			t.Fatal(err)
		}
		if err := conn.QueryRow(context.Background(), "SELECT sumMerge(pageviews), uniqMerge(visitors) FROM "+c.db+".events_hourly WHERE site_id = 'cluster.test'").Scan(&pageviews, &hourlyVisitors); err != nil {
			t.Fatal(err)
		}
		if err := conn.QueryRow(context.Background(), "SELECT sumMerge(pageviews) FROM "+c.db+".pages_hourly WHERE site_id = 'cluster.test'").Scan(&pages); err != nil {
			t.Fatal(err)
		}
		if n != 2000 || visitors != 300 || pageviews != 2000 || hourlyVisitors != 300 || pages != 2000 {
			t.Errorf("%s reads %d events of %d visitors, rollups %d page views of %d visitors, %d by page; want 2000, 300, 2000, 300, 2000",
				c.hosts[i], n, visitors, pageviews, hourlyVisitors, pages)
		}
		var local uint64
		if err := conn.QueryRow(context.Background(), "SELECT count() FROM "+c.db+".events_local").Scan(&local); err != nil {
			t.Fatal(err)
		}
		var shard string
		if err := conn.QueryRow(context.Background(), "SELECT toString(shard_num) FROM system.clusters WHERE cluster = ? AND is_local", c.name).Scan(&shard); err == nil {
			if prev, ok := shardRows[shard]; ok && prev != local {
				t.Errorf("shard %s: replicas hold %d and %d rows", shard, prev, local)
			}
			shardRows[shard] = local
		}
	}
	if len(shardRows) > 1 {
		for s, n := range shardRows {
			if n == 0 || n == 2000 {
				t.Errorf("shard %s holds %d of 2000 rows: the Distributed table did not spread them by visitor (%v)", s, n, shardRows)
			}
		}
	}
	t.Logf("rows per shard: %v", shardRows)

	// The last host loses its tables (and the view writing its rollup);
	// migrate through the first host brings them back, with its shard's rows.
	last := c.conns[len(c.conns)-1]
	for _, s := range []string{"DROP TABLE " + c.db + ".events_hourly_mv", "DROP TABLE " + c.db + ".events_local", "DROP TABLE " + c.db + ".events"} {
		if err := last.Exec(context.Background(), s); err != nil {
			t.Fatal(err)
		}
	}
	out = c.migrate(t, 0)
	if !strings.Contains(out, "creating a table missing on cluster hosts") {
		t.Errorf("migrate did not say it repaired a host:\n%s", out)
	}
	if got := c.tables(t); got[len(got)-1] != tables[0] {
		t.Fatalf("after repair %s has\n%s\nwant\n%s", c.hosts[len(c.hosts)-1], got[len(got)-1], tables[0])
	}
	c.syncReplicas(t, "events_local")
	var want, got uint64
	var shard string
	if err := last.QueryRow(context.Background(), "SELECT toString(shard_num) FROM system.clusters WHERE cluster = ? AND is_local", c.name).Scan(&shard); err != nil {
		t.Fatal(err)
	}
	want = shardRows[shard]
	if err := last.QueryRow(context.Background(), "SELECT count() FROM "+c.db+".events_local").Scan(&got); err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Errorf("repaired host holds %d rows of its shard, want %d", got, want)
	}
	var n uint64
	if err := last.QueryRow(context.Background(), "SELECT count() FROM "+c.db+".events WHERE site_id = 'cluster.test'").Scan(&n); err != nil || n != 2000 {
		t.Errorf("repaired host reads %d events through its Distributed table (%v), want 2000", n, err)
	}
	// A page view written after the repair reaches the repaired host's rollup.
	if err := last.Exec(context.Background(), "INSERT INTO "+c.db+".events_local (site_id, event_id, ts, type, visitor_id) SELECT 'cluster.after', generateUUIDv4(), toDateTime('2026-11-03 10:00:00'), 'pageview', 7"); err != nil {
		t.Fatal(err)
	}
	var pv uint64
	if err := last.QueryRow(context.Background(), "SELECT sumMerge(pageviews) FROM "+c.db+".events_hourly_local WHERE site_id = 'cluster.after'").Scan(&pv); err != nil || pv != 1 {
		t.Errorf("the repaired host's view gave %d page views to its rollup (%v), want 1", pv, err)
	}
}

// TestClusterServeStats: glimpse serve --cluster answers the Stats API
// through the cluster's Distributed tables, also the questions whose SQL
// filters events by their visits or folds keys (which ClickHouse refuses
// over Distributed tables unless told how to run them), and the same
// numbers through any host.
func TestClusterServeStats(t *testing.T) {
	c := liveCluster(t)
	c.migrate(t, 0)
	const site, key = "cluster.example", "cluster-stats-key"
	cfg := apptest.WriteConfig(t, "sites:\n  - domain: "+site+"\n    privacy: {aggregates: exact, k_anonymity: 2}\n"+
		"api_keys:\n  - name: t\n    sha256: \""+apptest.KeyHash(key)+"\"\n    sites: ["+site+"]\n")
	var srvs []*apptest.Server
	for _, h := range []int{0, len(c.hosts) - 1} {
		srvs = append(srvs, apptest.Start(t, nil, "--config", cfg, "--cluster", c.name, "--clickhouse", c.dsn(h),
			"--trusted-proxies", "127.0.0.1/32", "--flush-interval", "100ms", "--session-flush-interval", "200ms"))
	}
	// 12 visitors (sharded by visitor id over both shards): each views /
	// and half of them /pricing; three (who view both) come with Firefox.
	uas := []string{"Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"}
	for i := range 12 {
		ua := uas[1]
		if i%4 == 0 {
			ua = uas[0]
		}
		for j, path := range []string{"/", "/pricing"} {
			if j == 1 && i%2 == 1 {
				continue
			}
			body := fmt.Sprintf(`{"n":"pageview","u":"https://%s%s","d":%q,"w":1280}`, site, path, site)
			code, h := srvs[0].Post(t, "/api/event", body, map[string][]string{
				"User-Agent": {ua}, "X-Forwarded-For": {fmt.Sprintf("198.51.100.%d", i+1)}})
			if code != 202 || h.Get("X-Glimpse-Dropped") != "" {
				t.Fatalf("page view: %d %s", code, h.Get("X-Glimpse-Dropped"))
			}
		}
	}
	get := func(s *apptest.Server, params string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", s.URL()+"/api/v1/stats/"+params+"&site_id="+site+"&period=day", nil)
		req.Header.Set("Authorization", "Bearer "+key)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	// The writes reach the shards in the background: wait for them.
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, body := get(srvs[0], "aggregate?metrics=pageviews,visits")
		if strings.Contains(body, `"pageviews":{"value":18}`) && strings.Contains(body, `"visits":{"value":12}`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the events did not arrive: %s", body)
		}
		time.Sleep(200 * time.Millisecond)
	}
	for _, q := range []struct{ params, want string }{
		// visits filtered by an event: session_id IN (SELECT ... FROM events)
		{"aggregate?metrics=visitors,visits,bounce_rate&filters=" + url.QueryEscape("event:page==/pricing"),
			`"bounce_rate":{"value":0},"visitors":{"value":6},"visits":{"value":6}`},
		// events filtered by their visits: session_id IN (SELECT ... FROM sessions)
		{"aggregate?metrics=visitors,pageviews&filters=" + url.QueryEscape("visit:browser==Firefox"),
			`"pageviews":{"value":6},"visitors":{"value":3}`},
		// the join of events to their visits, folded keys (k = 2)
		{"breakdown?property=visit:entry_page&metrics=visitors,pageviews&filters=" + url.QueryEscape("event:page==/pricing"),
			`[{"entry_page":"/","pageviews":6,"visitors":6}]`},
		{"breakdown?property=event:page&metrics=visitors,bounce_rate", `{"bounce_rate":50,"page":"/","visitors":12},{"bounce_rate":0,"page":"/pricing","visitors":6}`},
	} {
		for i, s := range srvs {
			code, body := get(s, q.params)
			if code != 200 || !strings.Contains(body, q.want) {
				t.Errorf("serve via %s: %s: %d %s\nwant it to hold %s", c.hosts[[]int{0, len(c.hosts) - 1}[i]], q.params, code, body, q.want)
			}
		}
	}
}
