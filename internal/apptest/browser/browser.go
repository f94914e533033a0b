// Package browser drives headless Chromium for tests with chromedp: one
// browser process per test binary, started on first use, and a fresh tab
// per test, each in its own browser context (its own cookies and
// storage) with a log of its requests as the DevTools protocol reports
// them.
//
// Tests share the process, not state: a tab sees nothing of another's
// cookies, storage or requests, so tests that each open their own tab
// pass in any order.
package browser

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/glimpse-analytics/glimpse/internal/apptest"
)

// EnvChromium names the Chromium binary; scripts/test sets it.
const EnvChromium = "GLIMPSE_TEST_CHROMIUM"

// UserAgent is what the test browser says it is. Headless Chromium calls
// itself HeadlessChrome in its User-Agent, which the collector rightly
// drops as a bot, so the browser is started with a desktop User-Agent
// (its client hints already name plain Chromium). It is set for the
// whole browser, not per tab: beacons sent while a page unloads carry the
// browser's own.
const UserAgent = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/139.0.0.0 Safari/537.36"

// Browser is one headless Chromium.
type Browser struct {
	ctx context.Context
}

var (
	sharedOnce sync.Once
	shared     *Browser
	sharedErr  error
)

// Shared returns the test binary's browser, started by the first test
// that asks and closed by apptest.Main after the last test. Without
// EnvChromium, or under -short, t is skipped. A browser that failed to
// start fails every test that asks for it.
func Shared(t testing.TB) *Browser {
	t.Helper()
	exe := os.Getenv(EnvChromium)
	if exe == "" {
		t.Skipf("browser test skipped: set %s to a Chromium binary (make test installs Debian's chromium and sets it)", EnvChromium)
	}
	if testing.Short() {
		t.Skip("starts Chromium")
	}
	sharedOnce.Do(func() {
		var stop func()
		shared, stop, sharedErr = start(exe)
		if sharedErr == nil {
			apptest.AtExit(stop)
		}
	})
	if sharedErr != nil {
		t.Fatal(sharedErr)
	}
	return shared
}

// start starts Chromium with a fresh profile; stop ends it and removes
// the profile.
func start(exe string) (*Browser, func(), error) {
	profile, err := os.MkdirTemp("", "glimpse-chromium")
	if err != nil {
		return nil, nil, err
	}
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(exe),
		chromedp.UserDataDir(profile),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.WindowSize(1280, 800),
		chromedp.UserAgent(UserAgent),
	)
	ctx, cancelCtx := chromedp.NewContext(alloc)
	stop := func() {
		cancelCtx()
		cancelAlloc()
		os.RemoveAll(profile)
	}
	if err := chromedp.Do(ctx); err != nil { // starts the browser
		stop()
		return nil, nil, fmt.Errorf("cannot start %s: %v", exe, err)
	}
	return &Browser{ctx: ctx}, stop, nil
}

// Tab is one tab in a browser context of its own.
type Tab struct {
	// Ctx is the tab's chromedp context, for chromedp.Run and the helpers
	// of this package.
	Ctx  context.Context
	Name string

	mu   sync.Mutex
	reqs []*Request // in the order they were sent
	byID map[network.RequestID]*Request
}

// Request is one request of a tab, as the DevTools protocol reports it.
type Request struct {
	Tab, URL, Method, Body string
	Status                 int64  // 0 until answered
	Dropped                string // X-Glimpse-Dropped
	Failed                 string // the network error, if it failed
}

// Done says DevTools reported an answer or a failure.
func (r *Request) Done() bool { return r.Status != 0 || r.Failed != "" }

// Aborted says DevTools reported the request as aborted (net::ERR_ABORTED)
// without an answer. Chromium at times reports a beacon so although the
// request went out and the collector accepted it, as the collector's
// counters and stored rows show: an aborted request says nothing about
// the answer, like one whose answer was never reported.
func (r *Request) Aborted() bool { return r.Status == 0 && r.Failed == "net::ERR_ABORTED" }

// TabTimeout bounds a tab's life: the longest browser test holds one for
// about a minute.
const TabTimeout = 5 * time.Minute

// Tab opens a tab in a fresh browser context and records its requests;
// it is closed, with its context, when t ends.
func (b *Browser) Tab(t testing.TB, name string) *Tab {
	t.Helper()
	ctx, cancel := chromedp.NewContext(b.ctx, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil {
		t.Fatal(err)
	}
	// A chromedp action waits for its node with no deadline of its own:
	// one whose node never comes would hold the test until the package's
	// timeout (30 min, the whole CI run). A tab lives TabTimeout at most.
	ctx, stop := context.WithTimeout(ctx, TabTimeout)
	t.Cleanup(stop)
	tab := &Tab{Ctx: ctx, Name: name, byID: map[network.RequestID]*Request{}}
	sent := chromedp.Events(ctx, network.RequestWillBeSent)
	received := chromedp.Events(ctx, network.ResponseReceived)
	failed := chromedp.Events(ctx, network.LoadingFailed)
	go func() {
		for ev, err := range sent {
			if err != nil {
				return
			}
			r := &Request{Tab: name, URL: ev.Request.URL, Method: ev.Request.Method}
			for _, e := range ev.Request.PostDataEntries {
				r.Body += string(e.Bytes)
			}
			tab.mu.Lock()
			tab.reqs = append(tab.reqs, r)
			tab.byID[ev.RequestID] = r // a redirect reuses the id: the last hop wins
			tab.mu.Unlock()
		}
	}()
	go func() {
		for ev, err := range received {
			if err != nil {
				return
			}
			tab.mu.Lock()
			if r := tab.byID[ev.RequestID]; r != nil {
				r.Status = ev.Response.Status
				for k, v := range ev.Response.Headers {
					if strings.EqualFold(k, "X-Glimpse-Dropped") {
						r.Dropped, _ = v.(string)
					}
				}
			}
			tab.mu.Unlock()
		}
	}()
	go func() {
		for ev, err := range failed {
			if err != nil {
				return
			}
			tab.mu.Lock()
			if r := tab.byID[ev.RequestID]; r != nil {
				r.Failed = ev.ErrorText
			}
			tab.mu.Unlock()
		}
	}()
	return tab
}

// Requests returns copies of the tab's requests so far, in order.
func (tab *Tab) Requests() []Request {
	tab.mu.Lock()
	defer tab.mu.Unlock()
	out := make([]Request, 0, len(tab.reqs))
	for _, r := range tab.reqs {
		out = append(out, *r)
	}
	return out
}

// BeaconPath is the path of the collector's event endpoint: a request
// to it is a beacon.
const BeaconPath = "/api/event"

// Beacons counts the events the tab has sent to a collector.
func (tab *Tab) Beacons() int {
	n := 0
	for _, r := range tab.Requests() {
		if strings.HasSuffix(r.URL, BeaconPath) {
			n++
		}
	}
	return n
}

// WaitBeacons waits up to 10 s until the tab has sent at least n events.
// It counts what DevTools saw sent, answered or not.
func (tab *Tab) WaitBeacons(t testing.TB, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for tab.Beacons() < n {
		if time.Now().After(deadline) {
			t.Fatalf("tab %s sent %d events, want at least %d", tab.Name, tab.Beacons(), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Navigate loads u and waits for its load event; a referrer may be given.
func Navigate(t testing.TB, ctx context.Context, u, referrer string) {
	t.Helper()
	nav := chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		params := page.NavigateParams{URL: u}
		if referrer != "" {
			// The whole referrer, as a link from that page would send it
			// (an https referrer is otherwise cut on the way to http).
			params.Referrer, params.ReferrerPolicy = referrer, page.ReferrerPolicyUnsafeURL
		}
		res, err := cdp.Call(ctx, tg, page.Navigate, params)
		if err == nil && res.ErrorText != "" {
			err = fmt.Errorf("%s", res.ErrorText)
		}
		return err
	})
	if _, err := chromedp.Run(ctx, chromedp.WaitEvent(page.LoadEventFired, nil, nav)); err != nil {
		t.Fatalf("navigate %s: %v", u, err)
	}
}

// Eval runs JavaScript in the page.
func Eval(t testing.TB, ctx context.Context, js string) {
	t.Helper()
	if err := chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](js)); err != nil {
		t.Fatalf("%s: %v", js, err)
	}
}

// Value evaluates a JavaScript expression in the page.
func Value[T any](t testing.TB, ctx context.Context, js string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js))
	if err != nil {
		t.Fatalf("%s: %v", js, err)
	}
	return v
}

// WaitJS polls a boolean expression in the page for up to 20 s; on a
// timeout the page's address and text go into the failure.
func WaitJS(t testing.TB, ctx context.Context, what, js string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](js))
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			body, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`location.href + "\n" + document.body.innerText`))
			t.Fatalf("timed out waiting for %s (%s): %v\npage: %s", what, js, err, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Screenshot saves a full-page PNG as name in the artifact directory,
// and at the paths in also.
func Screenshot(t *testing.T, ctx context.Context, name string, also ...string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	// Kept with `go test -artifacts` (under -outputdir), or in
	// $GLIMPSE_TEST_ARTIFACTS; a temporary directory otherwise.
	dir := os.Getenv("GLIMPSE_TEST_ARTIFACTS")
	if dir == "" {
		dir = t.ArtifactDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, p := range append([]string{filepath.Join(dir, name)}, also...) {
		if err := os.WriteFile(p, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot: %s", p)
	}
}
