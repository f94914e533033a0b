package migrations_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/glimpse-analytics/glimpse/migrations"
)

// upTo returns the embedded migrations numbered up to n.
func upTo(t *testing.T, n int) fs.FS {
	t.Helper()
	out := fstest.MapFS{}
	entries, err := fs.ReadDir(migrations.Files(), ".")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if v, err := strconv.Atoi(e.Name()[:4]); err != nil || v > n {
			continue
		}
		b, err := fs.ReadFile(migrations.Files(), e.Name())
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = &fstest.MapFile{Data: b}
	}
	return out
}

// TestClusterUpgradeRebuildsRollups upgrades a live cluster holding data
// through the migrations that rebuild rollups from raw rows, which run on
// each shard rather than ON CLUSTER: 0004's backfill of
// sessions_dims_hourly from sessions, 0011's and 0013's rebuild of the
// hours of events_hourly holding email and engagement events, and 0012's
// rewrite of the rollup's values through the Distributed tables. Every
// host then reads the numbers of the raw rows.
func TestClusterUpgradeRebuildsRollups(t *testing.T) {
	list := os.Getenv("GLIMPSE_TEST_CLUSTER")
	if list == "" {
		t.Skip("cluster test skipped: set GLIMPSE_TEST_CLUSTER=host:port,... of a ClickHouse cluster (scripts/cluster start; make test does)")
	}
	name := os.Getenv("GLIMPSE_TEST_CLUSTER_NAME")
	if name == "" {
		name = "glimpse_cluster"
	}
	hosts := strings.Split(list, ",")
	var b [6]byte
	_, _ = rand.Read(b[:])
	db := "glimpse_ctest_" + hex.EncodeToString(b[:])
	var conns []driver.Conn
	for _, h := range hosts {
		conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{h}, DialTimeout: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, conn)
	}
	t.Cleanup(func() {
		for i, conn := range conns {
			if err := conn.Exec(context.Background(), "DROP DATABASE IF EXISTS "+db); err != nil {
				t.Errorf("cannot drop %s on %s: %v", db, hosts[i], err)
			}
			conn.Close()
		}
	})
	c := ctx(t)
	apply := func(files fs.FS) {
		t.Helper()
		r := migrations.NewRunner(conns[0], migrations.Target{Database: db, Cluster: name}, files, nil)
		r.Timeout = 3 * time.Minute
		r.Dial = func(ctx context.Context, addr string) (driver.Conn, error) {
			return clickhouse.Open(&clickhouse.Options{Addr: []string{addr}})
		}
		if _, err := r.Apply(c); err != nil {
			t.Fatal(err)
		}
	}
	sync := clickhouse.Context(c, clickhouse.WithSettings(clickhouse.Settings{"insert_distributed_sync": 1}))
	exec := func(q string) {
		t.Helper()
		if err := conns[0].Exec(sync, q); err != nil {
			t.Fatalf("%v\n%s", err, q)
		}
	}

	// Before 0004: 120 sessions of 120 visitors from France.
	apply(upTo(t, 3))
	// A runner not told about the cluster (glimpse serve's) refuses to
	// apply the rest single-server style.
	plain, err := clickhouse.Open(&clickhouse.Options{Addr: []string{hosts[0]}, Auth: clickhouse.Auth{Database: db}})
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	if _, err := migrations.NewRunner(plain, migrations.Target{Database: db}, nil, nil).Apply(c); err == nil ||
		!strings.Contains(err.Error(), "migrated for a cluster") {
		t.Fatalf("single-server Apply on a cluster's database: %v, want a refusal", err)
	}
	exec("INSERT INTO " + db + ".sessions (site_id, session_id, visitor_id, sign, version, start, ts, pageviews, country_code, channel) " +
		"SELECT 'up.test', number + 1, number + 1, 1, 1, toDateTime('2026-11-02 10:00:00'), toDateTime('2026-11-02 10:05:00'), 1, 'FR', 'search' " +
		"FROM system.numbers LIMIT 120")
	// Before 0011: in one hour, 100 visitors' page views, email opens
	// (visitor 0) and engagement of 10 more visitors; sessions_dims rows
	// with the old channel spelling (through 0008's input table).
	apply(upTo(t, 10))
	exec("INSERT INTO " + db + ".events (site_id, event_id, ts, type, visitor_id) " +
		"SELECT 'up.test', generateUUIDv4(), toDateTime('2026-11-02 10:00:00') + number, " +
		"multiIf(number < 100, 'pageview', number < 110, 'engagement', 'email_open'), " +
		"multiIf(number < 110, number + 1, 0) FROM system.numbers LIMIT 115")
	exec("INSERT INTO " + db + ".sessions_dims_input (site_id, start, dim, value, visitor_ids, with_visitors, d_visits, d_bounces, d_duration, d_pageviews, d_events) " +
		"SELECT 'up.test', toDateTime('2026-11-02 11:00:00'), 'visit:channel', 'social', [number + 500], 1, 1, 0, 0, 1, 1 FROM system.numbers LIMIT 30")
	syncAll := func(tables ...string) {
		t.Helper()
		for _, conn := range conns {
			for _, tb := range tables {
				if err := conn.Exec(c, "SYSTEM SYNC REPLICA "+db+"."+tb); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	syncAll("events_local", "events_hourly_local", "sessions_local", "sessions_dims_hourly_local")
	for i, conn := range conns {
		var v uint64
		if err := conn.QueryRow(c, "SELECT uniqMerge(visitors) FROM "+db+".events_hourly WHERE site_id = 'up.test'").Scan(&v); err != nil {
			t.Fatal(err)
		}
		if v != 111 {
			t.Fatalf("%s: before 0011 events_hourly counts %d visitors, want 111 (the flaw 0011 and 0013 mend)", hosts[i], v)
		}
	}
	apply(nil)

	// The rebuilds delete by mutations, which run after the statement
	// returns: wait for them on every host.
	deadline := time.Now().Add(90 * time.Second)
	for i, conn := range conns {
		for {
			var n uint64
			if err := conn.QueryRow(c, "SELECT count() FROM system.mutations WHERE database = ? AND is_done = 0", db).Scan(&n); err != nil {
				t.Fatal(err)
			}
			if n == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d mutations still running after 90 s", hosts[i], n)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	syncAll("events_hourly_local", "sessions_dims_hourly_local")
	for i, conn := range conns {
		var visitors, pageviews, fr, frVisits, social, oldSocial, oldSearch uint64
		if err := conn.QueryRow(c, "SELECT uniqMerge(visitors), sumMerge(pageviews) FROM "+db+".events_hourly WHERE site_id = 'up.test'").Scan(&visitors, &pageviews); err != nil {
			t.Fatal(err)
		}
		if err := conn.QueryRow(c, "SELECT uniqMerge(visitors), toUInt64(sumMerge(visits)) FROM "+db+".sessions_dims_hourly "+
			"WHERE site_id = 'up.test' AND dim = 'visit:country' AND value = 'FR'").Scan(&fr, &frVisits); err != nil {
			t.Fatal(err)
		}
		if err := conn.QueryRow(c, "SELECT toUInt64(sumMerge(visits)) FROM "+db+".sessions_dims_hourly "+
			"WHERE site_id = 'up.test' AND dim = 'visit:channel' AND value = 'Organic Social'").Scan(&social); err != nil {
			t.Fatal(err)
		}
		if err := conn.QueryRow(c, "SELECT countIf(value = 'social'), countIf(value = 'search') FROM "+db+".sessions_dims_hourly "+
			"WHERE site_id = 'up.test' AND dim = 'visit:channel'").Scan(&oldSocial, &oldSearch); err != nil {
			t.Fatal(err)
		}
		if visitors != 100 || pageviews != 100 || fr != 120 || frVisits != 120 || social != 30 || oldSocial != 0 || oldSearch != 0 {
			t.Errorf("%s reads events_hourly %d visitors, %d page views (want 100, 100); FR %d visitors, %d visits (want 120, 120); "+
				"Organic Social %d visits (want 30); old spellings %d, %d rows (want 0)",
				hosts[i], visitors, pageviews, fr, frVisits, social, oldSocial, oldSearch)
		}
	}
}
