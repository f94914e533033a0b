package aggregator_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/glimpse-analytics/glimpse/aggregator"
	"github.com/glimpse-analytics/glimpse/collector/sink"
	"github.com/glimpse-analytics/glimpse/internal/chtest"
	"github.com/glimpse-analytics/glimpse/internal/model"
)

// TestEmailReporting writes email opens and clicks as the email endpoints
// store them (no visitor id; a recipient pseudonym when the sender gave one)
// and checks the email metrics, and that k-anonymity counts recipients:
// a campaign with enough recipients is shown, one with too few is folded.
func TestEmailReporting(t *testing.T) {
	db := chtest.Migrated(t)
	w := sink.New(sink.Options{Conn: db.Conn, BatchSize: 1000, Interval: time.Hour})
	day := seedEnd.Add(-36 * time.Hour)
	add := func(typ int8, campaign, recipient, verdict string) {
		e := w.NewEvent()
		e.SiteID, e.EventID, e.TS, e.Type = testSite, uuid.New(), day, typ
		e.EmailCampaign = append(e.EmailCampaign, campaign...)
		e.EmailRecipient = append(e.EmailRecipient, recipient...)
		e.EmailVerdict, e.EmailReason = verdict, verdict
		if err := w.Enqueue(e); err != nil {
			t.Fatal(err)
		}
	}
	// "launch": 8 recipients open (one twice), 4 of them click; 3 machine opens.
	for i := range 8 {
		add(model.TypeEmailOpen, "launch", fmt.Sprintf("%08x", i), "human")
		if i < 4 {
			add(model.TypeEmailClick, "launch", fmt.Sprintf("%08x", i), "human")
		}
	}
	add(model.TypeEmailOpen, "launch", "00000000", "human")
	for i := range 3 {
		add(model.TypeEmailOpen, "launch", fmt.Sprintf("%08x", 100+i), "machine")
	}
	// "tiny": 2 recipients, under k = 5.
	for i := range 2 {
		add(model.TypeEmailOpen, "tiny", fmt.Sprintf("%08x", 200+i), "human")
	}
	// "anon": 6 opens without pseudonyms, each its own person; 3 clicks.
	for range 6 {
		add(model.TypeEmailOpen, "anon", "", "human")
	}
	for range 3 {
		add(model.TypeEmailClick, "anon", "", "human")
	}
	if lost, err := w.Close(context.Background()); err != nil || lost != 0 {
		t.Fatal(lost, err)
	}
	e := aggregator.New(aggregator.Options{Conn: db.Conn})
	site := testSites(t, "UTC", 5).Site(testSite)
	r := do(t, e, aggregator.KindBreakdown, query(t, aggregator.KindBreakdown, site,
		"property=email:campaign&period=7d&metrics=visitors,email_opens,email_machine_opens,email_unique_opens,email_clicks,click_to_open_rate"))
	b, _ := json.Marshal(r.Results)
	var rows []map[string]any
	if err := json.Unmarshal(b, &rows); err != nil {
		t.Fatal(err)
	}
	got := map[string]map[string]any{}
	for _, row := range rows {
		got[fmt.Sprint(row["campaign"])] = row
	}
	want := map[string]map[string]float64{
		"launch": {"visitors": 11, "email_opens": 9, "email_machine_opens": 3, "email_unique_opens": 8, "email_clicks": 4, "click_to_open_rate": 50},
		"anon":   {"visitors": 9, "email_opens": 6, "email_machine_opens": 0, "email_unique_opens": 0, "email_clicks": 3, "click_to_open_rate": 50},
	}
	for c, w := range want {
		row, ok := got[c]
		if !ok {
			t.Fatalf("campaign %q missing from %s", c, b)
		}
		for m, v := range w {
			if f, _ := row[m].(float64); f != v {
				t.Errorf("%s %s = %v, want %v", c, m, row[m], v)
			}
		}
	}
	if _, ok := got["tiny"]; ok {
		t.Errorf("campaign with 2 recipients shown under k = 5: %s", b)
	}
	if r.Meta.FoldedRows == nil || *r.Meta.FoldedRows != 1 {
		t.Errorf("folded rows = %v, want 1", r.Meta.FoldedRows)
	}
}
