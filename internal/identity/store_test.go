package identity_test

import (
	"context"
	"net/netip"
	"slices"
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
// began 48 hours ago or more.
func TestPruneDeletesSaltsOlderThan48Hours(t *testing.T) {
	ctx := context.Background()
	for _, tt := range []struct {
		now  string
		want []string
	}{
		// 2026-03-08 began 60 hours before: gone; 03-09 36 hours before.
		{"2026-03-10T12:00:00Z", []string{"2026-03-09", "2026-03-10"}},
		// 03-08 began 48 hours before, to the second.
		{"2026-03-10T00:00:00Z", []string{"2026-03-09", "2026-03-10"}},
		{"2026-03-09T23:59:59Z", []string{"2026-03-08", "2026-03-09", "2026-03-10"}},
	} {
		t.Run(tt.now, func(t *testing.T) {
			db := chtest.Migrated(t)
			store := identity.ClickHouseStore(db.Conn)
			for _, d := range []string{"2026-02-28", "2026-03-07", "2026-03-08", "2026-03-09", "2026-03-10"} {
				day, _ := time.Parse(time.DateOnly, d)
				if _, err := store.LoadOrStore(ctx, day, []byte("0123456789abcdef-salt-for-a-day")); err != nil {
					t.Fatal(err)
				}
			}
			now, _ := time.Parse(time.RFC3339, tt.now)
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
			if !slices.Equal(got, tt.want) {
				t.Fatalf("days left %v, want %v", got, tt.want)
			}
		})
	}
}
