package spool

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
	"os"
	"time"
)

// Result is what Reader.Next found.
type Result int

const (
	// Record: a record, which ends at the returned position.
	Record Result = iota
	// SegmentEnd: a sealed segment was read to its end, at the returned
	// position: everything in it may be released (Release with whole).
	SegmentEnd
	// CaughtUp: nothing more is readable yet; wait on Notify.
	CaughtUp
	// Retry: the spool could not be read (logged); try again shortly.
	Retry
	// Done: appending has ended and everything was read.
	Done
)

// Reader reads a spool's records in order. It is used by one goroutine.
type Reader struct {
	s         *Spool
	cur       *segReader
	next      uint64 // the first segment to look for when cur is nil
	skip      Pos    // where to start in segment skip.Seq (Seek)
	lastIOErr time.Time
}

// NewReader returns a reader at the first record of the oldest segment.
func (s *Spool) NewReader() *Reader { return &Reader{s: s} }

// Seek moves the reader to p, where a record starts (or a segment ends).
func (r *Reader) Seek(p Pos) {
	r.cur.close()
	r.cur = nil
	r.next, r.skip = p.Seq, p
}

// Close closes the segment the reader has open.
func (r *Reader) Close() { r.cur.close() }

// Memo lets the caller skip reading a record it holds in memory: asked
// whether it has the record that starts at at and ends by limit, it
// returns the record's end and true.
type Memo func(at Pos, limit int64) (end int64, ok bool)

// Next reads the next record and returns its payload, valid until the
// next call, and where it ends; a record the memo had is returned without
// a payload. With another Result there is no record now.
func (r *Reader) Next(memo Memo) (Result, []byte, Pos) {
	s := r.s
	for {
		active, committed, done := s.state()
		if r.cur == nil {
			switch res := r.open(); res {
			case Record:
			case CaughtUp:
				if done {
					return Done, nil, Pos{}
				}
				return CaughtUp, nil, Pos{}
			default:
				return res, nil, Pos{}
			}
		}
		cur := r.cur
		sealed := cur.seq < active || done
		limit := committed
		if sealed {
			limit = 1 << 62
		}
		at := Pos{cur.seq, cur.off}
		if memo != nil && cur.off > 0 {
			if end, ok := memo(at, limit); ok {
				cur.skipTo(end)
				return Record, nil, Pos{cur.seq, end}
			}
		}
		p, err := cur.next(limit)
		if err == nil && p == nil && sealed && len(cur.buf) > 0 {
			err = errCorrupt // a torn record at the end of the file
		}
		switch {
		case errors.Is(err, errCorrupt):
			r.corrupt(sealed, committed)
			if sealed {
				return r.segmentEnd(), nil, Pos{cur.seq, cur.off}
			}
			cur.buf, cur.off = nil, committed // records after the damage cannot be framed
		case err != nil:
			r.logIOError("cannot read spool segment", cur.seq, err)
			return Retry, nil, Pos{}
		case p != nil:
			return Record, p, Pos{cur.seq, cur.off}
		case sealed:
			return r.segmentEnd(), nil, Pos{cur.seq, cur.off}
		default:
			return CaughtUp, nil, Pos{}
		}
	}
}

// open opens the first segment from r.next on; CaughtUp when there is
// none.
func (r *Reader) open() Result {
	segs, _, _, _ := r.s.Segments()
	for _, seq := range segs {
		if seq < r.next {
			continue
		}
		c, err := openSegReader(r.s.path(seq), seq)
		if errors.Is(err, os.ErrNotExist) {
			continue // released meanwhile
		}
		if err != nil {
			r.logIOError("cannot open spool segment", seq, err)
			return Retry
		}
		if r.skip.Seq == seq {
			c.skipTo(r.skip.Off)
		}
		r.skip, r.next, r.cur = Pos{}, seq, c
		return Record
	}
	return CaughtUp
}

// segmentEnd moves past the sealed segment just read.
func (r *Reader) segmentEnd() Result {
	r.next = r.cur.seq + 1
	r.cur.close()
	r.cur = nil
	return SegmentEnd
}

func (r *Reader) logIOError(msg string, seq uint64, err error) {
	if time.Since(r.lastIOErr) > 10*time.Second {
		r.lastIOErr = time.Now()
		r.s.log.Error(msg, "segment", segName(seq), "err", err)
	}
}

// corrupt counts and logs the unreadable rest of the open segment.
func (r *Reader) corrupt(sealed bool, committed int64) {
	c := r.cur
	end := committed
	if sealed {
		if info, err := c.f.Stat(); err == nil {
			end = info.Size()
		}
	}
	lost := max(end-c.off, 0)
	r.s.corruptBytes.Add(int(lost))
	r.s.corruptSegs.Inc()
	r.s.log.Error("spool segment damaged: the good prefix is kept, the rest is lost (a torn tail is what a crash leaves of the records written in its last fsync interval)",
		"segment", segName(c.seq), "good_bytes", c.off, "lost_bytes", lost)
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

// skipTo moves the reader to off, past a record taken from memory.
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
	ok, err := r.fill(HeaderLen, limit)
	if err != nil || !ok {
		return nil, err
	}
	n := binary.LittleEndian.Uint32(r.buf)
	sum := binary.LittleEndian.Uint32(r.buf[4:])
	if n == 0 || n > MaxRecordLen {
		return nil, errCorrupt
	}
	ok, err = r.fill(HeaderLen+int(n), limit)
	if err != nil || !ok {
		return nil, err
	}
	p := r.buf[HeaderLen : HeaderLen+int(n)]
	if crc32.Checksum(p, castagnoli) != sum {
		return nil, errCorrupt
	}
	r.consume(HeaderLen + int(n))
	return p, nil
}

// ReadDir calls fn for every readable record in the spool at dir, oldest
// first, without taking the spool over (a running server may hold it):
// for reading a spool from the command line. A damaged record ends its
// segment quietly; a segment deleted meanwhile holds nothing.
func ReadDir(dir string, fn func(payload []byte)) error {
	segs, _, err := listSegments(dir)
	if err != nil {
		return err
	}
	for _, seq := range segs {
		r, err := openSegReader(segPath(dir, seq), seq)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		for {
			p, err := r.next(1 << 62)
			if err != nil || p == nil {
				break
			}
			fn(p)
		}
		r.close()
	}
	return nil
}

// Scan calls fn for every readable record in the spool, oldest first,
// beside the reader (which it does not move): records appended but not
// yet committed are left out.
func (s *Spool) Scan(fn func(payload []byte)) error {
	segs, active, committed, done := s.Segments()
	for _, seq := range segs {
		limit := int64(1 << 62)
		if seq == active && !done {
			limit = committed
		}
		r, err := openSegReader(s.path(seq), seq)
		if errors.Is(err, os.ErrNotExist) {
			continue // released meanwhile
		}
		if err != nil {
			return err
		}
		for {
			p, err := r.next(limit)
			if err != nil || p == nil {
				break
			}
			fn(p)
		}
		r.close()
	}
	return nil
}

// LastSegment returns the newest segment in the spool at dir, 0 for none.
func LastSegment(dir string) (uint64, error) {
	segs, _, err := listSegments(dir)
	if err != nil || len(segs) == 0 {
		return 0, err
	}
	return segs[len(segs)-1], nil
}
