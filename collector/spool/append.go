package spool

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// appender writes records to the active segment. Append, Sync, Commit and
// CloseAppend are called from one goroutine; the fsyncs Sync asks for run
// in syncLoop.
type appender struct {
	s   *Spool
	f   *os.File
	seq uint64
	off int64  // bytes written to f
	buf []byte // records not yet written

	// The background sync (syncLoop): Sync leaves the newest request in
	// want and signals; syncLoop fsyncs off the append path, so a slow
	// fsync never stops the appender. syncMu is held around every fsync
	// and around changing or closing f, so syncLoop never syncs a closed
	// or replaced file.
	syncMu   sync.Mutex
	wantMu   sync.Mutex
	want     Pos
	signal   chan struct{}
	stopSync chan struct{}
	syncDone chan struct{}
	lastErr  atomic.Int64 // unix nanos of the last logged error
}

// appendBufLimit is how much the appender buffers before writing (without
// fsync) between syncs.
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
	if a.signal == nil {
		a.signal, a.stopSync, a.syncDone = make(chan struct{}, 1), make(chan struct{}), make(chan struct{})
		go a.syncLoop()
	}
	s := a.s
	s.size.Add(int64(len(segmentMagic)))
	s.mu.Lock()
	s.segs = append(s.segs, seq)
	s.active, s.committed = seq, a.off
	s.segGauge.Store(int64(len(s.segs)))
	s.mu.Unlock()
	s.wake()
	return nil
}

// Append frames the payload that encode appends to its argument and
// buffers the record; it returns where the record starts and ends. Once
// the active segment reaches SegmentBytes it is committed and a new one
// started; an error doing so is returned (the record is buffered all the
// same, and the next Append tries again).
func (s *Spool) Append(encode func(dst []byte) []byte) (start, end Pos, err error) {
	a := &s.app
	n := len(a.buf)
	a.buf = append(a.buf, 0, 0, 0, 0, 0, 0, 0, 0) // header, filled below
	a.buf = encode(a.buf)
	payload := a.buf[n+HeaderLen:]
	binary.LittleEndian.PutUint32(a.buf[n:], uint32(len(payload)))
	binary.LittleEndian.PutUint32(a.buf[n+4:], crc32.Checksum(payload, castagnoli))
	s.size.Add(int64(len(a.buf) - n))
	if !s.full.Load() {
		s.updateFull()
	}
	start, end = Pos{a.seq, a.off + int64(n)}, Pos{a.seq, a.off + int64(len(a.buf))}
	if len(a.buf) >= appendBufLimit {
		err = a.write()
	}
	if a.off+int64(len(a.buf)) >= s.segSize {
		// A sealed segment is read to its end, so it is synced here, in
		// line, before the next one starts.
		if err = s.Commit(); err == nil {
			err = a.create(a.seq + 1)
		}
	}
	return start, end, err
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

// Sync writes the buffered records and asks for them to be fsynced in the
// background; they become readable once that is done. It does not wait.
func (s *Spool) Sync() error {
	a := &s.app
	if err := a.write(); err != nil {
		return err
	}
	s.mu.Lock()
	synced := s.active == a.seq && s.committed >= a.off
	s.mu.Unlock()
	if synced {
		return nil // nothing new since the last sync
	}
	a.wantMu.Lock()
	a.want = Pos{a.seq, a.off}
	a.wantMu.Unlock()
	select {
	case a.signal <- struct{}{}:
	default: // a signal is pending: it will see this request
	}
	return nil
}

// syncLoop serves Sync until CloseAppend.
func (a *appender) syncLoop() {
	defer close(a.syncDone)
	for {
		select {
		case <-a.stopSync:
			return
		case <-a.signal:
		}
		a.wantMu.Lock()
		r := a.want
		a.wantMu.Unlock()
		a.syncMu.Lock()
		if a.f == nil || r.Seq != a.seq {
			a.syncMu.Unlock()
			continue // the segment was sealed (and synced) meanwhile
		}
		start := time.Now()
		err := a.f.Sync()
		a.syncMu.Unlock()
		if err != nil {
			a.s.logError(&a.lastErr, fmt.Errorf("cannot sync spool segment %s: %w", segName(r.Seq), err))
			continue
		}
		a.s.fsyncs.UpdateDuration(start)
		a.s.publish(r)
	}
}

// publish makes the records up to r readable, if r is still in the
// active segment and newer than what is.
func (s *Spool) publish(r Pos) {
	s.mu.Lock()
	if s.active == r.Seq && r.Off > s.committed {
		s.committed = r.Off
	}
	s.mu.Unlock()
	s.wake()
}

// Commit writes the buffered records and fsyncs them in line, then makes
// them readable.
func (s *Spool) Commit() error {
	a := &s.app
	s.mu.Lock()
	unchanged := a.off == s.committed && len(a.buf) == 0
	s.mu.Unlock()
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
	s.fsyncs.UpdateDuration(start)
	s.publish(Pos{a.seq, a.off})
	return nil
}

// CloseAppend commits what is buffered, retrying until it succeeds or
// stop is closed (the records not committed then are lost, and logged),
// and closes the active segment for good: a reader reads it to its end.
func (s *Spool) CloseAppend(stop <-chan struct{}) {
	a := &s.app
	for err := s.Commit(); err != nil; err = s.Commit() {
		s.logError(&a.lastErr, err)
		select {
		case <-stop:
			s.log.Error("spool: final commit failed", "err", err)
			goto out
		case <-time.After(100 * time.Millisecond):
		}
	}
out:
	close(a.stopSync)
	<-a.syncDone
	a.syncMu.Lock()
	a.f.Close()
	a.f = nil
	a.syncMu.Unlock()
	s.mu.Lock()
	s.done = true
	s.mu.Unlock()
	s.wake()
}

// LogError logs an append error at most every 10 s.
func (s *Spool) LogError(err error) { s.logError(&s.app.lastErr, err) }

func (s *Spool) logError(last *atomic.Int64, err error) {
	if err == nil {
		return
	}
	prev := last.Load()
	if time.Since(time.Unix(0, prev)) > 10*time.Second && last.CompareAndSwap(prev, time.Now().UnixNano()) {
		s.log.Error("spool write failed; retrying", "err", err)
	}
}
