package main

// The dashboard's comparison selector in real headless Chromium against
// `glimpse serve`: traffic in the last 30 days and in the same days a
// year before, compared year over year and with custom dates, at desktop
// width and at 390 px.

import (
	"context"
	"encoding/csv"
	"fmt"
	"net/http"
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

func TestDashboardCompare(t *testing.T) {
	b := browser.Shared(t)
	db := chtest.Migrated(t)
	ctx0, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	w := sink.New(sink.Options{Conn: db.Conn, BatchSize: 50000, QueueSize: 200000})
	now := time.Now().UTC()
	if _, err := seed.Generate(ctx0, w, seed.Options{Site: dashSite, Events: 6000, Days: 30, Seed: 11}); err != nil {
		t.Fatal(err)
	}
	if _, err := seed.Generate(ctx0, w, seed.Options{Site: dashSite, Events: 4000, Days: 40, End: now.AddDate(-1, 0, 1), Seed: 12}); err != nil {
		t.Fatal(err)
	}
	if lost, err := w.Close(ctx0); err != nil || lost > 0 {
		t.Fatalf("seed: %d lost, %v", lost, err)
	}
	cfg := apptest.WriteConfig(t, fmt.Sprintf(`sites:
  - domain: %s
    privacy:
      k_anonymity: 5
      aggregates: exact
    shared_links:
      - name: board
        token: %s
api_keys:
  - name: test
    sha256: %q
    sites: [%s]
`, dashSite, dashToken, apptest.KeyHash(dashAPIKey), dashSite))
	srv := apptest.Start(t, nil, "--config", cfg, "--clickhouse", db.DSN)
	base := "http://" + srv.Addr + "/dashboard/site?site=" + dashSite + "&auth=" + dashToken

	tab := b.Tab(t, "compare")
	ctx := tab.Ctx
	browser.Navigate(t, ctx, base, "")
	browser.WaitJS(t, ctx, "every panel", panelsLoaded)
	// A CSP violation (an inline style or script the policy blocks) is
	// reported to the page: count them from here on.
	browser.Eval(t, ctx, `window.cspViolations = []; document.addEventListener('securitypolicyviolation', e => window.cspViolations.push(e.violatedDirective + ' ' + e.blockedURI))`)
	if n := browser.Value[int](t, ctx, `document.querySelectorAll('#chart path.compare, #panels th.change').length`); n != 0 {
		t.Errorf("comparison off: %d comparison lines or change columns", n)
	}

	// compared checks the page against the Stats API asked with params:
	// the KPI changes, the dashed line and its legend and tooltip, and
	// the change column of the top pages.
	compared := func(t *testing.T, params url.Values) {
		t.Helper()
		q := func(extra url.Values) url.Values {
			v := url.Values{"period": {"30d"}}
			for k, x := range params {
				v[k] = x
			}
			for k, x := range extra {
				v[k] = x
			}
			return v
		}
		agg := statsAPI(t, srv.Addr, "aggregate", q(url.Values{"metrics": {"visitors,pageviews,bounce_rate"}}))["results"].(map[string]any)
		got := browser.Value[map[string]string](t, ctx, `Object.fromEntries([...document.querySelectorAll('.kpi')].map(k => [k.dataset.metric, k.querySelector('.kpi-change').dataset.change || '']))`)
		for _, m := range []string{"visitors", "pageviews", "bounce_rate"} {
			want := fmt.Sprint(agg[m].(map[string]any)["change"])
			if agg["visitors"].(map[string]any)["comparison_value"] == 0.0 {
				want = "none"
			}
			if got[m] != want {
				t.Errorf("%v: the %s card changes by %q, the Stats API by %s", params, m, got[m], want)
			}
		}
		if n := browser.Value[int](t, ctx, `document.querySelectorAll('#chart path.line.compare[data-series=comparison]').length`); n != 1 {
			t.Errorf("%v: %d comparison lines in the chart, want 1", params, n)
		}
		if dash := browser.Value[string](t, ctx, `getComputedStyle(document.querySelector('#chart path.line.compare')).strokeDasharray`); dash == "none" || dash == "" {
			t.Errorf("%v: the comparison line is not dashed (stroke-dasharray %q)", params, dash)
		}
		if legend := browser.Value[string](t, ctx, `document.querySelector('#chart-legend [data-series=comparison]').textContent`); !strings.Contains(legend, "Compared") {
			t.Errorf("%v: legend %q", params, legend)
		}
		ts := statsAPI(t, srv.Addr, "timeseries", q(url.Values{"metrics": {"visitors"}}))["results"].([]any)
		last := ts[len(ts)-1].(map[string]any)
		tip := browser.Value[string](t, ctx, `(() => {
			const o = document.querySelector('#chart .overlay'), r = o.getBoundingClientRect();
			o.dispatchEvent(new PointerEvent('pointermove', {clientX: r.right - 1, clientY: r.top + r.height / 2, bubbles: true}));
			const tip = document.querySelector('#chart .tip .tip-compare');
			return tip ? tip.textContent : '' })()`)
		if c, ok := last["comparison"].(map[string]any); ok && c["visitors"] != nil {
			if !strings.Contains(tip, ": "+fmt.Sprint(c["visitors"])) {
				t.Errorf("%v: the last point's tooltip says %q, want the comparison's %v visitors", params, tip, c["visitors"])
			}
		} else if tip == "" {
			t.Errorf("%v: the tooltip has no comparison line", params)
		}
		bd := statsAPI(t, srv.Addr, "breakdown", q(url.Values{"property": {"event:page"}, "metrics": {"visitors,pageviews"}, "limit": {"10"}}))["results"].([]any)
		want := map[string]string{}
		for _, r := range bd {
			r := r.(map[string]any)
			ch := r["change"].(map[string]any)["visitors"]
			want[fmt.Sprint(r["page"])] = ""
			if ch != nil {
				want[fmt.Sprint(r["page"])] = fmt.Sprint(ch)
			}
		}
		rows := browser.Value[map[string]string](t, ctx, `Object.fromEntries([...document.querySelectorAll('#panel-pages tbody tr')].map(r => [r.dataset.value, r.querySelector('td.change').dataset.change]))`)
		if len(rows) == 0 || len(rows) != len(want) {
			t.Errorf("%v: %d top pages with a change, the Stats API %d", params, len(rows), len(want))
		}
		for k, v := range want {
			if rows[k] != v {
				t.Errorf("%v: page %s changes by %q on the page, %q by the Stats API", params, k, rows[k], v)
			}
		}
		if n := browser.Value[int](t, ctx, `document.querySelectorAll('#panel-pages th.change').length`); n != 1 {
			t.Errorf("%v: %d change headers in the pages panel", params, n)
		}
	}
	csvHeader := func(t *testing.T, sel string) []string {
		t.Helper()
		href := browser.Value[string](t, ctx, `document.querySelector('`+sel+`').href`)
		resp, err := http.Get(href)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		recs, err := csv.NewReader(resp.Body).ReadAll()
		if err != nil || resp.StatusCode != 200 || len(recs) < 2 {
			t.Fatalf("CSV %s: %d, %v, %d records", href, resp.StatusCode, err, len(recs))
		}
		return recs[0]
	}

	t.Run("year over year", func(t *testing.T) {
		browser.Eval(t, ctx, `document.getElementById('compare').value = 'year_over_year'; document.getElementById('compare').dispatchEvent(new Event('change'))`)
		browser.WaitJS(t, ctx, "the comparison", `new URL(location.href).searchParams.get('compare') === 'year_over_year' && (`+panelsLoaded+`) && document.querySelector('#chart path.compare') !== null && document.querySelector('#panel-pages th.change') !== null`)
		compared(t, url.Values{"compare": {"year_over_year"}})
		if h := strings.Join(csvHeader(t, "#panel-pages a.csv"), ","); h != "page,visitors,visitors_comparison,visitors_change,pageviews,pageviews_comparison,pageviews_change" {
			t.Errorf("pages CSV header %s", h)
		}
		if h := strings.Join(csvHeader(t, "#chart-csv"), ","); h != "date,comparison_date,visitors,visitors_comparison,visitors_change" {
			t.Errorf("chart CSV header %s", h)
		}
		browser.Screenshot(t, ctx, "dashboard-compare-desktop.png", "/tmp/dashboard-compare-desktop.png")
	})

	from, to := now.AddDate(-1, 0, -25).Format(time.DateOnly), now.AddDate(-1, 0, -1).Format(time.DateOnly)
	t.Run("custom dates", func(t *testing.T) {
		browser.Eval(t, ctx, `document.getElementById('compare').value = 'custom'; document.getElementById('compare').dispatchEvent(new Event('change'))`)
		if hidden := browser.Value[bool](t, ctx, `document.getElementById('compare-custom').hidden`); hidden {
			t.Fatal("choosing custom shows no date inputs")
		}
		browser.Eval(t, ctx, `document.getElementById('compare-from').value = '`+to+`'; document.getElementById('compare-to').value = '`+from+`'`)
		if err := chromedp.Do(ctx, chromedp.Click(chromedp.ID("compare-apply"))); err != nil {
			t.Fatal(err)
		}
		browser.WaitJS(t, ctx, "the custom comparison", `new URL(location.href).searchParams.get('compare_date') === '`+from+`,`+to+`' && (`+panelsLoaded+`) && document.querySelector('#chart path.compare') !== null`)
		compared(t, url.Values{"compare": {"custom"}, "compare_date": {from + "," + to}})
		// Back: year over year again, from the URL.
		if err := chromedp.Do(ctx, chromedp.NavigateBack()); err != nil {
			t.Fatal(err)
		}
		browser.WaitJS(t, ctx, "year over year again", `document.getElementById('compare').value === 'year_over_year' && (`+panelsLoaded+`) && document.querySelector('#chart-legend') !== null`)
	})

	t.Run("390 px", func(t *testing.T) {
		if err := chromedp.Do(ctx, chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2), chromedp.EmulateMobile)); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = chromedp.Do(ctx, chromedp.EmulateViewport(1280, 800)) }()
		browser.Navigate(t, ctx, base+"&period=30d&compare=custom&compare_date="+from+","+to, "")
		browser.WaitJS(t, ctx, "every panel", panelsLoaded+` && document.querySelector('#chart path.compare') !== null`)
		browser.Eval(t, ctx, `window.cspViolations = []; document.addEventListener('securitypolicyviolation', e => window.cspViolations.push(e.violatedDirective + ' ' + e.blockedURI))`)
		compared(t, url.Values{"compare": {"custom"}, "compare_date": {from + "," + to}})
		if w := browser.Value[[]int](t, ctx, `[document.documentElement.scrollWidth, window.innerWidth]`); w[0] > w[1] {
			t.Errorf("page is %d px wide in a %d px viewport", w[0], w[1])
		}
		// Every change cell fits its column.
		if over := browser.Value[[]string](t, ctx, `[...document.querySelectorAll('td.change')].filter(c => c.scrollWidth > c.clientWidth + 1).map(c => c.textContent)`); len(over) > 0 {
			t.Errorf("change cells wider than their column at 390 px: %q", over)
		}
		browser.Screenshot(t, ctx, "dashboard-compare-phone.png", "/tmp/dashboard-compare-phone.png")
	})

	if v := browser.Value[[]string](t, ctx, `window.cspViolations || []`); len(v) > 0 {
		t.Errorf("CSP violations: %q", v)
	}
}
