package retention_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/google/uuid"

	"github.com/glimpse-analytics/glimpse/collector/sink"
	"github.com/glimpse-analytics/glimpse/internal/chtest"
	"github.com/glimpse-analytics/glimpse/internal/config"
	"github.com/glimpse-analytics/glimpse/internal/model"
	"github.com/glimpse-analytics/glimpse/internal/storage/retention"
)

const sitesYAML = `sites:
  - domain: a.example
    privacy: {retention_months: 25}
  - domain: b.example
    privacy: {retention_months: 36}
`

var now = time.Date(2026, 3, 15, 12, 0, 0, 0, time.UTC)

// seed stores n page views of site in the month `ago` months before now.
func seed(t *testing.T, w *sink.Writer, site string, ago, n int) {
	t.Helper()
	ts := now.AddDate(0, -ago, 0)
	for i := range n {
		e := w.NewEvent()
		e.SiteID, e.EventID, e.TS, e.Type = site, uuid.New(), ts, model.TypePageview
		e.VisitorID = uint64(i + 1)
		e.Pathname = fmt.Appendf(e.Pathname, "/%d", i)
		if err := w.Enqueue(e); err != nil {
			t.Fatal(err)
		}
	}
}

func TestPruneDropsOnlyExpired(t *testing.T) {
	db := chtest.Migrated(t)
	testPrune(t, db.Conn, nil, "1 rows")
}

// testPrune seeds conn's database and prunes it, on a cluster (the
// database migrated for it) through the Distributed tables; rollupRows
// is the rows of events_hourly's expired partition (one per shard).
func testPrune(t *testing.T, conn driver.Conn, cluster *chtest.Cluster, rollupRows string) {
	db := &chtest.DB{Conn: conn}
	sites, err := config.Parse("sites.yaml", []byte(sitesYAML))
	if err != nil {
		t.Fatal(err)
	}
	w := sink.New(sink.Options{Conn: db.Conn, Interval: time.Hour})
	seed(t, w, "a.example", 30, 10) // a: past 25 months; b shares the partition and is not past 36
	seed(t, w, "b.example", 30, 20)
	seed(t, w, "a.example", 28, 5) // only a: the partition goes
	seed(t, w, "b.example", 40, 7) // only b, past 36: goes
	seed(t, w, "a.example", 0, 3)  // recent: stays
	seed(t, w, "b.example", 1, 4)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := w.Close(ctx); err != nil {
		t.Fatal(err)
	}
	count := func(q string) uint64 {
		t.Helper()
		var n uint64
		if err := db.Conn.QueryRow(ctx, q).Scan(&n); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		return n
	}
	byMonth := func() string {
		rows, err := db.Conn.Query(ctx, "SELECT toYYYYMM(ts) AS m, site_id, count() FROM events GROUP BY m, site_id ORDER BY m, site_id")
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var b strings.Builder
		for rows.Next() {
			var m uint32
			var s string
			var n uint64
			rows.Scan(&m, &s, &n)
			fmt.Fprintf(&b, "%d %s %d\n", m, s, n)
		}
		return b.String()
	}
	before := byMonth()
	o := retention.Options{Conn: db.Conn, Sites: sites, RollupMonths: 36, Now: func() time.Time { return now }}
	if cluster != nil {
		o.Cluster, o.Dial = cluster.Name, cluster.Dial
	}
	plan, err := retention.Plan(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, a := range plan {
		got = append(got, a.String())
	}
	want := []string{
		"drop partition 202211 of events (7 rows)",
		"delete 10 rows of a.example from partition 202309 of events",
		"drop partition 202311 of events (5 rows)",
		"drop partition 202211 of events_hourly (" + rollupRows + ")",
		"drop partition 202211 of pages_hourly (7 rows)",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("plan:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if after := byMonth(); after != before {
		t.Fatalf("planning changed the data:\n%s", after)
	}
	if _, err := retention.Run(ctx, o); err != nil {
		t.Fatal(err)
	}
	wantAfter := "202309 b.example 20\n202602 b.example 4\n202603 a.example 3\n"
	if after := byMonth(); after != wantAfter {
		t.Fatalf("after prune:\n%s\nwant:\n%s", after, wantAfter)
	}
	// The rollups keep the 30-month-old hour (36 months for rollups), and
	// with it a.example's aggregate counts.
	if n := count("SELECT toUInt64(sumMerge(pageviews)) FROM events_hourly WHERE site_id = 'a.example' AND toYYYYMM(hour) = 202309"); n != 10 {
		t.Fatalf("events_hourly lost a.example's 202309 aggregates: %d pageviews", n)
	}
	if n := count("SELECT count() FROM events_hourly WHERE toYYYYMM(hour) = 202211"); n != 0 {
		t.Fatalf("events_hourly still holds 202211")
	}
	if plan, err := retention.Plan(ctx, o); err != nil || len(plan) != 0 {
		t.Fatalf("second plan: %v %v; want nothing left to do", plan, err)
	}
}

// TestPruneOnCluster: the prune of TestPruneDropsOnlyExpired on a
// cluster, the plan read from every shard; afterwards every host, each
// replica of each shard, holds only the rows kept.
func TestPruneOnCluster(t *testing.T) {
	cl := chtest.MigratedCluster(t)
	// The writer's inserts return once the shards hold the rows.
	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{cl.Hosts[0]}, Auth: clickhouse.Auth{Database: cl.Database},
		Settings: clickhouse.Settings{"insert_distributed_sync": 1}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	testPrune(t, conn, cl, "2 rows") // visitors 1..7, sharded by visitor_id: both shards
	cl.SyncReplicas(t, cl.LocalTables(t)...)
	ctx := context.Background()
	var kept uint64
	for i, c := range cl.Conns {
		var pending, gone, n uint64
		if err := c.QueryRow(ctx, "SELECT count() FROM system.mutations WHERE database = currentDatabase() AND is_done = 0").Scan(&pending); err != nil || pending != 0 {
			t.Errorf("host %s: %d mutations pending (%v)", cl.Hosts[i], pending, err)
		}
		if err := c.QueryRow(ctx, "SELECT countIf(toYYYYMM(ts) IN (202211, 202311) OR (site_id = 'a.example' AND toYYYYMM(ts) = 202309)), count() FROM events_local").Scan(&gone, &n); err != nil {
			t.Fatal(err)
		}
		if gone != 0 {
			t.Errorf("host %s: %d expired rows left in events_local", cl.Hosts[i], gone)
		}
		if err := c.QueryRow(ctx, "SELECT count() FROM events_hourly_local WHERE toYYYYMM(hour) = 202211").Scan(&gone); err != nil || gone != 0 {
			t.Errorf("host %s: %d rows of the expired rollup partition left (%v)", cl.Hosts[i], gone, err)
		}
		kept += n
	}
	if kept != 2*(20+4+3) {
		t.Errorf("the hosts hold %d events, want the 27 kept on both replicas of their shards", kept)
	}
	t.Logf("prune on the cluster checked in %v", time.Since(start).Round(time.Millisecond))
}
