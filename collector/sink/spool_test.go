package sink_test

import (
	"context"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/VictoriaMetrics/metrics"
	"github.com/google/uuid"

	"github.com/glimpse-analytics/glimpse/collector/sink"
	"github.com/glimpse-analytics/glimpse/internal/chtest"
)

// fixedID gives event i of a test a stable id, so that a test can store
// the same event twice on purpose.
func fixedID(i int) uuid.UUID {
	var id uuid.UUID
	binary.BigEndian.PutUint64(id[8:], uint64(i)+1)
	id[0] = 0x5e
	return id
}

// deadConn is a connection to a port nothing listens on: every insert fails.
func deadConn(t *testing.T) clickhouse.Conn {
	t.Helper()
	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{"127.0.0.1:1"}, DialTimeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func openSpooled(t *testing.T, o sink.Options) *sink.Writer {
	t.Helper()
	w, err := sink.Open(o)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// spoolEvents leaves n events in dir: a writer that cannot reach
// ClickHouse takes them and is closed before they could be inserted.
func spoolEvents(t *testing.T, dir string, from, n int, ts time.Time) {
	t.Helper()
	w := openSpooled(t, sink.Options{Conn: deadConn(t), SpoolDir: dir, BatchSize: 100, QueueSize: n + 10,
		Interval: 10 * time.Millisecond, InsertTimeout: 200 * time.Millisecond})
	for i := from; i < from+n; i++ {
		e := fill(w, i, ts)
		e.EventID = fixedID(i)
		if err := w.Enqueue(e); err != nil {
			t.Fatal(err)
		}
	}
	closeAbandoning(t, w)
}

// closeAbandoning closes a spooled writer that cannot reach ClickHouse:
// its events stay in the spool.
func closeAbandoning(t *testing.T, w *sink.Writer) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	lost, err := w.Close(ctx)
	if err == nil || lost != 0 {
		t.Fatalf("Close with ClickHouse unreachable: lost %d, err %v; want 0 lost and a deadline error", lost, err)
	}
}

func segments(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*.seg"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func metricsText(set *metrics.Set) string {
	var b strings.Builder
	set.WritePrometheus(&b)
	return b.String()
}

func TestSpoolStoresAndDeletesSegments(t *testing.T) {
	db := chtest.Migrated(t)
	dir := t.TempDir()
	set := metrics.NewSet()
	// Small segments: the 3,000 rows span several, and each is deleted
	// once its rows are stored.
	w := openSpooled(t, sink.Options{Conn: db.Conn, SpoolDir: dir, SpoolSegmentBytes: 64 << 10, BatchSize: 500,
		QueueSize: 4000, Interval: 20 * time.Millisecond, Metrics: set})
	const n = 3000
	for i := range n {
		if err := w.Enqueue(fill(w, i, time.Now())); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, func() bool { return count(t, db, "SELECT count() FROM events") == n })
	waitFor(t, func() bool { return len(segments(t, dir)) <= 1 })
	if lost := closeWriter(t, w); lost != 0 {
		t.Fatalf("lost %d", lost)
	}
	if got := count(t, db, "SELECT count() FROM events"); got != n {
		t.Fatalf("%d rows, want %d", got, n)
	}
	if s := segments(t, dir); len(s) != 0 {
		t.Fatalf("segments left after a clean close: %v", s)
	}
	if txt := metricsText(set); !strings.Contains(txt, "glimpse_spool_cap_bytes 1073741824") || !strings.Contains(txt, "glimpse_spool_bytes 0") {
		t.Errorf("spool metrics missing:\n%s", txt)
	}
}

func TestSpoolReplaysWithoutDuplicates(t *testing.T) {
	db := chtest.Migrated(t)
	dir := t.TempDir()
	ts := time.Now().UTC().Truncate(time.Second)
	const n = 1000
	spoolEvents(t, dir, 0, n, ts)
	if len(segments(t, dir)) == 0 {
		t.Fatal("nothing spooled")
	}
	// The first 400 were stored before the crash but their segment was
	// not yet deleted: the replay must not store them again.
	plain := sink.New(sink.Options{Conn: db.Conn, BatchSize: 1000, Interval: time.Hour})
	for i := range 400 {
		e := fill(plain, i, ts)
		e.EventID = fixedID(i)
		if err := plain.Enqueue(e); err != nil {
			t.Fatal(err)
		}
	}
	closeWriter(t, plain)
	set := metrics.NewSet()
	w := openSpooled(t, sink.Options{Conn: db.Conn, SpoolDir: dir, BatchSize: 300, Interval: 20 * time.Millisecond, Metrics: set})
	waitFor(t, func() bool { return count(t, db, "SELECT count() FROM events") >= n })
	closeWriter(t, w)
	if got := count(t, db, "SELECT count() FROM events"); got != n {
		t.Fatalf("%d rows after replay, want %d", got, n)
	}
	if got := count(t, db, "SELECT uniqExact(event_id) FROM events"); got != n {
		t.Fatalf("%d distinct ids, want %d", got, n)
	}
	txt := metricsText(set)
	for _, want := range []string{"glimpse_spool_duplicates_skipped_total 400", "glimpse_spool_replayed_rows_total 1000"} {
		if !strings.Contains(txt, want) {
			t.Errorf("metrics lack %q:\n%s", want, txt)
		}
	}
	if s := segments(t, dir); len(s) != 0 {
		t.Fatalf("segments left: %v", s)
	}
}

// TestSpoolCorruptLastSegment damages the last segment in the middle and
// cuts it short: the records before the damage are replayed, the loss is
// counted.
func TestSpoolCorruptLastSegment(t *testing.T) {
	for _, tt := range []struct {
		name   string
		damage func(t *testing.T, path string, recs []int64) int // returns the good records
	}{
		{"bit flip", func(t *testing.T, path string, recs []int64) int {
			b, _ := os.ReadFile(path)
			b[recs[300]+20] ^= 0x40
			os.WriteFile(path, b, 0o600)
			return 300
		}},
		{"torn tail", func(t *testing.T, path string, recs []int64) int {
			os.Truncate(path, recs[len(recs)-1]+13)
			return len(recs) - 1
		}},
		{"garbage length", func(t *testing.T, path string, recs []int64) int {
			b, _ := os.ReadFile(path)
			binary.LittleEndian.PutUint32(b[recs[10]:], 0xfffffff0)
			os.WriteFile(path, b, 0o600)
			return 10
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			db := chtest.Migrated(t)
			dir := t.TempDir()
			spoolEvents(t, dir, 0, 500, time.Now())
			segs := segments(t, dir)
			last := segs[len(segs)-1]
			good := tt.damage(t, last, recordOffsets(t, last))
			set := metrics.NewSet()
			w := openSpooled(t, sink.Options{Conn: db.Conn, SpoolDir: dir, BatchSize: 1000, Interval: 20 * time.Millisecond, Metrics: set})
			waitFor(t, func() bool { return count(t, db, "SELECT count() FROM events") >= uint64(good) })
			closeWriter(t, w)
			if got := count(t, db, "SELECT count() FROM events"); got != uint64(good) {
				t.Fatalf("%d rows replayed, want the good prefix of %d", got, good)
			}
			if txt := metricsText(set); !strings.Contains(txt, "glimpse_spool_corrupt_segments_total 1") {
				t.Errorf("damage not counted:\n%s", txt)
			}
		})
	}
}

// recordOffsets lists where each record of a segment starts.
func recordOffsets(t *testing.T, path string) []int64 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var offs []int64
	for off := int64(8); off+8 <= int64(len(b)); {
		offs = append(offs, off)
		off += 8 + int64(binary.LittleEndian.Uint32(b[off:]))
	}
	if len(offs) < 400 {
		t.Fatalf("segment holds %d records, want the 500 spooled", len(offs))
	}
	return offs
}

func TestSpoolCapRefusesWithoutBlocking(t *testing.T) {
	set := metrics.NewSet()
	w := openSpooled(t, sink.Options{Conn: deadConn(t), SpoolDir: t.TempDir(), SpoolMaxBytes: 64 << 10, BatchSize: 100,
		QueueSize: 1000, Interval: 10 * time.Millisecond, InsertTimeout: 200 * time.Millisecond, Metrics: set})
	accepted, full := 0, 0
	deadline := time.Now().Add(10 * time.Second)
	for full == 0 && time.Now().Before(deadline) {
		switch err := w.Enqueue(fill(w, accepted, time.Now())); err {
		case nil:
			accepted++
		case sink.ErrSpoolFull:
			full++
		case sink.ErrQueueFull:
			time.Sleep(time.Millisecond)
		default:
			t.Fatal(err)
		}
	}
	if full == 0 {
		t.Fatalf("spool never reported full after %d events", accepted)
	}
	if why := w.Degraded(); !strings.Contains(why, "spool full") {
		t.Errorf("Degraded() = %q", why)
	}
	if txt := metricsText(set); !strings.Contains(txt, "glimpse_spool_full 1") {
		t.Errorf("metrics:\n%s", txt)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	w.Close(ctx)
}
