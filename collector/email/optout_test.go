package email_test

import (
	"context"
	"testing"
	"time"

	"github.com/glimpse-analytics/glimpse/collector/email"
	"github.com/glimpse-analytics/glimpse/internal/chtest"
)

// TestOptOutsFollowOtherCollectors: a change made on one collector
// reaches another at its next Load, whichever way it goes, and a reload
// keeps no entry the table no longer has.
func TestOptOutsFollowOtherCollectors(t *testing.T) {
	db := chtest.Migrated(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	here, there := email.NewOptOuts(db.Conn, nil), email.NewOptOuts(db.Conn, nil)
	load := func(o *email.OptOuts) {
		t.Helper()
		if err := o.Load(ctx); err != nil {
			t.Fatal(err)
		}
	}
	load(here)
	load(there)
	if err := here.Set(ctx, "example.com", carol, true, time.Now()); err != nil {
		t.Fatal(err)
	}
	if load(there); !there.Has("example.com", carol) || there.Has("example.com", alice) {
		t.Fatal("the other collector does not see the opt-out after Load")
	}
	// Carol opts back in on a third collector.
	if err := db.Conn.Exec(ctx, "INSERT INTO email_optouts (site_id, recipient, ts, opted_out, seq) SELECT 'example.com', ?, now(), 0, ?",
		carol, uint64(time.Now().UnixNano())); err != nil {
		t.Fatal(err)
	}
	for name, o := range map[string]*email.OptOuts{"here": here, "there": there} {
		if load(o); o.Has("example.com", carol) {
			t.Errorf("%s: carol opted back in on another collector, but Load keeps her opt-out", name)
		}
	}
	// And out again, then in, on the two collectors in turn.
	if err := there.Set(ctx, "example.com", carol, true, time.Now()); err != nil {
		t.Fatal(err)
	}
	if load(here); !here.Has("example.com", carol) {
		t.Error("here: carol's second opt-out, made there, is not seen")
	}
	if err := here.Set(ctx, "example.com", carol, false, time.Now()); err != nil || here.Has("example.com", carol) {
		t.Fatalf("here: opting back in: %v, still opted out %t", err, here.Has("example.com", carol))
	}
	if load(there); there.Has("example.com", carol) {
		t.Error("there: carol's opt-in, made here, is not seen")
	}
	// A fresh collector reads the latest state of each recipient.
	fresh := email.NewOptOuts(db.Conn, nil)
	if err := here.Set(ctx, "example.com", bob, true, time.Now()); err != nil {
		t.Fatal(err)
	}
	if load(fresh); fresh.Has("example.com", carol) || !fresh.Has("example.com", bob) {
		t.Errorf("fresh: carol %t (want false), bob %t (want true)", fresh.Has("example.com", carol), fresh.Has("example.com", bob))
	}
}

// TestOptOutsKeepLocalChangesTheTableLacks: a change made here that a
// reload does not find in the table yet (an insert through a Distributed
// table arrives later) is kept over what the reload read, until the table
// has it or a later change.
func TestOptOutsKeepLocalChangesTheTableLacks(t *testing.T) {
	db := chtest.Migrated(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	here := email.NewOptOuts(db.Conn, nil)
	if err := here.Set(ctx, "example.com", carol, true, time.Now()); err != nil {
		t.Fatal(err)
	}
	// The row vanishes from the table, as if its insert were still on
	// the way.
	if err := db.Conn.Exec(ctx, "ALTER TABLE email_optouts DELETE WHERE 1"); err != nil {
		t.Fatal(err)
	}
	for {
		var n uint64
		if err := db.Conn.QueryRow(ctx, "SELECT count() FROM email_optouts").Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatal("the mutation did not run")
		case <-time.After(50 * time.Millisecond):
		}
	}
	if err := here.Load(ctx); err != nil || !here.Has("example.com", carol) {
		t.Fatalf("Load dropped a change made here that the table does not show yet: %v", err)
	}
	// A later opt-in on another collector wins over it.
	if err := email.NewOptOuts(db.Conn, nil).Set(ctx, "example.com", carol, false, time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := here.Load(ctx); err != nil || here.Has("example.com", carol) {
		t.Fatalf("a later opt-in elsewhere does not win over the change made here: %v", err)
	}
}
