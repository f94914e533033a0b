package config

import (
	"os"
	"strings"
	"testing"
	"time"
)

func reportsEnv(t *testing.T) {
	t.Helper()
	getenv = func(k string) string {
		switch k {
		case "SMTP_PASSWORD":
			return "hunter2-secret"
		case "REPORT_KEY":
			return strings.Repeat("k", 40)
		case "SHORT_KEY":
			return "short"
		}
		return ""
	}
	t.Cleanup(func() { getenv = os.Getenv })
}

const reportsGood = `smtp:
  host: smtp.example.com
  from: "Glimpse <reports@example.com>"
  username: glimpse
  password_env: SMTP_PASSWORD
  signing_key_env: REPORT_KEY
sites:
  - domain: example.com
    timezone: Europe/Berlin
    reports:
      - every: week
        recipients: [ana@example.com, bo@example.com]
      - every: month
        recipients: [ana@example.com]
        time_zone: America/New_York
    alerts:
      - current_visitors_above: 100
        recipients: [ops@example.com]
`

func TestReportsConfig(t *testing.T) {
	reportsEnv(t)
	f, err := Parse("glimpse.yaml", []byte(reportsGood))
	if err != nil {
		t.Fatal(err)
	}
	s := f.SMTP
	if s.Port != DefaultSMTPPort || s.StartTLS != StartTLSRequired || s.Password != "hunter2-secret" || len(s.SigningKey) != 40 {
		t.Errorf("smtp defaults: %+v", s)
	}
	site := f.Sites[0]
	if r := site.Reports[0]; r.Location.String() != "Europe/Berlin" || r.TimeZone != "Europe/Berlin" {
		t.Errorf("weekly report zone: %q %v", r.TimeZone, r.Location)
	}
	if r := site.Reports[1]; r.Location.String() != "America/New_York" {
		t.Errorf("monthly report zone: %v", r.Location)
	}
	if a := site.Alerts[0]; a.Cooldown != time.Hour {
		t.Errorf("cooldown %v", a.Cooldown)
	}
	if !f.ReportsConfigured() {
		t.Error("ReportsConfigured false")
	}
}

func TestReportsConfigErrors(t *testing.T) {
	reportsEnv(t)
	site := func(extra string) string {
		return "sites:\n  - domain: example.com\n" + extra
	}
	smtp := "smtp:\n  host: smtp.example.com\n  from: r@example.com\n  signing_key_env: REPORT_KEY\n"
	for _, c := range []struct{ name, yaml, want string }{
		{"no smtp", site("    reports:\n      - every: week\n        recipients: [a@example.com]\n"), "sites[0].reports: nothing can be sent without a top-level smtp:"},
		{"alerts without smtp", site("    alerts:\n      - current_visitors_above: 3\n        recipients: [a@example.com]\n"), "sites[0].alerts: nothing can be sent"},
		{"password in file", strings.Replace(smtp, "  from:", "  password: secret\n  from:", 1) + site(""), "smtp.password: never put the SMTP password"},
		{"no host", strings.Replace(smtp, "smtp.example.com", "", 1) + site(""), "smtp.host: missing"},
		{"host with port", strings.Replace(smtp, "smtp.example.com", "smtp.example.com:25", 1) + site(""), "smtp.host: \"smtp.example.com:25\" is not a host"},
		{"port 465", smtp + "  port: 465\n" + site(""), "smtp.port: 465 (implicit TLS)"},
		{"bad port", smtp + "  port: 70000\n" + site(""), "smtp.port: 70000 is not a TCP port"},
		{"bad from", strings.Replace(smtp, "r@example.com", "not an address", 1) + site(""), "smtp.from: \"not an address\""},
		{"bad starttls", smtp + "  starttls: maybe\n" + site(""), "smtp.starttls: \"maybe\": want required, opportunistic or none"},
		{"username without env", smtp + "  username: u\n" + site(""), "smtp.password_env: missing"},
		{"env without username", smtp + "  password_env: SMTP_PASSWORD\n" + site(""), "smtp.username: missing"},
		{"unset password env", smtp + "  username: u\n  password_env: NOPE\n" + site(""), "smtp.password_env: environment variable NOPE is empty"},
		{"auth in clear", smtp + "  username: u\n  password_env: SMTP_PASSWORD\n  starttls: none\n" + site(""), "smtp.starttls: none with a username"},
		{"no signing key", strings.Replace(smtp, "  signing_key_env: REPORT_KEY\n", "", 1) + site(""), "smtp.signing_key_env: missing"},
		{"short signing key", strings.Replace(smtp, "REPORT_KEY", "SHORT_KEY", 1) + site(""), "smtp.signing_key_env: SHORT_KEY holds 5 bytes"},
		{"bad every", smtp + site("    reports:\n      - every: day\n        recipients: [a@example.com]\n"), "sites[0].reports[0].every: \"day\": want week or month"},
		{"no every", smtp + site("    reports:\n      - recipients: [a@example.com]\n"), "sites[0].reports[0].every: missing"},
		{"bad zone", smtp + site("    reports:\n      - every: week\n        time_zone: Mars/Base\n        recipients: [a@example.com]\n"), "sites[0].reports[0].time_zone: unknown time zone"},
		{"no recipients", smtp + site("    reports:\n      - every: week\n"), "sites[0].reports[0].recipients: missing"},
		{"bad recipient", smtp + site("    reports:\n      - every: week\n        recipients: [\"Ana <a@example.com>\"]\n"), "sites[0].reports[0].recipients[0]: \"Ana <a@example.com>\" is not a bare"},
		{"dup recipient", smtp + site("    reports:\n      - every: week\n        recipients: [a@example.com, A@example.com]\n"), "sites[0].reports[0].recipients[1]: \"A@example.com\" is already recipients[0]"},
		{"no threshold", smtp + site("    alerts:\n      - recipients: [a@example.com]\n"), "sites[0].alerts[0].current_visitors_above: missing"},
		{"bad cooldown", smtp + site("    alerts:\n      - current_visitors_above: 5\n        cooldown: soon\n        recipients: [a@example.com]\n"), "sites[0].alerts[0].cooldown: \"soon\" is not a duration"},
		{"short cooldown", smtp + site("    alerts:\n      - current_visitors_above: 5\n        cooldown: 10s\n        recipients: [a@example.com]\n"), "sites[0].alerts[0].cooldown: 10s is shorter than 1m0s"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse("glimpse.yaml", []byte(c.yaml))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("got %v\nwant it to contain %q", err, c.want)
			}
		})
	}
}
