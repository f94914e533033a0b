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

func TestSessionsCollapse(t *testing.T) {
	db := chtest.Migrated(t)
	w := sink.New(sink.Options{Conn: db.Conn, BatchSize: 100, Interval: time.Hour})
	start := time.Date(2026, 3, 4, 5, 0, 0, 0, time.UTC)
	attrs := &visitor.Attrs{Browser: "Firefox", Country: "DE", ConnectionType: "4g"}
	first := visitor.Session{Site: "example.com", ID: 7, VisitorID: 9, Version: 1, Start: start, LastSeen: start,
		Pageviews: 1, Events: 1, Bounce: true, EntryPage: "/", ExitPage: "/", Attrs: attrs}
	second := first
	second.Version, second.LastSeen, second.Pageviews, second.Events, second.Bounce, second.ExitPage, second.DurationSec =
		2, start.Add(90*time.Second), 2, 2, false, "/pricing", 90
	if err := w.EnqueueSessions(sink.SessionUpdate{Cur: first}); err != nil {
		t.Fatal(err)
	}
	if err := w.EnqueueSessions(sink.SessionUpdate{Prev: first, Cur: second, HasPrev: true}); err != nil {
		t.Fatal(err)
	}
	closeWriter(t, w)
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

// TestSessionUpdatesCoalesce sends many updates of one session: within one
// batch they fold into one row; across batches each flush writes at most a
// cancel and a new state, and the collapsed result is the newest state.
func TestSessionUpdatesCoalesce(t *testing.T) {
	for _, tt := range []struct {
		name      string
		batch     int
		wantRows  uint64 // rows written before merges
		updatesOf int
	}{
		{"one batch", 1000, 1, 50},
		{"batch of 10", 10, 0, 50}, // rows depend on flush timing; checked by bound below
	} {
		t.Run(tt.name, func(t *testing.T) {
			db := chtest.Migrated(t)
			w := sink.New(sink.Options{Conn: db.Conn, SessionBatchSize: tt.batch, QueueSize: 1000, SessionInterval: time.Hour})
			start := time.Date(2026, 3, 4, 5, 0, 0, 0, time.UTC)
			var prev visitor.Session
			for i := 1; i <= tt.updatesOf; i++ {
				cur := visitor.Session{Site: "example.com", ID: 42, VisitorID: 7, Version: uint32(i), Start: start,
					LastSeen: start.Add(time.Duration(i) * time.Second), Pageviews: uint32(i), Events: uint32(i), Bounce: i == 1,
					DurationSec: uint32(i - 1), EntryPage: "/", ExitPage: fmt.Sprintf("/p%d", i), Attrs: &visitor.Attrs{}}
				if err := w.EnqueueSessions(sink.SessionUpdate{Prev: prev, Cur: cur, HasPrev: i > 1}); err != nil {
					t.Fatal(err)
				}
				prev = cur
			}
			closeWriter(t, w)
			rows := count(t, db, "SELECT count() FROM sessions")
			if tt.wantRows != 0 && rows != tt.wantRows {
				t.Errorf("%d rows written, want %d", rows, tt.wantRows)
			}
			if rows > uint64(2*tt.updatesOf/tt.batch+2) {
				t.Errorf("%d rows written for %d updates in batches of %d; updates did not fold", rows, tt.updatesOf, tt.batch)
			}
			var visits, pageviews int64
			var exit string
			if err := db.Conn.QueryRow(context.Background(), `SELECT sum(sign), sum(sign*pageviews), argMax(exit_page, version) FROM sessions`).
				Scan(&visits, &pageviews, &exit); err != nil {
				t.Fatal(err)
			}
			if visits != 1 || pageviews != int64(tt.updatesOf) || exit != fmt.Sprintf("/p%d", tt.updatesOf) {
				t.Fatalf("collapsed to visits %d pageviews %d exit %q", visits, pageviews, exit)
			}
		})
	}
}
