package dashboards

import (
	"io"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/valyala/fasthttp"

	"github.com/glimpse-analytics/glimpse/aggregator"
	"github.com/glimpse-analytics/glimpse/aggregator/api"
	"github.com/glimpse-analytics/glimpse/internal/apptest"
	"github.com/glimpse-analytics/glimpse/internal/chtest"
	"github.com/glimpse-analytics/glimpse/internal/ratelimit"
)

// onClickHouse makes a fixture's Stats API query a fresh, empty
// ClickHouse database.
func onClickHouse(t *testing.T) func(*Options) {
	db := chtest.Migrated(t)
	return func(o *Options) {
		stats, err := api.New(api.Options{Engine: aggregator.New(aggregator.Options{Conn: db.Conn}), Sites: o.Sites})
		if err != nil {
			t.Fatal(err)
		}
		o.Stats = stats
	}
}

// TestRateLimit: the JSON and CSV endpoints answer each reader (a shared
// link, a signed-in user) and each client network a bounded number of
// requests, then 429 with Retry-After, counted in metrics.
func TestRateLimit(t *testing.T) {
	set := metrics.NewSet()
	f := newFixtureFor(t, testEmail, onClickHouse(t), func(o *Options) {
		o.ReaderLimit = ratelimit.Limit{PerHour: 60, Burst: 3}
		o.ClientLimit = ratelimit.Limit{PerHour: 60, Burst: 6}
		// The test names the client's network; serve passes the
		// collector's (cmd/glimpse).
		o.ClientNet = func(c *fasthttp.RequestCtx) netip.Prefix {
			if p, err := netip.ParsePrefix(string(c.Request.Header.Peek("X-Test-Net"))); err == nil {
				return p
			}
			return peerNet(c)
		}
		o.Metrics = set
	})
	base := f.serve(t)
	session := "glimpse_session=" + cookie(f.signIn(t, testEmail, testPass), cookieName)
	get := func(path, net, cookie string) (int, string, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", base+path, nil)
		req.Header.Set("X-Test-Net", net)
		if cookie != "" {
			req.Header.Set("Cookie", cookie)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header.Get("Retry-After"), string(b)
	}
	const (
		agg       = PathAPI + "aggregate?site_id=example.com&period=30d"
		breakdown = PathAPI + "breakdown?site_id=example.com&period=30d&property=event:page"
		csv       = PathCSV + "?endpoint=breakdown&site_id=example.com&period=30d&property=event:page"
		link      = "&auth=" + testToken
	)
	tests := []struct {
		name, path, net, cookie string
		status                  int
	}{
		{"link 1", agg + link, "10.0.1.0/24", "", 200},
		{"link 2", breakdown + link, "10.0.1.0/24", "", 200},
		{"link 3, CSV", csv + link, "10.0.1.0/24", "", 200},
		{"link 4", agg + link, "10.0.1.0/24", "", 429},
		{"the link from another network", agg + link, "10.0.2.0/24", "", 429},
		{"the link's CSV from another network", csv + link, "10.0.2.0/24", "", 429},
		{"user 1", agg, "10.0.3.0/24", session, 200},
		{"user 2, CSV", csv, "10.0.3.0/24", session, 200},
		{"user 3", breakdown, "10.0.3.0/24", session, 200},
		{"user 4", agg, "10.0.3.0/24", session, 429},
		{"no reader 1", agg, "10.0.4.0/24", "", 401},
		{"no reader 2", agg + "&auth=not-a-token", "10.0.4.0/24", "", 403},
		{"no reader 3", csv, "10.0.4.0/24", "", 401},
		{"no reader 4", agg, "10.0.4.0/24", "", 401},
		{"no reader 5", agg, "10.0.4.0/24", "", 401},
		{"no reader 6", agg, "10.0.4.0/24", "", 401},
		{"no reader 7: the network's limit", agg, "10.0.4.0/24", "", 429},
	}
	for _, tt := range tests {
		status, retry, body := get(tt.path, tt.net, tt.cookie)
		if status != tt.status {
			t.Errorf("%s: %d %s, want %d", tt.name, status, body, tt.status)
		}
		if status == 429 && (retry != "60" || !strings.Contains(body, `"error":"too many requests`)) {
			t.Errorf("%s: Retry-After %q, body %s; want 60 (s) and a JSON error", tt.name, retry, body)
		}
	}
	for by, want := range map[string]float64{"reader": 4, "client": 1} {
		name := `glimpse_dashboard_requests_limited_total{by="` + by + `"}`
		if got := apptest.SetMetric(t, set, name); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	// A minute later each has one request back.
	f.now = f.now.Add(time.Minute)
	for _, tt := range tests[:1] {
		if status, _, body := get(tt.path, "10.0.2.0/24", ""); status != 200 {
			t.Errorf("a minute later, %s: %d %s", tt.name, status, body)
		}
	}
}
