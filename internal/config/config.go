// Package config loads and validates the sites file (glimpse.yaml): the
// sites Glimpse collects for, their privacy settings, and the Stats API
// keys. Errors name the file, the line and the field.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// File is a parsed and validated sites file.
type File struct {
	Sites   []Site   `yaml:"sites"`
	APIKeys []APIKey `yaml:"api_keys"`
	Users   []User   `yaml:"users"` // dashboard sign-in (users.go)
	Email   Email    `yaml:"email"`
	// SMTP is the relay of scheduled reports and alerts (reports.go);
	// nil: none are sent.
	SMTP *SMTP `yaml:"smtp"`

	byHost map[string]*Site // domains and aliases without "www."
	keys   *Keys            // APIKeys by hash
}

// Site is one tracked web site.
type Site struct {
	// Domain identifies the site; events whose domain or page host is not a
	// site's domain or alias are dropped. Lower-case host name, no scheme.
	Domain  string   `yaml:"domain"`
	Aliases []string `yaml:"aliases"`
	// Timezone is an IANA zone for reports (default UTC).
	Timezone string `yaml:"timezone"`
	// QueryAllow lists extra URL query keys kept on stored page URLs, beside
	// utm_*, ref and source. Keys that name secrets or personal data
	// (session, token, password, key, code, email, ...) are refused
	// (query.go).
	QueryAllow []string `yaml:"query_allow"`
	Privacy    Privacy  `yaml:"privacy"`
	// OptOutFrameAncestors lists the origins (https://example.com, or
	// https://*.example.com) whose pages may embed the collector's opt-out
	// page in an iframe. Default none: the page cannot be framed.
	OptOutFrameAncestors []string `yaml:"optout_frame_ancestors"`
	// SharedLinks are read-only dashboard links (users.go).
	SharedLinks []SharedLink `yaml:"shared_links"`
	// Reports and Alerts are e-mailed through the smtp: relay (reports.go).
	Reports []Report `yaml:"reports"`
	Alerts  []Alert  `yaml:"alerts"`
	Funnels []Funnel `yaml:"funnels"` // funnels.go

	// Location is Timezone loaded.
	Location *time.Location `yaml:"-"`
}

// Privacy modes.
const (
	ModeStrict    = "strict"    // no identifiers beyond the daily-salted hash
	ModeAggregate = "aggregate" // opted-out visits counted with no identifier
	ModeConsented = "consented" // the site may send a consented user id
)

// Geo precisions.
const (
	GeoCountry = "country"
	GeoRegion  = "region"
	GeoCity    = "city"
)

// Privacy holds a site's privacy settings; defaults are applied by Load.
type Privacy struct {
	Mode            string `yaml:"mode"`             // default strict
	HonorGPC        *bool  `yaml:"honor_gpc"`        // default true
	HonorDNT        *bool  `yaml:"honor_dnt"`        // default false
	KAnonymity      int    `yaml:"k_anonymity"`      // default 5, at least 2
	RetentionMonths int    `yaml:"retention_months"` // default 25
	Geo             string `yaml:"geo"`              // default region
	// SubjectKey keys the hash of consented user ids (mode consented;
	// subject.go), given here or, better, named by SubjectKeyEnv.
	SubjectKey    string `yaml:"subject_key"`
	SubjectKeyEnv string `yaml:"subject_key_env"`

	// Aggregates says how released numbers are protected
	// (aggregator/disclosure.go):
	// AggregatesNoisy (the default in mode strict) perturbs every one
	// with calibrated noise, AggregatesExact (the default otherwise)
	// releases exact numbers under the k threshold alone, which does not
	// protect against differencing.
	Aggregates string `yaml:"aggregates"`
	// Epsilon is the privacy loss of one released number (default
	// DefaultEpsilon), Budget the total a reader may spend in a UTC day
	// (default DefaultBudget).
	Epsilon float64 `yaml:"epsilon"`
	Budget  float64 `yaml:"budget"`
	// NoiseKey keys the noise: the same question always gets the same
	// answer, across restarts and collectors, so that asking again gains
	// nothing. Given here or, better, named by NoiseKeyEnv; without one a
	// noisy site's key is random per process (and a restart gives new
	// noise, which a patient reader could average).
	NoiseKey    string `yaml:"noise_key"`
	NoiseKeyEnv string `yaml:"noise_key_env"`
	// RevenueClip is the revenue (units of its currency) one event counts
	// with on a noisy site (default model.MaxRevenuePerEvent): a
	// currency's revenue carries noise of scale RevenueClip × 30 / epsilon.
	RevenueClip int64 `yaml:"revenue_clip"`
}

// Aggregates modes.
const (
	AggregatesNoisy = "noisy"
	AggregatesExact = "exact"
)

// Noisy reports whether the site's released numbers carry noise.
func (p Privacy) Noisy() bool { return p.Aggregates == AggregatesNoisy }

// GPC reports whether Sec-GPC: 1 opts a visitor out.
func (p Privacy) GPC() bool { return p.HonorGPC == nil || *p.HonorGPC }

// DNT reports whether DNT: 1 opts a visitor out.
func (p Privacy) DNT() bool { return p.HonorDNT != nil && *p.HonorDNT }

// APIKey grants access to some sites' data. Only the key's SHA-256 is
// stored.
type APIKey struct {
	Name   string   `yaml:"name"`
	SHA256 string   `yaml:"sha256"`
	Sites  []string `yaml:"sites"`
	// Scopes are what the key may do (keys.go): stats, email, subjects.
	// Default stats and email; subjects only when listed.
	Scopes []string `yaml:"scopes"`
}

// Email configures signed email links and open pixels (collector/email).
// Without signing keys the email endpoints are off.
type Email struct {
	// SigningKeys sign and verify email tokens with HMAC-SHA256. The first
	// key signs; every key verifies, so a key is rotated by putting a new
	// one first and removing the old one once its links have expired.
	SigningKeys []SigningKey `yaml:"signing_keys"`
}

// SigningKey is one email signing secret, given in the file or, better,
// named by an environment variable.
type SigningKey struct {
	Name      string `yaml:"name"`       // appears in logs; required
	Secret    string `yaml:"secret"`     // at least MinSigningKeyLen bytes
	SecretEnv string `yaml:"secret_env"` // or: the environment variable holding it
}

// MinSigningKeyLen is the shortest accepted email signing secret: 32 bytes,
// the HMAC-SHA256 output size (e.g. openssl rand -base64 32 gives 44).
const MinSigningKeyLen = 32

// Keys returns the signing secrets in order (the first signs), resolved
// from the file or the environment by Parse.
func (e Email) Keys() [][]byte {
	out := make([][]byte, 0, len(e.SigningKeys))
	for _, k := range e.SigningKeys {
		out = append(out, []byte(k.Secret))
	}
	return out
}

// Defaults.
const (
	DefaultK               = 5
	DefaultRetentionMonths = 25
	// DefaultEpsilon and DefaultBudget: a site with a few thousand daily
	// visitors sees its visitors, visits and page views within 1% (README,
	// "Disclosure control"), and a reader can release 10,000 numbers a
	// day.
	DefaultEpsilon = 0.5
	DefaultBudget  = 5000
	// MaxEpsilon bounds epsilon: beyond it the noise protects nothing.
	MaxEpsilon = 10
)

// Error is a validation error at a place in the file.
type Error struct {
	File  string
	Line  int
	Field string // e.g. sites[0].privacy.mode
	Msg   string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		b.WriteString(":" + strconv.Itoa(e.Line))
	}
	b.WriteString(": ")
	if e.Field != "" {
		b.WriteString(e.Field + ": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Load reads and validates the sites file at path.
func Load(path string) (*File, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read sites file: %w (set --config or GLIMPSE_CONFIG)", err)
	}
	return Parse(path, b)
}

var yamlLine = regexp.MustCompile(`^line (\d+): (.*)$`)
var unknownField = regexp.MustCompile(`^field (\S+) not found in type config\.(\w+)$`)

// Parse validates the sites file content b; name is used in errors.
func Parse(name string, b []byte) (*File, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(b, &root); err != nil {
		return nil, typeError(name, strings.TrimPrefix(err.Error(), "yaml: "))
	}
	var f File
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		var te *yaml.TypeError
		if errors.As(err, &te) && len(te.Errors) > 0 {
			var errs []error
			for _, msg := range te.Errors {
				errs = append(errs, typeError(name, msg))
			}
			return nil, errors.Join(errs...)
		}
		return nil, &Error{File: name, Msg: strings.TrimPrefix(err.Error(), "yaml: ")}
	}
	v := validator{name: name, root: &root}
	v.file(&f)
	if len(v.errs) > 0 {
		return nil, errors.Join(v.errs...)
	}
	f.byHost = make(map[string]*Site)
	for i := range f.Sites {
		s := &f.Sites[i]
		f.byHost[strings.TrimPrefix(s.Domain, "www.")] = s
		for _, a := range s.Aliases {
			f.byHost[strings.TrimPrefix(a, "www.")] = s
		}
	}
	f.keys = newKeys(f.APIKeys)
	return &f, nil
}

func typeError(name, msg string) error {
	m := yamlLine.FindStringSubmatch(msg)
	if m == nil {
		return &Error{File: name, Msg: msg}
	}
	line, _ := strconv.Atoi(m[1])
	text := m[2]
	if u := unknownField.FindStringSubmatch(text); u != nil {
		text = fmt.Sprintf("unknown field %q in %s", u[1], strings.ToLower(u[2]))
	}
	return &Error{File: name, Line: line, Msg: text}
}

type validator struct {
	name string
	root *yaml.Node
	errs []error
}

// fail records an error at the YAML node found by path (keys and indexes).
func (v *validator) fail(path []any, format string, args ...any) {
	v.errs = append(v.errs, &Error{File: v.name, Line: lineOf(v.root, path), Field: fieldName(path), Msg: fmt.Sprintf(format, args...)})
}

// named checks the name of the item at: present (names appear in logs)
// and used by no other item in names, which it joins. of narrows "another
// what", e.g. "of this site".
func (v *validator) named(at []any, name string, names map[string]bool, what, of string) {
	switch {
	case name == "":
		v.fail(append(at, "name"), "missing; name each %s (it appears in logs)", what)
	case names[name]:
		v.fail(append(at, "name"), "%q is used by another %s", name, strings.TrimSpace(what+" "+of))
	}
	names[name] = true
}

func fieldName(path []any) string {
	var b strings.Builder
	for _, p := range path {
		switch p := p.(type) {
		case string:
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			b.WriteString(p)
		case int:
			b.WriteString("[" + strconv.Itoa(p) + "]")
		}
	}
	return b.String()
}

// lineOf finds the line of the deepest node on path that exists.
func lineOf(root *yaml.Node, path []any) int {
	n := root
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	line := n.Line
	for _, p := range path {
		var next *yaml.Node
		switch p := p.(type) {
		case string:
			if n.Kind == yaml.MappingNode {
				for i := 0; i+1 < len(n.Content); i += 2 {
					if n.Content[i].Value == p {
						line = n.Content[i].Line
						next = n.Content[i+1]
					}
				}
			}
		case int:
			if n.Kind == yaml.SequenceNode && p < len(n.Content) {
				next = n.Content[p]
				line = next.Line
			}
		}
		if next == nil {
			return line
		}
		n = next
	}
	if n.Kind == yaml.ScalarNode {
		return n.Line
	}
	return line
}

var hostLabel = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// validHost reports whether s is a lower-case host name without scheme,
// port or path.
func validHost(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for _, l := range strings.Split(s, ".") {
		if !hostLabel.MatchString(l) {
			return false
		}
	}
	return true
}

func (v *validator) file(f *File) {
	if len(f.Sites) == 0 {
		v.fail([]any{"sites"}, "no sites configured; add at least one site with a domain")
	}
	seen := map[string]string{}
	tokens := map[string]string{}
	for i := range f.Sites {
		v.site(f, i, seen)
		v.sharedLinks(&f.Sites[i], []any{"sites", i}, tokens)
	}
	v.users(f)
	v.email(&f.Email)
	if f.SMTP != nil {
		v.smtp(f.SMTP)
	}
	for i := range f.Sites {
		v.reports(f, &f.Sites[i], []any{"sites", i})
		v.funnels(&f.Sites[i], []any{"sites", i})
	}
	keyNames := map[string]bool{}
	for i, k := range f.APIKeys {
		at := []any{"api_keys", i}
		v.named(at, k.Name, keyNames, "key", "")
		if len(k.SHA256) != 64 || strings.Trim(strings.ToLower(k.SHA256), "0123456789abcdef") != "" {
			v.fail(append(at, "sha256"), "want the 64 hex digits of the key's SHA-256 (e.g. printf %%s KEY | sha256sum), not the key")
		}
		if len(k.Sites) == 0 {
			v.fail(append(at, "sites"), "list the site domains this key may read")
		}
		for j, s := range k.Sites {
			if _, ok := seen[s]; !ok {
				v.fail(append(at, "sites", j), "%q is not a configured site domain", s)
			}
		}
		for j, s := range k.Scopes {
			if !slices.Contains(Scopes, s) {
				v.fail(append(at, "scopes", j), "%q is not a scope; want %s", s, strings.Join(Scopes, ", "))
			}
		}
	}
}

// getenv is os.Getenv, replaced in tests.
var getenv = os.Getenv

func (v *validator) email(e *Email) {
	names := map[string]bool{}
	secrets := map[string]int{}
	for i := range e.SigningKeys {
		k := &e.SigningKeys[i]
		at := []any{"email", "signing_keys", i}
		v.named(at, k.Name, names, "key", "")
		switch {
		case k.Secret != "" && k.SecretEnv != "":
			v.fail(append(at, "secret"), "give either secret or secret_env, not both")
			continue
		case k.SecretEnv != "":
			k.Secret = getenv(k.SecretEnv)
			if k.Secret == "" {
				v.fail(append(at, "secret_env"), "environment variable %s is empty or not set", k.SecretEnv)
				continue
			}
		case k.Secret == "":
			v.fail(append(at, "secret"), "missing; set secret or secret_env (e.g. openssl rand -base64 32)")
			continue
		}
		if len(k.Secret) < MinSigningKeyLen {
			v.fail(append(at, "secret"), "%d bytes is too short; use at least %d random bytes (e.g. openssl rand -base64 32)", len(k.Secret), MinSigningKeyLen)
			continue
		}
		if j, dup := secrets[k.Secret]; dup {
			v.fail(append(at, "secret"), "same secret as email.signing_keys[%d]", j)
		}
		secrets[k.Secret] = i
	}
}

func (v *validator) site(f *File, i int, seen map[string]string) {
	s := &f.Sites[i]
	at := []any{"sites", i}
	if !validHost(s.Domain) {
		v.fail(append(at, "domain"), "%q is not a bare lower-case host name like example.com (no scheme, port or path)", s.Domain)
	} else if prev, dup := seen[s.Domain]; dup {
		v.fail(append(at, "domain"), "%q is already used by %s", s.Domain, prev)
	} else {
		seen[s.Domain] = fieldName(at)
	}
	for j, a := range s.Aliases {
		if !validHost(a) {
			v.fail(append(at, "aliases", j), "%q is not a bare lower-case host name", a)
		} else if prev, dup := seen[a]; dup {
			v.fail(append(at, "aliases", j), "%q is already used by %s", a, prev)
		} else {
			seen[a] = fieldName(at)
		}
	}
	if s.Timezone == "" {
		s.Timezone = "UTC"
	}
	loc, err := time.LoadLocation(s.Timezone)
	if err != nil || strings.ContainsAny(s.Timezone, " ") {
		v.fail(append(at, "timezone"), "unknown time zone %q; use an IANA name like Europe/Berlin", s.Timezone)
	}
	s.Location = loc
	p := &s.Privacy
	pat := append(at, "privacy")
	switch p.Mode {
	case "":
		p.Mode = ModeStrict
	case ModeStrict, ModeAggregate, ModeConsented:
	default:
		v.fail(append(pat, "mode"), "unknown privacy mode %q (want strict, aggregate or consented)", p.Mode)
	}
	v.subjectKey(p, pat)
	v.aggregates(p, pat)
	switch {
	case p.KAnonymity == 0:
		p.KAnonymity = DefaultK
	case p.KAnonymity < 2:
		v.fail(append(pat, "k_anonymity"), "%d is below 2; k-anonymity needs groups of at least 2 visitors", p.KAnonymity)
	}
	switch {
	case p.RetentionMonths == 0:
		p.RetentionMonths = DefaultRetentionMonths
	case p.RetentionMonths < 1:
		v.fail(append(pat, "retention_months"), "%d must be at least 1", p.RetentionMonths)
	}
	switch p.Geo {
	case "":
		p.Geo = GeoRegion
	case GeoCountry, GeoRegion, GeoCity:
	default:
		v.fail(append(pat, "geo"), "unknown geo precision %q (want country, region or city)", p.Geo)
	}
	for j, k := range s.QueryAllow {
		if k == "" || strings.ContainsAny(k, "&=?# ") {
			v.fail(append(at, "query_allow", j), "%q is not a query parameter name", k)
		} else if w := secretQueryKey(k); w != "" {
			v.fail(append(at, "query_allow", j),
				"%q may carry a secret or personal data (it names %q): kept values are stored in page URLs and shown in reports; remove it", k, w)
		}
	}
	for j, o := range s.OptOutFrameAncestors {
		if !validFrameAncestor(o) {
			v.fail(append(at, "optout_frame_ancestors", j),
				"%q is not an origin like https://example.com or https://*.example.com (lower-case scheme and host, an optional port, no path)", o)
		}
	}
}

// validFrameAncestor reports whether s is an origin usable as a CSP
// frame-ancestors source: http or https, a host name (optionally starting
// with "*." for its subdomains) or an IP literal, an optional port, nothing
// else. Keywords such as 'self' and a bare * are refused: the list names
// the sites that may frame the page.
func validFrameAncestor(s string) bool {
	rest, ok := strings.CutPrefix(s, "https://")
	if !ok {
		if rest, ok = strings.CutPrefix(s, "http://"); !ok {
			return false
		}
	}
	host, port, hasPort := strings.Cut(rest, ":")
	if strings.HasPrefix(host, "[") { // IPv6 literal
		end := strings.IndexByte(rest, ']')
		if end < 0 {
			return false
		}
		if _, err := netip.ParseAddr(rest[1:end]); err != nil {
			return false
		}
		host, port, hasPort = "", "", false
		switch after := rest[end+1:]; {
		case after == "":
		case strings.HasPrefix(after, ":"):
			port, hasPort = after[1:], true
		default:
			return false
		}
	} else {
		host = strings.TrimPrefix(host, "*.")
		if !validHost(host) {
			return false
		}
	}
	if hasPort {
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 || strconv.Itoa(n) != port {
			return false
		}
	}
	return true
}

// Lookup finds the site for a domain or alias (case-insensitive, a leading
// "www." folded). It allocates nothing.
func (f *File) Lookup(host []byte) *Site {
	if len(host) > 253 {
		return nil
	}
	var buf [253]byte
	h := buf[:len(host)]
	for i, c := range host {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		h[i] = c
	}
	if len(h) > 4 && string(h[:4]) == "www." {
		h = h[4:]
	}
	return f.byHost[string(h)]
}

// Site returns the site with exactly this domain, or nil.
func (f *File) Site(domain string) *Site {
	for i := range f.Sites {
		if f.Sites[i].Domain == domain {
			return &f.Sites[i]
		}
	}
	return nil
}
