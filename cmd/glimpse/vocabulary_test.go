package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/glimpse-analytics/glimpse/collector/sink"
	"github.com/glimpse-analytics/glimpse/internal/apptest"
	"github.com/glimpse-analytics/glimpse/internal/chtest"
	"github.com/glimpse-analytics/glimpse/internal/model"
	"github.com/glimpse-analytics/glimpse/internal/storage/seed"
)

// TestOneVocabulary: traffic collected live and traffic written by the
// seed store channels, devices and screen classes in one vocabulary,
// Plausible's (the dimensions table's), so that a filter written with
// Plausible's names (visit:device==Desktop) matches both.
func TestOneVocabulary(t *testing.T) {
	const site = "vocab.test"
	db := chtest.Migrated(t)
	today := time.Now().UTC().Truncate(24 * time.Hour)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	w := sink.New(sink.Options{Conn: db.Conn, BatchSize: 50000, QueueSize: 100000, SessionInterval: seed.SessionInterval})
	if _, err := seed.Write(ctx, w, seed.Options{Site: site, Events: 3000, Days: 3, End: today, Seed: 3}); err != nil {
		t.Fatal(err)
	}

	cfg := apptest.WriteConfig(t, fmt.Sprintf("sites:\n  - domain: %s\n    privacy: {aggregates: exact, k_anonymity: 2}\n"+
		"api_keys:\n  - name: t\n    sha256: %q\n    sites: [%s]\n", site, apptest.KeyHash("vocab-key"), site))
	srv := apptest.Start(t, nil, "--config", cfg, "--clickhouse", db.DSN, "--trusted-proxies", "127.0.0.1/32",
		"--flush-interval", "100ms", "--session-flush-interval", "200ms")
	live := []struct {
		ua, page, referrer string
		width              int
	}{
		{"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
			"/a", "https://www.google.com/", 1920},
		{"Mozilla/5.0 (iPhone; CPU iPhone OS 17_4_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4.1 Mobile/15E148 Safari/604.1",
			"/b", "https://t.co/x", 390},
		{"Mozilla/5.0 (iPad; CPU OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
			"/c", "", 800},
		{"Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
			"/d?utm_source=google&utm_medium=cpc", "", 1280},
	}
	sent := 0
	for i, l := range live {
		for v := range 3 {
			body := fmt.Sprintf(`{"n":"pageview","u":"https://%s%s","d":%q,"r":%q,"w":%d}`, site, l.page, site, l.referrer, l.width)
			req, _ := http.NewRequest("POST", srv.URL()+"/api/event", strings.NewReader(body))
			req.Header.Set("User-Agent", l.ua)
			req.Header.Set("X-Forwarded-For", fmt.Sprintf("198.51.100.%d", 10*i+v+1))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 202 || resp.Header.Get("X-Glimpse-Dropped") != "" {
				t.Fatalf("live event %d: %d %s", i, resp.StatusCode, resp.Header.Get("X-Glimpse-Dropped"))
			}
			sent++
		}
	}
	liveRows := fmt.Sprintf("SELECT count() FROM events WHERE ts >= toDateTime(%d)", today.Unix())
	liveSessions := fmt.Sprintf("SELECT toUInt64(greatest(sum(sign), 0)) FROM sessions WHERE start >= toDateTime(%d)", today.Unix())
	deadline := time.Now().Add(30 * time.Second)
	for apptest.Count(t, db.Conn, liveRows) < uint64(sent) || apptest.Count(t, db.Conn, liveSessions) < uint64(sent) {
		if time.Now().After(deadline) {
			t.Fatalf("live sessions not written; %d live events", apptest.Count(t, db.Conn, liveRows))
		}
		time.Sleep(100 * time.Millisecond)
	}

	for _, dim := range []string{"visit:channel", "visit:device", "visit:screen"} {
		d := model.Lookup(dim)
		for _, table := range []string{"events", "sessions"} {
			for _, when := range []string{"<", ">="} {
				q := fmt.Sprintf("SELECT DISTINCT %s FROM %s WHERE %s %s toDateTime(%d)", d.Column, table,
					map[string]string{"events": "ts", "sessions": "start"}[table], when, today.Unix())
				got := distinctValues(t, db, q)
				if len(got) == 0 {
					t.Errorf("%s: no rows", q)
				}
				for _, v := range got {
					if !slices.Contains(d.Vocabulary, v) {
						t.Errorf("%s: %q is not in %s's vocabulary %v", q, v, dim, d.Vocabulary)
					}
				}
			}
		}
	}

	visitors := func(period, filter string) float64 {
		q := url.Values{"site_id": {site}, "metrics": {"visitors"}, "filters": {filter}}
		if period == "day" {
			q.Set("period", "day")
		} else {
			q.Set("period", "custom")
			q.Set("date", today.AddDate(0, 0, -3).Format(time.DateOnly)+","+today.AddDate(0, 0, -1).Format(time.DateOnly))
		}
		req, _ := http.NewRequest("GET", srv.URL()+"/api/v1/stats/aggregate?"+q.Encode(), nil)
		req.Header.Set("Authorization", "Bearer vocab-key")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var res map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&res); err != nil || resp.StatusCode != 200 {
			t.Fatalf("aggregate %v: %d %v %v", q, resp.StatusCode, err, res)
		}
		v, _ := res["results"].(map[string]any)["visitors"].(map[string]any)["value"].(float64)
		return v
	}
	for _, f := range []struct {
		filter string
		live   float64
	}{
		{"visit:device==Desktop", 6}, {"visit:device==Mobile", 3}, {"visit:device==Tablet", 3},
		{"visit:channel==Organic Search", 3}, {"visit:channel==Organic Social", 3}, {"visit:channel==Direct", 3},
		{"visit:channel==Paid Search", 3}, {"visit:screen==Laptop", 3}, {"visit:screen==Desktop", 3},
	} {
		if got := visitors("day", f.filter); got != f.live {
			t.Errorf("%s today (live): %g visitors, want %g", f.filter, got, f.live)
		}
		if got := visitors("seed", f.filter); got == 0 {
			t.Errorf("%s over the seeded days: no visitors", f.filter)
		}
	}
}

func distinctValues(t *testing.T, db *chtest.DB, q string) []string {
	t.Helper()
	rows, err := db.Conn.Query(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	return out
}
