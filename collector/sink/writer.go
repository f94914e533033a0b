// Package sink is the batch writer between the collector and ClickHouse: a
// bounded queue per table, one goroutine owning each table's batch, flushes
// on size or interval with PrepareBatch and explicit columns, and bounded
// retries with backoff.
package sink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/VictoriaMetrics/metrics"

	"github.com/glimpse-analytics/glimpse/collector/insert"
	"github.com/glimpse-analytics/glimpse/collector/rollup"
	"github.com/glimpse-analytics/glimpse/internal/model"
)

// Options configure a Writer. Zero values take the documented defaults.
type Options struct {
	Conn driver.Conn // nil only with Discard
	// Discard drops rows after dequeuing them instead of inserting them; for
	// benchmarks that measure the collector without ClickHouse.
	Discard bool
	// BatchSize flushes a table's batch when it has this many rows (default 10,000).
	BatchSize int
	// Interval flushes a non-empty batch at least this often (default 1 s).
	Interval time.Duration
	// SessionInterval is how often the sessions changed in the meantime
	// are written (default 10 s; see Writer.WriteSessions): a checkpoint
	// period, so an active session costs at most two rows per interval, not
	// two per event, and a crash loses at most one interval of session
	// changes (never events).
	SessionInterval time.Duration
	// QueueSize bounds each table's queue (default 2×BatchSize). A full
	// queue makes Enqueue fail at once; it never blocks.
	QueueSize int
	// Attempts bounds the tries of one insert (default 5), with backoff from
	// 250 ms doubling to 8 s between them.
	Attempts int
	// InsertTimeout bounds one insert attempt (default 30 s).
	InsertTimeout time.Duration
	Metrics       *metrics.Set
	Log           *slog.Logger

	// SpoolDir, when set, puts a disk spool between the events queue and
	// ClickHouse (spool.go; use Open). Events are then never dropped after
	// Enqueue: inserts are retried until they succeed, backing off from
	// 250 ms to MaxBackoff, and the rows wait on disk meanwhile.
	SpoolDir string
	// SpoolMaxBytes caps the spool (default 1 GiB); at the cap Enqueue
	// refuses with ErrSpoolFull.
	SpoolMaxBytes int64
	// SpoolSegmentBytes is the size at which a new segment starts (default
	// 8 MiB): the unit of deletion once its rows are stored.
	SpoolSegmentBytes int64
	// SpoolSyncInterval is the group commit interval: accepted events are
	// fsynced at least this often (default 200 ms).
	SpoolSyncInterval time.Duration
	// MaxBackoff caps the wait between retries of a spooled insert
	// (default 5 s), which bounds how long a recovered ClickHouse waits
	// before the backlog starts to drain.
	MaxBackoff time.Duration
}

func (o *Options) defaults() {
	if o.BatchSize <= 0 {
		o.BatchSize = 10000
	}
	if o.Interval <= 0 {
		o.Interval = time.Second
	}
	if o.SessionInterval <= 0 {
		o.SessionInterval = 10 * time.Second
	}
	if o.QueueSize <= 0 {
		o.QueueSize = 2 * o.BatchSize
	}
	if o.Attempts <= 0 {
		o.Attempts = 5
	}
	if o.InsertTimeout <= 0 {
		o.InsertTimeout = 30 * time.Second
	}
	if o.Metrics == nil {
		o.Metrics = metrics.NewSet()
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.SpoolMaxBytes <= 0 {
		o.SpoolMaxBytes = 1 << 30
	}
	if o.SpoolSegmentBytes <= 0 {
		o.SpoolSegmentBytes = 8 << 20
	}
	if o.SpoolSyncInterval <= 0 {
		o.SpoolSyncInterval = 200 * time.Millisecond
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = 5 * time.Second
	}
}

// ErrQueueFull and ErrClosed are what Enqueue reports instead of blocking.
var (
	ErrQueueFull = errors.New("queue full")
	ErrClosed    = errors.New("writer closed")
)

// Writer owns the queues and the goroutines that flush them.
type Writer struct {
	opts     Options
	events   *table[*model.Event]
	sessions *table[sessionRow] // fed by runSessions, not by its queue
	// sessionDims takes the sums of each drain of sessions for
	// sessions_dims_hourly (rollup.Sums), fed by runSessions too.
	sessionDims *table[rollup.Row]
	dimSums     rollup.Sums   // runSessions' alone
	closing     chan struct{} // closed by Close: the last drain of sessions
	// sessionSrcs are where session changes come from (WriteSessions).
	srcMu       sync.Mutex
	sessionSrcs []model.SessionSource
	// endedWake is signalled when a source asks for its ended sessions to
	// be drained early (EndedSource).
	endedWake chan struct{}

	mu     sync.RWMutex // held for reading while enqueuing; Close takes it to close the queues
	closed bool
	wg     sync.WaitGroup
	stop   chan struct{}                   // closed when Close's deadline passes: abandon retries
	final  atomic.Pointer[context.Context] // the final flush's context, set by Close
	// free is the pool of events: a channel rather than a sync.Pool, so
	// that events survive garbage collections and the steady state
	// allocates nothing. It holds at most as many as can be in flight.
	free chan *model.Event

	spool      *spool // nil without Options.SpoolDir
	erasures   erasures
	failing    atomic.Bool     // spooled inserts are failing and being retried
	stopCtx    context.Context // cancelled when Close gives up or returns
	stopCancel context.CancelFunc
}

// New starts a Writer without a spool; Close stops it. Use Open for a
// writer with Options.SpoolDir.
func New(o Options) *Writer {
	if o.SpoolDir != "" {
		panic("sink.New: a spool needs sink.Open")
	}
	o.defaults()
	w := newWriter(o)
	w.wg.Add(2)
	go w.events.run()
	go w.runSessions()
	return w
}

// Open starts a Writer, with a disk spool for events when o.SpoolDir is
// set: it locks the directory, and segments an earlier process left are
// inserted before any new event. Close stops it.
func Open(o Options) (*Writer, error) {
	if o.SpoolDir == "" {
		return New(o), nil
	}
	o.defaults()
	if o.Discard {
		return nil, errors.New("a spool and the discard sink do not go together")
	}
	sp, err := openSpool(&o)
	if err != nil {
		return nil, err
	}
	w := newWriter(o)
	w.spool, sp.w = sp, w
	if err := w.erasures.load(o.SpoolDir); err != nil {
		sp.lock.Close()
		return nil, err
	}
	a := &appender{s: sp}
	if err := a.create(sp.startupLast + 1); err != nil {
		sp.lock.Close()
		return nil, err
	}
	full := make(chan spoolBatch)
	free := make(chan []*model.Event, 1)
	free <- make([]*model.Event, 0, w.blockRows())
	acked := make(chan struct{})
	w.wg.Add(3)
	go w.appendLoop(a)
	go func() {
		defer w.wg.Done()
		flushed := make(chan struct{})
		go func() { defer close(flushed); w.flushLoop(full, free, acked) }()
		w.readLoop(full, free, acked)
		<-flushed
	}()
	go w.runSessions()
	return w, nil
}

func newWriter(o Options) *Writer {
	w := &Writer{opts: o, stop: make(chan struct{}), closing: make(chan struct{}), endedWake: make(chan struct{}, 1)}
	w.stopCtx, w.stopCancel = context.WithCancel(context.Background())
	w.free = make(chan *model.Event, o.QueueSize+2*o.BatchSize) // queued, collecting, being inserted
	var eb eventBatch
	w.events = newTable(w, "events", o.BatchSize, o.Interval, o.QueueSize,
		func(rows []*model.Event) (string, []any) { return eb.build(w.withoutErased(rows)) },
		func(rows []*model.Event) {
			eb.release()
			for _, r := range rows {
				w.Release(r)
			}
		})
	w.events.guard = &w.erasures.insertMu
	var sb sessionBatch
	w.sessions = newTable(w, "sessions", o.BatchSize, 0, 0, sb.build, // runSessions paces it, no queue
		func([]sessionRow) { sb.release() })
	var db rollup.Columns
	w.sessionDims = newTable(w, "sessions_dims_input", o.BatchSize, 0, 0, db.Build, func([]rollup.Row) { db.Release() })
	o.Metrics.NewGauge("glimpse_queue_depth", func() float64 { return float64(w.QueueDepth()) })
	return w
}

// QueueDepth is the number of rows waiting in the queues.
func (w *Writer) QueueDepth() int { return len(w.events.queue) }

// Enqueue hands e to the writer, which owns it from then on. It never
// blocks: a full queue or a closed writer returns an error and e goes back
// to the pool.
func (w *Writer) Enqueue(e *model.Event) error {
	err := w.offer(e)
	if err != nil {
		w.Release(e)
	}
	return err
}

// EnqueueWait is Enqueue for a producer that may wait (generated data, not
// a request handler): while the queue is full it waits, polling every few
// milliseconds, until there is room or ctx ends.
func (w *Writer) EnqueueWait(ctx context.Context, e *model.Event) error {
	for {
		err := w.offer(e)
		if err != ErrQueueFull {
			if err != nil {
				w.Release(e)
			}
			return err
		}
		t := time.NewTimer(2 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			w.Release(e)
			return ctx.Err()
		case <-t.C:
		}
	}
}

// offer queues e if it can, and says why not otherwise; e stays the
// caller's then.
func (w *Writer) offer(e *model.Event) error {
	w.mu.RLock()
	defer w.mu.RUnlock()
	if w.closed {
		return ErrClosed
	}
	if w.spool != nil && w.spool.full.Load() {
		w.spool.logFull()
		return ErrSpoolFull
	}
	select {
	case w.events.queue <- e:
		return nil
	default:
		return ErrQueueFull
	}
}

// Close stops accepting rows, drains the queues and flushes what is left
// under ctx (use a fresh context with a deadline, not a cancelled one). It
// returns how many rows could not be stored.
func (w *Writer) Close(ctx context.Context) (lost int64, err error) {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return 0, nil
	}
	w.closed = true
	w.final.Store(&ctx)
	close(w.events.queue)
	close(w.closing)
	w.mu.Unlock()
	done := make(chan struct{})
	go func() { w.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		close(w.stop)
		w.stopCancel()
		<-done
		err = fmt.Errorf("final flush did not finish: %w", ctx.Err())
	}
	w.stopCancel()
	w.events.prepared.CloseAll()
	w.sessions.prepared.CloseAll()
	w.sessionDims.prepared.CloseAll()
	lost = w.events.lost.Load() + w.sessions.lost.Load() + w.sessionDims.lost.Load()
	if w.spool != nil {
		if left := w.spool.size.Load(); err != nil && left > 0 {
			w.opts.Log.Warn("rows left in the spool for the next start", "bytes", left, "dir", w.spool.dir)
		}
		w.spool.lock.Close()
	}
	return lost, err
}

// Degraded says why the writer works but not fully (the spool is full,
// inserts are failing and rows wait in the spool), or "".
func (w *Writer) Degraded() string {
	s := w.spool
	if s == nil {
		return ""
	}
	switch {
	case s.full.Load():
		return fmt.Sprintf("spool full (%d of %d bytes): new events are refused (reason spool-full) until ClickHouse catches up",
			s.size.Load(), s.maxSize)
	case w.failing.Load():
		return fmt.Sprintf("ClickHouse inserts failing: events wait in the spool (%d bytes) and are retried", s.size.Load())
	}
	return ""
}

// table is one table's queue and the goroutine that owns its batch.
type table[T any] struct {
	w        *Writer
	name     string
	size     int                                  // rows that make a batch full
	interval time.Duration                        // a non-empty batch is flushed at least this often
	queue    chan T                               // nil for sessions
	build    func([]T) (query string, cols []any) // the INSERT and its column slices
	release  func([]T)
	lost     atomic.Int64
	// guard, if set, is held during each insert (events: Writer.Erase
	// waits on it).
	guard *sync.Mutex
	// prepared keeps INSERTs for reuse (insert.go).
	prepared insert.Prepared

	stored  *metrics.Counter
	errors  *metrics.Counter
	dropped *metrics.Counter
	flushes *metrics.Histogram
	rows    *metrics.Histogram
}

func newTable[T any](w *Writer, name string, size int, interval time.Duration, queueSize int,
	build func([]T) (string, []any), release func([]T)) *table[T] {
	m := w.opts.Metrics
	t := &table[T]{
		w: w, name: name, size: size, interval: interval,
		build: build, release: release,
		stored:  m.NewCounter(fmt.Sprintf(`glimpse_rows_stored_total{table=%q}`, name)),
		errors:  m.NewCounter(fmt.Sprintf(`glimpse_insert_errors_total{table=%q}`, name)),
		dropped: m.NewCounter(fmt.Sprintf(`glimpse_rows_lost_total{table=%q}`, name)),
		flushes: m.NewHistogram(fmt.Sprintf(`glimpse_flush_seconds{table=%q}`, name)),
		rows:    m.NewHistogram(fmt.Sprintf(`glimpse_flush_rows{table=%q}`, name)),
	}
	t.prepared.Table = name
	if queueSize > 0 {
		t.queue = make(chan T, queueSize)
	}
	return t
}

// run collects rows into a batch and hands full batches to a flusher
// goroutine, so that one batch is being inserted while the next fills: a
// slow insert costs queue room only after a whole batch has piled up
// behind it. Ownership of a batch moves with it; no batch is shared.
func (t *table[T]) run() {
	defer t.w.wg.Done()
	size := t.size
	size0 := min(size, t.w.opts.BatchSize)
	type batch struct {
		rows []T
		ctx  context.Context
	}
	full := make(chan batch)
	free := make(chan []T, 1)
	free <- make([]T, 0, size0)
	flushed := make(chan struct{})
	go func() {
		defer close(flushed)
		for b := range full {
			t.flush(b.ctx, b.rows)
			clear(b.rows)
			if cap(b.rows) > 4*size0 {
				b.rows = make([]T, 0, size0) // a burst's capacity is not kept
			}
			free <- b.rows[:0]
		}
	}()
	rows := make([]T, 0, size0)
	handoff := func(ctx context.Context) {
		if len(rows) == 0 {
			return
		}
		full <- batch{rows, ctx}
		rows = <-free
	}
	tick := time.NewTicker(t.interval)
	defer tick.Stop()
	var gather gatherer
	add := func(r T) { rows = append(rows, r) }
	for {
		select {
		case r, ok := <-t.queue:
			if !ok {
				handoff(*t.w.final.Load())
				close(full)
				<-flushed
				return
			}
			rows = append(rows, r)
			gather.wait()
			takeQueued(t.queue, size-len(rows), add)
			if len(rows) >= size {
				handoff(context.Background())
			}
		case <-tick.C:
			handoff(context.Background())
		}
	}
}

// flush inserts rows in inserts of at most BatchSize rows (a long session
// window can collect more; bigger inserts would only cost memory), retrying
// each with backoff; rows it cannot insert are counted as lost. It releases
// the rows either way.
func (t *table[T]) flush(ctx context.Context, rows []T) {
	defer t.release(rows)
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
	backoff := 250 * time.Millisecond
	var err error
	for attempt := 1; attempt <= t.w.opts.Attempts; attempt++ {
		if err = t.insert1(ctx, rows); err == nil {
			t.count(len(rows), time.Since(start))
			return
		}
		t.errors.Inc()
		t.w.opts.Log.Warn("insert failed", "table", t.name, "rows", len(rows), "attempt", attempt, "err", err)
		if attempt == t.w.opts.Attempts {
			break
		}
		select {
		case <-time.After(backoff):
		case <-t.w.stop:
			attempt = t.w.opts.Attempts
		case <-ctx.Done():
			attempt = t.w.opts.Attempts
		}
		backoff = min(2*backoff, 8*time.Second)
	}
	t.lost.Add(int64(len(rows)))
	t.dropped.Add(len(rows))
	t.w.opts.Log.Error("rows lost after failed inserts", "table", t.name, "rows", len(rows), "err", err)
}

// count records an INSERT of rows that took d.
func (t *table[T]) count(rows int, d time.Duration) {
	t.stored.Add(rows)
	if t.name == "events" {
		t.w.eventsStored().Add(rows)
	}
	t.flushes.Update(d.Seconds())
	t.rows.Update(float64(rows))
}

func (t *table[T]) insert1(ctx context.Context, rows []T) error {
	if t.guard != nil {
		t.guard.Lock()
		defer t.guard.Unlock()
	}
	query, cols := t.build(rows)
	return t.prepared.Insert(ctx, t.w.opts.Conn, t.w.opts.InsertTimeout, query, cols)
}

func (w *Writer) eventsStored() *metrics.Counter {
	return w.opts.Metrics.GetOrCreateCounter("glimpse_events_stored_total")
}

// NewEvent returns an empty event from the writer's pool. Hand it to
// Enqueue, or back with Release if it is not to be stored.
func (w *Writer) NewEvent() *model.Event {
	select {
	case e := <-w.free:
		return e
	default:
		return new(model.Event)
	}
}

// Release returns an event that was not enqueued to the pool.
func (w *Writer) Release(e *model.Event) {
	e.Reset()
	select {
	case w.free <- e:
	default: // the pool is full: let the collector have it
	}
}
