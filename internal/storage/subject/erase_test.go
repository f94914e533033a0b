package subject_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/valyala/fasthttp"

	"github.com/glimpse-analytics/glimpse/collector/session"
	"github.com/glimpse-analytics/glimpse/collector/sink"
	"github.com/glimpse-analytics/glimpse/internal/chtest"
	"github.com/glimpse-analytics/glimpse/internal/identity"
	"github.com/glimpse-analytics/glimpse/internal/model"
	"github.com/glimpse-analytics/glimpse/internal/storage/subject"
)

// site is what the tests below visit: the consented site of sites().
const site = "shop.example"

// markers are strings that only one person's rows hold: a page path, a
// property value and a campaign (a session's attribution, so also a
// sessions row and a sessions_dims_hourly value). Random hex, so that a
// file holding one holds it because of that person's rows, and so that
// LZ4 (ClickHouse 18.16's default codec) keeps a first occurrence as a
// literal run that a byte search can find.
type markers struct{ path, prop, campaign string }

func newMarkers() markers {
	r := func() string {
		var b [12]byte
		_, _ = rand.Read(b[:])
		return hex.EncodeToString(b[:])
	}
	return markers{path: "/erase-" + r(), prop: "prop-" + r(), campaign: "camp-" + r()}
}

func (m markers) all() []string { return []string{m.path, m.prop, m.campaign} }

// harness is a collector's write side without HTTP: a session cache and a
// writer, fed the way collector.ingest feeds them, and the subject API of
// glimpse serve in front of them.
type harness struct {
	t     *testing.T
	db    *chtest.DB
	cache *session.Cache
	dir   string // the spool
	w     *sink.Writer
	base  string // the subject API
	key   *identity.SubjectKey
	ctx   context.Context
	// cluster: db is a cluster's database (subject.Options.Cluster).
	cluster *chtest.Cluster
}

func newHarness(t *testing.T, db *chtest.DB) *harness {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	t.Cleanup(cancel)
	return &harness{t: t, db: db, cache: session.NewCache(session.CacheConfig{}), dir: t.TempDir(),
		key: identity.NewSubjectKey([]byte(subjectKey)), ctx: ctx}
}

// open starts a writer on the harness's spool and cache; with hold, rows
// wait in the spool (a reader hands a batch over once its first row is an
// hour old), while sessions are written every 50 ms.
func (h *harness) open(hold bool) {
	h.t.Helper()
	o := sink.Options{Conn: h.db.Conn, SpoolDir: h.dir, Interval: 20 * time.Millisecond,
		SessionInterval: 50 * time.Millisecond, SpoolSyncInterval: 10 * time.Millisecond}
	if hold {
		o.Interval = time.Hour
	}
	w, err := sink.Open(o)
	if err != nil {
		h.t.Fatal(err)
	}
	w.WriteSessions(h.cache)
	h.w = w
	so := subject.Options{Conn: h.db.Conn, Sites: sites(h.t), Pending: w}
	if h.cluster != nil {
		so.Cluster, so.Dial = h.cluster.Name, h.cluster.Dial
	}
	svc := subject.New(so)
	mux := svc.Routes(nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		h.t.Fatal(err)
	}
	hs := &fasthttp.Server{Handler: func(c *fasthttp.RequestCtx) {
		if f, ok := mux[string(c.Path())]; ok {
			f(c)
			return
		}
		c.SetStatusCode(404)
	}}
	go hs.Serve(ln)
	h.t.Cleanup(func() { _ = hs.Shutdown() })
	h.base = "http://" + ln.Addr().String()
}

func (h *harness) close() {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if lost, err := h.w.Close(ctx); lost != 0 || err != nil {
		h.t.Fatalf("close: lost %d, %v", lost, err)
	}
}

// visit is one page view of visitor on site at ts, as the collector
// hands it over: touched in the session cache, then enqueued. uid "" is a
// visitor who is not signed in (no subject id). It returns the session.
func (h *harness) visit(visitor uint64, uid string, ts time.Time, path, prop, campaign string) uint64 {
	h.t.Helper()
	e := h.w.NewEvent()
	e.SiteID, e.EventID, e.TS, e.Type = site, uuid.New(), ts.UTC().Truncate(time.Second), model.TypePageview
	e.VisitorID = visitor
	if uid != "" {
		e.SubjectID = h.key.Append(e.SubjectID, []byte(uid))
	}
	e.Hostname = append(e.Hostname, site...)
	e.Pathname = append(e.Pathname, path...)
	e.UTMCampaign = append(e.UTMCampaign, campaign...)
	e.IPPrefix = append(e.IPPrefix, "203.0.113.0/24"...)
	e.CountryCode, e.Browser, e.Device = "DE", "Firefox", model.DeviceDesktop
	if prop != "" {
		e.AddProp([]byte("plan"), []byte(prop))
	}
	attrs := model.AttrsView(e)
	id, limited := h.cache.Touch(site, visitor, ts, &session.Touch{Pageview: true, Path: path, Attrs: &attrs})
	if limited {
		h.t.Fatal("rate limited")
	}
	e.SessionID = id
	if err := h.w.Enqueue(e); err != nil {
		h.t.Fatal(err)
	}
	return id
}

func (h *harness) count(q string, args ...any) uint64 {
	h.t.Helper()
	var n uint64
	if err := h.db.Conn.QueryRow(h.ctx, q, args...).Scan(&n); err != nil {
		h.t.Fatalf("%s: %v", q, err)
	}
	return n
}

func (h *harness) waitFor(what string, ok func() bool) {
	h.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			h.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (h *harness) post(path string, form url.Values) (int, string) {
	h.t.Helper()
	return post(h.t, h.base, path, apiKey, form)
}

// stringColumns lists the String, FixedString and Array(String) columns
// of the tables that hold rows (not views, not Null).
func (h *harness) stringColumns() map[string][]string {
	h.t.Helper()
	rows, err := h.db.Conn.Query(h.ctx, `SELECT c.table, c.name, c.type FROM system.columns AS c
		ANY INNER JOIN (SELECT name AS table, engine FROM system.tables WHERE database = currentDatabase()) USING table
		WHERE c.database = currentDatabase() AND engine LIKE '%MergeTree'`)
	if err != nil {
		h.t.Fatal(err)
	}
	defer rows.Close()
	out := map[string][]string{}
	for rows.Next() {
		var table, name, typ string
		if err := rows.Scan(&table, &name, &typ); err != nil {
			h.t.Fatal(err)
		}
		switch {
		case typ == "String" || strings.HasPrefix(typ, "FixedString"):
			out[table] = append(out[table], fmt.Sprintf("position(%s, ?) > 0", name))
		case typ == "Array(String)":
			out[table] = append(out[table], fmt.Sprintf("arrayExists(x -> position(x, ?) > 0, %s)", name))
		}
	}
	if err := rows.Err(); err != nil {
		h.t.Fatal(err)
	}
	return out
}

// rowsWith returns, per table, how many rows hold marker in a string
// column, read through ClickHouse (so whatever the files' encoding).
func (h *harness) rowsWith(marker string) map[string]uint64 {
	h.t.Helper()
	out := map[string]uint64{}
	for table, conds := range h.stringColumns() {
		args := make([]any, len(conds))
		for i := range args {
			args[i] = marker
		}
		if n := h.count("SELECT count() FROM "+table+" WHERE "+strings.Join(conds, " OR "), args...); n > 0 {
			out[table] = n
		}
	}
	return out
}

// filesWith returns the files under dir that hold marker's bytes.
func filesWith(t *testing.T, dir, marker string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if os.IsNotExist(err) {
				return nil // removed meanwhile
			}
			return err
		}
		if d.IsDir() {
			return nil
		}
		b, err := os.ReadFile(path)
		if os.IsNotExist(err) {
			return nil
		}
		if err != nil {
			return err
		}
		if bytes.Contains(b, []byte(marker)) {
			out = append(out, path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// serverFilesWith returns the files of db's tables on the ClickHouse
// server that hold marker (skipping t without chtest.EnvData).
func serverFilesWith(t *testing.T, db *chtest.DB, marker string) []string {
	t.Helper()
	var out []string
	for _, p := range db.Paths(t, chtest.DataDir(t)) {
		out = append(out, filesWith(t, p, marker)...)
	}
	return out
}

// optimize merges every table's parts (OPTIMIZE ... FINAL): what a merge
// would carry over from the rows before the erasure is carried now.
func (h *harness) optimize() {
	h.t.Helper()
	rows, err := h.db.Conn.Query(h.ctx, "SELECT name FROM system.tables WHERE database = currentDatabase() AND engine LIKE '%MergeTree'")
	if err != nil {
		h.t.Fatal(err)
	}
	var tables []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			h.t.Fatal(err)
		}
		tables = append(tables, n)
	}
	rows.Close()
	for _, tb := range tables {
		if err := h.db.Conn.Exec(h.ctx, "OPTIMIZE TABLE "+tb+" FINAL"); err != nil {
			h.t.Fatalf("optimize %s: %v", tb, err)
		}
	}
}

// uniqWithout reports, for a rollup's visitors states of the site, how
// many of ids they lack: adding a visitor the states hold does not change
// uniq (exact below 65,536 visitors), adding one they lack adds one.
func (h *harness) uniqWithout(table, where string, ids ...uint64) uint64 {
	h.t.Helper()
	q := "SELECT uniqMerge(visitors) FROM " + table + " WHERE site_id = ? " + where
	before := h.count(q, site)
	after := h.count("SELECT uniqMerge(v) FROM (SELECT visitors AS v FROM "+table+" WHERE site_id = ? "+where+
		" UNION ALL SELECT uniqState(toUInt64(arrayJoin(?))) AS v)", site, ids)
	return after - before
}

// TestEraseLeavesNoTrace erases a consented person whose rows are
// everywhere: stored events, their sessions (one of them begun before
// they signed in), the rollups fed from both, events still in the spool
// and a session whose only events are spooled. Afterwards no table holds
// a row of theirs or a rollup state with their visitor ids, no spool file
// and (with GLIMPSE_TEST_CLICKHOUSE_DATA, or the subtests skip) no file of
// the database holds their markers, and everyone else's rows are intact.
//
// What the file search proves: ClickHouse 18.16 compresses column files
// with LZ4, which keeps the first occurrence of a random string as a
// literal, so before the erasure the same search finds every marker in
// the files (checked, or the search would prove nothing); afterwards it
// finds none in any file of the database once ClickHouse has deleted the
// parts that the erasure and the merges replaced (within seconds: the
// tables are made with a short old_parts_lifetime). It cannot see a marker
// that a codec encoded otherwise, nor blocks a filesystem freed without
// overwriting; the queries through ClickHouse cover the first.
func TestEraseLeavesNoTrace(t *testing.T) {
	t.Parallel()
	db := chtest.Migrated(t)
	db.DropReplacedPartsSoon(t)
	h := newHarness(t, db)
	m := newMarkers()
	now := time.Now().UTC().Add(-time.Minute)
	const alicePhone, aliceLaptop, bob, carol = 1001, 1002, 2002, 3003

	// Stored: alice looks around before signing in, in the session of
	// her phone, then signs in; bob and carol browse.
	h.open(false)
	s1 := h.visit(alicePhone, "", now, "/", "", m.campaign)
	h.visit(alicePhone, "alice", now.Add(time.Second), m.path, m.prop, m.campaign)
	h.visit(bob, "bob", now, "/", "", "spring")
	h.visit(bob, "bob", now.Add(time.Second), "/pricing", "", "spring")
	h.visit(carol, "", now, "/", "", "")
	h.waitFor("events stored", func() bool { return h.count("SELECT count() FROM events") == 5 })
	h.waitFor("sessions written", func() bool { return h.count("SELECT uniqExact(session_id) FROM sessions") == 3 })
	h.close()

	// Spooled, not inserted: alice again on her phone and, in a session
	// whose only events are spooled, on her laptop; bob once more.
	h.open(true)
	h.visit(alicePhone, "alice", now.Add(2*time.Second), m.path, m.prop, m.campaign)
	s2 := h.visit(aliceLaptop, "alice", now.Add(2*time.Second), m.path, m.prop, m.campaign)
	h.visit(bob, "bob", now.Add(2*time.Second), "/about", "", "spring")
	h.waitFor("the laptop's session written", func() bool { return h.count("SELECT count() FROM sessions WHERE session_id = ?", s2) > 0 })
	h.waitFor("the spool synced", func() bool { return len(filesWith(t, h.dir, m.path)) > 0 })

	// Controls: each marker is found where it is, by each search.
	for _, mk := range m.all() {
		if n := h.rowsWith(mk); len(n) == 0 {
			t.Fatalf("control: no table has a row with %q", mk)
		}
	}
	for _, mk := range []string{m.path, m.prop} {
		if len(filesWith(t, h.dir, mk)) == 0 {
			t.Fatalf("control: no spool file holds %q", mk)
		}
	}
	t.Run("control: the server's files hold every marker", func(t *testing.T) {
		for _, mk := range m.all() {
			if len(serverFilesWith(t, db, mk)) == 0 {
				t.Fatalf("no file of %s holds %q", db.Database, mk)
			}
		}
	})
	if n := h.uniqWithout("events_hourly", "", alicePhone, aliceLaptop); n != 1 {
		t.Fatalf("control: events_hourly lacks %d of alice's 2 visitor ids, want 1 (the laptop's events are spooled)", n)
	}

	start := time.Now()
	code, body := h.post(subject.PathErase, url.Values{"site_id": {site}, "uid": {"alice"}})
	if code != 200 || !strings.Contains(body, `"remaining":0`) {
		t.Fatalf("erase: %d %s", code, body)
	}
	t.Logf("erase took %v: %s", time.Since(start).Round(time.Millisecond), body)
	if f := filesWith(t, h.dir, m.path); len(f) > 0 {
		t.Errorf("spool files still hold alice's page after the erasure: %v", f)
	}
	if f := filesWith(t, h.dir, m.prop); len(f) > 0 {
		t.Errorf("spool files still hold alice's property after the erasure: %v", f)
	}
	h.close() // bob's spooled view goes in; alice's must not
	h.optimize()

	for _, mk := range m.all() {
		if n := h.rowsWith(mk); len(n) > 0 {
			t.Errorf("rows with alice's %q after the erasure: %v", mk, n)
		}
	}
	if n := h.count("SELECT count() FROM sessions WHERE has(?, session_id)", []uint64{s1, s2}); n != 0 {
		t.Errorf("%d sessions rows of alice's sessions left", n)
	}
	if n := h.count("SELECT count() FROM events WHERE has(?, visitor_id)", []uint64{alicePhone, aliceLaptop}); n != 0 {
		t.Errorf("%d events of alice's visitor ids left", n)
	}
	for _, r := range []struct{ table, where string }{
		{"events_hourly", ""}, {"pages_hourly", ""}, {"sessions_dims_hourly", "AND dim = 'visit:source'"},
	} {
		if n := h.uniqWithout(r.table, r.where, alicePhone, aliceLaptop); n != 2 {
			t.Errorf("%s: its visitor states hold %d of alice's 2 visitor ids", r.table, 2-n)
		}
	}
	// The rollups still agree with the raw rows left: bob's and carol's.
	for _, c := range []struct{ what, rollup, raw string }{
		{"events_hourly visitors", "SELECT uniqMerge(visitors) FROM events_hourly", "SELECT uniq(visitor_id) FROM events"},
		{"events_hourly pageviews", "SELECT sumMerge(pageviews) FROM events_hourly", "SELECT count() FROM events"},
		{"pages_hourly pageviews", "SELECT sumMerge(pageviews) FROM pages_hourly", "SELECT count() FROM events"},
		{"sessions_hourly visits", "SELECT toUInt64(sum(visits)) FROM sessions_hourly", "SELECT toUInt64(sum(sign)) FROM sessions"},
		{"sessions_dims_hourly visits", "SELECT toUInt64(sumMerge(visits)) FROM sessions_dims_hourly WHERE dim = 'visit:source'", "SELECT toUInt64(sum(sign)) FROM sessions"},
	} {
		if a, b := h.count(c.rollup), h.count(c.raw); a != b || a == 0 {
			t.Errorf("%s: rollup %d, raw rows %d", c.what, a, b)
		}
	}
	if n := h.count("SELECT count() FROM events WHERE visitor_id = ?", bob); n != 3 {
		t.Errorf("bob has %d events, want 3", n)
	}
	if n := h.count("SELECT uniqExact(session_id) FROM sessions WHERE visitor_id IN (?, ?)", bob, carol); n != 2 {
		t.Errorf("bob and carol have %d sessions, want 2", n)
	}

	t.Run("no file of the server holds a marker", func(t *testing.T) {
		chtest.DataDir(t)
		db.WaitReplacedParts(t)
		for _, mk := range m.all() {
			if f := serverFilesWith(t, db, mk); len(f) > 0 {
				t.Errorf("files of %s hold alice's %q after the erasure: %v", db.Database, mk, f)
			}
		}
	})
}

// TestEraseCountsWhatIsLeft: an erasure covers what was accepted before
// it began. A row accepted later (here an event an hour ahead, in a
// session of its own: the site still sends the uid) is left, and
// remaining counts it and its session's rows: it is 0 only when nothing
// of the person is left.
func TestEraseCountsWhatIsLeft(t *testing.T) {
	db := chtest.Migrated(t)
	h := newHarness(t, db)
	now := time.Now().UTC().Add(-time.Minute)
	h.open(false)
	first := h.visit(1001, "alice", now, "/a", "", "")
	later := h.visit(1001, "alice", now.Add(time.Hour+time.Minute), "/later", "", "")
	h.visit(2002, "bob", now, "/", "", "")
	h.waitFor("events stored", func() bool { return h.count("SELECT count() FROM events") == 3 })
	h.waitFor("sessions written", func() bool { return h.count("SELECT uniqExact(session_id) FROM sessions") == 3 })

	code, body := h.post(subject.PathErase, url.Values{"site_id": {site}, "uid": {"alice"}})
	// What is left of alice, counted here by what the test knows: her
	// subject id and her two sessions.
	ids := []uint64{first, later}
	left := h.count("SELECT count() FROM events WHERE site_id = ? AND (subject_id = ? OR has(?, session_id))", site, h.key.String("alice"), ids) +
		h.count("SELECT count() FROM sessions WHERE site_id = ? AND has(?, session_id)", site, ids)
	if n := h.count("SELECT count() FROM sessions WHERE session_id = ?", later); n == 0 {
		t.Fatal("the later session has no rows")
	}
	if want := fmt.Sprintf(`"remaining":%d`, left); code != 409 || !strings.Contains(body, want) {
		t.Errorf("erase: %d %s; want 409 and %s", code, body, want)
	}
	if n := h.count("SELECT count() FROM events WHERE pathname = '/a'"); n != 0 {
		t.Errorf("the erased event is still there")
	}
	h.close()
}
