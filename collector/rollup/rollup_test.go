package rollup

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/glimpse-analytics/glimpse/internal/model"
)

// TestSessionDimsModel feeds Sums random session histories (a
// first row, then updates) cut into flushes at random points, and checks
// what its rows add up to against the 16-row expansion of every session row
// that 0004's view made: per site, hour, dimension and value, the same
// sign-weighted sums and the same visitors. Sessions keep their start and
// attribution, except a few whose attribution changes (which the cache
// never does), so that that path is summed as the view would too.
func TestSessionDimsModel(t *testing.T) {
	for seed := range uint64(20) {
		t.Run(fmt.Sprint("seed ", seed), func(t *testing.T) { testSessionDimsModel(t, seed) })
	}
}

type modelKey struct {
	site  string
	hour  int64
	dim   string
	value string
}

type modelAgg struct {
	sums     dimSums
	visitors map[uint64]bool
}

func testSessionDimsModel(t *testing.T, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 42))
	attrs := []*model.Attrs{
		nil,
		{Source: "Google", Channel: "search", Referrer: "www.google.com/", Country: "DE", City: "Berlin", Browser: "Firefox"},
		{UTMSource: "news", UTMMedium: "email", UTMCampaign: "nov", UTMContent: "a", UTMTerm: "b", Country: "FR"},
		{Source: "Bing", Region: "US-CA", OS: "macOS", Device: "Desktop", Screen: "1440x900", ConnectionType: "wifi"},
	}
	// Starts across hours, before and after 1970 and on quarter hour edges.
	base := time.Date(2026, 3, 29, 0, 44, 59, 0, time.UTC).Unix()
	starts := []int64{base, base + 1, base + 15*60, base + 3600 - 1, -3600*5 - 1, -900}

	want := map[modelKey]*modelAgg{}
	got := map[modelKey]*modelAgg{}
	at := func(m map[modelKey]*modelAgg, k modelKey) *modelAgg {
		a := m[k]
		if a == nil {
			a = &modelAgg{visitors: map[uint64]bool{}}
			m[k] = a
		}
		return a
	}
	hourOf := func(u int64) int64 { return u - ((u%3600)+3600)%3600 }
	// view is 0004's view: every row to 16.
	view := func(s *model.Session, sign int64) {
		a := s.Attrs
		if a == nil {
			a = &noAttrs
		}
		for _, d := range model.AttrDims {
			m := at(want, modelKey{s.Site, hourOf(s.Start.Unix()), d.Name, d.Value(a)})
			m.sums.addSession(s, sign)
			if sign > 0 {
				m.visitors[s.VisitorID] = true
			}
		}
	}
	var d Sums
	flush := func() {
		for _, r := range d.Rows() {
			m := at(got, modelKey{r.key.site, hourOf(r.key.quarter), model.AttrDims[r.key.dim].Name, r.key.value})
			m.sums.add(&r.sums)
			for _, v := range r.visitors {
				m.visitors[v] = true
			}
		}
		d.Reset()
	}

	type live struct {
		s       model.Session
		written bool
	}
	var sessions []*live
	for i := range 200 {
		sessions = append(sessions, &live{s: model.Session{
			ID: uint64(i + 1), VisitorID: uint64(1000 + i%150), Site: []string{"a.example", "b.example"}[rng.IntN(2)],
			Start: time.Unix(starts[rng.IntN(len(starts))], 0), Attrs: attrs[rng.IntN(len(attrs))],
		}})
	}
	for range 3000 {
		l := sessions[rng.IntN(len(sessions))]
		prev, cur := l.s, l.s
		cur.Version++
		cur.Pageviews += uint32(rng.IntN(2))
		cur.Events += uint32(rng.IntN(3))
		cur.DurationSec += uint32(rng.IntN(100))
		cur.Bounce = cur.Pageviews+cur.Events < 2
		if l.written && rng.IntN(50) == 0 {
			cur.Attrs = attrs[rng.IntN(len(attrs))]
		}
		if l.written {
			view(&prev, -1)
		}
		view(&cur, 1)
		d.Add(&prev, &cur, l.written)
		l.s, l.written = cur, true
		if rng.IntN(100) == 0 {
			flush()
		}
	}
	flush()

	if len(want) < 50 {
		t.Fatalf("model: %d groups, want more", len(want))
	}
	for k, w := range want {
		if g := got[k]; g == nil || g.sums != w.sums || !maps.Equal(g.visitors, w.visitors) {
			t.Fatalf("%+v: writer %+v, view %+v", k, g, w)
		}
	}
	for k := range got {
		if want[k] == nil {
			t.Fatalf("%+v: writer has a group the view does not", k)
		}
	}
}
