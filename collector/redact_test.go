package collector_test

import (
	"bytes"
	"context"
	"fmt"
	"net/url"
	"os/exec"
	"strings"
	"testing"

	"github.com/glimpse-analytics/glimpse/collector/redact"
	"github.com/glimpse-analytics/glimpse/internal/apptest"
)

// TestRedactionIntoClickHouse sends issue 21's examples through the real
// handlers, beacon and pixel, and checks that no table ClickHouse ends up
// with holds any of them, that the placeholders took their place, and
// that glimpse_redactions_total counted each rule.
func TestRedactionIntoClickHouse(t *testing.T) {
	ts := start(t, "127.0.0.1/32")
	const (
		path     = "/users/eve.smith/orders/4111111111111111/reset/ab12CD34ef"
		email    = "eve.smith@example.com"
		phone    = "+49 30 1234567"
		token    = "sk_live_4eC39HqLyjWDarjtT1zdp7dc"
		card     = "4111 1111 1111 1111"
		iban     = "DE89 3704 0044 0532 0130 00"
		jwt      = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.dBjftJeZ4CVPmB92K27uhbUJU1p1r_wW1gFWFOEjXk"
		campaign = "spring-sale"
	)
	props := fmt.Sprintf(`{"contact":%q,"phone":%q,"token":%q,%q:"yes","plan":"pro"}`, email, phone, token, email)
	pixelProps := fmt.Sprintf(`{"iban":%q,"session":%q}`, iban, jwt)
	requests := []req{
		{body: fmt.Sprintf(`{"n":"pageview","u":"https://example.com%s?utm_source=newsletter&utm_campaign=%s&utm_content=%s","d":"example.com","r":"https://shop.other.example/pay/%s/confirm?card=%s"}`,
			path, campaign, url.QueryEscape(email), strings.ReplaceAll(card, " ", "-"), url.QueryEscape(card))},
		{body: fmt.Sprintf(`{"n":"Signup","u":"https://example.com/pricing","d":"example.com","p":%s}`, props)},
		{method: "GET", path: "/p.gif?n=Lead&d=example.com&u=" + url.QueryEscape("https://example.com/contact") + "&p=" + url.QueryEscape(pixelProps)},
		{body: fmt.Sprintf(`{"n":"Outbound Link: Click","u":"https://example.com/links","d":"example.com","p":{"url":"https://other.example/invite/%s/%s"}}`, email, token)},
	}
	for i, r := range requests {
		r.header = map[string]string{"X-Forwarded-For": fmt.Sprintf("203.0.113.%d", i+1)}
		if res := ts.do(t, r); (res.status != 202 && res.status != 200) || res.dropped != "" {
			t.Fatalf("request %d: %d %q %q", i, res.status, res.dropped, res.body)
		}
	}
	ts.stop(t)

	// No table holds any of them, in any form they were sent in.
	needles := []string{"eve.smith", "eve%40", "4111", "ab12CD34ef", "1234567", token, "3704", jwt[:20], "sk_live"}
	rows, err := ts.db.Conn.Query(context.Background(), "SELECT name FROM system.tables WHERE database = currentDatabase() AND engine NOT LIKE '%View'")
	if err != nil {
		t.Fatal(err)
	}
	var tables []string
	for rows.Next() {
		var n string
		_ = rows.Scan(&n)
		tables = append(tables, n)
	}
	dumped := 0
	for _, tbl := range tables {
		out, err := exec.Command("clickhouse-client", "--host", "127.0.0.1", "--port", strings.Split(ts.db.Addr, ":")[1],
			"--query", fmt.Sprintf("SELECT * FROM %s.%s FORMAT TabSeparated", ts.db.Database, tbl)).Output()
		if err != nil {
			t.Fatalf("dump %s: %v", tbl, err)
		}
		dumped += len(out)
		for _, n := range needles {
			if bytes.Contains(out, []byte(n)) {
				t.Errorf("table %s holds %q:\n%s", tbl, n, out)
			}
		}
	}
	if dumped < 500 {
		t.Fatalf("dumped only %d bytes; did the events arrive?", dumped)
	}

	// The placeholders are where the values were; the rest is kept.
	want := map[string]string{
		"pathname FROM events WHERE type = 'pageview' AND pathname LIKE '/users/%'": "/users/[user]/orders/[card]/reset/[token]",
		"referrer FROM events WHERE type = 'pageview' AND referrer != ''":           "shop.other.example/pay/[card]/confirm",
		"utm_content FROM events WHERE utm_content != ''":                           "[email]",
		"utm_campaign FROM events WHERE utm_campaign != ''":                         campaign,
		"toString(prop_keys) FROM events WHERE name = 'Signup'":                     "['contact','phone','token','[email]','plan']",
		"toString(prop_values) FROM events WHERE name = 'Signup'":                   "['[email]','[phone]','[token]','yes','pro']",
		"toString(prop_values) FROM events WHERE name = 'Lead'":                     "['[iban]','[jwt]']",
		"target_url FROM events WHERE type = 'outbound'":                            "other.example/invite/[email]/[token]",
	}
	for q, w := range want {
		var got string
		if err := ts.db.Conn.QueryRow(context.Background(), "SELECT "+q).Scan(&got); err != nil {
			t.Errorf("SELECT %s: %v", q, err)
			continue
		}
		if got != w {
			t.Errorf("SELECT %s = %q, want %q", q, got, w)
		}
	}

	// Every rule counted; the counters say which rule, never what.
	counts := map[redact.Rule]float64{
		redact.User: 1, redact.Card: 2, redact.Token: 3, redact.Email: 4, redact.Phone: 1, redact.IBAN: 1, redact.JWT: 1,
	}
	for rule, n := range counts {
		if got := apptest.SetMetric(t, ts.metrics, rule.MetricName()); got != n {
			t.Errorf("%s = %v, want %v", rule.MetricName(), got, n)
		}
	}
	var m bytes.Buffer
	ts.metrics.WritePrometheus(&m)
	for _, n := range needles {
		if bytes.Contains(m.Bytes(), []byte(n)) || strings.Contains(ts.logs.String(), n) {
			t.Errorf("metrics or logs hold %q", n)
		}
	}
}
