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

	"github.com/glimpse-analytics/glimpse/collector/session"
	"github.com/glimpse-analytics/glimpse/collector/sink"
	"github.com/glimpse-analytics/glimpse/internal/chtest"
	"github.com/glimpse-analytics/glimpse/internal/model"
	"github.com/glimpse-analytics/glimpse/internal/storage/seed"
)

func fill(w *sink.Writer, i int, ts time.Time) *model.Event {
	e := w.NewEvent()
	e.SiteID = "example.com"
	e.EventID = uuid.New()
	e.TS = ts
	e.Type = model.TypePageview
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
// on: inserts fail and are retried, the events wait in memory until it is
// full, the queue fills, Enqueue refuses without blocking, and Close, once
// its deadline passes, reports every row that was accepted but not stored.
func TestWriterQueueFullAndLoss(t *testing.T) {
	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{"127.0.0.1:1"}, DialTimeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	w := sink.New(sink.Options{Conn: conn, BatchSize: 4, QueueSize: 8, Interval: 10 * time.Millisecond,
		InsertTimeout: 200 * time.Millisecond, MaxBackoff: 50 * time.Millisecond})
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
		time.Sleep(time.Millisecond) // the appender takes what it can
	}
	if time.Since(start) > 5*time.Second {
		t.Errorf("Enqueue blocked: 100 calls took %v", time.Since(start))
	}
	if full == 0 || accepted == 0 {
		t.Fatalf("accepted %d, refused %d; want some of each", accepted, full)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	lost, err := w.Close(ctx)
	if err == nil {
		t.Fatal("Close stored everything with ClickHouse unreachable")
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
	c := session.NewCache(session.CacheConfig{})
	w.WriteSessions(c)
	start := time.Date(2026, 3, 4, 5, 0, 0, 0, time.UTC)
	attrs := &model.Attrs{Browser: "Firefox", Country: "DE", ConnectionType: "4g"}
	c.Touch("example.com", 9, start, &session.Touch{Pageview: true, Path: "/", Attrs: attrs})
	waitRows(t, db, "SELECT count() FROM sessions", 1)
	c.Touch("example.com", 9, start.Add(90*time.Second), &session.Touch{Pageview: true, Path: "/pricing"})
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
// sessions asks for them to be written (session.Cache.Pressure), and the
// writer does so at once rather than at its next drain (an hour away
// here), so they do not pile up in memory; every session is stored once.
func TestEndedSessionsWrittenEarly(t *testing.T) {
	db := chtest.Migrated(t)
	w := sink.New(sink.Options{Conn: db.Conn, BatchSize: 1000, Interval: time.Hour, SessionInterval: time.Hour})
	c := session.NewCache(session.CacheConfig{MaxSessions: 8192})
	w.WriteSessions(c)
	start := time.Date(2026, 3, 4, 5, 0, 0, 0, time.UTC)
	const visitors = 20000 // more than the cache holds
	for v := range uint64(visitors) {
		c.Touch("example.com", v+1, start.Add(time.Duration(v)*time.Millisecond), &session.Touch{Pageview: true, Path: "/"})
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
	c := session.NewCache(session.CacheConfig{})
	w.WriteSessions(c)
	start := time.Date(2026, 3, 4, 5, 0, 0, 0, time.UTC)
	const visitors, touches = 50, 200
	for i := range touches {
		for v := range uint64(visitors) {
			c.Touch("example.com", v+1, start.Add(time.Duration(i)*time.Second), &session.Touch{Pageview: true, Path: fmt.Sprintf("/p%d", i)})
		}
	}
	// Visitor 1 comes back after the idle timeout: a second session, and the
	// first one ended with no further touch.
	c.Touch("example.com", 1, start.Add(2*time.Hour), &session.Touch{Pageview: true, Path: "/back"})
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
	c := session.NewCache(session.CacheConfig{})
	var b seed.SessionBuffer
	w.WriteSessions(c)
	w.WriteSessions(&b)
	start := time.Date(2026, 3, 4, 5, 0, 0, 0, time.UTC)
	c.Touch("example.com", 1, start, &session.Touch{Pageview: true, Path: "/from-cache"})
	s := model.Session{Site: "example.com", ID: 99, VisitorID: 2, Version: 1, Start: start, LastSeen: start,
		Pageviews: 1, Events: 1, Bounce: true, EntryPage: "/from-buffer", ExitPage: "/from-buffer", Attrs: &model.Attrs{}}
	if err := b.Add(context.Background(), model.Session{}, s, false); err != nil {
		t.Fatal(err)
	}
	closeWriter(t, w)
	if n := count(t, db, "SELECT count() FROM sessions WHERE entry_page IN ('/from-cache', '/from-buffer')"); n != 2 {
		t.Fatalf("%d sessions written, want one from each source", n)
	}
}

// TestSessionDimsFollowSessions: the writer's sums for sessions_dims_hourly
// (0008: sessions_dims_input and its view) give the rollup exactly what
// expanding every session row to the 16 dimensions gives (what 0004's view
// on sessions did), over new sessions, updates, several drains, sites,
// hours and attributions, and with far fewer rows than that view joined.
func TestSessionDimsFollowSessions(t *testing.T) {
	db := chtest.Migrated(t)
	m := metrics.NewSet()
	w := sink.New(sink.Options{Conn: db.Conn, BatchSize: 64, Interval: time.Hour, SessionInterval: 10 * time.Millisecond, Metrics: m})
	c := session.NewCache(session.CacheConfig{})
	w.WriteSessions(c)
	attrs := []*model.Attrs{
		{Source: "Google", Channel: "search", Referrer: "www.google.com/", Browser: "Firefox", OS: "Linux", Country: "DE", Region: "DE-BE", City: "Berlin"},
		{UTMSource: "news", UTMMedium: "email", UTMCampaign: "nov", UTMTerm: "t", UTMContent: "c", Browser: "Chrome", Device: "Mobile", Screen: "390x844", ConnectionType: "4g", Country: "FR"},
		nil,
	}
	// Sessions start from 05:50 to 06:25, over two hours and three quarter hours.
	base := time.Date(2026, 3, 4, 5, 50, 0, 0, time.UTC)
	const visitors = 300
	touch := func(round int) {
		for v := range visitors {
			site := []string{"a.example", "b.example"}[v%2]
			ts := base.Add(time.Duration(v)*7*time.Second + time.Duration(round)*time.Minute)
			c.Touch(site, uint64(v+1), ts, &session.Touch{Pageview: round != 1 || v%5 == 0, Interactive: round == 1 && v%3 == 0,
				EngagementMS: uint32(round * 1000), Path: fmt.Sprintf("/p%d", round), Attrs: attrs[v%len(attrs)]})
		}
	}
	touch(0)
	waitRows(t, db, "SELECT count() FROM sessions", visitors)
	touch(1)
	// Updates were drained (counted as stored: merges collapse their rows).
	stored := m.GetOrCreateCounter(`glimpse_rows_stored_total{table="sessions"}`)
	for deadline := time.Now().Add(20 * time.Second); stored.Get() < 3*visitors; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d session rows stored after 20 s, want the %d of the updates too", stored.Get(), 3*visitors)
		}
	}
	touch(2)
	if lost := closeWriter(t, w); lost != 0 {
		t.Fatalf("lost %d rows", lost)
	}

	const dims = `['visit:source', 'visit:referrer', 'visit:channel', 'visit:utm_source', 'visit:utm_medium', 'visit:utm_campaign',
		'visit:utm_content', 'visit:utm_term', 'visit:country', 'visit:region', 'visit:city', 'visit:browser', 'visit:os',
		'visit:device', 'visit:screen', 'visit:connection']`
	const values = `[if(referrer_source = '', 'Direct / None', referrer_source), referrer, channel, utm_source, utm_medium,
		utm_campaign, utm_content, utm_term, country_code, region, city, browser, os, device, screen, connection_type]`
	read := func(q string) map[string]string {
		t.Helper()
		rows, err := db.Conn.Query(context.Background(), q)
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		defer rows.Close()
		out := map[string]string{}
		for rows.Next() {
			var site, dim, value string
			var hour time.Time
			var visitors uint64
			var visits, bounces, duration, pageviews, events int64
			if err := rows.Scan(&site, &dim, &hour, &value, &visitors, &visits, &bounces, &duration, &pageviews, &events); err != nil {
				t.Fatal(err)
			}
			out[fmt.Sprintf("%s %s %s %q", site, dim, hour.UTC().Format(time.RFC3339), value)] =
				fmt.Sprintf("visitors %d visits %d bounces %d duration %d pageviews %d events %d", visitors, visits, bounces, duration, pageviews, events)
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		return out
	}
	want := read(`SELECT site_id, d.1 AS dim, toStartOfHour(start) AS hour, d.2 AS value, toUInt64(uniqExactIf(visitor_id, sign > 0)),
		sum(toInt64(sign)), sum(sign * is_bounce), sum(sign * duration), sum(sign * pageviews), sum(sign * events)
		FROM sessions ARRAY JOIN arrayMap((x, y) -> (x, y), ` + dims + `, ` + values + `) AS d
		GROUP BY site_id, dim, hour, value`)
	got := read(`SELECT site_id, dim, hour, value, toUInt64(uniqMerge(visitors)), sumMerge(visits), sumMerge(bounces),
		sumMerge(duration_sum), sumMerge(pageviews_sum), sumMerge(events_sum)
		FROM sessions_dims_hourly GROUP BY site_id, dim, hour, value`)
	// 2 sites × 16 dimensions × 2 hours, fewer for dimensions with one value.
	if len(want) < 100 {
		t.Fatalf("fixture: %d groups from the sessions table, want at least 100", len(want))
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: rollup %q, sessions %q", k, got[k], v)
		}
	}
	for k, v := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("%s: rollup %q, not in sessions", k, v)
		}
	}
	sessionRows := stored.Get()
	dimRows := m.GetOrCreateCounter(`glimpse_rows_stored_total{table="sessions_dims_input"}`).Get()
	// 0004's view joined 16 rows per session row.
	if dimRows == 0 || 4*dimRows > 16*sessionRows {
		t.Errorf("%d rows for sessions_dims_hourly from %d session rows, want some and at most a quarter of %d", dimRows, sessionRows, 16*sessionRows)
	}
}
