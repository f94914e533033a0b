package sink

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/glimpse-analytics/glimpse/internal/apptest"
	"github.com/glimpse-analytics/glimpse/internal/chtest"
	"github.com/glimpse-analytics/glimpse/internal/model"
)

func tailEvent(w *Writer, i int) *model.Event {
	e := w.NewEvent()
	e.NewID()
	e.SiteID, e.TS, e.Type = "example.com", time.Now().UTC().Truncate(time.Second), model.TypePageview
	e.VisitorID = uint64(i + 1)
	e.Pathname = fmt.Appendf(e.Pathname, "/p/%d", i)
	return e
}

// TestSpoolTail checks the reader's two sources: while ClickHouse keeps up
// it takes the appender's events from memory; while inserts are stalled
// the tail outgrows its cap and the reader reads those records from disk.
// Either way every event is stored exactly once, with its own path.
func TestSpoolTail(t *testing.T) {
	db := chtest.Migrated(t)
	set := metrics.NewSet()
	w, err := Open(Options{Conn: db.Conn, SpoolDir: t.TempDir(), BatchSize: 200, QueueSize: 20000,
		Interval: 10 * time.Millisecond, SpoolSyncInterval: 5 * time.Millisecond, Metrics: set})
	if err != nil {
		t.Fatal(err)
	}
	enqueue := func(from, n int) {
		for i := from; i < from+n; i++ {
			if err := w.Enqueue(tailEvent(w, i)); err != nil {
				t.Fatal(err)
			}
			if i%50 == 0 {
				time.Sleep(time.Millisecond) // a steady stream, not one burst
			}
		}
	}
	stored := func() uint64 {
		var n uint64
		if err := db.Conn.QueryRow(context.Background(), "SELECT count() FROM events").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	wait := func(want uint64) {
		deadline := time.Now().Add(30 * time.Second)
		for stored() < want {
			if time.Now().After(deadline) {
				t.Fatalf("%d rows stored after 30 s, want %d", stored(), want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	enqueue(0, 2000)
	wait(2000)
	memory, disk := apptest.SetMetric(t, set, `glimpse_spool_rows_read_total{from="memory"}`), apptest.SetMetric(t, set, `glimpse_spool_rows_read_total{from="disk"}`)
	if memory == 0 {
		t.Fatalf("a reader that keeps up read nothing from memory (memory %v, disk %v)", memory, disk)
	}

	// Stall inserts (the erasure guard is held during each one) while far
	// more events than the tail holds are appended.
	w.erasures.insertMu.Lock()
	enqueue(2000, 3*w.log.Capacity())
	deadline := time.Now().Add(30 * time.Second)
	for len(w.queue) > 0 {
		if time.Now().After(deadline) {
			t.Fatal("the appender did not take the queue")
		}
		time.Sleep(10 * time.Millisecond)
	}
	w.erasures.insertMu.Unlock()
	total := uint64(2000 + 3*w.log.Capacity())
	wait(total)
	if disk := apptest.SetMetric(t, set, `glimpse_spool_rows_read_total{from="disk"}`); disk == 0 {
		t.Fatal("a reader that fell behind never read from disk")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if lost, err := w.Close(ctx); lost != 0 || err != nil {
		t.Fatalf("Close: lost %d, %v", lost, err)
	}
	var rows, ids, paths uint64
	err = db.Conn.QueryRow(context.Background(), "SELECT count(), uniqExact(event_id), uniqExact(pathname) FROM events").Scan(&rows, &ids, &paths)
	if err != nil {
		t.Fatal(err)
	}
	if rows != total || ids != total || paths != total {
		t.Fatalf("%d rows, %d ids, %d paths; want %d of each", rows, ids, paths, total)
	}
}
