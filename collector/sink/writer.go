// Package sink is the writer between the collector and ClickHouse: one
// pipeline for events, with or without a disk spool, and the checkpoints
// of sessions.
//
// Events: Enqueue hands an event to a bounded queue and never blocks. The
// appender moves queued events into the log (collector/eventlog): the
// disk spool (collector/spool) with the newest events also kept in memory,
// or memory alone without Options.SpoolDir. The reader (reader.go) reads the log in
// order and hands the flusher (flusher.go) blocks of rows; the flusher
// sends them as INSERTs (collector/insert), several blocks to one INSERT
// under load, and tells the log what is stored, so that it can let go of
// it. A failed INSERT is dropped and the reader rewinds to its first row;
// the rows are read again, checked against what ClickHouse kept, and
// retried with backoff until ClickHouse takes them or the writer is
// closed. That retry policy is the same for every table.
//
// Sessions (sessions.go): every SessionInterval the writer drains the
// session sources it was given and writes each changed session as a
// cancel row of the state written before and a row of the new state.
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

	"github.com/glimpse-analytics/glimpse/collector/eventlog"
	"github.com/glimpse-analytics/glimpse/collector/rollup"
	"github.com/glimpse-analytics/glimpse/collector/spool"
	"github.com/glimpse-analytics/glimpse/internal/model"
)

// Defaults of Options, one per setting; glimpse serve's flags default to
// them.
const (
	DefaultBatchSize       = 10_000
	DefaultInterval        = time.Second
	DefaultSessionInterval = 10 * time.Second
	// DefaultQueueSize does not grow with BatchSize: the queue only takes
	// bursts until the appender moves them into the log, which holds the
	// rows of the blocks being inserted.
	DefaultQueueSize         = 10_000
	DefaultInsertTimeout     = 30 * time.Second
	DefaultMaxBackoff        = 5 * time.Second
	DefaultSpoolMaxBytes     = 1 << 30
	DefaultSpoolSegmentBytes = 8 << 20
	DefaultSpoolSyncInterval = 200 * time.Millisecond
)

// Options configure a Writer. Zero values take the defaults above.
type Options struct {
	Conn driver.Conn // nil only with Discard
	// Discard drops rows after dequeuing them instead of inserting them; for
	// benchmarks that measure the collector without ClickHouse.
	Discard bool
	// BatchSize is the most rows of one table that one INSERT block holds
	// (DefaultBatchSize).
	BatchSize int
	// Interval: a row waits at most this long before its INSERT starts,
	// and an INSERT stays open at most this long for more blocks
	// (DefaultInterval).
	Interval time.Duration
	// SessionInterval is how often the sessions changed in the meantime
	// are written (DefaultSessionInterval; see Writer.WriteSessions): a checkpoint
	// period, so an active session costs at most two rows per interval, not
	// two per event, and a crash loses at most one interval of session
	// changes (never events).
	SessionInterval time.Duration
	// QueueSize bounds the queue between Enqueue and the log
	// (DefaultQueueSize). A full queue makes Enqueue fail at once; it never
	// blocks.
	QueueSize int
	// InsertTimeout bounds one insert attempt (DefaultInsertTimeout).
	InsertTimeout time.Duration
	// MaxBackoff caps the wait between retries of a failed insert
	// (DefaultMaxBackoff): the wait starts at 250 ms and doubles. Inserts are retried
	// until ClickHouse takes them or Close's deadline passes; this bounds
	// how long a recovered ClickHouse waits before the backlog drains.
	MaxBackoff time.Duration
	Metrics    *metrics.Set
	Log        *slog.Logger
	// Cluster says that the tables are a cluster's Distributed tables in
	// front of Replicated ones, and Conn's INSERTs synchronous
	// (insert_distributed_sync=1: an INSERT succeeds once every shard
	// has its rows). A failed INSERT of events is then sent again as
	// exactly the same rows, which each shard's Replicated table drops
	// if it stored them already (insert_deduplicate), instead of being
	// checked by event id, which a replica that has not yet fetched them,
	// or a shard that is down, could not answer.
	Cluster bool

	// SpoolDir, when set, keeps accepted events in a disk spool until
	// ClickHouse has them (use Open): they survive a restart, and a crash
	// loses at most SpoolSyncInterval of them. Without it they wait in
	// memory (at most 2×BatchSize beside the queue).
	SpoolDir string
	// SpoolMaxBytes caps the spool (DefaultSpoolMaxBytes); at the cap
	// Enqueue refuses with ErrSpoolFull.
	SpoolMaxBytes int64
	// SpoolSegmentBytes is the size at which a new segment starts
	// (DefaultSpoolSegmentBytes): the unit of deletion once its rows are
	// stored.
	SpoolSegmentBytes int64
	// SpoolSyncInterval is the group commit interval: accepted events are
	// fsynced at least this often (DefaultSpoolSyncInterval).
	SpoolSyncInterval time.Duration
}

func (o *Options) defaults() {
	if o.BatchSize <= 0 {
		o.BatchSize = DefaultBatchSize
	}
	if o.Interval <= 0 {
		o.Interval = DefaultInterval
	}
	if o.SessionInterval <= 0 {
		o.SessionInterval = DefaultSessionInterval
	}
	if o.QueueSize <= 0 {
		o.QueueSize = DefaultQueueSize
	}
	if o.InsertTimeout <= 0 {
		o.InsertTimeout = DefaultInsertTimeout
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = DefaultMaxBackoff
	}
	if o.Metrics == nil {
		o.Metrics = metrics.NewSet()
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.SpoolMaxBytes <= 0 {
		o.SpoolMaxBytes = DefaultSpoolMaxBytes
	}
	if o.SpoolSegmentBytes <= 0 {
		o.SpoolSegmentBytes = DefaultSpoolSegmentBytes
	}
	if o.SpoolSyncInterval <= 0 {
		o.SpoolSyncInterval = DefaultSpoolSyncInterval
	}
}

// ErrQueueFull, ErrSpoolFull and ErrClosed are what Enqueue reports
// instead of blocking.
var (
	ErrQueueFull = errors.New("queue full")
	ErrSpoolFull = errors.New("spool full")
	ErrClosed    = errors.New("writer closed")
)

// Writer owns the queue, the log and the goroutines that store them.
type Writer struct {
	opts  Options
	queue chan *model.Event
	log   eventlog.Log
	spool *spool.Spool // nil without Options.SpoolDir
	// events is the events table: its INSERTs, metrics and erasure guard.
	events *eventsTable
	// sessions and sessionDims take each drain of sessions (sessions.go).
	sessions    *sessionsTable
	sessionDims *table[rollup.Row]
	pending     pendingSessions // under sessionsMu
	closing     chan struct{}   // closed by Close: the last drain of sessions
	// sessionSrcs are where session changes come from (WriteSessions).
	srcMu       sync.Mutex
	sessionSrcs []model.SessionSource
	// endedWake is signalled when a source asks for its ended sessions to
	// be drained early (EndedSource).
	endedWake chan struct{}
	// sessionsMu is held by each drain of sessions, from the drain to
	// its last insert: Erase and Hold take it.
	sessionsMu sync.Mutex
	// barriers are requests to the appender (barrier).
	barriers chan barrierReq
	eraseMu  sync.Mutex // held by Erase

	mu      sync.RWMutex // held for reading while enqueuing; Close takes it to close the queue
	closed  bool
	wg      sync.WaitGroup
	stop    chan struct{}                   // closed when Close's deadline passes: abandon retries
	final   atomic.Pointer[context.Context] // the final flush's context, set by Close
	rewinds rewinds                         // the flusher's requests to read again
	// free is the pool of events: a channel rather than a sync.Pool, so
	// that events survive garbage collections and the steady state
	// allocates nothing. It holds at most as many as can be in flight.
	free chan *model.Event

	erasures   erasures
	failing    atomic.Bool     // inserts are failing and being retried
	lostQueued atomic.Int64    // events still queued when the writer stopped
	stopCtx    context.Context // cancelled when Close gives up or returns
	stopCancel context.CancelFunc
}

// New starts a Writer without a spool; Close stops it. Use Open for a
// writer with Options.SpoolDir.
func New(o Options) *Writer {
	if o.SpoolDir != "" {
		panic("sink.New: a spool needs sink.Open")
	}
	w, _ := Open(o)
	return w
}

// Open starts a Writer, with a disk spool for events when o.SpoolDir is
// set: it locks the directory, and segments an earlier process left are
// inserted before any new event. Close stops it.
func Open(o Options) (*Writer, error) {
	o.defaults()
	w := &Writer{opts: o, stop: make(chan struct{}), closing: make(chan struct{}), endedWake: make(chan struct{}, 1),
		barriers: make(chan barrierReq)}
	w.stopCtx, w.stopCancel = context.WithCancel(context.Background())
	w.queue = make(chan *model.Event, o.QueueSize)
	if o.SpoolDir == "" {
		w.log = eventlog.NewMemory(w, 2*o.BatchSize)
	} else {
		if o.Discard {
			return nil, errors.New("a spool and the discard sink do not go together")
		}
		sp, err := spool.Open(spool.Options{Dir: o.SpoolDir, MaxBytes: o.SpoolMaxBytes, SegmentBytes: o.SpoolSegmentBytes,
			Metrics: o.Metrics, Log: o.Log})
		if err != nil {
			return nil, err
		}
		if err := w.erasures.Load(o.SpoolDir); err != nil {
			sp.CloseAppend(w.stop)
			sp.Close()
			return nil, err
		}
		w.spool = sp
		if !w.erasures.Empty() {
			// A crash may have come between an erasure and its blanking,
			// or before it was settled: every record of it is in a
			// segment left over, before the active one.
			err := w.erasures.Settle(sp.Active())
			n := 0
			if err == nil {
				n, err = w.blankSpool()
			}
			if err != nil {
				sp.CloseAppend(w.stop)
				sp.Close()
				return nil, err
			}
			if n > 0 {
				o.Log.Info("blanked erased records left in the spool", "records", n)
			}
		}
		w.log = eventlog.NewDisk(sp, eventlog.DiskOptions{
			Pool: w, TailCap: max(2*o.BatchSize, 1024), Stop: w.stop, Metrics: o.Metrics, Log: o.Log,
			Released: func(oldest uint64) { w.erasures.Expire(oldest, true, time.Now()) },
		})
	}
	// Queued, in the log's memory, and in blocks on their way.
	w.free = make(chan *model.Event, o.QueueSize+w.log.Capacity()+2*w.blockRows())
	w.events = newEventsTable(w)
	w.sessions = &sessionsTable{tableMetrics: newTableMetrics(w.opts.Metrics, "sessions"), w: w}
	var db rollup.Columns
	if o.Cluster {
		// The host's own input table, not the Distributed one, which
		// spreads rows over the shards by rand(): an INSERT that fails
		// after one shard stored its part (a shard down) would count that
		// part twice when it is sent again, as the input, a Null table,
		// deduplicates nothing. The rollup is read through its
		// Distributed table, which adds up the shards' rows, so any host
		// may take any row; one INSERT to one host is all or nothing but
		// for a connection lost after the server committed.
		db.Table = "sessions_dims_input_local"
	}
	w.sessionDims = newTable(w, "sessions_dims_input", db.Build, func([]rollup.Row) { db.Release() })
	o.Metrics.NewGauge("glimpse_queue_depth", func() float64 { return float64(w.QueueDepth()) })

	blocks := make(chan block)
	free := make(chan []*model.Event, 1)
	free <- make([]*model.Event, 0, w.blockRows())
	acked := make(chan struct{})
	r := newReader(w, blocks, free, acked)
	f := newFlusher(w, blocks, free, acked)
	w.wg.Add(4)
	go w.appendLoop()
	go func() { defer w.wg.Done(); r.run() }()
	go func() { defer w.wg.Done(); f.run() }()
	go w.runSessions()
	return w, nil
}

// QueueDepth is the number of events waiting in the queue.
func (w *Writer) QueueDepth() int { return len(w.queue) }

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
	if w.spool != nil && w.spool.Full() {
		return ErrSpoolFull
	}
	select {
	case w.queue <- e:
		return nil
	default:
		return ErrQueueFull
	}
}

// Close stops accepting rows, drains the queue and the log and flushes
// what is left under ctx (use a fresh context with a deadline, not a
// cancelled one). It returns how many rows could not be stored: events
// left in memory, and sessions. Events left in a spool are not lost: the
// next Open stores them.
func (w *Writer) Close(ctx context.Context) (lost int64, err error) {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return 0, nil
	}
	w.closed = true
	w.final.Store(&ctx)
	close(w.queue)
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
	w.sessionDims.prepared.CloseAll()
	events := w.log.Abandon() + w.lostQueued.Load()
	w.events.dropped.Add(int(events))
	lost = events + w.sessions.lost.Load() + w.sessionDims.lost.Load()
	if w.spool != nil {
		if left := w.spool.Size(); err != nil && left > 0 {
			w.opts.Log.Warn("rows left in the spool for the next start", "bytes", left, "dir", w.spool.Dir())
		}
		w.spool.Close()
	}
	return lost, err
}

// Degraded says why the writer works but not fully (the spool is full,
// inserts are failing and rows wait to be retried), or "".
func (w *Writer) Degraded() string {
	s := w.spool
	if s == nil {
		return ""
	}
	switch {
	case s.Full():
		return fmt.Sprintf("spool full (%d of %d bytes): new events are refused (reason spool-full) until ClickHouse catches up",
			s.Size(), s.MaxBytes())
	case w.failing.Load():
		return fmt.Sprintf("ClickHouse inserts failing: events wait in the spool (%d bytes) and are retried", s.Size())
	}
	return ""
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

// blockRows is how many rows the reader hands to the flusher at a time:
// one block of the open INSERT (an INSERT still takes up to
// maxStreamRows rows, as one part). Every row of a block is an Event in
// memory, and its columns are built and encoded whole, so the block, not
// the INSERT, sets the memory the flush path holds.
func (w *Writer) blockRows() int { return min(w.opts.BatchSize, 2048) }

// maxStreamRows bounds the rows of one INSERT that the flusher streams:
// below ClickHouse's min_insert_block_size_rows, so that the server writes
// them as one part when the INSERT ends.
func (w *Writer) maxStreamRows() int { return min(10*w.opts.BatchSize, 500_000) }
