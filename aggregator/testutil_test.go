package aggregator_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/glimpse-analytics/glimpse/aggregator"
	"github.com/glimpse-analytics/glimpse/collector/sink"
	"github.com/glimpse-analytics/glimpse/internal/apptest"
	"github.com/glimpse-analytics/glimpse/internal/chtest"
	"github.com/glimpse-analytics/glimpse/internal/config"
	"github.com/glimpse-analytics/glimpse/internal/storage/seed"
)

// seedEnd is the fixed end of the seeded range: golden files depend on it.
var seedEnd = time.Date(2025, 3, 31, 0, 0, 0, 0, time.UTC)

const testSite = "example.com"

func testSites(t testing.TB, tz string, k int) *config.File {
	t.Helper()
	y := "sites:\n  - domain: " + testSite + "\n    timezone: " + tz + "\n    privacy:\n      k_anonymity: " + itoa(k) + "\n      aggregates: exact\n" +
		"  - domain: other.example\n    privacy: {aggregates: exact}\n" +
		"api_keys:\n  - name: test\n    sha256: \"" + apptest.KeyHash("test-key") + "\"\n    sites: [" + testSite + "]\n" +
		"  - name: other\n    sha256: \"" + apptest.KeyHash("other-key") + "\"\n    sites: [other.example]\n"
	f, err := config.Parse("test.yaml", []byte(y))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// seeded migrates a fresh database and writes the deterministic seed
// into it through the collector's writer.
func seeded(t *testing.T) *chtest.DB {
	t.Helper()
	db := chtest.Migrated(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := seed.Write(ctx, sink.New(sink.Options{Conn: db.Conn, BatchSize: 5000, Interval: 50 * time.Millisecond, SessionInterval: seed.SessionInterval}),
		seed.Options{Site: testSite, Events: 20000, Days: 40, End: seedEnd, Seed: 42, Visitors: 2500}); err != nil {
		t.Fatalf("seed: %v", err)
	}
	return db
}

func itoa(n int) string { return strconv.Itoa(n) }

// query parses Stats API parameters given as "k=v&k=v" for kind.
func query(t *testing.T, kind aggregator.Kind, site *config.Site, params string) *aggregator.Query {
	t.Helper()
	v := map[string]string{}
	for _, kv := range strings.Split(params, "&") {
		k, val, _ := strings.Cut(kv, "=")
		v[k] = val
	}
	q, err := aggregator.ParseQuery(kind, site, func(k string) string { return v[k] }, seedEnd)
	if err != nil {
		t.Fatalf("ParseQuery(%s): %v", params, err)
	}
	return q
}
