package beacon

import (
	"crypto/sha256"
	"encoding/base64"
	"regexp"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/glimpse-analytics/glimpse/collector"
	"github.com/glimpse-analytics/glimpse/internal/config"
)

const optOutSites = `sites:
  - domain: strict.example
    optout_frame_ancestors: [https://strict.example, https://*.strict.example]
  - domain: agg.example
    privacy: {mode: aggregate, honor_gpc: false}
  - domain: plain.example
`

func newOptOut(t *testing.T, publicURL string) *fasthttp.Client {
	t.Helper()
	sites, err := config.Parse("glimpse.yaml", []byte(optOutSites))
	if err != nil {
		t.Fatal(err)
	}
	p, err := NewOptOut(OptOutOptions{PublicURL: publicURL, Sites: sites})
	if err != nil {
		t.Fatal(err)
	}
	return serve(t, p.Handler)
}

const (
	cookieOut    = collector.OptOutCookie + "=1"
	publicURL    = "http://collector.test"
	stateOut     = "You are opted out of Glimpse analytics."
	stateCounted = "Your visits are counted, without cookies."
)

func TestOptOutPage(t *testing.T) {
	c := newOptOut(t, publicURL)
	tests := []struct {
		name      string
		uri       string
		cookie    string
		want      []string
		notWant   []string
		ancestors string
	}{
		// Without ?site= the page speaks for every site: the union of the
		// ancestors, what holds on which kind of site where they differ.
		{"counted", "/optout", "", []string{stateCounted, `value="out"`, "Opt out of Glimpse analytics", "replaced every day", `action="/optout"`,
			"If you opt out, sites in privacy mode strict or consented store nothing about your visits, and sites in mode aggregate still count",
			"Some of these sites also opt out a browser that sends Global Privacy Control."},
			[]string{stateOut, "A browser that sends Global Privacy Control is"}, "https://strict.example https://*.strict.example"},
		{"opted out", "/optout", cookieOut, []string{stateOut, `value="in"`, "Count my visits again",
			"Sites in privacy mode strict or consented store nothing about your visits, and sites in mode aggregate still count your page views and events in their totals, but store each with only the page, the time and the event’s name and nothing else"},
			[]string{stateCounted, "Nothing about your visits is stored", "your country"}, "https://strict.example https://*.strict.example"},
		{"strict site opted out", "/optout?site=strict.example", cookieOut, []string{stateOut, "Nothing about your visits is stored.", `action="/optout?site=strict.example"`,
			"A browser that sends Global Privacy Control is opted out in the same way."},
			[]string{"still count"}, "https://strict.example https://*.strict.example"},
		{"site via alias case", "/optout?site=WWW.Strict.Example", "", []string{stateCounted, `action="/optout?site=strict.example"`}, nil,
			"https://strict.example https://*.strict.example"},
		{"aggregate site without gpc", "/optout?site=agg.example", cookieOut, []string{"Your page views and events still count in the site’s totals, but each is stored with only the page, the time and the event’s name and nothing else"},
			[]string{"Global Privacy Control"}, "'none'"},
		{"unknown site", "/optout?site=evil.example", "", []string{`action="/optout"`}, []string{"evil"}, "https://strict.example https://*.strict.example"},
		{"other cookie value", "/optout?site=plain.example", collector.OptOutCookie + "=0", []string{stateCounted, "Global Privacy Control"}, nil, "'none'"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var hdr []string
			if tt.cookie != "" {
				hdr = []string{"Cookie", tt.cookie}
			}
			resp := do(t, c, "GET", tt.uri, hdr...)
			if resp.StatusCode() != 200 {
				t.Fatalf("status %d", resp.StatusCode())
			}
			body := string(resp.Body())
			for _, w := range tt.want {
				if w != "" && !strings.Contains(body, w) {
					t.Errorf("page lacks %q", w)
				}
			}
			for _, w := range tt.notWant {
				if strings.Contains(body, w) {
					t.Errorf("page has %q", w)
				}
			}
			h := &resp.Header
			if got := string(h.ContentType()); got != "text/html; charset=utf-8" {
				t.Errorf("Content-Type %q", got)
			}
			if got := string(h.Peek("Cache-Control")); got != "no-store" {
				t.Errorf("Cache-Control %q", got)
			}
			csp := string(h.Peek("Content-Security-Policy"))
			if !strings.HasSuffix(csp, "; frame-ancestors "+tt.ancestors) {
				t.Errorf("CSP %q does not end with frame-ancestors %s", csp, tt.ancestors)
			}
			xfo := string(h.Peek("X-Frame-Options"))
			if (tt.ancestors == "'none'") != (xfo == "DENY") {
				t.Errorf("X-Frame-Options %q with frame-ancestors %s", xfo, tt.ancestors)
			}
			checkPageSafety(t, body, csp)
		})
	}
}

// checkPageSafety holds the page to its policy: accessible basics, no
// script, nothing loaded from anywhere, the inline style allowed by hash.
func checkPageSafety(t *testing.T, body, csp string) {
	t.Helper()
	for _, w := range []string{`<html lang="en">`, "<title>", `<meta name="viewport"`, "<main>", "<h1>", `<form method="post"`, `<button type="submit"`, `role="status"`} {
		if !strings.Contains(body, w) {
			t.Errorf("page lacks %q", w)
		}
	}
	if n := strings.Count(body, "<button"); n != 1 {
		t.Errorf("%d buttons, want one", n)
	}
	for _, banned := range []string{"<script", "<img", "<iframe", "src=", "http:", "https:", "@import", "url("} {
		if strings.Contains(body, banned) {
			t.Errorf("page contains %q", banned)
		}
	}
	if !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "form-action 'self'") || strings.Contains(csp, "script-src") {
		t.Errorf("CSP %q", csp)
	}
	m := regexp.MustCompile(`(?s)<style>(.*?)</style>`).FindStringSubmatch(body)
	if m == nil {
		t.Fatal("no <style>")
	}
	sum := sha256.Sum256([]byte(m[1]))
	if want := "style-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"; !strings.Contains(csp, want) {
		t.Errorf("CSP %q lacks the hash of the inline style, %s", csp, want)
	}
}

func TestOptOutJSON(t *testing.T) {
	c := newOptOut(t, publicURL)
	tests := []struct {
		method, cookie, opt string
		want                string
	}{
		{"GET", "", "", `{"opted_out":false}`},
		{"GET", cookieOut, "", `{"opted_out":true}`},
		{"POST", "", "out", `{"opted_out":true}`},
		{"POST", cookieOut, "in", `{"opted_out":false}`},
		{"POST", "", "", `{"opted_out":true}`},         // toggles
		{"POST", cookieOut, "", `{"opted_out":false}`}, // toggles
		{"POST", cookieOut, "out", `{"opted_out":true}`},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.cookie+" "+tt.opt, func(t *testing.T) {
			hdr := []string{"Accept", "application/json", "Origin", publicURL}
			if tt.cookie != "" {
				hdr = append(hdr, "Cookie", tt.cookie)
			}
			uri := "/optout"
			if tt.opt != "" {
				uri += "?opt=" + tt.opt
			}
			resp := do(t, c, tt.method, uri, hdr...)
			if resp.StatusCode() != 200 || string(resp.Body()) != tt.want || string(resp.Header.ContentType()) != "application/json" {
				t.Fatalf("%d %q %q, want 200 %s", resp.StatusCode(), resp.Header.ContentType(), resp.Body(), tt.want)
			}
		})
	}
}

func TestOptOutPost(t *testing.T) {
	tests := []struct {
		name      string
		publicURL string
		headers   []string
		form      string
		status    int
		cookie    string // Set-Cookie, exactly
		location  string
	}{
		{"opt out", publicURL, []string{"Origin", publicURL}, "opt=out", 303,
			"glimpse_optout=1; Path=/; Max-Age=34214400; HttpOnly; SameSite=Lax", "/optout"},
		{"opt in deletes", publicURL, []string{"Origin", publicURL, "Cookie", cookieOut}, "opt=in", 303,
			"glimpse_optout=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax", "/optout"},
		{"toggle", publicURL, []string{"Origin", publicURL, "Cookie", cookieOut}, "", 303,
			"glimpse_optout=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax", "/optout"},
		{"https public URL is Secure", "https://Stats.Example:443/glimpse/", []string{"Origin", "https://stats.example"}, "opt=out", 303,
			"glimpse_optout=1; Path=/; Max-Age=34214400; HttpOnly; SameSite=Lax; Secure", "/glimpse/optout"},
		{"referer when no origin", publicURL, []string{"Referer", publicURL + "/optout?site=x"}, "opt=out", 303,
			"glimpse_optout=1; Path=/; Max-Age=34214400; HttpOnly; SameSite=Lax", "/optout"},
		{"same-origin fetch metadata", publicURL, []string{"Origin", publicURL, "Sec-Fetch-Site", "same-origin"}, "opt=out", 303,
			"glimpse_optout=1; Path=/; Max-Age=34214400; HttpOnly; SameSite=Lax", "/optout"},
		{"site kept", publicURL, []string{"Origin", publicURL}, "opt=out&x=1", 303,
			"glimpse_optout=1; Path=/; Max-Age=34214400; HttpOnly; SameSite=Lax", "/optout?site=strict.example"},
		{"other origin", publicURL, []string{"Origin", "https://evil.example"}, "opt=out", 403, "", ""},
		{"null origin", publicURL, []string{"Origin", "null"}, "opt=out", 403, "", ""},
		{"other port", publicURL, []string{"Origin", publicURL + ":8080"}, "opt=out", 403, "", ""},
		{"other scheme", publicURL, []string{"Origin", "https://collector.test"}, "opt=out", 403, "", ""},
		{"cross-site fetch metadata", publicURL, []string{"Origin", publicURL, "Sec-Fetch-Site", "cross-site"}, "opt=out", 403, "", ""},
		{"same-site is not same-origin", publicURL, []string{"Origin", publicURL, "Sec-Fetch-Site", "same-site"}, "opt=out", 403, "", ""},
		{"other referer", publicURL, []string{"Referer", "https://evil.example/optout"}, "opt=out", 403, "", ""},
		{"no origin", publicURL, nil, "opt=out", 403, "", ""},
		{"bad opt", publicURL, []string{"Origin", publicURL}, "opt=maybe", 400, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newOptOut(t, tt.publicURL)
			req := fasthttp.AcquireRequest()
			defer fasthttp.ReleaseRequest(req)
			req.Header.SetMethod("POST")
			uri := "http://collector.test/optout"
			if tt.name == "site kept" {
				uri += "?site=strict.example"
			}
			req.SetRequestURI(uri)
			req.Header.SetContentType("application/x-www-form-urlencoded")
			req.SetBodyString(tt.form)
			for i := 0; i+1 < len(tt.headers); i += 2 {
				req.Header.Set(tt.headers[i], tt.headers[i+1])
			}
			var resp fasthttp.Response
			if err := c.Do(req, &resp); err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode() != tt.status {
				t.Fatalf("status %d %q, want %d", resp.StatusCode(), resp.Body(), tt.status)
			}
			var cookies []string
			resp.Header.VisitAllCookie(func(_, v []byte) { cookies = append(cookies, string(v)) })
			if tt.cookie == "" {
				if len(cookies) != 0 {
					t.Fatalf("Set-Cookie %q on a refused request", cookies)
				}
				if tt.status == 403 && !strings.Contains(string(resp.Body()), "cross-site request refused") {
					t.Errorf("403 body %q", resp.Body())
				}
				return
			}
			if len(cookies) != 1 || cookies[0] != tt.cookie {
				t.Errorf("Set-Cookie %q, want %q", cookies, tt.cookie)
			}
			if got := string(resp.Header.Peek("Location")); got != tt.location {
				t.Errorf("Location %q, want %q", got, tt.location)
			}
		})
	}
}

func TestOptOutMethods(t *testing.T) {
	c := newOptOut(t, publicURL)
	resp := do(t, c, "PUT", "/optout")
	if resp.StatusCode() != 405 || string(resp.Header.Peek("Allow")) != "GET, HEAD, POST" {
		t.Fatalf("PUT: %d, Allow %q", resp.StatusCode(), resp.Header.Peek("Allow"))
	}
	resp = do(t, c, "HEAD", "/optout")
	if resp.StatusCode() != 200 || len(resp.Body()) != 0 || resp.Header.ContentLength() <= 0 {
		t.Fatalf("HEAD: %d, %d body bytes, Content-Length %d", resp.StatusCode(), len(resp.Body()), resp.Header.ContentLength())
	}
}

func TestNewOptOutBadURL(t *testing.T) {
	sites, err := config.Parse("glimpse.yaml", []byte(optOutSites))
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{"", "collector.test", "ftp://collector.test", "http://"} {
		if _, err := NewOptOut(OptOutOptions{PublicURL: u, Sites: sites}); err == nil || !strings.Contains(err.Error(), "--public-url") {
			t.Errorf("%q: err = %v", u, err)
		}
	}
}
