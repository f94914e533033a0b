package main

// The realtime view, the filter editor and the search inside a panel in
// real headless Chromium against `glimpse serve`, at 1280 and 390 px.

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/glimpse-analytics/glimpse/collector/sink"
	"github.com/glimpse-analytics/glimpse/internal/apptest"
	"github.com/glimpse-analytics/glimpse/internal/apptest/browser"
	"github.com/glimpse-analytics/glimpse/internal/chtest"
	"github.com/glimpse-analytics/glimpse/internal/storage/seed"
)

// livePageviews sends n page views of path from n new visitors through
// the collector, as a browser's script would.
func livePageviews(t *testing.T, srv *apptest.Server, path string, first, n int) {
	t.Helper()
	for i := first; i < first+n; i++ {
		body := fmt.Sprintf(`{"n":"pageview","u":"https://%s%s","d":%q,"r":"https://duckduckgo.com/","w":1280}`, dashSite, path, dashSite)
		code, h := srv.Post(t, "/api/event", body, http.Header{
			"User-Agent":      {"Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0"},
			"X-Forwarded-For": {fmt.Sprintf("198.51.100.%d", i+1)},
		})
		if code != 202 || h.Get("X-Glimpse-Dropped") != "" {
			t.Fatalf("page view %d: %d %s", i, code, h.Get("X-Glimpse-Dropped"))
		}
	}
}

// noisyToken is the noisy site's shared link.
const noisyToken = "shared-token-noisy-0123456789abcdef"

func TestDashboardRealtimeAndFilters(t *testing.T) {
	b := browser.Shared(t)
	db := chtest.Migrated(t)
	ctx0, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	w := sink.New(sink.Options{Conn: db.Conn, BatchSize: 50000, QueueSize: 200000})
	if _, err := seed.Generate(ctx0, w, seed.Options{Site: dashSite, Events: 6000, Days: 30, Seed: 21}); err != nil {
		t.Fatal(err)
	}
	if _, err := seed.Generate(ctx0, w, seed.Options{Site: noisySite, Events: 3000, Days: 30, Seed: 22}); err != nil {
		t.Fatal(err)
	}
	if lost, err := w.Close(ctx0); err != nil || lost > 0 {
		t.Fatalf("seed: %d lost, %v", lost, err)
	}
	cfg := apptest.WriteConfig(t, fmt.Sprintf(`sites:
  - domain: %s
    privacy:
      k_anonymity: 3
      aggregates: exact
    shared_links:
      - name: board
        token: %s
  - domain: %s
    privacy:
      k_anonymity: 3
      aggregates: noisy
      noise_key: "realtime-noise-key-0123456789abcdef"
    shared_links:
      - name: board
        token: %s
api_keys:
  - name: test
    sha256: %q
    sites: [%s, %s]
`, dashSite, dashToken, noisySite, noisyToken, apptest.KeyHash(dashAPIKey), dashSite, noisySite))
	// Each page view comes from its own address (X-Forwarded-For from a
	// trusted proxy): a new visitor each.
	srv := apptest.Start(t, nil, "--config", cfg, "--clickhouse", db.DSN,
		"--trusted-proxies", "127.0.0.1/32", "--flush-interval", "100ms", "--session-flush-interval", "200ms")
	base := "http://" + srv.Addr + "/dashboard/site?site=" + dashSite + "&auth=" + dashToken
	livePageviews(t, srv, "/live", 0, 4)

	tab := b.Tab(t, "realtime")
	ctx := tab.Ctx
	csp := `window.cspViolations = []; document.addEventListener('securitypolicyviolation', e => window.cspViolations.push(e.violatedDirective + ' ' + e.blockedURI))`
	num := func(js string) string { return browser.Value[string](t, ctx, js) }
	apiNum := func(endpoint string, q url.Values, metric string) string {
		q.Set("site_id", dashSite)
		res := statsAPI(t, srv.Addr, endpoint, q)
		return fmt.Sprint(res["results"].(map[string]any)[metric].(map[string]any)["value"])
	}
	widths := []struct {
		name string
		set  chromedp.Action[chromedp.Void]
	}{
		{"1280 px", chromedp.EmulateViewport(1280, 800)},
		{"390 px", chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2), chromedp.EmulateMobile)},
	}
	next := 4 // the next new visitor's number
	for _, width := range widths {
		t.Run(width.name, func(t *testing.T) {
			if err := chromedp.Do(ctx, width.set); err != nil {
				t.Fatal(err)
			}
			browser.Navigate(t, ctx, base, "")
			browser.WaitJS(t, ctx, "every panel", panelsLoaded)
			browser.Eval(t, ctx, csp)

			t.Run("realtime view updates without a reload", func(t *testing.T) {
				if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`.view-tab[data-view=realtime]`))); err != nil {
					t.Fatal(err)
				}
				browser.WaitJS(t, ctx, "the realtime view", `new URL(location.href).searchParams.get('view') === 'realtime' && !document.getElementById('realtime-view').hidden &&
					document.getElementById('rt-updated').dataset.polls >= 1 && document.querySelectorAll('#rt-chart .rt-minute').length === 30`)
				if v := browser.Value[bool](t, ctx, `getComputedStyle(document.getElementById('panels')).display === 'none' && getComputedStyle(document.getElementById('kpis')).display === 'none'`); !v {
					t.Error("the overview's panels still show in the realtime view")
				}
				pv := apiNum("aggregate", url.Values{"period": {"30m"}, "metrics": {"pageviews"}}, "pageviews")
				if got := num(`document.getElementById('rt-pageviews').dataset.value`); got != pv {
					t.Errorf("30 minutes' page views on the page %s, Stats API %s", got, pv)
				}
				if got := browser.Value[[]string](t, ctx, `[...document.querySelectorAll('#rt-pages tbody tr')].map(r => r.dataset.value)`); len(got) == 0 || got[0] != "/live" {
					t.Errorf("top pages of the last 30 minutes: %q, want /live first; box %q; Stats API %v", got, num(`document.getElementById('rt-pages').innerText`),
						statsAPI(t, srv.Addr, "breakdown", url.Values{"period": {"30m"}, "property": {"event:page"}}))
				}
				if got := browser.Value[[]string](t, ctx, `[...document.querySelectorAll('#rt-sources tbody tr')].map(r => r.dataset.value)`); !strings.Contains(strings.Join(got, ","), "DuckDuckGo") {
					t.Errorf("sources of the last 30 minutes: %q, want DuckDuckGo", got)
				}
				series := statsAPI(t, srv.Addr, "timeseries", url.Values{"period": {"30m"}, "interval": {"minute"}, "metrics": {"visitors,pageviews"}})["results"].([]any)
				last := series[len(series)-1].(map[string]any)
				if got := browser.Value[[]string](t, ctx, `(() => { const g = [...document.querySelectorAll('#rt-chart .rt-minute')].pop(); return [g.dataset.pageviews, g.dataset.minute] })()`); got[0] != fmt.Sprint(last["pageviews"]) || got[1] != fmt.Sprint(last["date"])[11:16] {
					t.Errorf("the last minute on the chart %q, Stats API %v", got, last)
				}
				// Events arrive while the page is open: the next poll shows them.
				browser.Eval(t, ctx, `window.notReloaded = true`)
				before := num(`document.getElementById('rt-pageviews').dataset.value`)
				polls := num(`document.getElementById('rt-updated').dataset.polls`)
				livePageviews(t, srv, "/live", next, 3)
				next += 3
				deadline := time.Now().Add(45 * time.Second)
				for {
					want := apiNum("aggregate", url.Values{"period": {"30m"}, "metrics": {"pageviews"}}, "pageviews")
					got := num(`document.getElementById('rt-pageviews').dataset.value`)
					if want != before && got == want {
						break
					}
					if time.Now().After(deadline) {
						t.Fatalf("page views on the page %s (was %s, %s polls then), Stats API %s: no update", got, before, polls, want)
					}
					time.Sleep(500 * time.Millisecond)
				}
				if !browser.Value[bool](t, ctx, `window.notReloaded === true`) {
					t.Error("the page reloaded")
				}
				cur := fmt.Sprint(statsAPINumber(t, srv.Addr))
				browser.WaitJS(t, ctx, "the current visitors", `document.getElementById('rt-current').dataset.value === '`+cur+`'`)
				if w := browser.Value[[]int](t, ctx, `[document.documentElement.scrollWidth, window.innerWidth]`); w[0] > w[1] {
					t.Errorf("the realtime view is %d px wide in a %d px viewport", w[0], w[1])
				}
				browser.Screenshot(t, ctx, "realtime-"+strings.Fields(width.name)[0]+".png")
				// Back to the overview by keyboard: the tab list's arrow keys.
				browser.Eval(t, ctx, `document.querySelector('.view-tab[data-view=realtime]').focus()`)
				if err := chromedp.Do(ctx, chromedp.KeyEvent(kb.ArrowLeft)); err != nil {
					t.Fatal(err)
				}
				browser.WaitJS(t, ctx, "the overview again", `document.getElementById('realtime-view').hidden && getComputedStyle(document.getElementById('panels')).display !== 'none' &&
					document.activeElement === document.querySelector('.view-tab[data-view=overview]')`)
			})

			t.Run("filter editor", func(t *testing.T) {
				browser.WaitJS(t, ctx, "every panel", panelsLoaded)
				top := statsAPI(t, srv.Addr, "breakdown", url.Values{"period": {"30d"}, "property": {"event:page"}, "metrics": {"visitors"}, "limit": {"20"}})
				var values []string
				for _, r := range top["results"].([]any) {
					r := r.(map[string]any)
					if r["page"] != "(other)" {
						values = append(values, fmt.Sprint(r["page"]))
						if r["visitors"].(float64) < 3 {
							t.Fatalf("the Stats API answered a row under k: %v", r)
						}
					}
				}
				var page string
				for _, v := range values {
					if len(v) > 4 {
						page = v
						break
					}
				}
				if page == "" {
					t.Fatalf("no page to filter by in %q", values)
				}
				sub := page[1:4]
				for _, c := range []struct{ op, value, label string }{
					{"==", page, " is "}, {"!=", page, " is not "}, {"~", sub, " contains "},
				} {
					if err := chromedp.Do(ctx, chromedp.Click(chromedp.ID("add-filter"))); err != nil {
						t.Fatal(err)
					}
					browser.Eval(t, ctx, `(() => { const s = document.getElementById('fe-prop'); s.value = 'event:page'; s.dispatchEvent(new Event('change')) })()`)
					browser.WaitJS(t, ctx, "suggestions", `document.querySelectorAll('#fe-suggest .fe-option').length > 0`)
					got := browser.Value[[]string](t, ctx, `[...document.querySelectorAll('#fe-suggest .fe-option')].map(o => o.dataset.value)`)
					if strings.Join(got, "\n") != strings.Join(values, "\n") {
						t.Errorf("suggestions %q, want the breakdown's rows %q", got, values)
					}
					browser.Eval(t, ctx, `(() => { const s = document.getElementById('fe-op'); s.value = '`+c.op+`'; s.dispatchEvent(new Event('change')) })()`)
					if c.op == "~" {
						if err := chromedp.Do(ctx, chromedp.SendKeys(chromedp.ID("fe-value"), c.value)); err != nil {
							t.Fatal(err)
						}
						if n := browser.Value[int](t, ctx, `[...document.querySelectorAll('#fe-suggest .fe-option')].filter(o => !o.dataset.value.toLowerCase().includes('`+strings.ToLower(c.value)+`')).length`); n != 0 {
							t.Errorf("typing %q leaves %d suggestions without it", c.value, n)
						}
					} else {
						// Pick the value from the suggestions.
						if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`#fe-suggest .fe-option[data-value="`+c.value+`"]`))); err != nil {
							t.Fatal(err)
						}
					}
					if c.op == "~" {
						browser.Screenshot(t, ctx, "filter-editor-"+strings.Fields(width.name)[0]+".png")
					}
					if w := browser.Value[[]int](t, ctx, `[document.documentElement.scrollWidth, window.innerWidth]`); w[0] > w[1] {
						t.Errorf("with the editor open the page is %d px wide in a %d px viewport", w[0], w[1])
					}
					if err := chromedp.Do(ctx, chromedp.Click(chromedp.ID("fe-apply"))); err != nil {
						t.Fatal(err)
					}
					filter := "event:page" + c.op + c.value
					want := apiNum("aggregate", url.Values{"period": {"30d"}, "metrics": {"visitors"}, "filters": {filter}}, "visitors")
					browser.WaitJS(t, ctx, "the KPIs under "+filter, `new URL(location.href).searchParams.get('filters') === `+jsString(filter)+` &&
						document.querySelector('.kpi[data-metric=visitors] .kpi-value').dataset.value === '`+want+`'`)
					if chip := num(`document.querySelector('#filters .chip-edit').textContent`); chip != "Page"+c.label+c.value {
						t.Errorf("chip %q, want %q", chip, "Page"+c.label+c.value)
					}
					if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`#filters .chip-x`))); err != nil {
						t.Fatal(err)
					}
					browser.WaitJS(t, ctx, "no filter", `!new URL(location.href).searchParams.get('filters') && !document.querySelector('#filters .chip')`)
				}
				// Editing a chip: "is" becomes "is not".
				browser.Navigate(t, ctx, base+"&filters="+url.QueryEscape("event:page=="+page), "")
				browser.WaitJS(t, ctx, "every panel", panelsLoaded)
				browser.Eval(t, ctx, csp)
				if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`#filters .chip-edit`))); err != nil {
					t.Fatal(err)
				}
				if v := browser.Value[[]string](t, ctx, `['fe-prop', 'fe-op', 'fe-value'].map(id => document.getElementById(id).value)`); strings.Join(v, " ") != "event:page == "+page {
					t.Errorf("editing the chip opens %q", v)
				}
				browser.Eval(t, ctx, `(() => { const s = document.getElementById('fe-op'); s.value = '!='; s.dispatchEvent(new Event('change')) })()`)
				if err := chromedp.Do(ctx, chromedp.Click(chromedp.ID("fe-apply"))); err != nil {
					t.Fatal(err)
				}
				browser.WaitJS(t, ctx, "the edited filter", `new URL(location.href).searchParams.get('filters') === `+jsString("event:page!="+page)+` && document.querySelectorAll('#filters .chip').length === 1`)
				browser.Navigate(t, ctx, base, "")
				browser.WaitJS(t, ctx, "every panel", panelsLoaded)
				browser.Eval(t, ctx, csp)
			})

			t.Run("search inside a panel", func(t *testing.T) {
				rows := panelRows(t, ctx, "pages")
				if len(rows) < 3 {
					t.Fatalf("top pages %q: too few to search", rows)
				}
				needle := strings.ToUpper(rows[1][1:3]) // case-insensitive
				want := 0
				for _, r := range rows {
					if strings.Contains(strings.ToLower(r), strings.ToLower(needle)) {
						want++
					}
				}
				// By keyboard: focus the box, type, then Escape.
				browser.Eval(t, ctx, `document.querySelector('#panel-pages .panel-search').focus()`)
				if err := chromedp.Do(ctx, chromedp.KeyEvent(needle)); err != nil {
					t.Fatal(err)
				}
				shown := browser.Value[[]string](t, ctx, `[...document.querySelectorAll('#panel-pages tbody tr')].filter(r => !r.hidden && r.offsetParent !== null).map(r => r.dataset.value)`)
				if len(shown) != want || want == len(rows) {
					t.Errorf("searching %q shows %q of %q, want %d rows", needle, shown, rows, want)
				}
				for _, s := range shown {
					if !strings.Contains(strings.ToLower(s), strings.ToLower(needle)) {
						t.Errorf("row %q shown for %q", s, needle)
					}
				}
				if c := num(`document.querySelector('#panel-pages .search-count').textContent`); c != fmt.Sprintf("%d of %d", want, len(rows)) {
					t.Errorf("count %q", c)
				}
				if err := chromedp.Do(ctx, chromedp.KeyEvent(kb.Escape)); err != nil {
					t.Fatal(err)
				}
				if n := browser.Value[int](t, ctx, `[...document.querySelectorAll('#panel-pages tbody tr')].filter(r => r.hidden).length`); n != 0 {
					t.Errorf("Escape leaves %d rows hidden", n)
				}
			})
			if v := browser.Value[[]string](t, ctx, `window.cspViolations || []`); len(v) > 0 {
				t.Errorf("CSP violations: %q", v)
			}
		})
	}

	// A noisy site's realtime view stops at the last full minute and says
	// its numbers are approximate.
	t.Run("noisy realtime view", func(t *testing.T) {
		browser.Navigate(t, ctx, "http://"+srv.Addr+"/dashboard/site?site="+noisySite+"&auth="+noisyToken+"&view=realtime", "")
		browser.WaitJS(t, ctx, "the noisy realtime view", `document.getElementById('rt-updated').dataset.polls >= 1`)
		if n := browser.Value[int](t, ctx, `document.querySelectorAll('#rt-chart .rt-minute').length`); n != 29 {
			t.Errorf("%d minutes on the chart, want 29: the current minute is not released", n)
		}
		if note := num(`document.getElementById('rt-chart-note').textContent`); !strings.Contains(note, "Approximate numbers, up to the last full minute") {
			t.Errorf("chart note %q", note)
		}
		if n := browser.Value[int](t, ctx, `document.querySelectorAll('#overview-kpis, #kpis .kpi').length`); n != 0 {
			t.Errorf("the hidden overview asked for its key figures: %d cards", n)
		}
	})
}

// statsAPINumber is the realtime count as the Stats API answers it.
func statsAPINumber(t *testing.T, addr string) float64 {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+addr+"/api/v1/stats/realtime/visitors?site_id="+dashSite, nil)
	req.Header.Set("Authorization", "Bearer "+dashAPIKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var n float64
	if _, err := fmt.Fscan(resp.Body, &n); err != nil || resp.StatusCode != 200 {
		t.Fatalf("realtime: %d %v", resp.StatusCode, err)
	}
	return n
}

// jsString quotes s for a JavaScript expression.
func jsString(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}
