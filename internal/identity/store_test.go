package identity_test

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/glimpse-analytics/glimpse/internal/chtest"
	"github.com/glimpse-analytics/glimpse/internal/identity"
)

// TestInstancesShareSalts runs two collectors' salt holders against one
// database: they give a visitor the same id, today and after midnight.
func TestInstancesShareSalts(t *testing.T) {
	db := chtest.Migrated(t)
	ctx := context.Background()
	now := time.Date(2026, 3, 4, 23, 50, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	a, err := identity.NewSalts(ctx, identity.SaltsConfig{Now: clock, Store: identity.ClickHouseStore(db.Conn)})
	if err != nil {
		t.Fatal(err)
	}
	b, err := identity.NewSalts(ctx, identity.SaltsConfig{Now: clock, Store: identity.ClickHouseStore(db.Conn)})
	if err != nil {
		t.Fatal(err)
	}
	ip := netip.MustParseAddr("203.0.113.7")
	ua := []byte("Mozilla/5.0 Firefox/125.0")
	ida := a.VisitorID(now, "example.com", ip, ua)
	idb := b.VisitorID(now, "example.com", ip, ua)
	if ida == 0 || ida != idb {
		t.Fatalf("instances disagree before midnight: %x vs %x", ida, idb)
	}
	// Run fetches tomorrow's salt ahead; here each instance does it once.
	for _, s := range []*identity.Salts{a, b} {
		if err := s.Prefetch(ctx); err != nil {
			t.Fatal(err)
		}
	}
	now = now.Add(20 * time.Minute) // 00:10 the next day
	na := a.VisitorID(now, "example.com", ip, ua)
	nb := b.VisitorID(now, "example.com", ip, ua)
	if na != nb || na == ida {
		t.Fatalf("after midnight: a %x, b %x, yesterday %x", na, nb, ida)
	}
	var days uint64
	if err := db.Conn.QueryRow(ctx, "SELECT uniqExact(day) FROM salts").Scan(&days); err != nil {
		t.Fatal(err)
	}
	if days != 2 {
		t.Fatalf("salts table holds %d days, want 2", days)
	}
}

// TestPruneDeletesSaltsOlderThan48Hours stores salts for several days and
// checks that Prune deletes, on disk through a mutation, those whose day
// began more than 48 hours ago.
func TestPruneDeletesSaltsOlderThan48Hours(t *testing.T) {
	db := chtest.Migrated(t)
	ctx := context.Background()
	store := identity.ClickHouseStore(db.Conn)
	now := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	for _, d := range []int{0, 1, 2, 3, 10} {
		day := now.Truncate(24*time.Hour).AddDate(0, 0, -d)
		if _, err := store.LoadOrStore(ctx, day, []byte("0123456789abcdef-salt-for-a-day")); err != nil {
			t.Fatal(err)
		}
	}
	if err := identity.PruneStore(ctx, db.Conn, now); err != nil {
		t.Fatal(err)
	}
	rows, err := db.Conn.Query(ctx, "SELECT toString(day) FROM salts ORDER BY day")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var got []string
	for rows.Next() {
		var d string
		_ = rows.Scan(&d)
		got = append(got, d)
	}
	// 48 h before 2026-03-10 12:00 is 2026-03-08 12:00: days from 03-08 on
	// may still continue a session; older ones are gone.
	want := []string{"2026-03-08", "2026-03-09", "2026-03-10"}
	if len(got) != len(want) {
		t.Fatalf("days left %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("days left %v, want %v", got, want)
		}
	}
}
