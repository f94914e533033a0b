package main

// The goals panel's revenue columns in real headless Chromium, at desktop
// width and on a 390 px phone, and in the panel's CSV.

import (
	"context"
	"encoding/csv"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/glimpse-analytics/glimpse/collector/sink"
	"github.com/glimpse-analytics/glimpse/internal/apptest"
	"github.com/glimpse-analytics/glimpse/internal/apptest/browser"
	"github.com/glimpse-analytics/glimpse/internal/chtest"
	"github.com/glimpse-analytics/glimpse/internal/storage/seed"
)

// goalMoney is what the goals panel shows of a money object: per currency
// its data-value, in currency order.
func goalMoney(v any) string {
	m, _ := v.(map[string]any)
	each, _ := m["by_currency"].([]any)
	if len(each) == 0 && m["currency"] != nil {
		each = []any{m}
	}
	var out []string
	for _, x := range each {
		x := x.(map[string]any)
		out = append(out, fmt.Sprintf("%v %v", x["currency"], x["value"]))
	}
	return strings.Join(out, "; ")
}

func TestDashboardRevenue(t *testing.T) {
	const site, plain = "shop.test", "plain.test"
	b := browser.Shared(t)
	db := chtest.Migrated(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	w := sink.New(sink.Options{Conn: db.Conn, BatchSize: 50000, QueueSize: 100000, SessionInterval: seed.SessionInterval})
	if _, err := seed.Generate(ctx, w, seed.Options{Site: site, Events: 6000, Days: 20, Seed: 11, Revenue: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := seed.Generate(ctx, w, seed.Options{Site: plain, Events: 3000, Days: 20, Seed: 12}); err != nil {
		t.Fatal(err)
	}
	if lost, err := w.Close(ctx); err != nil || lost > 0 {
		t.Fatalf("seed: %d lost, %v", lost, err)
	}
	const plainToken = "plain-token-0123456789abcdef"
	cfg := apptest.WriteConfig(t, "sites:\n"+sharedLinkSite(site)+strings.ReplaceAll(sharedLinkSite(plain), dashToken, plainToken)+
		fmt.Sprintf("api_keys:\n  - name: test\n    sha256: %q\n    sites: [%s, %s]\n", apptest.KeyHash(dashAPIKey), site, plain))
	srv := apptest.Start(t, nil, "--config", cfg, "--clickhouse", db.DSN)
	tab := b.Tab(t, "revenue")

	// goalsShown maps each goal row to its revenue cells' currencies and
	// values, and says whether the cells fit their columns and the viewport.
	type shown struct {
		Heads []string
		Rows  map[string][]string
		Fits  bool
	}
	read := func() shown {
		return browser.Value[shown](t, tab.Ctx, `(() => {
			const heads = [...document.querySelectorAll('#panel-goals thead th')].map(th => th.textContent);
			const rows = {};
			let fits = true;
			for (const tr of document.querySelectorAll('#panel-goals tbody tr')) {
				rows[tr.dataset.value] = [...tr.querySelectorAll('td.money')].map(td =>
					[...td.querySelectorAll('.cur')].map(c => c.dataset.currency + ' ' + c.dataset.value).join('; '));
				for (const td of tr.querySelectorAll('td')) {
					const r = td.getBoundingClientRect();
					if (td.scrollWidth > td.clientWidth + 1 || r.right > window.innerWidth + 0.5) fits = false;
				}
			}
			return {Heads: heads, Rows: rows, Fits: fits};
		})()`)
	}
	want := statsAPI(t, srv.Addr, "breakdown", url.Values{"site_id": {site}, "period": {"30d"}, "property": {"event:goal"},
		"metrics": {"visitors,events,total_revenue,average_revenue"}})["results"].([]any)
	check := func(width string) {
		t.Helper()
		got := read()
		if strings.Join(got.Heads, "|") != "Goal|Visitors|Events|Revenue|Average" {
			t.Errorf("%s: goals panel heads %q, want the revenue columns", width, got.Heads)
		}
		purchase := false
		for _, r := range want {
			r := r.(map[string]any)
			goal := fmt.Sprint(r["goal"])
			w := []string{goalMoney(r["total_revenue"]), goalMoney(r["average_revenue"])}
			if w[0] == "" {
				w = []string{"", ""} // no revenue: a muted dash, no currency
			}
			if g := got.Rows[goal]; strings.Join(g, "|") != strings.Join(w, "|") {
				t.Errorf("%s: goal %q shows revenue %q, the Stats API %q", width, goal, g, w)
			}
			purchase = purchase || (goal == "Purchase" && strings.Contains(w[0], "EUR") && strings.Contains(w[0], "USD"))
		}
		if !purchase {
			t.Errorf("the seeded Purchase goal has no revenue in both EUR and USD: %v", want)
		}
		if !got.Fits {
			t.Errorf("%s: a goals panel cell overflows its column or the viewport", width)
		}
	}

	openShared(t, tab.Ctx, srv.URL(), site, "&period=30d")
	check("1280 px")
	browser.Screenshot(t, tab.Ctx, "dashboard-revenue.png")

	// The panel's CSV carries the same revenue, one currency after another.
	body, err := chromedp.Run(tab.Ctx, chromedp.Evaluate[string](`fetch(document.querySelector('#panel-goals a.csv').href).then(r => r.text())`, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(strings.NewReader(body)).ReadAll()
	if err != nil || len(recs) != len(want)+1 {
		t.Fatalf("goals CSV: %v, %d records for %d rows:\n%s", err, len(recs), len(want), body)
	}
	if h := strings.Join(recs[0], ","); h != "goal,visitors,events,total_revenue,average_revenue" {
		t.Errorf("goals CSV header %q", h)
	}
	for i, r := range want {
		r := r.(map[string]any)
		w := []string{goalMoney(r["total_revenue"]), goalMoney(r["average_revenue"])}
		for j := range w {
			// "EUR 123.5; USD 9" in the panel's order is "123.5 EUR; 9 USD" in the CSV.
			parts := strings.Split(w[j], "; ")
			for k, p := range parts {
				if cur, v, ok := strings.Cut(p, " "); ok {
					parts[k] = v + " " + cur
				}
			}
			if w[j] = strings.Join(parts, "; "); w[j] == "" {
				w[j] = "0"
			}
		}
		if got := recs[i+1][3:]; strings.Join(got, "|") != strings.Join(w, "|") {
			t.Errorf("goals CSV row %d (%v): revenue %q, the Stats API %q", i+1, r["goal"], got, w)
		}
	}

	// A phone: the same columns, nothing wider than the screen.
	if err := chromedp.Do(tab.Ctx, chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2), chromedp.EmulateMobile)); err != nil {
		t.Fatal(err)
	}
	openShared(t, tab.Ctx, srv.URL(), site, "&period=30d")
	check("390 px")
	if w := browser.Value[[]int](t, tab.Ctx, `[document.documentElement.scrollWidth, window.innerWidth]`); w[0] > w[1] {
		t.Errorf("390 px: page is %d px wide", w[0])
	}
	browser.Screenshot(t, tab.Ctx, "dashboard-revenue-phone.png", "/tmp/dashboard-revenue-phone.png")
	if err := chromedp.Do(tab.Ctx, chromedp.EmulateViewport(1280, 800)); err != nil {
		t.Fatal(err)
	}

	// A site without revenue has no revenue columns.
	browser.Navigate(t, tab.Ctx, srv.URL()+"/dashboard/site?site="+plain+"&auth="+plainToken+"&period=30d", "")
	browser.WaitJS(t, tab.Ctx, "every panel", panelsLoaded)
	if got := read(); strings.Join(got.Heads, "|") != "Goal|Visitors|Events" {
		t.Errorf("a site without revenue: goals panel heads %q, want no revenue columns", got.Heads)
	}
}
