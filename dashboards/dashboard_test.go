package dashboards

import (
	"encoding/json"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
	"golang.org/x/crypto/bcrypt"

	"github.com/glimpse-analytics/glimpse/aggregator"
	"github.com/glimpse-analytics/glimpse/aggregator/api"
	"github.com/glimpse-analytics/glimpse/internal/config"
	"github.com/glimpse-analytics/glimpse/internal/model"
)

const (
	testEmail = "ana@example.com"
	testPass  = "correct horse battery"
	testToken = "shared-token-0123456789abcdef"
)

type fixture struct {
	d   *Dashboard
	now time.Time
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	return newFixtureFor(t, testEmail)
}

// newFixtureFor is newFixture with email as the user's address, and the
// options changed by set.
func newFixtureFor(t *testing.T, email string, set ...func(*Options)) *fixture {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(testPass), config.MinBcryptCost)
	if err != nil {
		t.Fatal(err)
	}
	sites, err := config.Parse("test.yaml", []byte(`sites:
  - domain: example.com
    shared_links:
      - name: board
        token: `+testToken+`
  - domain: other.example
users:
  - email: `+email+`
    password_hash: "`+string(h)+`"
    sites: [example.com]
`))
	if err != nil {
		t.Fatal(err)
	}
	stats, err := api.New(api.Options{Engine: aggregator.New(aggregator.Options{}), Sites: sites})
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{now: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)}
	o := Options{Sites: sites, Stats: stats, Now: func() time.Time { return f.now }}
	for _, s := range set {
		s(&o)
	}
	f.d, err = New(o)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// do serves one request; headers are "Key: value" strings.
func (f *fixture) do(method, uri, body string, headers ...string) *fasthttp.Response {
	var req fasthttp.Request
	req.Header.SetMethod(method)
	req.SetRequestURI(uri)
	req.Header.SetHost("dash.example")
	if body != "" {
		req.Header.SetContentType("application/x-www-form-urlencoded")
		req.SetBodyString(body)
	}
	for _, h := range headers {
		k, v, _ := strings.Cut(h, ": ")
		req.Header.Set(k, v)
	}
	var c fasthttp.RequestCtx
	c.Init(&req, &net.TCPAddr{IP: net.IPv4(192, 0, 2, 7), Port: 1234}, nil)
	f.d.Handler(&c)
	var resp fasthttp.Response
	c.Response.CopyTo(&resp)
	return &resp
}

func cookie(r *fasthttp.Response, name string) string {
	var ck fasthttp.Cookie
	ck.SetKey(name)
	if !r.Header.Cookie(&ck) {
		return ""
	}
	return string(ck.Value())
}

// loginForm fetches the sign-in form and returns its CSRF cookie value.
func (f *fixture) loginForm(t *testing.T) string {
	t.Helper()
	r := f.do("GET", PathLogin, "")
	tok := cookie(r, csrfCookie)
	if r.StatusCode() != 200 || tok == "" || !strings.Contains(string(r.Body()), `value="`+tok+`"`) {
		t.Fatalf("sign-in form: %d, csrf cookie %q", r.StatusCode(), tok)
	}
	return tok
}

func (f *fixture) signIn(t *testing.T, email, pass string, extra ...string) *fasthttp.Response {
	t.Helper()
	tok := f.loginForm(t)
	form := url.Values{"email": {email}, "password": {pass}, "csrf": {tok}, "next": {PathSite + "?site=example.com"}}
	return f.do("POST", PathLogin, form.Encode(), append([]string{"Cookie: " + csrfCookie + "=" + tok}, extra...)...)
}

func TestSecurityHeaders(t *testing.T) {
	f := newFixture(t)
	for _, p := range []string{PathLogin, PathHome, PathAssets + "app.js", PathAssets + "app.css", PathAPI + "aggregate?site_id=example.com", "/nope"} {
		r := f.do("GET", p, "")
		csp := string(r.Header.Peek("Content-Security-Policy"))
		if !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe-inline") || !strings.Contains(csp, "frame-ancestors 'none'") {
			t.Errorf("%s: CSP %q", p, csp)
		}
		if string(r.Header.Peek("X-Frame-Options")) != "DENY" || string(r.Header.Peek("Referrer-Policy")) != "no-referrer" {
			t.Errorf("%s: X-Frame-Options %q, Referrer-Policy %q", p, r.Header.Peek("X-Frame-Options"), r.Header.Peek("Referrer-Policy"))
		}
	}
	// No inline script anywhere in the pages.
	if b := string(f.do("GET", PathLogin, "").Body()); strings.Contains(b, "<script>") || strings.Contains(b, "style=") {
		t.Error("the sign-in page has inline script or style")
	}
}

// TestHTTPS: a dashboard reached over HTTPS (Options.HTTPS, which serve
// sets from an https --public-url) marks its cookies Secure and sends
// Strict-Transport-Security with every answer; one reached over plain
// HTTP does neither.
func TestHTTPS(t *testing.T) {
	for _, https := range []bool{true, false} {
		f := newFixtureFor(t, testEmail, func(o *Options) { o.HTTPS = https })
		for _, p := range []string{PathLogin, PathHome, PathAssets + "app.js", PathAPI + "aggregate?site_id=example.com", "/nope", "/"} {
			r := f.do("GET", p, "")
			if got := string(r.Header.Peek("Strict-Transport-Security")); (got == HSTS) != https || (!https && got != "") {
				t.Errorf("HTTPS %v: %s: Strict-Transport-Security %q", https, p, got)
			}
		}
		r := f.signIn(t, testEmail, testPass)
		for _, name := range []string{cookieName, csrfCookie} {
			set := string(r.Header.PeekCookie(name))
			if set == "" || strings.Contains(set, "secure") != https {
				t.Errorf("HTTPS %v: cookie %s: %q", https, name, set)
			}
		}
	}
}

func TestSignInFlow(t *testing.T) {
	f := newFixture(t)
	if r := f.do("GET", PathHome, ""); r.StatusCode() != 302 || !strings.HasPrefix(string(r.Header.Peek("Location")), "http://dash.example"+PathLogin) {
		t.Fatalf("signed out home: %d %s", r.StatusCode(), r.Header.Peek("Location"))
	}
	r := f.signIn(t, testEmail, testPass)
	id := cookie(r, cookieName)
	if r.StatusCode() != 303 || id == "" || !strings.HasSuffix(string(r.Header.Peek("Location")), PathSite+"?site=example.com") {
		t.Fatalf("sign-in: %d, location %s, session %q", r.StatusCode(), r.Header.Peek("Location"), id)
	}
	set := string(r.Header.PeekCookie(cookieName))
	for _, want := range []string{"HttpOnly", "SameSite=Strict", "path=/dashboard/"} {
		if !strings.Contains(set, want) {
			t.Errorf("session cookie %q lacks %s", set, want)
		}
	}
	if strings.Contains(set, "secure") {
		t.Errorf("session cookie %q is Secure on plain HTTP", set)
	}
	auth := "Cookie: " + cookieName + "=" + id
	home := f.do("GET", PathHome, "", auth)
	if home.StatusCode() != 200 || !strings.Contains(string(home.Body()), "example.com") || strings.Contains(string(home.Body()), "other.example") {
		t.Fatalf("home lists the wrong sites: %d\n%s", home.StatusCode(), home.Body())
	}
	// The user may not read other.example.
	if r := f.do("GET", PathSite+"?site=other.example", "", auth); r.StatusCode() != 404 {
		t.Errorf("other site page: %d", r.StatusCode())
	}
	if r := f.do("GET", PathAPI+"aggregate?site_id=other.example", "", auth); r.StatusCode() != 403 {
		t.Errorf("other site API: %d %s", r.StatusCode(), r.Body())
	}
	// Sign-out needs the session's CSRF token.
	if r := f.do("POST", PathLogout, "csrf=wrong", auth); r.StatusCode() != 403 {
		t.Errorf("sign-out without the token: %d", r.StatusCode())
	}
	tok := f.d.sessions.get(id, f.now).csrf
	if r := f.do("POST", PathLogout, "csrf="+tok, auth); r.StatusCode() != 303 {
		t.Errorf("sign-out: %d", r.StatusCode())
	}
	if r := f.do("GET", PathAPI+"aggregate?site_id=example.com", "", auth); r.StatusCode() != 401 {
		t.Errorf("API after sign-out: %d", r.StatusCode())
	}
	// Sessions expire.
	r = f.signIn(t, testEmail, testPass)
	f.now = f.now.Add(13 * time.Hour)
	if r := f.do("GET", PathHome, "", "Cookie: "+cookieName+"="+cookie(r, cookieName)); r.StatusCode() != 302 {
		t.Errorf("expired session still reads: %d", r.StatusCode())
	}
}

func TestSignInRefusals(t *testing.T) {
	f := newFixture(t)
	tests := []struct {
		name   string
		do     func() *fasthttp.Response
		status int
	}{
		{"wrong password", func() *fasthttp.Response { return f.signIn(t, testEmail, "nope") }, 401},
		{"unknown user", func() *fasthttp.Response { return f.signIn(t, "bob@example.com", testPass) }, 401},
		{"no CSRF cookie", func() *fasthttp.Response {
			tok := f.loginForm(t)
			return f.do("POST", PathLogin, url.Values{"email": {testEmail}, "password": {testPass}, "csrf": {tok}}.Encode())
		}, 403},
		{"CSRF mismatch", func() *fasthttp.Response {
			tok := f.loginForm(t)
			return f.do("POST", PathLogin, url.Values{"email": {testEmail}, "password": {testPass}, "csrf": {tok + "x"}}.Encode(), "Cookie: "+csrfCookie+"="+tok)
		}, 403},
		{"cross-site post", func() *fasthttp.Response { return f.signIn(t, testEmail, testPass, "Sec-Fetch-Site: cross-site") }, 403},
		{"foreign Origin", func() *fasthttp.Response { return f.signIn(t, testEmail, testPass, "Origin: https://evil.example") }, 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := tt.do()
			if r.StatusCode() != tt.status || cookie(r, cookieName) != "" {
				t.Errorf("status %d (session %q), want %d and no session", r.StatusCode(), cookie(r, cookieName), tt.status)
			}
		})
	}
	// Origin: null (sent with Referrer-Policy: no-referrer) is fine with the token.
	if r := f.signIn(t, testEmail, testPass, "Origin: null", "Sec-Fetch-Site: same-origin"); r.StatusCode() != 303 {
		t.Errorf("same-origin post with Origin: null: %d", r.StatusCode())
	}
}

func TestSignInThrottle(t *testing.T) {
	f := newFixture(t)
	for i := 0; i < 5; i++ {
		if r := f.signIn(t, testEmail, "wrong"); r.StatusCode() != 401 {
			t.Fatalf("failure %d: %d", i+1, r.StatusCode())
		}
	}
	// Now even the right password is refused, with Retry-After.
	r := f.signIn(t, testEmail, testPass)
	if r.StatusCode() != 429 || r.Header.Peek("Retry-After") == nil || cookie(r, cookieName) != "" {
		t.Fatalf("after 5 failures: %d, Retry-After %q", r.StatusCode(), r.Header.Peek("Retry-After"))
	}
	// Other addresses from the same IP still work until the IP's limit.
	for i := 0; i < 15; i++ { // 5 + 15 failures reach the IP's limit of 20
		f.signIn(t, "x"+string(rune('a'+i))+"@example.com", "wrong")
	}
	if r := f.signIn(t, "late@example.com", "wrong"); r.StatusCode() != 429 {
		t.Errorf("20 failures from one IP: %d, want 429", r.StatusCode())
	}
	// The window ends.
	f.now = f.now.Add(16 * time.Minute)
	if r := f.signIn(t, testEmail, testPass); r.StatusCode() != 303 {
		t.Errorf("after the window: %d", r.StatusCode())
	}
}

func TestSharedLinks(t *testing.T) {
	f := newFixture(t)
	if r := f.do("GET", PathSite+"?site=example.com&auth="+testToken, ""); r.StatusCode() != 200 || !strings.Contains(string(r.Body()), "Shared read-only link") {
		t.Errorf("shared page: %d", r.StatusCode())
	}
	for _, uri := range []string{
		PathSite + "?site=example.com&auth=" + testToken + "x",
		PathSite + "?site=other.example&auth=" + testToken, // a token reads its own site only
	} {
		if r := f.do("GET", uri, ""); r.StatusCode() != 403 {
			t.Errorf("%s: %d, want 403", uri, r.StatusCode())
		}
	}
	if r := f.do("GET", PathAPI+"aggregate?site_id=other.example&auth="+testToken, ""); r.StatusCode() != 403 {
		t.Errorf("token on another site's API: %d", r.StatusCode())
	}
	if r := f.do("POST", PathAPI+"aggregate?site_id=example.com&auth="+testToken, "x=1"); r.StatusCode() != 405 {
		t.Errorf("POST to the API: %d", r.StatusCode())
	}
}

// TestSitePageLabelsFromDimensions: the page names every dimension as the
// dimensions table labels it, in the JSON block app.js reads.
func TestSitePageLabelsFromDimensions(t *testing.T) {
	f := newFixture(t)
	r := f.do("GET", PathSite+"?site=example.com&auth="+testToken, "")
	body := string(r.Body())
	const open = `<script type="application/json" id="labels">`
	i := strings.Index(body, open)
	if r.StatusCode() != 200 || i < 0 {
		t.Fatalf("site page %d has no labels block", r.StatusCode())
	}
	text := body[i+len(open):]
	text = text[:strings.Index(text, "</script>")]
	var labels map[string]string
	if err := json.Unmarshal([]byte(text), &labels); err != nil {
		t.Fatalf("labels %q: %v", text, err)
	}
	for _, d := range model.Dimensions {
		if labels[d.Name] != d.Label {
			t.Errorf("%s labelled %q, want %q", d.Name, labels[d.Name], d.Label)
		}
	}
}

func TestSafeNext(t *testing.T) {
	tests := map[string]string{
		"/dashboard/site?site=a.com": "/dashboard/site?site=a.com",
		"https://evil.example/":      PathHome,
		"//evil.example/dashboard/":  PathHome,
		"/dashboard/..//evil":        PathHome,
		"/dashboard/\\evil":          PathHome,
		"":                           PathHome,
	}
	for in, want := range tests {
		if got := safeNext(in); got != want {
			t.Errorf("safeNext(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestPasswords(t *testing.T) {
	for _, hash := range []func(string) (string, error){HashPasswordArgon2id} {
		h, err := hash("s3cret password")
		if err != nil {
			t.Fatal(err)
		}
		if !VerifyPassword(h, "s3cret password") || VerifyPassword(h, "s3cret passwort") {
			t.Errorf("%s does not verify", h)
		}
		if _, err := config.Parse("x.yaml", []byte("sites:\n  - domain: a.com\nusers:\n  - email: a@a.com\n    password_hash: \""+h+"\"\n")); err != nil {
			t.Errorf("config refuses the hash: %v", err)
		}
	}
	if VerifyPassword("$argon2id$v=19$garbage", "x") || VerifyPassword("plain", "plain") {
		t.Error("malformed hashes verify")
	}
}

func TestCSVCell(t *testing.T) {
	tests := []struct {
		in   any
		want string
	}{
		{"/pricing", "/pricing"}, {"=HYPERLINK(\"x\")", "'=HYPERLINK(\"x\")"}, {"+1", "'+1"}, {"-1", "'-1"}, {"@SUM", "'@SUM"},
		{int64(42), "42"}, {12.5, "12.5"}, {nil, ""},
	}
	for _, tt := range tests {
		if got := cell(tt.in); got != tt.want {
			t.Errorf("cell(%v) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
