package reports

import (
	"crypto/tls"
	"strings"
	"testing"
	"time"

	"github.com/glimpse-analytics/glimpse/internal/smtptest"

	"github.com/glimpse-analytics/glimpse/aggregator/period"
	"github.com/glimpse-analytics/glimpse/internal/config"
)

func TestRange(t *testing.T) {
	d := func(y int, m time.Month, day int) time.Time { return time.Date(y, m, day, 0, 0, 0, 0, time.UTC) }
	for _, c := range []struct {
		every    string
		from, to time.Time
		want     string
	}{
		{KindWeek, d(2026, 11, 23), d(2026, 11, 30), "Nov 23–29, 2026"},
		{KindWeek, d(2026, 11, 30), d(2026, 12, 7), "Nov 30 – Dec 6, 2026"},
		{KindWeek, d(2025, 12, 29), d(2026, 1, 5), "Dec 29, 2025 – Jan 4, 2026"},
		{KindMonth, d(2026, 11, 1), d(2026, 12, 1), "November 2026"},
	} {
		if got := Range(c.every, c.from, c.to); got != c.want {
			t.Errorf("Range(%s, %s) = %q, want %q", c.every, c.from, got, c.want)
		}
	}
}

func TestLastFull(t *testing.T) {
	berlin, _ := time.LoadLocation("Europe/Berlin")
	// Monday 00:30 in Berlin is still Sunday in UTC: the week is Berlin's.
	now := time.Date(2026, 11, 29, 23, 30, 0, 0, time.UTC)
	p, pp, dp := LastFull(config.EveryWeek, now, berlin)
	if pp != "7d" || dp != "2026-11-29" || !p.From.Equal(time.Date(2026, 11, 23, 0, 0, 0, 0, berlin)) {
		t.Errorf("week: %s %s %s", pp, dp, p)
	}
	p, pp, dp = LastFull(config.EveryMonth, now, berlin)
	if pp != "month" || dp != "2026-10-31" || !p.To.Equal(time.Date(2026, 11, 1, 0, 0, 0, 0, berlin)) {
		t.Errorf("month: %s %s %s", pp, dp, p)
	}
}

// Page paths, sources and countries come from visitors: every one is
// escaped in the HTML part, and the templates add no remote content.
func TestReportEscapes(t *testing.T) {
	p, _ := period.Parse("7d", "2026-11-29", time.UTC, time.Now())
	evil := `/"><script>alert(1)</script><img src=https://evil.example/x.gif>`
	c := &Content{Site: "example.com", Every: KindWeek, Period: p, Previous: p.Previous(), K: 5, Noisy: true,
		Metrics: []Metric{{Name: "visitors", Label: "Unique visitors", Value: int64(1234), Change: int64(-5)},
			{Name: "bounce_rate", Label: "Bounce rate", Value: int64(40), Change: 2.5, Diff: true},
			{Name: "visit_duration", Label: "Visit duration", Value: int64(65), Change: nil}},
		Pages: []Row{{Key: evil, Visitors: int64(9)}}}
	text, html, err := c.render("https://glimpse.example/reports/unsubscribe/abc")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(html, "<script") || strings.Contains(html, "<img") {
		t.Errorf("page path not escaped in HTML:\n%s", html)
	}
	if !strings.Contains(html, "&lt;script&gt;") {
		t.Errorf("escaped path missing:\n%s", html)
	}
	if strings.Contains(html, "src=") && !strings.Contains(html, "&lt;img src=") {
		t.Error("the HTML part loads something")
	}
	for _, want := range []string{"1,234  (−5%)", "40%  (+2.5 pts)", "1m 05s  (no comparison)", "Numbers are approximate", "  9  " + evil} {
		if !strings.Contains(text, want) {
			t.Errorf("text part lacks %q:\n%s", want, text)
		}
	}
	if c.subject() != "Glimpse weekly report for example.com: Nov 23–29, 2026" {
		t.Errorf("subject %q", c.subject())
	}
}

func TestUnsubscribeToken(t *testing.T) {
	k := keys{secret: []byte(strings.Repeat("s", 32))}
	rec := k.recipient("Ana@Example.com")
	if rec != k.recipient("ana@example.com") || len(rec) != 32 {
		t.Fatalf("recipient hash %q", rec)
	}
	if (keys{secret: []byte(strings.Repeat("t", 32))}).recipient("ana@example.com") == rec {
		t.Error("the recipient hash does not depend on the key")
	}
	tok := k.sign("example.com", KindMonth, rec)
	site, kind, r, err := k.verify(tok)
	if err != nil || site != "example.com" || kind != KindMonth || r != rec {
		t.Fatalf("verify: %q %q %q %v", site, kind, r, err)
	}
	other := keys{secret: []byte(strings.Repeat("x", 32))}
	for name, bad := range map[string]string{
		"other key": other.sign("example.com", KindMonth, rec),
		"flipped":   tok[:10] + string(rune(tok[10]^1)) + tok[11:],
		"truncated": tok[:len(tok)-4],
		"empty":     "",
		"garbage":   "!!!!",
		"long":      strings.Repeat("A", 2000),
	} {
		if _, _, _, err := k.verify(bad); err == nil {
			t.Errorf("%s token accepted", name)
		}
	}
}

// The relay's STARTTLS policy: required refuses a relay without it, and
// the password never goes over a clear connection.
func TestSMTPPolicy(t *testing.T) {
	plain := smtptest.Start(t, false)
	host, port := smtptest.SplitHostPort(t, plain.Addr)
	msg := (&message{From: "r@glimpse.test", To: "a@example.com", Subject: "s", Date: time.Now(), Text: "t", HTML: "h", Unsubscribe: "u"}).bytes()
	for _, c := range []struct {
		policy, user string
		want         string
	}{
		{config.StartTLSRequired, "", "does not offer STARTTLS"},
		{config.StartTLSOpportunistic, smtptest.User, "refusing to send the SMTP password"},
	} {
		m := &mailer{cfg: &config.SMTP{Host: host, Port: port, From: "r@glimpse.test", StartTLS: c.policy, Username: c.user, Password: smtptest.Password}, timeout: 5 * time.Second}
		if err := m.send("a@example.com", msg); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.policy, err, c.want)
		}
	}
	if got := plain.Take(); len(got) != 0 {
		t.Errorf("%d messages got through", len(got))
	}
	// With TLS, a wrong password is refused by the relay.
	secure := smtptest.Start(t, true)
	host, port = smtptest.SplitHostPort(t, secure.Addr)
	m := &mailer{cfg: &config.SMTP{Host: host, Port: port, From: "r@glimpse.test", StartTLS: config.StartTLSRequired, Username: smtptest.User, Password: "wrong"},
		tls: &tls.Config{RootCAs: secure.Roots}, timeout: 5 * time.Second}
	if err := m.send("a@example.com", msg); err == nil || !strings.Contains(err.Error(), "authentication") {
		t.Errorf("wrong password: %v", err)
	}
	m.cfg.Password = smtptest.Password
	if err := m.send("a@example.com", msg); err != nil {
		t.Fatal(err)
	}
	if got := secure.Take(); len(got) != 1 || !got[0].TLS {
		t.Errorf("got %+v", got)
	}
}
