package main

// Saved segments and chart annotations in real headless Chromium against
// `glimpse serve`, at 1280 px and on a 390 px phone.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/glimpse-analytics/glimpse/collector/sink"
	"github.com/glimpse-analytics/glimpse/dashboards"
	"github.com/glimpse-analytics/glimpse/internal/apptest"
	"github.com/glimpse-analytics/glimpse/internal/apptest/browser"
	"github.com/glimpse-analytics/glimpse/internal/chtest"
	"github.com/glimpse-analytics/glimpse/internal/storage/seed"
)

func TestDashboardSegmentsAnnotations(t *testing.T) {
	const site = "notes.test"
	b := browser.Shared(t)
	db := chtest.Migrated(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	w := sink.New(sink.Options{Conn: db.Conn, BatchSize: 50000, QueueSize: 100000, SessionInterval: seed.SessionInterval})
	if _, err := seed.Generate(ctx, w, seed.Options{Site: site, Events: 4000, Days: 20, Seed: 21}); err != nil {
		t.Fatal(err)
	}
	if lost, err := w.Close(ctx); err != nil || lost > 0 {
		t.Fatalf("seed: %d lost, %v", lost, err)
	}
	hash, err := dashboards.HashPassword(dashPassword)
	if err != nil {
		t.Fatal(err)
	}
	cfg := apptest.WriteConfig(t, "sites:\n"+sharedLinkSite(site)+fmt.Sprintf("users:\n  - email: %s\n    password_hash: %q\napi_keys:\n  - name: test\n    sha256: %q\n    sites: [%s]\n",
		dashEmail, hash, apptest.KeyHash(dashAPIKey), site))
	srv := apptest.Start(t, nil, "--config", cfg, "--clickhouse", db.DSN)
	base := srv.URL()
	tab := b.Tab(t, "segments")
	tc := tab.Ctx

	browser.Navigate(t, tc, base+"/dashboard/login", "")
	if err := chromedp.Do(tc,
		chromedp.SendKeys(chromedp.ID("email"), dashEmail),
		chromedp.SendKeys(chromedp.ID("password"), dashPassword),
		chromedp.Click(chromedp.ID("signin")),
	); err != nil {
		t.Fatalf("sign-in: %v", err)
	}
	browser.WaitJS(t, tc, "the site list after signing in", `document.getElementById('sites') !== null`)

	const filters = "visit:source==Google"
	pageURL := base + "/dashboard/site?site=" + site + "&period=30d"
	open := func(query string) {
		t.Helper()
		browser.Navigate(t, tc, pageURL+query, "")
		browser.WaitJS(t, tc, "every panel and the segments", panelsLoaded+` && document.querySelector('.segments-label') !== null && document.querySelector('#annotation-list') !== null`)
		browser.Eval(t, tc, `window.cspViolations = []; document.addEventListener('securitypolicyviolation', e => window.cspViolations.push(e.violatedDirective + ' ' + e.blockedURI))`)
	}
	annotations := func() []any {
		t.Helper()
		req, _ := http.NewRequest("GET", base+"/api/v1/stats/annotations?site_id="+site+"&period=30d", nil)
		req.Header.Set("Authorization", "Bearer "+dashAPIKey)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out struct{ Results []any }
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != 200 {
			t.Fatalf("Stats API annotations: %d %v", resp.StatusCode, err)
		}
		return out.Results
	}
	day := time.Now().UTC().AddDate(0, 0, -3).Format(time.DateOnly)

	for _, vp := range []struct {
		name string
		w, h int64
	}{{"1280 px", 1280, 800}, {"390 px", 390, 844}} {
		t.Run(vp.name, func(t *testing.T) {
			opts := []chromedp.EmulateViewportOption{}
			if vp.w < 500 {
				opts = append(opts, chromedp.EmulateScale(2), chromedp.EmulateMobile)
			}
			if err := chromedp.Do(tc, chromedp.EmulateViewport(vp.w, vp.h, opts...)); err != nil {
				t.Fatal(err)
			}
			name := "Google " + vp.name

			// Create a segment from the page's filters.
			open("&filters=" + strings.ReplaceAll(filters, "=", "%3D"))
			// The segments bar may still be redrawn as its list arrives: a
			// click on the button it replaced does nothing, so click until
			// the form is open (a CI run under -race hung on one).
			openSegmentForm(t, tc)
			if err := chromedp.Do(tc, chromedp.SendKeys(chromedp.ID("segment-name"), "Draft"), chromedp.Click(chromedp.ID("segment-save"))); err != nil {
				t.Fatal(err)
			}
			browser.WaitJS(t, tc, "the saved segment", `[...document.querySelectorAll('.segment-apply')].some(b => b.textContent === 'Draft') && document.getElementById('segment-form') === null`)
			// Rename it.
			browser.Eval(t, tc, `[...document.querySelectorAll('.segment')].find(s => s.querySelector('.segment-apply').textContent === 'Draft').querySelector('.segment-edit').click()`)
			browser.WaitJS(t, tc, "the rename form", `document.getElementById('segment-name') !== null && document.getElementById('segment-name').value === 'Draft'`)
			browser.Eval(t, tc, `document.getElementById('segment-name').value = ''`)
			if err := chromedp.Do(tc, chromedp.SendKeys(chromedp.ID("segment-name"), name), chromedp.Click(chromedp.ID("segment-save"))); err != nil {
				t.Fatal(err)
			}
			hasSegment := `[...document.querySelectorAll('.segment-apply')].some(b => b.textContent === ` + strconv.Quote(name) + `)`
			browser.WaitJS(t, tc, "the renamed segment", hasSegment+` && document.getElementById('segment-form') === null && document.querySelectorAll('.segment-apply').length === 1`)

			// Apply it in a fresh page load without filters: one click.
			open("")
			if f := browser.Value[string](t, tc, `new URL(location.href).searchParams.get('filters') || ''`); f != "" {
				t.Fatalf("fresh page has filters %q", f)
			}
			// The key figures then equal the Stats API's under the segment's filters.
			agg := statsAPI(t, srv.Addr, "aggregate", url.Values{"site_id": {site}, "period": {"30d"}, "filters": {filters}, "metrics": {"visitors"}})["results"].(map[string]any)
			want := fmt.Sprint(agg["visitors"].(map[string]any)["value"])
			if all := browser.Value[string](t, tc, `document.querySelector('.kpi[data-metric=visitors] .kpi-value').dataset.value`); all == want {
				t.Fatalf("the seeded traffic has as many visitors (%s) with the filters as without", want)
			}
			browser.Eval(t, tc, `[...document.querySelectorAll('.segment-apply')].find(b => b.textContent === `+strconv.Quote(name)+`).click()`)
			browser.WaitJS(t, tc, "the segment's filters applied", `new URL(location.href).searchParams.get('filters') === `+strconv.Quote(filters)+
				` && document.querySelector('.chip') !== null && (`+panelsLoaded+`) && document.querySelector('.segment.active .segment-apply').getAttribute('aria-pressed') === 'true'`+
				` && document.querySelector('.kpi[data-metric=visitors] .kpi-value').dataset.value === `+strconv.Quote(want))
			if w := browser.Value[[]int](t, tc, `[document.documentElement.scrollWidth, window.innerWidth]`); w[0] > w[1] {
				t.Errorf("page is %d px wide in a %d px viewport", w[0], w[1])
			}

			// Delete it: asked once more, then gone, also after a reload.
			browser.Eval(t, tc, `[...document.querySelectorAll('.segment')].find(s => s.querySelector('.segment-apply').textContent === `+strconv.Quote(name)+`).querySelector('.segment-delete').click()`)
			browser.WaitJS(t, tc, "the delete question", `document.querySelector('.segment-delete-yes') !== null`)
			if err := chromedp.Do(tc, chromedp.Click(chromedp.CSS(`.segment-delete-yes`))); err != nil {
				t.Fatal(err)
			}
			browser.WaitJS(t, tc, "the segment gone", `!(`+hasSegment+`)`)
			open("")
			if browser.Value[bool](t, tc, hasSegment) {
				t.Fatal("the deleted segment is back after a reload")
			}

			// Add an annotation: a marker on the chart with its text.
			text := "Launch <b>" + vp.name + "</b>"
			browser.Eval(t, tc, `document.getElementById('annotation-date').value = `+strconv.Quote(day))
			if err := chromedp.Do(tc, chromedp.SendKeys(chromedp.ID("annotation-text"), text), chromedp.Click(chromedp.ID("annotation-add"))); err != nil {
				t.Fatal(err)
			}
			browser.WaitJS(t, tc, "the marker on the chart", `document.querySelector('#chart svg .annotation') !== null`)
			type marker struct {
				Title, Label, Listed string
				Shown, Hidden        bool
				X, Left, Right       float64
			}
			m := browser.Value[marker](t, tc, `(() => {
				const g = document.querySelector('#chart svg .annotation'), label = g.querySelector('.annotation-label');
				const hidden = getComputedStyle(label).visibility === 'hidden';
				g.focus();
				const shown = getComputedStyle(label).visibility === 'visible';
				g.blur();
				const svg = document.querySelector('#chart svg').getBoundingClientRect(), line = g.querySelector('.annotation-line').getBoundingClientRect();
				return {Title: g.querySelector('title').textContent, Label: label.textContent, Hidden: hidden, Shown: shown,
					Listed: document.querySelector('#annotation-list .annotation-text').textContent,
					X: line.left, Left: svg.left, Right: svg.right};
			})()`)
			if !strings.HasSuffix(m.Title, ": "+text) || m.Label != text || m.Listed != text {
				t.Errorf("marker title %q, label %q, list %q; want the text %q", m.Title, m.Label, m.Listed, text)
			}
			if !m.Hidden || !m.Shown {
				t.Errorf("the marker's text: hidden before focus %v, shown on focus %v", m.Hidden, m.Shown)
			}
			if m.X < m.Left || m.X > m.Right {
				t.Errorf("the marker at x=%.0f lies outside the chart [%.0f, %.0f]", m.X, m.Left, m.Right)
			}
			if n := browser.Value[int](t, tc, `document.querySelectorAll('#annotations b, #chart b').length`); n != 0 {
				t.Errorf("the annotation's text was parsed as markup (%d <b>)", n)
			}
			if got := annotations(); len(got) != 1 || got[0].(map[string]any)["text"] != text || got[0].(map[string]any)["date"] != day {
				t.Errorf("Stats API annotations: %v", got)
			}
			// After a reload the marker is drawn again.
			open("")
			browser.WaitJS(t, tc, "the marker after a reload", `document.querySelector('#chart svg .annotation title') !== null && document.querySelector('#chart svg .annotation title').textContent.endsWith(`+strconv.Quote(text)+`)`)
			if w := browser.Value[[]int](t, tc, `[document.documentElement.scrollWidth, window.innerWidth]`); w[0] > w[1] {
				t.Errorf("page with an annotation is %d px wide in a %d px viewport", w[0], w[1])
			}
			browser.Screenshot(t, tc, "dashboard-annotations-"+strconv.Itoa(int(vp.w))+".png", "/tmp/dashboard-annotations-"+strconv.Itoa(int(vp.w))+".png")

			// Remove it.
			if err := chromedp.Do(tc, chromedp.Click(chromedp.CSS(`.annotation-remove`))); err != nil {
				t.Fatal(err)
			}
			browser.WaitJS(t, tc, "the marker gone", `document.querySelector('#chart svg .annotation') === null && document.querySelector('.annotation-remove') === null`)
			if got := annotations(); len(got) != 0 {
				t.Errorf("Stats API annotations after removal: %v", got)
			}
			if v := browser.Value[[]string](t, tc, `window.cspViolations || []`); len(v) > 0 {
				t.Errorf("CSP violations: %q", v)
			}
		})
	}
	if err := chromedp.Do(tc, chromedp.EmulateViewport(1280, 800)); err != nil {
		t.Fatal(err)
	}

	// A shared link sees the segments and annotations but no way to
	// change them.
	open("&filters=" + strings.ReplaceAll(filters, "=", "%3D"))
	openSegmentForm(t, tc)
	if err := chromedp.Do(tc, chromedp.SendKeys(chromedp.ID("segment-name"), "For the board"), chromedp.Click(chromedp.ID("segment-save"))); err != nil {
		t.Fatal(err)
	}
	browser.WaitJS(t, tc, "the board's segment", `document.querySelector('.segment-apply') !== null && document.getElementById('segment-form') === null`)
	browser.Eval(t, tc, `document.getElementById('annotation-date').value = `+strconv.Quote(day))
	if err := chromedp.Do(tc, chromedp.SendKeys(chromedp.ID("annotation-text"), "Board meeting"), chromedp.Click(chromedp.ID("annotation-add"))); err != nil {
		t.Fatal(err)
	}
	browser.WaitJS(t, tc, "the board's annotation", `document.querySelector('#chart svg .annotation') !== null`)
	browser.Navigate(t, tc, base+"/dashboard/site?site="+site+"&auth="+dashToken+"&period=30d", "")
	browser.WaitJS(t, tc, "the shared page", panelsLoaded+` && document.querySelector('.segment-apply') !== null && document.querySelector('#chart svg .annotation') !== null`)
	type shared struct{ Segments, Edit, Forms, Remove, By int }
	s := browser.Value[shared](t, tc, `({Segments: document.querySelectorAll('.segment-apply').length,
		Edit: document.querySelectorAll('.segment-edit, .segment-delete, #segment-new').length,
		Forms: document.querySelectorAll('#annotation-form, #segment-form').length,
		Remove: document.querySelectorAll('.annotation-remove').length,
		By: document.querySelectorAll('.annotation-by').length})`)
	if s != (shared{Segments: 1}) {
		t.Errorf("shared link: %+v, want one segment and nothing to change", s)
	}
	browser.Eval(t, tc, `document.querySelector('.segment-apply').click()`)
	browser.WaitJS(t, tc, "the shared link applies the segment", `new URL(location.href).searchParams.get('filters') === `+strconv.Quote(filters)+` && new URL(location.href).searchParams.get('auth') === `+strconv.Quote(dashToken))

	// Nothing came from another origin (the date and time pickers' icons
	// included).
	for _, r := range tab.Requests() {
		if u, err := url.Parse(r.URL); err != nil || u.Host != srv.Addr {
			t.Errorf("the page requested %.80s", r.URL)
		}
	}
}

// openSegmentForm clicks "new segment" until its form is open.
func openSegmentForm(t *testing.T, tc context.Context) {
	t.Helper()
	browser.WaitJS(t, tc, "the new segment form",
		`document.getElementById('segment-name') !== null || (document.getElementById('segment-new') && document.getElementById('segment-new').click(), false)`)
}
