package sink_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/VictoriaMetrics/metrics"

	"github.com/glimpse-analytics/glimpse/collector/sink"
	"github.com/glimpse-analytics/glimpse/internal/apptest"
	"github.com/glimpse-analytics/glimpse/internal/chconn"
	"github.com/glimpse-analytics/glimpse/internal/chtest"
)

// countStored returns the events table's rows and distinct event ids.
func countStored(t *testing.T, db *chtest.DB) (rows, ids uint64) {
	t.Helper()
	err := db.Conn.QueryRow(context.Background(), "SELECT count(), uniqExact(event_id) FROM events").Scan(&rows, &ids)
	if err != nil {
		t.Fatal(err)
	}
	return rows, ids
}

func waitStored(t *testing.T, db *chtest.DB, want uint64) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		if rows, _ := countStored(t, db); rows >= want {
			return
		}
		if time.Now().After(deadline) {
			rows, _ := countStored(t, db)
			t.Fatalf("%d rows stored after 60 s, want %d", rows, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestSpoolStreamsBlocksIntoFewInserts checks that a backlog goes to
// ClickHouse as one INSERT of several blocks, not one INSERT per block, and
// that each row is stored once: with full batches of a small BatchSize,
// and with the default BatchSize, whose rows the reader hands over in
// blocks smaller than a batch.
func TestSpoolStreamsBlocksIntoFewInserts(t *testing.T) {
	for _, tt := range []struct{ batch, n int }{
		{100, 500},   // 5 full batches, fewer rows than an INSERT may hold
		{0, 5000},    // the default 10,000: blocks of 2,048 rows
		{3000, 6000}, // batches of a block of 2,048 and the rest
	} {
		t.Run(fmt.Sprintf("batch %d, %d rows", tt.batch, tt.n), func(t *testing.T) {
			db := chtest.Migrated(t)
			set := metrics.NewSet()
			// An INSERT open for up to Interval must not count that time
			// against InsertTimeout. InsertTimeout leaves a busy machine
			// room for the INSERT itself: at 300 ms, under a load of 8 on
			// two cores, it timed out and the rows went in by a retry.
			w := openSpooled(t, sink.Options{Conn: db.Conn, SpoolDir: t.TempDir(), BatchSize: tt.batch, QueueSize: tt.n,
				Interval: 4 * time.Second, InsertTimeout: 2 * time.Second, SpoolSyncInterval: 5 * time.Millisecond, Metrics: set})
			ts := time.Now().UTC().Truncate(time.Second)
			for i := range tt.n {
				if err := w.Enqueue(fill(w, i, ts)); err != nil {
					t.Fatal(err)
				}
			}
			waitStored(t, db, uint64(tt.n))
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if lost, err := w.Close(ctx); lost != 0 || err != nil {
				t.Fatalf("Close: lost %d, %v", lost, err)
			}
			if rows, ids := countStored(t, db); rows != uint64(tt.n) || ids != uint64(tt.n) {
				t.Fatalf("%d rows, %d distinct ids; want %d of each", rows, ids, tt.n)
			}
			if inserts := apptest.SetMetric(t, set, `glimpse_flush_rows_count{table="events"}`); inserts != 1 {
				t.Fatalf("%d rows took %.0f INSERTs; want 1", tt.n, inserts)
			}
		})
	}
}

// cutProxy forwards TCP connections to a ClickHouse server and can cut
// them all at once, as a network fault or a server restart would. With
// delay, each chunk the server sends waits that long, as if the server
// were slow to answer.
type cutProxy struct {
	ln     net.Listener
	target string
	delay  time.Duration
	mu     sync.Mutex
	conns  []net.Conn
}

func newCutProxy(t *testing.T, target string, delay time.Duration) *cutProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln, target: target, delay: delay}
	go p.serve()
	t.Cleanup(func() { ln.Close(); p.cut() })
	return p
}

func (p *cutProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, s)
		p.mu.Unlock()
		go func() { _, _ = io.Copy(s, c); s.Close() }()
		go func() { _, _ = io.Copy(c, delayed{s, p.delay}); c.Close() }()
	}
}

// proxied returns a connection to db through a new cutProxy.
func proxied(t *testing.T, db *chtest.DB, delay time.Duration) (*cutProxy, driver.Conn) {
	t.Helper()
	proxy := newCutProxy(t, db.Addr, delay)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := chconn.Open(ctx, "clickhouse://"+proxy.ln.Addr().String()+"/"+db.Database)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return proxy, conn
}

// delayed is a reader whose every read returns d late.
type delayed struct {
	r io.Reader
	d time.Duration
}

func (r delayed) Read(b []byte) (int, error) {
	n, err := r.r.Read(b)
	time.Sleep(r.d)
	return n, err
}

// cut closes every connection made so far.
func (p *cutProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// TestSpoolRewindsAfterFailedStream cuts the connection to ClickHouse again
// and again while events stream in, so that INSERTs fail with some of
// their blocks sent. Each failed INSERT is dropped and its rows are read
// again and checked by event id (the server may have kept blocks of it):
// every event is stored exactly once, with a spool and without.
func TestSpoolRewindsAfterFailedStream(t *testing.T) {
	for _, mode := range []string{"spool", "memory"} {
		t.Run(mode, func(t *testing.T) { testRewindsAfterFailedStream(t, mode == "spool") })
	}
}

// testRewindsAfterFailedStream reads the rows again from the spool, or
// without one from memory, which holds them until they are stored.
func testRewindsAfterFailedStream(t *testing.T, spooled bool) {
	db := chtest.Migrated(t)
	proxy, conn := proxied(t, db, 0)
	set := metrics.NewSet()
	const batch, n = 50, 6000
	o := sink.Options{Conn: conn, BatchSize: batch, QueueSize: n,
		Interval: 400 * time.Millisecond, SpoolSyncInterval: 5 * time.Millisecond, MaxBackoff: 50 * time.Millisecond,
		Metrics: set}
	if spooled {
		o.SpoolDir = t.TempDir()
	}
	w := openSpooled(t, o)
	ts := time.Now().UTC().Truncate(time.Second)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range n {
			if err := w.Enqueue(fill(w, i, ts)); err != nil {
				t.Error(err)
				return
			}
			if i%20 == 0 {
				time.Sleep(5 * time.Millisecond) // about 2 s of steady load
			}
		}
	}()
	errorsMetric := `glimpse_insert_errors_total{table="events"}`
	cuts := 0
	for waiting := true; waiting; cuts++ {
		select {
		case <-done:
			waiting = false
		case <-time.After(100 * time.Millisecond):
		}
		proxy.cut()
	}
	<-done
	if apptest.SetMetric(t, set, errorsMetric) == 0 {
		t.Fatalf("%d cuts and not one insert failed: the test proves nothing", cuts)
	}
	waitStored(t, db, n)
	cctx, ccancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer ccancel()
	if lost, err := w.Close(cctx); lost != 0 || err != nil {
		t.Fatalf("Close: lost %d, %v", lost, err)
	}
	rows, ids := countStored(t, db)
	t.Logf("%d cuts, %.0f failed inserts, %.0f rows read again from disk, %.0f INSERTs",
		cuts, apptest.SetMetric(t, set, errorsMetric), apptest.SetMetric(t, set, `glimpse_spool_rows_read_total{from="disk"}`),
		apptest.SetMetric(t, set, `glimpse_flush_rows_count{table="events"}`))
	if rows != n || ids != n {
		t.Fatalf("%d rows, %d distinct ids; want %d of each", rows, ids, n)
	}
}

// TestSpoolStreamsThroughSlowInserts has ClickHouse answer each time later
// than the flush interval, while a backlog waits: the reader, held up
// meanwhile, hands over blocks of rows read long ago, and they still go in
// a few INSERTs, not one each.
func TestSpoolStreamsThroughSlowInserts(t *testing.T) {
	db := chtest.Migrated(t)
	const interval = 300 * time.Millisecond
	_, conn := proxied(t, db, 2*interval)
	set := metrics.NewSet()
	const n = 20_000 // the default BatchSize: two batches, ten blocks
	w := openSpooled(t, sink.Options{Conn: conn, SpoolDir: t.TempDir(), QueueSize: n,
		Interval: interval, SpoolSyncInterval: 5 * time.Millisecond, Metrics: set})
	ts := time.Now().UTC().Truncate(time.Second)
	start := time.Now()
	for i := range n {
		if err := w.Enqueue(fill(w, i, ts)); err != nil {
			t.Fatal(err)
		}
	}
	// While the backlog is still being written (long on a loaded machine
	// under -race), the writer rightly sends what it has each interval;
	// each such INSERT is held at least 2*interval by the proxy, so at
	// most one per 2*interval of writing is not the backlog's.
	early := int(time.Since(start) / (2 * interval))
	waitStored(t, db, n)
	cctx, ccancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer ccancel()
	if lost, err := w.Close(cctx); lost != 0 || err != nil {
		t.Fatalf("Close: lost %d, %v", lost, err)
	}
	if rows, ids := countStored(t, db); rows != n || ids != n {
		t.Fatalf("%d rows, %d distinct ids; want %d of each", rows, ids, n)
	}
	inserts := apptest.SetMetric(t, set, `glimpse_flush_rows_count{table="events"}`)
	t.Logf("%d rows in %.0f INSERTs (%d may have started while they were written)", n, inserts, early)
	if inserts > float64(4+early) {
		t.Fatalf("%d rows took %.0f INSERTs; want at most %d", n, inserts, 4+early)
	}
}
