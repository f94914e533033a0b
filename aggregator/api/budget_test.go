package api_test

import (
	"encoding/json"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/glimpse-analytics/glimpse/aggregator"
	"github.com/glimpse-analytics/glimpse/aggregator/api"
	"github.com/glimpse-analytics/glimpse/internal/apptest"
	"github.com/glimpse-analytics/glimpse/internal/chtest"
	"github.com/glimpse-analytics/glimpse/internal/config"
)

// TestPrivacyBudgetOverHTTP: a noisy site's answers say what is left of
// the key's budget in a header and in meta; a key that has spent it gets
// a 429 with Retry-After until the next UTC day and the header at 0.
func TestPrivacyBudgetOverHTTP(t *testing.T) {
	db := chtest.Migrated(t)
	f, err := config.Parse("noisy.yaml", []byte(`sites:
  - domain: noisy.example
    privacy: {epsilon: 1, budget: 3, noise_key: "0123456789abcdef0123456789abcdef"}
api_keys:
  - name: reader
    sha256: "`+apptest.KeyHash("reader-key")+`"
    sites: [noisy.example]
`))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2025, 6, 7, 18, 0, 0, 0, time.UTC)
	a, err := api.New(api.Options{
		Engine: aggregator.New(aggregator.Options{Conn: db.Conn, Budget: aggregator.NewBudget(func() time.Time { return now }, nil, nil)}),
		Sites:  f, Now: func() time.Time { return now },
	})
	if err != nil {
		t.Fatal(err)
	}
	get := func(metrics string) *fasthttp.RequestCtx {
		var rc fasthttp.RequestCtx
		v := url.Values{"site_id": {"noisy.example"}, "period": {"7d"}, "metrics": {metrics}}
		rc.Request.SetRequestURI(api.PathAggregate + "?" + v.Encode())
		rc.Request.Header.Set("Authorization", "Bearer reader-key")
		a.Routes()[api.PathAggregate](&rc)
		return &rc
	}
	rc := get("visitors,pageviews")
	var res struct {
		Meta aggregator.Meta `json:"meta"`
	}
	if err := json.Unmarshal(rc.Response.Body(), &res); err != nil {
		t.Fatal(err)
	}
	if rc.Response.StatusCode() != 200 || string(rc.Response.Header.Peek(api.HeaderBudget)) != "1" ||
		res.Meta.BudgetRemaining == nil || *res.Meta.BudgetRemaining != 1 || res.Meta.Aggregates != "noisy" {
		t.Fatalf("first answer %d, header %q, meta %+v; want 200 with 1 left", rc.Response.StatusCode(),
			rc.Response.Header.Peek(api.HeaderBudget), res.Meta)
	}
	rc = get("visitors,visits,bounce_rate")
	if rc.Response.StatusCode() != 429 || string(rc.Response.Header.Peek(api.HeaderBudget)) != "0" {
		t.Fatalf("over the budget: %d, header %q: %s", rc.Response.StatusCode(), rc.Response.Header.Peek(api.HeaderBudget), rc.Response.Body())
	}
	retry, _ := strconv.Atoi(string(rc.Response.Header.Peek("Retry-After")))
	if want := 6 * 3600; retry != want {
		t.Errorf("Retry-After %d s, want %d (the next UTC day)", retry, want)
	}
	var e struct{ Error string }
	if json.Unmarshal(rc.Response.Body(), &e); e.Error == "" {
		t.Errorf("429 body %s has no error", rc.Response.Body())
	}
}
