package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/glimpse-analytics/glimpse/collector/sink"
	"github.com/glimpse-analytics/glimpse/internal/apptest"
	"github.com/glimpse-analytics/glimpse/internal/chtest"
	"github.com/glimpse-analytics/glimpse/internal/model"
)

// TestPruneCommand seeds rows 30 months old and recent ones; --dry-run
// lists the old partition and changes nothing, prune drops only it.
func TestPruneCommand(t *testing.T) {
	db := chtest.Migrated(t)
	w := sink.New(sink.Options{Conn: db.Conn, Interval: time.Hour})
	for i, ts := range []time.Time{time.Now().AddDate(0, -30, 0), time.Now()} {
		for range 10 * (i + 1) {
			e := w.NewEvent()
			e.SiteID, e.EventID, e.TS, e.Type = "example.com", uuid.New(), ts.UTC(), model.TypePageview
			if err := w.Enqueue(e); err != nil {
				t.Fatal(err)
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := w.Close(ctx); err != nil {
		t.Fatal(err)
	}
	cfg := apptest.WriteConfig(t, apptest.SitesYAML) // retention_months defaults to 25
	old := time.Now().AddDate(0, -30, 0).UTC().Format("200601")
	out, errOut, code := apptest.Run(t, nil, "prune", "--dry-run", "--config", cfg, "--clickhouse", db.DSN)
	if code != 0 || !strings.Contains(out, "would: drop partition "+old+" of events (10 rows)") {
		t.Fatalf("dry run: code %d\n%s\n%s", code, out, errOut)
	}
	count := func() uint64 {
		var n uint64
		if err := db.Conn.QueryRow(ctx, "SELECT count() FROM events").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := count(); n != 30 {
		t.Fatalf("dry run changed the data: %d rows", n)
	}
	out, errOut, code = apptest.Run(t, nil, "prune", "--config", cfg, "--clickhouse", db.DSN)
	if code != 0 || !strings.Contains(out, "done: drop partition "+old+" of events") {
		t.Fatalf("prune: code %d\n%s\n%s", code, out, errOut)
	}
	if n := count(); n != 20 {
		t.Fatalf("%d rows after prune, want the 20 recent ones", n)
	}
	out, _, _ = apptest.Run(t, nil, "prune", "--config", cfg, "--clickhouse", db.DSN)
	if !strings.Contains(out, "nothing past retention") {
		t.Fatalf("second prune: %s", out)
	}
}
