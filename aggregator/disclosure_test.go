package aggregator_test

import (
	"context"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/glimpse-analytics/glimpse/aggregator"
	"github.com/glimpse-analytics/glimpse/collector/sink"
	"github.com/glimpse-analytics/glimpse/internal/chtest"
	"github.com/glimpse-analytics/glimpse/internal/config"
	"github.com/glimpse-analytics/glimpse/internal/model"
	"github.com/glimpse-analytics/glimpse/internal/storage/seed"
)

// The attack suite. Two sites hold the same crowd of visitors; one of
// them also holds the target: a visitor alone in Reykjavík on a Mac, the
// only US visitor, the only reader of /secret-medical-page, and the only
// visitor of the crowd's city on the last day. Each attack is one that
// the issue reproduced with exact aggregates (two allowed answers
// subtracted to one person). Run with many noise keys, an attacker that
// guesses "present" when the estimate is at least 0.5 must be right no
// more often than ε-differential privacy allows for the cells the target
// is in; with exact aggregates the same attacks are always right, so the
// suite can fail.

const (
	withSite    = "with.example"
	withoutSite = "without.example"
	attackDays  = 7
)

// attackEnd is the exclusive end of the attack data's week.
var attackEnd = time.Date(2025, 6, 8, 0, 0, 0, 0, time.UTC)

type visitor struct {
	id                         uint64
	day                        int // 0 .. attackDays-1
	city, country, browser, os string
	page                       string
}

// writeVisitors stores each visitor's page view and session on site.
func writeVisitors(t *testing.T, w *sink.Writer, sessions *seed.SessionBuffer, site string, vs []visitor) {
	t.Helper()
	ctx := context.Background()
	for _, v := range vs {
		ts := attackEnd.AddDate(0, 0, v.day-attackDays).Add(10 * time.Hour)
		e := w.NewEvent()
		e.SiteID, e.EventID, e.TS, e.Type = site, uuid.New(), ts, model.TypePageview
		e.VisitorID, e.SessionID = v.id, v.id^0x5e55
		e.Hostname = append(e.Hostname, site...)
		e.Pathname = append(e.Pathname, v.page...)
		e.CountryCode, e.City, e.Browser, e.OS, e.Device = v.country, v.city, v.browser, v.os, model.DeviceDesktop
		e.Interactive = 1
		attrs := model.Attrs{City: v.city, Country: v.country, Browser: v.browser, OS: v.os, Device: model.DeviceDesktop}
		s := model.Session{ID: e.SessionID, VisitorID: v.id, Site: site, Start: ts, LastSeen: ts, Version: 1,
			Pageviews: 1, Events: 1, Bounce: true, EntryPage: v.page, ExitPage: v.page, Attrs: &attrs}
		if err := w.EnqueueWait(ctx, e); err != nil {
			t.Fatal(err)
		}
		if err := sessions.Add(ctx, model.Session{}, s, false); err != nil {
			t.Fatal(err)
		}
	}
}

// attackData stores the crowd on both sites and the target on one.
func attackData(t *testing.T) *chtest.DB {
	t.Helper()
	db := chtest.Migrated(t)
	w := sink.New(sink.Options{Conn: db.Conn, BatchSize: 1000, Interval: 50 * time.Millisecond, SessionInterval: 50 * time.Millisecond})
	sessions := new(seed.SessionBuffer)
	w.WriteSessions(sessions)
	var crowd []visitor
	id := uint64(1000)
	add := func(n, day int, city, country, browser, os, page string) {
		for range n {
			id++
			crowd = append(crowd, visitor{id, day, city, country, browser, os, page})
		}
	}
	for day := range attackDays - 1 { // the crowd's city is quiet on the last day
		add(5, day, "Reykjavík", "IS", "Safari", "iOS", "/")
	}
	add(30, 2, "London", "GB", "Chrome", "Windows", "/pricing")
	add(30, 3, "Berlin", "DE", "Firefox", "GNU/Linux", "/blog")
	target := visitor{id: 7, day: attackDays - 1, city: "Reykjavík", country: "US", browser: "Safari", os: "Mac", page: "/secret-medical-page"}
	writeVisitors(t, w, sessions, withoutSite, crowd)
	writeVisitors(t, w, sessions, withSite, append(crowd, target))
	if lost, err := w.Close(context.Background()); err != nil || lost != 0 {
		t.Fatalf("writing the attack data: %d lost, %v", lost, err)
	}
	return db
}

// attackSites configures both sites with aggregates and, for noisy ones,
// the noise key of seed.
func attackSites(t *testing.T, aggregates string, seed int) *config.File {
	t.Helper()
	key := fmt.Sprintf("attack-noise-key-%032d", seed)
	var b strings.Builder
	b.WriteString("sites:\n")
	for _, d := range []string{withSite, withoutSite} {
		fmt.Fprintf(&b, "  - domain: %s\n    privacy: {aggregates: %s, k_anonymity: 5, noise_key: %q, budget: 1000000}\n", d, aggregates, key)
	}
	f, err := config.Parse("attack.yaml", []byte(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// asker answers one site's questions for the attacks.
type asker struct {
	t    *testing.T
	e    *aggregator.Engine
	site *config.Site
}

func (a asker) ask(kind aggregator.Kind, params string) *aggregator.Response {
	a.t.Helper()
	v := map[string]string{"period": "custom", "date": attackEnd.AddDate(0, 0, -attackDays).Format(time.DateOnly) + "," +
		attackEnd.AddDate(0, 0, -1).Format(time.DateOnly)}
	for _, kv := range strings.Split(params, "&") {
		if k, val, ok := strings.Cut(kv, "="); ok {
			v[k] = val
		}
	}
	q, err := aggregator.ParseQuery(kind, a.site, func(k string) string { return v[k] }, attackEnd)
	if err != nil {
		a.t.Fatalf("%s: %v", params, err)
	}
	q.Reader = "attacker"
	var r *aggregator.Response
	ctx := context.Background()
	switch kind {
	case aggregator.KindAggregate:
		r, err = a.e.Aggregate(ctx, q)
	case aggregator.KindTimeseries:
		r, err = a.e.Timeseries(ctx, q)
	default:
		r, err = a.e.Breakdown(ctx, q)
	}
	if err != nil {
		a.t.Fatalf("%s: %v", params, err)
	}
	return r
}

// visitors is an aggregate's visitors; withheld counts as 0.
func (a asker) visitors(filters string) float64 {
	a.t.Helper()
	r := a.ask(aggregator.KindAggregate, "metrics=visitors&filters="+filters)
	return number(r.Results.(map[string]any)["visitors"].(map[string]any)["value"])
}

func number(v any) float64 {
	switch v := v.(type) {
	case int64:
		return float64(v)
	case float64:
		return v
	}
	return 0 // withheld
}

// attack is one differencing attack: est estimates the target's presence
// (1 present, 0 absent) from a site's answers; cells is how many of the
// cells it reads hold the target.
type attack struct {
	name  string
	cells int
	est   func(a asker) float64
}

var attacks = []attack{
	{"intersection: a city's Safari visitors minus those not on a Mac", 2, func(a asker) float64 {
		return a.visitors("visit:city==Reykjavík;visit:browser==Safari") -
			a.visitors("visit:city==Reykjavík;visit:browser==Safari;visit:os!=Mac")
	}},
	{"union minus part: GB or US minus GB", 1, func(a asker) float64 {
		return a.visitors("visit:country==GB|US") - a.visitors("visit:country==GB")
	}},
	{"complement: the total minus everyone not on the withheld page", 1, func(a asker) float64 {
		return a.visitors("") - a.visitors("event:page!=/secret-medical-page")
	}},
	{"breakdown rows against the total", 3, func(a asker) float64 {
		r := a.ask(aggregator.KindBreakdown, "property=visit:country&metrics=visitors")
		rows := 0.0
		for _, row := range r.Results.([]map[string]any) {
			if row["country"] != aggregator.Other {
				rows += number(row["visitors"])
			}
		}
		return a.visitors("") - rows
	}},
	{"folded rows: a breakdown's folded rows", 2, func(a asker) float64 {
		r := a.ask(aggregator.KindBreakdown, "property=visit:country&metrics=visitors")
		return float64(*r.Meta.FoldedRows)
	}},
	{"time series: the week's aggregate minus the days shown", 2, func(a asker) float64 {
		total := a.visitors("visit:city==Reykjavík")
		r := a.ask(aggregator.KindTimeseries, "metrics=visitors&interval=date&filters=visit:city==Reykjavík")
		shown := 0.0
		for _, p := range r.Results.([]map[string]any) {
			shown += number(p["visitors"])
		}
		return total - shown
	}},
	{"repeated and rephrased: the intersection asked five ways, averaged", 2, func(a asker) float64 {
		sum := 0.0
		for _, f := range []string{
			"visit:browser==Safari;visit:city==Reykjavík;visit:os!=Mac",
			"visit:os!=Mac;visit:city==Reykjavík;visit:browser==Safari",
			"visit:city==Reykjavík;visit:browser==Safari|Safari;visit:os!=Mac",
			"visit:city==Reykjavík;visit:browser==Safari;visit:os!=Mac;visit:os!=Mac",
			"visit:city==Reykjavík;visit:browser==Safari;visit:os!=Mac",
		} {
			sum += a.visitors(f)
		}
		return a.visitors("visit:city==Reykjavík;visit:browser==Safari") - sum/5
	}},
}

// success runs attack x with n noise keys and returns how often the
// attacker guessed right, over both sites.
func success(t *testing.T, db *chtest.DB, aggregates string, x attack, n int) float64 {
	right := 0
	for seed := range n {
		sites := attackSites(t, aggregates, seed)
		e := aggregator.New(aggregator.Options{Conn: db.Conn})
		if x.est(asker{t, e, sites.Site(withSite)}) >= 0.5 {
			right++
		}
		if x.est(asker{t, e, sites.Site(withoutSite)}) < 0.5 {
			right++
		}
	}
	return float64(right) / float64(2*n)
}

func TestDifferencingAttacks(t *testing.T) {
	db := attackData(t)
	const eps = config.DefaultEpsilon
	n := 100
	if testing.Short() {
		n = 30
	}
	for _, x := range attacks {
		t.Run(x.name, func(t *testing.T) {
			if got := success(t, db, config.AggregatesExact, x, 1); got != 1 {
				t.Fatalf("with exact aggregates the attack is right %.0f%% of the time, want always: it tests nothing", 100*got)
			}
			// ε-DP bounds the odds of telling the two sites apart by
			// e^(cells×ε): the best test is right at most p of the time.
			loss := float64(x.cells) * eps
			p := math.Exp(loss) / (1 + math.Exp(loss))
			slack := 3 * math.Sqrt(p*(1-p)/float64(2*n))
			got := success(t, db, config.AggregatesNoisy, x, n)
			t.Logf("noisy: right %.1f%% of %d guesses (ε-DP allows %.1f%% + %.1f%% sampling slack)", 100*got, 2*n, 100*p, 100*slack)
			if got > p+slack {
				t.Errorf("the attack is right %.1f%% of the time; ε = %g over %d cells allows %.1f%%", 100*got, eps, x.cells, 100*p)
			}
		})
	}
}

// TestNoisyConsistent: a noisy site answers the same question the same
// way however it is asked (filters and values in another order, repeated)
// and whoever asks, and another question another way.
func TestNoisyConsistent(t *testing.T) {
	db := attackData(t)
	sites := attackSites(t, config.AggregatesNoisy, 1)
	a := asker{t, aggregator.New(aggregator.Options{Conn: db.Conn}), sites.Site(withSite)}
	base := a.ask(aggregator.KindAggregate, "metrics=visitors,pageviews,visits&filters=visit:country==GB|DE;visit:browser!=Edge")
	for _, f := range []string{
		"visit:browser!=Edge;visit:country==DE|GB",
		"visit:country==DE|GB|GB;visit:browser!=Edge;visit:browser!=Edge",
	} {
		r := a.ask(aggregator.KindAggregate, "metrics=visitors,pageviews,visits&filters="+f)
		if fmt.Sprint(r.Results) != fmt.Sprint(base.Results) {
			t.Errorf("%s: %v, want %v as for the same question", f, r.Results, base.Results)
		}
	}
	// The same numbers through a fresh engine (a restart, another
	// collector): the noise is keyed, not drawn.
	b := asker{t, aggregator.New(aggregator.Options{Conn: db.Conn}), sites.Site(withSite)}
	if r := b.ask(aggregator.KindAggregate, "metrics=visitors,pageviews,visits&filters=visit:country==GB|DE;visit:browser!=Edge"); fmt.Sprint(r.Results) != fmt.Sprint(base.Results) {
		t.Errorf("another engine answers %v, want %v", r.Results, base.Results)
	}
	// A day's bucket is the same cell as the day's aggregate.
	day := attackEnd.AddDate(0, 0, -5).Format(time.DateOnly)
	agg := a.ask(aggregator.KindAggregate, "metrics=visitors&period=day&date="+day)
	ts := a.ask(aggregator.KindTimeseries, "metrics=visitors&interval=date")
	for _, p := range ts.Results.([]map[string]any) {
		if p["date"] == day && number(p["visitors"]) != number(agg.Results.(map[string]any)["visitors"].(map[string]any)["value"]) {
			t.Errorf("the bucket of %s has %v visitors, its aggregate %v", day, p["visitors"], agg.Results)
		}
	}
	// conversion_rate's denominator is the visitors of the question
	// without its goal: the very cell of the unfiltered aggregate, not the
	// goal's own visitors again. Several keys, so that the two cells'
	// noise differs in some.
	for seed := range 8 {
		a := asker{t, aggregator.New(aggregator.Options{Conn: db.Conn}), attackSites(t, config.AggregatesNoisy, seed).Site(withSite)}
		all := number(a.ask(aggregator.KindAggregate, "metrics=visitors").Results.(map[string]any)["visitors"].(map[string]any)["value"])
		conv := a.ask(aggregator.KindAggregate, "metrics=visitors,conversion_rate&filters=event:goal==Visit /pricing").Results.(map[string]any)
		goal := number(conv["visitors"].(map[string]any)["value"])
		if cr, want := number(conv["conversion_rate"].(map[string]any)["value"]), math.Round(1000*goal/all)/10; cr != want {
			t.Errorf("key %d: conversion rate %v, want %v = %v of %v visitors", seed, cr, want, goal, all)
		}
	}
	// A breakdown by goal: every row's denominator is that one cell too.
	signups := sink.New(sink.Options{Conn: db.Conn, BatchSize: 100, Interval: 50 * time.Millisecond})
	for i := range 20 {
		e := signups.NewEvent()
		e.SiteID, e.EventID, e.TS, e.Type = withSite, uuid.New(), attackEnd.AddDate(0, 0, -4), model.TypeCustom
		e.VisitorID, e.SessionID = uint64(1031+i), uint64(1031+i)^0x5e55
		e.Name = append(e.Name, "Signup"...)
		if err := signups.EnqueueWait(context.Background(), e); err != nil {
			t.Fatal(err)
		}
	}
	if lost, err := signups.Close(context.Background()); err != nil || lost != 0 {
		t.Fatalf("writing the goals: %d lost, %v", lost, err)
	}
	for seed := range 8 {
		a := asker{t, aggregator.New(aggregator.Options{Conn: db.Conn}), attackSites(t, config.AggregatesNoisy, seed).Site(withSite)}
		all := number(a.ask(aggregator.KindAggregate, "metrics=visitors").Results.(map[string]any)["visitors"].(map[string]any)["value"])
		rows := a.ask(aggregator.KindBreakdown, "property=event:goal&metrics=visitors,conversion_rate").Results.([]map[string]any)
		if len(rows) != 1 {
			t.Fatalf("key %d: goals %v, want Signup alone", seed, rows)
		}
		if cr, want := number(rows[0]["conversion_rate"]), math.Round(1000*number(rows[0]["visitors"])/all)/10; cr != want {
			t.Errorf("key %d: Signup converts %v%%, want %v%%: %v of %v visitors", seed, cr, want, rows[0]["visitors"], all)
		}
	}
	if base.Meta.Aggregates != config.AggregatesNoisy || base.Meta.Epsilon != config.DefaultEpsilon {
		t.Errorf("meta %+v does not say the numbers are noisy", base.Meta)
	}
	// Noise there is: not every day's answer is exact.
	exact := 0
	for _, p := range ts.Results.([]map[string]any) {
		if d := p["date"].(string); (d == "2025-06-03" && number(p["visitors"]) == 35) || number(p["visitors"]) == 5 {
			exact++
		}
	}
	if exact == len(ts.Results.([]map[string]any)) {
		t.Error("every noisy bucket is exact")
	}
}

// TestNoisyOther: a noisy breakdown's (other) row counts the people of
// its folded rows once each, as any visitors figure does; summed per row
// instead, one person reading many rare pages would move it by as many
// as they read, more than the noise of a visitors count hides.
func TestNoisyOther(t *testing.T) {
	db := attackData(t)
	w := sink.New(sink.Options{Conn: db.Conn, BatchSize: 100, Interval: 50 * time.Millisecond, SessionInterval: 50 * time.Millisecond})
	sessions := new(seed.SessionBuffer)
	w.WriteSessions(sessions)
	var reader []visitor
	for i := range 6 {
		reader = append(reader, visitor{id: 8, day: 1, city: "Oslo", country: "NO", browser: "Firefox", os: "Mac", page: fmt.Sprintf("/rare-%d", i)})
	}
	writeVisitors(t, w, sessions, withSite, reader)
	if lost, err := w.Close(context.Background()); err != nil || lost != 0 {
		t.Fatalf("writing the reader: %d lost, %v", lost, err)
	}
	f, err := config.Parse("other.yaml", []byte(`sites:
  - domain: `+withSite+`
    privacy: {aggregates: noisy, k_anonymity: 2, epsilon: 10, budget: 1000000, noise_key: "other-noise-key-0123456789abcdef0123"}
`))
	if err != nil {
		t.Fatal(err)
	}
	a := asker{t, aggregator.New(aggregator.Options{Conn: db.Conn}), f.Site(withSite)}
	r := a.ask(aggregator.KindBreakdown, "property=event:page&metrics=visitors,pageviews&limit=100")
	var other map[string]any
	for _, row := range r.Results.([]map[string]any) {
		if row["page"] == aggregator.Other {
			other = row
		}
	}
	// Folded: the target's page and the reader's six, two people; at
	// epsilon 10 a visitors count's noise is almost never more than 0.
	if other == nil || number(other["visitors"]) != 2 {
		t.Errorf("(other) is %v, want the 2 people of the 7 folded pages (meta %+v)", other, r.Meta)
	}
}

// TestBudget: each new number costs epsilon from the reader's daily
// budget, a number released before costs nothing, and a spent budget
// refuses with a 429 until the next UTC day, for that reader only.
func TestBudget(t *testing.T) {
	db := attackData(t)
	f, err := config.Parse("budget.yaml", []byte(`sites:
  - domain: `+withSite+`
    privacy: {epsilon: 1, budget: 4, noise_key: "0123456789abcdef0123456789abcdef"}
`))
	if err != nil {
		t.Fatal(err)
	}
	now := attackEnd
	spent, refused := 0.0, 0
	b := aggregator.NewBudget(func() time.Time { return now }, func(e float64) { spent += e }, func() { refused++ })
	e := aggregator.New(aggregator.Options{Conn: db.Conn, Budget: b})
	ask := func(reader, metrics string) (*aggregator.Response, error) {
		q, err := aggregator.ParseQuery(aggregator.KindAggregate, f.Site(withSite), func(k string) string {
			return map[string]string{"metrics": metrics, "period": "7d", "date": "2025-06-07"}[k]
		}, now)
		if err != nil {
			t.Fatal(err)
		}
		q.Reader = reader
		return e.Aggregate(context.Background(), q)
	}
	r, err := ask("alice", "visitors,pageviews,visits") // 3 numbers
	if err != nil || *r.Meta.BudgetRemaining != 1 {
		t.Fatalf("first question: %v, remaining %v; want 1 left of 4", err, r)
	}
	if r, err = ask("alice", "visitors,pageviews,visits"); err != nil || *r.Meta.BudgetRemaining != 1 {
		t.Fatalf("the same question again: %v; want it free", err)
	}
	if _, err = ask("alice", "visitors,bounce_rate,visit_duration"); err == nil {
		t.Fatal("2 new numbers (bounces and duration) with 1 left: no error")
	} else if ae, ok := err.(*aggregator.Error); !ok || ae.Status != 429 || !ae.RetryAt.Equal(attackEnd.Add(24*time.Hour)) {
		t.Fatalf("a spent budget: %v, want a 429 until the next UTC day", err)
	}
	if _, err = ask("bob", "visitors,bounce_rate,visit_duration"); err != nil {
		t.Fatalf("another reader's budget: %v", err)
	}
	now = now.Add(24 * time.Hour)
	if _, err = ask("alice", "visitors,bounce_rate,visit_duration"); err != nil {
		t.Fatalf("the next day: %v", err)
	}
	if spent != 3+4+4 || refused != 1 {
		t.Errorf("spent %g epsilon, %d refusals; want 11 and 1", spent, refused)
	}
}

// TestBudgetBreakdown: a breakdown's rows are one release per component,
// charged for what one visitor-day can move across all of them: a sum
// (page views) once, since one visitor-day adds at most the bound to all
// rows together; a count of people once per row a visitor-day can reach
// (its events for an event property, its visits for a visit property).
// Another page of the same breakdown releases nothing new.
func TestBudgetBreakdown(t *testing.T) {
	db := attackData(t)
	f, err := config.Parse("budget.yaml", []byte(`sites:
  - domain: `+withSite+`
    privacy: {epsilon: 1, budget: 1000, k_anonymity: 5, noise_key: "0123456789abcdef0123456789abcdef"}
`))
	if err != nil {
		t.Fatal(err)
	}
	e := aggregator.New(aggregator.Options{Conn: db.Conn, Budget: aggregator.NewBudget(func() time.Time { return attackEnd }, nil, nil)})
	left := 1000.0
	for _, c := range []struct {
		params string
		cost   float64
	}{
		// visitors 30, page views 1, the folded count 1, (other)'s
		// visitors and page views 1 each (charged whether or not a row
		// was folded, so the cost says nothing about the data)
		{"property=event:page&metrics=visitors,pageviews&limit=2", model.MaxEventsPerDay + 1 + 1 + 2},
		{"property=event:page&metrics=visitors,pageviews&limit=1&page=2", 0},
		{"property=event:page&metrics=visitors,pageviews&limit=100", 0},
		// visitors 3, visits 1, bounces 1, the folded count 1, and
		// (other)'s three, whether or not a row was folded
		{"property=visit:country&metrics=visitors,bounce_rate", model.MaxVisitsPerDay + 1 + 1 + 1 + 3},
		{"property=visit:device&metrics=visitors,bounce_rate", model.MaxVisitsPerDay + 1 + 1 + 1 + 3},
	} {
		q, err := aggregator.ParseQuery(aggregator.KindBreakdown, f.Site(withSite), func(k string) string {
			v := map[string]string{"period": "7d", "date": "2025-06-07"}
			for _, kv := range strings.Split(c.params, "&") {
				k, val, _ := strings.Cut(kv, "=")
				v[k] = val
			}
			return v[k]
		}, attackEnd)
		if err != nil {
			t.Fatal(err)
		}
		q.Reader = "alice"
		r, err := e.Breakdown(context.Background(), q)
		if err != nil {
			t.Fatalf("%s: %v", c.params, err)
		}
		if got := left - *r.Meta.BudgetRemaining; got != c.cost {
			t.Errorf("%s cost %g, want %g", c.params, got, c.cost)
		}
		left = *r.Meta.BudgetRemaining
	}
}

// TestNoiseError: with the default epsilon, a site with a few thousand
// daily visitors reads its headline numbers within 1% on average (rates
// within one point), for a day and for a week.
func TestNoiseError(t *testing.T) {
	db := chtest.Migrated(t)
	w := sink.New(sink.Options{Conn: db.Conn, BatchSize: 50000, QueueSize: 100000, SessionInterval: seed.SessionInterval})
	st, err := seed.Write(context.Background(), w, seed.Options{Site: withSite, Events: 60000, Days: 2, End: attackEnd, Seed: 3, Visitors: 5000})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("seeded %+v", st)
	metrics := "visitors,visits,pageviews,bounce_rate,visit_duration,views_per_visit"
	for _, period := range []string{"period=day&date=2025-06-07", "period=7d&date=2025-06-07"} {
		exact := asker{t, aggregator.New(aggregator.Options{Conn: db.Conn}), attackSites(t, config.AggregatesExact, 0).Site(withSite)}
		want := exact.ask(aggregator.KindAggregate, "metrics="+metrics+"&"+period).Results.(map[string]any)
		if v := number(want["visitors"].(map[string]any)["value"]); v < 2000 {
			t.Fatalf("%s: %v visitors, want a few thousand", period, v)
		}
		errs := map[string]float64{}
		const keys = 40
		for seed := range keys {
			a := asker{t, aggregator.New(aggregator.Options{Conn: db.Conn}), attackSites(t, config.AggregatesNoisy, seed).Site(withSite)}
			got := a.ask(aggregator.KindAggregate, "metrics="+metrics+"&"+period).Results.(map[string]any)
			for m, v := range want {
				x, y := number(v.(map[string]any)["value"]), number(got[m].(map[string]any)["value"])
				if m == "bounce_rate" {
					errs[m] += math.Abs(y-x) / keys // in points
				} else {
					errs[m] += 100 * math.Abs(y-x) / x / keys // in percent
				}
			}
		}
		for m, e := range errs {
			t.Logf("%s %s: exact %v, mean error %.2f (%s)", period, m, want[m].(map[string]any)["value"], e, map[bool]string{true: "points", false: "%"}[m == "bounce_rate"])
			if e >= 1 {
				t.Errorf("%s %s: mean error %.2f, want under 1", period, m, e)
			}
		}
	}
}
