package main

// The dashboard's defences as an operator deploys them: the flags of
// glimpse serve and the commands that write the sites file.

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/glimpse-analytics/glimpse/internal/apptest"
	"github.com/glimpse-analytics/glimpse/internal/chtest"
	"github.com/glimpse-analytics/glimpse/internal/config"
)

// dashUser is a sites file with one site and the dashboard user
// dashEmail (a bcrypt hash of the lowest accepted cost, so that tests
// that fail many sign-ins stay quick).
func dashUser(t *testing.T) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(dashPassword), config.MinBcryptCost)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("sites:\n  - domain: %s\n    shared_links:\n      - name: board\n        token: %s\nusers:\n  - email: %s\n    password_hash: %q\n",
		dashSite, dashToken, dashEmail, h)
}

// dashClient signs in to one dashboard over HTTP as a browser would, with
// the CSRF token of one sign-in form.
type dashClient struct {
	t    *testing.T
	base string
	csrf string
}

var noRedirects = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

func newDashClient(t *testing.T, base string) *dashClient {
	t.Helper()
	resp, err := http.Get(base + "/dashboard/login")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	for _, c := range resp.Cookies() {
		if c.Name == "glimpse_csrf" {
			return &dashClient{t: t, base: base, csrf: c.Value}
		}
	}
	t.Fatalf("the sign-in form set no CSRF cookie: %v", resp.Header)
	return nil
}

// signIn posts the sign-in form with headers ("Key: value") and returns
// the answer.
func (d *dashClient) signIn(email, password string, header ...string) *http.Response {
	d.t.Helper()
	form := url.Values{"email": {email}, "password": {password}, "csrf": {d.csrf}}
	req, _ := http.NewRequest("POST", d.base+"/dashboard/login", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Cookie", "glimpse_csrf="+d.csrf)
	for _, h := range header {
		k, v, _ := strings.Cut(h, ": ")
		req.Header.Set(k, v)
	}
	resp, err := noRedirects.Do(req)
	if err != nil {
		d.t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

// TestDashboardThrottlePerClientBehindProxies: behind a trusted proxy the
// sign-in throttle counts per client network as the collector determines
// it (the client in X-Forwarded-For, truncated to its /24 or /48), not per
// proxy: one client's 20 failures lock out its own network only.
func TestDashboardThrottlePerClientBehindProxies(t *testing.T) {
	db := chtest.New(t)
	cfg := apptest.WriteConfig(t, dashUser(t))
	srv := apptest.Start(t, nil, "--config", cfg, "--clickhouse", db.DSN, "--trusted-proxies", "127.0.0.0/8")
	d := newDashClient(t, srv.URL())
	for i := range 20 { // the limit per client; each address fails once
		if r := d.signIn(fmt.Sprintf("guess%d@dash.test", i), "wrong password", "X-Forwarded-For: 198.51.100.7"); r.StatusCode != 401 {
			t.Fatalf("failure %d: %d", i+1, r.StatusCode)
		}
	}
	for _, tt := range []struct {
		xff    string
		status int
	}{
		{"198.51.100.7", 429},
		{"198.51.100.200", 429},             // the same /24
		{"6.6.6.6, 198.51.100.7", 429},      // a client cannot choose its address
		{"203.0.113.9", 303},                // another client signs in
		{"198.51.100.7, 203.0.113.10", 303}, // the right-most untrusted entry is the client
	} {
		if r := d.signIn(dashEmail, dashPassword, "X-Forwarded-For: "+tt.xff); r.StatusCode != tt.status {
			t.Errorf("right password from %s: %d, want %d", tt.xff, r.StatusCode, tt.status)
		}
	}
	for result, want := range map[string]float64{"failed": 20, "throttled": 3, "ok": 2} {
		name := `glimpse_dashboard_signins_total{result="` + result + `"}`
		if got := srv.Metric(t, name); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	if strings.Contains(srv.Output(), "198.51.100.7") || strings.Contains(srv.Output(), "203.0.113.9") {
		t.Errorf("a client address reached the log:\n%s", srv.Output())
	}
}

// TestUserAddCanonicalEmail: user add prints the address in the one form
// sign-in compares (config.CanonicalEmail), and refuses one no user can
// sign in with.
func TestUserAddCanonicalEmail(t *testing.T) {
	cmd := apptest.Command(t, nil, "user", "add", "--email", "Ana@Example.COM")
	cmd.Stdin = strings.NewReader("correct horse battery\n")
	out, err := cmd.Output()
	if err != nil || !strings.Contains(string(out), "- email: ana@example.com\n") {
		t.Errorf("user add --email Ana@Example.COM: %v\n%s", err, out)
	}
	for _, email := range []string{"ana@de\u017fk.example", "Ana <ana@example.com>"} {
		cmd := apptest.Command(t, nil, "user", "add", "--email", email)
		cmd.Stdin = strings.NewReader("correct horse battery\n")
		if b, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(b), "--email: ") {
			t.Errorf("user add --email %q: %v\n%s", email, err, b)
		}
	}
}

// TestDashboardHTTPS: with an https --public-url the dashboard's cookies
// are Secure and its answers carry Strict-Transport-Security; a dashboard
// on its own listener that browsers reach over plain HTTP says so with
// --dashboard-url, and gets neither (a Secure cookie would never come
// back over HTTP, so nobody could sign in).
func TestDashboardHTTPS(t *testing.T) {
	db := chtest.New(t)
	cfg := apptest.WriteConfig(t, dashUser(t))
	check := func(t *testing.T, base string, https bool) {
		t.Helper()
		resp, err := http.Get(base + "/dashboard/login")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got := resp.Header.Get("Strict-Transport-Security"); (got != "") != https || (https && !strings.HasPrefix(got, "max-age=")) {
			t.Errorf("sign-in form: Strict-Transport-Security %q", got)
		}
		set := strings.Join(resp.Header.Values("Set-Cookie"), "\n")
		if !strings.Contains(set, "glimpse_csrf=") || strings.Contains(strings.ToLower(set), "; secure") != https {
			t.Errorf("sign-in form sets %q, want Secure %v", set, https)
		}
		d := newDashClient(t, base)
		r := d.signIn(dashEmail, dashPassword)
		var session *http.Cookie
		for _, c := range r.Cookies() {
			if c.Name == "glimpse_session" {
				session = c
			}
		}
		if r.StatusCode != 303 || session == nil || session.Secure != https || !session.HttpOnly {
			t.Errorf("sign-in: %d, session cookie %v, want Secure %v", r.StatusCode, session, https)
		}
		if got := r.Header.Get("Strict-Transport-Security"); (got != "") != https {
			t.Errorf("sign-in: Strict-Transport-Security %q", got)
		}
	}
	t.Run("public URL https", func(t *testing.T) {
		srv := apptest.Start(t, nil, "--config", cfg, "--clickhouse", db.DSN, "--public-url", "https://stats.example")
		check(t, srv.URL(), true)
		srv.Stop(t)
	})
	t.Run("public URL http", func(t *testing.T) {
		srv := apptest.Start(t, nil, "--config", cfg, "--clickhouse", db.DSN)
		check(t, srv.URL(), false)
		srv.Stop(t)
	})
	t.Run("a bad dashboard URL", func(t *testing.T) {
		b, err := apptest.Command(t, nil, "serve", "--config", cfg, "--dashboard-url", "ftp://stats.example").CombinedOutput()
		if err == nil || !strings.Contains(string(b), "--dashboard-url \"ftp://stats.example\": want http") {
			t.Errorf("serve --dashboard-url ftp://...: %v\n%s", err, b)
		}
	})
	t.Run("internal dashboard over http", func(t *testing.T) {
		dash := apptest.FreeAddr(t)
		srv := apptest.Start(t, []string{"GLIMPSE_DASHBOARD_URL=http://" + dash}, "--config", cfg, "--clickhouse", db.DSN,
			"--public-url", "https://stats.example", "--dashboard-listen", dash)
		check(t, "http://"+dash, false)
		srv.Stop(t)
	})
}
