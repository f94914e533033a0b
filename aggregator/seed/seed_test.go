package seed_test

import (
	"context"
	"testing"
	"time"

	"github.com/glimpse-analytics/glimpse/aggregator/seed"
	"github.com/glimpse-analytics/glimpse/collector/sink"
	"github.com/glimpse-analytics/glimpse/internal/chtest"
)

// The same seed and end write the same rows; another seed does not. Sessions
// are compared collapsed (sign-weighted), as the writer may fold an update
// pair that lands in one batch.
func TestDeterministic(t *testing.T) {
	end := time.Date(2025, 3, 31, 0, 0, 0, 0, time.UTC)
	digest := func(s uint64) [2]uint64 {
		db := chtest.Migrated(t)
		w := sink.New(sink.Options{Conn: db.Conn, Interval: 50 * time.Millisecond})
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		st, err := seed.Generate(ctx, w, seed.Options{Site: "example.com", Events: 3000, Days: 7, End: end, Seed: s})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Close(ctx); err != nil {
			t.Fatal(err)
		}
		if st.Events != 3000 {
			t.Fatalf("wrote %d events, want 3000", st.Events)
		}
		var d [2]uint64
		if err := db.Conn.QueryRow(ctx, "SELECT sum(cityHash64(toString(event_id), ts, type, pathname, visitor_id, session_id, referrer_source, country_code)) FROM events").Scan(&d[0]); err != nil {
			t.Fatal(err)
		}
		if err := db.Conn.QueryRow(ctx, "SELECT toUInt64(sum(sign * toInt64(cityHash64(session_id, pageviews, is_bounce, exit_page) % 1000000007))) FROM sessions").Scan(&d[1]); err != nil {
			t.Fatal(err)
		}
		return d
	}
	a, b, c := digest(7), digest(7), digest(8)
	if a != b {
		t.Errorf("same seed, different rows: %v vs %v", a, b)
	}
	if a == c {
		t.Errorf("different seeds, same rows")
	}
}
