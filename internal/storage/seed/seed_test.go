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

// TestDemoIsBelievable: seeded without an end, the data stops at the
// seed's now (no evening of today before it happens), downloads are
// download events (the Downloads tab's), not a "Download" goal, and a
// period has a previous one of similar size to be compared with.
func TestDemoIsBelievable(t *testing.T) {
	db := chtest.Migrated(t)
	w := sink.New(sink.Options{Conn: db.Conn, Interval: 50 * time.Millisecond, SessionInterval: seed.SessionInterval})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := seed.Write(ctx, w, seed.Options{Site: "example.com", Events: 20000, Days: 14, Seed: 1}); err != nil {
		t.Fatal(err)
	}
	after := time.Now().UTC()
	var last, lastStart time.Time
	if err := db.Conn.QueryRow(ctx, "SELECT max(ts) FROM events").Scan(&last); err != nil {
		t.Fatal(err)
	}
	if err := db.Conn.QueryRow(ctx, "SELECT max(start) FROM sessions").Scan(&lastStart); err != nil {
		t.Fatal(err)
	}
	if last.After(after) || lastStart.After(after) {
		t.Errorf("the seed wrote events up to %s (sessions from %s), after its now %s", last, lastStart, after)
	}
	if after.Sub(last) > 3*time.Hour {
		t.Errorf("the last seeded event is at %s, %s before now; today should have traffic", last, after.Sub(last))
	}
	var downloads, goals uint64
	if err := db.Conn.QueryRow(ctx, "SELECT countIf(type = 'download' AND target_url LIKE 'https://example.com/files/%'), countIf(type = 'custom' AND name = 'Download') FROM events").Scan(&downloads, &goals); err != nil {
		t.Fatal(err)
	}
	if downloads == 0 || goals != 0 {
		t.Errorf("%d download events and %d \"Download\" goals; want downloads stored as downloads", downloads, goals)
	}
	// The last 7 days against the 7 before: both there, within a quarter.
	var cur, prev uint64
	if err := db.Conn.QueryRow(ctx, `SELECT uniqExactIf(visitor_id, ts >= now() - 7*86400), uniqExactIf(visitor_id, ts < now() - 7*86400 AND ts >= now() - 14*86400)
		FROM events WHERE type = 'pageview'`).Scan(&cur, &prev); err != nil {
		t.Fatal(err)
	}
	if prev == 0 || float64(cur) > 1.25*float64(prev) || float64(cur) < 0.8*float64(prev) {
		t.Errorf("%d visitors in the last 7 days, %d in the 7 before; want a previous period of similar size", cur, prev)
	}
}

// TestRevenue: with Revenue, paid signups are followed by Purchase goals
// priced 29 or 99 in EUR, and in USD for visitors from the US; without
// it, no event carries revenue.
func TestRevenue(t *testing.T) {
	end := time.Date(2025, 3, 31, 0, 0, 0, 0, time.UTC)
	for _, revenue := range []bool{false, true} {
		db := chtest.Migrated(t)
		w := sink.New(sink.Options{Conn: db.Conn, Interval: 50 * time.Millisecond})
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if _, err := seed.Generate(ctx, w, seed.Options{Site: "example.com", Events: 6000, Days: 14, End: end, Seed: 3, Revenue: revenue}); err != nil {
			t.Fatal(err)
		}
		if _, err := w.Close(ctx); err != nil {
			t.Fatal(err)
		}
		var n, usdOutsideUS, eurInUS, wrong uint64
		if err := db.Conn.QueryRow(ctx, `SELECT count(), countIf(revenue_currency = 'USD' AND country_code != 'US'),
			countIf(revenue_currency = 'EUR' AND country_code = 'US'),
			countIf(name != 'Purchase' OR revenue_micros NOT IN (29000000, 99000000) OR revenue_currency NOT IN ('EUR', 'USD'))
			FROM events WHERE revenue_currency != ''`).Scan(&n, &usdOutsideUS, &eurInUS, &wrong); err != nil {
			t.Fatal(err)
		}
		switch {
		case !revenue && n != 0:
			t.Errorf("without Revenue, %d events carry revenue", n)
		case revenue && (n < 20 || usdOutsideUS+eurInUS+wrong > 0):
			t.Errorf("with Revenue: %d purchases (want 20 or more), %d USD outside the US, %d EUR in it, %d other", n, usdOutsideUS, eurInUS, wrong)
		}
		var usd uint64
		_ = db.Conn.QueryRow(ctx, `SELECT count() FROM events WHERE revenue_currency = 'USD'`).Scan(&usd)
		if revenue && (usd == 0 || usd == n) {
			t.Errorf("with Revenue: %d of %d purchases in USD, want some and not all", usd, n)
		}
	}
}
