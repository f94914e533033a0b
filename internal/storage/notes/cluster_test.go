package notes_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/glimpse-analytics/glimpse/internal/chtest"
	"github.com/glimpse-analytics/glimpse/internal/storage/notes"
)

// TestNotesOnCluster: on a cluster a segment or an annotation saved is
// listed at once, through the Distributed tables, by the host it was
// saved through and by a host of the other shard; edits and deletes too.
func TestNotesOnCluster(t *testing.T) {
	cl := chtest.MigratedCluster(t)
	ctx := context.Background()
	w := notes.New(cl.Conn, nil).OnCluster(cl.Name)
	r := notes.New(cl.Conns[len(cl.Conns)-1], nil).OnCluster(cl.Name)
	const rounds = 12
	misses := 0
	start := time.Now()
	for i := range rounds {
		site := fmt.Sprintf("s%d.example", i) // sharded by site: both shards
		g, err := w.CreateSegment(ctx, site, "Mobile", "visit:device==Mobile", "ana@example.com")
		if err != nil {
			t.Fatal(err)
		}
		a, err := w.CreateAnnotation(ctx, site, "2026-05-01", "", "launch", "ana@example.com")
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range []*notes.Store{w, r} {
			if got, err := s.Segments(ctx, site); err != nil || len(got) != 1 || got[0].ID != g.ID {
				t.Errorf("%s: segments right after the save: %+v, %v", site, got, err)
				misses++
			}
			if got, err := s.Annotations(ctx, site, "2026-05-01", "2026-05-01"); err != nil || len(got) != 1 || got[0].ID != a.ID {
				t.Errorf("%s: annotations right after the save: %+v, %v", site, got, err)
				misses++
			}
		}
		if _, err := w.UpdateSegment(ctx, site, g.ID, "Phones", "visit:device==Mobile"); err != nil {
			t.Fatal(err)
		}
		if got, err := r.Segment(ctx, site, g.ID); err != nil || got.Name != "Phones" {
			t.Errorf("%s: segment right after the edit: %+v, %v", site, got, err)
			misses++
		}
		if err := w.DeleteSegment(ctx, site, g.ID); err != nil {
			t.Fatal(err)
		}
		if got, err := r.Segments(ctx, site); err != nil || len(got) != 0 {
			t.Errorf("%s: segments right after the delete: %+v, %v", site, got, err)
			misses++
		}
	}
	t.Logf("%d rounds of save, list, edit, delete: %d misses, in %v", rounds, misses, time.Since(start).Round(time.Millisecond))
}
