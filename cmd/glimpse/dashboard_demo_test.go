package main

// The dashboard of data that does not mislead: no "↑ 100%" against an
// empty previous period, downloads where the Downloads tab reads them.

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/glimpse-analytics/glimpse/collector/sink"
	"github.com/glimpse-analytics/glimpse/internal/apptest"
	"github.com/glimpse-analytics/glimpse/internal/apptest/browser"
	"github.com/glimpse-analytics/glimpse/internal/chtest"
	"github.com/glimpse-analytics/glimpse/internal/storage/seed"
)

// sharedLinkSite is a sites file entry readable by a shared link (token
// dashToken), with exact numbers and k = 2.
func sharedLinkSite(domain string) string {
	return fmt.Sprintf("  - domain: %s\n    privacy: {aggregates: exact, k_anonymity: 2}\n    shared_links:\n      - name: board\n        token: %s\n", domain, dashToken)
}

// openShared opens a site's dashboard through its shared link and waits
// for every panel.
func openShared(t *testing.T, ctx context.Context, base, domain, query string) {
	t.Helper()
	browser.Navigate(t, ctx, base+"/dashboard/site?site="+domain+"&auth="+dashToken+query, "")
	browser.WaitJS(t, ctx, "every panel", panelsLoaded)
}

func TestDashboardEmptyPreviousPeriod(t *testing.T) {
	const site = "recent.test"
	b := browser.Shared(t)
	db := chtest.Migrated(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	w := sink.New(sink.Options{Conn: db.Conn, BatchSize: 50000, QueueSize: 100000, SessionInterval: seed.SessionInterval})
	// Three days of traffic: the 7 days before the last 7 hold nothing.
	if _, err := seed.Write(ctx, w, seed.Options{Site: site, Events: 4000, Days: 3, Seed: 5}); err != nil {
		t.Fatal(err)
	}
	cfg := apptest.WriteConfig(t, "sites:\n"+sharedLinkSite(site))
	srv := apptest.Start(t, nil, "--config", cfg, "--clickhouse", db.DSN)
	tab := b.Tab(t, "previous")
	openShared(t, tab.Ctx, srv.URL(), site, "&period=7d")

	changes := browser.Value[map[string]string](t, tab.Ctx,
		`Object.fromEntries([...document.querySelectorAll('.kpi')].map(k => [k.dataset.metric, k.querySelector('.kpi-change').textContent]))`)
	if len(changes) != 8 {
		t.Fatalf("KPI changes: %v, want 8", changes)
	}
	for m, c := range changes {
		if c != "—" {
			t.Errorf("%s: change %q against a previous period without visitors, want \"—\"", m, c)
		}
	}

	// The seed's downloads are in the Downloads tab, and no custom
	// "Download" goal; as goals they are Plausible's "File Download".
	if goals := panelRows(t, tab.Ctx, "goals"); slices.Contains(goals, "Download") {
		t.Errorf("goals list downloads as a custom event: %v", goals)
	}
	browser.Eval(t, tab.Ctx, `[...document.querySelectorAll('#panel-goals .tab')].find(b => b.textContent === 'Downloads').click()`)
	browser.WaitJS(t, tab.Ctx, "the Downloads tab's answer",
		`!document.querySelector('#panel-goals .status').classList.contains('loading') &&
		 (document.querySelector('#panel-goals .status').textContent !== '' ||
		  [...document.querySelectorAll('#panel-goals tbody tr')].some(r => r.dataset.value.startsWith('https://')))`)
	rows := panelRows(t, tab.Ctx, "goals")
	if len(rows) == 0 || !strings.HasPrefix(rows[0], "https://"+site+"/files/") {
		t.Errorf("Downloads tab rows %v, want the seeded files", rows)
	}
}

// TestDashboardNewSite: a site without events shows its install snippet
// (the collector's public URL, the site's domain) and waits for the first
// page view instead of zeroes; the page view arrives, the dashboard shows.
func TestDashboardNewSite(t *testing.T) {
	const site = "new.test"
	b := browser.Shared(t)
	db := chtest.Migrated(t)
	cfg := apptest.WriteConfig(t, "sites:\n"+sharedLinkSite(site))
	srv := apptest.Start(t, nil, "--config", cfg, "--clickhouse", db.DSN, "--public-url", "https://stats.example.org/",
		"--trusted-proxies", "127.0.0.1/32", "--flush-interval", "100ms", "--session-flush-interval", "200ms")
	tab := b.Tab(t, "new")
	browser.Navigate(t, tab.Ctx, srv.URL()+"/dashboard/site?site="+site+"&auth="+dashToken, "")
	browser.WaitJS(t, tab.Ctx, "the install snippet", `document.getElementById('snippet') !== null`)
	want := `<script defer data-domain="new.test" src="https://stats.example.org/js/glimpse.js"></script>`
	if got := browser.Value[string](t, tab.Ctx, `document.getElementById('snippet').textContent`); got != want {
		t.Errorf("snippet %q, want %q", got, want)
	}
	text := browser.Value[string](t, tab.Ctx, `document.body.innerText`)
	if !strings.Contains(text, "Waiting for the first page view") {
		t.Errorf("the page does not say it waits for the first page view:\n%s", text)
	}
	if strings.Contains(text, "0%") || browser.Value[int](t, tab.Ctx, `document.querySelectorAll('.kpi').length`) != 0 {
		t.Errorf("a site without events shows key figures:\n%s", text)
	}

	// The first page views (two visitors: k is 2) turn the page into the dashboard.
	for i := range 2 {
		body := fmt.Sprintf(`{"n":"pageview","u":"https://%s/","d":%q,"w":1280}`, site, site)
		code, h := srv.Post(t, "/api/event", body, map[string][]string{
			"User-Agent":      {"Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0"},
			"X-Forwarded-For": {fmt.Sprintf("198.51.100.%d", i+1)},
		})
		if code != 202 || h.Get("X-Glimpse-Dropped") != "" {
			t.Fatalf("page view: %d %s", code, h.Get("X-Glimpse-Dropped"))
		}
	}
	browser.WaitJS(t, tab.Ctx, "the dashboard after the first page views",
		`document.getElementById('install') === null && document.querySelector('.kpi[data-metric="visitors"] .kpi-value[data-value]') !== null`)
	if v := browser.Value[string](t, tab.Ctx, `document.querySelector('.kpi[data-metric="visitors"] .kpi-value').dataset.value`); v != "2" {
		t.Errorf("visitors after the first page views: %s, want 2", v)
	}
}

// TestDashboardNoneChipAndWeekTicks: the "(none)" row filters by the empty value
// (visit:connection==) and its chip says "(none)"; and a custom range by
// weeks starting on a Thursday, Oct 1, labels its first point Oct 1, the
// first day it counts, not the Monday (Sep 28) of its week.
func TestDashboardNoneChipAndWeekTicks(t *testing.T) {
	const site = "chips.test"
	b := browser.Shared(t)
	db := chtest.Migrated(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	w := sink.New(sink.Options{Conn: db.Conn, BatchSize: 50000, QueueSize: 100000, SessionInterval: seed.SessionInterval})
	if _, err := seed.Write(ctx, w, seed.Options{Site: site, Events: 4000, Days: 3, Seed: 9}); err != nil {
		t.Fatal(err)
	}
	cfg := apptest.WriteConfig(t, "sites:\n"+sharedLinkSite(site)+fmt.Sprintf("api_keys:\n  - name: t\n    sha256: %q\n    sites: [%s]\n", apptest.KeyHash(dashAPIKey), site))
	srv := apptest.Start(t, nil, "--config", cfg, "--clickhouse", db.DSN)
	tab := b.Tab(t, "chips")
	openShared(t, tab.Ctx, srv.URL(), site, "")

	browser.Eval(t, tab.Ctx, `[...document.querySelectorAll('#panel-devices .tab')].find(b => b.textContent === 'Connections').click()`)
	browser.WaitJS(t, tab.Ctx, "the (none) connection row",
		`[...document.querySelectorAll('#panel-devices tbody tr')].some(r => r.dataset.value === '' && r.textContent.startsWith('(none)'))`)
	browser.Eval(t, tab.Ctx, `[...document.querySelectorAll('#panel-devices tbody tr')].find(r => r.dataset.value === '').click()`)
	browser.WaitJS(t, tab.Ctx, "the filter chip", `document.querySelector('#filters .chip') !== null`)
	if chip := browser.Value[string](t, tab.Ctx, `document.querySelector('#filters .chip span').textContent`); chip != "Connection is (none)" {
		t.Errorf("chip %q, want \"Connection is (none)\"", chip)
	}
	if f := browser.Value[string](t, tab.Ctx, `new URL(location.href).searchParams.get('filters')`); f != "visit:connection==" {
		t.Errorf("filter %q, want visit:connection==", f)
	}
	want := statsAPI(t, srv.Addr, "aggregate", url.Values{"site_id": {site}, "period": {"30d"}, "metrics": {"visitors"}, "filters": {"visit:connection=="}})
	wantV := fmt.Sprint(want["results"].(map[string]any)["visitors"].(map[string]any)["value"])
	visitors := `document.querySelector('.kpi[data-metric="visitors"] .kpi-value[data-value]')`
	browser.WaitJS(t, tab.Ctx, "the filtered key figures", visitors+` !== null && `+visitors+`.dataset.value === '`+wantV+`'`)
	if got := browser.Value[string](t, tab.Ctx, visitors+`.dataset.value`); got != wantV || got == "0" {
		t.Errorf("visitors without a connection type: page %s, Stats API %s", got, wantV)
	}

	openShared(t, tab.Ctx, srv.URL(), site, "&period=custom&date=2026-10-01,2026-10-31&interval=week")
	browser.WaitJS(t, tab.Ctx, "the chart", `document.querySelector('#chart svg text.axis[text-anchor="start"]') !== null`)
	if tick := browser.Value[string](t, tab.Ctx, `document.querySelector('#chart svg text.axis[text-anchor="start"]').textContent`); tick != "Oct 1" {
		t.Errorf("first week tick of Oct 1-31: %q, want \"Oct 1\"", tick)
	}
}
