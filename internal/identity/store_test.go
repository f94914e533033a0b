package identity_test

import (
	"bytes"
	"context"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/glimpse-analytics/glimpse/internal/chconn"
	"github.com/glimpse-analytics/glimpse/internal/chtest"
	"github.com/glimpse-analytics/glimpse/internal/identity"
)

func newSaltKey(t *testing.T, secret string) *identity.SaltKey {
	t.Helper()
	k, err := identity.NewSaltKey([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

const testSecret = "the collectors' secret: 32+ bytes"

// TestInstancesShareSalts runs two collectors' salt holders against one
// database: they give a visitor the same id, today and after midnight.
func TestInstancesShareSalts(t *testing.T) {
	db := chtest.Migrated(t)
	ctx := context.Background()
	now := time.Date(2026, 3, 4, 23, 50, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	key := newSaltKey(t, testSecret)
	a, err := identity.NewSalts(ctx, identity.SaltsConfig{Now: clock, Store: identity.ClickHouseStore(db.Conn, key, nil)})
	if err != nil {
		t.Fatal(err)
	}
	b, err := identity.NewSalts(ctx, identity.SaltsConfig{Now: clock, Store: identity.ClickHouseStore(db.Conn, key, nil)})
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
	if err := db.Conn.QueryRow(ctx, "SELECT uniqExact(day) FROM sealed_salts").Scan(&days); err != nil {
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
			store := identity.ClickHouseStore(db.Conn, newSaltKey(t, testSecret), nil)
			for _, d := range []string{"2026-02-28", "2026-03-07", "2026-03-08", "2026-03-09", "2026-03-10"} {
				day, _ := time.Parse(time.DateOnly, d)
				if _, err := store.LoadOrStore(ctx, day, []byte("0123456789abcdef-salt-for-a-day")); err != nil {
					t.Fatal(err)
				}
			}
			now, _ := time.Parse(time.RFC3339, tt.now)
			if err := identity.PruneStore(ctx, chconn.Store{Conn: db.Conn}, now); err != nil {
				t.Fatal(err)
			}
			rows, err := db.Conn.Query(ctx, "SELECT toString(day) FROM sealed_salts ORDER BY day")
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

// TestStoredSaltsAreSealed: the table holds the salt sealed, as its day's,
// and nothing of it in clear.
func TestStoredSaltsAreSealed(t *testing.T) {
	db := chtest.Migrated(t)
	ctx := context.Background()
	key := newSaltKey(t, testSecret)
	day := time.Date(2026, 3, 4, 0, 0, 0, 0, time.UTC)
	salt, err := identity.ClickHouseStore(db.Conn, key, nil).LoadOrStore(ctx, day, []byte("0123456789abcdef"))
	if err != nil || string(salt) != "0123456789abcdef" {
		t.Fatalf("LoadOrStore = %q, %v", salt, err)
	}
	var sealed []byte
	var created time.Time
	if err := db.Conn.QueryRow(ctx, "SELECT sealed, created FROM sealed_salts").Scan(&sealed, &created); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, salt) || bytes.Contains(sealed, []byte("0123456789")) {
		t.Errorf("stored %q holds the salt", sealed)
	}
	if got, err := key.Open(day, sealed); err != nil || !bytes.Equal(got, salt) {
		t.Errorf("the stored row opens to %q, %v", got, err)
	}
	if _, err := key.Open(day.AddDate(0, 0, 1), sealed); err == nil {
		t.Error("the stored row opens as another day's salt")
	}
	if time.Since(created).Abs() > time.Hour {
		t.Errorf("created = %v: the server did not fill it", created)
	}
}

// TestStoreSkipsSaltsOfAnotherKey: rows sealed under another key are
// skipped with a warning, and collectors with the new key agree on a new
// salt for the day; the old key still reads its own.
func TestStoreSkipsSaltsOfAnotherKey(t *testing.T) {
	db := chtest.Migrated(t)
	ctx := context.Background()
	day := time.Date(2026, 3, 4, 0, 0, 0, 0, time.UTC)
	old := identity.ClickHouseStore(db.Conn, newSaltKey(t, testSecret), nil)
	if _, err := old.LoadOrStore(ctx, day, []byte("salt-under-the-old-key")); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	newKey := newSaltKey(t, "the new secret of the collectors, 32+")
	a, err := identity.ClickHouseStore(db.Conn, newKey, log).LoadOrStore(ctx, day, []byte("salt-under-the-new-key"))
	if err != nil || string(a) != "salt-under-the-new-key" {
		t.Fatalf("new key: %q, %v", a, err)
	}
	b, err := identity.ClickHouseStore(db.Conn, newKey, log).LoadOrStore(ctx, day, []byte("a later candidate, new key"))
	if err != nil || string(b) != string(a) {
		t.Fatalf("a second collector with the new key got %q, %v; want %q", b, err, a)
	}
	if o, err := old.LoadOrStore(ctx, day, []byte("a later candidate, old key")); err != nil || string(o) != "salt-under-the-old-key" {
		t.Fatalf("old key: %q, %v", o, err)
	}
	if !strings.Contains(logs.String(), "do not open under this collector's salt key") || !strings.Contains(logs.String(), "rows=1") {
		t.Errorf("no warning of the skipped row: %s", logs.String())
	}
}

// BenchmarkClickHouseStore measures a salt fetch against a round trip to
// the server (ping) in the same run: a fetch of a day already stored
// (load: one SELECT and an Open) and of a new day (store: SELECT, sealed
// INSERT block, SELECT). Each collector does a few of these a day.
func BenchmarkClickHouseStore(b *testing.B) {
	db := chtest.Migrated(b)
	ctx := context.Background()
	key, err := identity.NewSaltKey([]byte(testSecret))
	if err != nil {
		b.Fatal(err)
	}
	store := identity.ClickHouseStore(db.Conn, key, nil)
	day := time.Date(2026, 3, 4, 0, 0, 0, 0, time.UTC)
	candidate := []byte("0123456789abcdef")
	b.Run("ping", func(b *testing.B) {
		for b.Loop() {
			if err := db.Conn.Ping(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("load", func(b *testing.B) {
		for b.Loop() {
			if _, err := store.LoadOrStore(ctx, day, candidate); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("store", func(b *testing.B) {
		d := day
		for b.Loop() {
			d = d.AddDate(0, 0, 1)
			if _, err := store.LoadOrStore(ctx, d, candidate); err != nil {
				b.Fatal(err)
			}
		}
	})
}
