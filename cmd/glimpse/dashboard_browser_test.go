package main

// The web dashboard in real headless Chromium against `glimpse serve` on a
// fresh ClickHouse database with a seeded, known dataset.

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	cdpbrowser "github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/glimpse-analytics/glimpse/collector/sink"
	"github.com/glimpse-analytics/glimpse/dashboards"
	"github.com/glimpse-analytics/glimpse/internal/apptest"
	"github.com/glimpse-analytics/glimpse/internal/apptest/browser"
	"github.com/glimpse-analytics/glimpse/internal/chtest"
	"github.com/glimpse-analytics/glimpse/internal/config"
	"github.com/glimpse-analytics/glimpse/internal/model"
	"github.com/glimpse-analytics/glimpse/internal/storage/seed"
)

const (
	dashSite     = "dash.test"
	noisySite    = "noisy.dash.test" // the same kind of traffic, aggregates noisy
	dashEmail    = "ana@dash.test"
	dashPassword = "correct horse battery"
	dashToken    = "shared-token-0123456789abcdef"
	dashAPIKey   = "dash-test-key"
	// xssPath is a page path a visitor could send; it must render as text.
	xssPath = `<img src=x onerror=alert(1)>`
)

// seedDashboard writes the seeded traffic (on dashSite and noisySite) and
// 120 visitors of xssPath (enough to rank among the top pages) straight
// through the batch writer.
func seedDashboard(t *testing.T, db *chtest.DB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	w := sink.New(sink.Options{Conn: db.Conn, BatchSize: 50000, QueueSize: 200000})
	if _, err := seed.Generate(ctx, w, seed.Options{Site: dashSite, Events: 8000, Days: 30, Seed: 6}); err != nil {
		t.Fatal(err)
	}
	if _, err := seed.Generate(ctx, w, seed.Options{Site: noisySite, Events: 8000, Days: 30, Seed: 7}); err != nil {
		t.Fatal(err)
	}
	at := time.Now().UTC().Add(-time.Hour).Truncate(time.Second)
	for i := 0; i < 120; i++ {
		e := w.NewEvent()
		e.SiteID, e.TS, e.Type = dashSite, at, model.TypePageview
		e.EventID[0], e.EventID[1], e.EventID[6], e.EventID[8] = byte(i), 0xd5, 0x40, 0x80
		e.VisitorID, e.SessionID = uint64(1e12)+uint64(i), uint64(2e12)+uint64(i)
		e.Hostname = append(e.Hostname, dashSite...)
		e.Pathname = append(e.Pathname, xssPath...)
		e.IPPrefix = append(e.IPPrefix, "192.0.2.0/24"...)
		if err := w.Enqueue(e); err != nil {
			t.Fatal(err)
		}
	}
	if lost, err := w.Close(ctx); err != nil || lost > 0 {
		t.Fatalf("seed: %d lost, %v", lost, err)
	}
}

// statsAPI calls the Bearer Stats API the way any client would.
func statsAPI(t *testing.T, addr, endpoint string, q url.Values) map[string]any {
	t.Helper()
	if !q.Has("site_id") {
		q.Set("site_id", dashSite)
	}
	req, _ := http.NewRequest("GET", "http://"+addr+"/api/v1/stats/"+endpoint+"?"+q.Encode(), nil)
	req.Header.Set("Authorization", "Bearer "+dashAPIKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != 200 {
		t.Fatalf("Stats API %s %v: %d %v %v", endpoint, q, resp.StatusCode, err, out)
	}
	return out
}

// panelsLoaded is true when the KPIs, the chart and every breakdown panel
// have drawn their answer (rows, an empty note or an error).
const panelsLoaded = `document.querySelectorAll('.kpi-value[data-value]').length === 8 &&
	!document.querySelector('.status.loading') &&
	[...document.querySelectorAll('.panel')].every(p => p.querySelector('.rows').childElementCount > 0 || p.querySelector('.status').textContent !== '')`

// panelRows returns the first-column values of a panel's rows.
func panelRows(t *testing.T, ctx context.Context, panel string) []string {
	return browser.Value[[]string](t, ctx, `[...document.querySelectorAll('#panel-`+panel+` tbody tr')].map(r => r.dataset.value)`)
}

// breakdownKeys lists the key column of a Stats API breakdown answer.
func breakdownKeys(res map[string]any, key string) []string {
	var out []string
	for _, r := range res["results"].([]any) {
		out = append(out, fmt.Sprint(r.(map[string]any)[key]))
	}
	return out
}

func TestDashboardBrowser(t *testing.T) {
	b := browser.Shared(t)
	db := chtest.Migrated(t)
	seedDashboard(t, db)
	hash, err := dashboards.HashPassword(dashPassword)
	if err != nil {
		t.Fatal(err)
	}
	cfg := apptest.WriteConfig(t, fmt.Sprintf(`sites:
  - domain: %s
    privacy:
      k_anonymity: 5
      aggregates: exact
      retention_months: 13
    shared_links:
      - name: board
        token: %s
  - domain: %s
    privacy:
      k_anonymity: 5
      aggregates: noisy
      noise_key: "dashboard-noise-key-0123456789abcdef"
users:
  - email: %s
    password_hash: %q
api_keys:
  - name: test
    sha256: %q
    sites: [%s, %s]
`, dashSite, dashToken, noisySite, dashEmail, hash, apptest.KeyHash(dashAPIKey), dashSite, noisySite))
	srv := apptest.Start(t, nil, "--config", cfg, "--clickhouse", db.DSN)
	base := "http://" + srv.Addr

	tab := b.Tab(t, "dash")
	ctx := tab.Ctx
	var dialogs atomic.Int32
	dialogEvents := chromedp.Events(ctx, page.JavascriptDialogOpening)
	go func() {
		for _, err := range dialogEvents {
			if err != nil {
				return
			}
			dialogs.Add(1)
		}
	}()

	// Sign in through the form.
	browser.Navigate(t, ctx, base+"/dashboard/", "")
	if u := browser.Value[string](t, ctx, `location.pathname`); u != "/dashboard/login" {
		t.Fatalf("signed out, /dashboard/ went to %s, want the sign-in page", u)
	}
	if err := chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.ID("email"), dashEmail),
		chromedp.SendKeys(chromedp.ID("password"), dashPassword),
		chromedp.Click(chromedp.ID("signin")),
	); err != nil {
		t.Fatalf("sign-in: %v", err)
	}
	browser.WaitJS(t, ctx, "the site list after signing in", `document.getElementById('sites') !== null`)
	var cookies network.GetCookiesResult
	if err := chromedp.Do(ctx, chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		var err error
		cookies, err = cdp.Call(ctx, tg, network.GetCookies, network.GetCookiesParams{})
		return err
	})); err != nil {
		t.Fatal(err)
	}
	var session *network.Cookie
	for _, c := range cookies.Cookies {
		if c.Name == "glimpse_session" {
			session = c
		}
	}
	if session == nil || !session.HTTPOnly || session.SameSite != network.CookieSameSiteStrict {
		t.Fatalf("session cookie %+v: want HttpOnly and SameSite=Strict", session)
	}
	if _, err := chromedp.Run(ctx, chromedp.WaitEvent(page.LoadEventFired, nil, chromedp.Click(chromedp.CSS(`#sites a`)))); err != nil {
		t.Fatal(err)
	}
	browser.WaitJS(t, ctx, "every panel", panelsLoaded)

	t.Run("KPIs equal the Stats API", func(t *testing.T) {
		metrics := "visitors,visits,pageviews,views_per_visit,bounce_rate,visit_duration,time_on_page,scroll_depth"
		want := statsAPI(t, srv.Addr, "aggregate", url.Values{"period": {"30d"}, "metrics": {metrics}, "compare": {"previous_period"}})["results"].(map[string]any)
		got := browser.Value[map[string][]string](t, ctx, `Object.fromEntries([...document.querySelectorAll('.kpi')].map(k =>
			[k.dataset.metric, [k.querySelector('.kpi-value').dataset.value, (k.querySelector('.kpi-change').dataset.change || ''), k.querySelector('.kpi-value').textContent]]))`)
		for _, m := range strings.Split(metrics, ",") {
			w := want[m].(map[string]any)
			change := fmt.Sprint(w["change"])
			if want["visitors"].(map[string]any)["comparison_value"] == 0.0 {
				change = "none" // nothing to compare with: "—"
			}
			if g := got[m]; len(g) != 3 || g[0] != fmt.Sprint(w["value"]) || g[1] != change {
				t.Errorf("%s: page shows value %q change %q, Stats API says %v and %v", m, g[0], g[1], w["value"], w["change"])
			}
		}
		if v := got["visitors"]; strings.ReplaceAll(v[2], ",", "") != v[0] {
			t.Errorf("visitors card reads %q for %s", v[2], v[0])
		}
	})

	t.Run("a panel under k shows the folded note", func(t *testing.T) {
		res := statsAPI(t, srv.Addr, "breakdown", url.Values{"period": {"30d"}, "property": {"event:page"}, "metrics": {"visitors,pageviews"}, "limit": {"10"}})
		folded := int(res["meta"].(map[string]any)["folded_rows"].(float64))
		if folded == 0 {
			t.Fatal("the seeded pages have no rows under k; the test data must have some")
		}
		note := browser.Value[string](t, ctx, `document.querySelector('#panel-pages .note').textContent`)
		if !strings.Contains(note, fmt.Sprintf("%d rows with fewer than 5 visitors", folded)) {
			t.Errorf("pages note %q does not say %d rows were folded under k=5", note, folded)
		}
		if got, want := panelRows(t, ctx, "pages"), breakdownKeys(res, "page"); strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("top pages on the page %q, Stats API %q", got, want)
		}
	})

	t.Run("visitor-supplied markup renders as text", func(t *testing.T) {
		shown := browser.Value[[]string](t, ctx, `[...document.querySelectorAll('#panel-pages tbody tr')].filter(r => r.dataset.value.startsWith('<img')).map(r => r.querySelector('.text').textContent)`)
		if len(shown) != 1 || shown[0] != xssPath {
			t.Errorf("the injected path shows as %q, want the text %q", shown, xssPath)
		}
		if n := browser.Value[int](t, ctx, `document.querySelectorAll('img').length`); n != 0 {
			t.Errorf("%d <img> elements on the page: visitor markup was parsed", n)
		}
		if n := dialogs.Load(); n != 0 {
			t.Errorf("%d JavaScript dialogs opened", n)
		}
	})

	t.Run("the chart shows values on hover and switches metric and interval", func(t *testing.T) {
		tip := browser.Value[string](t, ctx, `(() => {
			const o = document.querySelector('#chart .overlay'), r = o.getBoundingClientRect();
			o.dispatchEvent(new PointerEvent('pointermove', {clientX: r.right - 2, clientY: r.top + r.height / 2, bubbles: true}));
			const tip = document.querySelector('#chart .tip');
			return tip.hidden ? '' : tip.textContent })()`)
		if !strings.Contains(tip, "Unique visitors: ") {
			t.Errorf("hovering the chart shows %q", tip)
		}
		if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`.kpi[data-metric=pageviews]`))); err != nil {
			t.Fatal(err)
		}
		browser.WaitJS(t, ctx, "the pageviews chart", `new URL(location.href).searchParams.get('metric') === 'pageviews' && (`+panelsLoaded+`) && document.querySelector('#chart svg').getAttribute('aria-label') === 'Pageviews over time'`)
		browser.Eval(t, ctx, `document.getElementById('interval').value = 'week'; document.getElementById('interval').dispatchEvent(new Event('change'))`)
		browser.WaitJS(t, ctx, "weekly buckets", `new URL(location.href).searchParams.get('interval') === 'week' && (`+panelsLoaded+`) && document.getElementById('chart-csv').href.includes('interval=week')`)
		if err := chromedp.Do(ctx, chromedp.NavigateBack(), chromedp.NavigateBack()); err != nil {
			t.Fatal(err)
		}
		browser.WaitJS(t, ctx, "the visitors chart again", `!new URL(location.href).searchParams.has('metric') && (`+panelsLoaded+`) && document.querySelector('#chart svg').getAttribute('aria-label') === 'Unique visitors over time'`)
	})

	browser.Screenshot(t, ctx, "dashboard-desktop.png", "/tmp/dashboard-desktop.png")

	t.Run("clicking a source filters every panel and the URL; back restores", func(t *testing.T) {
		before := browser.Value[string](t, ctx, `document.querySelector('.kpi[data-metric=visitors] .kpi-value').dataset.value`)
		if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`#panel-sources .tab[data-tab="1"]`))); err != nil {
			t.Fatal(err)
		}
		browser.WaitJS(t, ctx, "the sources tab", `[...document.querySelectorAll('#panel-sources tbody tr')].some(r => r.dataset.value === 'Google')`)
		if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`#panel-sources tbody tr[data-value="Google"]`))); err != nil {
			t.Fatal(err)
		}
		browser.WaitJS(t, ctx, "the filter in the URL", `new URL(location.href).searchParams.get('filters') === 'visit:source==Google'`)
		// The key figures keep their last values until the filtered ones
		// arrive (they show no loading state), so wait for them to change.
		browser.WaitJS(t, ctx, "the filtered panels", `document.querySelector('.chip') !== null && (`+panelsLoaded+`) && [...document.querySelectorAll('#panel-sources tbody tr')].every(r => r.dataset.value === 'Google') && document.querySelector('.kpi[data-metric=visitors] .kpi-value').dataset.value !== `+strconv.Quote(before))
		f := url.Values{"period": {"30d"}, "filters": {"visit:source==Google"}}
		agg := statsAPI(t, srv.Addr, "aggregate", url.Values{"period": f["period"], "filters": f["filters"], "metrics": {"visitors"}})["results"].(map[string]any)
		got := browser.Value[string](t, ctx, `document.querySelector('.kpi[data-metric=visitors] .kpi-value').dataset.value`)
		if want := fmt.Sprint(agg["visitors"].(map[string]any)["value"]); got != want || got == before {
			t.Errorf("filtered visitors %s, Stats API %s (unfiltered %s)", got, want, before)
		}
		for panel, q := range map[string][2]string{
			"pages": {"event:page", "page"}, "locations": {"visit:country", "country"},
			"devices": {"visit:browser", "browser"}, "goals": {"event:goal", "goal"},
		} {
			want := breakdownKeys(statsAPI(t, srv.Addr, "breakdown", url.Values{"period": f["period"], "filters": f["filters"], "property": {q[0]}, "limit": {"10"}}), q[1])
			if got := panelRows(t, ctx, panel); strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Errorf("filtered %s panel shows %q, Stats API %q", panel, got, want)
			}
		}
		hrefs := browser.Value[[]string](t, ctx, `[...document.querySelectorAll('a.csv')].map(a => a.href)`)
		for _, h := range hrefs {
			if !strings.Contains(h, "filters=visit%3Asource%3D%3DGoogle") {
				t.Errorf("panel export %s ignores the filter", h)
			}
		}

		if err := chromedp.Do(ctx, chromedp.NavigateBack()); err != nil {
			t.Fatal(err)
		}
		browser.WaitJS(t, ctx, "the unfiltered page", `!new URL(location.href).searchParams.has('filters') && document.querySelector('.chip') === null && (`+panelsLoaded+`) && document.querySelector('.kpi[data-metric=visitors] .kpi-value').dataset.value === '`+before+`'`)
	})

	t.Run("CSV export downloads the panel's rows", func(t *testing.T) {
		dir := t.TempDir()
		c := chromedp.FromContext(ctx)
		if _, err := cdp.Call(ctx, c.Browser, cdpbrowser.SetDownloadBehavior, cdpbrowser.SetDownloadBehaviorParams{
			Behavior: cdpbrowser.SetDownloadBehaviorBehaviorAllow, BrowserContextID: c.BrowserContextID, DownloadPath: dir,
		}); err != nil {
			t.Fatal(err)
		}
		if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`#panel-pages a.csv`))); err != nil {
			t.Fatal(err)
		}
		var file string
		deadline := time.Now().Add(15 * time.Second)
		for file == "" && time.Now().Before(deadline) {
			m, _ := filepath.Glob(filepath.Join(dir, "*.csv"))
			if len(m) == 1 {
				file = m[0]
			}
			time.Sleep(50 * time.Millisecond)
		}
		if file == "" {
			t.Fatal("no CSV was downloaded")
		}
		fh, err := os.Open(file)
		if err != nil {
			t.Fatal(err)
		}
		defer fh.Close()
		recs, err := csv.NewReader(fh).ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		res := statsAPI(t, srv.Addr, "breakdown", url.Values{"period": {"30d"}, "property": {"event:page"}, "metrics": {"visitors,pageviews"}, "limit": {"1000"}})
		rows := res["results"].([]any)
		if len(recs) != len(rows)+1 || strings.Join(recs[0], ",") != "page,visitors,pageviews" {
			t.Fatalf("CSV %s has %d records (header %q), Stats API %d rows", filepath.Base(file), len(recs), recs[0], len(rows))
		}
		for i, r := range rows {
			m := r.(map[string]any)
			want := []string{fmt.Sprint(m["page"]), fmt.Sprint(m["visitors"]), fmt.Sprint(m["pageviews"])}
			if strings.Join(recs[i+1], "\x00") != strings.Join(want, "\x00") {
				t.Errorf("CSV row %d = %q, want %q", i+1, recs[i+1], want)
			}
		}
	})

	t.Run("a noisy site says so; its page, CSV and Stats API agree", func(t *testing.T) {
		browser.Navigate(t, ctx, base+"/dashboard/site?site="+noisySite, "")
		browser.WaitJS(t, ctx, "every panel", panelsLoaded)
		if txt := browser.Value[string](t, ctx, `document.getElementById('noisy')?.textContent || ''`); txt != "Numbers are approximate" {
			t.Errorf("the noisy site's badge reads %q", txt)
		}
		metrics := "visitors,visits,pageviews,views_per_visit,bounce_rate,visit_duration,time_on_page,scroll_depth"
		agg := statsAPI(t, srv.Addr, "aggregate", url.Values{"site_id": {noisySite}, "period": {"30d"}, "metrics": {metrics}, "compare": {"previous_period"}})
		if meta := agg["meta"].(map[string]any); meta["aggregates"] != "noisy" {
			t.Errorf("Stats API meta %v does not say noisy", meta)
		}
		want := agg["results"].(map[string]any)
		got := browser.Value[map[string]string](t, ctx, `Object.fromEntries([...document.querySelectorAll('.kpi')].map(k => [k.dataset.metric, k.querySelector('.kpi-value').dataset.value]))`)
		for _, m := range strings.Split(metrics, ",") {
			if w := fmt.Sprint(want[m].(map[string]any)["value"]); got[m] != w {
				t.Errorf("%s: the page shows %q, the Stats API %s: one release, one number", m, got[m], w)
			}
		}
		res := statsAPI(t, srv.Addr, "breakdown", url.Values{"site_id": {noisySite}, "period": {"30d"}, "property": {"event:page"}, "metrics": {"visitors,pageviews"}, "limit": {"10"}})
		if got, want := panelRows(t, ctx, "pages"), breakdownKeys(res, "page"); strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("top pages on the page %q, Stats API %q", got, want)
		}
		if n := int(res["meta"].(map[string]any)["folded_rows"].(float64)); n > 0 {
			if note := browser.Value[string](t, ctx, `document.querySelector('#panel-pages .note').textContent`); !strings.HasPrefix(note, fmt.Sprintf("About %d rows", n)) {
				t.Errorf("pages note %q, want about %d folded rows", note, n)
			}
		}
		csvText, err := chromedp.Run(ctx, chromedp.Evaluate[string](`fetch(document.querySelector('#panel-pages a.csv').href).then(r => r.text())`, chromedp.EvalAwaitPromise))
		if err != nil {
			t.Fatal(err)
		}
		recs, err := csv.NewReader(strings.NewReader(csvText)).ReadAll()
		if err != nil {
			t.Fatalf("CSV %q: %v", csvText, err)
		}
		full := statsAPI(t, srv.Addr, "breakdown", url.Values{"site_id": {noisySite}, "period": {"30d"}, "property": {"event:page"}, "metrics": {"visitors,pageviews"}, "limit": {"1000"}})
		rows := full["results"].([]any)
		if len(recs) != len(rows)+1 {
			t.Fatalf("CSV has %d records, the Stats API %d rows", len(recs), len(rows))
		}
		for i, r := range rows {
			m := r.(map[string]any)
			if want := []string{fmt.Sprint(m["page"]), fmt.Sprint(m["visitors"]), fmt.Sprint(m["pageviews"])}; strings.Join(recs[i+1], "\x00") != strings.Join(want, "\x00") {
				t.Errorf("CSV row %d = %q, Stats API %q", i+1, recs[i+1], want)
			}
		}
	})

	t.Run("a phone-width screen has no horizontal scroll", func(t *testing.T) {
		if err := chromedp.Do(ctx, chromedp.EmulateViewport(375, 800, chromedp.EmulateScale(2), chromedp.EmulateMobile)); err != nil {
			t.Fatal(err)
		}
		browser.Navigate(t, ctx, browser.Value[string](t, ctx, `location.href`), "")
		browser.WaitJS(t, ctx, "every panel", panelsLoaded)
		if w := browser.Value[[]int](t, ctx, `[document.documentElement.scrollWidth, window.innerWidth]`); w[0] > w[1] {
			t.Errorf("page is %d px wide in a %d px viewport", w[0], w[1])
		}
		browser.Screenshot(t, ctx, "dashboard-phone.png", "/tmp/dashboard-phone.png")
		if err := chromedp.Do(ctx, chromedp.EmulateViewport(1280, 800)); err != nil {
			t.Fatal(err)
		}
	})

	var shTab *browser.Tab // opened by the next subtest, checked by the one after
	t.Run("a shared link reads its site without signing in; a wrong token does not", func(t *testing.T) {
		shTab = b.Tab(t, "shared")
		sh := shTab.Ctx
		browser.Navigate(t, sh, base+"/dashboard/site?site="+dashSite+"&auth="+dashToken, "")
		browser.WaitJS(t, sh, "every panel", panelsLoaded)
		if n := browser.Value[int](t, sh, `document.querySelectorAll('form.signout').length`); n != 0 {
			t.Error("a shared link shows a sign-out form")
		}
		browser.Navigate(t, sh, base+"/dashboard/site?site="+dashSite+"&auth=not-"+dashToken, "")
		if txt := browser.Value[string](t, sh, `document.body.textContent`); !strings.Contains(txt, "not valid") {
			t.Errorf("a wrong token shows %q", txt)
		}
	})

	t.Run("the page requests nothing from any other origin", func(t *testing.T) {
		for _, tab := range []*browser.Tab{tab, shTab} {
			if tab == nil {
				t.Error("the shared-link tab was not opened")
				continue
			}
			reqs := tab.Requests()
			if len(reqs) < 10 {
				t.Errorf("tab %s made only %d requests", tab.Name, len(reqs))
			}
			for _, r := range reqs {
				u, err := url.Parse(r.URL)
				if err != nil || u.Host != srv.Addr {
					t.Errorf("tab %s requested %s", tab.Name, r.URL)
				}
			}
		}
		if n := dialogs.Load(); n != 0 {
			t.Errorf("%d JavaScript dialogs opened", n)
		}
	})
}

// TestDashboardListen: with --dashboard-listen the dashboard moves to its
// own listener and leaves the ingest listener.
func TestDashboardListen(t *testing.T) {
	db := chtest.New(t)
	cfg := apptest.WriteConfig(t, apptest.SitesYAML)
	dash := apptest.FreeAddr(t)
	s := apptest.Start(t, nil, "--config", cfg, "--clickhouse", db.DSN, "--dashboard-listen", dash)
	if code, body := apptest.Get(dash, "/dashboard/login"); code != 200 || !strings.Contains(body, `name="csrf"`) {
		t.Errorf("dashboard listener /dashboard/login: %d", code)
	}
	if code, _ := s.Get("/dashboard/login"); code != 404 {
		t.Errorf("ingest listener still serves the dashboard: %d", code)
	}
	c := http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Get("http://" + dash + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 302 || !strings.HasSuffix(resp.Header.Get("Location"), "/dashboard/") {
		t.Errorf("dashboard listener /: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	if !strings.Contains(s.Output(), "dashboard on http://"+dash+"/dashboard/") {
		t.Errorf("serve does not print the dashboard URL:\n%s", s.Output())
	}
	s.Stop(t)
}

func TestUserAdd(t *testing.T) {
	cmd := apptest.Command(t, nil, "user", "add", "--email", "ana@example.com", "--sites", "example.com")
	cmd.Stdin = strings.NewReader("correct horse battery\n")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("user add: %v", err)
	}
	cfg := apptest.WriteConfig(t, apptest.SitesYAML+string(out))
	f, err := config.Load(cfg)
	if err != nil {
		t.Fatalf("the printed lines do not load: %v\n%s", err, out)
	}
	u := f.User("ana@example.com")
	if u == nil || !dashboards.VerifyPassword(u.PasswordHash, "correct horse battery") || strings.Contains(string(out), "correct horse") {
		t.Fatalf("user add printed:\n%s", out)
	}
	cmd = apptest.Command(t, nil, "user", "add", "--email", "ana@example.com")
	cmd.Stdin = strings.NewReader("short\n")
	if b, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(b), "at least 10 characters") {
		t.Errorf("a short password: %v %s", err, b)
	}
}
