package email

import (
	"errors"
	"net/url"
	"strings"
)

// ErrDestination is returned for a click destination Glimpse will not sign
// or redirect to.
var ErrDestination = errors.New("destination: want an absolute http or https URL with a host name and no user info, whitespace, control characters or backslashes")

// CheckDestination reports whether raw may be the destination of a click
// token. Only absolute http(s) URLs with a host qualify; everything that
// browsers are known to read differently from Go's parser is refused
// outright rather than normalised: backslashes (browsers treat them as
// slashes), whitespace and control characters (browsers strip them, so
// "java\tscript:" is javascript:), user info ("https://good@evil"),
// schemes in any case other than lower, and a missing or empty host
// ("https:/evil", "https:///evil"). The check runs when a link is minted
// and again before every redirect.
func CheckDestination(raw string) error {
	if raw == "" || len(raw) > maxURLLen {
		return ErrDestination
	}
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if c <= ' ' || c == 0x7f || c == '\\' || c >= 0x80 {
			return ErrDestination
		}
	}
	var rest string
	switch {
	case strings.HasPrefix(raw, "https://"):
		rest = raw[len("https://"):]
	case strings.HasPrefix(raw, "http://"):
		rest = raw[len("http://"):]
	default:
		return ErrDestination
	}
	if rest == "" || rest[0] == '/' {
		return ErrDestination
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Opaque != "" || u.User != nil {
		return ErrDestination
	}
	host := u.Hostname()
	if host == "" || strings.ContainsAny(u.Host, "@%") {
		return ErrDestination
	}
	// The authority ends at the first of / ? #: anything Go's parser saw
	// as the host must be exactly what precedes it in raw.
	end := strings.IndexAny(rest, "/?#")
	if end < 0 {
		end = len(rest)
	}
	if rest[:end] != u.Host {
		return ErrDestination
	}
	return nil
}

// NormalizeDestination prepares a URL from an email for signing: it trims
// surrounding whitespace, lower-cases the scheme and percent-encodes a
// non-ASCII path or query the way browsers send them, then applies
// CheckDestination to the result. It never turns a refused shape into an
// accepted one by guessing (a backslash or a control character stays an
// error).
func NormalizeDestination(raw string) (string, error) {
	raw = strings.TrimSpace(raw)
	if strings.ContainsAny(raw, "\\\t\r\n") {
		return "", ErrDestination
	}
	if i := strings.Index(raw, "://"); i > 0 {
		raw = strings.ToLower(raw[:i]) + raw[i:]
	}
	if u, err := url.Parse(raw); err == nil && u.User == nil && u.Opaque == "" {
		u.RawQuery = escapeNonASCII(u.RawQuery)
		raw = u.String()
	}
	if err := CheckDestination(raw); err != nil {
		return "", err
	}
	return raw, nil
}

// escapeNonASCII percent-encodes bytes outside printable ASCII.
func escapeNonASCII(s string) string {
	const hexDigits = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f {
			b.WriteByte('%')
			b.WriteByte(hexDigits[c>>4])
			b.WriteByte(hexDigits[c&15])
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}
