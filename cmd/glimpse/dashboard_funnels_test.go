package main

// The Funnels panel in real headless Chromium, at desktop width and on a
// 390 px phone, against the Stats API's funnel endpoint, and its CSV.

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

func TestDashboardFunnels(t *testing.T) {
	const site = "funnels.test"
	b := browser.Shared(t)
	db := chtest.Migrated(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	w := sink.New(sink.Options{Conn: db.Conn, BatchSize: 50000, QueueSize: 100000, SessionInterval: seed.SessionInterval})
	if _, err := seed.Generate(ctx, w, seed.Options{Site: site, Events: 8000, Days: 20, Seed: 21}); err != nil {
		t.Fatal(err)
	}
	if lost, err := w.Close(ctx); err != nil || lost > 0 {
		t.Fatalf("seed: %d lost, %v", lost, err)
	}
	funnels := `    funnels:
      - name: Read then price
        steps: [{page: /blog/**, name: Blog}, {page: /pricing}, {page: /signup}]
        window: 30m
      - name: Signup
        steps: [{page: /}, {goal: Signup}]
`
	cfg := apptest.WriteConfig(t, "sites:\n"+sharedLinkSite(site)+funnels+
		fmt.Sprintf("api_keys:\n  - name: test\n    sha256: %q\n    sites: [%s]\n", apptest.KeyHash(dashAPIKey), site))
	srv := apptest.Start(t, nil, "--config", cfg, "--clickhouse", db.DSN)
	tab := b.Tab(t, "funnels")

	type step struct {
		Name, Visitors, Conv, Drop string
		Width                      float64
	}
	type shown struct {
		Options []string
		Steps   []step
		Fits    bool
	}
	read := func() shown {
		return browser.Value[shown](t, tab.Ctx, `(() => {
			const panel = document.getElementById('funnel-panel');
			let fits = panel.getBoundingClientRect().right <= window.innerWidth + 0.5;
			const steps = [...panel.querySelectorAll('.funnel-step')].map(li => {
				const v = li.querySelector('.funnel-visitors'), c = li.querySelector('.funnel-conv'), d = li.querySelector('.funnel-drop');
				for (const e of li.querySelectorAll('*')) if (e.getBoundingClientRect().right > window.innerWidth + 0.5) fits = false;
				return {Name: li.querySelector('.funnel-name').textContent, Visitors: v ? v.dataset.value : 'withheld',
					Conv: c && c.dataset.value ? c.dataset.value : '', Drop: d ? d.dataset.value : '',
					Width: li.querySelector('.funnel-bar').getBoundingClientRect().width / li.querySelector('.funnel-track').getBoundingClientRect().width};
			});
			return {Options: [...panel.querySelectorAll('#funnel-choice option')].map(o => o.value), Steps: steps, Fits: fits};
		})()`)
	}
	check := func(width, name string) {
		t.Helper()
		want := statsAPI(t, srv.Addr, "funnel", url.Values{"site_id": {site}, "period": {"30d"}, "funnel": {name}})["results"].(map[string]any)
		browser.WaitJS(t, tab.Ctx, "the funnel", `document.querySelectorAll('#funnel-steps .funnel-step').length > 0 && !document.querySelector('#funnel-status.loading') && document.getElementById('funnel-choice').value === `+fmt.Sprintf("%q", name))
		got := read()
		if strings.Join(got.Options, "|") != "Read then price|Signup" {
			t.Errorf("%s: funnels offered %q", width, got.Options)
		}
		steps := want["steps"].([]any)
		if len(got.Steps) != len(steps) {
			t.Fatalf("%s: %d steps shown, the API has %d", width, len(got.Steps), len(steps))
		}
		first := 0.0
		for i, s := range steps {
			s := s.(map[string]any)
			v, _ := s["visitors"].(float64)
			if i == 0 {
				first = v
				if v < 10 {
					t.Fatalf("%s: step 1 of %q has %v visitors: the test data tests nothing", width, name, s["visitors"])
				}
			}
			w := step{Name: fmt.Sprint(s["name"]), Visitors: fmt.Sprint(s["visitors"])}
			if s["visitors"] == nil {
				w.Visitors = "withheld"
			} else if i > 0 {
				w.Conv, w.Drop = fmt.Sprint(s["step_conversion_rate"]), fmt.Sprint(s["dropoff"])
			}
			g := got.Steps[i]
			if g.Name != w.Name || g.Visitors != w.Visitors || g.Conv != w.Conv || g.Drop != w.Drop {
				t.Errorf("%s: step %d shows %+v, the API %+v", width, i+1, g, w)
			}
			if s["visitors"] != nil && first > 0 && (g.Width < v/first-0.02 || g.Width > v/first+0.02) {
				t.Errorf("%s: step %d's bar is %.2f of the track, want %.2f", width, i+1, g.Width, v/first)
			}
		}
		if !got.Fits {
			t.Errorf("%s: the funnel panel is wider than the viewport", width)
		}
	}

	openShared(t, tab.Ctx, srv.URL(), site, "&period=30d")
	check("1280 px", "Read then price")
	// Choosing the other funnel draws it.
	if _, err := chromedp.Run(tab.Ctx, chromedp.Evaluate[bool](`(() => { const s = document.getElementById('funnel-choice'); s.value = 'Signup'; return s.dispatchEvent(new Event('change')); })()`)); err != nil {
		t.Fatal(err)
	}
	check("1280 px", "Signup")
	browser.Screenshot(t, tab.Ctx, "dashboard-funnels.png")

	// The CSV has the API's numbers.
	body, err := chromedp.Run(tab.Ctx, chromedp.Evaluate[string](`fetch(document.getElementById('funnel-csv').href).then(r => r.text())`, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(strings.NewReader(body)).ReadAll()
	if err != nil || len(recs) != 3 || strings.Join(recs[0], ",") != "step,name,visitors,conversion_rate,step_conversion_rate,dropoff,withheld" {
		t.Fatalf("funnel CSV: %v\n%s", err, body)
	}
	api := statsAPI(t, srv.Addr, "funnel", url.Values{"site_id": {site}, "period": {"30d"}, "funnel": {"Signup"}})["results"].(map[string]any)
	for i, s := range api["steps"].([]any) {
		s := s.(map[string]any)
		if v := s["visitors"]; v != nil && recs[i+1][2] != fmt.Sprint(v) || recs[i+1][1] != fmt.Sprint(s["name"]) {
			t.Errorf("funnel CSV row %d %q, the API %v", i+1, recs[i+1], s)
		}
	}

	// A phone: the same numbers, nothing wider than the screen.
	if err := chromedp.Do(tab.Ctx, chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2), chromedp.EmulateMobile)); err != nil {
		t.Fatal(err)
	}
	openShared(t, tab.Ctx, srv.URL(), site, "&period=30d&funnel="+url.QueryEscape("Read then price"))
	check("390 px", "Read then price")
	if w := browser.Value[[]int](t, tab.Ctx, `[document.documentElement.scrollWidth, window.innerWidth]`); w[0] > w[1] {
		t.Errorf("390 px: page is %d px wide", w[0])
	}
	browser.Screenshot(t, tab.Ctx, "dashboard-funnels-phone.png", "/tmp/dashboard-funnels-phone.png")
	if err := chromedp.Do(tab.Ctx, chromedp.EmulateViewport(1280, 800)); err != nil {
		t.Fatal(err)
	}
}
