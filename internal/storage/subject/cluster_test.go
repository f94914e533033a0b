package subject_test

import (
	"context"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/glimpse-analytics/glimpse/internal/chtest"
	"github.com/glimpse-analytics/glimpse/internal/storage/subject"
)

// TestEraseOnCluster: on a cluster an erasure's mutations go ON CLUSTER
// to the *_local tables; once they are done no host, replica of either
// shard, holds a row of the person (their markers in any string column of
// any table, their visitor ids in the raw tables or the rollups' visitor
// states), and everyone else's rows are all there, the rollups agreeing
// with them.
func TestEraseOnCluster(t *testing.T) {
	cl := chtest.MigratedCluster(t)
	// The writer's inserts into the Distributed tables return once the
	// shards hold them (the collector's cluster writes are not this
	// test's concern).
	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{cl.Hosts[0]}, Auth: clickhouse.Auth{Database: cl.Database},
		Settings: clickhouse.Settings{"insert_distributed_sync": 1}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	h := newHarness(t, &chtest.DB{Conn: conn, Addr: cl.Hosts[0], Database: cl.Database})
	h.cluster = cl
	m := newMarkers()
	now := time.Now().UTC().Add(-time.Hour)
	const alicePhone, aliceLaptop = 1001, 1002

	h.open(false)
	h.visit(alicePhone, "", now, "/", "", m.campaign)
	h.visit(alicePhone, "alice", now.Add(time.Second), m.path, m.prop, m.campaign)
	h.visit(aliceLaptop, "alice", now.Add(40*time.Minute), m.path, m.prop, m.campaign)
	// Others on both shards (sharded by visitor id), in both hours.
	const others = 40
	for v := range uint64(others) {
		h.visit(5000+v*7919, "", now.Add(time.Duration(v)*time.Minute), "/", "", "spring")
		h.visit(5000+v*7919, "", now.Add(time.Duration(v)*time.Minute+time.Second), "/pricing", "", "spring")
	}
	want := uint64(3 + 2*others)
	h.waitFor("events stored", func() bool { return h.count("SELECT count() FROM events") == want })
	h.waitFor("sessions written", func() bool { return h.count("SELECT uniqExact(session_id) FROM sessions") == 2+others })
	h.close()
	locals := cl.LocalTables(t)
	cl.SyncReplicas(t, locals...)

	hosts := make([]*harness, len(cl.Conns))
	for i, c := range cl.Conns {
		hh := *h
		hh.db = &chtest.DB{Conn: c, Addr: cl.Hosts[i], Database: cl.Database}
		hosts[i] = &hh
	}
	sharded := 0 // hosts with a part of the events
	for _, hh := range hosts {
		if n := hh.count("SELECT count() FROM events_local"); n > 0 && n < want {
			sharded++
		}
	}
	if sharded < 2 {
		t.Fatalf("control: %d hosts hold a part of the events, want the shards to split them", sharded)
	}
	markerHosts := 0
	for _, hh := range hosts {
		if len(hh.rowsWith(m.path)) > 0 {
			markerHosts++
		}
	}
	if markerHosts < 2 {
		t.Fatalf("control: %d hosts hold alice's page, want both replicas of her shard(s)", markerHosts)
	}

	start := time.Now()
	h.open(false)
	code, body := h.post(subject.PathErase, url.Values{"site_id": {site}, "uid": {"alice"}})
	if code != 200 || !strings.Contains(body, `"remaining":0`) {
		t.Fatalf("erase: %d %s", code, body)
	}
	h.close()
	t.Logf("erase on the cluster took %v: %s", time.Since(start).Round(time.Millisecond), body)

	// Every host: its mutations done, its replication queue empty.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for i, hh := range hosts {
		hh.waitFor("mutations done on "+cl.Hosts[i], func() bool {
			return hh.count("SELECT count() FROM system.mutations WHERE database = currentDatabase() AND is_done = 0") == 0
		})
		for _, tb := range locals {
			if err := cl.Conns[i].Exec(ctx, "SYSTEM SYNC REPLICA "+cl.Database+"."+tb); err != nil {
				t.Fatal(err)
			}
		}
	}
	var left uint64
	for i, hh := range hosts {
		for _, mk := range m.all() {
			if n := hh.rowsWith(mk); len(n) > 0 {
				t.Errorf("host %s: rows with alice's %q after the erasure: %v", cl.Hosts[i], mk, n)
			}
		}
		if n := hh.count("SELECT count() FROM events_local WHERE has(?, visitor_id)", []uint64{alicePhone, aliceLaptop}); n != 0 {
			t.Errorf("host %s: %d events of alice's visitor ids left", cl.Hosts[i], n)
		}
		if n := hh.count("SELECT count() FROM sessions_local WHERE has(?, visitor_id)", []uint64{alicePhone, aliceLaptop}); n != 0 {
			t.Errorf("host %s: %d sessions rows of alice's visitor ids left", cl.Hosts[i], n)
		}
		for _, r := range []struct{ table, where string }{
			{"events_hourly_local", ""}, {"pages_hourly_local", ""}, {"sessions_dims_hourly_local", "AND dim = 'visit:source'"},
		} {
			if n := hh.uniqWithout(r.table, r.where, alicePhone, aliceLaptop); n != 2 {
				t.Errorf("host %s: %s: its visitor states hold %d of alice's 2 visitor ids", cl.Hosts[i], r.table, 2-n)
			}
		}
		left += hh.count("SELECT count() FROM events_local")
	}
	// Through the Distributed tables: everyone else's rows, and the
	// rollups rebuilt from them.
	if n := h.count("SELECT count() FROM events"); n != 2*others {
		t.Errorf("%d events left through the Distributed table, want the others' %d", n, 2*others)
	}
	if left != 2*2*others {
		t.Errorf("%d events left on the hosts, want %d (the others', on both replicas)", left, 2*2*others)
	}
	for _, c := range []struct{ what, rollup, raw string }{
		{"events_hourly visitors", "SELECT uniqMerge(visitors) FROM events_hourly", "SELECT uniq(visitor_id) FROM events"},
		{"events_hourly pageviews", "SELECT sumMerge(pageviews) FROM events_hourly", "SELECT count() FROM events"},
		{"pages_hourly pageviews", "SELECT sumMerge(pageviews) FROM pages_hourly", "SELECT count() FROM events"},
		{"sessions_hourly visits", "SELECT toUInt64(sum(visits)) FROM sessions_hourly", "SELECT toUInt64(sum(sign)) FROM sessions"},
		{"sessions_dims_hourly visits", "SELECT toUInt64(sumMerge(visits)) FROM sessions_dims_hourly WHERE dim = 'visit:source'", "SELECT toUInt64(sum(sign)) FROM sessions"},
	} {
		if a, b := h.count(c.rollup), h.count(c.raw); a != b || a == 0 {
			t.Errorf("%s: rollup %d, raw rows %d", c.what, a, b)
		}
	}
}
