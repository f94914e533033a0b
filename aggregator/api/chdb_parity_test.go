package api_test

// The engine's SQL on current ClickHouse (issue 25): the oracle's traffic
// is stored on the test server (ClickHouse 18.16) and copied table by
// table into chDB (ClickHouse 26 in-process, internal/chdb), whose schema
// is the same migrations rendered for it. Every v1 and v2 question of the
// oracles is then asked of the Stats API, whose engine runs on 18.16
// through a connection that tags each statement; the server's query log
// gives each statement's text with its arguments bound, as the server
// ran it. Each distinct statement then runs on both servers and the
// results are compared row by row.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/glimpse-analytics/glimpse/aggregator"
	"github.com/glimpse-analytics/glimpse/aggregator/api"
	"github.com/glimpse-analytics/glimpse/internal/chdb"
	"github.com/glimpse-analytics/glimpse/internal/chtest"
	"github.com/glimpse-analytics/glimpse/migrations"
)

// recConn tags every query the engine runs with a query ID of its own
// and asks the server to log it (system.query_log), so that the bound
// SQL text can be read back.
type recConn struct {
	driver.Conn
	prefix string
	mu     sync.Mutex
	n      int
}

func (r *recConn) tag(ctx context.Context) context.Context {
	r.mu.Lock()
	id := fmt.Sprintf("%s-%d", r.prefix, r.n)
	r.n++
	r.mu.Unlock()
	return clickhouse.Context(ctx, clickhouse.WithQueryID(id), clickhouse.WithSettings(clickhouse.Settings{"log_queries": 1}))
}

func (r *recConn) Query(ctx context.Context, q string, args ...any) (driver.Rows, error) {
	return r.Conn.Query(r.tag(ctx), q, args...)
}

func (r *recConn) QueryRow(ctx context.Context, q string, args ...any) driver.Row {
	return r.Conn.QueryRow(r.tag(ctx), q, args...)
}

func (r *recConn) Select(ctx context.Context, dest any, q string, args ...any) error {
	return r.Conn.Select(r.tag(ctx), dest, q, args...)
}

// statements returns the distinct texts of the queries r tagged that the
// server finished, sorted, and how many it ran in all.
func (r *recConn) statements(t *testing.T, conn driver.Conn) ([]string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := conn.Exec(ctx, "SYSTEM FLUSH LOGS"); err != nil {
		t.Fatal(err)
	}
	rows, err := conn.Query(ctx, "SELECT query_id, type, query FROM system.query_log "+
		"WHERE event_date >= yesterday() AND query_id LIKE ? AND type != 1", r.prefix+"-%")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	seen := map[string]bool{}
	ran, failed := 0, 0
	for rows.Next() {
		var id, q string
		var typ uint8
		if err := rows.Scan(&id, &typ, &q); err != nil {
			t.Fatal(err)
		}
		if typ != 2 { // QueryFinish; 3 and 4 are exceptions
			failed++
			t.Errorf("the engine's query %s failed on the server: %s", id, q)
			continue
		}
		ran++
		seen[q] = true
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if ran+failed != r.n {
		t.Fatalf("the query log holds %d of the %d queries tagged", ran+failed, r.n)
	}
	out := make([]string, 0, len(seen))
	for q := range seen {
		out = append(out, q)
	}
	slices.Sort(out)
	return out, ran
}

// httpQuery runs sql on the test server's HTTP interface in database db
// and returns its TabSeparated output.
func httpQuery(addr, db, sql string) ([]byte, error) {
	u := "http://" + addr + "/?database=" + url.QueryEscape(db)
	res, err := http.Post(u, "text/plain", strings.NewReader(sql+"\nFORMAT TabSeparated"))
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return nil, err
	}
	if res.StatusCode != 200 {
		return nil, fmt.Errorf("HTTP %d: %s", res.StatusCode, strings.TrimSpace(string(b)))
	}
	return b, nil
}

// mvTarget finds the table a materialized view writes to.
var mvTarget = regexp.MustCompile(`(?s)\sTO\s+(?:\x60?\w+\x60?\.)?\x60?(\w+)\x60?`)

// copyTables copies every table of db on the server that holds rows
// (not a view, nor a Null table) into database into of s, where the
// same migrations made the same tables. Rollup tables are copied as
// they are (their aggregate states included), so s's materialized views
// are dropped first: otherwise the copied raw rows would be rolled up
// twice. It returns the number of tables and rows copied.
func copyTables(t *testing.T, addr, db string, s *chdb.Session, into string) (tables, rows int) {
	t.Helper()
	list, err := httpQuery(addr, "system", "SELECT name, engine, create_table_query FROM system.tables WHERE database = '"+db+"' ORDER BY name")
	if err != nil {
		t.Fatal(err)
	}
	type table struct{ name, engine string }
	var copyList []table
	for _, line := range strings.Split(strings.TrimSuffix(string(list), "\n"), "\n") {
		f := strings.SplitN(line, "\t", 3)
		if len(f) != 3 {
			t.Fatalf("system.tables: %q", line)
		}
		switch f[1] {
		case "MaterializedView":
			m := mvTarget.FindStringSubmatch(f[2])
			if m == nil {
				t.Fatalf("materialized view %s: no TO table in %s", f[0], f[2])
			}
			if _, err := s.Query("DROP TABLE IF EXISTS "+into+"."+f[0], "TabSeparated"); err != nil {
				t.Fatal(err)
			}
		case "View", "Null", "Distributed":
		default:
			if f[0] != "schema_migrations" {
				copyList = append(copyList, table{f[0], f[1]})
			}
		}
	}
	for _, tb := range copyList {
		cols, err := httpQuery(addr, "system", "SELECT name FROM system.columns WHERE database = '"+db+"' AND table = '"+tb.name+"'")
		if err != nil {
			t.Fatal(err)
		}
		colList := strings.Join(strings.Fields(string(cols)), ", ")
		data, err := httpQuery(addr, db, "SELECT "+colList+" FROM "+tb.name)
		if err != nil {
			t.Fatal(err)
		}
		if len(data) == 0 {
			continue
		}
		n := strings.Count(string(data), "\n")
		// optimize_on_insert = 0: rows stay as they were, not merged by
		// key at insert as current servers do (18.16 never did).
		if _, err := s.Query("INSERT INTO "+into+"."+tb.name+" ("+colList+") SETTINGS optimize_on_insert = 0 FORMAT TabSeparated\n"+string(data), "TabSeparated"); err != nil {
			t.Fatalf("copying %s (%s, %d rows) into chDB: %v", tb.name, tb.engine, n, err)
		}
		back, err := s.Query("SELECT count() FROM "+into+"."+tb.name, "TabSeparated")
		if err != nil || strings.TrimSpace(string(back)) != strconv.Itoa(n) {
			t.Fatalf("copied %d rows of %s into chDB, which holds %s (%v)", n, tb.name, back, err)
		}
		tables++
		rows += n
	}
	return tables, rows
}

// chdbMigrate creates database name in s and applies every migration,
// rendered for target, to it.
func chdbMigrate(t *testing.T, s *chdb.Session, name string, target migrations.Target) {
	t.Helper()
	ms, err := migrations.Load(migrations.Files())
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"CREATE DATABASE " + name, "USE " + name} {
		if _, err := s.Query(q, "TabSeparated"); err != nil {
			t.Fatal(err)
		}
	}
	for _, m := range ms {
		stmts, err := m.Statements(target)
		if err != nil {
			t.Fatal(err)
		}
		for i, q := range stmts {
			if _, err := s.Query(q, "TabSeparated"); err != nil {
				t.Fatalf("migration %s, statement %d on chDB: %v\n%s", m.Name, i+1, err, q)
			}
		}
	}
}

// orderedOutput reports whether sql's outermost query has an ORDER BY
// (outside parentheses and string literals): only then is the order of
// its rows defined.
func orderedOutput(sql string) bool {
	depth, quoted := 0, false
	for i := 0; i < len(sql); i++ {
		c := sql[i]
		switch {
		case quoted:
			if c == '\\' {
				i++
			} else if c == '\'' {
				quoted = false
			}
		case c == '\'':
			quoted = true
		case c == '(':
			depth++
		case c == ')':
			depth--
		case depth == 0 && (c == 'O' || c == 'o') && len(sql)-i >= 8 && strings.EqualFold(sql[i:i+8], "ORDER BY") &&
			(i == 0 || !isIdent(sql[i-1])):
			return true
		}
	}
	return false
}

func isIdent(c byte) bool {
	return c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

// floatTolerance is the relative difference allowed between two numbers
// printed differently: a sum or average of Float64 depends on the order
// the values are added in (threads, blocks, parts), which differs between
// the servers; the last bits of a double (≈1e-16) are all it may change.
const floatTolerance = 1e-9

// tsvDiff compares two TabSeparated outputs of sql: in order when sql
// orders its rows, else as multisets. It returns a description of the
// first difference ("" if none), the number of values compared, and how
// many of them matched only within floatTolerance.
func tsvDiff(sql string, want, got []byte) (diff string, values, inexact int) {
	split := func(b []byte) []string {
		s := strings.TrimSuffix(string(b), "\n")
		if s == "" {
			return nil
		}
		return strings.Split(s, "\n")
	}
	w, g := split(want), split(got)
	if len(w) != len(g) {
		return fmt.Sprintf("%d rows on 18.16, %d on chDB", len(w), len(g)), 0, 0
	}
	if !orderedOutput(sql) {
		slices.Sort(w)
		slices.Sort(g)
	}
	for i := range w {
		wc, gc := strings.Split(w[i], "\t"), strings.Split(g[i], "\t")
		if len(wc) != len(gc) {
			return fmt.Sprintf("row %d: %d columns on 18.16, %d on chDB", i, len(wc), len(gc)), values, inexact
		}
		for j := range wc {
			values++
			if wc[j] == gc[j] {
				continue
			}
			a, errA := strconv.ParseFloat(wc[j], 64)
			b, errB := strconv.ParseFloat(gc[j], 64)
			if errA == nil && errB == nil && (math.Abs(a-b) <= floatTolerance*math.Max(math.Abs(a), math.Abs(b)) || math.IsNaN(a) && math.IsNaN(b)) {
				inexact++
				continue
			}
			return fmt.Sprintf("row %d column %d: %q on 18.16, %q on chDB\n18.16: %s\nchDB:  %s", i, j, wc[j], gc[j], w[i], g[i]), values, inexact
		}
	}
	return "", values, inexact
}

// TestChDBParity: see the top of the file. It logs how many statements
// and values it compared, reports each kind of difference with its first
// statement, and checks that it can fail: with one page view added on
// chDB's side, statements must differ.
func TestChDBParity(t *testing.T) {
	lib := chdb.LibFromEnv()
	if lib == "" {
		t.Skipf("chDB parity skipped: set %s to libchdb.so (scripts/chdb install prints it; make test does)", chdb.EnvLib)
	}
	// make test asks a part of the oracles' questions (runShort, as the
	// cluster parity does); GLIMPSE_TEST_CHDB_FULL=1 asks all of them.
	full := os.Getenv("GLIMPSE_TEST_CHDB_FULL") == "1"
	httpAddr := chtest.HTTPAddr(t)
	start := time.Now()
	sites := orSites(t)
	evs := orGenerate()
	m := newV2Model(evs)
	db := chtest.Migrated(t)
	orSend(t, db, sites, evs)
	t.Logf("sent %d events to 18.16 in %v", len(evs), time.Since(start).Round(time.Millisecond))

	// GLIMPSE_TEST_CHDB_PARITY_DIR keeps chDB's data and the statements
	// with 18.16's results (statements.json) there, to look into a
	// difference without running the test again.
	dir := os.Getenv("GLIMPSE_TEST_CHDB_PARITY_DIR")
	if dir == "" {
		dir = t.TempDir()
	}
	s, err := chdb.Open(lib, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	out, err := s.Query("SELECT version()", "TabSeparated")
	if err != nil {
		t.Fatal(err)
	}
	version := strings.TrimSpace(string(out))
	// The same data in both renderings of the schema: for 18.16, and for
	// chDB's own version (LowCardinality, codecs, TTL); and a copy with
	// one page view more, which the comparison must tell apart.
	const old, modern, altered = "glimpse_old", "glimpse_modern", "glimpse_altered"
	chdbMigrate(t, s, old, migrations.Target{Database: old})
	chdbMigrate(t, s, modern, migrations.Target{Database: modern, Version: version})
	chdbMigrate(t, s, altered, migrations.Target{Database: altered})
	tables, rows := copyTables(t, httpAddr, db.Database, s, old)
	copyTables(t, httpAddr, db.Database, s, modern)
	copyTables(t, httpAddr, db.Database, s, altered)
	if _, err := s.Query("INSERT INTO "+altered+".events SELECT * REPLACE (visitor_id + 1 AS visitor_id, generateUUIDv4() AS event_id) "+
		"FROM "+altered+".events WHERE type = 'pageview' AND site_id = '"+orSiteUTC+"' ORDER BY ts LIMIT 1", "TabSeparated"); err != nil {
		t.Fatal(err)
	}
	t.Logf("chDB %s: copied %d tables, %d rows, into each schema", version, tables, rows)

	// Ask every question of both oracles, recording the SQL.
	asked := time.Now()
	rec := &recConn{Conn: db.Conn, prefix: "chdbparity-" + db.Database}
	a, err := api.New(api.Options{Engine: aggregator.New(aggregator.Options{Conn: rec}), Sites: sites, RateLimit: 1 << 30,
		Now: func() time.Time { return orNow }})
	if err != nil {
		t.Fatal(err)
	}
	// The oracles' own checks run too; their mismatches are TestOracle's
	// and TestOracleV2's to report, and are only counted here.
	requests, mismatches := 0, 0
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, site := range []string{orSiteUTC, orSiteNY} {
		loc, _ := time.LoadLocation(sites.Site(site).Timezone)
		wg.Add(2)
		go func() {
			defer wg.Done()
			c := &orChecker{t: t, routes: a.Routes()}
			if full {
				c.run(m.orModel, sites, site)
			} else {
				c.runShort(m.orModel, site, loc)
			}
			mu.Lock()
			requests += c.requests
			mismatches += len(c.bad)
			mu.Unlock()
		}()
		go func() {
			defer wg.Done()
			c := &v2Checker{orChecker: &orChecker{t: t, routes: a.Routes()}, m: m}
			if full {
				c.run(site, loc)
			} else {
				c.runShort(site, loc)
			}
			mu.Lock()
			requests += c.requests
			mismatches += len(c.bad)
			mu.Unlock()
		}()
	}
	wg.Wait()
	stmts, ran := rec.statements(t, db.Conn)
	t.Logf("%d API requests (v1 and v2; %d oracle mismatches) ran %d queries, %d distinct, in %v",
		requests, mismatches, ran, len(stmts), time.Since(asked).Round(time.Millisecond))

	// Run each on 18.16 again (HTTP, for the results as text), four at a time.
	read := time.Now()
	want := make([][]byte, len(stmts))
	errs := make([]error, len(stmts))
	next := make(chan int)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				want[i], errs[i] = httpQuery(httpAddr, db.Database, stmts[i])
			}
		}()
	}
	for i := range stmts {
		next <- i
	}
	close(next)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("18.16: %v\n%s", err, stmts[i])
		}
	}
	t.Logf("18.16 ran the %d statements again in %v", len(stmts), time.Since(read).Round(time.Millisecond))
	if os.Getenv("GLIMPSE_TEST_CHDB_PARITY_DIR") != "" {
		type stmt struct{ SQL, Want string }
		var dump []stmt
		for i, q := range stmts {
			dump = append(dump, stmt{q, string(want[i])})
		}
		b, _ := json.Marshal(dump)
		if err := os.WriteFile(filepath.Join(dir, "statements.json"), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	// ... and on chDB, and compare.
	compare := func(into string) (diffs []string, values, inexact, rowsSeen int) {
		if _, err := s.Query("USE "+into, "TabSeparated"); err != nil {
			t.Fatal(err)
		}
		diffs = make([]string, len(stmts))
		for i, q := range stmts {
			got, err := s.Query(q, "TabSeparated")
			if err != nil {
				diffs[i] = "chDB error: " + err.Error()
				continue
			}
			d, v, in := tsvDiff(q, want[i], got)
			diffs[i] = d
			values += v
			inexact += in
			rowsSeen += strings.Count(string(want[i]), "\n")
		}
		return diffs, values, inexact, rowsSeen
	}
	var oldDiffs []string
	for _, into := range []string{old, modern} {
		start := time.Now()
		diffs, values, inexact, rowsSeen := compare(into)
		kinds := map[string][]int{}
		for i, d := range diffs {
			if d != "" {
				kinds[diffKind(d)] = append(kinds[diffKind(d)], i)
			}
		}
		n := 0
		for _, k := range orKeys(kinds) {
			n += len(kinds[k])
			t.Errorf("%s: %d statements differ: %s; the first:\n%s\n%s", into, len(kinds[k]), k, diffs[kinds[k][0]], stmts[kinds[k][0]])
		}
		t.Logf("%s: compared %d statements (%d rows, %d values; %d values equal only within %g) in %v: %d differ",
			into, len(stmts), rowsSeen, values, inexact, floatTolerance, time.Since(start).Round(time.Millisecond), n)
		if ran == 0 || values == 0 {
			t.Fatal("nothing compared")
		}
		if into == old {
			oldDiffs = diffs
		}
	}
	diffs, _, _, _ := compare(altered)
	changed := 0
	for i, d := range diffs {
		if d != "" && oldDiffs[i] == "" {
			changed++
		}
	}
	t.Logf("with one page view added on chDB's side, %d of %d statements differ", changed, len(stmts))
	if changed == 0 {
		t.Error("a page view added on chDB's side changed no result: the comparison cannot fail")
	}
}

// diffKind names the kind of a difference tsvDiff or chDB reported: the
// error code and the start of its message, or what differed.
func diffKind(d string) string {
	if m := errorCode.FindStringSubmatch(d); m != nil {
		msg := m[2]
		if len(msg) > 60 {
			msg = msg[:60]
		}
		return "chDB error " + m[1] + ": " + msg
	}
	switch {
	case strings.Contains(d, " rows on 18.16"):
		return "row counts"
	case strings.Contains(d, " columns on 18.16"):
		return "column counts"
	}
	return "values"
}

var errorCode = regexp.MustCompile(`Code: (\d+)\. DB::Exception: (.*)`)
