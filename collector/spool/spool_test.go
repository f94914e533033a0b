package spool

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func open(t *testing.T, dir string, segBytes int64) *Spool {
	t.Helper()
	s, err := Open(Options{Dir: dir, MaxBytes: 1 << 30, SegmentBytes: segBytes})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func appendRecs(t *testing.T, s *Spool, from, n int) []Pos {
	t.Helper()
	var ends []Pos
	for i := from; i < from+n; i++ {
		_, end, err := s.Append(func(dst []byte) []byte { return fmt.Appendf(dst, "record %d", i) })
		if err != nil {
			t.Fatal(err)
		}
		ends = append(ends, end)
	}
	return ends
}

// readAll reads r until it catches up or is done, and returns the records.
func readAll(t *testing.T, r *Reader) (recs []string, last Result) {
	t.Helper()
	for {
		res, p, _ := r.Next(nil)
		switch res {
		case Record:
			recs = append(recs, string(p))
		case SegmentEnd:
		case Retry:
			t.Fatal("the spool could not be read")
		default:
			return recs, res
		}
	}
}

// TestAppendReadRelease: records come back in order once committed, not
// before; segments roll at SegmentBytes; a reader can seek back to a
// record's position; released segments are deleted.
func TestAppendReadRelease(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, 200)
	r := s.NewReader()
	ends := appendRecs(t, s, 0, 30)
	// Segments sealed by the roll are committed; the active one's tail is
	// not readable before Commit.
	got, res := readAll(t, r)
	if res != CaughtUp || len(got) >= 30 {
		t.Fatalf("before Commit: %d records, %v; want fewer than 30 and CaughtUp", len(got), res)
	}
	if err := s.Commit(); err != nil {
		t.Fatal(err)
	}
	rest, _ := readAll(t, r)
	got = append(got, rest...)
	if len(got) != 30 || got[0] != "record 0" || got[29] != "record 29" {
		t.Fatalf("read %d records: %q ... ", len(got), got[:min(3, len(got))])
	}
	segs, _, _, _ := s.Segments()
	if len(segs) < 3 {
		t.Fatalf("%d segments of 200 bytes for 30 records; want a roll", len(segs))
	}
	// Seek back to the end of record 9: the next read is record 10.
	r.Seek(ends[9])
	if res, p, _ := r.Next(nil); res != Record || string(p) != "record 10" {
		t.Fatalf("after Seek: %v %q, want record 10", res, p)
	}
	before := s.Size()
	s.Release(ends[20], false)
	after, _, _, _ := s.Segments()
	if len(after) >= len(segs) || s.Size() >= before || after[0] != ends[20].Seq {
		t.Fatalf("Release: segments %v -> %v, size %d -> %d", segs, after, before, s.Size())
	}
	s.CloseAppend(nil)
	for {
		res, _, _ := r.Next(nil)
		if res == Done {
			break
		}
		if res == CaughtUp {
			t.Fatal("a closed spool read to its end is Done, not CaughtUp")
		}
	}
	s.Close()
}

// TestReopenReadsLeftOversFirst: a new process reads the records an
// earlier one left, marks their segments as left over, and cannot open a
// spool another process holds.
func TestReopenReadsLeftOversFirst(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, 1<<20)
	appendRecs(t, s, 0, 5)
	if _, err := Open(Options{Dir: dir}); err == nil || !strings.Contains(err.Error(), "in use by another glimpse process") {
		t.Fatalf("second Open of a held spool: %v", err)
	}
	s.CloseAppend(nil)
	s.Close()

	s2 := open(t, dir, 1<<20)
	defer s2.Close()
	appendRecs(t, s2, 5, 5)
	if err := s2.Commit(); err != nil {
		t.Fatal(err)
	}
	r := s2.NewReader()
	var got []string
	var left []bool
	for {
		res, p, end := r.Next(nil)
		if res == Record {
			got = append(got, string(p))
			left = append(left, s2.LeftOver(end.Seq))
			continue
		}
		if res != SegmentEnd {
			break
		}
	}
	if len(got) != 10 || got[0] != "record 0" || got[9] != "record 9" {
		t.Fatalf("read %q", got)
	}
	for i, l := range left {
		if l != (i < 5) {
			t.Errorf("record %d: left over %v", i, l)
		}
	}
	var scanned int
	if err := s2.Scan(func([]byte) { scanned++ }); err != nil || scanned != 10 {
		t.Fatalf("Scan: %d records, %v", scanned, err)
	}
	var offline int
	if err := ReadDir(dir, func([]byte) { offline++ }); err != nil || offline != 10 {
		t.Fatalf("ReadDir: %d records, %v", offline, err)
	}
}

// TestTornTail: a record cut short by a crash ends its segment; the
// records before it are read and the loss counted.
func TestTornTail(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, 1<<20)
	appendRecs(t, s, 0, 10)
	s.CloseAppend(nil)
	s.Close()
	segs, _, _ := listSegments(dir)
	path := filepath.Join(dir, segName(segs[0]))
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, info.Size()-3); err != nil {
		t.Fatal(err)
	}
	s2 := open(t, dir, 1<<20)
	defer s2.Close()
	got, _ := readAll(t, s2.NewReader())
	if len(got) != 9 || got[8] != "record 8" {
		t.Fatalf("read %q; want the 9 whole records", got)
	}
	if s2.corruptSegs.Get() != 1 || s2.corruptBytes.Get() == 0 {
		t.Errorf("corruption counted: %d segments, %d bytes", s2.corruptSegs.Get(), s2.corruptBytes.Get())
	}
}

// TestMemoSkipsReads: a record the caller holds is not read from disk.
func TestMemoSkipsReads(t *testing.T) {
	s := open(t, t.TempDir(), 1<<20)
	defer s.Close()
	var starts []Pos
	for i := range 3 {
		start, _, err := s.Append(func(dst []byte) []byte { return fmt.Appendf(dst, "record %d", i) })
		if err != nil {
			t.Fatal(err)
		}
		starts = append(starts, start)
	}
	if err := s.Commit(); err != nil {
		t.Fatal(err)
	}
	r := s.NewReader()
	if res, p, _ := r.Next(nil); res != Record || string(p) != "record 0" {
		t.Fatalf("first: %v %q", res, p)
	}
	_, _, end1 := r.Next(nil) // record 1, from disk
	r.Seek(starts[1])
	asked := 0
	res, p, end := r.Next(func(at Pos, limit int64) (int64, bool) {
		asked++
		if at != starts[1] {
			t.Errorf("memo asked for %v, want %v", at, starts[1])
		}
		return end1.Off, true
	})
	if res != Record || p != nil || end != end1 || asked != 1 {
		t.Fatalf("with a memo: %v %q %v (asked %d); want the record skipped", res, p, end, asked)
	}
	if res, p, _ := r.Next(nil); res != Record || string(p) != "record 2" {
		t.Fatalf("after the skip: %v %q", res, p)
	}
}

// TestFullAtCap: the spool reports Full once it holds MaxBytes, and not
// after the records are released.
func TestFullAtCap(t *testing.T) {
	s, err := Open(Options{Dir: t.TempDir(), MaxBytes: 600, SegmentBytes: 200})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var last Pos
	for i := 0; !s.Full(); i++ {
		if i > 100 {
			t.Fatal("never full")
		}
		last = appendRecs(t, s, i, 1)[0]
	}
	if err := s.Commit(); err != nil {
		t.Fatal(err)
	}
	s.Release(last, false)
	if s.Full() {
		t.Fatalf("still full at %d bytes after the release", s.Size())
	}
}
