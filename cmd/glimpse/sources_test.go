package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/glimpse-analytics/glimpse/internal/apptest"
	"github.com/glimpse-analytics/glimpse/internal/chtest"
	"github.com/glimpse-analytics/glimpse/internal/model"
)

// TestUnknownReferrerIsItsSource sends page views from referrers through
// the collector and reads visit:source back from the Stats API: as in
// Plausible, a referrer host that is not a known source is the source
// itself (lower case, www. folded), in the referral channel; a known host
// keeps its name; no referrer and self-referrals (the domain, an alias,
// with or without www.) are Direct / None. Every value has two visitors,
// so that k-anonymity (k=2) withholds none.
func TestUnknownReferrerIsItsSource(t *testing.T) {
	db := chtest.New(t)
	cfg := apptest.WriteConfig(t, `sites:
  - domain: example.com
    aliases: [example.net]
    privacy: {aggregates: exact, k_anonymity: 2}
api_keys:
  - {name: stats, sha256: "`+apptest.KeyHash("stats-key")+`", sites: [example.com]}
`)
	s := apptest.Start(t, nil, "--config", cfg, "--clickhouse", db.DSN,
		"--flush-interval", "20ms", "--session-flush-interval", "20ms")
	referrers := []string{
		"https://www.news.example.org/story/1?utm=x",
		"https://News.Example.ORG:8443/story/2",
		"https://blog.someone.net/post",
		"http://blog.someone.net/",
		"https://www.google.com/search?q=x",
		"https://google.de/",
		"",
		"",
		"https://www.example.com/pricing", // self
		"https://example.net/",            // an alias
	}
	for i, ref := range referrers {
		body, _ := json.Marshal(map[string]string{"n": "pageview", "u": "https://example.com/", "d": "example.com", "r": ref})
		code, h := s.Post(t, "/api/event", string(body), http.Header{
			"Content-Type": {"text/plain"},
			"User-Agent":   {fmt.Sprintf("Mozilla/5.0 (X11; Linux x86_64; rv:%d.0) Gecko/20100101 Firefox/%d.0", 120+i, 120+i)},
		})
		if code != http.StatusAccepted || h.Get("X-Glimpse-Dropped") != "" {
			t.Fatalf("referrer %q: %d %q", ref, code, h.Get("X-Glimpse-Dropped"))
		}
	}

	// period=day reads the raw tables; a range of whole days, the hourly
	// rollups (meta.source says which).
	today := time.Now().UTC().Format(time.DateOnly)
	breakdownOf := func(period, property, filters string) (map[string]float64, string) {
		t.Helper()
		q := url.Values{"site_id": {"example.com"}, "period": {period}, "property": {property}, "metrics": {"visitors"}}
		if period == "custom" {
			q.Set("date", today+","+today)
		}
		if filters != "" {
			q.Set("filters", filters)
		}
		req, _ := http.NewRequest("GET", s.URL()+"/api/v1/stats/breakdown?"+q.Encode(), nil)
		req.Header.Set("Authorization", "Bearer stats-key")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var r struct {
			Results []map[string]any
			Meta    struct{ Source string }
		}
		if resp.StatusCode != 200 || json.Unmarshal(b, &r) != nil {
			t.Fatalf("breakdown %s: %d %s", q.Encode(), resp.StatusCode, b)
		}
		key := property[len("visit:"):]
		out := map[string]float64{}
		for _, row := range r.Results {
			v, _ := row["visitors"].(float64)
			out[fmt.Sprint(row[key])] += v
		}
		return out, r.Meta.Source
	}
	breakdown := func(property, filters string) map[string]float64 {
		t.Helper()
		out, _ := breakdownOf("day", property, filters)
		return out
	}
	want := map[string]float64{"news.example.org": 2, "blog.someone.net": 2, "Google": 2, model.DirectNone: 4}
	var got map[string]float64
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		got = breakdown("visit:source", "")
		total := 0.0
		for _, v := range got {
			total += v
		}
		if total == float64(len(referrers)) || time.Now().After(deadline) {
			break
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("visit:source breakdown: %v, want %v", got, want)
	}
	// The channel agrees with the source: an unknown external host is a
	// referral, and filtering by its source finds its visitors.
	if got := breakdown("visit:channel", "visit:source==news.example.org"); fmt.Sprint(got) != fmt.Sprint(map[string]float64{model.ChannelReferral: 2}) {
		t.Errorf("channels of news.example.org: %v, want %s: 2", got, model.ChannelReferral)
	}
	if got := breakdown("visit:source", "visit:channel=="+model.ChannelReferral); fmt.Sprint(got) != fmt.Sprint(map[string]float64{"news.example.org": 2, "blog.someone.net": 2}) {
		t.Errorf("sources of the referral channel: %v", got)
	}
	// The hourly rollup says what the raw rows say.
	if rolled, src := breakdownOf("custom", "visit:source", ""); fmt.Sprint(rolled) != fmt.Sprint(want) || src != "rollup" {
		t.Errorf("visit:source breakdown from %s: %v, want %v from the rollup", src, rolled, want)
	}
}
