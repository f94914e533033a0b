package dashboards

import (
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/VictoriaMetrics/metrics"
	"github.com/valyala/fasthttp"

	"github.com/glimpse-analytics/glimpse/internal/apptest"
)

// serve runs the dashboard on a real listener on 127.0.0.1 and returns
// its base URL.
func (f *fixture) serve(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &fasthttp.Server{Handler: f.d.Handler}
	go hs.Serve(ln)
	t.Cleanup(func() { _ = hs.Shutdown() })
	return "http://" + ln.Addr().String()
}

// noRedirect is a client that shows redirects instead of following them.
var noRedirect = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// postSignIn posts the sign-in form with the CSRF token tok (as cookie and
// field) and returns the status.
func postSignIn(t *testing.T, base, tok, email, pass string, header ...string) int {
	form := url.Values{"email": {email}, "password": {pass}, "csrf": {tok}}
	req, _ := http.NewRequest("POST", base+PathLogin, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Cookie", csrfCookie+"="+tok)
	for _, h := range header {
		k, v, _ := strings.Cut(h, ": ")
		req.Header.Set(k, v)
	}
	resp, err := noRedirect.Do(req)
	if err != nil {
		t.Error(err)
		return 0
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

// TestSignInThrottleConcurrent: 25 wrong passwords for one address sent
// at once get exactly the 5 password checks the limit allows; the other
// 20 are refused before any check. An attempt is reserved before the
// (slow) check, not counted after it.
func TestSignInThrottleConcurrent(t *testing.T) {
	set := metrics.NewSet()
	f := newFixtureFor(t, testEmail, func(o *Options) { o.Metrics = set })
	base := f.serve(t)
	tok := f.loginForm(t)
	const n = 25
	start := make(chan struct{})
	statuses := make(chan int, n)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			<-start
			statuses <- postSignIn(t, base, tok, testEmail, "wrong password")
		})
	}
	close(start)
	wg.Wait()
	close(statuses)
	count := map[int]int{}
	for s := range statuses {
		count[s]++
	}
	// Each 401 is one password check; a 429 is refused before one.
	if count[401] != 5 || count[429] != n-5 {
		t.Errorf("25 concurrent wrong passwords: %v, want 5 checked (401) and 20 refused (429)", count)
	}
	if s := postSignIn(t, base, tok, testEmail, testPass); s != 429 {
		t.Errorf("the right password after 5 failures: %d, want 429", s)
	}
	for result, want := range map[string]float64{"failed": 5, "throttled": n - 5 + 1, "ok": 0} {
		name := `glimpse_dashboard_signins_total{result="` + result + `"}`
		if got := apptest.SetMetric(t, set, name); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
}

// TestSignInThrottleOneAddressForm: once an address is throttled, no
// other spelling of it signs in. The throttle and the user lookup read
// the same canonical form (config.CanonicalEmail): ASCII case is folded,
// and an address with non-ASCII characters, which no user can have, is
// refused, so "ſ" (U+017F) or the Kelvin sign (U+212A), which Unicode
// case folding equates with s and k, reach no user.
func TestSignInThrottleOneAddressForm(t *testing.T) {
	const admin = "admin@desk.test"
	set := metrics.NewSet()
	f := newFixtureFor(t, admin, func(o *Options) { o.Metrics = set })
	for i := range 5 {
		if r := f.signIn(t, admin, "wrong"); r.StatusCode() != 401 {
			t.Fatalf("failure %d: %d", i+1, r.StatusCode())
		}
	}
	tests := []struct {
		email  string
		status int
	}{
		{admin, 429},
		{"Admin@DESK.test", 429},
		{" admin@desk.test ", 429},
		{"admin@de\u017fk.test", 400},    // ſ
		{"admin@des\u212a.test", 400},    // the Kelvin sign
		{"admin@desk.te\u017ft", 400},    // ſ in the TLD
		{"admin@desk.test\u200b", 400},   // a zero-width space
		{"ADM\u0130N@desk.test", 400},    // İ, whose lower case Go makes i
		{"admin@xn--desk-5na.test", 401}, // another address, not throttled
	}
	for _, tt := range tests {
		r := f.signIn(t, tt.email, testPass)
		if r.StatusCode() != tt.status || cookie(r, cookieName) != "" {
			t.Errorf("%q with the right password: %d (session %q), want %d and no session", tt.email, r.StatusCode(), cookie(r, cookieName), tt.status)
		}
	}
	// The refused spellings are bad input, counted as such.
	if n := apptest.SetMetric(t, set, `glimpse_dashboard_signins_total{result="invalid"}`); n != 5 {
		t.Errorf("%v sign-ins counted invalid, want 5", n)
	}
}
