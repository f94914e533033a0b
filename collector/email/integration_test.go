package email_test

import (
	"bytes"
	"context"
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
	"github.com/glimpse-analytics/glimpse/collector/session"
	"github.com/glimpse-analytics/glimpse/collector/sink"
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

// TestEmailIntoClickHouse drives the real collector listener with the email
// endpoints and checks the rows ClickHouse ends up with.
func TestEmailIntoClickHouse(t *testing.T) {
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
	mint := func(rec string) email.Mint { return email.Mint{Site: "example.com", Campaign: "june", Recipient: rec} }
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	// do sends each non-empty xff as an X-Forwarded-For line of its own.
	do := func(method, url, ua string, xff ...string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(method, url, nil)
		req.Header.Set("User-Agent", ua)
		for _, line := range xff {
			if line != "" {
				req.Header.Add("X-Forwarded-For", line)
			}
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		resp.ContentLength = int64(len(b))
		return resp
	}
	pixelAlice, _ := m.PixelURL(mint(alice))
	pixelBob, _ := m.PixelURL(mint(bob))
	link, _ := m.Link(mint(""), "https://example.com/sale?utm_source=news&secret=1")
	linkCarol, _ := m.Link(mint(carol), "https://example.com/carol")
	pixelCarol, _ := m.PixelURL(mint(carol))
	optOutCarol, _ := m.OptOutURL(mint(carol))

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
		"email_open|june|" + alice + "|human|human|||",
		"email_open|june|" + bob + "|machine|apple_mpp|||",
		"email_open|june|" + dave + "|machine|datacenter|||",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("rows:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// The opt-out is in ClickHouse, and a fresh mirror (another instance, a
	// restart) loads it.
	fresh := email.NewOptOuts(db.Conn, log)
	if err := fresh.Load(ctx); err != nil || !fresh.Has("example.com", carol) || fresh.Has("example.com", alice) {
		t.Errorf("fresh opt-out mirror: %v", err)
	}
}
