package aggregator_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/google/uuid"

	"github.com/glimpse-analytics/glimpse/aggregator"
	"github.com/glimpse-analytics/glimpse/collector/sink"
	"github.com/glimpse-analytics/glimpse/internal/chtest"
	"github.com/glimpse-analytics/glimpse/internal/config"
	"github.com/glimpse-analytics/glimpse/internal/model"
	"github.com/glimpse-analytics/glimpse/internal/storage/seed"
	"github.com/glimpse-analytics/glimpse/migrations"
)

// A small, hand-counted site for the numbers of issue 22: every expected
// value below is counted from these lists, not from the engine.

// fxDay is the fixture's day (UTC); fxNow is the "now" of its queries,
// the end of that day.
var (
	fxDay = time.Date(2025, 3, 29, 10, 0, 0, 0, time.UTC)
	fxNow = time.Date(2025, 3, 30, 0, 0, 0, 0, time.UTC)
)

// fxEvent is one event of a fixture visitor, in its session.
type fxEvent struct {
	typ          int8
	path         string // page of a page view, engagement, custom event
	name         string // custom event
	target       string // outbound link or download
	engMS        uint32
	scroll       uint8
	propK, propV string
	minutesAfter int
}

type fxVisitor struct {
	id                     uint64
	referrer, source       string
	utmSource, utmCampaign string
	country                string
	at                     time.Time // session start; fxDay when zero
	events                 []fxEvent
}

func pv(path string) fxEvent { return fxEvent{typ: model.TypePageview, path: path} }
func eng(path string, ms uint32, scroll uint8) fxEvent {
	return fxEvent{typ: model.TypeEngagement, path: path, engMS: ms, scroll: scroll}
}
func goal(path, name, k, v string) fxEvent {
	return fxEvent{typ: model.TypeCustom, path: path, name: name, propK: k, propV: v}
}

// fxVisitors: 6 site visitors on fxDay, 2 more in the last minutes
// before fxNow (realtime).
var fxVisitors = []fxVisitor{
	{id: 101, referrer: "www.google.com/search", source: "Google", country: "DE", utmSource: "newsletter", utmCampaign: "spring",
		events: []fxEvent{pv("/"), eng("/", 100_000, 40), pv("/pricing"), eng("/pricing", 120_000, 60), goal("/pricing", "Signup", "plan", "pro")}},
	{id: 102, referrer: "www.google.com/search", source: "Google", country: "DE",
		events: []fxEvent{pv("/"), eng("/", 20_000, 20), goal("/", "Signup", "plan", "pro"), pv("/blog/a"),
			{typ: model.TypeOutbound, path: "/blog/a", target: "https://github.com/glimpse"}}},
	{id: 103, referrer: "news.ycombinator.com/item", source: "Hacker News", country: "US",
		events: []fxEvent{pv("/pricing"), eng("/pricing", 98_000, 42), goal("/pricing", "Signup", "plan", "free")}},
	{id: 104, country: "US", utmSource: "newsletter", utmCampaign: "spring",
		events: []fxEvent{pv("/"), pv("/docs"), goal("/docs", "Signup", "plan", "free"),
			{typ: model.TypeDownload, path: "/docs", target: "https://example.com/glimpse.pdf"}}},
	{id: 105, country: "FR",
		events: []fxEvent{pv("/blog/a"), goal("/blog/a", "Signup", "plan", "pro"),
			{typ: model.TypeDownload, path: "/blog/a", target: "https://example.com/glimpse.pdf"}}},
	{id: 106, referrer: "t.co/x1", source: "Twitter", country: "FR",
		events: []fxEvent{pv("/blog/b"), {typ: model.TypeOutbound, path: "/blog/b", target: "https://github.com/glimpse"}}},
	// The day before: referrers as the seed and older collectors stored
	// them, full URLs.
	{id: 301, referrer: "https://www.google.com/", source: "Google", country: "DE", at: fxDay.AddDate(0, 0, -1), events: []fxEvent{pv("/")}},
	{id: 302, referrer: "http://google.com", source: "Google", country: "DE", at: fxDay.AddDate(0, 0, -1), events: []fxEvent{pv("/")}},
	// Realtime: two visitors in the last five minutes before fxNow.
	{id: 201, country: "DE", at: fxNow.Add(-3 * time.Minute), events: []fxEvent{pv("/")}},
	{id: 202, country: "US", at: fxNow.Add(-2 * time.Minute), events: []fxEvent{pv("/pricing")}},
}

// fxEmail: opens and clicks of two campaigns on fxDay and one in the
// realtime window, stored as the email endpoints store them (no visitor
// or session id).
var fxEmail = []struct {
	typ                 int8
	campaign, recipient string
	at                  time.Time
}{
	{model.TypeEmailOpen, "spring", "r1", fxDay}, {model.TypeEmailOpen, "spring", "r2", fxDay},
	{model.TypeEmailClick, "spring", "r1", fxDay}, {model.TypeEmailOpen, "spring", "", fxDay},
	{model.TypeEmailOpen, "summer", "r3", fxDay.Add(time.Hour)},
	{model.TypeEmailOpen, "spring", "r4", fxNow.Add(-time.Minute)},
}

// fixture writes fxVisitors and fxEmail through the collector's writer.
func fixture(t *testing.T) *chtest.DB {
	t.Helper()
	db := chtest.Migrated(t)
	writeFixture(t, db)
	return db
}

func writeFixture(t *testing.T, db *chtest.DB) {
	t.Helper()
	ctx := context.Background()
	w := sink.New(sink.Options{Conn: db.Conn, BatchSize: 1000, Interval: 50 * time.Millisecond, SessionInterval: 50 * time.Millisecond})
	sessions := new(seed.SessionBuffer)
	w.WriteSessions(sessions)
	for _, v := range fxVisitors {
		start := v.at
		if start.IsZero() {
			start = fxDay.Add(time.Duration(v.id%100) * time.Minute)
		}
		attrs := model.Attrs{Referrer: v.referrer, Source: v.source, UTMSource: v.utmSource, UTMCampaign: v.utmCampaign,
			Country: v.country, Browser: "Firefox", OS: "GNU/Linux", Device: model.DeviceDesktop, Channel: model.ChannelDirect}
		s := model.Session{ID: v.id ^ 0x5e55, VisitorID: v.id, Site: testSite, Start: start, LastSeen: start, Version: 1,
			Bounce: true, Attrs: &attrs}
		for i, x := range v.events {
			e := w.NewEvent()
			e.SiteID, e.EventID, e.TS, e.Type = testSite, uuid.New(), start.Add(time.Duration(i)*time.Second), x.typ
			e.VisitorID, e.SessionID = v.id, s.ID
			e.Hostname = append(e.Hostname, testSite...)
			e.Pathname = append(e.Pathname, x.path...)
			e.Name = append(e.Name, x.name...)
			e.TargetURL = append(e.TargetURL, x.target...)
			e.Referrer = append(e.Referrer, v.referrer...)
			e.ReferrerSource, e.Channel = v.source, attrs.Channel
			e.UTMSource = append(e.UTMSource, v.utmSource...)
			e.UTMCampaign = append(e.UTMCampaign, v.utmCampaign...)
			e.CountryCode, e.Browser, e.OS, e.Device = v.country, attrs.Browser, attrs.OS, attrs.Device
			e.EngagementMS, e.ScrollDepth = x.engMS, x.scroll
			e.Interactive = 1
			if x.propK != "" {
				e.AddProp([]byte(x.propK), []byte(x.propV))
			}
			if err := w.EnqueueWait(ctx, e); err != nil {
				t.Fatal(err)
			}
			switch x.typ {
			case model.TypePageview:
				s.Pageviews++
				s.Events++
				if s.EntryPage == "" {
					s.EntryPage = x.path
				}
				s.ExitPage = x.path
			case model.TypeCustom, model.TypeOutbound, model.TypeDownload:
				s.Events++
			}
		}
		s.Bounce = s.Pageviews < 2
		if err := sessions.Add(ctx, model.Session{}, s, false); err != nil {
			t.Fatal(err)
		}
	}
	for _, m := range fxEmail {
		e := w.NewEvent()
		e.SiteID, e.EventID, e.TS, e.Type = testSite, uuid.New(), m.at, m.typ
		e.EmailCampaign = append(e.EmailCampaign, m.campaign...)
		e.EmailRecipient = append(e.EmailRecipient, m.recipient...)
		e.EmailVerdict = "human"
		if err := w.EnqueueWait(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	if lost, err := w.Close(ctx); err != nil || lost != 0 {
		t.Fatalf("writing the fixture: %d lost, %v", lost, err)
	}
}

// fxAsk answers params for kind about the fixture's site, asked at fxNow
// (period=day&date=2025-03-29 unless params say otherwise).
func fxAsk(t *testing.T, e *aggregator.Engine, site *config.Site, kind aggregator.Kind, params string) *aggregator.Response {
	t.Helper()
	return do(t, e, kind, fxQuery(t, kind, site, params))
}

func fxQuery(t *testing.T, kind aggregator.Kind, site *config.Site, params string) *aggregator.Query {
	t.Helper()
	v := map[string]string{"period": "day", "date": "2025-03-29"}
	for _, kv := range strings.Split(params, "&") {
		k, val, _ := strings.Cut(kv, "=")
		v[k] = val
	}
	q, err := aggregator.ParseQuery(kind, site, func(k string) string { return v[k] }, fxNow)
	if err != nil {
		t.Fatalf("ParseQuery(%s): %v", params, err)
	}
	return q
}

// aggValues returns an aggregate's values by metric (nil: withheld).
func aggValues(r *aggregator.Response) map[string]any {
	out := map[string]any{}
	for m, o := range r.Results.(map[string]any) {
		out[m] = o.(map[string]any)["value"]
	}
	return out
}

// rowsBy returns a breakdown's rows by their key field.
func rowsBy(t *testing.T, r *aggregator.Response, key string) map[string]map[string]any {
	t.Helper()
	out := map[string]map[string]any{}
	for _, x := range r.Results.([]any) {
		row := x.(map[string]any)
		out[fmt.Sprint(row[key])] = row
	}
	return out
}

func jsonOf(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// TestEmailNotSiteTraffic: email opens and clicks (stored without a
// visitor id) are the email panel's, never the site's visitors, visits,
// page views, events or current visitors, from the raw tables or the
// rollups alike; the campaign breakdown still counts their recipients.
func TestEmailNotSiteTraffic(t *testing.T) {
	db := fixture(t)
	e := aggregator.New(aggregator.Options{Conn: db.Conn})
	site := testSites(t, "UTC", 2).Site(testSite)
	// 8 site visitors (6 in the morning, 2 before midnight), 8 visits,
	// 11 page views, 20 events (11 + 5 goals + 2 outbound + 2 downloads).
	want := map[string]any{"visitors": 8.0, "visits": 8.0, "pageviews": 11.0, "events": 20.0}
	for _, raw := range []bool{false, true} {
		q := fxQuery(t, aggregator.KindAggregate, site, "metrics=visitors,visits,pageviews,events")
		q.Raw = raw
		if got := aggValues(do(t, e, aggregator.KindAggregate, q)); jsonOf(got) != jsonOf(want) {
			t.Errorf("aggregate raw=%v: %s, want %s", raw, jsonOf(got), jsonOf(want))
		}
		q = fxQuery(t, aggregator.KindTimeseries, site, "metrics=visitors,pageviews&interval=date")
		q.Raw = raw
		ts := do(t, e, aggregator.KindTimeseries, q).Results.([]any)
		if pt := ts[0].(map[string]any); pt["visitors"] != 8.0 || pt["pageviews"] != 11.0 {
			t.Errorf("timeseries raw=%v: %s, want 8 visitors, 11 page views", raw, jsonOf(pt))
		}
	}
	// An events-side breakdown with no type of its own: no row of email
	// events (their hostname is empty).
	hosts := rowsBy(t, fxAsk(t, e, site, aggregator.KindBreakdown, "property=event:hostname&metrics=visitors,events"), "hostname")
	if len(hosts) != 1 || hosts[testSite]["visitors"] != 8.0 || hosts[testSite]["events"] != 20.0 {
		t.Errorf("hostname breakdown: %s, want one row of 8 visitors, 20 events", jsonOf(hosts))
	}
	// Filtered by an events-side property (raw): visitors of /pricing.
	if got := aggValues(fxAsk(t, e, site, aggregator.KindAggregate, "metrics=visitors&filters=event:page!=/nowhere")); got["visitors"] != 8.0 {
		t.Errorf("negated page filter: visitors %v, want 8", got["visitors"])
	}
	// Realtime: 201 and 202; the open of r4 a minute before now is not a
	// current visitor.
	n, err := e.RealtimeVisitors(context.Background(), fxQuery(t, aggregator.KindAggregate, site, "period=realtime"))
	if err != nil || n != 2 {
		t.Errorf("realtime visitors = %d, %v; want 2", n, err)
	}
	// The campaign breakdown counts recipients: spring has r1, r2, r4
	// and one open without a pseudonym.
	camp := rowsBy(t, fxAsk(t, e, site, aggregator.KindBreakdown, "property=email:campaign&metrics=visitors,email_opens,email_clicks"), "campaign")
	if r := camp["spring"]; r == nil || r["visitors"] != 4.0 || r["email_opens"] != 4.0 || r["email_clicks"] != 1.0 {
		t.Errorf("campaign spring: %s, want 4 visitors, 4 opens, 1 click", jsonOf(camp["spring"]))
	}
	// An aggregate of email opens still counts them.
	if got := aggValues(fxAsk(t, e, site, aggregator.KindAggregate, "metrics=visitors,email_opens")); got["visitors"] != 8.0 || got["email_opens"] != 5.0 {
		t.Errorf("visitors and email opens: %s, want 8 and 5", jsonOf(got))
	}
}

// TestEventsHourlyRepair: 0011 rebuilds the hours of events_hourly that
// counted email events as a visitor, written before it.
func TestEventsHourlyRepair(t *testing.T) {
	db := chtest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	before := fstest.MapFS{}
	all := migrations.Files()
	ms, err := migrations.Load(all)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		if m.Version < 11 {
			b, err := fs.ReadFile(all, m.Name+".sql")
			if err != nil {
				t.Fatal(err)
			}
			before[m.Name+".sql"] = &fstest.MapFile{Data: b}
		}
	}
	target := migrations.Target{Database: db.Database}
	if _, err := migrations.NewRunner(db.Conn, target, before, nil).Apply(ctx); err != nil {
		t.Fatal(err)
	}
	writeFixture(t, db)
	e := aggregator.New(aggregator.Options{Conn: db.Conn})
	site := testSites(t, "UTC", 2).Site(testSite)
	visitors := func() any {
		return aggValues(fxAsk(t, e, site, aggregator.KindAggregate, "metrics=visitors"))["visitors"]
	}
	if v := visitors(); v != 9.0 {
		t.Fatalf("before 0011: rollup visitors %v, want the 9 of the old view (8 and visitor 0)", v)
	}
	if _, err := migrations.NewRunner(db.Conn, target, nil, nil).Apply(ctx); err != nil {
		t.Fatal(err)
	}
	for {
		var left uint64
		if err := db.Conn.QueryRow(ctx, "SELECT count() FROM system.mutations WHERE database = ? AND is_done = 0", db.Database).Scan(&left); err != nil {
			t.Fatal(err)
		}
		if left == 0 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if v := visitors(); v != 8.0 {
		t.Errorf("after 0011: rollup visitors %v, want 8", v)
	}
	q := fxQuery(t, aggregator.KindAggregate, site, "metrics=pageviews,events")
	if got := aggValues(do(t, e, aggregator.KindAggregate, q)); got["pageviews"] != 11.0 || got["events"] != 20.0 {
		t.Errorf("after 0011: %s, want 11 page views and 20 events", jsonOf(got))
	}
}

// TestEngagementRollupRepair: 0013 rebuilds the hours of events_hourly
// that counted an engagement report as a visitor, written before it (an
// engagement after its session ended carries no session and a visitor
// id of its own).
func TestEngagementRollupRepair(t *testing.T) {
	db := chtest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	before := fstest.MapFS{}
	all := migrations.Files()
	ms, err := migrations.Load(all)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		if m.Version < 13 {
			b, err := fs.ReadFile(all, m.Name+".sql")
			if err != nil {
				t.Fatal(err)
			}
			before[m.Name+".sql"] = &fstest.MapFile{Data: b}
		}
	}
	target := migrations.Target{Database: db.Database}
	if _, err := migrations.NewRunner(db.Conn, target, before, nil).Apply(ctx); err != nil {
		t.Fatal(err)
	}
	writeFixture(t, db)
	if err := db.Conn.Exec(ctx, "INSERT INTO events (site_id, event_id, ts, type, visitor_id, session_id, pathname, engagement_ms) "+
		"SELECT ?, toUUID('00000000-0000-0000-0000-00000000e001'), toDateTime('2025-03-29 12:30:00', 'UTC'), 'engagement', 987654321, 0, '/', 5000", testSite); err != nil {
		t.Fatal(err)
	}
	e := aggregator.New(aggregator.Options{Conn: db.Conn})
	site := testSites(t, "UTC", 2).Site(testSite)
	visitors := func() any {
		return aggValues(fxAsk(t, e, site, aggregator.KindAggregate, "metrics=visitors"))["visitors"]
	}
	if v := visitors(); v != 9.0 {
		t.Fatalf("before 0013: rollup visitors %v, want the 9 of the old view (8 and the engagement)", v)
	}
	if _, err := migrations.NewRunner(db.Conn, target, nil, nil).Apply(ctx); err != nil {
		t.Fatal(err)
	}
	for {
		var left uint64
		if err := db.Conn.QueryRow(ctx, "SELECT count() FROM system.mutations WHERE database = ? AND is_done = 0", db.Database).Scan(&left); err != nil {
			t.Fatal(err)
		}
		if left == 0 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if v := visitors(); v != 8.0 {
		t.Errorf("after 0013: rollup visitors %v, want 8", v)
	}
	q := fxQuery(t, aggregator.KindAggregate, site, "metrics=pageviews,events")
	if got := aggValues(do(t, e, aggregator.KindAggregate, q)); got["pageviews"] != 11.0 || got["events"] != 20.0 {
		t.Errorf("after 0013: %s, want 11 page views and 20 events", jsonOf(got))
	}
}

// TestPageEngagementBreakdown: a breakdown by event:page computes
// time_on_page and scroll_depth per page as the aggregate filtered to
// that page does, on the noisy path's scans too.
func TestPageEngagementBreakdown(t *testing.T) {
	db := fixture(t)
	e := aggregator.New(aggregator.Options{Conn: db.Conn})
	site := testSites(t, "UTC", 2).Site(testSite)
	// "/": 101 (100 s, 40%), 102 (20 s, 20%); "/pricing": 101 (120 s,
	// 60%), 103 (98 s, 42%). Visitors of page views: 4 and 3.
	want := map[string]map[string]float64{
		"/":        {"visitors": 4, "pageviews": 4, "time_on_page": 60, "scroll_depth": 30},
		"/pricing": {"visitors": 3, "pageviews": 3, "time_on_page": 109, "scroll_depth": 51},
	}
	rows := rowsBy(t, fxAsk(t, e, site, aggregator.KindBreakdown, "property=event:page&metrics=visitors,pageviews,time_on_page,scroll_depth"), "page")
	for page, w := range want {
		agg := aggValues(fxAsk(t, e, site, aggregator.KindAggregate, "metrics=time_on_page,scroll_depth&filters=event:page=="+page))
		for m, v := range w {
			if rows[page][m] != v {
				t.Errorf("breakdown %s %s = %v, want %v", page, m, rows[page][m], v)
			}
			if _, ok := agg[m]; ok && agg[m] != v {
				t.Errorf("aggregate filtered to %s: %s = %v, want %v", page, m, agg[m], v)
			}
		}
	}
	// Asking for engagement does not change who visited a page.
	plain := rowsBy(t, fxAsk(t, e, site, aggregator.KindBreakdown, "property=event:page&metrics=visitors"), "page")
	if jsonOf(plain["/"]["visitors"]) != jsonOf(rows["/"]["visitors"]) || len(plain) != len(rows) {
		t.Errorf("visitors differ with engagement asked: %s vs %s", jsonOf(plain), jsonOf(rows))
	}
}

// TestConversionRateBreakdown: with a goal filter, a row's
// conversion_rate is its converting visitors over its visitors without
// the goal filter; for a custom property, whose values exist only on the
// events that carry them, over the site's visitors without it, as
// Plausible computes it. Exact and noisy paths agree (noise aside).
func TestConversionRateBreakdown(t *testing.T) {
	db := fixture(t)
	e := aggregator.New(aggregator.Options{Conn: db.Conn})
	site := testSites(t, "UTC", 2).Site(testSite)
	// Signup: 101 (DE, Google, pro, /pricing), 102 (DE, Google, pro, /),
	// 103 (US, Hacker News, free, /pricing), 104 (US, direct, free,
	// /docs), 105 (FR, direct, pro, /blog/a). 8 site visitors.
	cases := []struct {
		prop, key string
		want      map[string]float64
	}{
		{"visit:country", "country", map[string]float64{"DE": 66.7, "US": 66.7}},
		{"visit:source", "source", map[string]float64{"Google": 100, "Direct / None": 50}},
		{"event:props:plan", "plan", map[string]float64{"pro": 37.5, "free": 25}},
		{"event:page", "page", map[string]float64{"/pricing": 66.7}},
		{"visit:browser_version", "browser_version", map[string]float64{"(not set)": 62.5}},
	}
	// Noisy at epsilon 10: noise of scale 0.1 on a visitor count is 0
	// but about once in 10,000 draws.
	noisy := noisySite(t)
	for _, s := range []*config.Site{site, noisy} {
		for _, c := range cases {
			rows := rowsBy(t, fxAsk(t, e, s, aggregator.KindBreakdown, "property="+c.prop+"&metrics=visitors,conversion_rate&filters=event:goal==Signup"), c.key)
			for v, w := range c.want {
				if rows[v] == nil || rows[v]["conversion_rate"] != w {
					t.Errorf("%s %s %q: conversion_rate %v, want %v (rows %s)", s.Privacy.Aggregates, c.prop, v, rows[v]["conversion_rate"], w, jsonOf(rows))
				}
			}
		}
	}
}

// noisySite is the fixture's site with noisy aggregates at the least
// noise there is (epsilon 10), k = 2.
func noisySite(t *testing.T) *config.Site {
	t.Helper()
	y := "sites:\n  - domain: " + testSite + "\n    timezone: UTC\n    privacy: {aggregates: noisy, k_anonymity: 2, epsilon: 10, budget: 100000, " +
		"noise_key: \"numbers-test-noise-key-0123456789abcdef\"}\n"
	f, err := config.Parse("noisy.yaml", []byte(y))
	if err != nil {
		t.Fatal(err)
	}
	return f.Site(testSite)
}

// TestExactZero: in exact mode a filter matching nobody answers 0;
// k-anonymity withholds 1 to k-1 visitors, not 0. Noisy mode compares
// noisy visitors with k and withholds an empty answer as it withholds a
// small one (the two must look alike).
func TestExactZero(t *testing.T) {
	db := fixture(t)
	e := aggregator.New(aggregator.Options{Conn: db.Conn})
	site := testSites(t, "UTC", 2).Site(testSite)
	r := fxAsk(t, e, site, aggregator.KindAggregate, "metrics=visitors,pageviews,visits,bounce_rate&filters=visit:country==JP")
	if got := aggValues(r); jsonOf(got) != `{"bounce_rate":0,"pageviews":0,"visitors":0,"visits":0}` {
		t.Errorf("nobody: %s, want zeros", jsonOf(r.Results))
	}
	// One visitor (106) is withheld.
	if got := aggValues(fxAsk(t, e, site, aggregator.KindAggregate, "metrics=visitors&filters=visit:country==FR;event:page==/blog/b")); got["visitors"] != nil {
		t.Errorf("one visitor: %v, want withheld", got["visitors"])
	}
	ts := fxAsk(t, e, site, aggregator.KindTimeseries, "period=7d&date=2025-03-29&metrics=visitors,visits&filters=visit:country==JP")
	if ts.Meta.Withheld != 0 {
		t.Errorf("time series of nobody: %d points withheld, want 0: %s", ts.Meta.Withheld, jsonOf(ts.Results))
	}
	for _, p := range ts.Results.([]any) {
		if pt := p.(map[string]any); pt["visitors"] != 0.0 || pt["visits"] != 0.0 {
			t.Errorf("time series of nobody: %s, want zeros", jsonOf(pt))
		}
	}
	if got := aggValues(fxAsk(t, e, noisySite(t), aggregator.KindAggregate, "metrics=visitors&filters=visit:country==JP")); got["visitors"] != nil {
		t.Errorf("noisy, nobody: %v, want withheld as before", got["visitors"])
	}
}

// TestContainsFilter: Plausible's contains forms, prop~v (and
// prop==~v) and their negations prop!~v (prop!=~v), with | between
// values; LIKE and regular-expression metacharacters are themselves.
func TestContainsFilter(t *testing.T) {
	db := fixture(t)
	e := aggregator.New(aggregator.Options{Conn: db.Conn})
	site := testSites(t, "UTC", 2).Site(testSite)
	cases := []struct {
		filters string
		want    float64
	}{
		{"event:page~blog", 3},                     // 102, 105, 106
		{"event:page==~blog", 3},                   // Plausible's spelling
		{"event:page~blog/b|docs", 2},              // 106, 104
		{"visit:source~oog", 2},                    // 101, 102 (Google)
		{"visit:source!~oog", 6},                   // everyone else, Direct / None too
		{"visit:source!=~oog", 6},                  // the same
		{"event:page~%", 0},                        // % and _ are not wildcards
		{"event:page~_", 0},                        //
		{"event:page~.*", 0},                       // nor regular expressions
		{"event:page~/pricing;visit:country~E", 0}, // 101 (DE) alone: withheld... see below
		{"event:goal~ign", 5},                      // Signup
		{"event:props:plan~pr", 3},                 // pro: 101, 102, 105
	}
	for _, c := range cases {
		got := aggValues(fxAsk(t, e, site, aggregator.KindAggregate, "metrics=visitors&filters="+c.filters))["visitors"]
		if c.filters == "event:page~/pricing;visit:country~E" {
			// 101 (DE) alone under k = 2.
			if got != nil {
				t.Errorf("%s: %v, want withheld", c.filters, got)
			}
			continue
		}
		if got != c.want {
			t.Errorf("%s: visitors %v, want %v", c.filters, got, c.want)
		}
	}
	// A breakdown filtered on its own attribution property reads the
	// rollup: contains works there too.
	rows := rowsBy(t, fxAsk(t, e, site, aggregator.KindBreakdown, "property=visit:source&filters=visit:source~oog"), "source")
	if len(rows) != 1 || rows["Google"]["visitors"] != 2.0 {
		t.Errorf("breakdown by source~oog: %s, want Google with 2", jsonOf(rows))
	}
}

// TestPlausibleGoals: Plausible's own goal names, "Outbound Link: Click"
// and "File Download", name the outbound and download events, in filters
// and event:goal breakdowns, and event:props:url reads their link.
func TestPlausibleGoals(t *testing.T) {
	db := fixture(t)
	e := aggregator.New(aggregator.Options{Conn: db.Conn})
	site := testSites(t, "UTC", 2).Site(testSite)
	for filters, want := range map[string]string{
		"event:goal==Outbound Link: Click":                                             `{"events":2,"visitors":2}`, // 102, 106
		"event:goal==File Download":                                                    `{"events":2,"visitors":2}`, // 104, 105
		"event:goal==File Download|Signup":                                             `{"events":7,"visitors":5}`,
		"event:goal==Outbound Link: Click;event:props:url==https://github.com/glimpse": `{"events":2,"visitors":2}`,
		"event:props:url==https://example.com/glimpse.pdf":                             `{"events":2,"visitors":2}`,
		"event:goal~Download":                                                          `{"events":2,"visitors":2}`,
	} {
		if got := aggValues(fxAsk(t, e, site, aggregator.KindAggregate, "metrics=visitors,events&filters="+filters)); jsonOf(got) != want {
			t.Errorf("%s: %s, want %s", filters, jsonOf(got), want)
		}
	}
	goals := rowsBy(t, fxAsk(t, e, site, aggregator.KindBreakdown, "property=event:goal&metrics=visitors,events"), "goal")
	for g, n := range map[string]float64{"Signup": 5, "Outbound Link: Click": 2, "File Download": 2} {
		if goals[g]["visitors"] != n {
			t.Errorf("goal %q: %v visitors, want %v (rows %s)", g, goals[g]["visitors"], n, jsonOf(goals))
		}
	}
	// Pageview goals the filter names are goals of the breakdown too, by
	// their names: /pricing was viewed by 101, 103 and 202, /blog/* by
	// 102, 105 and 106.
	goals = rowsBy(t, fxAsk(t, e, site, aggregator.KindBreakdown, "property=event:goal&metrics=visitors,events&filters=event:goal==Signup|Visit /pricing|Visit /blog/*"), "goal")
	if want := `{"Signup":{"events":5,"goal":"Signup","visitors":5},"Visit /blog/*":{"events":3,"goal":"Visit /blog/*","visitors":3},` +
		`"Visit /pricing":{"events":3,"goal":"Visit /pricing","visitors":3}}`; jsonOf(goals) != want {
		t.Errorf("goals with pageview goals: %s, want %s", jsonOf(goals), want)
	}
	urls := rowsBy(t, fxAsk(t, e, site, aggregator.KindBreakdown, "property=event:props:url&metrics=visitors&filters=event:goal==Outbound Link: Click"), "url")
	if len(urls) != 1 || urls["https://github.com/glimpse"]["visitors"] != 2.0 {
		t.Errorf("outbound links by url: %s, want github.com/glimpse with 2", jsonOf(urls))
	}
}

// TestReferrer: visit:referrer is Plausible's, the referrer URL without
// scheme, "www." or a trailing slash, whichever way it was stored, and
// "Direct / None" for none (which a filter by it matches), from raw
// sessions and from the rollup alike.
func TestReferrer(t *testing.T) {
	db := fixture(t)
	e := aggregator.New(aggregator.Options{Conn: db.Conn})
	site := testSites(t, "UTC", 2).Site(testSite)
	for _, raw := range []bool{false, true} {
		for params, want := range map[string]map[string]float64{
			"property=visit:referrer": {"google.com/search": 2, "Direct / None": 4, "(other)": 2},
			"property=visit:referrer&filters=visit:referrer==Direct / None":              {"Direct / None": 4},
			"property=visit:referrer&filters=visit:referrer==google.com/search":          {"google.com/search": 2},
			"property=visit:referrer&date=2025-03-28":                                    {"google.com": 2},
			"property=visit:referrer&date=2025-03-28&filters=visit:referrer==google.com": {"google.com": 2},
			"property=visit:referrer&filters=visit:referrer~google":                      {"google.com/search": 2},
		} {
			q := fxQuery(t, aggregator.KindBreakdown, site, params+"&metrics=visitors")
			q.Raw = raw
			got := map[string]float64{}
			for k, row := range rowsBy(t, do(t, e, aggregator.KindBreakdown, q), "referrer") {
				got[k] = row["visitors"].(float64)
			}
			if jsonOf(got) != jsonOf(want) {
				t.Errorf("raw=%v %s: %s, want %s", raw, params, jsonOf(got), jsonOf(want))
			}
		}
	}
	// An aggregate filtered by referrer (the sessions side reads the
	// rollup, the events side raw events).
	if got := aggValues(fxAsk(t, e, site, aggregator.KindAggregate, "date=2025-03-28&metrics=visitors,visits&filters=visit:referrer==google.com")); jsonOf(got) != `{"visitors":2,"visits":2}` {
		t.Errorf("aggregate by referrer google.com: %s, want 2 and 2", jsonOf(got))
	}
	// The fixture's events carry no browser or OS version: "(not set)",
	// which filters match (8 visitors on the day).
	for _, p := range []string{"visit:os_version", "visit:browser_version"} {
		key := strings.TrimPrefix(p, "visit:")
		if rows := rowsBy(t, fxAsk(t, e, site, aggregator.KindBreakdown, "property="+p), key); len(rows) != 1 || rows["(not set)"]["visitors"] != 8.0 {
			t.Errorf("%s: %s, want (not set) with 8 visitors", p, jsonOf(rows))
		}
		if got := aggValues(fxAsk(t, e, site, aggregator.KindAggregate, "metrics=visitors&filters="+p+"==(not set)")); got["visitors"] != 8.0 {
			t.Errorf("%s==(not set): %s, want 8", p, jsonOf(got))
		}
	}
}

// TestUTMOmitsEmpty: a UTM breakdown lists the values set, as
// Plausible's does: visits without the parameter are no row, neither
// shown nor folded into (other), from the rollup or raw sessions.
func TestUTMOmitsEmpty(t *testing.T) {
	db := fixture(t)
	e := aggregator.New(aggregator.Options{Conn: db.Conn})
	for _, s := range []*config.Site{testSites(t, "UTC", 2).Site(testSite), noisySite(t)} {
		for _, raw := range []bool{false, true} {
			for _, p := range []string{"visit:utm_campaign", "visit:utm_source"} {
				q := fxQuery(t, aggregator.KindBreakdown, s, "property="+p+"&metrics=visitors,visits")
				q.Raw = raw
				r := do(t, e, aggregator.KindBreakdown, q)
				key := strings.TrimPrefix(p, "visit:")
				rows := rowsBy(t, r, key)
				want := map[string]bool{"spring": true, "newsletter": true}
				// A noisy count of folded rows is noisy: checked exact only.
				if len(rows) != 1 || (!s.Privacy.Noisy() && *r.Meta.FoldedRows != 0) {
					t.Errorf("%s raw=%v %s: %s, folded %v; want only the set value", s.Privacy.Aggregates, raw, p, jsonOf(rows), r.Meta.FoldedRows)
				}
				for k, row := range rows {
					if !want[k] || row["visitors"] != 2.0 {
						t.Errorf("%s raw=%v %s: row %s, want 2 visitors of a set value", s.Privacy.Aggregates, raw, p, jsonOf(row))
					}
				}
			}
		}
	}
}

// TestPageEntryMetrics: in a breakdown by event:page, visits,
// bounce_rate and visit_duration are those of the visits that entered on
// the page, as Plausible's v1 computes them (the row of the page in a
// breakdown by visit:entry_page), under filters too; a page entered by 1
// to k-1 people has them withheld, its page views still shown. The noisy
// path answers the same rows (noise aside).
func TestPageEntryMetrics(t *testing.T) {
	db := fixture(t)
	e := aggregator.New(aggregator.Options{Conn: db.Conn})
	site := testSites(t, "UTC", 2).Site(testSite)
	// Entries on 2025-03-29: "/" by 101, 102, 104 (two pages each) and
	// 201 (bounced); "/pricing" by 103 and 202 (both bounced); "/blog/a"
	// by 105 alone; "/blog/b" by 106, "/docs" by nobody: (other).
	const metrics = "metrics=visitors,pageviews,visits,bounce_rate,visit_duration"
	cases := []struct{ filters, want string }{
		{"", `{"(other)":{"bounce_rate":null,"page":"(other)","pageviews":2,"visit_duration":null,"visitors":2,"visits":null,"withheld":"k-anonymity: fewer than 2 visitors entered on this page"},` +
			`"/":{"bounce_rate":25,"page":"/","pageviews":4,"visit_duration":0,"visitors":4,"visits":4},` +
			`"/blog/a":{"bounce_rate":null,"page":"/blog/a","pageviews":2,"visit_duration":null,"visitors":2,"visits":null,"withheld":"k-anonymity: fewer than 2 visitors entered on this page"},` +
			`"/pricing":{"bounce_rate":100,"page":"/pricing","pageviews":3,"visit_duration":0,"visitors":3,"visits":2}}`},
		// DE: 101, 102 and 201 entered on "/"; /pricing and /blog/a
		// fold into (other), which nobody entered on.
		{"&filters=visit:country==DE", `{"(other)":{"bounce_rate":0,"page":"(other)","pageviews":2,"visit_duration":0,"visitors":2,"visits":0},` +
			`"/":{"bounce_rate":33,"page":"/","pageviews":3,"visit_duration":0,"visitors":3,"visits":3}}`},
		// Signup's events by their page (conversion_rate's path): its
		// visits entered on "/" (101, 102, 104), /pricing (103) and
		// /blog/a (105, bounced); only /pricing has 2 converters.
		{"&filters=event:goal==Signup", `{"(other)":{"bounce_rate":25,"page":"(other)","pageviews":0,"visit_duration":0,"visitors":3,"visits":4},` +
			`"/pricing":{"bounce_rate":null,"page":"/pricing","pageviews":0,"visit_duration":null,"visitors":2,"visits":null,"withheld":"k-anonymity: fewer than 2 visitors entered on this page"}}`},
	}
	for _, c := range cases {
		for _, conv := range []string{"", ",conversion_rate"} {
			if conv != "" && !strings.Contains(c.filters, "goal") {
				continue
			}
			got := rowsBy(t, fxAsk(t, e, site, aggregator.KindBreakdown, "property=event:page&"+metrics+conv+c.filters), "page")
			for _, r := range got {
				delete(r, "conversion_rate")
			}
			if jsonOf(got) != c.want {
				t.Errorf("by page%s%s:\n got %s\nwant %s", c.filters, conv, jsonOf(got), c.want)
			}
		}
	}
	// The same figures as the breakdown by entry page.
	entry := rowsBy(t, fxAsk(t, e, site, aggregator.KindBreakdown, "property=visit:entry_page&metrics=visits,bounce_rate,visit_duration"), "entry_page")
	pages := rowsBy(t, fxAsk(t, e, site, aggregator.KindBreakdown, "property=event:page&metrics=visits,bounce_rate,visit_duration"), "page")
	for _, p := range []string{"/", "/pricing"} {
		for _, m := range []string{"visits", "bounce_rate", "visit_duration"} {
			if entry[p][m] != pages[p][m] {
				t.Errorf("%s %s: %v by page, %v by entry page", p, m, pages[p][m], entry[p][m])
			}
		}
	}
	// Noisy: the rows are shown by their page's visitors, the entry
	// metrics withheld under k noisy entering visitors.
	noisy := rowsBy(t, fxAsk(t, e, noisySite(t), aggregator.KindBreakdown, "property=event:page&"+metrics), "page")
	if r := noisy["/blog/a"]; r == nil || r["bounce_rate"] != nil || r["withheld"] == nil {
		t.Errorf("noisy /blog/a: %s, want its entry metrics withheld", jsonOf(r))
	}
	if r := noisy["/"]; r == nil || r["bounce_rate"] == nil || r["visits"] == nil || r["withheld"] != nil {
		t.Errorf("noisy /: %s, want entry metrics", jsonOf(r))
	}
}

// TestVisitEngagementBreakdown: with an event:page filter, time_on_page
// is answered in a breakdown by a visit property, as Plausible's v1
// documents: the time on the filtered pages in each row's visits, the
// aggregate's figure filtered to the row's value.
func TestVisitEngagementBreakdown(t *testing.T) {
	db := fixture(t)
	e := aggregator.New(aggregator.Options{Conn: db.Conn})
	site := testSites(t, "UTC", 2).Site(testSite)
	// "/" or /pricing: Google 101 (100 s and 120 s) and 102 (20 s);
	// Direct / None 104, 201, 202 (no engagement); Hacker News 103
	// alone, under k.
	const pages = "event:page==/pricing|/"
	want := `{"Direct / None":{"source":"Direct / None","time_on_page":0,"visitors":3},"Google":{"source":"Google","time_on_page":80,"visitors":2}}`
	got := rowsBy(t, fxAsk(t, e, site, aggregator.KindBreakdown, "property=visit:source&metrics=visitors,time_on_page&filters="+pages), "source")
	if jsonOf(got) != want {
		t.Errorf("by source under %s:\n got %s\nwant %s", pages, jsonOf(got), want)
	}
	agg := aggValues(fxAsk(t, e, site, aggregator.KindAggregate, "metrics=time_on_page&filters="+pages+";visit:source==Google"))
	if agg["time_on_page"] != 80.0 {
		t.Errorf("aggregate of Google under %s: %s, want 80", pages, jsonOf(agg))
	}
	// Without a page filter it stays refused.
	v := map[string]string{"period": "day", "date": "2025-03-29", "property": "visit:source", "metrics": "time_on_page"}
	if _, err := aggregator.ParseQuery(aggregator.KindBreakdown, site, func(k string) string { return v[k] }, fxNow); err == nil {
		t.Error("time_on_page by source without a page filter: accepted")
	}
	noisy := rowsBy(t, fxAsk(t, e, noisySite(t), aggregator.KindBreakdown, "property=visit:source&metrics=visitors,time_on_page&filters="+pages), "source")
	if r := noisy["Google"]; r == nil || r["time_on_page"] == nil {
		t.Errorf("noisy: %s, want a Google row with time_on_page", jsonOf(noisy))
	}
}
