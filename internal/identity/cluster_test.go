package identity_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/glimpse-analytics/glimpse/internal/chconn"
	"github.com/glimpse-analytics/glimpse/internal/chtest"
	"github.com/glimpse-analytics/glimpse/internal/identity"
)

// TestSharedSaltsOnCluster: on a cluster two collectors, through hosts of
// different shards, each get a salt for every day (a candidate stored is
// read back, however late the replica read has it), and the prune
// deletes the expired days from every replica of every shard. Whether
// they agree at first is logged, not asserted: a collector reading
// through a replica that has not yet fetched the other's candidate stores
// its own (see the README's "A cluster"). Once the replicas agree, Load,
// which Salts.Run asks again after a minute and then every hour, gives
// both the same salt for every day.
func TestSharedSaltsOnCluster(t *testing.T) {
	cl := chtest.MigratedCluster(t)
	ctx := context.Background()
	key := newSaltKey(t, testSecret)
	stores := []chconn.Store{
		{Conn: cl.Conns[0], Cluster: cl.Name, Dial: cl.Dial},
		{Conn: cl.Conns[len(cl.Conns)-1], Cluster: cl.Name, Dial: cl.Dial},
	}
	a := identity.ClickHouseStoreOn(stores[0], key, nil)
	b := identity.ClickHouseStoreOn(stores[1], key, nil)
	days := []string{"2026-03-01", "2026-03-02", "2026-03-03", "2026-03-04", "2026-03-05", "2026-03-06", "2026-03-07", "2026-03-08", "2026-03-09", "2026-03-10"}
	differ := 0
	for i, d := range days {
		day, _ := time.Parse(time.DateOnly, d)
		first, second := a, b
		if i%2 == 1 {
			first, second = b, a
		}
		sa, err := first.LoadOrStore(ctx, day, []byte("0123456789abcdef-salt-of-the-first"))
		if err != nil {
			t.Fatal(err)
		}
		sb, err := second.LoadOrStore(ctx, day, []byte("0123456789abcdef-salt-of-the-second"))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(sa, sb) {
			differ++
		}
	}
	t.Logf("the collectors took different salts on %d of %d days at first", differ, len(days))
	cl.SyncReplicas(t, "sealed_salts_local")
	for _, d := range days {
		day, _ := time.Parse(time.DateOnly, d)
		sa, err := a.Load(ctx, day)
		if err != nil {
			t.Fatal(err)
		}
		sb, err := b.Load(ctx, day)
		if err != nil {
			t.Fatal(err)
		}
		if len(sa) < 16 || !bytes.Equal(sa, sb) {
			t.Errorf("%s: after the replicas synced, the collectors read different salts (%d and %d bytes)", d, len(sa), len(sb))
		}
	}
	now, _ := time.Parse(time.RFC3339, "2026-03-10T12:00:00Z")
	if err := identity.PruneStore(ctx, stores[1], now); err != nil {
		t.Fatal(err)
	}
	cl.SyncReplicas(t, "sealed_salts_local")
	for i, c := range cl.Conns {
		var old, n uint64
		if err := c.QueryRow(ctx, "SELECT countIf(day < toDate('2026-03-09')), count() FROM sealed_salts_local").Scan(&old, &n); err != nil {
			t.Fatal(err)
		}
		if old != 0 {
			t.Errorf("host %s: %d expired salts left (of %d)", cl.Hosts[i], old, n)
		}
	}
	var kept uint64
	if err := cl.Conn.QueryRow(ctx, "SELECT uniqExact(day) FROM sealed_salts").Scan(&kept); err != nil || kept != 2 {
		t.Errorf("%d days of salts kept (%v), want 2", kept, err)
	}
}
