package sink

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/glimpse-analytics/glimpse/collector/insert"
	"github.com/glimpse-analytics/glimpse/internal/model"
)

// tableMetrics are a table's insert counters, labelled by its name.
type tableMetrics struct {
	name    string
	stored  *metrics.Counter
	errors  *metrics.Counter
	dropped *metrics.Counter
	flushes *metrics.Histogram
	rows    *metrics.Histogram
	events  *metrics.Counter // glimpse_events_stored_total, for the events table
}

func newTableMetrics(m *metrics.Set, name string) tableMetrics {
	t := tableMetrics{
		name:    name,
		stored:  m.NewCounter(fmt.Sprintf(`glimpse_rows_stored_total{table=%q}`, name)),
		errors:  m.NewCounter(fmt.Sprintf(`glimpse_insert_errors_total{table=%q}`, name)),
		dropped: m.NewCounter(fmt.Sprintf(`glimpse_rows_lost_total{table=%q}`, name)),
		flushes: m.NewHistogram(fmt.Sprintf(`glimpse_flush_seconds{table=%q}`, name)),
		rows:    m.NewHistogram(fmt.Sprintf(`glimpse_flush_rows{table=%q}`, name)),
	}
	if name == "events" {
		t.events = m.GetOrCreateCounter("glimpse_events_stored_total")
	}
	return t
}

// count records an INSERT of rows that took d.
func (t *tableMetrics) count(rows int, d time.Duration) {
	t.stored.Add(rows)
	if t.events != nil {
		t.events.Add(rows)
	}
	t.flushes.Update(d.Seconds())
	t.rows.Update(float64(rows))
}

// eventsTable is the events table as the flusher writes it.
type eventsTable struct {
	tableMetrics
	w        *Writer
	batch    insert.Events
	prepared insert.Prepared
	// guard is held during each insert and while an INSERT is open:
	// Writer.Erase waits on it.
	guard *sync.Mutex
	dups  *metrics.Counter
}

func newEventsTable(w *Writer) *eventsTable {
	t := &eventsTable{tableMetrics: newTableMetrics(w.opts.Metrics, "events"), w: w, guard: &w.erasures.insertMu}
	t.prepared.Table = t.name
	if w.opts.Cluster {
		t.batch.AllColumns()
	}
	if w.spool != nil {
		t.dups = w.opts.Metrics.NewCounter("glimpse_spool_duplicates_skipped_total")
	} else {
		t.dups = new(metrics.Counter) // counted, not exported: no spool
	}
	return t
}

// build returns the INSERT of rows, less erased ones; the caller holds
// the guard, and calls batch.release once the columns are sent.
func (t *eventsTable) build(rows []*model.Event) (string, []any) {
	return t.batch.Build(t.w.withoutErased(rows))
}

// insertPrepared inserts rows as one INSERT of a prepared batch.
func (t *eventsTable) insertPrepared(ctx context.Context, rows []*model.Event) error {
	t.guard.Lock()
	defer t.guard.Unlock()
	query, cols := t.build(rows)
	defer t.batch.Release()
	return t.prepared.Insert(ctx, t.w.opts.Conn, t.w.opts.InsertTimeout, query, cols)
}

// table is a table the session drains write (sessions.go): rows go in
// INSERTs of at most BatchSize rows, retried by the writer's one policy.
type table[T any] struct {
	tableMetrics
	w        *Writer
	build    func([]T) (query string, cols []any) // the INSERT and its column slices
	release  func([]T)
	prepared insert.Prepared
	lost     atomic.Int64
}

func newTable[T any](w *Writer, name string, build func([]T) (string, []any), release func([]T)) *table[T] {
	t := &table[T]{tableMetrics: newTableMetrics(w.opts.Metrics, name), w: w, build: build, release: release}
	t.prepared.Table = name
	return t
}

// flush inserts rows in inserts of at most BatchSize rows (a drain can
// collect more; bigger inserts would only cost memory). Rows not stored
// when the writer stops, or ctx ends, are counted as lost.
func (t *table[T]) flush(ctx context.Context, rows []T) {
	if t.w.opts.Discard {
		return
	}
	for len(rows) > 0 {
		n := min(len(rows), t.w.opts.BatchSize)
		t.insertRetry(ctx, rows[:n])
		rows = rows[n:]
	}
}

func (t *table[T]) insertRetry(ctx context.Context, rows []T) {
	start := time.Now()
	retry := newBackoff(t.w.opts.MaxBackoff)
	for {
		query, cols := t.build(rows)
		err := t.prepared.Insert(ctx, t.w.opts.Conn, t.w.opts.InsertTimeout, query, cols)
		t.release(rows)
		if err == nil {
			t.count(len(rows), time.Since(start))
			return
		}
		t.errors.Inc()
		if n := retry.failures + 1; n == 1 || n%10 == 0 {
			t.w.opts.Log.Warn("insert failed; retrying", "table", t.name, "rows", len(rows), "attempt", n, "err", err)
		}
		if !retry.wait(t.w.stop, ctx.Done()) {
			t.lost.Add(int64(len(rows)))
			t.dropped.Add(len(rows))
			t.w.opts.Log.Error("rows lost: the writer stopped before ClickHouse took them", "table", t.name, "rows", len(rows), "err", err)
			return
		}
	}
}
