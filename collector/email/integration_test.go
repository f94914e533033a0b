package email_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/valyala/fasthttp"

	"github.com/glimpse-analytics/glimpse/collector"
	"github.com/glimpse-analytics/glimpse/collector/email"
	"github.com/glimpse-analytics/glimpse/collector/locate"
	"github.com/glimpse-analytics/glimpse/collector/redact"
	"github.com/glimpse-analytics/glimpse/collector/session"
	"github.com/glimpse-analytics/glimpse/collector/sink"
	"github.com/glimpse-analytics/glimpse/internal/apptest"
	"github.com/glimpse-analytics/glimpse/internal/chtest"
	"github.com/glimpse-analytics/glimpse/internal/config"
)

const (
	sitesYAML = `sites:
  - domain: example.com
email:
  signing_keys:
    - {name: k1, secret: "0123456789abcdef0123456789abcdef-test"}
`
	chrome = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/125.0.0.0 Safari/537.36"
	alice  = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	bob    = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
	carol  = "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"
	dave   = "dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd"
)

type row struct {
	typ, campaign, recipient, verdict, reason, target, ipPrefix, browser string
}

// emailServer is the collector and the email endpoints on a real
// loopback listener, writing to a fresh database on the real ClickHouse.
type emailServer struct {
	db      *chtest.DB
	optOuts *email.OptOuts
	minter  *email.Minter
	signer  *email.Signer
	base    string // the listener's URL
	metrics *metrics.Set
	stop    func() // shuts the listener down and flushes the writer
}

func startEmail(t *testing.T) *emailServer {
	t.Helper()
	db := chtest.Migrated(t)
	sites, err := config.Parse("test.yaml", []byte(sitesYAML))
	if err != nil {
		t.Fatal(err)
	}
	signer, err := email.NewSigner(sites.Email.Keys())
	if err != nil {
		t.Fatal(err)
	}
	// The loopback peer is a trusted proxy, so X-Forwarded-For plays the
	// client address (an Apple proxy, a home connection).
	proxies, err := locate.ParseTrustedProxies([]string{"127.0.0.0/8"})
	if err != nil {
		t.Fatal(err)
	}
	set := metrics.NewSet()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	writer := sink.New(sink.Options{Conn: db.Conn, BatchSize: 1000, Interval: 50 * time.Millisecond, Metrics: set, Log: log})
	optOuts := email.NewOptOuts(db.Conn, log)
	if err := optOuts.Load(t.Context()); err != nil {
		t.Fatal(err)
	}
	h, err := email.New(email.Options{Sites: sites, Signer: signer, Writer: writer, OptOuts: optOuts, Proxies: proxies, Metrics: set, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	sessions := session.NewCache(session.CacheConfig{})
	writer.WriteSessions(sessions)
	srv, err := collector.New(collector.Options{Sites: sites, Writer: writer, Sessions: sessions, Proxies: proxies, Metrics: set, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + ln.Addr().String()
	// The email endpoints beside the collector's, as serve's mux routes
	// them; the token prefixes do not overlap.
	routes, prefixes := srv.Routes(), h.Prefixes()
	maps.Copy(routes, h.Routes())
	hs := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		if r := routes[string(ctx.Path())]; r != nil {
			r(ctx)
			return
		}
		for p, r := range prefixes {
			if bytes.HasPrefix(ctx.Path(), []byte(p)) {
				r(ctx)
				return
			}
		}
		srv.NotFound(ctx)
	}}
	srv.HTTPErrors().Install(hs)
	go hs.Serve(ln)
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		_ = hs.Shutdown()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if lost, err := writer.Close(ctx); err != nil || lost != 0 {
			t.Fatalf("writer close: lost %d, %v", lost, err)
		}
	}
	t.Cleanup(stop)
	// Links minted an hour ago, so a click now is not "right after sending".
	m := &email.Minter{Signer: signer, Sites: sites, Base: base, Now: func() time.Time { return time.Now().Add(-time.Hour) }}
	return &emailServer{db: db, optOuts: optOuts, minter: m, signer: signer, base: base, metrics: set, stop: stop}
}

var noRedirects = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// send requests url with the User-Agent ua, each non-empty line of xff as
// an X-Forwarded-For line of its own, and a form body (if any); the
// answer's ContentLength is its body's, and its body is returned beside it.
func send(t *testing.T, method, url, ua string, xff []string, form string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(form))
	req.Header.Set("User-Agent", ua)
	for _, line := range xff {
		if line != "" {
			req.Header.Add("X-Forwarded-For", line)
		}
	}
	if form != "" {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := noRedirects.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	resp.ContentLength = int64(len(b))
	return resp, string(b)
}

func mint(rec string) email.Mint {
	return email.Mint{Site: "example.com", Campaign: "june", Recipient: rec}
}

// TestEmailIntoClickHouse drives the real collector listener with the email
// endpoints and checks the rows ClickHouse ends up with.
func TestEmailIntoClickHouse(t *testing.T) {
	es := startEmail(t)
	db, optOuts, m, stop := es.db, es.optOuts, es.minter, es.stop
	// do sends each non-empty xff as an X-Forwarded-For line of its own.
	do := func(method, url, ua string, xff ...string) *http.Response {
		t.Helper()
		r, _ := send(t, method, url, ua, xff, "")
		return r
	}
	pixelAlice, _ := m.PixelURL(mint(alice))
	pixelBob, _ := m.PixelURL(mint(bob))
	link, _ := m.Link(mint(""), "https://example.com/sale?utm_source=news&secret=1")
	linkCarol, _ := m.Link(mint(carol), "https://example.com/carol")
	pixelCarol, _ := m.PixelURL(mint(carol))
	optOutCarol, _ := m.OptOutURL(mint(carol))
	// A link signed before campaign names were redacted (the Minter now
	// redacts them), to a destination with personal data in its path and
	// campaign fields: the hit is stored redacted.
	oldToken, err := es.signer.Sign(email.Token{Kind: email.KindClick, Site: "example.com", Campaign: "promo for eve@example.com",
		URL: "https://example.com/invite/eve@example.com/4111111111111111?utm_term=%2B4915112345678", Sent: time.Now().Add(-time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	oldLink := es.base + email.ClickPrefix + oldToken

	// A human open.
	if r := do("GET", pixelAlice, chrome, "198.51.100.7"); r.StatusCode != 200 || r.ContentLength != 43 || r.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("human open: %d, %d bytes, %q", r.StatusCode, r.ContentLength, r.Header.Get("Cache-Control"))
	}
	// An Apple Mail Privacy Protection prefetch.
	if r := do("GET", pixelBob, "Mozilla/5.0", "17.58.0.20"); r.StatusCode != 200 || r.ContentLength != 43 {
		t.Fatalf("apple open: %d", r.StatusCode)
	}
	// A scanner in a datacenter that claims a home address in a line of its
	// own, before the one its proxy adds: every line counts.
	pixelDave, _ := m.PixelURL(mint(dave))
	if r := do("GET", pixelDave, chrome, "198.51.100.10", "3.0.0.1"); r.StatusCode != 200 {
		t.Fatalf("datacenter open: %d", r.StatusCode)
	}
	// A scanner's HEAD on a link: answered, recorded as a machine.
	if r := do("HEAD", link, chrome, "198.51.100.8"); r.StatusCode != 302 || r.Header.Get("Location") != "https://example.com/sale?utm_source=news&secret=1" {
		t.Fatalf("scanner head: %d %q", r.StatusCode, r.Header.Get("Location"))
	}
	// A valid click.
	if r := do("GET", link, chrome, "198.51.100.7"); r.StatusCode != 302 || r.Header.Get("Location") != "https://example.com/sale?utm_source=news&secret=1" {
		t.Fatalf("click: %d %q", r.StatusCode, r.Header.Get("Location"))
	}
	if r := do("GET", oldLink, chrome, "198.51.100.11"); r.StatusCode != 302 {
		t.Fatalf("old click: %d", r.StatusCode)
	}
	// A tampered click: one character of the signature changed.
	tampered := link[:len(link)-3] + map[bool]string{true: "B", false: "A"}[link[len(link)-3] == 'A'] + link[len(link)-2:]
	if r := do("GET", tampered, chrome, "198.51.100.7"); r.StatusCode != 400 || r.Header.Get("Location") != "" {
		t.Fatalf("tampered click: %d %q", r.StatusCode, r.Header.Get("Location"))
	}
	// An opted-out recipient: GET shows a form and records nothing, POST opts
	// out; later opens and clicks are answered but not recorded.
	if r := do("GET", optOutCarol, chrome, ""); r.StatusCode != 200 || optOuts.Has("example.com", carol) {
		t.Fatalf("opt-out page: %d", r.StatusCode)
	}
	if r := do("POST", optOutCarol, chrome, ""); r.StatusCode != 200 || !optOuts.Has("example.com", carol) {
		t.Fatalf("opt-out: %d", r.StatusCode)
	}
	if r := do("GET", pixelCarol, chrome, "198.51.100.9"); r.StatusCode != 200 || r.Header.Get("X-Glimpse-Dropped") != "opted_out" {
		t.Fatalf("opted-out open: %d %q", r.StatusCode, r.Header.Get("X-Glimpse-Dropped"))
	}
	if r := do("GET", linkCarol, chrome, "198.51.100.9"); r.StatusCode != 302 || r.Header.Get("Location") != "https://example.com/carol" {
		t.Fatalf("opted-out click: %d %q", r.StatusCode, r.Header.Get("Location"))
	}
	stop()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rows, err := db.Conn.Query(ctx, `SELECT toString(type), email_campaign, email_recipient, email_verdict, email_reason, target_url, ip_prefix, browser
		FROM events WHERE site_id = 'example.com'`)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for rows.Next() {
		var r row
		if err := rows.Scan(&r.typ, &r.campaign, &r.recipient, &r.verdict, &r.reason, &r.target, &r.ipPrefix, &r.browser); err != nil {
			t.Fatal(err)
		}
		got = append(got, strings.Join([]string{r.typ, r.campaign, r.recipient, r.verdict, r.reason, r.target, r.ipPrefix, r.browser}, "|"))
	}
	rows.Close()
	sort.Strings(got)
	want := []string{
		"email_click|june||human|human|example.com/sale||",
		"email_click|june||machine|head|example.com/sale||",
		"email_click|promo for [email]||human|human|example.com/invite/[email]/[card]||",
		"email_open|june|" + alice + "|human|human|||",
		"email_open|june|" + bob + "|machine|apple_mpp|||",
		"email_open|june|" + dave + "|machine|datacenter|||",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("rows:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	var term string
	if err := db.Conn.QueryRow(ctx, "SELECT utm_term FROM events WHERE utm_term != ''").Scan(&term); err != nil || term != "[phone]" {
		t.Errorf("utm_term %q, %v; want [phone]", term, err)
	}
	for rule, n := range map[redact.Rule]float64{redact.Email: 2, redact.Card: 1, redact.Phone: 1} {
		if got := apptest.SetMetric(t, es.metrics, rule.MetricName()); got != n {
			t.Errorf("%s = %v, want %v", rule.MetricName(), got, n)
		}
	}
	// The opt-out is in ClickHouse, and a fresh mirror (another instance, a
	// restart) loads it.
	fresh := email.NewOptOuts(db.Conn, nil)
	if err := fresh.Load(ctx); err != nil || !fresh.Has("example.com", carol) || fresh.Has("example.com", alice) {
		t.Errorf("fresh opt-out mirror: %v", err)
	}
}

// TestEmailOptOutAndBackIn drives /e/optout/{token} through the real
// handler: the opted-out page offers the way back, opt=in tracks the
// recipient again, a one-click List-Unsubscribe POST and a bare POST opt
// out, and opens and clicks are recorded or not accordingly. Another
// collector sees each state after its Load.
func TestEmailOptOutAndBackIn(t *testing.T) {
	es := startEmail(t)
	optOut, _ := es.minter.OptOutURL(mint(carol))
	pixel, _ := es.minter.PixelURL(mint(carol))
	link, _ := es.minter.Link(mint(carol), "https://example.com/carol")
	other := email.NewOptOuts(es.db.Conn, nil)
	// n numbers the opens and clicks, so each row says which step sent it.
	n := 0
	openAndClick := func(step string, tracked bool) {
		t.Helper()
		n++
		xff := fmt.Sprintf("198.51.100.%d", n)
		r, _ := send(t, "GET", pixel, chrome, []string{xff}, "")
		if r.StatusCode != 200 || r.ContentLength != 43 || (r.Header.Get("X-Glimpse-Dropped") == "opted_out") == tracked {
			t.Errorf("%s: open %d %d bytes, X-Glimpse-Dropped %q; tracked %t", step, r.StatusCode, r.ContentLength, r.Header.Get("X-Glimpse-Dropped"), tracked)
		}
		r, _ = send(t, "GET", link, chrome, []string{xff}, "")
		if r.StatusCode != 302 || r.Header.Get("Location") != "https://example.com/carol" {
			t.Errorf("%s: click %d %q; the redirect must work either way", step, r.StatusCode, r.Header.Get("Location"))
		}
	}
	state := func(step string, out bool) {
		t.Helper()
		if got := es.optOuts.Has("example.com", carol); got != out {
			t.Errorf("%s: opted out here %t, want %t", step, got, out)
		}
		if err := other.Load(t.Context()); err != nil {
			t.Fatal(err)
		}
		if got := other.Has("example.com", carol); got != out {
			t.Errorf("%s: opted out on another collector after Load %t, want %t", step, got, out)
		}
	}
	const (
		optOutButton = `<input type="hidden" name="opt" value="out"><button type="submit">Stop tracking my opens and clicks</button>`
		optInButton  = `<input type="hidden" name="opt" value="in"><button type="submit">Track my opens and clicks again</button>`
	)
	page := func(step, method, form string, want ...string) {
		t.Helper()
		r, body := send(t, method, optOut, chrome, nil, form)
		if r.StatusCode != 200 {
			t.Fatalf("%s: %s %q: %d %s", step, method, form, r.StatusCode, body)
		}
		for _, w := range want {
			if !strings.Contains(body, w) {
				t.Errorf("%s: page lacks %q:\n%s", step, w, body)
			}
		}
	}

	openAndClick("before", true)
	page("form", "GET", "", optOutButton)
	page("opt out", "POST", "opt=out", "will no longer be tracked", optInButton)
	state("opt out", true)
	openAndClick("opted out", false)
	page("opted-out page", "GET", "", "are not tracked for you", optInButton)
	page("opt back in", "POST", "opt=in", "tracked for you again", optOutButton)
	state("opt back in", false)
	openAndClick("back in", true)
	page("one-click", "POST", "List-Unsubscribe=One-Click", "will no longer be tracked", optInButton)
	state("one-click", true)
	openAndClick("one-click", false)
	page("back in again", "POST", "opt=in", "tracked for you again")
	page("bare POST", "POST", "", "will no longer be tracked")
	state("bare POST", true)
	openAndClick("bare POST", false)
	if r, body := send(t, "POST", optOut, chrome, nil, "opt=maybe"); r.StatusCode != 400 || !es.optOuts.Has("example.com", carol) {
		t.Errorf("opt=maybe: %d %s; want 400 and no change", r.StatusCode, body)
	}
	es.stop()

	// Opens and clicks were stored exactly while carol was tracked: steps
	// 1 (before) and 3 (back in).
	rows, err := es.db.Conn.Query(t.Context(), "SELECT toString(type), target_url FROM events WHERE email_recipient = ? ORDER BY type", carol)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for rows.Next() {
		var typ, target string
		if err := rows.Scan(&typ, &target); err != nil {
			t.Fatal(err)
		}
		got = append(got, typ+" "+target)
	}
	rows.Close()
	want := []string{"email_open ", "email_open ", "email_click example.com/carol", "email_click example.com/carol"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("stored %q, want %q (the opens and clicks of the two tracked steps)", got, want)
	}
	// Every change is a row; none was deleted.
	var changes uint64
	if err := es.db.Conn.QueryRow(t.Context(), "SELECT count() FROM email_optouts WHERE recipient = ?", carol).Scan(&changes); err != nil {
		t.Fatal(err)
	}
	if changes == 0 {
		t.Error("no change stored")
	}
}
