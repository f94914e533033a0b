package api_test

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/glimpse-analytics/glimpse/aggregator"
	"github.com/glimpse-analytics/glimpse/aggregator/api"
	"github.com/glimpse-analytics/glimpse/internal/apptest"
	"github.com/glimpse-analytics/glimpse/internal/chtest"
	"github.com/glimpse-analytics/glimpse/internal/config"
)

// TestFunnelAPI: GET /api/v1/stats/funnel over a real listener answers a
// configured funnel and an ad hoc one, and every bad request with a 400
// that says what is wrong, never a 500.
func TestFunnelAPI(t *testing.T) {
	db := chtest.Migrated(t)
	f, err := config.Parse("funnel.yaml", []byte(`sites:
  - domain: example.com
    privacy: {aggregates: exact}
    funnels:
      - name: Signup
        steps: [{page: /}, {page: /pricing, name: Pricing}, {goal: Signup}]
api_keys:
  - name: test
    sha256: "`+apptest.KeyHash("test-key")+`"
    sites: [example.com]
`))
	if err != nil {
		t.Fatal(err)
	}
	a, err := api.New(api.Options{Engine: aggregator.New(aggregator.Options{Conn: db.Conn}), Sites: f,
		Now: func() time.Time { return time.Date(2025, 3, 31, 12, 0, 0, 0, time.UTC) }})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	routes := a.Routes()
	srv := &fasthttp.Server{Handler: func(c *fasthttp.RequestCtx) {
		if h := routes[string(c.Path())]; h != nil {
			h(c)
			return
		}
		c.NotFound()
	}}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Shutdown() })
	get := func(params string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", "http://"+ln.Addr().String()+api.PathFunnel+"?site_id=example.com&period=7d&"+params, nil)
		req.Header.Set("Authorization", "Bearer test-key")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	status, body := get("funnel=Signup")
	if status != 200 {
		t.Fatalf("funnel=Signup: %d %s", status, body)
	}
	var got struct {
		Results struct {
			Name, Window string
			Steps        []map[string]any
		}
		Meta map[string]any
	}
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatal(err)
	}
	if got.Results.Name != "Signup" || got.Results.Window != "1h" || len(got.Results.Steps) != 3 ||
		got.Results.Steps[1]["name"] != "Pricing" || got.Results.Steps[0]["name"] != "Visit /" ||
		got.Results.Steps[2]["visitors"] != 0.0 || got.Results.Steps[2]["dropoff"] != 0.0 || got.Meta["aggregates"] != "exact" {
		t.Errorf("funnel=Signup: %s", body)
	}
	for _, k := range []string{"step", "name", "visitors", "conversion_rate", "step_conversion_rate", "dropoff"} {
		if _, ok := got.Results.Steps[1][k]; !ok {
			t.Errorf("a step has no %q: %s", k, body)
		}
	}
	if status, body := get("steps=" + url.QueryEscape("page:/blog/**|goal:Signup") + "&window=30m"); status != 200 || !strings.Contains(body, `"window":"30m"`) {
		t.Errorf("ad hoc: %d %s", status, body)
	}
	for _, c := range []struct{ params, want string }{
		{"funnel=Nope", `unknown funnel \"Nope\": this site's funnels are \"Signup\"`},
		{"", "missing funnel"},
		{"funnel=Signup&steps=page:/", "not both"},
		{"steps=page:/", "1 steps; a funnel has 2 to 8"},
		{"steps=" + url.QueryEscape("page:/|/pricing"), `invalid step \"/pricing\"`},
		{"steps=" + url.QueryEscape("page:/|page:pricing"), `steps[1].page: \"pricing\" is not a path`},
		{"steps=" + url.QueryEscape("page:/|goal:Signup") + "&window=2d", `window: \"2d\" is not a duration`},
		{"steps=" + url.QueryEscape("page:/|goal:Signup") + "&window=25h", "salted per UTC day"},
		{"steps=" + url.QueryEscape("page:/|goal:Signup") + "&window=-1s", "at least 1s"},
		{"funnel=Signup&filters=" + url.QueryEscape("event:page==/pricing"), "a funnel takes visit filters only"},
		{"funnel=Signup&filters=" + url.QueryEscape("event:goal==Signup"), "a funnel takes visit filters only"},
		{"funnel=Signup&filters=" + url.QueryEscape("visit:nope==x"), "unknown property"},
		{"funnel=Signup&compare=previous_period", "compare is not supported"},
		{"funnel=Signup&period=realtime", "period=realtime is not supported"},
		{"funnel=Signup&period=bogus", "period"},
	} {
		status, body := get(c.params)
		if status != 400 || !strings.Contains(body, c.want) {
			t.Errorf("%s: %d %s, want 400 with %q", c.params, status, body, c.want)
		}
	}
	if status, body := get("funnel=Signup&filters=" + url.QueryEscape("visit:country==IS")); status != 200 {
		t.Errorf("visit filter: %d %s", status, body)
	}
}
