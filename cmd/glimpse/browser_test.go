package main

// Browser tests: the real beacon script in real headless Chromium, driven
// with chromedp, against `glimpse serve` on a fresh ClickHouse database.
// A test site on another loopback port embeds the script. Each test has
// its own database, collector, test site and tab (newBrowserTest); they
// share only the Chromium process, so they pass in any order.

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/glimpse-analytics/glimpse/internal/apptest"
	"github.com/glimpse-analytics/glimpse/internal/apptest/browser"
	"github.com/glimpse-analytics/glimpse/internal/chtest"
)

// envPlausible names the file plausible.js of npm's
// @plausible-analytics/tracker (Plausible's own tracker as an ES module),
// which scripts/test fetches: the proof that a site can point Plausible's
// tracker at Glimpse unchanged.
const envPlausible = "GLIMPSE_TEST_PLAUSIBLE_TRACKER"

// site is the test site: pages that embed the script, on their own port.
type site struct {
	addr      string // 127.0.0.1:port
	collector string // the collector's 127.0.0.1:port
	plausible string // Plausible's own tracker (envPlausible), or ""
	mu        sync.Mutex
	gpcSeen   int // requests that carried Sec-GPC: 1
}

// page kinds, by the first path segment.
//
//	/app/...    data-api and data-allow-local, the pre-load queue, links, an impression
//	/hash/...   data-hash, data-allow-local, the endpoint derived from the script's src
//	/dnt/...    data-respect-dnt, data-allow-local
//	/local/...  no data-allow-local: silent on 127.0.0.1
//	/blank      no script
//	/embed      the opt-out page in two iframes: one allowed, one not
//	/plausible/ Plausible's tracker (npm's @plausible-analytics/tracker, an
//	            ES module served as /vendor/plausible.js) pointed at the
//	            collector, for site plausible.test
func (s *site) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Sec-GPC") == "1" {
		s.mu.Lock()
		s.gpcSeen++
		s.mu.Unlock()
	}
	c := "http://" + s.collector
	var tag string
	switch first, _, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/"); first {
	case "app":
		tag = fmt.Sprintf(`<script defer data-domain="browser.test" data-api="%s/api/event" data-allow-local src="%s/js/glimpse.js"></script>`, c, c)
	case "hash":
		tag = fmt.Sprintf(`<script defer data-domain="browser.test" data-hash data-allow-local src="%s/js/glimpse.js"></script>`, c)
	case "dnt":
		tag = fmt.Sprintf(`<script defer data-domain="browser.test" data-respect-dnt data-allow-local src="%s/js/glimpse.js"></script>`, c)
	case "local":
		tag = fmt.Sprintf(`<script defer data-domain="browser.test" src="%s/js/glimpse.js"></script>`, c)
	case "blank":
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		io.WriteString(w, "<!doctype html><title>blank</title><p>blank</p>")
		return
	case "embed":
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, `<!doctype html><title>embed</title>
<iframe id="allowed" src="%s/optout?site=browser.test" title="Analytics opt-out"></iframe>
<iframe id="refused" src="%s/optout?site=other.test" title="Analytics opt-out"></iframe>`, c, c)
		return
	case "plausible":
		// The tracker ignores browsers that say navigator.webdriver, as
		// Chromium under DevTools does, unless window.__plausible is set;
		// and 127.0.0.1 unless captureOnLocalhost.
		tag = fmt.Sprintf(`<script type="module">
import { init, track } from '/vendor/plausible.js';
window.__plausible = true;
init({ domain: 'plausible.test', endpoint: '%s/api/event', captureOnLocalhost: true, logging: false,
  outboundLinks: true, fileDownloads: true, customProperties: { theme: 'dark' } });
window.ptrack = track;
</script>`, c)
	case "vendor":
		if r.URL.Path != "/vendor/plausible.js" || s.plausible == "" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/javascript")
		http.ServeFile(w, r, s.plausible)
		return
	case "files":
		w.Header().Set("Content-Type", "application/pdf")
		io.WriteString(w, "%PDF-1.4\n%%EOF\n")
		return
	case "favicon.ico":
		w.WriteHeader(http.StatusNoContent)
		return
	default:
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	fmt.Fprintf(w, `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Test site</title>
<script>
window.glimpse = window.glimpse || function () { (glimpse.q = glimpse.q || []).push(arguments) };
glimpse('Queued', {props: {early: 'yes'}});
</script>
%s
</head>
<body style="margin:0">
<p><a id="out" href="https://example.org/elsewhere">elsewhere</a> <a id="dl" href="/files/report.pdf">report</a></p>
<div style="height:3000px">content</div>
<div id="banner" data-glimpse-impression="pricing-banner" style="height:200px">banner</div>
<div style="height:1000px">footer</div>
<script>
// The links would leave the test site; the beacon still sees the clicks.
document.addEventListener('click', function (e) { if (e.target.closest('a')) e.preventDefault() });
</script>
</body></html>`, tag)
}

// scriptReady waits until the beacon has replaced the pre-load stub.
func scriptReady(t *testing.T, ctx context.Context) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		// Evaluate, not Poll: right after a navigation the page's execution
		// context may still be changing, and one failed try is no answer.
		ready, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`typeof glimpse == 'function' && !glimpse.q`))
		if err == nil && ready {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the beacon script did not start: ready %v, %v", ready, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// counts reads the collector's event counters from /metrics: accepted,
// dropped by reason, and rejected (4xx) in all. The DevTools protocol does
// not report beacons sent while a page unloads, so the collector's own
// counters tell when a tab's events have all arrived.
type counts struct {
	accepted, rejected int
	dropped            map[string]int
}

func (c counts) handled() int {
	n := c.accepted + c.rejected
	for _, d := range c.dropped {
		n += d
	}
	return n
}

func collectorCounts(t *testing.T, srv *apptest.Server) counts {
	t.Helper()
	c := counts{dropped: map[string]int{}}
	for name, v := range srv.Metrics(t) {
		n := int(v)
		switch {
		case name == "glimpse_events_accepted_total":
			c.accepted = n
		case strings.HasPrefix(name, `glimpse_events_dropped_total{reason="`):
			c.dropped[strings.TrimSuffix(strings.TrimPrefix(name, `glimpse_events_dropped_total{reason="`), `"}`)] = n
		case strings.HasPrefix(name, "glimpse_requests_rejected_total"):
			c.rejected += n
		}
	}
	return c
}

// waitCounts polls the collector's counters until ok says they are there.
func waitCounts(t *testing.T, srv *apptest.Server, ok func(counts) bool) counts {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c := collectorCounts(t, srv)
		if ok(c) {
			return c
		}
		if time.Now().After(deadline) {
			t.Fatalf("collector counters: %+v", c)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// event is one stored row, with what the assertions look at.
type event struct {
	Type, Name, Path, Referrer, Source        string
	UTMSource, UTMMedium, UTMCampaign, Target string
	Conn, Screen, Browser                     string
	Downlink                                  float32
	RTT                                       uint16
	EngagementMS                              uint32
	ScrollDepth                               uint8
	PropKeys, PropValues                      []string
	RevenueMicros                             int64
	Currency                                  string
}

func (e event) prop(k string) string {
	if i := slices.Index(e.PropKeys, k); i >= 0 {
		return e.PropValues[i]
	}
	return ""
}

// storedEvents returns the stored events of a site, oldest first.
func storedEvents(t *testing.T, db *chtest.DB, site string) []event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rows, err := db.Conn.Query(ctx, `SELECT toString(type), name, pathname, referrer, referrer_source,
		utm_source, utm_medium, utm_campaign, target_url, connection_type, screen, browser,
		downlink, rtt, engagement_ms, scroll_depth, prop_keys, prop_values, revenue_micros, revenue_currency
		FROM events WHERE site_id = ? ORDER BY ts`, site)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []event
	for rows.Next() {
		var e event
		if err := rows.Scan(&e.Type, &e.Name, &e.Path, &e.Referrer, &e.Source, &e.UTMSource, &e.UTMMedium, &e.UTMCampaign,
			&e.Target, &e.Conn, &e.Screen, &e.Browser, &e.Downlink, &e.RTT, &e.EngagementMS, &e.ScrollDepth,
			&e.PropKeys, &e.PropValues, &e.RevenueMicros, &e.Currency); err != nil {
			t.Fatal(err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// waitEvents polls ClickHouse until check finds what it wants (returns "")
// or a deadline passes; the writer flushes every 100 ms here.
func waitEvents(t *testing.T, db *chtest.DB, site string, check func([]event) string) []event {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		evs := storedEvents(t, db, site)
		missing := check(evs)
		if missing == "" {
			return evs
		}
		if time.Now().After(deadline) {
			var b strings.Builder
			for _, e := range evs {
				fmt.Fprintf(&b, "  %+v\n", e)
			}
			t.Fatalf("%s\nstored events:\n%s", missing, b.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func find(evs []event, match func(event) bool) []event {
	var out []event
	for _, e := range evs {
		if match(e) {
			out = append(out, e)
		}
	}
	return out
}

// browserTest is what one browser test has of its own: a fresh
// database, a collector on it, a test site whose pages embed that
// collector's script, and a tab in the shared browser. Tests share only
// the Chromium process, so a test's counters, rows and requests are its
// own and the tests pass in any order; a beacon that a closing tab sends
// late reaches only its own test's collector.
type browserTest struct {
	db                    *chtest.DB
	site                  *site
	srv                   *apptest.Server
	tab                   *browser.Tab
	siteURL, collectorURL string
}

// newBrowserTest starts a test's collector and site and opens its tab,
// named tab. When the test ends it checks that the tab talked to no host
// but the test site and the collector.
func newBrowserTest(t *testing.T, tab string) *browserTest {
	t.Helper()
	b := browser.Shared(t) // skips without Chromium, before starting anything
	db := chtest.New(t)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	st := &site{addr: ln.Addr().String(), plausible: os.Getenv(envPlausible)}
	hs := &http.Server{Handler: st, ReadHeaderTimeout: 10 * time.Second}
	t.Cleanup(func() { hs.Close(); ln.Close() })

	cfg := apptest.WriteConfig(t, fmt.Sprintf(`sites:
  - domain: browser.test
    optout_frame_ancestors: [http://%s]
  - domain: other.test
  - domain: plausible.test
`, st.addr))
	srv := apptest.Start(t, nil, "--config", cfg, "--clickhouse", db.DSN, "--flush-interval", "100ms")
	st.collector = srv.Addr
	go hs.Serve(ln) //nolint:errcheck // ends with Close
	bt := &browserTest{db: db, site: st, srv: srv, siteURL: "http://" + st.addr, collectorURL: "http://" + srv.Addr}
	bt.tab = b.Tab(t, tab)
	// Registered after the tab's own cleanup, so it runs before the tab
	// closes, and after the test body, so the tab's log is whole.
	t.Cleanup(func() { bt.onlyTwoHosts(t) })
	return bt
}

// quiet runs browse, then sends a barrier event and waits until the
// collector has counted it: the events the browser sent before it have
// been counted too. It returns what the collector counted meanwhile, the
// barrier included.
func (bt *browserTest) quiet(t *testing.T, browse func()) counts {
	t.Helper()
	tab := bt.tab.Name
	before := collectorCounts(t, bt.srv)
	browse()
	postBarrier(t, bt.collectorURL, "/barrier/"+tab)
	after := waitCounts(t, bt.srv, func(c counts) bool { return c.accepted > before.accepted })
	d := counts{accepted: after.accepted - before.accepted, rejected: after.rejected - before.rejected, dropped: map[string]int{}}
	for k, v := range after.dropped {
		if v != before.dropped[k] {
			d.dropped[k] = v - before.dropped[k]
		}
	}
	if d.accepted != 1 || d.rejected != 0 {
		t.Errorf("while %s browsed, the collector accepted %d events and rejected %d; want only the barrier", tab, d.accepted-1, d.rejected)
	}
	return d
}

// silent browses path in the tab without sending the collector anything:
// the collector counts no event but the barrier, the tab sends no beacon,
// and nothing of the path is stored. check, if not nil, runs between the
// browsing and the checks of what the tab sent and what was stored.
func (bt *browserTest) silent(t *testing.T, path string, check func()) {
	t.Helper()
	d := bt.quiet(t, func() { browseSilently(t, bt.site.addr, bt.tab.Ctx, bt.siteURL+path) })
	if d.handled() != 1 {
		t.Errorf("the collector got %d events besides the barrier: %+v", d.handled()-1, d)
	}
	if check != nil {
		check()
	}
	assertNoBeacon(t, bt.tab)
	bt.nothingStored(t, path)
}

// nothingStored checks, after quiet, that no event of a page under the
// silent path was stored. The barrier event was sent after them: once it
// is in ClickHouse, so is anything before it.
func (bt *browserTest) nothingStored(t *testing.T, silent string) {
	t.Helper()
	barrier := "/barrier/" + bt.tab.Name
	evs := waitEvents(t, bt.db, "browser.test", func(evs []event) string {
		if len(find(evs, func(e event) bool { return e.Path == barrier })) == 0 {
			return "the barrier event " + barrier + " is not stored"
		}
		return ""
	})
	for _, e := range evs {
		if strings.HasPrefix(e.Path, silent) {
			t.Errorf("stored an event that should not exist: %+v", e)
		}
	}
}

// onlyTwoHosts checks that the tab's pages talked to no host but the test
// site and the collector.
func (bt *browserTest) onlyTwoHosts(t *testing.T) {
	t.Helper()
	hosts := map[string]int{}
	for _, r := range bt.tab.Requests() {
		u, err := url.Parse(r.URL)
		if err != nil {
			t.Errorf("request to %q", r.URL)
			continue
		}
		switch u.Scheme {
		case "data", "about", "chrome-error":
			continue
		}
		hosts[u.Host]++
		if u.Host != bt.site.addr && u.Host != bt.srv.Addr {
			t.Errorf("tab %s requested %s: neither the test site nor the collector", r.Tab, r.URL)
		}
	}
	t.Logf("requests by host: %v", hosts)
}

// TestBrowserTracking browses the test site as a visitor would: page
// views with a referrer and UTM tags, the pre-load queue, a custom event
// with props and revenue, an outbound click, a download, an impression,
// client-side and hash routing, and the engagement of every page view;
// each is stored once, as sent.
func TestBrowserTracking(t *testing.T) {
	bt := newBrowserTest(t, "tracking")
	ctx := bt.tab.Ctx
	browser.Navigate(t, ctx, bt.siteURL+"/app/?utm_source=newsletter&utm_medium=email&utm_campaign=spring", "https://duckduckgo.com/")
	scriptReady(t, ctx)
	browser.Eval(t, ctx, `glimpse('Signup', {props: {plan: 'pro', seats: 3}, revenue: {amount: 12.5, currency: 'EUR'}})`)
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.ID("out")), chromedp.Click(chromedp.ID("dl"))); err != nil {
		t.Fatal(err)
	}
	// The banner comes into view, leaves, and comes back: one impression.
	bt.tab.WaitBeacons(t, 5) // pageview, queued, custom, outbound, download
	n := bt.tab.Beacons()
	browser.Eval(t, ctx, `window.scrollTo(0, 2900)`)
	bt.tab.WaitBeacons(t, n+1) // the impression
	browser.Eval(t, ctx, `window.scrollTo(0, 0)`)
	browser.Eval(t, ctx, `window.scrollTo(0, 2900)`)
	// Client-side navigation: a new path is a view, the same path is not.
	browser.Eval(t, ctx, `history.pushState({}, '', '/app/page2')`)
	browser.Eval(t, ctx, `history.pushState({}, '', '/app/page2')`)
	browser.Eval(t, ctx, `history.replaceState({}, '', '/app/page2?tab=1')`)
	browser.Eval(t, ctx, `history.pushState({}, '', '/app/page3')`)
	browser.Eval(t, ctx, `history.back()`) // popstate back to /app/page2
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`location.pathname == '/app/page2'`)); err != nil {
		t.Fatal(err)
	}
	// Scroll to the end and leave the page: its engagement is sent.
	browser.Eval(t, ctx, `window.scrollTo(0, document.documentElement.scrollHeight)`)
	time.Sleep(50 * time.Millisecond) // some visible time to measure
	browser.Navigate(t, ctx, bt.siteURL+"/blank", "")
	// Hash routing.
	browser.Navigate(t, ctx, bt.siteURL+"/hash/", "")
	scriptReady(t, ctx)
	n = bt.tab.Beacons()
	browser.Eval(t, ctx, `location.hash = '#/settings'`)
	bt.tab.WaitBeacons(t, n+2) // engagement of /hash/, pageview
	browser.Eval(t, ctx, `location.hash = '#/settings'`)
	browser.Eval(t, ctx, `location.hash = '#/profile'`)
	bt.tab.WaitBeacons(t, n+4)
	browser.Navigate(t, ctx, bt.siteURL+"/blank", "")

	views := func(evs []event, path string) int {
		return len(find(evs, func(e event) bool { return e.Type == "pageview" && e.Path == path }))
	}
	evs := waitEvents(t, bt.db, "browser.test", func(evs []event) string {
		for path, n := range map[string]int{"/app/": 1, "/app/page2": 2, "/app/page3": 1, "/hash/": 1, "/hash/#/settings": 1, "/hash/#/profile": 1} {
			if got := views(evs, path); got < n {
				return fmt.Sprintf("%d pageviews of %s, want %d", got, path, n)
			}
		}
		for _, typ := range []string{"outbound", "download", "impression"} {
			if len(find(evs, func(e event) bool { return e.Type == typ })) == 0 {
				return "no " + typ + " event"
			}
		}
		if len(find(evs, func(e event) bool { return e.Type == "custom" })) < 3 {
			return "fewer than 3 custom events"
		}
		if n := len(find(evs, func(e event) bool { return e.Type == "engagement" })); n < 7 {
			return fmt.Sprintf("%d engagement events, want 7 (one per page view)", n)
		}
		return ""
	})
	t.Logf("%d events stored", len(evs))
	if c := collectorCounts(t, bt.srv); c.handled() != c.accepted || c.accepted != len(evs) {
		t.Errorf("collector counters %+v: want all %d events accepted, none dropped or rejected", c, len(evs))
	}

	// Exactly: a repeated path is not a view, and nothing is doubled.
	for path, n := range map[string]int{"/app/": 1, "/app/page2": 2, "/app/page3": 1, "/hash/": 1, "/hash/#/settings": 1, "/hash/#/profile": 1} {
		if got := views(evs, path); got != n {
			t.Errorf("%d pageviews of %s, want %d", got, path, n)
		}
	}
	if n := len(find(evs, func(e event) bool { return e.Type == "pageview" })); n != 7 {
		t.Errorf("%d pageviews in all, want 7", n)
	}

	first := find(evs, func(e event) bool { return e.Type == "pageview" && e.Path == "/app/" })[0]
	if !strings.HasPrefix(first.Referrer, "duckduckgo.com") || first.Source != "DuckDuckGo" {
		t.Errorf("first pageview: referrer %q, source %q; want duckduckgo.com, DuckDuckGo", first.Referrer, first.Source)
	}
	if first.UTMSource != "newsletter" || first.UTMMedium != "email" || first.UTMCampaign != "spring" {
		t.Errorf("first pageview: utm %q %q %q", first.UTMSource, first.UTMMedium, first.UTMCampaign)
	}
	for _, e := range find(evs, func(e event) bool { return e.Type == "pageview" }) {
		if e.Conn == "" || e.Screen == "" || e.Browser != "Chromium" && e.Browser != "Chrome" {
			t.Errorf("pageview %s: connection %q, screen %q, browser %q", e.Path, e.Conn, e.Screen, e.Browser)
		}
	}
	t.Logf("connection: type %q, downlink %v Mbit/s, rtt %d ms, screen %q", first.Conn, first.Downlink, first.RTT, first.Screen)

	out := find(evs, func(e event) bool { return e.Type == "outbound" })
	if len(out) != 1 || out[0].Target != "example.org/elsewhere" || out[0].Path != "/app/" {
		t.Errorf("outbound: %+v", out)
	}
	dl := find(evs, func(e event) bool { return e.Type == "download" })
	if len(dl) != 1 || !strings.HasSuffix(dl[0].Target, "/files/report.pdf") {
		t.Errorf("download: %+v", dl)
	}

	// Each page queues one call before the script loads; /app/ also
	// sends one with props and revenue.
	custom := find(evs, func(e event) bool { return e.Type == "custom" })
	byName := map[string]event{}
	for _, e := range custom {
		byName[e.Name+" "+e.Path] = e
	}
	for _, path := range []string{"/app/", "/hash/"} {
		if e, ok := byName["Queued "+path]; !ok || e.prop("early") != "yes" {
			t.Errorf("the call queued before the script loaded on %s: %+v", path, e)
		}
	}
	if e, ok := byName["Signup /app/"]; !ok || e.prop("plan") != "pro" || e.prop("seats") != "3" || e.RevenueMicros != 12_500_000 || e.Currency != "EUR" {
		t.Errorf("custom event with props and revenue: %+v", e)
	}
	if len(custom) != 3 {
		t.Errorf("%d custom events, want 3", len(custom))
	}

	imp := find(evs, func(e event) bool { return e.Type == "impression" })
	if len(imp) != 1 || imp[0].Name != "pricing-banner" {
		t.Errorf("impressions: %+v, want one pricing-banner", imp)
	}

	// Engagement: once per page view, with visible time and scroll depth.
	eng := find(evs, func(e event) bool { return e.Type == "engagement" })
	if len(eng) != 7 {
		t.Errorf("%d engagement events, want 7", len(eng))
	}
	perPath := map[string]int{}
	for _, e := range eng {
		perPath[e.Path]++
	}
	if perPath["/app/page2"] != 2 || perPath["/app/"] != 1 || perPath["/app/page3"] != 1 {
		t.Errorf("engagement events per page: %v", perPath)
	}
	// Left by navigating to another document, after scrolling to the end.
	left := find(eng, func(e event) bool { return e.Path == "/app/page2" && e.ScrollDepth == 100 })
	if len(left) != 1 || left[0].EngagementMS == 0 {
		t.Errorf("want one engagement of /app/page2 with visible time and scroll depth 100 after leaving it: %+v", eng)
	}
	// Left by a client-side navigation, after scrolling to the banner.
	firstEng := find(eng, func(e event) bool { return e.Path == "/app/" })
	if len(firstEng) != 1 || firstEng[0].EngagementMS == 0 || firstEng[0].ScrollDepth < 50 {
		t.Errorf("want one engagement of /app/ with visible time and scroll depth of at least 50: %+v", firstEng)
	}
}

// TestBrowserGPC: a browser that sends Global Privacy Control sends no
// beacon, and nothing of its visit is stored.
func TestBrowserGPC(t *testing.T) {
	bt := newBrowserTest(t, "gpc")
	ctx := bt.tab.Ctx
	if _, err := chromedp.Call(ctx, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{Headers: network.Headers{"Sec-GPC": "1"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{
		Source: `Object.defineProperty(Navigator.prototype, 'globalPrivacyControl', {get: () => true, configurable: true})`,
	}); err != nil {
		t.Fatal(err)
	}
	bt.silent(t, "/app/gpc/", func() {
		bt.site.mu.Lock()
		seen := bt.site.gpcSeen
		bt.site.mu.Unlock()
		if seen == 0 {
			t.Error("the test site never saw Sec-GPC: 1")
		}
	})
}

// TestBrowserLocalStorage: localStorage.glimpse_ignore silences the
// script, and nothing of the visit is stored.
func TestBrowserLocalStorage(t *testing.T) {
	bt := newBrowserTest(t, "storage")
	ctx := bt.tab.Ctx
	browser.Navigate(t, ctx, bt.siteURL+"/blank", "")
	browser.Eval(t, ctx, `localStorage.glimpse_ignore = 'true'`)
	bt.silent(t, "/app/ls/", nil)
}

// TestBrowserDNT: with data-respect-dnt, Do-Not-Track silences the
// script, and nothing of the visit is stored.
func TestBrowserDNT(t *testing.T) {
	bt := newBrowserTest(t, "dnt")
	ctx := bt.tab.Ctx
	if _, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{
		Source: `Object.defineProperty(Navigator.prototype, 'doNotTrack', {get: () => '1', configurable: true})`,
	}); err != nil {
		t.Fatal(err)
	}
	bt.silent(t, "/dnt/", nil)
}

// TestBrowserLocalGuard: without data-allow-local the script stays
// silent on 127.0.0.1, and nothing of the visit is stored.
func TestBrowserLocalGuard(t *testing.T) {
	bt := newBrowserTest(t, "local")
	bt.silent(t, "/local/", nil)
}

// TestBrowserOptOut opts out on the collector's page, browses (the
// script sends, the collector drops every event as opt-out and stores
// none), and opts back in (visits count again).
func TestBrowserOptOut(t *testing.T) {
	bt := newBrowserTest(t, "optout")
	ctx := bt.tab.Ctx
	browser.Navigate(t, ctx, bt.collectorURL+"/optout?site=browser.test", "")
	state := func() string {
		s, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID("state")))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	if s := state(); s != "Your visits are counted, without cookies." {
		t.Fatalf("opt-out page state %q", s)
	}
	browser.Screenshot(t, ctx, "optout.png", "/tmp/optout.png")
	click := chromedp.Click(chromedp.CSS("form button"))
	if _, err := chromedp.Run(ctx, chromedp.WaitEvent(page.LoadEventFired, nil, click)); err != nil {
		t.Fatal(err)
	}
	if s := state(); s != "You are opted out of Glimpse analytics." {
		t.Fatalf("after clicking the button the page says %q", s)
	}
	if loc, err := chromedp.Run(ctx, chromedp.Location()); err != nil || loc != bt.collectorURL+"/optout?site=browser.test" {
		t.Errorf("after the POST the browser is at %q (%v), want the page again", loc, err)
	}
	browser.Screenshot(t, ctx, "optout-done.png", "/tmp/optout-done.png")

	// Browsing the test site now: the script sends, the collector drops.
	d := bt.quiet(t, func() { browseSilently(t, bt.site.addr, ctx, bt.siteURL+"/app/optedout/") })
	sent := 0
	for _, r := range bt.tab.Requests() {
		if strings.HasSuffix(r.URL, "/api/event") {
			sent++
			if r.Status != 0 && r.Dropped != "opt-out" {
				t.Errorf("beacon answered %d without X-Glimpse-Dropped: opt-out (%q): %s", r.Status, r.Dropped, r.Body)
			}
		}
	}
	if sent < 7 || d.dropped["opt-out"] < sent || d.handled() != d.dropped["opt-out"]+1 {
		t.Errorf("the opted-out browser sent %d events (DevTools saw %d); want all dropped as opt-out", d.handled()-1, sent)
	}
	bt.nothingStored(t, "/app/optedout/")

	// And back in: the cookie is removed and visits count again.
	browser.Navigate(t, ctx, bt.collectorURL+"/optout?site=browser.test", "")
	if _, err := chromedp.Run(ctx, chromedp.WaitEvent(page.LoadEventFired, nil, click)); err != nil {
		t.Fatal(err)
	}
	if s := state(); s != "Your visits are counted, without cookies." {
		t.Fatalf("after opting back in the page says %q", s)
	}
	browser.Navigate(t, ctx, bt.siteURL+"/app/optedin/", "")
	scriptReady(t, ctx)
	waitEvents(t, bt.db, "browser.test", func(evs []event) string {
		if len(find(evs, func(e event) bool { return e.Path == "/app/optedin/" })) == 0 {
			return "no pageview after opting back in"
		}
		return ""
	})
}

// TestBrowserEmbed: the opt-out page may be framed by the configured
// ancestors only.
func TestBrowserEmbed(t *testing.T) {
	bt := newBrowserTest(t, "embed")
	ctx := bt.tab.Ctx
	browser.Navigate(t, ctx, bt.siteURL+"/embed", "")
	deadline := time.Now().Add(10 * time.Second)
	for {
		tree, err := chromedp.Call(ctx, page.GetFrameTree, cdp.Empty{})
		if err != nil {
			t.Fatal(err)
		}
		urls := map[string]string{}
		for _, f := range tree.FrameTree.ChildFrames {
			urls[f.Frame.Name+f.Frame.URL] = f.Frame.URL
		}
		var allowed, refused bool
		for _, u := range urls {
			allowed = allowed || u == bt.collectorURL+"/optout?site=browser.test"
			refused = refused || strings.HasPrefix(u, "chrome-error:")
		}
		if allowed && refused {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("frames %v: want the browser.test page shown and the other.test page refused", urls)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestBrowserPlausibleTracker points Plausible's own tracker (npm's
// @plausible-analytics/tracker) at the collector: its events are all
// accepted and stored as Glimpse's own.
func TestBrowserPlausibleTracker(t *testing.T) {
	if os.Getenv(envPlausible) == "" {
		t.Skipf("set %s to plausible.js of npm's @plausible-analytics/tracker (make test fetches it)", envPlausible)
	}
	bt := newBrowserTest(t, "plausible")
	ctx := bt.tab.Ctx
	before := collectorCounts(t, bt.srv)
	browser.Navigate(t, ctx, bt.siteURL+"/plausible/?utm_source=newsletter&utm_campaign=spring", "https://duckduckgo.com/")
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`typeof window.ptrack == 'function'`)); err != nil {
		t.Fatal(err)
	}
	bt.tab.WaitBeacons(t, 1) // the page view
	browser.Eval(t, ctx, `ptrack('Signup', {props: {plan: 'pro'}, revenue: {amount: 12.5, currency: 'EUR'}})`)
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.ID("out")), chromedp.Click(chromedp.ID("dl"))); err != nil {
		t.Fatal(err)
	}
	bt.tab.WaitBeacons(t, 4)
	// Scroll to the end; a client-side navigation then sends the
	// engagement of the page left, and a page view of the next.
	browser.Eval(t, ctx, `window.scrollTo(0, document.documentElement.scrollHeight)`)
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`window.scrollY > 0`)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // the tracker's scroll listener runs
	browser.Eval(t, ctx, `history.pushState({}, '', '/plausible/page2')`)
	bt.tab.WaitBeacons(t, 6)

	evs := waitEvents(t, bt.db, "plausible.test", func(evs []event) string {
		if len(evs) < 6 {
			return fmt.Sprintf("%d events, want 6", len(evs))
		}
		return ""
	})
	// Every beacon was accepted. The collector's counters say so; the
	// DevTools protocol does not always report the answer to a
	// keepalive fetch, and at times reports one the collector accepted as
	// aborted (net::ERR_ABORTED, status 0): such a report carries no
	// answer, so only the answers it reported are checked, and the
	// counters and rows prove the rest were accepted.
	after := collectorCounts(t, bt.srv)
	if d := after.accepted - before.accepted; d < len(evs) || after.rejected != before.rejected || after.handled()-before.handled() != d {
		t.Errorf("collector counters before %+v, after %+v: want %d or more accepted, none dropped or rejected", before, after, len(evs))
	}
	for _, r := range bt.tab.Requests() {
		switch {
		case !strings.HasSuffix(r.URL, "/api/event") || !r.Done():
		case r.Aborted():
			t.Logf("DevTools reports beacon %s as aborted, without an answer", r.Body)
		case r.Status != 202 || r.Dropped != "":
			t.Errorf("beacon %s answered %d, dropped %q (%s)", r.Body, r.Status, r.Dropped, r.Failed)
		}
	}
	// check finds the one event that match picks and checks it with ok.
	check := func(what string, match func(event) bool, ok func(event) bool) {
		t.Helper()
		switch found := find(evs, match); {
		case len(found) != 1:
			t.Errorf("%d %s, want 1", len(found), what)
		case !ok(found[0]):
			t.Errorf("%s: %+v", what, found[0])
		}
	}
	check("page views of /plausible/", func(e event) bool { return e.Type == "pageview" && e.Path == "/plausible/" }, func(e event) bool {
		return e.Source == "DuckDuckGo" && e.UTMSource == "newsletter" && e.UTMCampaign == "spring" && e.prop("theme") == "dark" &&
			(e.Browser == "Chromium" || e.Browser == "Chrome")
	})
	check("page views of /plausible/page2", func(e event) bool { return e.Type == "pageview" && e.Path == "/plausible/page2" },
		func(e event) bool { return e.prop("theme") == "dark" })
	check("Signup events with props and revenue", func(e event) bool { return e.Type == "custom" && e.Name == "Signup" }, func(e event) bool {
		return e.prop("plan") == "pro" && e.prop("theme") == "dark" && e.RevenueMicros == 12_500_000 && e.Currency == "EUR"
	})
	check("outbound clicks", func(e event) bool { return e.Type == "outbound" }, func(e event) bool {
		return e.Name == "Outbound Link: Click" && e.Target == "example.org/elsewhere" && e.Path == "/plausible/"
	})
	check("downloads", func(e event) bool { return e.Type == "download" }, func(e event) bool {
		return e.Name == "File Download" && strings.HasSuffix(e.Target, "/files/report.pdf")
	})
	check("engagements of /plausible/ (want scroll depth 100 and some engaged time)",
		func(e event) bool { return e.Type == "engagement" && e.Path == "/plausible/" },
		func(e event) bool { return e.ScrollDepth == 100 && e.EngagementMS > 0 })
	t.Logf("Plausible's tracker: %d events stored", len(evs))
}

// browseSilently does everything the tracking tab does that would send an
// event, on a page that must stay silent, and leaves the page.
func browseSilently(t *testing.T, siteAddr string, ctx context.Context, u string) {
	t.Helper()
	browser.Navigate(t, ctx, u, "https://duckduckgo.com/")
	scriptReady(t, ctx)
	browser.Eval(t, ctx, `glimpse('Signup', {props: {plan: 'pro'}})`)
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.ID("out")), chromedp.Click(chromedp.ID("dl"))); err != nil {
		t.Fatal(err)
	}
	browser.Eval(t, ctx, `window.scrollTo(0, 2900)`)
	p := strings.TrimPrefix(u, "http://"+siteAddr)
	browser.Eval(t, ctx, `history.pushState({}, '', '`+p+`next')`)
	browser.Navigate(t, ctx, "http://"+siteAddr+"/blank", "")
}

// assertNoBeacon fails if a tab sent anything to the event endpoint.
func assertNoBeacon(t *testing.T, tab *browser.Tab) {
	t.Helper()
	script := false
	for _, r := range tab.Requests() {
		if strings.HasSuffix(r.URL, "/api/event") {
			t.Errorf("tab %s sent a beacon: %+v", tab.Name, r)
		}
		script = script || strings.HasSuffix(r.URL, "/js/glimpse.js")
	}
	if !script {
		t.Errorf("tab %s never loaded the script", tab.Name)
	}
}

// postBarrier sends one pageview of path straight to the collector.
func postBarrier(t *testing.T, collectorURL, path string) {
	t.Helper()
	req, _ := http.NewRequest("POST", collectorURL+"/api/event",
		strings.NewReader(`{"n":"pageview","u":"http://browser.test`+path+`","d":"browser.test"}`))
	req.Header.Set("User-Agent", browser.UserAgent)
	req.Header.Set("Content-Type", "text/plain")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 202 || resp.Header.Get("X-Glimpse-Dropped") != "" {
		t.Fatalf("barrier event: %d %q", resp.StatusCode, resp.Header.Get("X-Glimpse-Dropped"))
	}
}
