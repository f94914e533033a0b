package sink

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/glimpse-analytics/glimpse/internal/model"
)

// The spool is a write-ahead log of accepted events between the queue and
// ClickHouse (Options.SpoolDir).
//
// Layout: a directory with a LOCK file (flock: one process per spool) and
// segment files named by a 20-digit sequence number, 00000000000000000001.seg.
// A segment is an 8-byte header (segmentMagic) and then framed records
// (record.go). Segments only grow at the end and are never rewritten.
//
// Guarantees:
//   - An event is encoded into the active segment as soon as the appender
//     takes it off the queue. Every SpoolSyncInterval (group commit, default
//     200 ms), or sooner under load (every BatchSize/2 records), the
//     appender writes what it holds to the file and asks for an fsync,
//     which runs in its own goroutine: a slow disk delays when records
//     become readable, never the intake. An event answered 202 more than
//     one interval (plus the time it waited in the queue) before the
//     process dies is in the file; the fsync that follows makes it survive
//     the machine failing too.
//   - Rows are inserted in spool order, and only once their records are
//     fsynced. The reader takes them from the appender's tail in memory
//     when it keeps up (the bytes on disk are then never read back), and
//     reads and decodes them from disk otherwise: after a restart, or when
//     inserts fall behind by more than the tail holds (2×BatchSize events).
//     glimpse_spool_rows_read_total{from="memory"|"disk"} counts both. A
//     segment is deleted only after every row in it was confirmed inserted
//     (Send returned nil).
//   - At start-up the segments left by the previous process are replayed
//     before anything newer: they sort first, and the reader is sequential.
//   - A record whose length or CRC-32C does not check ends the segment: the
//     good prefix is kept and inserted, the rest is counted
//     (glimpse_spool_corrupt_bytes_total, glimpse_spool_corrupt_segments_total)
//     and logged. A torn tail after kill -9 is this case.
//   - Replays are idempotent: rows from segments present at start-up, and
//     rows of an insert that is retried after an error (a failed Send may
//     still have committed), are checked against events.event_id first and
//     the ones already stored are skipped (dedupe.go).
//   - The spool is bounded by SpoolMaxBytes: at the cap Enqueue refuses new
//     events (ErrSpoolFull, answered 503 and counted by the collector);
//     events already accepted are always written, so the cap may be
//     exceeded by at most one queue of events.
//
// Sessions are not spooled: they stay memory-only checkpoints
// (SessionInterval). A crash loses at most one interval of session
// updates; events, which every report counts from, are never lost.
const segmentMagic = "GLSPOOL\x01"

const segmentSuffix = ".seg"

// ErrSpoolFull is what Enqueue reports when the spool has reached its cap.
var ErrSpoolFull = errors.New("spool full")

// pos is a place in the spool: a segment and a byte offset in it.
type pos struct {
	seq uint64
	off int64
}

type spool struct {
	w       *Writer
	dir     string
	maxSize int64
	segSize int64
	every   time.Duration
	log     *slog.Logger
	lock    *os.File

	mu        sync.Mutex
	segs      []uint64 // existing segments, ascending
	active    uint64   // segment the appender writes
	committed int64    // fsynced length of the active segment
	done      bool     // the appender has closed the active segment for good
	notify    chan struct{}
	// tail holds the events of the newest records, from tail[head] on, in
	// spool order, as the appender wrote them: the reader takes a record
	// from here instead of reading and decoding it back from disk when it
	// reaches it (and it is committed). The records are on disk all the
	// same; memory only saves the read. At most tailCap events are held;
	// beyond that (the reader is behind) the tail is dropped and the reader
	// reads from disk until it reaches the newer records kept after that.
	tail    []tailRecord
	head    int
	tailCap int

	// rewindTo is where the reader starts again after a failed insert; it
	// does so whenever rewindGen changes (rewind).
	rewindTo  pos
	rewindGen uint64

	startupLast uint64 // segments up to this one were left by an earlier process
	size        atomic.Int64
	full        atomic.Bool
	lastFullLog atomic.Int64 // unix nanos of the last "spool full" log line

	fsyncs       *metrics.Histogram
	corruptBytes *metrics.Counter
	corruptSegs  *metrics.Counter
	replayed     *metrics.Counter
	dups         *metrics.Counter
	fromMemory   *metrics.Counter
	fromDisk     *metrics.Counter
	segGauge     atomic.Int64
}

// flock takes the spool's lock without waiting.
func flock(f *os.File) error { return syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) }

func segName(seq uint64) string { return fmt.Sprintf("%020d%s", seq, segmentSuffix) }

func (s *spool) path(seq uint64) string { return filepath.Join(s.dir, segName(seq)) }

// openSpool locks dir and lists the segments an earlier process left.
func openSpool(o *Options) (*spool, error) {
	dir := o.SpoolDir
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("cannot create spool directory (set --spool-dir): %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(dir, "LOCK"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("cannot open spool lock: %w", err)
	}
	if err := flock(lock); err != nil {
		lock.Close()
		return nil, fmt.Errorf("spool %s is in use by another glimpse process: %w", dir, err)
	}
	segs, size, err := listSegments(dir)
	if err != nil {
		lock.Close()
		return nil, err
	}
	m := o.Metrics
	s := &spool{
		dir: dir, maxSize: o.SpoolMaxBytes, segSize: o.SpoolSegmentBytes, every: o.SpoolSyncInterval,
		log: o.Log, lock: lock, segs: segs, notify: make(chan struct{}, 1),
		fsyncs:       m.NewHistogram("glimpse_spool_fsync_seconds"),
		corruptBytes: m.NewCounter("glimpse_spool_corrupt_bytes_total"),
		corruptSegs:  m.NewCounter("glimpse_spool_corrupt_segments_total"),
		replayed:     m.NewCounter("glimpse_spool_replayed_rows_total"),
		dups:         m.NewCounter("glimpse_spool_duplicates_skipped_total"),
		fromMemory:   m.NewCounter(`glimpse_spool_rows_read_total{from="memory"}`),
		fromDisk:     m.NewCounter(`glimpse_spool_rows_read_total{from="disk"}`),
		tailCap:      max(2*o.BatchSize, 1024),
	}
	if len(segs) > 0 {
		s.startupLast = segs[len(segs)-1]
	}
	s.size.Store(size)
	s.segGauge.Store(int64(len(segs)))
	s.updateFull()
	m.NewGauge("glimpse_spool_bytes", func() float64 { return float64(s.size.Load()) })
	m.NewGauge("glimpse_spool_cap_bytes", func() float64 { return float64(s.maxSize) })
	m.NewGauge("glimpse_spool_segments", func() float64 { return float64(s.segGauge.Load()) })
	m.NewGauge("glimpse_spool_full", func() float64 {
		if s.full.Load() {
			return 1
		}
		return 0
	})
	if len(segs) > 0 {
		o.Log.Info("replaying spool left by an earlier process", "dir", dir, "segments", len(segs), "bytes", size)
	}
	return s, nil
}

// listSegments returns the segment numbers in dir, ascending, and their
// total size.
func listSegments(dir string) ([]uint64, int64, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, 0, fmt.Errorf("cannot read spool directory: %w", err)
	}
	var segs []uint64
	var size int64
	for _, e := range ents {
		name := e.Name()
		if !strings.HasSuffix(name, segmentSuffix) {
			continue
		}
		seq, err := strconv.ParseUint(strings.TrimSuffix(name, segmentSuffix), 10, 64)
		if err != nil {
			continue
		}
		info, err := e.Info()
		if err != nil {
			return nil, 0, fmt.Errorf("cannot stat spool segment: %w", err)
		}
		segs = append(segs, seq)
		size += info.Size()
	}
	slices.Sort(segs)
	return segs, size, nil
}

func (s *spool) updateFull() {
	full := s.maxSize > 0 && s.size.Load() >= s.maxSize
	s.full.Store(full)
}

// rewind makes the reader start again at p, and returns the generation
// its batches carry from then on.
func (s *spool) rewind(p pos) uint64 {
	s.mu.Lock()
	s.rewindTo = p
	s.rewindGen++
	gen := s.rewindGen
	s.mu.Unlock()
	s.wake()
	return gen
}

// wake tells the reader that there is news (a commit, a new segment, the end).
func (s *spool) wake() {
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

// appender writes records to the active segment and fsyncs it on a
// ticker. It is owned by one goroutine.
type appender struct {
	s   *spool
	f   *os.File
	seq uint64
	off int64  // bytes written to f
	buf []byte // records not yet written

	// The background sync (syncLoop): requestSync leaves the newest
	// request in want and signals; syncLoop fsyncs off the append path,
	// so a slow fsync never stops the appender taking events off the
	// queue. syncMu is held around every fsync and around changing or
	// closing f, so syncLoop never syncs a closed or replaced file.
	syncMu sync.Mutex
	wantMu sync.Mutex
	want   syncRequest
	signal chan struct{}
}

// syncRequest asks for segment seq to be fsynced up to off.
type syncRequest struct {
	seq uint64
	off int64
}

// appendBufLimit is how much the appender buffers before writing (without
// fsync) mid-interval.
const appendBufLimit = 1 << 20

func (a *appender) create(seq uint64) error {
	f, err := os.OpenFile(a.s.path(seq), os.O_CREATE|os.O_EXCL|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("cannot create spool segment: %w", err)
	}
	if _, err := f.WriteString(segmentMagic); err != nil {
		f.Close()
		return fmt.Errorf("cannot write spool segment: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("cannot sync spool segment: %w", err)
	}
	syncDir(a.s.dir)
	a.syncMu.Lock()
	old := a.f
	a.f, a.seq, a.off = f, seq, int64(len(segmentMagic))
	if old != nil {
		old.Close()
	}
	a.syncMu.Unlock()
	a.s.size.Add(int64(len(segmentMagic)))
	a.s.mu.Lock()
	a.s.segs = append(a.s.segs, seq)
	a.s.active, a.s.committed = seq, a.off
	a.s.segGauge.Store(int64(len(a.s.segs)))
	a.s.mu.Unlock()
	a.s.wake()
	return nil
}

func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
}

// add appends e's record and returns where it starts and ends in the
// active segment.
func (a *appender) add(e *model.Event) (start, end int64) {
	n := len(a.buf)
	a.buf = appendRecord(a.buf, e)
	a.s.size.Add(int64(len(a.buf) - n))
	if !a.s.full.Load() {
		a.s.updateFull()
	}
	return a.off + int64(n), a.off + int64(len(a.buf))
}

// tailRecord is an event in the spool's tail and where its record is.
type tailRecord struct {
	e   *model.Event
	at  pos   // where the record starts
	end int64 // where it ends, in the same segment
}

// pushTail hands e, whose record the appender has just added at
// [start, end) of segment seq, to the tail; the spool owns it from then on.
func (s *spool) pushTail(e *model.Event, seq uint64, start, end int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n := len(s.tail); n > s.head {
		last := s.tail[n-1]
		next := (last.at.seq == seq && last.end == start) ||
			(last.at.seq+1 == seq && start == int64(len(segmentMagic)))
		if !next || n-s.head >= s.tailCap {
			s.dropTailLocked() // the reader is behind: it reads these from disk
		}
	}
	if s.head > 0 && s.head >= len(s.tail)/2 {
		n := copy(s.tail, s.tail[s.head:])
		clear(s.tail[n:])
		s.tail, s.head = s.tail[:n], 0
	}
	s.tail = append(s.tail, tailRecord{e, pos{seq, start}, end})
}

// takeTail returns the event whose record starts at p and ends by limit,
// and its end, if the tail holds it; records before p are dropped (the
// reader has passed them).
func (s *spool) takeTail(p pos, limit int64) (*model.Event, int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for s.head < len(s.tail) {
		t := &s.tail[s.head]
		if t.at.seq > p.seq || (t.at.seq == p.seq && t.at.off >= p.off) {
			break
		}
		s.w.Release(t.e)
		*t = tailRecord{}
		s.head++
	}
	if s.head == len(s.tail) {
		s.tail, s.head = s.tail[:0], 0
		return nil, 0
	}
	t := s.tail[s.head]
	if t.at != p || t.end > limit {
		return nil, 0
	}
	s.tail[s.head] = tailRecord{}
	s.head++
	return t.e, t.end
}

// dropTail releases the events in the tail.
func (s *spool) dropTail() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dropTailLocked()
}

func (s *spool) dropTailLocked() {
	for i := s.head; i < len(s.tail); i++ {
		s.w.Release(s.tail[i].e)
	}
	clear(s.tail)
	s.tail, s.head = s.tail[:0], 0
}

// write hands the buffered records to the kernel.
func (a *appender) write() error {
	if len(a.buf) == 0 {
		return nil
	}
	n, err := a.f.Write(a.buf)
	a.off += int64(n)
	if err != nil {
		// Keep what was not written; the next write retries it. A partial
		// record on disk is a torn tail for the reader.
		a.buf = a.buf[:copy(a.buf, a.buf[n:])]
		return fmt.Errorf("cannot write spool segment %s: %w", segName(a.seq), err)
	}
	a.buf = a.buf[:0]
	if cap(a.buf) > 4*appendBufLimit {
		a.buf = nil
	}
	return nil
}

// requestSync writes the buffered records and asks syncLoop to fsync
// them. It does not wait.
func (a *appender) requestSync() error {
	if err := a.write(); err != nil {
		return err
	}
	a.s.mu.Lock()
	synced := a.s.active == a.seq && a.s.committed >= a.off
	a.s.mu.Unlock()
	if synced {
		return nil // nothing new since the last sync
	}
	a.wantMu.Lock()
	a.want = syncRequest{a.seq, a.off}
	a.wantMu.Unlock()
	select {
	case a.signal <- struct{}{}:
	default: // a signal is pending: it will see this request
	}
	return nil
}

// syncLoop serves requestSync until stop is closed.
func (a *appender) syncLoop(stop <-chan struct{}, report func(error)) {
	for {
		select {
		case <-stop:
			return
		case <-a.signal:
		}
		a.wantMu.Lock()
		r := a.want
		a.wantMu.Unlock()
		a.syncMu.Lock()
		if a.f == nil || r.seq != a.seq {
			a.syncMu.Unlock()
			continue // the segment was sealed (and synced) meanwhile
		}
		start := time.Now()
		err := a.f.Sync()
		a.syncMu.Unlock()
		if err != nil {
			report(fmt.Errorf("cannot sync spool segment %s: %w", segName(r.seq), err))
			continue
		}
		a.s.fsyncs.UpdateDuration(start)
		a.s.publish(r)
	}
}

// publish makes r's records readable, if r is still the newest commit of
// the active segment.
func (s *spool) publish(r syncRequest) {
	s.mu.Lock()
	if s.active == r.seq && r.off > s.committed {
		s.committed = r.off
	}
	s.mu.Unlock()
	s.wake()
}

// close closes the active segment for good.
func (a *appender) close() {
	a.syncMu.Lock()
	a.f.Close()
	a.f = nil
	a.syncMu.Unlock()
}

// commit writes and fsyncs, then publishes the new committed length.
func (a *appender) commit() error {
	a.s.mu.Lock()
	unchanged := a.off == a.s.committed && len(a.buf) == 0
	a.s.mu.Unlock()
	if unchanged {
		return nil
	}
	if err := a.write(); err != nil {
		return err
	}
	start := time.Now()
	a.syncMu.Lock()
	err := a.f.Sync()
	a.syncMu.Unlock()
	if err != nil {
		return fmt.Errorf("cannot sync spool segment %s: %w", segName(a.seq), err)
	}
	a.s.fsyncs.UpdateDuration(start)
	a.s.publish(syncRequest{a.seq, a.off})
	return nil
}

// segReader reads the records of one segment up to a limit that may grow
// (the active segment) or not (a sealed one).
type segReader struct {
	f   *os.File
	seq uint64
	off int64  // offset of buf[0]
	buf []byte // bytes read and not yet consumed
	tmp []byte
}

func openSegReader(path string, seq uint64) (*segReader, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	return &segReader{f: f, seq: seq, tmp: make([]byte, 256<<10)}, nil
}

func (r *segReader) close() {
	if r != nil && r.f != nil {
		r.f.Close()
	}
}

// fill makes buf hold at least n bytes, reading no further than limit.
// It reports false when limit comes first.
func (r *segReader) fill(n int, limit int64) (bool, error) {
	for len(r.buf) < n {
		end := r.off + int64(len(r.buf))
		if end >= limit {
			return false, nil
		}
		want := min(int64(len(r.tmp)), limit-end)
		m, err := r.f.ReadAt(r.tmp[:want], end)
		r.buf = append(r.buf, r.tmp[:m]...)
		if m == 0 {
			if err == nil || err == io.EOF {
				return false, nil // the file is shorter than limit: truncated
			}
			return false, err
		}
	}
	return true, nil
}

func (r *segReader) consume(n int) {
	r.off += int64(n)
	r.buf = r.buf[n:]
}

// skipTo moves the reader to off, past a record taken from the tail.
func (r *segReader) skipTo(off int64) {
	if n := off - r.off; n <= int64(len(r.buf)) {
		r.consume(int(n))
		return
	}
	r.buf, r.off = r.buf[:0], off
}

// errCorrupt is a record that does not check: what follows it in the
// segment cannot be trusted.
var errCorrupt = errors.New("corrupt spool record")

// next returns the next record's payload, valid until the next call, or
// nil at limit. The header is checked first.
func (r *segReader) next(limit int64) ([]byte, error) {
	if r.off == 0 {
		ok, err := r.fill(len(segmentMagic), limit)
		if err != nil {
			return nil, err
		}
		if !ok {
			if limit > 0 && limit < int64(len(segmentMagic)) {
				return nil, errCorrupt
			}
			return nil, nil
		}
		if string(r.buf[:len(segmentMagic)]) != segmentMagic {
			return nil, errCorrupt
		}
		r.consume(len(segmentMagic))
	}
	ok, err := r.fill(recordHeaderLen, limit)
	if err != nil || !ok {
		return nil, err
	}
	n := binary.LittleEndian.Uint32(r.buf)
	sum := binary.LittleEndian.Uint32(r.buf[4:])
	if n == 0 || n > maxRecordLen {
		return nil, errCorrupt
	}
	ok, err = r.fill(recordHeaderLen+int(n), limit)
	if err != nil || !ok {
		return nil, err
	}
	p := r.buf[recordHeaderLen : recordHeaderLen+int(n)]
	if crc32.Checksum(p, castagnoli) != sum {
		return nil, errCorrupt
	}
	r.consume(recordHeaderLen + int(n))
	return p, nil
}

// remove deletes the segments before p, and p's own segment when whole is
// set (it was read to its end and is sealed).
func (s *spool) remove(p pos, whole bool) {
	s.mu.Lock()
	var drop []uint64
	keep := s.segs[:0]
	for _, seq := range s.segs {
		if seq < p.seq || (whole && seq == p.seq) {
			drop = append(drop, seq)
			continue
		}
		keep = append(keep, seq)
	}
	s.segs = keep
	s.segGauge.Store(int64(len(keep)))
	var oldest uint64
	if len(keep) > 0 {
		oldest = keep[0]
	}
	s.mu.Unlock()
	defer s.w.erasures.expire(oldest, true, time.Now())
	for _, seq := range drop {
		path := s.path(seq)
		if info, err := os.Stat(path); err == nil {
			s.size.Add(-info.Size())
		}
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			s.log.Error("cannot delete confirmed spool segment", "segment", segName(seq), "err", err)
		}
	}
	if len(drop) > 0 {
		s.updateFull()
	}
}

// logFull logs a refused event at most every 10 s.
func (s *spool) logFull() {
	now := time.Now().UnixNano()
	last := s.lastFullLog.Load()
	if now-last < int64(10*time.Second) || !s.lastFullLog.CompareAndSwap(last, now) {
		return
	}
	s.log.Warn("spool full: new events are refused until ClickHouse catches up (raise --spool-max-mb or fix ClickHouse)",
		"bytes", s.size.Load(), "cap", s.maxSize)
}
