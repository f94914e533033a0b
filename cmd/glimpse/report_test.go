package main

import (
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/glimpse-analytics/glimpse/internal/apptest"
	"github.com/glimpse-analytics/glimpse/internal/chtest"
	"github.com/glimpse-analytics/glimpse/internal/smtptest"
)

// TestServeSendsReports: glimpse serve with an smtp: block sends the
// week's missed report at start over STARTTLS with AUTH PLAIN, its
// unsubscribe link works on serve's own listener, and glimpse report send
// then skips the unsubscribed recipient; --dry-run prints the message.
func TestServeSendsReports(t *testing.T) {
	db := chtest.New(t)
	relay := smtptest.Start(t, true)
	host, port := smtptest.SplitHostPort(t, relay.Addr)
	ca := filepath.Join(t.TempDir(), "relay.pem")
	if err := os.WriteFile(ca, relay.PEM, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := apptest.WriteConfig(t, `smtp:
  host: `+host+`
  port: `+itoa(port)+`
  from: reports@glimpse.test
  username: `+smtptest.User+`
  password_env: TEST_SMTP_PASSWORD
  signing_key_env: TEST_REPORT_KEY
sites:
  - domain: example.com
    privacy: {aggregates: exact}
    reports:
      - every: week
        recipients: [ana@example.com]
`)
	// SSL_CERT_FILE: the binary trusts the relay's test certificate.
	env := []string{"TEST_SMTP_PASSWORD=" + smtptest.Password, "TEST_REPORT_KEY=0123456789abcdef0123456789abcdef-report", "SSL_CERT_FILE=" + ca}
	s := apptest.Start(t, env, "--config", cfg, "--clickhouse", db.DSN)
	var got []smtptest.Received
	for deadline := time.Now().Add(20 * time.Second); len(got) == 0 && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		got = relay.Take()
	}
	if len(got) != 1 || got[0].To != "ana@example.com" || !got[0].TLS {
		t.Fatalf("serve sent %d messages, want the week's report to ana over TLS\n%s", len(got), s.Output())
	}
	msg := string(got[0].Data)
	if !strings.Contains(msg, "Subject: =?utf-8?q?Glimpse_weekly_report_for_example.com:") {
		t.Errorf("message:\n%s", msg)
	}
	link := regexp.MustCompile(`List-Unsubscribe: <([^>]+)>`).FindStringSubmatch(msg)
	if link == nil || !strings.HasPrefix(link[1], s.URL()+"/reports/unsubscribe/") {
		t.Fatalf("List-Unsubscribe: %v", link)
	}
	resp, err := http.Post(link[1], "application/x-www-form-urlencoded", strings.NewReader("List-Unsubscribe=One-Click"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("unsubscribe: %d", resp.StatusCode)
	}
	s.Stop(t)
	for _, secret := range []string{smtptest.Password, "ana@example.com"} {
		if strings.Contains(s.Output(), secret) {
			t.Errorf("serve's output holds %q", secret)
		}
	}

	args := []string{"report", "send", "--config", cfg, "--clickhouse", db.DSN, "--site", "example.com", "--every", "week"}
	out, errOut, code := apptest.Run(t, env, args...)
	if code != 0 || !strings.Contains(errOut, "messages=0") || len(relay.Take()) != 0 {
		t.Errorf("send after unsubscribing: exit %d\n%s%s", code, out, errOut)
	}
	out, errOut, code = apptest.Run(t, env, append(args, "--to", "bo@example.com", "--dry-run")...)
	if code != 0 || !strings.Contains(out, "To: bo@example.com\r\n") || !strings.Contains(out, "Content-Type: text/html; charset=utf-8") ||
		len(relay.Take()) != 0 {
		t.Errorf("dry run: exit %d\n%s%s", code, out, errOut)
	}
	_, errOut, code = apptest.Run(t, env, "report", "send", "--config", cfg, "--clickhouse", db.DSN, "--site", "example.com", "--every", "day")
	if code != 1 || !strings.Contains(errOut, `--every "day": want week or month`) {
		t.Errorf("bad --every: exit %d %s", code, errOut)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
