package main

import (
	"bufio"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/glimpse-analytics/glimpse/internal/apptest"
	"github.com/glimpse-analytics/glimpse/internal/chtest"
)

func readUACorpus(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	sc := bufio.NewScanner(zr)
	for sc.Scan() {
		if l := sc.Text(); l != "" && l[0] != '#' {
			out = append(out, l)
		}
	}
	return out
}

// TestListsEndToEnd sends page views through POST /api/event on a real
// listener: a sample of crawler-user-agents' examples must be dropped as
// bots, a sample of real-browser User-Agents accepted, and referrers from
// referer-parser's list stored under the list's source names.
func TestListsEndToEnd(t *testing.T) {
	db := chtest.New(t)
	cfg := apptest.WriteConfig(t, `sites:
  - domain: example.com
    privacy: {aggregates: exact, k_anonymity: 2}
api_keys:
  - {name: stats, sha256: "`+apptest.KeyHash("stats-key")+`", sites: [example.com]}
`)
	s := apptest.Start(t, nil, "--config", cfg, "--clickhouse", db.DSN,
		"--flush-interval", "20ms", "--session-flush-interval", "20ms")
	post := func(ua, ref string) string {
		body, _ := json.Marshal(map[string]string{"n": "pageview", "u": "https://example.com/", "d": "example.com", "r": ref})
		code, h := s.Post(t, "/api/event", string(body), http.Header{"Content-Type": {"text/plain"}, "User-Agent": {ua}})
		if code != http.StatusAccepted {
			t.Fatalf("UA %q: status %d", ua, code)
		}
		return h.Get("X-Glimpse-Dropped")
	}
	crawlers := readUACorpus(t, "../../collector/agent/testdata/crawler-user-agents.txt.gz")
	browsers := readUACorpus(t, "../../collector/agent/testdata/browser-user-agents.txt.gz")
	bots, sent := 0, 0
	for i := 0; i < len(crawlers); i += 15 {
		sent++
		if post(crawlers[i], "") == "bot" {
			bots++
		} else {
			t.Errorf("crawler UA counted as a visitor: %q", crawlers[i])
		}
	}
	t.Logf("POST /api/event: %d of %d crawler UAs dropped as bot", bots, sent)
	for i := 0; i < len(browsers); i += 10 {
		if d := post(browsers[i], ""); d != "" {
			t.Errorf("browser UA dropped (%s): %q", d, browsers[i])
		}
	}

	// Two visitors per referrer, so that k-anonymity (k=2) withholds none.
	referrers := map[string]string{
		"https://www.google.co.uk/imgres?imgurl=x": "Google Images",
		"https://duckduckgo.com/":                  "DuckDuckGo",
		"https://search.yahoo.com/search?p=x":      "Yahoo!",
		"https://mail.yahoo.com/":                  "Yahoo! Mail",
	}
	n := 0
	for ref := range referrers {
		for v := 0; v < 2; v++ {
			n++
			ua := fmt.Sprintf("Mozilla/5.0 (X11; Linux x86_64; rv:%d.0) Gecko/20100101 Firefox/%d.0", 100+n, 100+n)
			if d := post(ua, ref); d != "" {
				t.Fatalf("referrer %q dropped: %s", ref, d)
			}
		}
	}
	wantNames := map[string]bool{}
	for _, name := range referrers {
		wantNames[name] = true
	}
	got := map[string]float64{}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		q := url.Values{"site_id": {"example.com"}, "period": {"day"}, "property": {"visit:source"}, "metrics": {"visitors"}}
		req, _ := http.NewRequest("GET", s.URL()+"/api/v1/stats/breakdown?"+q.Encode(), nil)
		req.Header.Set("Authorization", "Bearer stats-key")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var r struct{ Results []map[string]any }
		if resp.StatusCode != 200 || json.Unmarshal(b, &r) != nil {
			t.Fatalf("breakdown: %d %s", resp.StatusCode, b)
		}
		got = map[string]float64{}
		total := 0.0
		for _, row := range r.Results {
			v, _ := row["visitors"].(float64)
			got[fmt.Sprint(row["source"])] += v
			if _, listed := wantNames[fmt.Sprint(row["source"])]; listed {
				total += v
			}
		}
		if total >= float64(2*len(referrers)) || time.Now().After(deadline) {
			break
		}
	}
	for _, name := range referrers {
		if got[name] != 2 {
			t.Errorf("visit:source %q: %v visitors, want 2 (all: %v)", name, got[name], got)
		}
	}
}
