package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/glimpse-analytics/glimpse/internal/apptest"
	"github.com/glimpse-analytics/glimpse/internal/chtest"
	"github.com/glimpse-analytics/glimpse/internal/identity"
)

// firefoxLinux is the browser of the salt tests' visitor.
const firefoxLinux = "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0"

// newSaltKey returns a random salt key as an operator would make one
// (openssl rand -base64 32).
func newSaltKey(t *testing.T) string {
	t.Helper()
	b := make([]byte, 32)
	rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}

// storedSalts returns every salt in the database by day, the winner of
// each day and the candidates that lost alike, opened as a collector
// holding key opens them, and the sealed rows as stored.
func storedSalts(t *testing.T, conn driver.Conn, key string) (salts map[string][][]byte, sealed [][]byte) {
	t.Helper()
	k, err := identity.NewSaltKey([]byte(key))
	if err != nil {
		t.Fatal(err)
	}
	rows, err := conn.Query(context.Background(), "SELECT day, sealed FROM sealed_salts")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	salts = map[string][][]byte{}
	for rows.Next() {
		var day time.Time
		var s []byte
		if err := rows.Scan(&day, &s); err != nil {
			t.Fatal(err)
		}
		salt, err := k.Open(day, s)
		if err != nil {
			t.Fatalf("a stored salt of %s: %v", day.Format(time.DateOnly), err)
		}
		salts[day.Format(time.DateOnly)] = append(salts[day.Format(time.DateOnly)], salt)
		sealed = append(sealed, s)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return salts, sealed
}

// sqlQuote escapes a string as the driver does inside a ClickHouse string
// literal when it binds an argument into the query text.
var sqlQuote = strings.NewReplacer(`\`, `\\`, `'`, `\'`, "\x00", `\0`)

// TestSharedSaltsNeedTheKey: --shared-salts does not start without a salt
// key of 32 bytes or more, before it connects to anything, and no message
// shows the key given.
func TestSharedSaltsNeedTheKey(t *testing.T) {
	cfg := apptest.WriteConfig(t, apptest.SitesYAML)
	args := []string{"serve", "--config", cfg, "--clickhouse", "clickhouse://127.0.0.1:1/x"}
	good := newSaltKey(t)
	for _, tt := range []struct {
		name  string
		env   []string
		extra []string
		want  string
	}{
		{"no key", nil, []string{"--shared-salts"},
			"--shared-salts needs the salt key: set GLIMPSE_SALT_KEY (or the variable --salt-key-env names)"},
		{"short key", []string{"GLIMPSE_SALT_KEY=short-secret"}, []string{"--shared-salts"},
			"--shared-salts: GLIMPSE_SALT_KEY: the salt key has 12 bytes; use at least 32 random bytes"},
		{"own variable", []string{"GLIMPSE_SALT_KEY=" + good, "MY_SALT_KEY=short-secret"}, []string{"--shared-salts", "--salt-key-env", "MY_SALT_KEY"},
			"--shared-salts: MY_SALT_KEY: the salt key has 12 bytes"},
		{"own variable unset", []string{"GLIMPSE_SALT_KEY=" + good}, []string{"--shared-salts", "--salt-key-env", "MY_SALT_KEY"},
			"--shared-salts needs the salt key: set MY_SALT_KEY"},
		{"not shared", nil, nil, "on ClickHouse at [127.0.0.1:1]"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, errOut, code := apptest.Run(t, tt.env, append(args, tt.extra...)...)
			if code != 1 || !strings.Contains(errOut, tt.want) {
				t.Fatalf("code %d, stderr %q; want 1 and %q", code, errOut, tt.want)
			}
			if strings.Contains(errOut, "short-secret") || strings.Contains(errOut, good) {
				t.Errorf("the message shows the key: %q", errOut)
			}
		})
	}
}

// spellings are the ways a salt could be written down: raw, as a bound
// SQL string literal, hex in both cases, base64 standard and URL, padded
// or not.
func spellings(salt []byte) map[string][]byte {
	out := map[string][]byte{
		"raw":           salt,
		"hex":           []byte(hex.EncodeToString(salt)),
		"HEX":           []byte(strings.ToUpper(hex.EncodeToString(salt))),
		"base64":        []byte(base64.StdEncoding.EncodeToString(salt)),
		"base64 raw":    []byte(base64.RawStdEncoding.EncodeToString(salt)),
		"base64url":     []byte(base64.URLEncoding.EncodeToString(salt)),
		"base64url raw": []byte(base64.RawURLEncoding.EncodeToString(salt)),
	}
	if q := sqlQuote.Replace(string(salt)); q != string(salt) {
		out["sql literal"] = []byte(q)
	}
	return out
}

// leaks returns where in text (named where) any spelling of a salt
// occurs.
func leaks(where string, text []byte, salts map[string][][]byte) []string {
	var found []string
	for day, ss := range salts {
		for i, s := range ss {
			for name, sp := range spellings(s) {
				if bytes.Contains(text, sp) {
					found = append(found, fmt.Sprintf("%s: salt %d of %s, %s", where, i, day, name))
				}
			}
		}
	}
	return found
}

// tableText returns every value of every table of the database as text,
// one string per table: String columns as they are, arrays of strings
// joined, aggregate states as their bytes, the rest through toString.
func tableText(t *testing.T, db *chtest.DB) map[string][]byte {
	t.Helper()
	ctx := context.Background()
	rows, err := db.Conn.Query(ctx, "SELECT table, name, type FROM system.columns WHERE database = ? ORDER BY table, position", db.Database)
	if err != nil {
		// 18.16's system.columns has no position; the order does not matter.
		rows, err = db.Conn.Query(ctx, "SELECT table, name, type FROM system.columns WHERE database = ?", db.Database)
	}
	if err != nil {
		t.Fatal(err)
	}
	cols := map[string][]string{}
	for rows.Next() {
		var table, name, typ string
		if err := rows.Scan(&table, &name, &typ); err != nil {
			t.Fatal(err)
		}
		expr := "toString(`" + name + "`)"
		switch {
		case typ == "String" || strings.HasPrefix(typ, "FixedString"):
			expr = "`" + name + "`"
		case typ == "Array(String)":
			expr = "arrayStringConcat(`" + name + "`, '\\n')"
		case strings.HasPrefix(typ, "AggregateFunction"):
			expr = "CAST(`" + name + "` AS String)"
		}
		cols[table] = append(cols[table], expr)
	}
	rows.Close()
	engines := map[string]string{}
	rows, err = db.Conn.Query(ctx, "SELECT name, engine FROM system.tables WHERE database = ?", db.Database)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var name, engine string
		if err := rows.Scan(&name, &engine); err != nil {
			t.Fatal(err)
		}
		engines[name] = engine
	}
	rows.Close()
	out := map[string][]byte{}
	for table, exprs := range cols {
		if e := engines[table]; e == "MaterializedView" || e == "Null" || e == "View" {
			continue // holds nothing of its own
		}
		q := fmt.Sprintf("SELECT %s FROM %s.`%s`", strings.Join(exprs, ", "), db.Database, table)
		rows, err := db.Conn.Query(ctx, q)
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		var buf bytes.Buffer
		vals := make([]string, len(exprs))
		ptrs := make([]any, len(exprs))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		for rows.Next() {
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatalf("%s: %v", table, err)
			}
			for _, v := range vals {
				buf.WriteString(v)
				buf.WriteByte('\n')
			}
		}
		if err := rows.Err(); err != nil {
			t.Fatalf("%s: %v", table, err)
		}
		rows.Close()
		out[table] = buf.Bytes()
	}
	return out
}

// dirFiles returns the contents of every regular file under dir.
func dirFiles(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if os.IsNotExist(err) {
				return nil // a part merged away while we walked
			}
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(p)
		if os.IsNotExist(err) {
			return nil
		}
		out[p] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestSharedSaltsLeakNowhere runs two collectors with --shared-salts on
// one database, with ClickHouse logging their queries, until each has
// fetched today's salt and tomorrow's (Salts.Run fetches a day ahead) and
// pruned an expired day, and then looks for every stored salt, in every
// spelling, everywhere a ClickHouse reader or an operator could look:
// every table of the database, the server's query logs, its files of
// the database (with GLIMPSE_TEST_CLICKHOUSE_DATA), the spools and the
// collectors' logs. It finds none.
func TestSharedSaltsLeakNowhere(t *testing.T) {
	db := chtest.Migrated(t)
	ctx := context.Background()
	key := newSaltKey(t)
	// 18.16 logs queries only when asked; the driver sends DSN parameters
	// as settings of every query.
	dsn := db.DSN + "?log_queries=1"
	started := time.Now().Add(-2 * time.Second)

	// A salt of a day that ends before the collectors start: their prune
	// deletes it (ALTER ... DELETE), so its predicates are logged too.
	expired := time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, -3)
	sk, err := identity.NewSaltKey([]byte(key))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := identity.ClickHouseStore(db.Conn, sk, nil).LoadOrStore(ctx, expired, []byte("expired-day-salt-0123456789abcdef")); err != nil {
		t.Fatal(err)
	}
	before, beforeSealed := storedSalts(t, db.Conn, key)

	cfg := apptest.WriteConfig(t, apptest.SitesYAML)
	env := []string{"GLIMPSE_SALT_KEY=" + key}
	var servers []*apptest.Server
	var spools []string
	for range 2 {
		spool := t.TempDir()
		spools = append(spools, spool)
		servers = append(servers, apptest.Start(t, env, "--config", cfg, "--clickhouse", dsn, "--shared-salts", "--spool-dir", spool,
			"--trusted-proxies", "127.0.0.1/32", "--flush-interval", "100ms", "--log-level", "debug"))
	}
	for i, s := range servers {
		code, h := s.Post(t, "/api/event", fmt.Sprintf(`{"n":"pageview","u":"https://example.com/%d","d":"example.com"}`, i), http.Header{
			"User-Agent": {firefoxLinux}, "X-Forwarded-For": {"203.0.113.9"},
		})
		if code != 202 || h.Get("X-Glimpse-Dropped") != "" {
			t.Fatalf("instance %d: %d %q", i, code, h.Get("X-Glimpse-Dropped"))
		}
	}
	// Wait until both have fetched tomorrow's salt and the expired day is
	// gone.
	deadline := time.Now().Add(30 * time.Second)
	for {
		salts, _ := storedSalts(t, db.Conn, key)
		_, old := salts[expired.Format(time.DateOnly)]
		if len(salts) >= 2 && !old {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("salts of %d days stored, expired day still there: %v", len(salts), old)
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, s := range servers {
		s.Stop(t)
	}
	salts, sealed := storedSalts(t, db.Conn, key)
	for day, ss := range before {
		salts[day] = append(salts[day], ss...)
	}
	sealed = append(sealed, beforeSealed...)
	n := 0
	for _, ss := range salts {
		n += len(ss)
	}
	t.Logf("looking for %d salts of %d days", n, len(salts))

	var found []string
	for table, text := range tableText(t, db) {
		found = append(found, leaks("table "+table, text, salts)...)
	}

	if err := db.Conn.Exec(ctx, "SYSTEM FLUSH LOGS"); err != nil {
		t.Fatal(err)
	}
	// The query log, and the per-thread log 18.16 writes beside it.
	for _, l := range []struct {
		table, cols string
		optional    bool
	}{
		{"system.query_log", "query, exception", false},
		{"system.query_thread_log", "query, ''", true}, // log_query_threads, on by default
	} {
		table := l.table
		if l.optional && apptest.Count(t, db.Conn, "SELECT count() FROM system.tables WHERE database = 'system' AND name = '"+strings.TrimPrefix(table, "system.")+"'") == 0 {
			continue
		}
		rows, err := db.Conn.Query(ctx, "SELECT "+l.cols+" FROM "+table+" WHERE event_time >= ?", started)
		if err != nil {
			t.Fatal(err)
		}
		logged := 0
		for rows.Next() {
			var text, exc string
			if err := rows.Scan(&text, &exc); err != nil {
				t.Fatal(err)
			}
			if strings.Contains(text, "sealed_salts") {
				logged++
			}
			found = append(found, leaks(table, []byte(text+"\n"+exc), salts)...)
		}
		rows.Close()
		// Without the collectors' queries in the log, finding nothing there
		// would prove nothing.
		if logged == 0 {
			t.Fatalf("%s holds no query of the salts table: log_queries=1 did not reach the collectors' queries", table)
		}
		t.Logf("%s: %d entries of queries of the salts table searched", table, logged)
	}

	for i, spool := range spools {
		for name, b := range dirFiles(t, spool) {
			found = append(found, leaks(fmt.Sprintf("spool %d: %s", i, filepath.Base(name)), b, salts)...)
		}
	}
	for i, s := range servers {
		found = append(found, leaks(fmt.Sprintf("log of collector %d", i), []byte(s.Output()), salts)...)
	}
	if len(found) > 0 {
		t.Errorf("salts found in %d places:\n%s", len(found), strings.Join(found, "\n"))
	}

	t.Run("server files", func(t *testing.T) {
		dir := chtest.DataDir(t)
		var found []string
		files, seen := 0, 0
		for _, p := range db.Paths(t, dir) {
			for name, b := range dirFiles(t, p) {
				files++
				found = append(found, leaks(name, b, salts)...)
				for _, s := range sealed {
					if bytes.Contains(b, s) {
						seen++
					}
				}
			}
		}
		// The sealed rows are random bytes as the salts are: the search
		// must find them in the table's files, or it could not find a salt.
		if files == 0 || seen == 0 {
			t.Fatalf("%d files of database %s under %s, none holding a sealed salt: the search cannot see column data", files, db.Database, dir)
		}
		t.Logf("%d files of the database searched; sealed salts found in them %d times", files, seen)
		if len(found) > 0 {
			t.Errorf("salts found in %d places:\n%s", len(found), strings.Join(found, "\n"))
		}
	})
}

// bruteForce recovers the address and User-Agent behind a stored visitor
// id as an attacker holding a candidate salt would: it tries every
// address of the stored /24 with every guessed User-Agent. It returns
// them and the number of tries, or ok false.
func bruteForce(t *testing.T, salt []byte, ev storedEvent, uas []string) (ip netip.Addr, ua string, tries int, ok bool) {
	t.Helper()
	if len(salt) < identity.SaltSize {
		return netip.Addr{}, "", 0, false
	}
	salts, err := identity.NewSalts(context.Background(), identity.SaltsConfig{
		Now: func() time.Time { return ev.ts },
		Store: &identity.Store{LoadOrStore: func(context.Context, time.Time, []byte) ([]byte, error) {
			return salt, nil
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	prefix := netip.MustParsePrefix(ev.prefix)
	for a := prefix.Addr(); prefix.Contains(a); a = a.Next() {
		for _, u := range uas {
			tries++
			if salts.VisitorID(ev.ts, ev.site, a, []byte(u)) == ev.visitor {
				return a, u, tries, true
			}
		}
	}
	return netip.Addr{}, "", tries, false
}

type storedEvent struct {
	site    string
	visitor uint64
	prefix  string
	ts      time.Time
	browser string
	os      string
}

// candidateSalts returns what an attacker would try as the salt: every
// run of SaltSize bytes in every stored string, as stored and decoded
// from hex or base64 when it decodes.
func candidateSalts(texts map[string][]byte) [][]byte {
	seen := map[string]bool{}
	var out [][]byte
	add := func(b []byte) {
		for i := 0; i+identity.SaltSize <= len(b); i++ {
			w := string(b[i : i+identity.SaltSize])
			if !seen[w] {
				seen[w] = true
				out = append(out, []byte(w))
			}
		}
	}
	for _, text := range texts {
		for _, v := range bytes.Split(text, []byte("\n")) {
			add(v)
			if d, err := hex.DecodeString(string(v)); err == nil {
				add(d)
			}
			for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.RawURLEncoding} {
				if d, err := enc.DecodeString(string(v)); err == nil {
					add(d)
				}
			}
		}
	}
	return out
}

// TestVisitorIDsResistBruteForceWithoutTheKey plays an attacker who reads
// the whole database of a collector with --shared-salts: every string of
// every table is tried as the day's salt, with every address of the
// event's /24 and a few User-Agents guessed from its browser and OS
// fields. None recovers the visitor's address. As a control, the same
// search with the salt a collector holding the key reads recovers the
// address and the exact User-Agent.
func TestVisitorIDsResistBruteForceWithoutTheKey(t *testing.T) {
	db := chtest.Migrated(t)
	key := newSaltKey(t)
	cfg := apptest.WriteConfig(t, apptest.SitesYAML)
	s := apptest.Start(t, []string{"GLIMPSE_SALT_KEY=" + key}, "--config", cfg, "--clickhouse", db.DSN, "--shared-salts",
		"--trusted-proxies", "127.0.0.1/32", "--flush-interval", "100ms")
	const clientIP = "203.0.113.77"
	code, h := s.Post(t, "/api/event", `{"n":"pageview","u":"https://example.com/","d":"example.com"}`, http.Header{
		"User-Agent": {firefoxLinux}, "X-Forwarded-For": {clientIP},
	})
	if code != 202 || h.Get("X-Glimpse-Dropped") != "" {
		t.Fatalf("%d %q", code, h.Get("X-Glimpse-Dropped"))
	}
	s.Stop(t)

	var ev storedEvent
	err := db.Conn.QueryRow(context.Background(), "SELECT site_id, visitor_id, ip_prefix, ts, browser, os FROM events").
		Scan(&ev.site, &ev.visitor, &ev.prefix, &ev.ts, &ev.browser, &ev.os)
	if err != nil {
		t.Fatal(err)
	}
	if ev.browser != "Firefox" || ev.os != "Linux" {
		t.Fatalf("stored browser %q, os %q", ev.browser, ev.os)
	}
	// Guesses from the stored fields: Firefox on Linux, a few versions
	// and platforms, the real one among them.
	var uas []string
	for _, v := range []string{"124.0", "125.0", "126.0"} {
		for _, p := range []string{"X11; Linux x86_64", "X11; Ubuntu; Linux x86_64"} {
			uas = append(uas, fmt.Sprintf("Mozilla/5.0 (%s; rv:%s) Gecko/20100101 Firefox/%s", p, v, v))
		}
	}

	candidates := candidateSalts(tableText(t, db))
	tries := 0
	for _, c := range candidates {
		ip, ua, n, ok := bruteForce(t, c, ev, uas)
		tries += n
		if ok {
			t.Fatalf("the database alone gives away the visitor: %s with %q, after %d tries", ip, ua, tries)
		}
	}
	t.Logf("without the key: %d candidate salts, %d tries, nothing recovered", len(candidates), tries)

	// The control: a collector's view of the same day's salt.
	day := ev.ts.UTC().Truncate(24 * time.Hour)
	sk, err := identity.NewSaltKey([]byte(key))
	if err != nil {
		t.Fatal(err)
	}
	salt, err := identity.ClickHouseStore(db.Conn, sk, nil).LoadOrStore(context.Background(), day, []byte("a candidate that must lose, 16+ bytes"))
	if err != nil {
		t.Fatal(err)
	}
	ip, ua, n, ok := bruteForce(t, salt, ev, uas)
	if !ok || ip.String() != clientIP || ua != firefoxLinux {
		t.Fatalf("with the salt: recovered %v %q (%v) after %d tries; the search itself is broken", ip, ua, ok, n)
	}
	t.Logf("with the salt: %s and the exact User-Agent after %d tries", ip, n)
}
