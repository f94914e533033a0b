package sink_test

import (
	"bytes"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/glimpse-analytics/glimpse/collector/eventlog"
	"github.com/glimpse-analytics/glimpse/collector/sink"
	"github.com/glimpse-analytics/glimpse/internal/chtest"
	"github.com/glimpse-analytics/glimpse/internal/model"
)

// TestOfflineSpool is glimpse subject export and erase next to a stopped
// server: the subject's spooled events are found without taking the spool
// over, an erasure is refused while a writer holds the spool, and once
// recorded, the events are blanked in the spool's files, neither found
// again nor stored when a writer replays the spool.
func TestOfflineSpool(t *testing.T) {
	dir := t.TempDir()
	ts := time.Now().UTC().Truncate(time.Second)
	spoolEvents(t, dir, 0, 20, ts) // events without a subject id
	// A second writer spools 5 more, of one subject.
	w := openSpooled(t, sink.Options{Conn: deadConn(t), SpoolDir: dir, BatchSize: 100, QueueSize: 100,
		Interval: 10 * time.Millisecond, InsertTimeout: 200 * time.Millisecond})
	for i := 100; i < 105; i++ {
		e := fill(w, i, ts)
		e.EventID = fixedID(i)
		e.SubjectID = append(e.SubjectID, "subject-a"...)
		if err := w.Enqueue(e); err != nil {
			t.Fatal(err)
		}
	}
	erasure := model.Erasure{Site: "example.com", Subject: "subject-a", Until: time.Now()}
	held := eventlog.Offline(dir)
	if _, err := held.Erase(erasure); err == nil || !strings.Contains(err.Error(), "held by a running glimpse serve") {
		t.Errorf("Erase while a writer holds the spool: %v, want a refusal", err)
	}
	closeAbandoning(t, w)

	spool := eventlog.Offline(dir)
	found := func() (n int) {
		t.Helper()
		err := spool.Events("example.com", erasure.OfSubject, func(e *model.Event) {
			if string(e.SubjectID) != "subject-a" || e.SiteID != "example.com" {
				t.Errorf("found another subject's event: %q %q", e.SiteID, e.SubjectID)
			}
			n++
		})
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := found(); n != 5 {
		t.Fatalf("found %d spooled events of the subject, want 5", n)
	}
	if n, err := spool.Erase(erasure); err != nil || n != 5 {
		t.Fatalf("Erase: %d records blanked, %v; want 5", n, err)
	}
	if n := found(); n != 0 {
		t.Fatalf("found %d events after the erasure, want 0", n)
	}
	for _, seg := range segments(t, dir) {
		if b, err := os.ReadFile(seg); err != nil || bytes.Contains(b, []byte("subject-a")) {
			t.Fatalf("%s holds the erased events' bytes (%v)", seg, err)
		}
	}
	// A server that takes the spool over stores the other 20, not these.
	db := chtest.Migrated(t)
	r := openSpooled(t, sink.Options{Conn: db.Conn, SpoolDir: dir, BatchSize: 100, Interval: 20 * time.Millisecond})
	waitFor(t, func() bool { return count(t, db, "SELECT count() FROM events") >= 20 })
	closeWriter(t, r)
	if n := count(t, db, "SELECT count() FROM events"); n != 20 {
		t.Errorf("%d events stored, want the 20 without the subject", n)
	}
	if n := count(t, db, "SELECT count() FROM events WHERE subject_id = 'subject-a'"); n != 0 {
		t.Errorf("%d erased events stored", n)
	}
}
