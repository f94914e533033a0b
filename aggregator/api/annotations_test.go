package api_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/glimpse-analytics/glimpse/aggregator"
	"github.com/glimpse-analytics/glimpse/aggregator/api"
	"github.com/glimpse-analytics/glimpse/internal/chtest"
	"github.com/glimpse-analytics/glimpse/internal/storage/notes"
)

func TestAnnotationsEndpoint(t *testing.T) {
	db := chtest.Migrated(t)
	store := notes.New(db.Conn, nil)
	ctx := context.Background()
	for _, a := range [][3]string{
		{"2025-03-01", "", "Launch"}, {"2025-03-20", "14:30", "Newsletter"}, {"2025-04-02", "", "Later"},
	} {
		if _, err := store.CreateAnnotation(ctx, "example.com", a[0], a[1], a[2], "ana@example.com"); err != nil {
			t.Fatal(err)
		}
	}
	gone, err := store.CreateAnnotation(ctx, "example.com", "2025-03-21", "", "Removed", "ana@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if err := store.DeleteAnnotation(ctx, "example.com", gone.ID); err != nil {
		t.Fatal(err)
	}
	now := time.Date(2025, 3, 30, 12, 0, 0, 0, time.UTC)
	a, err := api.New(api.Options{Engine: aggregator.New(aggregator.Options{Conn: db.Conn}), Sites: sites(t), Notes: store,
		Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	c := &client{routes: a.Routes()}

	status, body := c.get(t, "test-key", q(api.PathAnnotations, "period", "30d"))
	if status != 200 {
		t.Fatalf("status %d: %s", status, body)
	}
	var res api.AnnotationsResponse
	if err := json.Unmarshal(body, &res); err != nil {
		t.Fatal(err)
	}
	// 30d up to 2025-03-30: 03-01 to 03-30, without the deleted one.
	if len(res.Results) != 2 || res.Results[0].Text != "Launch" || res.Results[1].Time != "14:30" || res.Results[1].CreatedBy != "ana@example.com" {
		t.Fatalf("results: %s", body)
	}
	status, body = c.get(t, "test-key", q(api.PathAnnotations, "period", "day", "date", "2025-03-20"))
	if status != 200 || json.Unmarshal(body, &res) != nil || len(res.Results) != 1 || res.Results[0].Text != "Newsletter" {
		t.Fatalf("day: %d %s", status, body)
	}
	for _, tt := range []struct {
		key, uri string
		status   int
	}{
		{"", q(api.PathAnnotations, "period", "30d"), 401},
		{"other-key", q(api.PathAnnotations, "period", "30d"), 403},
		{"dpo-key", q(api.PathAnnotations, "period", "30d"), 403},
		{"test-key", q(api.PathAnnotations, "period", "fortnight"), 400},
		{"test-key", "/api/v1/stats/annotations?period=30d", 400},
	} {
		if status, body := c.get(t, tt.key, tt.uri); status != tt.status {
			t.Errorf("%s with %q: %d %s, want %d", tt.uri, tt.key, status, body, tt.status)
		}
	}
}
