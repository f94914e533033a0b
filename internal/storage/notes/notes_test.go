package notes_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/glimpse-analytics/glimpse/internal/chtest"
	"github.com/glimpse-analytics/glimpse/internal/storage/notes"
)

func optimize(t *testing.T, db *chtest.DB, table string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := db.Conn.Exec(ctx, "OPTIMIZE TABLE "+table+" FINAL"); err != nil {
		t.Fatal(err)
	}
}

func rows(t *testing.T, db *chtest.DB, table string) uint64 {
	t.Helper()
	var n uint64
	if err := db.Conn.QueryRow(context.Background(), "SELECT count() FROM "+table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestSegments(t *testing.T) {
	db := chtest.Migrated(t)
	clock := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	s := notes.New(db.Conn, func() time.Time { return clock })
	ctx := context.Background()

	a, err := s.CreateSegment(ctx, "a.example", "Mobile", "visit:device==Mobile", "ana@example.com")
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.CreateSegment(ctx, "a.example", "from Berlin", "visit:city==2950159", "bo@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateSegment(ctx, "b.example", "Other site", "", "ana@example.com"); err != nil {
		t.Fatal(err)
	}
	if !notes.ValidID(a.ID) || a.ID == b.ID {
		t.Fatalf("ids %q %q", a.ID, b.ID)
	}
	got, err := s.Segments(ctx, "a.example")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Name != "from Berlin" || got[1].Name != "Mobile" || got[1].Filters != "visit:device==Mobile" || got[1].CreatedBy != "ana@example.com" || !got[1].CreatedAt.Equal(clock) {
		t.Fatalf("segments of a.example: %+v", got)
	}

	clock = clock.Add(time.Hour)
	if _, err := s.UpdateSegment(ctx, "a.example", a.ID, "Phones", "visit:device==Mobile;visit:os==iOS"); err != nil {
		t.Fatal(err)
	}
	g, err := s.Segment(ctx, "a.example", a.ID)
	if err != nil {
		t.Fatal(err)
	}
	if g.Name != "Phones" || g.Filters != "visit:device==Mobile;visit:os==iOS" || g.CreatedBy != "ana@example.com" || !g.CreatedAt.Equal(clock.Add(-time.Hour)) || !g.UpdatedAt.Equal(clock) {
		t.Fatalf("edited: %+v", g)
	}
	// Another site's id is not this site's.
	if _, err := s.UpdateSegment(ctx, "b.example", a.ID, "x", ""); !errors.Is(err, notes.ErrNotFound) {
		t.Fatalf("edit across sites: %v", err)
	}

	if err := s.DeleteSegment(ctx, "a.example", a.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteSegment(ctx, "a.example", a.ID); !errors.Is(err, notes.ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}
	if _, err := s.UpdateSegment(ctx, "a.example", a.ID, "back", ""); !errors.Is(err, notes.ErrNotFound) {
		t.Fatalf("edit after delete: %v", err)
	}
	check := func() {
		t.Helper()
		got, err := s.Segments(ctx, "a.example")
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || got[0].ID != b.ID {
			t.Fatalf("after delete: %+v", got)
		}
	}
	check()
	optimize(t, db, notes.SegmentsTable)
	check()
	// The merge kept one row per id: a's is its deleted version.
	if n := rows(t, db, notes.SegmentsTable); n != 3 {
		t.Fatalf("%d rows after OPTIMIZE FINAL, want 3", n)
	}
}

func TestSegmentLimit(t *testing.T) {
	db := chtest.Migrated(t)
	s := notes.New(db.Conn, nil)
	ctx := context.Background()
	var last notes.Segment
	for i := range notes.MaxSegments {
		g, err := s.CreateSegment(ctx, "a.example", "s", "", "ana@example.com")
		if err != nil {
			t.Fatalf("segment %d: %v", i, err)
		}
		last = g
	}
	var le *notes.LimitError
	if _, err := s.CreateSegment(ctx, "a.example", "one too many", "", "ana@example.com"); !errors.As(err, &le) {
		t.Fatalf("segment %d: %v, want a LimitError", notes.MaxSegments+1, err)
	}
	if err := s.DeleteSegment(ctx, "a.example", last.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateSegment(ctx, "a.example", "fits again", "", "ana@example.com"); err != nil {
		t.Fatal(err)
	}
}

func TestAnnotations(t *testing.T) {
	db := chtest.Migrated(t)
	s := notes.New(db.Conn, nil)
	ctx := context.Background()
	launch, err := s.CreateAnnotation(ctx, "a.example", "2026-03-10", "", "Launch", "ana@example.com")
	if err != nil {
		t.Fatal(err)
	}
	mail, err := s.CreateAnnotation(ctx, "a.example", "2026-03-12", "09:30", "Newsletter sent", "bo@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateAnnotation(ctx, "a.example", "2026-04-01", "", "April", "bo@example.com"); err != nil {
		t.Fatal(err)
	}
	got, err := s.Annotations(ctx, "a.example", "2026-03-01", "2026-03-31")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].ID != launch.ID || got[0].Date != "2026-03-10" || got[0].Time != "" ||
		got[1].Text != "Newsletter sent" || got[1].Time != "09:30" || got[1].CreatedBy != "bo@example.com" {
		t.Fatalf("March: %+v", got)
	}
	if _, err := s.UpdateAnnotation(ctx, "a.example", mail.ID, "2026-03-13", "18:05", "Newsletter resent"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteAnnotation(ctx, "a.example", launch.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteAnnotation(ctx, "a.example", launch.ID); !errors.Is(err, notes.ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}
	check := func() {
		t.Helper()
		got, err := s.Annotations(ctx, "a.example", "", "")
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 2 || got[0].ID != mail.ID || got[0].Date != "2026-03-13" || got[0].Time != "18:05" || got[0].Text != "Newsletter resent" || got[1].Text != "April" {
			t.Fatalf("after edit and delete: %+v", got)
		}
	}
	check()
	optimize(t, db, notes.AnnotationsTable)
	check()
	if n := rows(t, db, notes.AnnotationsTable); n != 3 {
		t.Fatalf("%d rows after OPTIMIZE FINAL, want 3", n)
	}
	if other, err := s.Annotations(ctx, "b.example", "", ""); err != nil || len(other) != 0 {
		t.Fatalf("b.example: %v %+v", err, other)
	}
}
