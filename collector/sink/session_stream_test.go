package sink_test

import (
	"context"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/glimpse-analytics/glimpse/collector/session"
	"github.com/glimpse-analytics/glimpse/collector/sink"
	"github.com/glimpse-analytics/glimpse/internal/apptest"
	"github.com/glimpse-analytics/glimpse/internal/chtest"
	"github.com/glimpse-analytics/glimpse/internal/model"
)

// TestSessionDrainIsOneInsert: a drain of many more sessions than
// BatchSize goes to sessions as one INSERT (blocks of BatchSize rows, one
// part) and its sums to sessions_dims_input as one more, and the ended
// sessions that a full cache drains early wait for the next store instead
// of making INSERTs of their own.
func TestSessionDrainIsOneInsert(t *testing.T) {
	db := chtest.Migrated(t)
	set := metrics.NewSet()
	// 3,000 sessions in blocks of 1,500 (an INSERT takes up to 2 blocks); the
	// cache holds 1,024 and asks for a drain of ended ones every 128.
	const batch, visitors = 1500, 3000
	w := sink.New(sink.Options{Conn: db.Conn, BatchSize: batch, Interval: time.Hour, SessionInterval: time.Hour, Metrics: set})
	c := session.NewCache(session.CacheConfig{MaxSessions: 1024})
	w.WriteSessions(c)
	start := time.Date(2026, 3, 4, 5, 0, 0, 0, time.UTC)
	for v := range uint64(visitors) {
		c.Touch("example.com", v+1, start.Add(time.Duration(v)*time.Millisecond), &session.Touch{Pageview: true, Path: "/",
			Attrs: &model.Attrs{Browser: "Firefox"}})
	}
	if lost := closeWriter(t, w); lost != 0 {
		t.Fatalf("lost %d rows", lost)
	}
	if n := count(t, db, "SELECT count() FROM sessions"); n != visitors {
		t.Fatalf("%d session rows, want %d", n, visitors)
	}
	for _, table := range []string{"sessions", "sessions_dims_input"} {
		if n := apptest.SetMetric(t, set, `glimpse_flush_rows_count{table="`+table+`"}`); n != 1 {
			t.Errorf("%s: %.0f INSERTs, want 1", table, n)
		}
	}
	if n := count(t, db, "SELECT toUInt64(sumMerge(visits)) FROM sessions_dims_hourly WHERE dim = 'visit:browser'"); n != visitors {
		t.Fatalf("sessions_dims_hourly: %d visits, want %d", n, visitors)
	}
}

// TestSessionStreamRetriesWithoutDuplicates cuts the connection to
// ClickHouse again and again while sessions are stored in INSERTs of many
// blocks: a failed INSERT may have stored some of them, so each retry
// leaves out the rows sessions holds. Every row is stored exactly once,
// and the rollups count each session once.
func TestSessionStreamRetriesWithoutDuplicates(t *testing.T) {
	db := chtest.Migrated(t)
	proxy, conn := proxied(t, db, 0)
	set := metrics.NewSet()
	// INSERTs of up to 400 rows in blocks of 200.
	const batch, visitors, touches = 200, 10000, 3
	w := sink.New(sink.Options{Conn: conn, BatchSize: batch, Interval: time.Hour, SessionInterval: 30 * time.Millisecond,
		MaxBackoff: 50 * time.Millisecond, InsertTimeout: 10 * time.Second, Metrics: set})
	c := session.NewCache(session.CacheConfig{})
	w.WriteSessions(c)
	start := time.Now().UTC().Truncate(time.Second)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range touches {
			for v := range uint64(visitors) {
				c.Touch("example.com", v+1, start.Add(time.Duration(i)*time.Second), &session.Touch{Pageview: true, Path: "/"})
				if v%100 == 0 {
					time.Sleep(time.Millisecond)
				}
			}
		}
	}()
	for waiting := true; waiting; {
		select {
		case <-done:
			waiting = false
		case <-time.After(25 * time.Millisecond):
		}
		proxy.cut()
	}
	// Each failed INSERT is waited for until the server is done with it:
	// on a busy machine that takes seconds, so Close gets longer than
	// closeWriter gives.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if lost, err := w.Close(ctx); lost != 0 || err != nil {
		t.Fatalf("Close: lost %d rows, %v", lost, err)
	}
	failed := apptest.SetMetric(t, set, `glimpse_insert_errors_total{table="sessions"}`)
	if failed == 0 {
		t.Fatal("not one INSERT into sessions failed: the test proves nothing")
	}
	if n := count(t, db, "SELECT count() FROM (SELECT session_id, version, sign, count() AS n FROM sessions GROUP BY session_id, version, sign HAVING n > 1)"); n != 0 {
		t.Fatalf("%d session rows stored more than once (%.0f failed INSERTs)", n, failed)
	}
	if n := count(t, db, "SELECT toUInt64(sum(sign)) FROM sessions"); n != visitors {
		t.Fatalf("sum(sign) = %d, want %d sessions", n, visitors)
	}
	if n := count(t, db, "SELECT toUInt64(sum(sign * pageviews)) FROM sessions"); n != visitors*touches {
		t.Fatalf("sum(sign * pageviews) = %d, want %d", n, visitors*touches)
	}
	if n := count(t, db, "SELECT toUInt64(sum(visits)) FROM sessions_hourly"); n != visitors {
		t.Fatalf("sessions_hourly: %d visits, want %d", n, visitors)
	}
	t.Logf("%.0f failed INSERTs into sessions, %.0f stored", failed, apptest.SetMetric(t, set, `glimpse_flush_rows_count{table="sessions"}`))
}
