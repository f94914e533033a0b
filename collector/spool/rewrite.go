package spool

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"slices"
)

// Blanking records. Erasure must take records' bytes off the disk long
// before their segment is released (an active segment takes 8 MiB of
// traffic to fill), and without moving the records around them: readers,
// the caller's positions (Pos) and Release all count in byte offsets. So a
// record is blanked, not removed: its payload becomes zero bytes of the
// same length under a new CRC. The segment is rewritten whole into a new
// file, which is fsynced and renamed over the old one, and the directory
// is fsynced: a crash leaves the old segment or the new one, never a mix,
// and a leftover temporary file is deleted by Open and RewriteDir.
//
// A blanked record is read back as a record of zero bytes: the payload
// format must tell it apart (collector/eventlog's records start with a
// version byte, never 0). A reader that had the old file open reads the
// old bytes until it closes it; the file's blocks are freed then, without
// being overwritten (as for any deleted file).

const tmpSuffix = ".tmp"

// Seal commits the active segment and starts a new one, so that every
// record appended so far is in a sealed segment, which Rewrite can take.
// An active segment without records is left as it is. Call it from the
// appending goroutine, as Append.
func (s *Spool) Seal() error {
	a := &s.app
	if a.off == int64(len(segmentMagic)) && len(a.buf) == 0 {
		return nil
	}
	if err := s.Commit(); err != nil {
		return err
	}
	return a.create(a.seq + 1)
}

// Rewrite blanks the records of the sealed segment seq for which blank
// reports true (see above) and returns how many it blanked; a segment
// without such a record is left as it is, as is one released meanwhile.
// blank gets each payload, valid during the call. A damaged record ends
// the segment, as it ends a read: the copy leaves out the unreadable rest,
// which no reader would return.
func (s *Spool) Rewrite(seq uint64, blank func(payload []byte) bool) (int, error) {
	s.mu.Lock()
	sealed := seq < s.active || s.done
	s.mu.Unlock()
	if !sealed {
		return 0, fmt.Errorf("spool segment %s is being appended to: Seal it first", segName(seq))
	}
	n, oldSize, newSize, err := rewriteSegment(s.dir, seq, blank, func(tmp string) (bool, error) {
		// Release deletes segments under fileMu, after taking them off
		// the list: a segment still listed here is not deleted before the
		// rename, and a rename never brings back a deleted one.
		s.fileMu.Lock()
		defer s.fileMu.Unlock()
		s.mu.Lock()
		listed := slices.Contains(s.segs, seq)
		s.mu.Unlock()
		if !listed {
			return false, nil
		}
		return true, os.Rename(tmp, s.path(seq))
	})
	if err != nil {
		return 0, err
	}
	if n > 0 {
		s.size.Add(newSize - oldSize)
		s.updateFull()
	}
	return n, nil
}

// RewriteDir is Rewrite for every segment of the spool at dir, which the
// caller has locked (LockDir) and no process appends to: for an erasure
// from the command line. It returns the records blanked.
func RewriteDir(dir string, blank func(payload []byte) bool) (int, error) {
	if err := removeTemps(dir); err != nil {
		return 0, err
	}
	segs, _, err := listSegments(dir)
	if err != nil {
		return 0, err
	}
	total := 0
	for _, seq := range segs {
		n, _, _, err := rewriteSegment(dir, seq, blank, func(tmp string) (bool, error) {
			return true, os.Rename(tmp, segPath(dir, seq))
		})
		if err != nil {
			return total, err
		}
		total += n
	}
	return total, nil
}

// rewriteSegment writes the copy of segment seq with blanked records to a
// temporary file, fsyncs it and hands it to install, which renames it
// over the segment (true) or declines (false, the copy is deleted); then
// it fsyncs the directory. It returns the records blanked and the sizes.
func rewriteSegment(dir string, seq uint64, blank func([]byte) bool, install func(tmp string) (bool, error)) (n int, oldSize, newSize int64, err error) {
	r, err := openSegReader(segPath(dir, seq), seq)
	if errors.Is(err, os.ErrNotExist) {
		return 0, 0, 0, nil // released meanwhile
	}
	if err != nil {
		return 0, 0, 0, fmt.Errorf("cannot read spool segment %s: %w", segName(seq), err)
	}
	defer r.close()
	info, err := r.f.Stat()
	if err != nil {
		return 0, 0, 0, fmt.Errorf("cannot read spool segment %s: %w", segName(seq), err)
	}
	oldSize = info.Size()
	// First pass: is there anything to blank?
	for {
		p, err := r.next(1 << 62)
		if errors.Is(err, errCorrupt) || (err == nil && p == nil) {
			break
		}
		if err != nil {
			return 0, 0, 0, fmt.Errorf("cannot read spool segment %s: %w", segName(seq), err)
		}
		if blank(p) {
			n++
		}
	}
	if n == 0 {
		return 0, oldSize, oldSize, nil
	}
	tmp := segPath(dir, seq) + tmpSuffix
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return 0, 0, 0, fmt.Errorf("cannot rewrite spool segment %s: %w", segName(seq), err)
	}
	done := false
	defer func() {
		if !done {
			f.Close()
			os.Remove(tmp)
		}
	}()
	// Second pass: the copy. blank is asked again: what it drops may only
	// have grown since (erasures are added, not taken back).
	n = 0
	r.close()
	if r, err = openSegReader(segPath(dir, seq), seq); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return 0, 0, 0, nil
		}
		return 0, 0, 0, fmt.Errorf("cannot read spool segment %s: %w", segName(seq), err)
	}
	w := bufio.NewWriterSize(f, 256<<10)
	w.WriteString(segmentMagic)
	var hdr [HeaderLen]byte
	var zeros []byte
	for {
		p, err := r.next(1 << 62)
		if errors.Is(err, errCorrupt) || (err == nil && p == nil) {
			break
		}
		if err != nil {
			return 0, 0, 0, fmt.Errorf("cannot read spool segment %s: %w", segName(seq), err)
		}
		if blank(p) {
			if cap(zeros) < len(p) {
				zeros = make([]byte, len(p))
			}
			p = zeros[:len(p)]
			n++
		}
		binary.LittleEndian.PutUint32(hdr[:], uint32(len(p)))
		binary.LittleEndian.PutUint32(hdr[4:], crc32.Checksum(p, castagnoli))
		w.Write(hdr[:])
		w.Write(p)
		newSize = r.off
	}
	newSize = max(newSize, int64(len(segmentMagic)))
	if err := w.Flush(); err != nil {
		return 0, 0, 0, fmt.Errorf("cannot rewrite spool segment %s: %w", segName(seq), err)
	}
	if err := f.Sync(); err != nil {
		return 0, 0, 0, fmt.Errorf("cannot sync rewritten spool segment %s: %w", segName(seq), err)
	}
	if err := f.Close(); err != nil {
		return 0, 0, 0, fmt.Errorf("cannot rewrite spool segment %s: %w", segName(seq), err)
	}
	done = true
	ok, err := install(tmp)
	if !ok || err != nil {
		os.Remove(tmp)
		if err != nil {
			return 0, 0, 0, fmt.Errorf("cannot replace spool segment %s: %w", segName(seq), err)
		}
		return 0, oldSize, oldSize, nil
	}
	syncDir(dir)
	return n, oldSize, newSize, nil
}

// removeTemps deletes what a rewrite cut short by a crash left in dir.
func removeTemps(dir string) error {
	tmps, err := filepath.Glob(filepath.Join(dir, "*"+segmentSuffix+tmpSuffix))
	if err != nil {
		return err
	}
	for _, t := range tmps {
		if err := os.Remove(t); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("cannot delete an unfinished spool rewrite: %w", err)
		}
	}
	if len(tmps) > 0 {
		syncDir(dir)
	}
	return nil
}
