package migrations_test

import (
	"strings"
	"testing"

	"github.com/glimpse-analytics/glimpse/internal/chdb"
	"github.com/glimpse-analytics/glimpse/migrations"
)

// TestRenderingsOnCurrentClickHouse applies every migration to chDB
// (ClickHouse 26 in-process) twice: rendered for 18.16 and rendered for
// chDB's own version. Both must run; the modern schema must have its
// LowCardinality columns, codecs and TTL, and otherwise the same tables,
// columns and types as the 18.16 schema, so that no query can tell them
// apart; and its materialized views must still feed the rollups.
func TestRenderingsOnCurrentClickHouse(t *testing.T) {
	lib := chdb.LibFromEnv()
	if lib == "" {
		t.Skipf("chDB test skipped: set %s to libchdb.so (scripts/chdb install prints it; make test does)", chdb.EnvLib)
	}
	s, err := chdb.Open(lib, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	q := func(sql string) string {
		t.Helper()
		out, err := s.Query(sql, "TabSeparated")
		if err != nil {
			t.Fatalf("%v\n%s", err, sql)
		}
		return string(out)
	}
	version := strings.TrimSpace(q("SELECT version()"))
	ms, err := migrations.Load(migrations.Files())
	if err != nil {
		t.Fatal(err)
	}
	for _, target := range []migrations.Target{{Database: "old"}, {Database: "modern", Version: version}} {
		q("CREATE DATABASE " + target.Database)
		q("USE " + target.Database)
		for _, m := range ms {
			stmts, err := m.Statements(target)
			if err != nil {
				t.Fatal(err)
			}
			for _, st := range stmts {
				q(st)
			}
		}
	}
	if !(migrations.Target{Version: version}).Modern() {
		t.Fatalf("chDB %s does not get the modern rendering (ModernVersion %s)", version, migrations.ModernVersion)
	}
	columns := func(db string) map[string]string {
		out := map[string]string{}
		rows := q("SELECT table, name, type, compression_codec FROM system.columns WHERE database = '" + db + "' ORDER BY table, position")
		for _, line := range strings.Split(strings.TrimSuffix(rows, "\n"), "\n") {
			f := strings.Split(line, "\t")
			out[f[0]+"."+f[1]] = f[2] + "\t" + f[3]
		}
		return out
	}
	old, modern := columns("old"), columns("modern")
	lc, codecs := 0, 0
	for col, typ := range modern {
		o, ok := old[col]
		if !ok {
			t.Errorf("%s: only in the modern schema", col)
			continue
		}
		if strings.Contains(o, "LowCardinality") || strings.Contains(o, "CODEC") {
			t.Errorf("%s: %s in the 18.16 rendering", col, o)
		}
		plain, codec, _ := strings.Cut(typ, "\t")
		if strings.HasPrefix(plain, "LowCardinality(") {
			lc++
			plain = strings.TrimSuffix(strings.TrimPrefix(plain, "LowCardinality("), ")")
		}
		if codec != "" {
			codecs++
		}
		if oplain, _, _ := strings.Cut(o, "\t"); plain != oplain {
			t.Errorf("%s: %s in the modern schema, %s in the 18.16 one", col, typ, o)
		}
	}
	if len(old) != len(modern) {
		t.Errorf("%d columns in the 18.16 schema, %d in the modern one", len(old), len(modern))
	}
	for col, want := range map[string]string{
		"events.site_id":               "LowCardinality(String)\t",
		"events.browser":               "LowCardinality(String)\t",
		"events.ts":                    "DateTime\tCODEC(Delta(4), ZSTD(1))",
		"events.pathname":              "String\tCODEC(ZSTD(1))",
		"sessions.channel":             "LowCardinality(String)\t",
		"sessions.start":               "DateTime\tCODEC(Delta(4), ZSTD(1))",
		"events_hourly.hour":           "DateTime\tCODEC(DoubleDelta, ZSTD(1))",
		"sessions_dims_hourly.dim":     "LowCardinality(String)\t",
		"sessions_dims_hourly.value":   "String\t",
		"events.visitor_id":            "UInt64\t",
		"sessions_dims_input.visitors": "",
	} {
		if got := modern[col]; got != want {
			t.Errorf("modern %s: %q, want %q", col, got, want)
		}
	}
	t.Logf("chDB %s: %d columns in each schema; the modern one has %d LowCardinality columns and %d with codecs", version, len(modern), lc, codecs)
	if ttl := q("SELECT engine_full FROM system.tables WHERE database = 'modern' AND name = 'sealed_salts'"); !strings.Contains(ttl, "TTL day + toIntervalDay(2)") {
		t.Errorf("modern sealed_salts: %s, want TTL day + toIntervalDay(2)", ttl)
	}
	if ttl := q("SELECT engine_full FROM system.tables WHERE database = 'old' AND name = 'sealed_salts'"); strings.Contains(ttl, "TTL") {
		t.Errorf("18.16 sealed_salts: %s", ttl)
	}
	// The rollups follow inserts in both schemas, String values going into
	// LowCardinality columns through the views.
	for _, db := range []string{"old", "modern"} {
		q("INSERT INTO " + db + ".events (site_id, ts, type, visitor_id, pathname, hostname) " +
			"SELECT 'a.example', toDateTime('2025-03-03 10:00:00') + number, 'pageview', number % 3, '/', 'a.example' FROM numbers(10)")
		q("INSERT INTO " + db + ".sessions_dims_input (site_id, start, dim, value, visitor_ids, with_visitors, d_visits) " +
			"SELECT 'a.example', toDateTime('2025-03-03 10:00:00'), 'visit:browser', 'Firefox', [number], 1, 1 FROM numbers(4)")
		got := q("SELECT (SELECT uniqMerge(visitors) FROM " + db + ".events_hourly), (SELECT sumMerge(pageviews) FROM " + db + ".pages_hourly), " +
			"(SELECT uniqMerge(visitors) FROM " + db + ".sessions_dims_hourly WHERE dim = 'visit:browser'), " +
			"(SELECT sumMerge(visits) FROM " + db + ".sessions_dims_hourly WHERE value = 'Firefox')")
		if got != "3\t10\t4\t4\n" {
			t.Errorf("%s rollups after 10 page views of 3 visitors and 4 Firefox visits: %q, want 3, 10, 4, 4", db, got)
		}
	}
}
