package seed_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/glimpse-analytics/glimpse/collector/sink"
	"github.com/glimpse-analytics/glimpse/internal/chtest"
	"github.com/glimpse-analytics/glimpse/internal/model"
	"github.com/glimpse-analytics/glimpse/internal/storage/seed"
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

// TestVocabulary: the seed stores the values live ingest stores for every
// dimension with a fixed vocabulary (model.Dimensions), in events and
// sessions alike, so that a filter written for the demo matches a real
// site's data too.
func TestVocabulary(t *testing.T) {
	db := chtest.Migrated(t)
	w := sink.New(sink.Options{Conn: db.Conn, Interval: 50 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := seed.Generate(ctx, w, seed.Options{Site: "example.com", Events: 3000, Days: 7, Seed: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Close(ctx); err != nil {
		t.Fatal(err)
	}
	for _, d := range model.Dimensions {
		if d.Vocabulary == nil {
			continue
		}
		for _, table := range []string{"events", "sessions"} {
			rows, err := db.Conn.Query(ctx, "SELECT DISTINCT "+d.Column+" FROM "+table+" WHERE "+d.Column+" != ''")
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			for rows.Next() {
				var v string
				if err := rows.Scan(&v); err != nil {
					t.Fatal(err)
				}
				n++
				if !slices.Contains(d.Vocabulary, v) {
					t.Errorf("%s.%s holds %q, not in the vocabulary of %s %v", table, d.Column, v, d.Name, d.Vocabulary)
				}
			}
			rows.Close()
			if n < 2 {
				t.Errorf("%s.%s: %d distinct values; the seed should vary it", table, d.Column, n)
			}
		}
	}
}
