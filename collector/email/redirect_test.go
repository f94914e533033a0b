package email

import (
	"net"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/glimpse-analytics/glimpse/collector/sink"
	"github.com/glimpse-analytics/glimpse/internal/config"
)

// Open-redirect shapes: none may be signed, and none may come out of a
// click request as a Location.
var redirectShapes = []string{
	"//evil.example/",
	"///evil.example/",
	"/\\evil.example",
	"\\\\evil.example",
	"https:\\\\evil.example",
	"https:/\\evil.example",
	"https:evil.example",
	"https:/evil.example",
	"https:///evil.example",
	"javascript:alert(1)",
	"JaVaScRiPt:alert(1)",
	"java\tscript:alert(1)",
	" javascript:alert(1)",
	"data:text/html,<script>alert(1)</script>",
	"vbscript:msgbox(1)",
	"ftp://evil.example/",
	"https://good.example@evil.example/",
	"https://good.example:pass@evil.example/",
	"https://evil.example%2f@good.example/",
	"https://good.example\\@evil.example/",
	"https://evil.example\t.good.example/",
	"https://evil.example\r\nSet-Cookie: x=1",
	"https://%65vil.example/",
	"%2F%2Fevil.example",
	"https://",
	"http:",
	"https://[::1",
	"https://good.example\x00.evil.example/",
	"https://ｅvil.example/",
}

func TestDestinationShapes(t *testing.T) {
	if len(redirectShapes) < 15 {
		t.Fatal("want at least 15 shapes")
	}
	for _, s := range redirectShapes {
		if err := CheckDestination(s); err == nil {
			t.Errorf("CheckDestination(%q) accepted", s)
		}
		if got, err := NormalizeDestination(s); err == nil && !strings.HasPrefix(got, "https://good.example") {
			t.Errorf("NormalizeDestination(%q) = %q", s, got)
		}
	}
	for _, s := range []string{"https://example.com", "http://example.com/a?b=c#d", "https://example.com:8443/x", "https://[2001:db8::1]/x", "https://127.0.0.1/"} {
		if err := CheckDestination(s); err != nil {
			t.Errorf("CheckDestination(%q): %v", s, err)
		}
	}
	norm := map[string]string{
		" HTTPS://example.com/a ":        "https://example.com/a",
		"https://example.com/ä?q=ö":      "https://example.com/%C3%A4?q=%C3%B6",
		"https://example.com/?a=1&b=2#x": "https://example.com/?a=1&b=2#x",
	}
	for in, want := range norm {
		if got, err := NormalizeDestination(in); err != nil || got != want {
			t.Errorf("NormalizeDestination(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

const testSites = `sites:
  - domain: example.com
api_keys:
  - name: esp
    sha256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08" # "test"
    sites: [example.com]
    scopes: [email]
  - name: grafana
    sha256: "95385f758769ed9031c18195ab22146736b67b0479be286743c0cea4fe517070" # "grafana-key"
    sites: [example.com]
    scopes: [stats]
`

// unitHandlers are handlers with a discarding writer and no ClickHouse.
func unitHandlers(t *testing.T) (*Handlers, *Signer) {
	t.Helper()
	sites, err := config.Parse("t.yaml", []byte(testSites))
	if err != nil {
		t.Fatal(err)
	}
	s := mustSigner(t, key1)
	w := sink.New(sink.Options{Discard: true})
	t.Cleanup(func() { _, _ = w.Close(t.Context()) })
	h, err := New(Options{Sites: sites, Signer: s, Writer: w, OptOuts: NewOptOuts(nil, nil), PublicURL: "https://t.example",
		Now: func() time.Time { return t0.Add(time.Hour) }})
	if err != nil {
		t.Fatal(err)
	}
	return h, s
}

func serve(h fasthttp.RequestHandler, method, uri string, hdr ...string) *fasthttp.Response {
	var ctx fasthttp.RequestCtx
	ctx.Request.Header.SetMethod(method)
	ctx.Request.SetRequestURI(uri)
	for i := 0; i+1 < len(hdr); i += 2 {
		ctx.Request.Header.Set(hdr[i], hdr[i+1])
	}
	ctx.SetRemoteAddr(&net.TCPAddr{IP: net.IPv4(192, 0, 2, 7), Port: 1})
	h(&ctx)
	var r fasthttp.Response
	ctx.Response.CopyTo(&r)
	return &r
}

func TestClickNeverRedirectsFreely(t *testing.T) {
	h, s := unitHandlers(t)
	good, err := s.Sign(clickToken())
	if err != nil {
		t.Fatal(err)
	}
	open, _ := s.Sign(Token{Kind: KindOpen, Site: "example.com", Campaign: "c", Sent: t0})
	other, _ := mustSigner(t, key2).Sign(clickToken())
	paths := []string{
		"/e/c/", "/e/c/x", "/e/c/" + good[:len(good)-2], "/e/c/" + good + "x", "/e/c/" + open, "/e/c/" + other,
		"/e/c/" + good + "/../evil", "/e/c/" + good + "%2F%2Fevil.example",
	}
	for _, shape := range redirectShapes {
		paths = append(paths, "/e/c/"+shape, "/e/c/?url="+shape, "/e/c/x?next="+shape)
	}
	for _, p := range paths {
		r := serve(h.ServeClick, "GET", p)
		if loc := r.Header.Peek("Location"); len(loc) != 0 || r.StatusCode() != 400 {
			t.Errorf("GET %q: status %d, Location %q", p, r.StatusCode(), loc)
		}
	}
	// Parameters never change the destination of a good token.
	for _, q := range []string{"", "?url=https://evil.example", "?redirect=//evil.example&u=javascript:x"} {
		r := serve(h.ServeClick, "GET", "/e/c/"+good+q)
		if r.StatusCode() != 302 || string(r.Header.Peek("Location")) != clickToken().URL {
			t.Errorf("GET good%s: %d %q", q, r.StatusCode(), r.Header.Peek("Location"))
		}
	}
	r := serve(h.ServeClick, "HEAD", "/e/c/"+good)
	if r.StatusCode() != 302 {
		t.Errorf("HEAD: %d", r.StatusCode())
	}
	if r := serve(h.ServeClick, "POST", "/e/c/"+good); r.StatusCode() != 405 {
		t.Errorf("POST: %d", r.StatusCode())
	}
	// Expired: 400, no Location.
	exp := clickToken()
	exp.Expires = t0.Add(time.Minute)
	enc, _ := s.Sign(exp)
	if r := serve(h.ServeClick, "GET", "/e/c/"+enc); r.StatusCode() != 400 || len(r.Header.Peek("Location")) != 0 {
		t.Errorf("expired: %d %q", r.StatusCode(), r.Header.Peek("Location"))
	}
}

func TestOpenAlwaysGIF(t *testing.T) {
	h, s := unitHandlers(t)
	good, _ := s.Sign(Token{Kind: KindOpen, Site: "example.com", Campaign: "c", Sent: t0})
	click, _ := s.Sign(clickToken())
	unknown, _ := s.Sign(Token{Kind: KindOpen, Site: "other.example", Campaign: "c", Sent: t0})
	for _, p := range []string{"/e/o/" + good + ".gif", "/e/o/" + good, "/e/o/x.gif", "/e/o/" + click + ".gif", "/e/o/" + unknown + ".gif", "/e/o/.gif"} {
		r := serve(h.ServeOpen, "GET", p)
		if r.StatusCode() != 200 || len(r.Body()) != 43 || string(r.Header.ContentType()) != "image/gif" ||
			!strings.Contains(string(r.Header.Peek("Cache-Control")), "no-store") {
			t.Errorf("GET %s: %d %q %d bytes %q", p, r.StatusCode(), r.Header.ContentType(), len(r.Body()), r.Header.Peek("Cache-Control"))
		}
		dropped := string(r.Header.Peek("X-Glimpse-Dropped"))
		if (p == "/e/o/"+good+".gif") != (dropped == "") {
			t.Errorf("GET %s: dropped %q", p, dropped)
		}
	}
}

func TestSignAPI(t *testing.T) {
	h, s := unitHandlers(t)
	post := func(auth, body string) *fasthttp.Response {
		var ctx fasthttp.RequestCtx
		ctx.Request.Header.SetMethod("POST")
		ctx.Request.SetRequestURI(SignPath)
		if auth != "" {
			ctx.Request.Header.Set("Authorization", auth)
		}
		ctx.Request.SetBodyString(body)
		h.ServeSign(&ctx)
		var r fasthttp.Response
		ctx.Response.CopyTo(&r)
		return &r
	}
	ok := `{"kind":"link","site":"example.com","campaign":"c","url":"https://example.com/x","ttl":"7d"}`
	tests := []struct {
		name, auth, body string
		status           int
		want             string
	}{
		{"link", "Bearer test", ok, 200, `"url":"https://t.example/e/c/`},
		{"pixel", "Bearer test", `{"kind":"pixel","site":"example.com","campaign":"c"}`, 200, `"img":"\u003cimg src=`},
		{"optout", "Bearer test", `{"kind":"optout","site":"example.com","campaign":"c","recipient":"deadbeef"}`, 200, `/e/optout/`},
		{"rewrite", "Bearer test", `{"kind":"rewrite","site":"example.com","campaign":"c","html":"<a href='https://example.com/'>x</a>"}`, 200, `"links":1`},
		{"no key", "", ok, 401, "missing"},
		{"wrong key", "Bearer nope", ok, 401, "unknown"},
		{"stats-only key", "Bearer grafana-key", ok, 403, "may not sign email links"},
		{"other site", "Bearer test", strings.Replace(ok, "example.com\",\"c", "evil.com\",\"c", 1), 403, "may not sign"},
		{"bad url", "Bearer test", strings.Replace(ok, "https://example.com/x", "javascript:alert(1)", 1), 400, "destination"},
		{"bad kind", "Bearer test", `{"kind":"x","site":"example.com","campaign":"c"}`, 400, "kind"},
		{"unknown field", "Bearer test", `{"kind":"link","site":"example.com","dest":"x"}`, 400, "unknown field"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := post(tt.auth, tt.body)
			if r.StatusCode() != tt.status || !strings.Contains(string(r.Body()), tt.want) {
				t.Errorf("%d %s; want %d with %q", r.StatusCode(), r.Body(), tt.status, tt.want)
			}
		})
	}
	// The minted link works.
	r := post("Bearer test", ok)
	body := string(r.Body())
	i := strings.Index(body, "/e/c/")
	tok := body[i+len("/e/c/") : strings.Index(body[i:], `"`)+i]
	got, err := s.Decode([]byte(tok), t0.Add(time.Hour))
	if err != nil || got.URL != "https://example.com/x" {
		t.Errorf("minted token: %+v %v", got, err)
	}
	if r := serve(h.ServeSign, "GET", SignPath); r.StatusCode() != 405 {
		t.Errorf("GET: %d", r.StatusCode())
	}
}
