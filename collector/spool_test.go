package collector_test

import (
	"bytes"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/glimpse-analytics/glimpse/collector"
	"github.com/glimpse-analytics/glimpse/collector/sink"
	"github.com/glimpse-analytics/glimpse/internal/identity"
)

// startSpooled serves with a spooled writer whose ClickHouse is
// unreachable (readiness still uses the test database), so events stay in
// the spool at dir.
func startSpooled(t *testing.T, dir string, maxBytes int64) *testServer {
	t.Helper()
	dead, err := clickhouse.Open(&clickhouse.Options{Addr: []string{"127.0.0.1:1"}, DialTimeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dead.Close() })
	ts := startWithWriter(t, collector.Options{}, func(o sink.Options) *sink.Writer {
		o.Conn, o.SpoolDir, o.SpoolMaxBytes, o.InsertTimeout = dead, dir, maxBytes, 200*time.Millisecond
		w, err := sink.Open(o)
		if err != nil {
			t.Fatal(err)
		}
		return w
	}, "127.0.0.1/32")
	ts.keepSpool = true
	return ts
}

// TestSpoolHoldsNoRawIP: the spool holds what the events table holds and
// nothing more — no client address, no User-Agent string.
func TestSpoolHoldsNoRawIP(t *testing.T) {
	dir := t.TempDir()
	ts := startSpooled(t, dir, 0)
	ips := []string{"203.0.113.77", "2001:db8:1::abcd", "198.51.100.23"}
	for _, ip := range ips {
		for _, body := range []string{
			pageview("example.com", "https://example.com/a?utm_source=x"),
			`{"n":"Signup","u":"https://example.com/b","d":"example.com","p":{"plan":"pro"}}`,
		} {
			if r := ts.do(t, req{body: body, header: map[string]string{"X-Forwarded-For": ip}}); r.status != 202 || r.dropped != "" {
				t.Fatalf("%s: %d %q %s", ip, r.status, r.dropped, r.body)
			}
		}
	}
	time.Sleep(300 * time.Millisecond) // one group commit
	ts.stop(t)
	var spooled []byte
	files, _ := filepath.Glob(filepath.Join(dir, "*"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		spooled = append(spooled, b...)
	}
	if !bytes.Contains(spooled, []byte("/b")) || !bytes.Contains(spooled, []byte("203.0.113.0/24")) {
		t.Fatalf("spool does not hold the events (%d bytes)", len(spooled))
	}
	for _, n := range append(addrNeedles(ips), []byte(firefox), []byte("Gecko/")) {
		if bytes.Contains(spooled, n) {
			t.Errorf("spool holds %q", n)
		}
	}
}

// TestSpoolFullIsDegradedNotDown: at the spool's cap, events are answered
// 503 with reason spool-full at once and counted; /readyz stays 200 and
// says why it is degraded.
func TestSpoolFullIsDegradedNotDown(t *testing.T) {
	ts := startSpooled(t, t.TempDir(), 32<<10)
	full := 0
	for i := 0; i < 2000 && full == 0; i++ {
		r := ts.do(t, req{body: pageview("example.com", "https://example.com/p"), header: map[string]string{"X-Forwarded-For": "203.0.113." + string(rune('0'+i%10))}})
		if r.status == 503 && r.dropped == "spool-full" {
			full++
		}
		if i%50 == 0 {
			time.Sleep(250 * time.Millisecond) // let group commits account the bytes
		}
	}
	if full == 0 {
		t.Fatal("the spool never refused an event")
	}
	resp, err := http.Get(ts.url + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	var body bytes.Buffer
	body.ReadFrom(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(body.String(), "degraded: spool full") {
		t.Fatalf("/readyz = %d %q, want 200 saying the spool is full", resp.StatusCode, body.String())
	}
	var m bytes.Buffer
	ts.metrics.WritePrometheus(&m)
	for _, want := range []string{`glimpse_events_dropped_total{reason="spool-full"} `, "glimpse_spool_cap_bytes 32768", "glimpse_spool_bytes "} {
		if !strings.Contains(m.String(), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

// TestConsentedUIDIsHashed: a uid is stored as its keyed hash, and only for
// a consented site with the consent flag.
func TestConsentedUIDIsHashed(t *testing.T) {
	ts := start(t)
	for _, body := range []string{
		`{"n":"pageview","u":"https://consent.example/1","d":"consent.example","c":1,"uid":"user-42"}`,
		`{"n":"pageview","u":"https://consent.example/2","d":"consent.example","uid":"user-42"}`,
		`{"n":"pageview","u":"https://example.com/3","d":"example.com","c":1,"uid":"user-42"}`,
	} {
		if r := ts.do(t, req{body: body}); r.status != 202 || r.dropped != "" {
			t.Fatalf("%s: %d %q", body, r.status, r.dropped)
		}
	}
	ts.stop(t)
	want := identity.NewSubjectKey([]byte("0123456789abcdef0123456789abcdef")).String("user-42")
	if n := ts.count(t, "SELECT count() FROM events WHERE subject_id = '"+want+"' AND pathname = '/1'"); n != 1 {
		t.Fatalf("consented event: %d rows with the hashed uid", n)
	}
	if n := ts.count(t, "SELECT count() FROM events WHERE subject_id != ''"); n != 1 {
		t.Fatalf("%d rows carry a subject id; only the consented one may", n)
	}
	if n := ts.count(t, "SELECT count() FROM events WHERE position(subject_id, 'user-42') > 0"); n != 0 {
		t.Fatal("the raw uid is stored")
	}
}
