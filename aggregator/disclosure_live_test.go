package aggregator_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/glimpse-analytics/glimpse/aggregator"
	"github.com/glimpse-analytics/glimpse/collector/sink"
	"github.com/glimpse-analytics/glimpse/internal/chtest"
	"github.com/glimpse-analytics/glimpse/internal/config"
	"github.com/glimpse-analytics/glimpse/internal/model"
)

// Numbers about data that is still arriving. A cell's noise is fixed by
// its key and description; if its exact value could still move, two
// answers about the same cell would subtract to the exact change: who
// arrived in between.

// writeAt stores one page view of visitor id at ts.
func writeAt(t *testing.T, db *chtest.DB, id uint64, ts time.Time) {
	t.Helper()
	w := sink.New(sink.Options{Conn: db.Conn, BatchSize: 10, Interval: 20 * time.Millisecond})
	e := w.NewEvent()
	e.SiteID, e.EventID, e.TS, e.Type = withSite, uuid.New(), ts, model.TypePageview
	e.VisitorID, e.SessionID = id, id^0x5e55
	e.Hostname = append(e.Hostname, withSite...)
	e.Pathname = append(e.Pathname, "/live"...)
	e.CountryCode, e.City = "IS", "Reykjavík"
	if err := w.EnqueueWait(context.Background(), e); err != nil {
		t.Fatal(err)
	}
	if lost, err := w.Close(context.Background()); err != nil || lost != 0 {
		t.Fatalf("%d lost, %v", lost, err)
	}
}

// askAt answers one question about withSite as if at now.
func askAt(t *testing.T, e *aggregator.Engine, site *config.Site, kind aggregator.Kind, now time.Time, params map[string]string) *aggregator.Response {
	t.Helper()
	q, err := aggregator.ParseQuery(kind, site, func(k string) string { return params[k] }, now)
	if err != nil {
		t.Fatal(err)
	}
	var r *aggregator.Response
	switch kind {
	case aggregator.KindAggregate:
		r, err = e.Aggregate(context.Background(), q)
	case aggregator.KindBreakdown:
		r, err = e.Breakdown(context.Background(), q)
	}
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestNoisyLive: today's numbers, polled before and after a visitor
// arrives within the hour, do not move: a noisy site releases a range
// only up to the last full hour (the realtime count up to the last full
// minute), whose data is final. Exact sites answer live.
func TestNoisyLive(t *testing.T) {
	db := attackData(t)
	day := attackEnd.AddDate(0, 0, -1) // the crowd's city is quiet that day
	before, arrive, after := day.Add(14*time.Hour+10*time.Minute), day.Add(14*time.Hour+20*time.Minute+30*time.Second), day.Add(14*time.Hour+50*time.Minute)
	today := map[string]string{"period": "day", "date": day.Format(time.DateOnly), "metrics": "visitors,pageviews"}
	type answer struct{ agg, live string }
	ask := func(e *aggregator.Engine, site *config.Site, now time.Time) answer {
		agg := askAt(t, e, site, aggregator.KindAggregate, now, today).Results
		q, err := aggregator.ParseQuery(aggregator.KindAggregate, site, func(k string) string { return map[string]string{"period": "realtime"}[k] }, now)
		if err != nil {
			t.Fatal(err)
		}
		live, err := e.RealtimeVisitors(context.Background(), q)
		if err != nil {
			t.Fatal(err)
		}
		return answer{fmt.Sprint(agg), fmt.Sprint(live)}
	}
	var first, firstLive []answer
	for seed := range 10 {
		site := attackSites(t, config.AggregatesNoisy, seed).Site(withSite)
		e := aggregator.New(aggregator.Options{Conn: db.Conn})
		first = append(first, ask(e, site, before))
		firstLive = append(firstLive, ask(e, site, arrive.Add(-20*time.Second)))
	}
	exact := attackSites(t, config.AggregatesExact, 0).Site(withSite)
	exactBefore := ask(aggregator.New(aggregator.Options{Conn: db.Conn}), exact, arrive.Add(-20*time.Second))
	writeAt(t, db, 99, arrive)
	if a := ask(aggregator.New(aggregator.Options{Conn: db.Conn}), exact, arrive.Add(20*time.Second)); a.agg == exactBefore.agg || a.live == exactBefore.live {
		t.Fatalf("an exact site does not see the arrival: %v, then %v", exactBefore, a)
	}
	r := askAt(t, aggregator.New(aggregator.Options{Conn: db.Conn}), attackSites(t, config.AggregatesNoisy, 0).Site(withSite), aggregator.KindAggregate, after, today)
	if u := r.Meta.ReleasedUntil; u == nil || !u.Equal(after.Truncate(time.Hour)) {
		t.Errorf("meta.released_until %v, want %v", u, after.Truncate(time.Hour))
	}
	for seed := range 10 {
		site := attackSites(t, config.AggregatesNoisy, seed).Site(withSite)
		e := aggregator.New(aggregator.Options{Conn: db.Conn})
		if a := ask(e, site, after); a.agg != first[seed].agg {
			t.Errorf("key %d: today's answer moved within the hour, from %v to %v: the difference is the arrival", seed, first[seed].agg, a.agg)
		}
		// Realtime: polled before the arrival and after it, in its minute.
		if a := ask(e, site, arrive.Add(20*time.Second)); a.live != firstLive[seed].live {
			t.Errorf("key %d: the realtime count moved within the minute, from %v to %v", seed, firstLive[seed].live, a.live)
		}
	}
}

// TestNoisyLateData: when a past cell's data changes after it was
// released (a spool replayed after an outage), the new answer carries new
// noise: the two answers do not subtract to the late rows.
func TestNoisyLateData(t *testing.T) {
	db := attackData(t)
	day := attackEnd.AddDate(0, 0, -3)
	q := map[string]string{"period": "day", "date": day.Format(time.DateOnly), "metrics": "visitors"}
	var before []float64
	for seed := range 10 {
		site := attackSites(t, config.AggregatesNoisy, seed).Site(withSite)
		r := askAt(t, aggregator.New(aggregator.Options{Conn: db.Conn}), site, aggregator.KindAggregate, attackEnd, q)
		before = append(before, number(r.Results.(map[string]any)["visitors"].(map[string]any)["value"]))
	}
	writeAt(t, db, 98, day.Add(12*time.Hour))
	exactly := 0
	for seed := range 10 {
		site := attackSites(t, config.AggregatesNoisy, seed).Site(withSite)
		r := askAt(t, aggregator.New(aggregator.Options{Conn: db.Conn}), site, aggregator.KindAggregate, attackEnd, q)
		if number(r.Results.(map[string]any)["visitors"].(map[string]any)["value"])-before[seed] == 1 {
			exactly++
		}
	}
	if exactly == 10 {
		t.Error("after one late visitor every key's answer grew by exactly 1: the noise did not change with the data")
	}
}
