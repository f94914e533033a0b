package config

import (
	"net"
	"net/mail"
	"strings"
	"time"
)

// SMTP is the relay that scheduled reports and alerts are sent through
// (dashboards/reports). Without it no report or alert is sent, and a site
// that lists some is refused.
type SMTP struct {
	Host string `yaml:"host"`
	// Port defaults to DefaultSMTPPort (submission). Implicit TLS (465) is
	// not supported: the connection is upgraded with STARTTLS.
	Port int `yaml:"port"`
	// From is the sender address, e.g. "Glimpse <reports@example.com>".
	From string `yaml:"from"`
	// Username and PasswordEnv, together or neither: the account
	// authenticated with AUTH PLAIN, only ever over TLS. The password is
	// read from the environment variable PasswordEnv names, never from
	// this file.
	Username    string `yaml:"username"`
	PasswordEnv string `yaml:"password_env"`
	// FilePassword is refused: a password has no place in the file.
	FilePassword string `yaml:"password"`
	// StartTLS is required (the default: no TLS, no mail), opportunistic
	// (TLS when the relay offers it) or none.
	StartTLS string `yaml:"starttls"`
	// SigningKeyEnv names the environment variable holding the key (at
	// least MinSigningKeyLen bytes) that signs unsubscribe links and keys
	// the hash under which recipients are stored. Changing it voids the
	// links already sent and forgets who unsubscribed.
	SigningKeyEnv string `yaml:"signing_key_env"`

	// Password and SigningKey are resolved from the environment by Parse.
	Password   string `yaml:"-"`
	SigningKey []byte `yaml:"-"`
}

// STARTTLS policies.
const (
	StartTLSRequired      = "required"
	StartTLSOpportunistic = "opportunistic"
	StartTLSNone          = "none"
)

// Report and alert defaults.
const (
	DefaultSMTPPort      = 587
	DefaultAlertCooldown = time.Hour
	// MinAlertCooldown bounds how often one alert may repeat: the
	// threshold is checked once a minute.
	MinAlertCooldown = time.Minute
)

// Report periods.
const (
	EveryWeek  = "week"
	EveryMonth = "month"
)

// Report is one scheduled e-mail report of a site.
type Report struct {
	Every      string   `yaml:"every"` // week (Monday to Sunday) or month
	Recipients []string `yaml:"recipients"`
	// TimeZone is the IANA zone whose weeks and months are reported
	// (default the site's timezone).
	TimeZone string         `yaml:"time_zone"`
	Location *time.Location `yaml:"-"`
}

// Alert is an e-mail sent when a site's current visitors exceed a
// threshold.
type Alert struct {
	CurrentVisitorsAbove int      `yaml:"current_visitors_above"`
	Recipients           []string `yaml:"recipients"`
	// CooldownText is how long after an alert the same alert stays quiet,
	// a Go duration (default DefaultAlertCooldown); Cooldown is it parsed.
	CooldownText string        `yaml:"cooldown"`
	Cooldown     time.Duration `yaml:"-"`
}

func (v *validator) smtp(s *SMTP) {
	at := []any{"smtp"}
	switch {
	case s.Host == "":
		v.fail(append(at, "host"), "missing; the host name of the SMTP relay, e.g. smtp.example.com")
	case net.ParseIP(s.Host) == nil && !validHost(strings.ToLower(s.Host)):
		v.fail(append(at, "host"), "%q is not a host name or IP address (no scheme or port: give the port in port)", s.Host)
	}
	switch {
	case s.Port == 0:
		s.Port = DefaultSMTPPort
	case s.Port == 465:
		v.fail(append(at, "port"), "465 (implicit TLS) is not supported; use the submission port 587 with starttls")
	case s.Port < 1 || s.Port > 65535:
		v.fail(append(at, "port"), "%d is not a TCP port", s.Port)
	}
	if s.From == "" {
		v.fail(append(at, "from"), "missing; the sender address, e.g. \"Glimpse <reports@example.com>\"")
	} else if a, err := mail.ParseAddress(s.From); err != nil {
		v.fail(append(at, "from"), "%q is not an e-mail address", s.From)
	} else if _, err := CanonicalEmail(a.Address); err != nil {
		v.fail(append(at, "from"), "%v", err)
	}
	switch s.StartTLS {
	case "":
		s.StartTLS = StartTLSRequired
	case StartTLSRequired, StartTLSOpportunistic, StartTLSNone:
	default:
		v.fail(append(at, "starttls"), "%q: want required, opportunistic or none", s.StartTLS)
	}
	if s.FilePassword != "" {
		v.fail(append(at, "password"), "never put the SMTP password in the sites file; put it in an environment variable and name it in password_env")
	}
	switch {
	case s.Username == "" && s.PasswordEnv != "":
		v.fail(append(at, "username"), "missing; password_env is set, so give the account name too")
	case s.Username != "" && s.PasswordEnv == "":
		v.fail(append(at, "password_env"), "missing; name the environment variable holding the password of %s", s.Username)
	case s.PasswordEnv != "":
		if s.Password = getenv(s.PasswordEnv); s.Password == "" {
			v.fail(append(at, "password_env"), "environment variable %s is empty or not set", s.PasswordEnv)
		}
		if s.StartTLS == StartTLSNone {
			v.fail(append(at, "starttls"), "none with a username would send the password in clear; use required")
		}
	}
	if s.SigningKeyEnv == "" {
		v.fail(append(at, "signing_key_env"), "missing; name an environment variable holding at least %d random bytes (e.g. openssl rand -base64 32): it signs unsubscribe links", MinSigningKeyLen)
	} else if k := getenv(s.SigningKeyEnv); k == "" {
		v.fail(append(at, "signing_key_env"), "environment variable %s is empty or not set", s.SigningKeyEnv)
	} else if len(k) < MinSigningKeyLen {
		v.fail(append(at, "signing_key_env"), "%s holds %d bytes, too short; use at least %d random bytes (e.g. openssl rand -base64 32)", s.SigningKeyEnv, len(k), MinSigningKeyLen)
	} else {
		s.SigningKey = []byte(k)
	}
}

// reports validates a site's reports and alerts.
func (v *validator) reports(f *File, s *Site, at []any) {
	if f.SMTP == nil && (len(s.Reports) > 0 || len(s.Alerts) > 0) {
		field := "reports"
		if len(s.Reports) == 0 {
			field = "alerts"
		}
		v.fail(append(at, field), "nothing can be sent without a top-level smtp: block naming the relay")
	}
	for j := range s.Reports {
		r := &s.Reports[j]
		rat := append(append([]any{}, at...), "reports", j)
		switch r.Every {
		case EveryWeek, EveryMonth:
		case "":
			v.fail(append(rat, "every"), "missing; want week or month")
		default:
			v.fail(append(rat, "every"), "%q: want week or month", r.Every)
		}
		if r.TimeZone == "" {
			r.TimeZone, r.Location = s.Timezone, s.Location
		} else if loc, err := time.LoadLocation(r.TimeZone); err != nil || strings.ContainsAny(r.TimeZone, " ") {
			v.fail(append(rat, "time_zone"), "unknown time zone %q; use an IANA name like Europe/Berlin", r.TimeZone)
		} else {
			r.Location = loc
		}
		v.recipients(r.Recipients, rat)
	}
	for j := range s.Alerts {
		a := &s.Alerts[j]
		aat := append(append([]any{}, at...), "alerts", j)
		if a.CurrentVisitorsAbove < 1 {
			v.fail(append(aat, "current_visitors_above"), "missing or %d; want the number of current visitors (at least 1) above which to alert", a.CurrentVisitorsAbove)
		}
		if a.CooldownText == "" {
			a.Cooldown = DefaultAlertCooldown
		} else if d, err := time.ParseDuration(a.CooldownText); err != nil {
			v.fail(append(aat, "cooldown"), "%q is not a duration like 30m or 2h", a.CooldownText)
		} else if d < MinAlertCooldown {
			v.fail(append(aat, "cooldown"), "%s is shorter than %s: the threshold is checked once a minute", d, MinAlertCooldown)
		} else {
			a.Cooldown = d
		}
		v.recipients(a.Recipients, aat)
	}
}

func (v *validator) recipients(list []string, at []any) {
	if len(list) == 0 {
		v.fail(append(at, "recipients"), "missing; list the e-mail addresses to send to")
	}
	seen := map[string]int{}
	for i, r := range list {
		c, err := CanonicalEmail(r)
		if err != nil {
			v.fail(append(at, "recipients", i), "%v", err)
			continue
		}
		if j, dup := seen[c]; dup {
			v.fail(append(at, "recipients", i), "%q is already recipients[%d]", r, j)
		}
		seen[c] = i
	}
}

// ReportsConfigured reports whether any site has a report or an alert.
func (f *File) ReportsConfigured() bool {
	for i := range f.Sites {
		if len(f.Sites[i].Reports) > 0 || len(f.Sites[i].Alerts) > 0 {
			return true
		}
	}
	return false
}

// String names the report in logs and subjects: "weekly" or "monthly".
func (r *Report) String() string {
	if r.Every == EveryMonth {
		return "monthly"
	}
	return "weekly"
}
