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

// sessionsTable is the sessions table as the session drains write it:
// each store is one INSERT, streamed in blocks of BatchSize rows, which
// ClickHouse writes as one part.
type sessionsTable struct {
	tableMetrics
	w    *Writer
	cols insert.Sessions
	bufs insert.Buffers
	lost atomic.Int64
}

// insert stores rows, retrying with the writer's one policy. A failed
// INSERT may have stored some of its blocks (18.16 stores the blocks it
// received before a dropped connection), and sessions collapse by sign
// and version, so a row stored twice would count twice: before a retry,
// the writer waits until the server is done with the failed INSERT and
// leaves out the rows it holds. Rows not stored when the writer stops, or
// ctx ends, are counted as lost.
func (t *sessionsTable) insert(ctx context.Context, rows []insert.SessionRow) {
	w := t.w
	if w.opts.Discard {
		return
	}
	start := time.Now()
	retry := newBackoff(w.opts.MaxBackoff)
	var unsettled []string
	check := false // an INSERT failed: rows may be stored
	for {
		var err error
		if check {
			if err = w.waitInserts(unsettled); err == nil {
				unsettled = unsettled[:0]
				if rows, err = t.unstored(rows); err == nil {
					check = false
				}
			}
		}
		if err == nil {
			var id string
			if id, err = t.stream(ctx, rows); err == nil {
				t.count(len(rows), time.Since(start))
				return
			}
			check = true
			if id != "" {
				unsettled = append(unsettled, id)
			}
		}
		t.errors.Inc()
		if n := retry.failures + 1; n == 1 || n%10 == 0 {
			w.opts.Log.Warn("insert failed; retrying", "table", t.name, "rows", len(rows), "attempt", n, "err", err)
		}
		if !retry.wait(w.stop, ctx.Done()) {
			t.lost.Add(int64(len(rows)))
			t.dropped.Add(len(rows))
			w.opts.Log.Error("rows lost: the writer stopped before ClickHouse took them", "table", t.name, "rows", len(rows), "err", err)
			return
		}
	}
}

// stream sends rows as one INSERT, in blocks of BatchSize rows. On failure
// it returns the INSERT's query id, if it started.
func (t *sessionsTable) stream(ctx context.Context, rows []insert.SessionRow) (string, error) {
	w := t.w
	if len(rows) == 0 {
		return "", nil
	}
	query, _ := t.cols.BuildAll(nil)
	s, err := insert.OpenStream(ctx, w.opts.Conn, w.opts.InsertTimeout, t.name, query, &t.bufs)
	if err != nil {
		return insert.QueryID(err), err
	}
	for i := 0; i < len(rows); {
		end := min(i+w.opts.BatchSize, len(rows))
		if rows[end-1].Sign < 0 && end < len(rows) {
			end++ // a cancel row and the state after it go in one block (unstored)
		}
		part := rows[i:end]
		i = end
		_, cols := t.cols.BuildAll(part)
		err := s.Add(cols, len(part))
		t.cols.Release()
		if err != nil {
			s.Abort()
			return s.QueryID(), err
		}
	}
	if err := s.Commit(); err != nil {
		return s.QueryID(), err
	}
	return "", nil
}

// unstored returns the rows that sessions does not hold, in place. A
// session's change is a cancel row (-1) followed by its new state (+1),
// and both go in one block, which the server stores whole or not at all:
// so the change is stored if its +1 row is. The +1 rows are what is
// looked for because a merge may already have collapsed a stored -1 row
// with the +1 row it cancels, while a +1 row stays until a later INSERT
// cancels it.
func (t *sessionsTable) unstored(rows []insert.SessionRow) ([]insert.SessionRow, error) {
	type key struct {
		id      uint64
		version uint32
	}
	w := t.w
	found := make(map[key]struct{})
	for i := 0; i < len(rows); i += dedupeChunk {
		part := rows[i:min(i+dedupeChunk, len(rows))]
		sites := make([]string, 0, 1)
		ids := make([]uint64, 0, len(part))
		lo, hi := part[0].S.Start, part[0].S.Start
		for _, r := range part {
			if len(sites) == 0 || sites[len(sites)-1] != r.S.Site {
				sites = append(sites, r.S.Site)
			}
			ids = append(ids, r.S.ID)
			lo, hi = minTime(lo, r.S.Start), maxTime(hi, r.S.Start)
		}
		err := func() error {
			ctx, cancel := context.WithTimeout(w.stopCtx, w.opts.InsertTimeout)
			defer cancel()
			res, err := w.opts.Conn.Query(ctx,
				"SELECT session_id, version FROM sessions WHERE has(?, site_id) AND start >= toDateTime(?) AND start <= toDateTime(?) AND has(?, session_id) AND sign = 1",
				sites, lo.Unix(), hi.Unix(), ids)
			if err != nil {
				return err
			}
			defer res.Close()
			for res.Next() {
				var k key
				if err := res.Scan(&k.id, &k.version); err != nil {
					return err
				}
				found[k] = struct{}{}
			}
			return res.Err()
		}()
		if err != nil {
			return rows, fmt.Errorf("cannot check session rows against sessions: %w", err)
		}
	}
	stored := func(i int) bool {
		if rows[i].Sign < 0 && i+1 < len(rows) {
			i++ // the state after the cancel row
		}
		_, ok := found[key{rows[i].S.ID, rows[i].S.Version}]
		return ok && rows[i].Sign > 0
	}
	keep := 0
	for i := range rows {
		if !stored(i) {
			rows[keep] = rows[i]
			keep++
		}
	}
	clear(rows[keep:])
	return rows[:keep], nil
}
