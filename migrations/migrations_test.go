package migrations_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"regexp"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/glimpse-analytics/glimpse/internal/chtest"
	"github.com/glimpse-analytics/glimpse/migrations"
)

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return c
}

func TestLoadRejectsBadNames(t *testing.T) {
	tests := []struct {
		name  string
		files fstest.MapFS
		want  string
	}{
		{"bad name", fstest.MapFS{"1_x.sql": {Data: []byte("SELECT 1;")}}, "name must look like"},
		{"duplicate", fstest.MapFS{
			"0001_a.sql": {Data: []byte("SELECT 1;")},
			"0001_b.sql": {Data: []byte("SELECT 1;")},
		}, "share version 1"},
		{"zero", fstest.MapFS{"0000_a.sql": {Data: []byte("SELECT 1;")}}, "start at 0001"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := migrations.Load(tt.files)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Load: err = %v, want it to mention %q", err, tt.want)
			}
		})
	}
}

func TestEmbeddedAreOrderedAndRender(t *testing.T) {
	ms, err := migrations.Load(migrations.Files())
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) < 3 {
		t.Fatalf("want at least 3 embedded migrations, got %d", len(ms))
	}
	for i, m := range ms {
		if m.Version != i+1 {
			t.Errorf("migration %d has version %d; versions must be consecutive", i, m.Version)
		}
		stmts, err := m.Statements(migrations.Target{Database: "glimpse"})
		if err != nil {
			t.Fatal(err)
		}
		if len(stmts) == 0 {
			t.Errorf("%s renders no statement", m.Name)
		}
		for _, s := range stmts {
			for _, bad := range []string{"CODEC(", " TTL ", "LowCardinality", "IPv4", "IPv6", "DateTime64", "ON CLUSTER", "Replicated"} {
				if strings.Contains(s, bad) {
					t.Errorf("%s uses %q, which ClickHouse 18.16 or single-server mode rejects:\n%s", m.Name, bad, s)
				}
			}
		}
	}
}

func TestClusterRendering(t *testing.T) {
	ms, err := migrations.Load(migrations.Files())
	if err != nil {
		t.Fatal(err)
	}
	var all []string
	for _, m := range ms {
		stmts, err := m.Statements(migrations.Target{Database: "glimpse", Cluster: "analytics"})
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, stmts...)
	}
	text := strings.Join(all, ";\n")
	// Every name a statement reads or writes, qualified with the database:
	// an ON CLUSTER statement runs in `default` on each host.
	unqualified := regexp.MustCompile(`(?m)(?:TABLE(?: IF (?:NOT )?EXISTS)?|VIEW IF NOT EXISTS|\bTO|\bFROM|INSERT INTO) ([a-z_]+)\b`)
	for _, s := range all {
		// An INSERT ... SELECT through Distributed tables runs once, from
		// the host that migrates, and reaches every shard: it takes no ON
		// CLUSTER (which would run it on every host, copying rows again).
		// Statements marked to run on each shard or host take none either.
		insert := strings.HasPrefix(s, "INSERT INTO ") && !strings.Contains(s, "_local")
		marked := strings.HasPrefix(s, "/* each shard */ ") || strings.HasPrefix(s, "/* each host */ ")
		if !insert && !marked && !strings.Contains(s, " ON CLUSTER analytics") {
			t.Errorf("statement without ON CLUSTER:\n%s", s)
		}
		if marked && strings.Contains(s, " ON CLUSTER ") {
			t.Errorf("statement run on each shard or host with ON CLUSTER too:\n%s", s)
		}
		for _, m := range unqualified.FindAllStringSubmatch(s, -1) {
			if m[1] != "system" && m[1] != "glimpse" && !strings.HasPrefix(m[1], "to") {
				t.Errorf("unqualified name %q in:\n%s", m[1], s)
			}
		}
		// A Null table stores nothing: there is nothing to replicate.
		if strings.HasPrefix(s, "CREATE TABLE") && strings.Contains(s, "ENGINE = ") &&
			!strings.Contains(s, "ENGINE = Replicated") && !strings.Contains(s, "ENGINE = Distributed(") &&
			!strings.HasSuffix(s, "ENGINE = Null") {
			t.Errorf("table without a Replicated, Distributed or Null engine:\n%s", s)
		}
	}
	for _, want := range []string{
		"CREATE TABLE IF NOT EXISTS glimpse.events_local ON CLUSTER analytics (",
		"ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/glimpse/events_local', '{replica}')",
		"ENGINE = ReplicatedVersionedCollapsingMergeTree('/clickhouse/tables/{shard}/glimpse/sessions_local', '{replica}', sign, version)",
		"CREATE TABLE IF NOT EXISTS glimpse.events ON CLUSTER analytics AS glimpse.events_local ENGINE = Distributed(analytics, glimpse, events_local, visitor_id)",
		"CREATE MATERIALIZED VIEW IF NOT EXISTS glimpse.events_hourly_mv ON CLUSTER analytics\nTO glimpse.events_hourly_local",
		"CREATE TABLE IF NOT EXISTS glimpse.sessions_dims_input ON CLUSTER analytics AS glimpse.sessions_dims_input_local ENGINE = Distributed(analytics, glimpse, sessions_dims_input_local, rand())",
		"FROM glimpse.sessions_dims_input_local\nARRAY JOIN visitor_ids AS v",
		"FROM glimpse.events_local",
		"ReplicatedSummingMergeTree('/clickhouse/tables/{shard}/glimpse/sessions_hourly_local', '{replica}', (visits,",
		"DROP TABLE IF EXISTS glimpse.salts ON CLUSTER analytics;\nDROP TABLE IF EXISTS glimpse.salts_local ON CLUSTER analytics",
		// A column added to a table is added to the Distributed table in
		// front, on each host (18.16 refuses it ON CLUSTER).
		// Replicated tables are altered and mutated on one replica of each
		// shard (18.16's replicas race for an ON CLUSTER task of one).
		"/* each shard */ ALTER TABLE glimpse.email_optouts_local\n    ADD COLUMN opted_out UInt8 DEFAULT 1,",
		"/* each shard */ ALTER TABLE glimpse.events_local UPDATE",
		"/* each shard */ ALTER TABLE glimpse.sessions_dims_hourly_local DELETE",
		"/* each host */ ALTER TABLE glimpse.email_optouts\n    ADD COLUMN opted_out UInt8 DEFAULT 1,",
		// Rollups rebuilt from their shard's own rows, on each shard.
		"/* each shard */ INSERT INTO glimpse.sessions_dims_hourly_local\nSELECT",
		"/* each shard */ ALTER TABLE glimpse.events_hourly_local DELETE",
		"/* each shard */ INSERT INTO glimpse.events_hourly_local\nSELECT",
		"INSERT INTO glimpse.sessions_dims_hourly (site_id,",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("cluster rendering lacks %q", want)
		}
	}
}

// TestSingleServerRenderingUnchanged: a landed file may change only in
// ways that leave what it renders for a single server the same, since
// servers applied that already. The hash is of every migration's
// single-server statements up to 0014; a new migration does not change it.
func TestSingleServerRenderingUnchanged(t *testing.T) {
	ms, err := migrations.Load(migrations.Files())
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	for _, m := range ms {
		if m.Version > 14 {
			break
		}
		stmts, err := m.Statements(migrations.Target{Database: "glimpse"})
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(h, "-- %s\n%s;\n\n", m.Name, strings.Join(stmts, ";\n\n"))
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != singleServerHash {
		t.Errorf("single-server rendering of 0001..0014 changed: sha256 %s, was %s", got, singleServerHash)
	}
}

func TestApplyTwiceIsNoop(t *testing.T) {
	db := chtest.New(t)
	r := migrations.NewRunner(db.Conn, migrations.Target{Database: db.Database}, nil, nil)
	first, err := r.Apply(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	all, _ := migrations.Load(migrations.Files())
	if len(first) != len(all) {
		t.Fatalf("first run applied %d migrations, want %d", len(first), len(all))
	}
	second, err := r.Apply(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(second) != 0 {
		t.Fatalf("second run applied %v, want nothing", second)
	}
	var n uint64
	if err := db.Conn.QueryRow(ctx(t), "SELECT count() FROM schema_migrations").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if int(n) != len(all) {
		t.Fatalf("schema_migrations has %d rows, want %d", n, len(all))
	}
	ok, err := migrations.Current(ctx(t), db.Conn)
	if err != nil || !ok {
		t.Fatalf("Current = %v, %v; want true", ok, err)
	}
}

// TestEmailOptOutStateKeepsOldRows upgrades a database whose
// email_optouts holds rows of the collectors before 0010: they read as
// opt-outs older than any later change, and a recipient's latest change
// decides its state.
func TestEmailOptOutStateKeepsOldRows(t *testing.T) {
	db := chtest.New(t)
	before := fstest.MapFS{}
	all, err := migrations.Load(migrations.Files())
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range all {
		if m.Version < 10 {
			b, err := fs.ReadFile(migrations.Files(), m.Name+".sql")
			if err != nil {
				t.Fatal(err)
			}
			before[m.Name+".sql"] = &fstest.MapFile{Data: b}
		}
	}
	target := migrations.Target{Database: db.Database}
	if _, err := migrations.NewRunner(db.Conn, target, before, nil).Apply(ctx(t)); err != nil {
		t.Fatal(err)
	}
	for _, rec := range []string{"old", "back"} {
		if err := db.Conn.Exec(ctx(t), "INSERT INTO email_optouts (site_id, recipient, ts) SELECT 'example.com', ?, now()", rec); err != nil {
			t.Fatal(err)
		}
	}
	done, err := migrations.NewRunner(db.Conn, target, nil, nil).Apply(ctx(t))
	if err != nil || len(done) != len(all)-9 {
		t.Fatalf("applied %d migrations after 0009, %v; want %d", len(done), err, len(all)-9)
	}
	// "back" opted in again, "new" opted out and in and out.
	for _, r := range []struct {
		rec string
		out uint8
		seq uint64
	}{{"back", 0, 10}, {"new", 1, 20}, {"new", 0, 21}, {"new", 1, 22}} {
		err := db.Conn.Exec(ctx(t), "INSERT INTO email_optouts (site_id, recipient, ts, opted_out, seq) SELECT 'example.com', ?, now(), ?, ?", r.rec, r.out, r.seq)
		if err != nil {
			t.Fatal(err)
		}
	}
	rows, err := db.Conn.Query(ctx(t), "SELECT recipient, argMax(opted_out, seq) FROM email_optouts GROUP BY site_id, recipient ORDER BY recipient")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var got []string
	for rows.Next() {
		var rec string
		var out uint8
		if err := rows.Scan(&rec, &out); err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprintf("%s=%d", rec, out))
	}
	if strings.Join(got, " ") != "back=0 new=1 old=1" {
		t.Fatalf("states %v, want back=0 new=1 old=1", got)
	}
}

func TestFailedMigrationIsNotRecorded(t *testing.T) {
	db := chtest.New(t)
	files := fstest.MapFS{
		"0001_ok.sql":     {Data: []byte("CREATE TABLE IF NOT EXISTS a (x UInt8) ENGINE = {{engine \"MergeTree\" \"a\"}} ORDER BY x;\n")},
		"0002_broken.sql": {Data: []byte("CREATE TABLE IF NOT EXISTS b (x UInt8) ENGINE = MergeTree() ORDER BY x;\nCREATE TABLE c (x NoSuchType) ENGINE = Memory;\n")},
		"0003_later.sql":  {Data: []byte("CREATE TABLE IF NOT EXISTS d (x UInt8) ENGINE = Memory;\n")},
	}
	r := migrations.NewRunner(db.Conn, migrations.Target{Database: db.Database}, files, nil)
	done, err := r.Apply(ctx(t))
	if err == nil {
		t.Fatal("Apply succeeded over a broken migration")
	}
	for _, want := range []string{"0002_broken", "statement 2 of 2", "nothing recorded"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if len(done) != 1 || done[0].Version != 1 {
		t.Fatalf("applied %v before the failure, want only 0001", done)
	}
	applied, err := r.Applied(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if !applied[1] || applied[2] || applied[3] {
		t.Fatalf("recorded %v, want only version 1", applied)
	}
	// Fixed, the migration applies on the next run along with the rest.
	files["0002_broken.sql"] = &fstest.MapFile{Data: []byte("CREATE TABLE IF NOT EXISTS b (x UInt8) ENGINE = MergeTree() ORDER BY x;\nCREATE TABLE IF NOT EXISTS c (x UInt8) ENGINE = Memory;\n")}
	done, err = r.Apply(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(done) != 2 {
		t.Fatalf("after the fix applied %d migrations, want 2", len(done))
	}
}

// TestNoColumnHoldsFullIPOrUserAgent inspects the real schema: only
// ip_prefix (a text CIDR) may mention an IP, no column may hold an address
// type, and nothing may hold the raw User-Agent.
func TestNoColumnHoldsFullIPOrUserAgent(t *testing.T) {
	db := chtest.Migrated(t)
	rows, err := db.Conn.Query(ctx(t), "SELECT table, name, type FROM system.columns WHERE database = currentDatabase()")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var table, name, typ string
		if err := rows.Scan(&table, &name, &typ); err != nil {
			t.Fatal(err)
		}
		n++
		lname := strings.ToLower(name)
		if strings.Contains(lname, "ip") && name != "ip_prefix" && !strings.Contains(lname, "recipient") {
			t.Errorf("%s.%s (%s) looks like an IP column; only ip_prefix may exist", table, name, typ)
		}
		if strings.Contains(typ, "IPv") || typ == "FixedString(16)" || typ == "FixedString(4)" {
			t.Errorf("%s.%s has type %s, which can hold a full address", table, name, typ)
		}
		if lname == "ua" || strings.Contains(lname, "user_agent") || strings.Contains(lname, "useragent") {
			t.Errorf("%s.%s looks like a raw User-Agent column", table, name)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if n < 40 {
		t.Fatalf("only %d columns in the schema; migrations did not run?", n)
	}
}

// TestRollupsFollowInserts checks the materialized views on the real server:
// sessions' -1/+1 pairs cancel in sessions_hourly, and events_hourly counts
// visitors and page views.
func TestRollupsFollowInserts(t *testing.T) {
	db := chtest.Migrated(t)
	c := ctx(t)
	for _, q := range []string{
		`INSERT INTO events (site_id, event_id, ts, type, visitor_id, pathname) SELECT 'a.com', generateUUIDv4(), toDateTime('2026-01-02 10:15:00'), 'pageview', 1, '/x'`,
		`INSERT INTO events (site_id, event_id, ts, type, visitor_id, pathname) SELECT 'a.com', generateUUIDv4(), toDateTime('2026-01-02 10:20:00'), 'pageview', 2, '/x'`,
		`INSERT INTO events (site_id, event_id, ts, type, visitor_id, name) SELECT 'a.com', generateUUIDv4(), toDateTime('2026-01-02 10:25:00'), 'custom', 2, 'Signup'`,
		`INSERT INTO sessions (site_id, session_id, visitor_id, sign, version, start, ts, duration, pageviews, is_bounce) SELECT 'a.com', 9, 2, 1, 1, toDateTime('2026-01-02 10:20:00'), toDateTime('2026-01-02 10:20:00'), 0, 1, 1`,
		`INSERT INTO sessions (site_id, session_id, visitor_id, sign, version, start, ts, duration, pageviews, is_bounce) SELECT 'a.com', 9, 2, -1, 1, toDateTime('2026-01-02 10:20:00'), toDateTime('2026-01-02 10:20:00'), 0, 1, 1`,
		`INSERT INTO sessions (site_id, session_id, visitor_id, sign, version, start, ts, duration, pageviews, is_bounce) SELECT 'a.com', 9, 2, 1, 2, toDateTime('2026-01-02 10:20:00'), toDateTime('2026-01-02 10:25:00'), 300, 1, 0`,
	} {
		if err := db.Conn.Exec(c, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	var visitors, pageviews, events uint64
	if err := db.Conn.QueryRow(c, `SELECT uniqMerge(visitors), sumMerge(pageviews), sumMerge(events) FROM events_hourly WHERE site_id = 'a.com'`).
		Scan(&visitors, &pageviews, &events); err != nil {
		t.Fatal(err)
	}
	if visitors != 2 || pageviews != 2 || events != 3 {
		t.Errorf("events_hourly: visitors %d pageviews %d events %d, want 2 2 3", visitors, pageviews, events)
	}
	var visits, bounces, dur int64
	if err := db.Conn.QueryRow(c, `SELECT sum(visits), sum(bounces), sum(duration_sum) FROM sessions_hourly WHERE site_id = 'a.com'`).
		Scan(&visits, &bounces, &dur); err != nil {
		t.Fatal(err)
	}
	if visits != 1 || bounces != 0 || dur != 300 {
		t.Errorf("sessions_hourly: visits %d bounces %d duration %d, want 1 0 300", visits, bounces, dur)
	}
}

// TestSessionsHourlyGroupsEachInsert: a drain's rows reach sessions_hourly
// summed per site and hour (0007), not one rollup row per session row. One
// INSERT makes one part, which ClickHouse does not merge with itself, so
// the row count is what the view wrote.
func TestSessionsHourlyGroupsEachInsert(t *testing.T) {
	db := chtest.Migrated(t)
	c := ctx(t)
	// 1,000 sessions in two hours of one site and one hour of another; the
	// odd ones are an update (-1 old, +1 new), the even ones are new.
	q := `INSERT INTO sessions (site_id, session_id, visitor_id, sign, version, start, ts, duration, pageviews, is_bounce, engagement_ms)
		SELECT if(n % 10 = 0, 'b.com', 'a.com'), intDiv(n, 2), intDiv(n, 2), if(n % 2 = 1 AND n % 4 = 1, -1, 1), 1,
			toDateTime('2026-01-02 10:00:00') + if(n % 3 = 0, 3600, 0), toDateTime('2026-01-02 12:00:00'), 10, 2, 0, 500
		FROM (SELECT number AS n FROM system.numbers LIMIT 1000)`
	if err := db.Conn.Exec(c, q); err != nil {
		t.Fatal(err)
	}
	type agg struct {
		rows                        uint64
		visits, duration, pageviews int64
	}
	var want, got agg
	if err := db.Conn.QueryRow(c, `SELECT toUInt64(uniqExact(site_id, toStartOfHour(start))), sum(sign), sum(sign * duration), sum(sign * pageviews) FROM sessions`).
		Scan(&want.rows, &want.visits, &want.duration, &want.pageviews); err != nil {
		t.Fatal(err)
	}
	if err := db.Conn.QueryRow(c, `SELECT count(), sum(visits), sum(duration_sum), sum(pageviews_sum) FROM sessions_hourly`).
		Scan(&got.rows, &got.visits, &got.duration, &got.pageviews); err != nil {
		t.Fatal(err)
	}
	if want.rows != 4 || want.visits == 0 {
		t.Fatalf("fixture: %+v, want 4 site-hours and some visits", want)
	}
	if got != want {
		t.Errorf("sessions_hourly after one insert: %+v, want %+v (rows: one per site and hour)", got, want)
	}
}

const singleServerHash = "6bc5bbc15ed13fa15f991ae8714301a09e948dbde6fb42e71f504e1c9414a8a5"
