package sink_test

import (
	"bytes"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/glimpse-analytics/glimpse/collector/session"
	"github.com/glimpse-analytics/glimpse/collector/sink"
	"github.com/glimpse-analytics/glimpse/internal/chtest"
	"github.com/glimpse-analytics/glimpse/internal/model"
)

// segmentsHolding lists the spool segments in dir that hold s.
func segmentsHolding(t *testing.T, dir, s string) []string {
	t.Helper()
	var out []string
	for _, seg := range segments(t, dir) {
		b, err := os.ReadFile(seg)
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte(s)) {
			out = append(out, seg)
		}
	}
	return out
}

// TestEraseBlanksSpoolAndForgetsSessions: a running writer erases a
// person's events held in the spool (the active segment included): their
// bytes leave the spool's files at once, every other event stays and is
// stored later, and the session cache never writes the erased session
// again, nor the events of it that carry no subject id.
func TestEraseBlanksSpoolAndForgetsSessions(t *testing.T) {
	db := chtest.Migrated(t)
	dir := t.TempDir()
	w := openSpooled(t, sink.Options{Conn: db.Conn, SpoolDir: dir, Interval: time.Hour, SessionInterval: 20 * time.Millisecond,
		SpoolSyncInterval: 5 * time.Millisecond})
	c := session.NewCache(session.CacheConfig{})
	w.WriteSessions(c)
	ts := time.Now().UTC().Truncate(time.Second).Add(-time.Minute)
	visit := func(i int, visitor uint64, subject, path string) *model.Event {
		e := fill(w, i, ts)
		e.VisitorID = visitor
		e.SubjectID = append(e.SubjectID, subject...)
		e.Pathname = append(e.Pathname[:0], path...)
		e.SessionID, _ = c.Touch(e.SiteID, visitor, ts, &session.Touch{Pageview: true, Path: path})
		if err := w.Enqueue(e); err != nil {
			t.Fatal(err)
		}
		return e
	}
	// Alice's session: a page before signing in, two after; others.
	s := visit(0, 7, "", "/alice-before-sign-in").SessionID
	visit(1, 7, "subject-alice", "/alice-signed-in")
	visit(2, 7, "subject-alice", "/alice-signed-in")
	for i := 3; i < 10; i++ {
		visit(i, uint64(100+i), "", fmt.Sprintf("/other/%d", i))
	}
	waitFor(t, func() bool { return len(segmentsHolding(t, dir, "/alice-signed-in")) > 0 })
	waitFor(t, func() bool { return count(t, db, "SELECT count() FROM sessions WHERE session_id = ?", s) > 0 })

	n, err := w.Erase(model.Erasure{Site: "example.com", Subject: "subject-alice", Until: time.Now(), Sessions: []uint64{s}})
	if err != nil || n != 3 {
		t.Fatalf("Erase: %d records blanked, %v; want 3", n, err)
	}
	if f := segmentsHolding(t, dir, "/alice"); len(f) > 0 {
		t.Fatalf("segments holding alice's pages after the erasure: %v", f)
	}
	if f := segmentsHolding(t, dir, "/other/9"); len(f) == 0 {
		t.Fatal("the other visitors' events are gone from the spool")
	}
	var pending int
	if err := w.Events("example.com", func(e *model.Event) bool { return true }, func(*model.Event) { pending++ }); err != nil || pending != 7 {
		t.Fatalf("Events: %d pending, %v; want the 7 others", pending, err)
	}
	written := count(t, db, "SELECT count() FROM sessions WHERE session_id = ?", s)
	// Alice goes on browsing: a new session, not the erased one.
	if e := visit(10, 7, "", "/after"); e.SessionID == s {
		t.Fatal("the erased session went on")
	}
	if lost := closeWriter(t, w); lost != 0 {
		t.Fatalf("lost %d", lost)
	}
	if n := count(t, db, "SELECT count() FROM events WHERE pathname LIKE '/alice%'"); n != 0 {
		t.Errorf("%d erased events stored", n)
	}
	if n := count(t, db, "SELECT count() FROM events"); n != 8 {
		t.Errorf("%d events stored, want the 7 others and the one after", n)
	}
	if n := count(t, db, "SELECT count() FROM sessions WHERE session_id = ?", s); n != written {
		t.Errorf("the erased session was written again: %d rows, %d at the erasure", n, written)
	}
}

// TestEraseUnderLoad erases while inserts run over small segments, so
// that the queue at the erasure spans many of them and segments are
// released while the erasure blanks others: no segment holds an erased
// event once Erase returns (blanked, or released after the reader
// dropped it), none is stored afterwards, and no other event is lost or
// stored twice.
func TestEraseUnderLoad(t *testing.T) {
	db := chtest.Migrated(t)
	dir := t.TempDir()
	w := openSpooled(t, sink.Options{Conn: db.Conn, SpoolDir: dir, SpoolSegmentBytes: 32 << 10, BatchSize: 200,
		QueueSize: 5000, Interval: 20 * time.Millisecond, SpoolSyncInterval: 5 * time.Millisecond})
	ts := time.Now().UTC().Truncate(time.Second).Add(-time.Minute)
	const n = 4000
	enqueue := func(from, to int, subject string) {
		for i := from; i < to; i++ {
			for {
				e := fill(w, i, ts)
				e.EventID = fixedID(i)
				if i%10 == 0 {
					e.SubjectID = append(e.SubjectID, subject...)
				}
				if w.Enqueue(e) == nil {
					break
				}
				time.Sleep(time.Millisecond) // the queue is full
			}
		}
	}
	const bobs = n / 2 / 10
	bob := "SELECT count() FROM events WHERE subject_id = 'subject-bob'"
	enqueue(0, n/2, "subject-bob")
	blanked, err := w.Erase(model.Erasure{Site: "example.com", Subject: "subject-bob", Until: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	stored := count(t, db, bob) // no insert that could add one runs now
	t.Logf("of bob's %d events, %d stored before the erasure, %d blanked, the others dropped", bobs, stored, blanked)
	if f := segmentsHolding(t, dir, "subject-bob"); len(f) > 0 {
		t.Errorf("segments holding bob's events after the erasure: %v", f)
	}
	enqueue(n/2, n, "") // more inserts and releases after the erasure
	if lost := closeWriter(t, w); lost != 0 {
		t.Fatalf("lost %d", lost)
	}
	if after := count(t, db, bob); after != stored {
		t.Errorf("%d of bob's events stored after the erasure", after-stored)
	}
	want := n - bobs + stored
	if all := count(t, db, "SELECT count() FROM events"); all != want {
		t.Errorf("%d events stored, want %d", all, want)
	}
	if ids := count(t, db, "SELECT uniqExact(event_id) FROM events"); ids != want {
		t.Errorf("%d event ids stored, want %d", ids, want)
	}
}
