// Package spool is a write-ahead log of records on disk: append bytes and
// get their position, read them back in order from any position, release
// everything before a position once it is kept elsewhere. It knows nothing
// of what the records hold (the writer's events; collector/sink).
//
// Layout: a directory with a LOCK file (flock: one process per spool) and
// segment files named by a 20-digit sequence number, 00000000000000000001.seg.
// A segment is an 8-byte header (segmentMagic) and then framed records:
//
//	u32 little-endian payload length | u32 CRC-32C of the payload | payload
//
// Segments only grow at the end; a segment is deleted once everything in
// it is released. A sealed segment may be rewritten to blank records
// (rewrite.go): every record keeps its position.
//
// Guarantees:
//   - A record is buffered when appended; Sync writes the buffer and asks
//     for an fsync, which runs in its own goroutine, so that a slow disk
//     delays when records become readable, never the appender. Commit
//     writes and fsyncs in line. Records are readable only once fsynced
//     (Committed).
//   - Records are read in append order. A record whose length or CRC does
//     not check ends its segment: the good prefix is read, the rest counted
//     (glimpse_spool_corrupt_bytes_total, _segments_total) and logged. A torn
//     tail after kill -9 is this case.
//   - Segments left by an earlier process sort first and are read first;
//     LeftOver says which they are.
//   - The spool is bounded by MaxBytes: at the cap Full reports true, and
//     the caller refuses new records (it may still append those it took).
package spool

import (
	"errors"
	"fmt"
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
)

const (
	segmentMagic  = "GLSPOOL\x01"
	segmentSuffix = ".seg"
	// HeaderLen is the length of a record's frame header.
	HeaderLen = 8
	// MaxRecordLen bounds one record's payload; a larger length field is
	// corruption.
	MaxRecordLen = 1 << 20
)

// Pos is a place in the spool: a segment and a byte offset in it.
type Pos struct {
	Seq uint64
	Off int64
}

// Before reports whether p comes before q.
func (p Pos) Before(q Pos) bool { return p.Seq < q.Seq || (p.Seq == q.Seq && p.Off < q.Off) }

// Options configure Open.
type Options struct {
	Dir string
	// MaxBytes caps the spool: at the cap Full reports true.
	MaxBytes int64
	// SegmentBytes is the size at which a new segment starts: the unit of
	// deletion once its records are released.
	SegmentBytes int64
	Metrics      *metrics.Set
	Log          *slog.Logger
}

// Spool is one spool directory, open for appending and reading.
type Spool struct {
	dir     string
	maxSize int64
	segSize int64
	log     *slog.Logger
	lock    *os.File

	mu        sync.Mutex
	fileMu    sync.Mutex // held while Release deletes segments and Rewrite replaces one
	segs      []uint64   // existing segments, ascending
	active    uint64     // segment the appender writes
	committed int64      // fsynced length of the active segment
	done      bool       // the appender has closed the active segment for good
	notify    chan struct{}

	leftOver    uint64 // segments up to this one were left by an earlier process
	size        atomic.Int64
	full        atomic.Bool
	lastFullLog atomic.Int64 // unix nanos of the last "spool full" log line
	segGauge    atomic.Int64

	fsyncs       *metrics.Histogram
	corruptBytes *metrics.Counter
	corruptSegs  *metrics.Counter

	app appender
}

// flock takes a spool's lock without waiting.
func flock(f *os.File) error { return syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) }

func segName(seq uint64) string { return fmt.Sprintf("%020d%s", seq, segmentSuffix) }

func segPath(dir string, seq uint64) string { return filepath.Join(dir, segName(seq)) }

func (s *Spool) path(seq uint64) string { return segPath(s.dir, seq) }

// Dir is the spool's directory.
func (s *Spool) Dir() string { return s.dir }

// Open locks o.Dir, creating it if needed, lists the segments an earlier
// process left and starts a new segment after them for appending.
func Open(o Options) (*Spool, error) {
	if o.Metrics == nil {
		o.Metrics = metrics.NewSet()
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(o.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("cannot create spool directory (set --spool-dir): %w", err)
	}
	lock, err := LockDir(o.Dir)
	if err != nil {
		return nil, err
	}
	if err := removeTemps(o.Dir); err != nil {
		lock.Close()
		return nil, err
	}
	segs, size, err := listSegments(o.Dir)
	if err != nil {
		lock.Close()
		return nil, err
	}
	m := o.Metrics
	s := &Spool{
		dir: o.Dir, maxSize: o.MaxBytes, segSize: o.SegmentBytes,
		log: o.Log, lock: lock, segs: segs, notify: make(chan struct{}, 1),
		fsyncs:       m.NewHistogram("glimpse_spool_fsync_seconds"),
		corruptBytes: m.NewCounter("glimpse_spool_corrupt_bytes_total"),
		corruptSegs:  m.NewCounter("glimpse_spool_corrupt_segments_total"),
	}
	if len(segs) > 0 {
		s.leftOver = segs[len(segs)-1]
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
		o.Log.Info("replaying spool left by an earlier process", "dir", o.Dir, "segments", len(segs), "bytes", size)
	}
	s.app.s = s
	if err := s.app.create(s.leftOver + 1); err != nil {
		lock.Close()
		return nil, err
	}
	return s, nil
}

// LockDir takes the lock of the spool in dir without waiting; it fails
// while another process holds it. Closing the file releases it.
func LockDir(dir string) (*os.File, error) {
	lock, err := os.OpenFile(filepath.Join(dir, "LOCK"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("cannot open spool lock: %w", err)
	}
	if err := flock(lock); err != nil {
		lock.Close()
		return nil, fmt.Errorf("spool %s is in use by another glimpse process: %w", dir, err)
	}
	return lock, nil
}

// Close releases the spool's lock. Close the appending side first
// (CloseAppend).
func (s *Spool) Close() { s.lock.Close() }

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

func (s *Spool) updateFull() {
	s.full.Store(s.maxSize > 0 && s.size.Load() >= s.maxSize)
}

// Full reports whether the spool has reached MaxBytes. It logs, at most
// every 10 s, that new records are refused.
func (s *Spool) Full() bool {
	if !s.full.Load() {
		return false
	}
	now := time.Now().UnixNano()
	if last := s.lastFullLog.Load(); now-last >= int64(10*time.Second) && s.lastFullLog.CompareAndSwap(last, now) {
		s.log.Warn("spool full: new events are refused until ClickHouse catches up (raise --spool-max-mb or fix ClickHouse)",
			"bytes", s.size.Load(), "cap", s.maxSize)
	}
	return true
}

// Size is the spool's size in bytes, and MaxBytes its cap.
func (s *Spool) Size() int64 { return s.size.Load() }

// MaxBytes is the spool's cap.
func (s *Spool) MaxBytes() int64 { return s.maxSize }

// LeftOver reports whether the segment seq was left by an earlier process.
func (s *Spool) LeftOver(seq uint64) bool { return seq <= s.leftOver }

// Active is the segment being appended to.
func (s *Spool) Active() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.active
}

// Notify receives a value when there is news for a reader: records
// committed, a new segment, the end.
func (s *Spool) Notify() <-chan struct{} { return s.notify }

// wake tells a waiting reader that there is news.
func (s *Spool) wake() {
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

// Release deletes the segments before p, and p's own segment when whole is
// set (it was read to its end and is sealed). It returns the oldest
// segment left, 0 for none.
func (s *Spool) Release(p Pos, whole bool) (oldest uint64) {
	s.fileMu.Lock()
	defer s.fileMu.Unlock()
	s.mu.Lock()
	var drop []uint64
	keep := s.segs[:0]
	for _, seq := range s.segs {
		if seq < p.Seq || (whole && seq == p.Seq) {
			drop = append(drop, seq)
			continue
		}
		keep = append(keep, seq)
	}
	s.segs = keep
	s.segGauge.Store(int64(len(keep)))
	if len(keep) > 0 {
		oldest = keep[0]
	}
	s.mu.Unlock()
	for _, seq := range drop {
		path := s.path(seq)
		if info, err := os.Stat(path); err == nil {
			s.size.Add(-info.Size())
		}
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			s.log.Error("cannot delete released spool segment", "segment", segName(seq), "err", err)
		}
	}
	if len(drop) > 0 {
		s.updateFull()
	}
	return oldest
}

// Segments returns the segments that exist, ascending, the active one's
// committed length and whether appending has ended: what a reader may
// read of each.
func (s *Spool) Segments() (segs []uint64, active uint64, committed int64, done bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.segs), s.active, s.committed, s.done
}

// state is Segments without the list.
func (s *Spool) state() (active uint64, committed int64, done bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.active, s.committed, s.done
}

func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
}
