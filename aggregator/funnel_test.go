package aggregator_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"net/url"
	"regexp"
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

// The funnel tests write traffic whose funnels are computed again here,
// independently of ClickHouse: for each visitor, the longest chain of
// steps done in order, each event later than the one before and within
// the window of the step-1 event it starts from.

const funnelSite = "funnel.example"

// funnelDay is the first of the funnel traffic's two days.
var funnelDay = time.Date(2025, 5, 12, 0, 0, 0, 0, time.UTC)

type fEvent struct {
	ts   time.Time
	typ  int8
	path string // page views
	name string // custom events
}

type fVisitor struct {
	id               uint64
	country, browser string
	events           []fEvent // in time order, distinct times
}

var funnelPages = []string{"/", "/pricing", "/blog/a", "/blog/b/c", "/docs/x", "/docs/x/y", "/thanks", "/about"}
var funnelGoals = []string{"Signup", "Purchase"}

// funnelTraffic makes n visitors a day over two days, and the edge
// visitors: one whose second step comes exactly at the end of a 10m
// window, one a second after it.
func funnelTraffic(n int) []fVisitor {
	rng := rand.New(rand.NewPCG(7, 11))
	var out []fVisitor
	id := uint64(100)
	countries := []string{"IS", "DE", "GB"}
	browsers := []string{"Safari", "Firefox", "Chrome"}
	for day := range 2 {
		for range n {
			id++
			v := fVisitor{id: id, country: countries[rng.IntN(3)], browser: browsers[rng.IntN(3)]}
			ts := funnelDay.AddDate(0, 0, day).Add(8*time.Hour + time.Duration(rng.IntN(10*3600))*time.Second)
			for range 2 + rng.IntN(7) {
				ts = ts.Add(time.Duration(1+rng.IntN(900)) * time.Second) // gaps of 1 s to 15 min
				e := fEvent{ts: ts, typ: model.TypePageview}
				switch x := rng.IntN(10); {
				case x < 6:
					e.path = funnelPages[rng.IntN(len(funnelPages))]
				case x < 8:
					e.typ, e.name, e.path = model.TypeCustom, funnelGoals[rng.IntN(2)], "/pricing"
				default:
					e.typ, e.path = model.TypeOutbound, "/blog/a"
				}
				v.events = append(v.events, e)
			}
			out = append(out, v)
		}
	}
	start := funnelDay.Add(6 * time.Hour)
	for i, gap := range []time.Duration{10 * time.Minute, 10*time.Minute + time.Second} {
		for j := range 6 { // six of each: above k
			id++
			t0 := start.Add(time.Duration(i*6+j) * time.Minute)
			out = append(out, fVisitor{id: id, country: "DE", browser: "Chrome", events: []fEvent{
				{ts: t0, typ: model.TypePageview, path: "/edge/start"},
				{ts: t0.Add(gap), typ: model.TypePageview, path: "/edge/end"},
			}})
		}
	}
	for j := range 7 { // seven start, three go on: under k
		id++
		t0 := start.Add(time.Duration(20+j) * time.Minute)
		v := fVisitor{id: id, country: "GB", browser: "Safari", events: []fEvent{{ts: t0, typ: model.TypePageview, path: "/rare/a"}}}
		if j < 3 {
			v.events = append(v.events, fEvent{ts: t0.Add(time.Minute), typ: model.TypePageview, path: "/rare/b"},
				fEvent{ts: t0.Add(2 * time.Minute), typ: model.TypePageview, path: "/rare/c"})
		}
		out = append(out, v)
	}
	return out
}

func writeFunnelTraffic(t *testing.T, vs []fVisitor) *chtest.DB {
	t.Helper()
	db := chtest.Migrated(t)
	w := sink.New(sink.Options{Conn: db.Conn, BatchSize: 5000, Interval: 50 * time.Millisecond, SessionInterval: 50 * time.Millisecond})
	sessions := new(seed.SessionBuffer)
	w.WriteSessions(sessions)
	ctx := context.Background()
	for _, v := range vs {
		sid := v.id ^ 0x5e55
		for _, fe := range v.events {
			e := w.NewEvent()
			e.SiteID, e.EventID, e.TS, e.Type = funnelSite, uuid.New(), fe.ts, fe.typ
			e.VisitorID, e.SessionID = v.id, sid
			e.Hostname = append(e.Hostname, funnelSite...)
			e.Pathname = append(e.Pathname, fe.path...)
			e.Name = append(e.Name, fe.name...)
			if fe.typ == model.TypeOutbound {
				e.TargetURL = append(e.TargetURL, "https://elsewhere.example/"...)
			}
			e.CountryCode, e.Browser, e.Device = v.country, v.browser, model.DeviceDesktop
			e.Interactive = 1
			if err := w.EnqueueWait(ctx, e); err != nil {
				t.Fatal(err)
			}
		}
		first, last := v.events[0], v.events[len(v.events)-1]
		attrs := model.Attrs{Country: v.country, Browser: v.browser, Device: model.DeviceDesktop}
		s := model.Session{ID: sid, VisitorID: v.id, Site: funnelSite, Start: first.ts, LastSeen: last.ts, Version: 1,
			Pageviews: uint32(len(v.events)), Events: uint32(len(v.events)), EntryPage: first.path, ExitPage: last.path, Attrs: &attrs}
		if err := sessions.Add(ctx, model.Session{}, s, false); err != nil {
			t.Fatal(err)
		}
	}
	if lost, err := w.Close(ctx); err != nil || lost != 0 {
		t.Fatalf("writing the funnel traffic: %d lost, %v", lost, err)
	}
	return db
}

// globRE is Plausible's page glob, written again for the oracle.
func globRE(p string) *regexp.Regexp {
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		switch {
		case strings.HasPrefix(p[i:], "**"):
			b.WriteString(".*")
			i++
		case p[i] == '*':
			b.WriteString("[^/]*")
		default:
			b.WriteString(regexp.QuoteMeta(p[i : i+1]))
		}
	}
	return regexp.MustCompile("^" + b.String() + "$")
}

func stepMatches(s config.FunnelStep, e fEvent) bool {
	page := s.Page
	if g, ok := strings.CutPrefix(s.Goal, "Visit "); ok {
		page = g
	}
	switch {
	case page != "":
		return e.typ == model.TypePageview && globRE(page).MatchString(e.path)
	case s.Goal == "Outbound Link: Click":
		return e.typ == model.TypeOutbound
	}
	return e.typ == model.TypeCustom && e.name == s.Goal
}

// oracleFunnel returns each step's visitors among vs (those keep passes).
func oracleFunnel(f *config.Funnel, vs []fVisitor, keep func(fVisitor) bool) []int64 {
	out := make([]int64, len(f.Steps))
	for _, v := range vs {
		if !keep(v) {
			continue
		}
		best := 0
		for i, e := range v.events {
			if !stepMatches(f.Steps[0], e) {
				continue
			}
			level, last := 1, e.ts
			for _, x := range v.events[i+1:] {
				if level == len(f.Steps) || x.ts.Sub(e.ts) > f.Window {
					break
				}
				if x.ts.After(last) && stepMatches(f.Steps[level], x) {
					level, last = level+1, x.ts
				}
			}
			best = max(best, level)
		}
		for i := range best {
			out[i]++
		}
	}
	return out
}

func funnelSites(t *testing.T, aggregates string, noiseSeed int) *config.File {
	t.Helper()
	y := fmt.Sprintf(`sites:
  - domain: %s
    privacy: {aggregates: %s, k_anonymity: 5, noise_key: "funnel-noise-key-%032d", budget: 1000000}
    funnels:
      - name: Pages
        steps: [{page: /}, {page: /pricing}, {page: /blog/**}]
      - name: Goals
        steps: [{goal: Signup}, {goal: Purchase}]
        window: 30m
      - name: Mixed
        steps: [{page: /docs/*, name: Docs}, {goal: Signup}, {goal: Visit /thanks}, {goal: "Outbound Link: Click"}]
        window: 2h
      - name: Edge
        steps: [{page: /edge/start}, {page: /edge/end}]
        window: 10m
`, funnelSite, aggregates, noiseSeed)
	f, err := config.Parse("funnel.yaml", []byte(y))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func askFunnel(t *testing.T, e *aggregator.Engine, site *config.Site, params string) *aggregator.Response {
	t.Helper()
	v, err := url.ParseQuery(params)
	if err != nil {
		t.Fatal(err)
	}
	if v.Get("period") == "" {
		v.Set("period", "custom")
		v.Set("date", funnelDay.Format(time.DateOnly)+","+funnelDay.AddDate(0, 0, 1).Format(time.DateOnly))
	}
	q, err := aggregator.ParseFunnelQuery(site, v.Get, funnelDay.AddDate(0, 0, 3))
	if err != nil {
		t.Fatalf("%s: %v", params, err)
	}
	q.Reader = "tester"
	r, err := e.Funnel(context.Background(), q)
	if err != nil {
		t.Fatalf("%s: %v", params, err)
	}
	return r
}

func TestFunnelExact(t *testing.T) {
	vs := funnelTraffic(400)
	db := writeFunnelTraffic(t, vs)
	sites := funnelSites(t, config.AggregatesExact, 0)
	site := sites.Site(funnelSite)
	e := aggregator.New(aggregator.Options{Conn: db.Conn})
	all := func(fVisitor) bool { return true }
	cases := []struct {
		name   string
		params string
		funnel *config.Funnel
		keep   func(fVisitor) bool
	}{
		{"pages with globs", "funnel=Pages", site.FunnelNamed("Pages"), all},
		{"goals", "funnel=Goals", site.FunnelNamed("Goals"), all},
		{"mixed", "funnel=Mixed", site.FunnelNamed("Mixed"), all},
		{"window edge", "funnel=Edge", site.FunnelNamed("Edge"), all},
		{"visit filter", "funnel=Pages&filters=visit:country==IS", site.FunnelNamed("Pages"), func(v fVisitor) bool { return v.country == "IS" }},
		{"two visit filters", "funnel=Mixed&filters=visit:browser!=Firefox%3Bvisit:country==DE%7CGB", site.FunnelNamed("Mixed"),
			func(v fVisitor) bool { return v.browser != "Firefox" && v.country != "IS" }},
		{"ad hoc", "steps=" + url.QueryEscape("page:/blog/*|goal:Purchase|page:/docs/**") + "&window=20m",
			&config.Funnel{Steps: []config.FunnelStep{{Page: "/blog/*"}, {Goal: "Purchase"}, {Page: "/docs/**"}}, Window: 20 * time.Minute}, all},
		{"withheld under k", "steps=" + url.QueryEscape("page:/rare/a|page:/rare/b|page:/rare/c"),
			&config.Funnel{Steps: []config.FunnelStep{{Page: "/rare/a"}, {Page: "/rare/b"}, {Page: "/rare/c"}}, Window: time.Hour}, all},
	}
	sawWithheld := false
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			want := oracleFunnel(c.funnel, vs, c.keep)
			r := askFunnel(t, e, site, c.params)
			res := r.Results.(*aggregator.FunnelResult)
			if len(res.Steps) != len(want) {
				t.Fatalf("%d steps, want %d", len(res.Steps), len(want))
			}
			withheld := false
			for i, s := range res.Steps {
				if w := want[i]; w > 0 && w < 5 {
					withheld = true
				}
				if withheld {
					sawWithheld = true
					if s.Visitors != nil || s.Withheld == "" || s.ConversionRate != nil || s.Dropoff != nil {
						t.Errorf("step %d: %+v, want withheld (oracle %v)", i+1, s, want)
					}
					continue
				}
				if s.Visitors == nil || *s.Visitors != want[i] {
					t.Fatalf("step %d: visitors %v, want %d (oracle %v)", i+1, ptr(s.Visitors), want[i], want)
				}
				prev := want[max(i-1, 0)]
				if *s.Dropoff != prev-want[i] {
					t.Errorf("step %d: dropoff %d, want %d", i+1, *s.Dropoff, prev-want[i])
				}
				if prev > 0 && math.Abs(*s.StepConversionRate-100*float64(want[i])/float64(prev)) > 0.006 {
					t.Errorf("step %d: step conversion %v, want %v", i+1, *s.StepConversionRate, 100*float64(want[i])/float64(prev))
				}
				if want[0] > 0 && math.Abs(*s.ConversionRate-100*float64(want[i])/float64(want[0])) > 0.006 {
					t.Errorf("step %d: conversion %v", i+1, *s.ConversionRate)
				}
			}
			t.Logf("%s: %v", c.name, want)
			if want[0] == 0 {
				t.Errorf("oracle counts nobody at step 1: the case tests nothing")
			}
		})
	}
	if edge := oracleFunnel(site.FunnelNamed("Edge"), vs, all); edge[0] != 12 || edge[1] != 6 {
		t.Errorf("edge oracle %v, want [12 6]: the step a second past the window must not count", edge)
	}
	if !sawWithheld {
		t.Error("no step was withheld: k is not tested")
	}
}

func ptr(p *int64) any {
	if p == nil {
		return nil
	}
	return *p
}

// TestFunnelNoisy: a noisy site's funnel steps carry noise, never grow
// from one step to the next, are withheld under k, answer the same
// question the same way, and cost the reader epsilon per new step.
func TestFunnelNoisy(t *testing.T) {
	vs := funnelTraffic(400)
	db := writeFunnelTraffic(t, vs)
	site := funnelSites(t, config.AggregatesNoisy, 1).Site(funnelSite)
	e := aggregator.New(aggregator.Options{Conn: db.Conn, Budget: aggregator.NewBudget(nil, nil, nil)})
	all := func(fVisitor) bool { return true }
	differs := 0
	for _, name := range []string{"Pages", "Goals", "Mixed"} {
		want := oracleFunnel(site.FunnelNamed(name), vs, all)
		r := askFunnel(t, e, site, "funnel="+name)
		res := r.Results.(*aggregator.FunnelResult)
		prev := int64(math.MaxInt64)
		withheld := false
		for i, s := range res.Steps {
			if s.Visitors == nil {
				withheld = true
				if s.Withheld == "" {
					t.Errorf("%s step %d: null without a reason", name, i+1)
				}
				continue
			}
			if withheld {
				t.Errorf("%s step %d released after a withheld step", name, i+1)
			}
			v := *s.Visitors
			if v > prev || v < 5 {
				t.Errorf("%s step %d: %d after %d: want non-increasing and at least k", name, i+1, v, prev)
			}
			if math.Abs(float64(v-want[i])) > 30 {
				t.Errorf("%s step %d: %d, exact %d: noise of scale 2 should not move it by 30", name, i+1, v, want[i])
			}
			if v != want[i] {
				differs++
			}
			prev = v
		}
		again := askFunnel(t, e, site, "funnel="+name).Results.(*aggregator.FunnelResult)
		if a, b := mustJSON(t, again.Steps), mustJSON(t, res.Steps); a != b {
			t.Errorf("%s asked again answers otherwise", name)
		}
	}
	if differs == 0 {
		t.Error("every noisy step equals the exact count: no noise")
	}
	// The same steps asked ad hoc, under another name, are the same cells:
	// they cost nothing more and answer the same.
	before := *askFunnel(t, e, site, "funnel=Goals").Meta.BudgetRemaining
	adhoc := askFunnel(t, e, site, "steps="+url.QueryEscape("goal:Signup|goal:Purchase")+"&window=30m")
	if left := *adhoc.Meta.BudgetRemaining; left != before {
		t.Errorf("the same funnel ad hoc cost %g", before-left)
	}
	fresh := askFunnel(t, e, site, "steps="+url.QueryEscape("goal:Signup|goal:Purchase")+"&window=31m")
	if cost := before - *fresh.Meta.BudgetRemaining; math.Abs(cost-2*site.Privacy.Epsilon) > 1e-9 {
		t.Errorf("a new 2-step funnel cost %g, want 2 × epsilon", cost)
	}
}

// TestFunnelDifferencing: two funnels whose answers differ by one person
// (the whole crowd, and the crowd without the only US visitor) tell an
// attacker whether the target is there on an exact site, and no more
// often than ε-DP allows on a noisy one.
func TestFunnelDifferencing(t *testing.T) {
	db := attackData(t)
	step1 := func(a asker, filters string) float64 {
		v := url.Values{"period": {"custom"}, "date": {attackEnd.AddDate(0, 0, -attackDays).Format(time.DateOnly) + "," +
			attackEnd.AddDate(0, 0, -1).Format(time.DateOnly)}, "steps": {"page:/**|page:/nowhere"}, "filters": {filters}}
		q, err := aggregator.ParseFunnelQuery(a.site, v.Get, attackEnd)
		if err != nil {
			t.Fatal(err)
		}
		q.Reader = "attacker"
		r, err := a.e.Funnel(context.Background(), q)
		if err != nil {
			t.Fatal(err)
		}
		s := r.Results.(*aggregator.FunnelResult).Steps[0]
		if s.Visitors == nil {
			return 0
		}
		return float64(*s.Visitors)
	}
	x := attack{"funnel: everyone's first step minus everyone's but the US visitors'", 1, func(a asker) float64 {
		return step1(a, "") - step1(a, "visit:country!=US")
	}}
	if got := success(t, db, config.AggregatesExact, x, 1); got != 1 {
		t.Fatalf("with exact aggregates the attack is right %.0f%% of the time, want always: it tests nothing", 100*got)
	}
	n := 100
	if testing.Short() {
		n = 30
	}
	loss := float64(x.cells) * config.DefaultEpsilon
	p := math.Exp(loss) / (1 + math.Exp(loss))
	slack := 3 * math.Sqrt(p*(1-p)/float64(2*n))
	got := success(t, db, config.AggregatesNoisy, x, n)
	t.Logf("noisy: right %.1f%% of %d guesses (ε-DP allows %.1f%% + %.1f%% sampling slack)", 100*got, 2*n, 100*p, 100*slack)
	if got > p+slack {
		t.Errorf("the attack is right %.1f%% of the time; ε allows %.1f%%", 100*got, 100*p)
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
