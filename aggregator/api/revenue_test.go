package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/valyala/fasthttp"

	"github.com/glimpse-analytics/glimpse/aggregator"
	"github.com/glimpse-analytics/glimpse/aggregator/api"
	"github.com/glimpse-analytics/glimpse/collector/sink"
	"github.com/glimpse-analytics/glimpse/internal/apptest"
	"github.com/glimpse-analytics/glimpse/internal/chtest"
	"github.com/glimpse-analytics/glimpse/internal/config"
	"github.com/glimpse-analytics/glimpse/internal/model"
	"github.com/glimpse-analytics/glimpse/internal/storage/seed"
)

// Revenue: events of several currencies written through the collector's
// writer, every revenue number asked of the Stats API and compared with
// sums counted here in Go from the same events.

const (
	revSite   = "rev.example"
	revNoisy  = "noisy.example"
	revQuiet  = "quiet.example" // the noisy site without the target's purchase
	revKey    = "revenue-key"
	revDays   = 5
	revPeople = 90
)

var revFirst = time.Date(2025, 6, 2, 0, 0, 0, 0, time.UTC)

// revEvent is one stored event of the revenue data.
type revEvent struct {
	visitor          uint64
	ts               time.Time
	typ              int8
	name, page       string
	country, browser string
	cur              string
	micros           int64
}

// revGenerate is the revenue data: each person visits once, views a page
// and may buy (in EUR, USD or JPY), sign up or upgrade (in EUR); with
// target, one more person buys alone.
func revGenerate(target bool) []revEvent {
	var out []revEvent
	curs := []string{"EUR", "EUR", "USD", "JPY"}
	for i := range revPeople {
		id := uint64(100 + i)
		ts := revFirst.AddDate(0, 0, i%revDays).Add(time.Duration(9+i%7) * time.Hour)
		country := []string{"DE", "FR", "US"}[i%3]
		browser := []string{"Chrome", "Firefox"}[i%2]
		ev := func(typ int8, name, page, cur string, micros int64, at time.Duration) {
			if typ == model.TypeCustom { // on a page the visitor views
				out = append(out, revEvent{visitor: id, ts: ts.Add(at - time.Second), typ: model.TypePageview, name: "pageview", page: page, country: country, browser: browser})
			}
			out = append(out, revEvent{visitor: id, ts: ts.Add(at), typ: typ, name: name, page: page, country: country, browser: browser, cur: cur, micros: micros})
		}
		ev(model.TypePageview, "pageview", "/", "", 0, 0)
		switch i % 3 {
		case 0:
			cur := curs[(i/3)%4]
			micros := int64((i*137)%5000)*1_000_000 + 990_000
			if cur == "JPY" {
				micros = int64(1000+i*250) * 1_000_000
			}
			ev(model.TypeCustom, "Purchase", "/checkout", cur, micros, time.Minute)
		case 1:
			ev(model.TypeCustom, "Signup", "/signup", "", 0, time.Minute)
		}
		if i%5 == 0 {
			ev(model.TypeCustom, "Upgrade", "/account", "EUR", int64(49_500_000+i), 2*time.Minute)
		}
	}
	if target {
		// The target: the one visitor from Iceland, who buys twice, once
		// in a currency nobody else uses.
		ts := revFirst.AddDate(0, 0, 2).Add(15 * time.Hour)
		for i, x := range []struct {
			cur    string
			micros int64
		}{{"EUR", revTargetMicros}, {"ISK", 50_000_000_000}} {
			at := ts.Add(time.Duration(i) * time.Minute)
			out = append(out,
				revEvent{visitor: 7, ts: at, typ: model.TypePageview, name: "pageview", page: "/checkout", country: "IS", browser: "Safari"},
				revEvent{visitor: 7, ts: at.Add(time.Second), typ: model.TypeCustom, name: "Purchase", page: "/checkout", country: "IS", browser: "Safari",
					cur: x.cur, micros: x.micros})
		}
	}
	return out
}

// revTargetMicros is the target's purchase in EUR: 777.00.
const revTargetMicros = 777_000_000

// revWrite stores events (and one session per visitor) for site.
func revWrite(t *testing.T, db *chtest.DB, site string, evs []revEvent) {
	t.Helper()
	ctx := context.Background()
	w := sink.New(sink.Options{Conn: db.Conn, BatchSize: 1000, Interval: 50 * time.Millisecond, SessionInterval: 50 * time.Millisecond})
	sessions := new(seed.SessionBuffer)
	w.WriteSessions(sessions)
	first := map[uint64]bool{}
	for _, x := range evs {
		e := w.NewEvent()
		e.SiteID, e.EventID, e.TS, e.Type = site, uuid.New(), x.ts, x.typ
		e.VisitorID, e.SessionID = x.visitor, x.visitor^0x5e55
		e.Name = append(e.Name, x.name...)
		e.Hostname = append(e.Hostname, site...)
		e.Pathname = append(e.Pathname, x.page...)
		e.CountryCode, e.Browser, e.OS, e.Device = x.country, x.browser, "Linux", model.DeviceDesktop
		e.RevenueMicros = x.micros
		e.RevenueCurrency = append(e.RevenueCurrency, x.cur...)
		if err := w.EnqueueWait(ctx, e); err != nil {
			t.Fatal(err)
		}
		if !first[x.visitor] {
			first[x.visitor] = true
			attrs := model.Attrs{Country: x.country, Browser: x.browser, OS: "Linux", Device: model.DeviceDesktop}
			s := model.Session{ID: e.SessionID, VisitorID: x.visitor, Site: site, Start: x.ts, LastSeen: x.ts, Version: 1,
				Pageviews: 1, Events: 1, Bounce: true, EntryPage: x.page, ExitPage: x.page, Attrs: &attrs}
			if err := sessions.Add(ctx, model.Session{}, s, false); err != nil {
				t.Fatal(err)
			}
		}
	}
	if lost, err := w.Close(ctx); err != nil || lost != 0 {
		t.Fatalf("writing revenue data: %d lost, %v", lost, err)
	}
}

func revSites(t *testing.T, noiseKey string) *config.File {
	t.Helper()
	y := "sites:\n  - domain: " + revSite + "\n    privacy: {aggregates: exact, k_anonymity: 2}\n"
	for _, d := range []string{revNoisy, revQuiet} {
		y += "  - domain: " + d + "\n    privacy: {aggregates: noisy, k_anonymity: 5, noise_key: \"" + noiseKey + "\", budget: 1000000}\n"
	}
	y += "api_keys:\n  - name: rev\n    sha256: \"" + apptest.KeyHash(revKey) + "\"\n    sites: [" + revSite + ", " + revNoisy + ", " + revQuiet + "]\n"
	f, err := config.Parse("revenue.yaml", []byte(y))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func revClient(t *testing.T, db *chtest.DB, noiseKey string) *client {
	t.Helper()
	a, err := api.New(api.Options{
		Engine: aggregator.New(aggregator.Options{Conn: db.Conn, Budget: aggregator.NewBudget(nil, nil, nil)}),
		Sites:  revSites(t, noiseKey), RateLimit: 1 << 20,
		Now: func() time.Time { return revFirst.AddDate(0, 0, revDays+1) },
	})
	if err != nil {
		t.Fatal(err)
	}
	return &client{routes: a.Routes()}
}

func revQ(path, site string, kv ...string) string {
	v := url.Values{}
	v.Set("site_id", site)
	v.Set("period", "custom")
	v.Set("date", revFirst.Format(time.DateOnly)+","+revFirst.AddDate(0, 0, revDays-1).Format(time.DateOnly))
	for i := 0; i+1 < len(kv); i += 2 {
		v.Set(kv[i], kv[i+1])
	}
	return path + "?" + v.Encode()
}

// revSums are a cell's expected revenue: micros and events per currency,
// and its visitors (for the k threshold).
type revSums struct {
	micros   map[string]int64
	n        map[string]int64
	visitors map[uint64]bool
}

func (s *revSums) add(e revEvent) {
	if s.micros == nil {
		s.micros, s.n, s.visitors = map[string]int64{}, map[string]int64{}, map[uint64]bool{}
	}
	if e.typ != model.TypeEngagement {
		s.visitors[e.visitor] = true
	}
	if e.cur != "" {
		s.micros[e.cur] += e.micros
		s.n[e.cur]++
	}
}

// want is the expected money object of the sums: total or average.
func (s *revSums) want(average bool) map[string]any {
	var curs []string
	for c := range s.micros {
		curs = append(curs, c)
	}
	slices.Sort(curs)
	one := func(c string) map[string]any {
		v := float64(s.micros[c]) / 1e6
		if average {
			v = float64(s.micros[c]) / float64(s.n[c]) / 1e6
		}
		places := 2.0
		if c == "JPY" {
			places = 0
		}
		p := math.Pow(10, places)
		return map[string]any{"value": math.Round(v*p) / p, "currency": c}
	}
	switch len(curs) {
	case 0:
		return map[string]any{"value": 0.0, "currency": nil}
	case 1:
		return one(curs[0])
	}
	var each []any
	for _, c := range curs {
		each = append(each, one(c))
	}
	return map[string]any{"value": nil, "currency": nil, "by_currency": each}
}

// sameMoney compares a money object with want on value and currency
// (and each of by_currency's).
func sameMoney(got any, want map[string]any) bool {
	g, ok := got.(map[string]any)
	if !ok {
		return false
	}
	if g["currency"] != want["currency"] {
		return false
	}
	if wv, ok := want["value"].(float64); ok {
		gv, ok := g["value"].(float64)
		if !ok || math.Abs(gv-wv) > 1e-9 {
			return false
		}
	} else if g["value"] != nil {
		return false
	}
	we, _ := want["by_currency"].([]any)
	ge, _ := g["by_currency"].([]any)
	if len(we) != len(ge) {
		return false
	}
	for i := range we {
		if !sameMoney(ge[i], we[i].(map[string]any)) {
			return false
		}
	}
	return true
}

func decode(t *testing.T, status int, body []byte, uri string) map[string]any {
	t.Helper()
	if status != 200 {
		t.Fatalf("%s: %d %s", uri, status, body)
	}
	var out map[string]any
	if err := json.Unmarshal(body, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestRevenue(t *testing.T) {
	db := chtest.Migrated(t)
	evs := revGenerate(true)
	revWrite(t, db, revSite, evs)
	c := revClient(t, db, strings.Repeat("k", 32))
	checks := 0
	check := func(uri, metric string, got any, want *revSums) {
		t.Helper()
		checks++
		w := want.want(metric == "average_revenue")
		if !sameMoney(got, w) {
			gb, _ := json.Marshal(got)
			wb, _ := json.Marshal(w)
			t.Errorf("%s: %s = %s, want %s", uri, metric, gb, wb)
		}
	}
	metrics := "visitors,total_revenue,average_revenue"

	// Aggregates: all, and under filters.
	for _, f := range []struct {
		filter string
		match  func(revEvent) bool
	}{
		{"", func(revEvent) bool { return true }},
		{"event:goal==Purchase", func(e revEvent) bool { return e.name == "Purchase" }},
		{"event:goal==Upgrade|Purchase", func(e revEvent) bool { return e.name == "Upgrade" || e.name == "Purchase" }},
		{"visit:country==DE", func(e revEvent) bool { return e.country == "DE" }},
		{"visit:browser==Firefox;event:goal==Purchase", func(e revEvent) bool { return e.browser == "Firefox" && e.name == "Purchase" }},
		{"event:page==/account", func(e revEvent) bool { return e.page == "/account" }},
	} {
		var want revSums
		for _, e := range evs {
			if f.match(e) {
				want.add(e)
			}
		}
		uri := revQ(api.PathAggregate, revSite, "metrics", metrics, "filters", f.filter)
		s, b := c.get(t, revKey, uri)
		res := decode(t, s, b, uri)["results"].(map[string]any)
		for _, m := range []string{"total_revenue", "average_revenue"} {
			check(uri, m, res[m].(map[string]any)["value"], &want)
		}
	}

	// Compared with the previous period (empty): one currency against no
	// revenue is +100%; several currencies do not compare.
	for _, f := range []struct {
		filter string
		want   any
	}{{"event:goal==Upgrade", 100.0}, {"", nil}} {
		uri := revQ(api.PathAggregate, revSite, "metrics", "total_revenue", "filters", f.filter, "compare", "previous_period")
		s, b := c.get(t, revKey, uri)
		o := decode(t, s, b, uri)["results"].(map[string]any)["total_revenue"].(map[string]any)
		if o["change"] != f.want || !sameMoney(o["comparison_value"], (&revSums{}).want(false)) {
			t.Errorf("%s: change %v, comparison_value %v; want change %v and no revenue before", uri, o["change"], o["comparison_value"], f.want)
		}
	}

	// Time series by day.
	uri := revQ(api.PathTimeseries, revSite, "metrics", metrics, "interval", "date")
	s, b := c.get(t, revKey, uri)
	byDay := map[string]*revSums{}
	for _, e := range evs {
		d := e.ts.Format(time.DateOnly)
		if byDay[d] == nil {
			byDay[d] = &revSums{}
		}
		byDay[d].add(e)
	}
	for _, p := range decode(t, s, b, uri)["results"].([]any) {
		p := p.(map[string]any)
		for _, m := range []string{"total_revenue", "average_revenue"} {
			check(uri+" "+p["date"].(string), m, p[m], byDay[p["date"].(string)])
		}
	}

	// Breakdowns: by goal, page, country (a visit property), browser.
	for _, by := range []struct {
		prop string
		key  func(revEvent) (string, bool)
	}{
		{"event:goal", func(e revEvent) (string, bool) { return e.name, e.typ == model.TypeCustom }},
		{"event:page", func(e revEvent) (string, bool) { return e.page, true }},
		{"visit:country", func(e revEvent) (string, bool) { return e.country, true }},
		{"visit:browser", func(e revEvent) (string, bool) { return e.browser, true }},
	} {
		rows := map[string]*revSums{}
		for _, e := range evs {
			if k, ok := by.key(e); ok {
				if rows[k] == nil {
					rows[k] = &revSums{}
				}
				rows[k].add(e)
			}
		}
		uri := revQ(api.PathBreakdown, revSite, "metrics", metrics, "property", by.prop)
		s, b := c.get(t, revKey, uri)
		res := decode(t, s, b, uri)["results"].([]any)
		if len(res) == 0 {
			t.Errorf("%s: no rows", uri)
		}
		key := strings.TrimPrefix(strings.TrimPrefix(by.prop, "event:"), "visit:")
		for _, r := range res {
			r := r.(map[string]any)
			k := r[key].(string)
			want := rows[k]
			if want == nil {
				t.Errorf("%s: row %q not in the data", uri, k)
				continue
			}
			for _, m := range []string{"total_revenue", "average_revenue"} {
				check(uri+" "+k, m, r[m], want)
			}
		}
	}
	if testing.Verbose() {
		uri := revQ(api.PathBreakdown, revSite, "metrics", metrics, "property", "event:goal")
		_, b := c.get(t, revKey, uri)
		t.Logf("%s", b)
	}
	if checks < 40 {
		t.Errorf("only %d revenue numbers checked", checks)
	}
	t.Logf("%d revenue numbers checked against Go's sums", checks)
}

// TestRevenueWithheld: under filters that leave 1 to k-1 visitors, the
// revenue is withheld like every other value.
func TestRevenueWithheld(t *testing.T) {
	db := chtest.Migrated(t)
	revWrite(t, db, revSite, revGenerate(true))
	c := revClient(t, db, strings.Repeat("k", 32))
	uri := revQ(api.PathAggregate, revSite, "metrics", "visitors,total_revenue,average_revenue", "filters", "visit:country==IS")
	s, b := c.get(t, revKey, uri)
	res := decode(t, s, b, uri)["results"].(map[string]any)
	for _, m := range []string{"total_revenue", "average_revenue"} {
		if o := res[m].(map[string]any); o["value"] != nil || o["withheld"] == nil {
			t.Errorf("%s: %s = %v, want withheld", uri, m, o)
		}
	}
	if strings.Contains(string(b), "777") {
		t.Errorf("%s: the target's purchase shows: %s", uri, b)
	}
}

// TestRevenueUnsupported: revenue where it cannot be computed is a 400
// naming the metric and the property, never a 500.
func TestRevenueUnsupported(t *testing.T) {
	db := chtest.Migrated(t)
	c := revClient(t, db, strings.Repeat("k", 32))
	for _, tc := range []struct{ uri, want string }{
		{revQ(api.PathBreakdown, revSite, "metrics", "total_revenue", "property", "event:outbound_link"), `metric "total_revenue" is not supported in a breakdown by event:outbound_link`},
		{revQ(api.PathBreakdown, revSite, "metrics", "visitors,average_revenue", "property", "event:download"), `metric "average_revenue" is not supported in a breakdown by event:download`},
		{revQ(api.PathBreakdown, revSite, "metrics", "total_revenue", "property", "email:campaign"), `metric "total_revenue" is not supported in a breakdown by email:campaign`},
		{revQ(api.PathBreakdown, revSite, "metrics", "total_revenue", "property", "event:impression"), `event:impression`},
		{revQ(api.PathAggregate, revSite, "metrics", "total_revenues"), `unknown metric "total_revenues"`},
	} {
		s, b := c.get(t, revKey, tc.uri)
		var e struct{ Error string }
		_ = json.Unmarshal(b, &e)
		if s != 400 || !strings.Contains(e.Error, tc.want) {
			t.Errorf("%s: %d %s, want 400 with %q", tc.uri, s, b, tc.want)
		}
	}
}

// TestRevenueOverflow: sums past Int64 micros are capped and flagged,
// never wrapped.
func TestRevenueOverflow(t *testing.T) {
	db := chtest.Migrated(t)
	var evs []revEvent
	for i := range 12 { // 12 × 1e12 CHF: 1.2e19 micros
		ts := revFirst.Add(time.Duration(i) * time.Hour)
		evs = append(evs, revEvent{visitor: uint64(500 + i), ts: ts, typ: model.TypeCustom, name: "Purchase", page: "/", country: "CH",
			browser: "Chrome", cur: "CHF", micros: 1_000_000_000_000_000_000})
	}
	revWrite(t, db, revSite, evs)
	c := revClient(t, db, strings.Repeat("k", 32))
	uri := revQ(api.PathAggregate, revSite, "metrics", "total_revenue,average_revenue")
	s, b := c.get(t, revKey, uri)
	res := decode(t, s, b, uri)["results"].(map[string]any)
	tot := res["total_revenue"].(map[string]any)["value"].(map[string]any)
	if tot["capped"] != true || tot["value"].(float64) < 9.2e12 {
		t.Errorf("total_revenue of 1.2e13 CHF: %v, want capped at 9.22e12", tot)
	}
	if v := tot["value"].(float64); v < 0 {
		t.Errorf("total_revenue wrapped: %v", v)
	}
}

// TestRevenueNoisy: on a noisy site one purchase cannot be read off by
// differencing two questions (with and without its buyer), a currency
// only its buyer uses does not show, and what a question costs does not
// depend on the currencies in the data. The same attack on an exact site
// recovers the purchase to the cent: the test can fail.
func TestRevenueNoisy(t *testing.T) {
	db := chtest.Migrated(t)
	revWrite(t, db, revSite, revGenerate(true))
	revWrite(t, db, revNoisy, revGenerate(true))
	revWrite(t, db, revQuiet, revGenerate(false))
	eur := func(t *testing.T, c *client, site, filter string) (float64, map[string]any) {
		t.Helper()
		uri := revQ(api.PathAggregate, site, "metrics", "visitors,total_revenue", "filters", filter)
		s, b := c.get(t, revKey, uri)
		out := decode(t, s, b, uri)
		v := out["results"].(map[string]any)["total_revenue"].(map[string]any)["value"].(map[string]any)
		var each []any
		if v["currency"] == "EUR" {
			each = []any{v}
		} else {
			each, _ = v["by_currency"].([]any)
		}
		for _, x := range each {
			if x := x.(map[string]any); x["currency"] == "EUR" {
				return x["value"].(float64), out
			}
		}
		t.Fatalf("%s: no EUR revenue: %v", uri, v)
		return 0, nil
	}
	target := float64(revTargetMicros) / 1e6

	c := revClient(t, db, strings.Repeat("k", 32))
	all, _ := eur(t, c, revSite, "")
	others, _ := eur(t, c, revSite, "visit:country!=IS")
	if math.Abs(all-others-target) > 0.005 {
		t.Fatalf("exact site: the difference is %.2f, want the target's %.2f (the attack itself is broken)", all-others, target)
	}

	// goalEUR is the EUR revenue of the Purchase row of a breakdown by goal.
	goalEUR := func(t *testing.T, c *client, site, filter string) float64 {
		t.Helper()
		uri := revQ(api.PathBreakdown, site, "metrics", "visitors,total_revenue", "property", "event:goal", "filters", filter)
		s, b := c.get(t, revKey, uri)
		for _, r := range decode(t, s, b, uri)["results"].([]any) {
			r := r.(map[string]any)
			if r["goal"] != "Purchase" {
				continue
			}
			v := r["total_revenue"].(map[string]any)
			each, _ := v["by_currency"].([]any)
			if v["currency"] != nil {
				each = []any{v}
			}
			for _, x := range each {
				if x := x.(map[string]any); x["currency"] == "EUR" {
					return x["value"].(float64)
				}
			}
			return 0
		}
		t.Fatalf("%s: no Purchase row", uri)
		return 0
	}
	if d := goalEUR(t, c, revSite, "") - goalEUR(t, c, revSite, "visit:country!=IS"); math.Abs(d-target) > 0.005 {
		t.Fatalf("exact site: the Purchase rows differ by %.2f, want the target's %.2f (the attack itself is broken)", d, target)
	}

	isk, recovered, recoveredRow := 0, 0, 0
	for seed := range 10 {
		c := revClient(t, db, fmt.Sprintf("revenue-noise-key-%022d", seed))
		all, out := eur(t, c, revNoisy, "")
		others, _ := eur(t, c, revNoisy, "visit:country!=IS")
		if math.Abs(all-others-target) < 1 {
			recovered++
		}
		t.Logf("key %d: %.2f - %.2f = %.2f EUR (the target's %.2f)", seed, all, others, all-others, target)
		if d := goalEUR(t, c, revNoisy, "") - goalEUR(t, c, revNoisy, "visit:country!=IS"); math.Abs(d-target) < 1 {
			recoveredRow++
		}
		if b, _ := json.Marshal(out["results"]); strings.Contains(string(b), `"ISK"`) {
			isk++
		}
		// The same question of a site without the target costs the same.
		quiet, qout := eur(t, c, revQuiet, "")
		left := out["meta"].(map[string]any)["budget_remaining"]
		if ql := qout["meta"].(map[string]any)["budget_remaining"]; ql != left || left == nil {
			t.Errorf("key %d: budget left %v after the question with the target's currencies, %v without", seed, left, ql)
		}
		_ = quiet
		// Breakdowns and time series of a noisy site answer too.
		for _, uri := range []string{
			revQ(api.PathBreakdown, revNoisy, "metrics", "visitors,total_revenue,average_revenue", "property", "event:goal"),
			revQ(api.PathBreakdown, revNoisy, "metrics", "visitors,total_revenue", "property", "visit:country"),
			revQ(api.PathBreakdown, revNoisy, "metrics", "visitors,total_revenue", "property", "event:page", "filters", "event:goal==Purchase"),
			revQ(api.PathTimeseries, revNoisy, "metrics", "visitors,total_revenue"),
		} {
			s, b := c.get(t, revKey, uri)
			if s != 200 || strings.Contains(string(b), `"ISK"`) && seed == 0 {
				t.Errorf("%s: %d %s", uri, s, b)
			}
		}
	}
	if recovered > 0 || recoveredRow > 0 {
		t.Errorf("%d of 10 noise keys let the differencing of aggregates, %d of breakdown rows, recover the target's %.2f EUR to within 1 EUR",
			recovered, recoveredRow, target)
	}
	if isk > 3 {
		t.Errorf("the currency only the target uses (ISK) shows under %d of 10 noise keys", isk)
	}
}

// TestRevenueAnswers: revenue beside every kind of metric and question
// answers 200 on exact and noisy sites alike.
func TestRevenueAnswers(t *testing.T) {
	db := chtest.Migrated(t)
	revWrite(t, db, revSite, revGenerate(true))
	revWrite(t, db, revNoisy, revGenerate(true))
	c := revClient(t, db, strings.Repeat("k", 32))
	n := 0
	for _, site := range []string{revSite, revNoisy} {
		for _, uri := range []string{
			revQ(api.PathBreakdown, site, "metrics", "visitors,conversion_rate,total_revenue,average_revenue", "property", "event:goal", "filters", "event:goal==Purchase"),
			revQ(api.PathBreakdown, site, "metrics", "visitors,conversion_rate,total_revenue", "property", "visit:country", "filters", "event:goal==Purchase"),
			revQ(api.PathBreakdown, site, "metrics", "visitors,visits,bounce_rate,total_revenue", "property", "event:page"),
			revQ(api.PathBreakdown, site, "metrics", "visitors,time_on_page,total_revenue", "property", "visit:browser", "filters", "event:page==/checkout"),
			revQ(api.PathBreakdown, site, "metrics", "visitors,total_revenue", "property", "visit:entry_page"),
			revQ(api.PathBreakdown, site, "metrics", "visitors,total_revenue", "property", "event:props:plan"),
			revQ(api.PathBreakdown, site, "metrics", "visitors,total_revenue", "property", "visit:os_version", "limit", "1", "page", "2"),
			revQ(api.PathTimeseries, site, "metrics", "visitors,visits,total_revenue,average_revenue", "interval", "week"),
			revQ(api.PathTimeseries, site, "metrics", "total_revenue,conversion_rate", "filters", "event:goal==Upgrade"),
			revQ(api.PathAggregate, site, "metrics", "visits,bounce_rate,total_revenue,average_revenue", "compare", "previous_period"),
			revQ(api.PathAggregate, site, "metrics", "total_revenue", "period", "realtime"),
		} {
			n++
			if s, b := c.get(t, revKey, uri); s != 200 {
				t.Errorf("%s: %d %s", uri, s, b)
			}
		}
	}
	t.Logf("%d questions answered", n)
}

// TestRevenueV2: v2's money metrics are v1's money objects; a cell over
// several currencies is null with Plausible's no_single_revenue_currency
// warning (Glimpse adds no currencies), and one currency's value equals
// the sums counted in Go.
func TestRevenueV2(t *testing.T) {
	db := chtest.Migrated(t)
	evs := revGenerate(true)
	revWrite(t, db, revSite, evs)
	c := revClient(t, db, strings.Repeat("k", 32))
	rng := `"date_range":["` + revFirst.Format(time.DateOnly) + `","` + revFirst.AddDate(0, 0, revDays-1).Format(time.DateOnly) + `"]`
	post := func(body string) map[string]any {
		var rc fasthttp.RequestCtx
		rc.Request.SetRequestURI(api.PathQuery)
		rc.Request.Header.SetMethod("POST")
		rc.Request.SetBodyString(`{"site_id":"` + revSite + `",` + rng + `,` + body[1:])
		rc.Request.Header.Set("Authorization", "Bearer "+revKey)
		c.routes[api.PathQuery](&rc)
		return decode(t, rc.Response.StatusCode(), rc.Response.Body(), body)
	}
	byGoal := map[string]*revSums{}
	for _, e := range evs {
		if e.typ == model.TypeCustom {
			if byGoal[e.name] == nil {
				byGoal[e.name] = &revSums{}
			}
			byGoal[e.name].add(e)
		}
	}
	out := post(`{"metrics":["total_revenue","average_revenue"],"dimensions":["event:goal"]}`)
	checked := 0
	for _, r := range out["results"].([]any) {
		row := r.(map[string]any)
		goal := row["dimensions"].([]any)[0].(string)
		sums := byGoal[goal]
		if sums == nil {
			t.Fatalf("row %v: no such goal", row)
		}
		for i, m := range []string{"total_revenue", "average_revenue"} {
			w := sums.want(m == "average_revenue")
			got := row["metrics"].([]any)[i]
			if _, several := w["by_currency"]; several {
				if got != nil {
					t.Errorf("%s %s over %d currencies: %v, want null", goal, m, len(sums.micros), got)
				}
			} else if !sameMoney(got, w) {
				t.Errorf("%s %s: %v, want %v", goal, m, got, w)
			}
			checked++
		}
	}
	if checked < 6 {
		t.Fatalf("%d values checked: %v", checked, out)
	}
	warn, _ := out["meta"].(map[string]any)["metric_warnings"].(map[string]any)
	if w, _ := warn["total_revenue"].(map[string]any); w["code"] != "no_single_revenue_currency" {
		t.Errorf("metric_warnings %v: want total_revenue's no_single_revenue_currency (Purchase is in 4 currencies)", warn)
	}
	// One currency under a filter: the value, and no warning.
	out = post(`{"metrics":["total_revenue"],"filters":[["is","event:goal",["Upgrade"]]]}`)
	if got := out["results"].([]any)[0].(map[string]any)["metrics"].([]any)[0]; !sameMoney(got, byGoal["Upgrade"].want(false)) {
		t.Errorf("Upgrade: %v, want %v", got, byGoal["Upgrade"].want(false))
	}
	if _, ok := out["meta"].(map[string]any)["metric_warnings"]; ok {
		t.Errorf("a warning over one currency: %v", out["meta"])
	}
	t.Logf("%d v2 revenue values checked", checked+1)
}
