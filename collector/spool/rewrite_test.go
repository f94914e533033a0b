package spool

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// appendMixed appends n records, every third one holding a secret, and
// returns each record's end.
func appendMixed(t *testing.T, s *Spool, n int) []Pos {
	t.Helper()
	var ends []Pos
	for i := range n {
		_, end, err := s.Append(func(dst []byte) []byte {
			if i%3 == 0 {
				return fmt.Appendf(dst, "record %d secret-%d", i, i)
			}
			return fmt.Appendf(dst, "record %d", i)
		})
		if err != nil {
			t.Fatal(err)
		}
		ends = append(ends, end)
	}
	return ends
}

func isSecret(p []byte) bool { return bytes.Contains(p, []byte("secret")) }

// filesHolding lists the files in dir that hold s.
func filesHolding(t *testing.T, dir, s string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte(s)) {
			out = append(out, e.Name())
		}
	}
	return out
}

// TestRewriteBlanksRecords: after Seal and Rewrite, no file of the spool
// holds a blanked record's bytes, every other record is read back at the
// position it had, a reader in the middle of a segment goes on, the size
// is unchanged, and the active segment is refused until sealed.
func TestRewriteBlanksRecords(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, 400)
	defer s.Close()
	ends := appendMixed(t, s, 40)
	if err := s.Commit(); err != nil {
		t.Fatal(err)
	}
	// A reader half way through, with the file of its segment open.
	mid := s.NewReader()
	defer mid.Close()
	for range 20 {
		if res, _, _ := mid.Next(nil); res == SegmentEnd {
			mid.Next(nil)
		}
	}
	_, live, _, _ := s.Segments()
	if _, err := s.Rewrite(live, isSecret); err == nil {
		t.Fatal("Rewrite of the active segment: no error")
	}
	if err := s.Seal(); err != nil {
		t.Fatal(err)
	}
	size := s.Size()
	segs, active, _, _ := s.Segments()
	blanked := 0
	for _, seq := range segs {
		if seq == active {
			continue
		}
		n, err := s.Rewrite(seq, isSecret)
		if err != nil {
			t.Fatal(err)
		}
		blanked += n
	}
	if blanked != 14 {
		t.Errorf("blanked %d records, want 14", blanked)
	}
	if f := filesHolding(t, dir, "secret"); len(f) > 0 {
		t.Fatalf("files still holding a blanked record: %v", f)
	}
	if s.Size() != size {
		t.Errorf("size %d after the rewrite, %d before", s.Size(), size)
	}

	// From the start: the same records at the same positions, blanked
	// ones as zeros.
	r := s.NewReader()
	defer r.Close()
	i := 0
	for {
		res, p, end := r.Next(nil)
		if res == SegmentEnd {
			continue
		}
		if res != Record {
			break
		}
		if end != ends[i] {
			t.Fatalf("record %d ends at %v, was %v", i, end, ends[i])
		}
		if i%3 == 0 {
			if len(bytes.Trim(p, "\x00")) != 0 {
				t.Errorf("record %d not blanked: %q", i, p)
			}
		} else if want := fmt.Sprintf("record %d", i); string(p) != want {
			t.Errorf("record %d: %q", i, p)
		}
		i++
	}
	if i != 40 {
		t.Fatalf("read %d records, want 40", i)
	}
	// Seek to a position taken before the rewrite.
	r.Seek(ends[9])
	if res, p, _ := r.Next(nil); res != Record || string(p) != "record 10" {
		t.Fatalf("after Seek: %v %q", res, p)
	}
	// The reader in the middle goes on where it was.
	for {
		res, p, end := mid.Next(nil)
		if res == SegmentEnd {
			continue
		}
		if res != Record {
			break
		}
		for i = 0; ends[i] != end; i++ {
		}
		if i%3 != 0 && string(p) != fmt.Sprintf("record %d", i) {
			t.Errorf("middle reader, record %d: %q", i, p)
		}
	}
	if i != 39 {
		t.Errorf("middle reader stopped after record %d", i)
	}
}

// TestRewriteAfterRelease: a segment released while it is rewritten is
// not brought back.
func TestRewriteAfterRelease(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, 1<<20)
	defer s.Close()
	ends := appendMixed(t, s, 6)
	if err := s.Seal(); err != nil {
		t.Fatal(err)
	}
	seq := ends[0].Seq
	calls := 0
	n, err := s.Rewrite(seq, func(p []byte) bool {
		if calls++; calls == 7 {
			// The copy is under way (the first pass asked about all 6
			// records): the segment is stored and released meanwhile.
			s.Release(ends[5], true)
		}
		return isSecret(p)
	})
	if err != nil || n != 0 {
		t.Fatalf("Rewrite of a released segment: %d, %v", n, err)
	}
	if _, err := os.Stat(filepath.Join(dir, segName(seq))); !os.IsNotExist(err) {
		t.Fatalf("released segment back: %v", err)
	}
	if m, _ := filepath.Glob(filepath.Join(dir, "*"+tmpSuffix)); len(m) > 0 {
		t.Fatalf("temporary files left: %v", m)
	}
}

// TestRewriteCrash: what a crash during a rewrite leaves, a temporary
// copy beside the segment, is deleted on the next Open and by RewriteDir
// (it may hold bytes of records kept); the segment itself is whole, and
// RewriteDir blanks it offline.
func TestRewriteCrash(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, 1<<20)
	appendMixed(t, s, 6)
	s.CloseAppend(nil)
	s.Close()
	segs, _, _ := listSegments(dir)
	seg := filepath.Join(dir, segName(segs[0]))
	b, err := os.ReadFile(seg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(seg+tmpSuffix, b[:len(b)/2], 0o600); err != nil { // cut short
		t.Fatal(err)
	}

	s2 := open(t, dir, 1<<20)
	if m, _ := filepath.Glob(filepath.Join(dir, "*"+tmpSuffix)); len(m) > 0 {
		t.Fatalf("Open left %v", m)
	}
	if got, _ := readAll(t, s2.NewReader()); len(got) != 6 {
		t.Fatalf("read %d records after the crash, want 6", len(got))
	}
	s2.CloseAppend(nil)
	s2.Close()

	if err := os.WriteFile(seg+tmpSuffix, b, 0o600); err != nil {
		t.Fatal(err)
	}
	lock, err := LockDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	n, err := RewriteDir(dir, isSecret)
	if err != nil || n != 2 {
		t.Fatalf("RewriteDir: %d, %v; want 2 blanked", n, err)
	}
	if f := filesHolding(t, dir, "secret"); len(f) > 0 {
		t.Fatalf("files still holding a blanked record: %v", f)
	}
	var kept []string
	if err := ReadDir(dir, func(p []byte) {
		if len(bytes.Trim(p, "\x00")) > 0 {
			kept = append(kept, string(p))
		}
	}); err != nil {
		t.Fatal(err)
	}
	if strings.Join(kept, ",") != "record 1,record 2,record 4,record 5" {
		t.Fatalf("records kept: %q", kept)
	}
}
