package sink_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/VictoriaMetrics/metrics"
	"github.com/google/uuid"

	"github.com/glimpse-analytics/glimpse/collector/sink"
	"github.com/glimpse-analytics/glimpse/collector/visitor"
	"github.com/glimpse-analytics/glimpse/migrations/chtest"
)

func fill(w *sink.Writer, i int, ts time.Time) *sink.Event {
	e := w.NewEvent()
	e.SiteID = "example.com"
	e.EventID = uuid.New()
	e.TS = ts
	e.Type = sink.TypePageview
	e.Name = append(e.Name, "pageview"...)
	e.VisitorID = uint64(1000 + i)
	e.SessionID = uint64(2000 + i)
	e.Hostname = append(e.Hostname, "example.com"...)
	e.Pathname = fmt.Appendf(e.Pathname, "/page/%d", i)
	e.Referrer = append(e.Referrer, "news.ycombinator.com/item"...)
	e.ReferrerSource, e.Channel = "Hacker News", "social"
	e.UTMCampaign = append(e.UTMCampaign, "launch"...)
	e.CountryCode, e.Region = "DE", "DE-BE"
	e.IPPrefix = append(e.IPPrefix, "203.0.113.0/24"...)
	e.Browser, e.BrowserVersion, e.OS, e.Device = "Firefox", "128", "Linux", "desktop"
	e.ConnectionType, e.Downlink, e.RTT = "4g", 9.5, 50
	e.ScrollDepth, e.Interactive = 80, 1
	e.AddProp([]byte("plan"), []byte("pro"))
	e.AddProp([]byte("n"), fmt.Appendf(nil, "%d", i))
	e.RevenueMicros = 12_500_000
	e.RevenueCurrency = append(e.RevenueCurrency, "EUR"...)
	return e
}

func count(t *testing.T, db *chtest.DB, q string, args ...any) uint64 {
	t.Helper()
	var n uint64
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := db.Conn.QueryRow(ctx, q, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

func closeWriter(t *testing.T, w *sink.Writer) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	lost, err := w.Close(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return lost
}

func TestWriterStoresEveryColumn(t *testing.T) {
	for _, spooled := range []bool{false, true} {
		t.Run(map[bool]string{false: "memory", true: "spool"}[spooled], func(t *testing.T) { testStoresEveryColumn(t, spooled) })
	}
}

// testStoresEveryColumn checks every column, straight from memory or
// through the spool's encoding and back.
func testStoresEveryColumn(t *testing.T, spooled bool) {
	db := chtest.Migrated(t)
	set := metrics.NewSet()
	o := sink.Options{Conn: db.Conn, BatchSize: 100, QueueSize: 1000, Interval: time.Hour, Metrics: set}
	if spooled {
		o.SpoolDir, o.Interval = t.TempDir(), 50*time.Millisecond
	}
	w, err := sink.Open(o)
	if err != nil {
		t.Fatal(err)
	}
	ts := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	const n = 250
	for i := range n {
		if err := w.Enqueue(fill(w, i, ts)); err != nil {
			t.Fatal(err)
		}
	}
	if lost := closeWriter(t, w); lost != 0 {
		t.Fatalf("lost %d rows", lost)
	}
	if got := count(t, db, "SELECT count() FROM events"); got != n {
		t.Fatalf("stored %d rows, want %d", got, n)
	}
	var (
		site, name, host, path, ref, src, ch, camp, cc, region, prefix, browser, conn, cur string
		keys, vals                                                                         []string
		visitor                                                                            uint64
		scroll                                                                             uint8
		rev                                                                                int64
		when                                                                               time.Time
	)
	ctx := context.Background()
	err = db.Conn.QueryRow(ctx, `SELECT site_id, name, hostname, pathname, referrer, referrer_source, channel, utm_campaign,
		country_code, region, ip_prefix, browser, connection_type, revenue_currency, prop_keys, prop_values, visitor_id,
		scroll_depth, revenue_micros, ts FROM events WHERE pathname = '/page/7'`).
		Scan(&site, &name, &host, &path, &ref, &src, &ch, &camp, &cc, &region, &prefix, &browser, &conn, &cur, &keys, &vals,
			&visitor, &scroll, &rev, &when)
	if err != nil {
		t.Fatal(err)
	}
	got := fmt.Sprint(site, name, host, path, ref, src, ch, camp, cc, region, prefix, browser, conn, cur, keys, vals, visitor, scroll, rev, when.UTC())
	want := fmt.Sprint("example.com", "pageview", "example.com", "/page/7", "news.ycombinator.com/item", "Hacker News", "social",
		"launch", "DE", "DE-BE", "203.0.113.0/24", "Firefox", "4g", "EUR", []string{"plan", "n"}, []string{"pro", "7"}, uint64(1007),
		uint8(80), int64(12_500_000), ts)
	if got != want {
		t.Fatalf("row\n got %s\nwant %s", got, want)
	}
	var b strings.Builder
	set.WritePrometheus(&b)
	if !strings.Contains(b.String(), "glimpse_events_stored_total 250") {
		t.Errorf("metrics do not count the stored rows:\n%s", b.String())
	}
	if n := count(t, db, "SELECT count() FROM events WHERE downlink = 9.5 AND rtt = 50 AND interactive = 1 AND length(prop_keys) = 2"); n != 250 {
		t.Errorf("%d rows keep the numeric columns, want 250", n)
	}
}

func TestWriterFlushesOnSizeAndInterval(t *testing.T) {
	t.Run("size", func(t *testing.T) {
		db := chtest.Migrated(t)
		w := sink.New(sink.Options{Conn: db.Conn, BatchSize: 10, QueueSize: 100, Interval: time.Hour})
		for i := range 25 {
			if err := w.Enqueue(fill(w, i, time.Now())); err != nil {
				t.Fatal(err)
			}
		}
		waitFor(t, func() bool { return count(t, db, "SELECT count() FROM events") == 20 })
		closeWriter(t, w)
		if got := count(t, db, "SELECT count() FROM events"); got != 25 {
			t.Fatalf("after Close %d rows, want 25", got)
		}
	})
	t.Run("interval", func(t *testing.T) {
		db := chtest.Migrated(t)
		w := sink.New(sink.Options{Conn: db.Conn, BatchSize: 10000, Interval: 50 * time.Millisecond})
		defer closeWriter(t, w)
		for i := range 3 {
			if err := w.Enqueue(fill(w, i, time.Now())); err != nil {
				t.Fatal(err)
			}
		}
		waitFor(t, func() bool { return count(t, db, "SELECT count() FROM events") == 3 })
	})
}

func waitFor(t *testing.T, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 20 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestWriterQueueFullAndLoss points the writer at a port nothing listens
// on: inserts fail, the queue fills, Enqueue refuses without blocking, and
// Close reports every row that was accepted but not stored.
func TestWriterQueueFullAndLoss(t *testing.T) {
	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{"127.0.0.1:1"}, DialTimeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	w := sink.New(sink.Options{Conn: conn, BatchSize: 4, QueueSize: 8, Interval: 10 * time.Millisecond, Attempts: 2, InsertTimeout: 200 * time.Millisecond})
	accepted, full := 0, 0
	start := time.Now()
	for i := range 100 {
		switch err := w.Enqueue(fill(w, i, time.Now())); err {
		case nil:
			accepted++
		case sink.ErrQueueFull:
			full++
		default:
			t.Fatal(err)
		}
	}
	if time.Since(start) > 5*time.Second {
		t.Errorf("Enqueue blocked: 100 calls took %v", time.Since(start))
	}
	if full == 0 || accepted == 0 {
		t.Fatalf("accepted %d, refused %d; want some of each", accepted, full)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	lost, err := w.Close(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if lost != int64(accepted) {
		t.Fatalf("Close reports %d lost, want every accepted row (%d)", lost, accepted)
	}
	if err := w.Enqueue(w.NewEvent()); err != sink.ErrClosed {
		t.Fatalf("Enqueue after Close = %v, want ErrClosed", err)
	}
}

// TestSessionsCollapse writes a session through the writer's drains: its
// first state, then (after a drain) a cancel of it and the newer state.
func TestSessionsCollapse(t *testing.T) {
	db := chtest.Migrated(t)
	w := sink.New(sink.Options{Conn: db.Conn, BatchSize: 100, Interval: time.Hour, SessionInterval: 20 * time.Millisecond})
	c := visitor.NewCache(visitor.CacheConfig{})
	w.WriteSessions(c)
	start := time.Date(2026, 3, 4, 5, 0, 0, 0, time.UTC)
	attrs := &visitor.Attrs{Browser: "Firefox", Country: "DE", ConnectionType: "4g"}
	c.Touch("example.com", 9, start, visitor.Touch{Pageview: true, Path: "/", Attrs: attrs})
	waitRows(t, db, "SELECT count() FROM sessions", 1)
	c.Touch("example.com", 9, start.Add(90*time.Second), visitor.Touch{Pageview: true, Path: "/pricing"})
	closeWriter(t, w)
	if n := count(t, db, "SELECT count() FROM sessions"); n != 3 {
		t.Fatalf("%d session rows, want 3 (+1, then -1 and +1)", n)
	}
	var visits, bounces, pageviews, duration int64
	var exit, conn string
	err := db.Conn.QueryRow(context.Background(), `SELECT sum(sign), sum(sign * is_bounce), sum(sign * pageviews), sum(sign * duration),
		argMax(exit_page, version), argMax(connection_type, version) FROM sessions WHERE site_id = 'example.com'`).
		Scan(&visits, &bounces, &pageviews, &duration, &exit, &conn)
	if err != nil {
		t.Fatal(err)
	}
	if visits != 1 || bounces != 0 || pageviews != 2 || duration != 90 || exit != "/pricing" || conn != "4g" {
		t.Fatalf("visits %d bounces %d pageviews %d duration %d exit %q conn %q", visits, bounces, pageviews, duration, exit, conn)
	}
	if got := count(t, db, "SELECT toUInt64(sum(visits)) FROM sessions_hourly WHERE site_id = 'example.com'"); got != 1 {
		t.Fatalf("sessions_hourly visits = %d, want 1", got)
	}
}

// TestEndedSessionsWrittenEarly: a full session cache that evicts
// sessions asks for them to be written (visitor.Cache.Pressure), and the
// writer does so at once rather than at its next drain (an hour away
// here), so they do not pile up in memory; every session is stored once.
func TestEndedSessionsWrittenEarly(t *testing.T) {
	db := chtest.Migrated(t)
	w := sink.New(sink.Options{Conn: db.Conn, BatchSize: 1000, Interval: time.Hour, SessionInterval: time.Hour})
	c := visitor.NewCache(visitor.CacheConfig{MaxSessions: 8192})
	w.WriteSessions(c)
	start := time.Date(2026, 3, 4, 5, 0, 0, 0, time.UTC)
	const visitors = 20000 // more than the cache holds
	for v := range uint64(visitors) {
		c.Touch("example.com", v+1, start.Add(time.Duration(v)*time.Millisecond), visitor.Touch{Pageview: true, Path: "/"})
	}
	waitRows(t, db, "SELECT count() FROM sessions", 1024) // an eighth of the cache, before any drain
	closeWriter(t, w)
	var sessions, visitorsOnce uint64
	if err := db.Conn.QueryRow(context.Background(), `SELECT toUInt64(sum(n)), countIf(n = 1) FROM
		(SELECT visitor_id, sum(sign) AS n FROM sessions GROUP BY visitor_id)`).Scan(&sessions, &visitorsOnce); err != nil {
		t.Fatal(err)
	}
	if sessions != visitors || visitorsOnce != visitors {
		t.Fatalf("%d sessions, %d visitors with one: want %d of each", sessions, visitorsOnce, visitors)
	}
}

func waitRows(t *testing.T, db *chtest.DB, q string, want uint64) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for count(t, db, q) < want {
		if time.Now().After(deadline) {
			t.Fatalf("%s: fewer than %d rows after 20 s", q, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestSessionCheckpoints touches sessions many times between drains: each
// drain writes at most a cancel and a new state per session, the last
// drain (on Close) writes what changed since, and the table collapses to
// the newest state of every session, including one that ended meanwhile.
func TestSessionCheckpoints(t *testing.T) {
	for _, batch := range []int{10000, 7} { // 7: the drain is inserted in many small pieces
		t.Run(fmt.Sprint("batch ", batch), func(t *testing.T) { testSessionCheckpoints(t, batch) })
	}
}

func testSessionCheckpoints(t *testing.T, batch int) {
	db := chtest.Migrated(t)
	w := sink.New(sink.Options{Conn: db.Conn, SessionInterval: time.Hour, BatchSize: batch})
	c := visitor.NewCache(visitor.CacheConfig{})
	w.WriteSessions(c)
	start := time.Date(2026, 3, 4, 5, 0, 0, 0, time.UTC)
	const visitors, touches = 50, 200
	for i := range touches {
		for v := range uint64(visitors) {
			c.Touch("example.com", v+1, start.Add(time.Duration(i)*time.Second), visitor.Touch{Pageview: true, Path: fmt.Sprintf("/p%d", i)})
		}
	}
	// Visitor 1 comes back after the idle timeout: a second session, and the
	// first one ended with no further touch.
	c.Touch("example.com", 1, start.Add(2*time.Hour), visitor.Touch{Pageview: true, Path: "/back"})
	closeWriter(t, w)
	if n := count(t, db, "SELECT count() FROM sessions"); n != visitors+1 {
		t.Fatalf("%d rows for %d touches of %d sessions, want one per session", n, visitors*touches+1, visitors+1)
	}
	var visits, pageviews int64
	var exit string
	if err := db.Conn.QueryRow(context.Background(), `SELECT sum(sign), sum(sign*pageviews), argMax(exit_page, version) FROM sessions
		WHERE visitor_id = 2`).Scan(&visits, &pageviews, &exit); err != nil {
		t.Fatal(err)
	}
	if visits != 1 || pageviews != touches || exit != fmt.Sprintf("/p%d", touches-1) {
		t.Fatalf("visitor 2 collapsed to visits %d pageviews %d exit %q", visits, pageviews, exit)
	}
	if n := count(t, db, "SELECT toUInt64(sum(sign)) FROM sessions WHERE visitor_id = 1"); n != 2 {
		t.Fatalf("visitor 1 has %d sessions, want 2", n)
	}
}

// TestSessionsFromTwoSources gives one writer a session cache and a
// buffer: the sessions of both are written.
func TestSessionsFromTwoSources(t *testing.T) {
	db := chtest.Migrated(t)
	w := sink.New(sink.Options{Conn: db.Conn, SessionInterval: time.Hour})
	c := visitor.NewCache(visitor.CacheConfig{})
	var b sink.SessionBuffer
	w.WriteSessions(c)
	w.WriteSessions(&b)
	start := time.Date(2026, 3, 4, 5, 0, 0, 0, time.UTC)
	c.Touch("example.com", 1, start, visitor.Touch{Pageview: true, Path: "/from-cache"})
	s := visitor.Session{Site: "example.com", ID: 99, VisitorID: 2, Version: 1, Start: start, LastSeen: start,
		Pageviews: 1, Events: 1, Bounce: true, EntryPage: "/from-buffer", ExitPage: "/from-buffer", Attrs: &visitor.Attrs{}}
	if err := b.Add(context.Background(), visitor.Session{}, s, false); err != nil {
		t.Fatal(err)
	}
	closeWriter(t, w)
	if n := count(t, db, "SELECT count() FROM sessions WHERE entry_page IN ('/from-cache', '/from-buffer')"); n != 2 {
		t.Fatalf("%d sessions written, want one from each source", n)
	}
}
