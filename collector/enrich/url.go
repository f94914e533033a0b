package enrich

import (
	"bytes"
	"errors"

	"github.com/glimpse-analytics/glimpse/collector/redact"
)

const (
	// MaxURLLength is the longest page URL (and referrer) accepted, in
	// bytes. Longer URLs are almost always query-string tracking junk.
	MaxURLLength = 4096

	// MaxHostLength is the longest host name accepted (RFC 1035).
	MaxHostLength = 253

	// MaxValueLength bounds each stored query value (UTM fields, ref and
	// allowlisted parameters); longer values are cut at a rune boundary.
	MaxValueLength = 256

	// maxKeyLength bounds query keys that are compared at all; longer keys
	// cannot be one of ours and are dropped.
	maxKeyLength = 64
)

// Errors returned by URLPolicy.Clean. They never contain the URL itself.
var (
	ErrURLTooLong = errors.New("page URL is longer than 4096 bytes")
	ErrURLScheme  = errors.New("page URL is not an absolute http or https URL")
	ErrURLHost    = errors.New("page URL has a missing or malformed host")
)

// URLPolicy is a site's URL cleaning policy.
type URLPolicy struct {
	// Allow lists extra query keys the site keeps (for example "page" or
	// "lang"), matched case-insensitively. Keys with characters outside
	// [A-Za-z0-9._-] are ignored. Click identifiers and utm_* keys are never
	// kept in the query, even if listed.
	Allow []string
	// HashMode keeps the URL fragment ("#/route") in the path, for
	// single-page apps that route on the fragment. Any "?", "&" or "="
	// part of the fragment is dropped.
	HashMode bool
	// Redactor removes personal data and secrets from the path and the
	// kept values, and counts what it removes. Nil redacts the same and
	// counts nothing.
	Redactor *redact.Redactor
}

// PageURL receives a cleaned page URL. All slices are appended into the
// struct's own buffers, so a caller that keeps a PageURL in a pooled
// struct and calls Reset between requests allocates nothing once the
// buffers have grown.
type PageURL struct {
	// Host is the lower-cased host name without port or trailing dot
	// (IPv6 literals keep their brackets). "www." is kept.
	Host []byte
	// Path is the cleaned path, starting with '/', percent-decoded where
	// safe, redacted (collector/redact); in hash mode it is followed by
	// "#fragment".
	Path []byte
	// Query holds the kept query parameters without the leading '?':
	// "ref", "source" and the allowlisted keys, in that order, first
	// occurrence each, values cleaned and re-encoded. Empty if none.
	Query []byte

	// UTM parameters, decoded, sanitised, redacted, at most
	// MaxValueLength bytes each.
	UTMSource, UTMMedium, UTMCampaign, UTMTerm, UTMContent []byte

	// Ref is the value of the first non-empty "ref" or "source" parameter
	// (cleaned like a UTM value): a source named by the link itself.
	Ref []byte

	// ClickSource names the ad or social network whose click identifier
	// (gclid, fbclid, msclkid, ...) was on the URL, or is "". The
	// identifier itself is never stored.
	ClickSource string
	// ClickChannel is the channel the click identifier implies
	// (ChannelPaid for search ads, ChannelPaidSocial for social networks'
	// ads, or ChannelSocial for fbclid, which Facebook adds to organic
	// links too), or "".
	ClickChannel Channel

	scratch, scratch2, value []byte
}

// Reset clears u for reuse, keeping its buffers.
func (u *PageURL) Reset() {
	*u = PageURL{
		Host:        u.Host[:0],
		Path:        u.Path[:0],
		Query:       u.Query[:0],
		UTMSource:   u.UTMSource[:0],
		UTMMedium:   u.UTMMedium[:0],
		UTMCampaign: u.UTMCampaign[:0],
		UTMTerm:     u.UTMTerm[:0],
		UTMContent:  u.UTMContent[:0],
		Ref:         u.Ref[:0],
		scratch:     u.scratch[:0],
		scratch2:    u.scratch2[:0],
		value:       u.value[:0],
	}
}

// clickIDs maps click-identifier query keys to the network they name.
// Ad networks append them to landing-page URLs; they identify a single
// click and are never stored.
var clickIDs = []struct {
	key     string
	source  string
	channel Channel
}{
	{"gclid", "Google Ads", ChannelPaid},
	{"gbraid", "Google Ads", ChannelPaid},
	{"wbraid", "Google Ads", ChannelPaid},
	{"dclid", "Google Ads", ChannelPaid},
	{"gclsrc", "Google Ads", ChannelPaid},
	{"fbclid", "Facebook", ChannelSocial},
	{"msclkid", "Microsoft Ads", ChannelPaid},
	{"ttclid", "TikTok", ChannelPaidSocial},
	{"twclid", "Twitter", ChannelPaidSocial},
	{"li_fat_id", "LinkedIn", ChannelPaidSocial},
	{"yclid", "Yandex Ads", ChannelPaid},
	{"epik", "Pinterest", ChannelPaidSocial},
	{"sccid", "Snapchat", ChannelPaidSocial},
	{"rdt_cid", "Reddit", ChannelPaidSocial},
	{"irclickid", "Impact", ChannelPaid},
}

func lookupClickID[B []byte | string](key B) int {
	for i := range clickIDs {
		if equalFold(key, clickIDs[i].key) {
			return i
		}
	}
	return -1
}

// Clean parses the absolute page URL raw and appends its cleaned form into
// dst, which it resets first. A nil policy keeps only the built-in keys.
// Clean allocates nothing once dst's buffers have grown. On error dst is
// left reset.
func (p *URLPolicy) Clean(dst *PageURL, raw []byte) error {
	dst.Reset()
	if len(raw) > MaxURLLength {
		return ErrURLTooLong
	}
	rest, ok := cutHTTPScheme(trimSpace(raw))
	if !ok {
		return ErrURLScheme
	}
	host, rest, ok := splitAuthority(rest)
	if !ok {
		return ErrURLHost
	}
	dst.Host = appendLower(dst.Host, host)

	path, query, fragment := splitPathQueryFragment(rest)

	var rd *redact.Redactor
	if p != nil {
		rd = p.Redactor
	}
	dst.Path, dst.scratch = appendCleanPath(dst.Path, dst.scratch, path, rd)

	if p != nil && p.HashMode {
		if i := bytes.IndexAny(fragment, "?&="); i >= 0 {
			fragment = fragment[:i]
		}
		if len(fragment) > 0 {
			dst.scratch = appendDecodedPath(dst.scratch[:0], fragment)
			dst.Path = append(dst.Path, '#')
			dst.Path = rd.AppendPath(dst.Path, dst.scratch)
		}
	}

	if len(query) > 0 {
		p.cleanQuery(dst, query, rd)
	}
	return nil
}

// splitAuthority splits "user@host:port/rest" into the validated host and
// the rest starting at the first '/', '?' or '#'.
func splitAuthority(s []byte) (host, rest []byte, ok bool) {
	end := 0
	for end < len(s) && s[end] != '/' && s[end] != '?' && s[end] != '#' && s[end] != '\\' {
		end++
	}
	auth, rest := s[:end], s[end:]
	if i := bytes.LastIndexByte(auth, '@'); i >= 0 {
		auth = auth[i+1:]
	}
	var port []byte
	if len(auth) > 0 && auth[0] == '[' {
		i := bytes.IndexByte(auth, ']')
		if i < 0 {
			return nil, nil, false
		}
		host, port = auth[:i+1], auth[i+1:]
		if !validIPv6Literal(host) {
			return nil, nil, false
		}
	} else {
		host = auth
		if i := bytes.IndexByte(auth, ':'); i >= 0 {
			host, port = auth[:i], auth[i:]
		}
		for len(host) > 0 && host[len(host)-1] == '.' {
			host = host[:len(host)-1]
		}
		if !validHostName(host) {
			return nil, nil, false
		}
	}
	if len(port) > 0 {
		if port[0] != ':' || len(port) > 6 {
			return nil, nil, false
		}
		for _, c := range port[1:] {
			if !isDigit(c) {
				return nil, nil, false
			}
		}
	}
	return host, rest, true
}

// validHostName accepts host names of letters, digits, '-', '_' and '.',
// which covers DNS names, punycode and IPv4 literals.
func validHostName(h []byte) bool {
	if len(h) == 0 || len(h) > MaxHostLength || h[0] == '.' {
		return false
	}
	for _, c := range h {
		if !isAlnum(c) && c != '-' && c != '_' && c != '.' {
			return false
		}
	}
	return true
}

func validIPv6Literal(h []byte) bool {
	if len(h) < 4 || len(h) > 48 {
		return false
	}
	for _, c := range h[1 : len(h)-1] {
		if !isHex(c) && c != ':' && c != '.' {
			return false
		}
	}
	return true
}

// splitPathQueryFragment splits "/path?query#fragment".
func splitPathQueryFragment(s []byte) (path, query, fragment []byte) {
	if i := bytes.IndexByte(s, '#'); i >= 0 {
		s, fragment = s[:i], s[i+1:]
	}
	if i := bytes.IndexByte(s, '?'); i >= 0 {
		s, query = s[:i], s[i+1:]
	}
	return s, query, fragment
}

// nextParam cuts the first "key=value" pair off q.
func nextParam(q []byte) (key, value, rest []byte) {
	pair := q
	if i := bytes.IndexByte(q, '&'); i >= 0 {
		pair, rest = q[:i], q[i+1:]
	}
	key = pair
	if i := bytes.IndexByte(pair, '='); i >= 0 {
		key, value = pair[:i], pair[i+1:]
	}
	return key, value, rest
}

// decodeKey decodes a query key into buf; ok is false for keys too long to
// be one of ours.
func decodeKey(buf *[maxKeyLength]byte, key []byte) ([]byte, bool) {
	if len(key) > 3*maxKeyLength {
		return nil, false
	}
	if bytes.IndexByte(key, '%') < 0 && bytes.IndexByte(key, '+') < 0 {
		return key, len(key) <= maxKeyLength
	}
	var tmp [3 * maxKeyLength]byte
	out := appendDecodedValue(tmp[:0], key)
	if len(out) > maxKeyLength {
		return nil, false
	}
	return buf[:copy(buf[:], out)], true
}

// utmField returns the PageURL field for a utm_* key, or nil.
func (u *PageURL) utmField(key []byte) *[]byte {
	if !hasPrefixFold(key, "utm_") {
		return nil
	}
	switch k := key[len("utm_"):]; {
	case equalFold(k, "source"):
		return &u.UTMSource
	case equalFold(k, "medium"):
		return &u.UTMMedium
	case equalFold(k, "campaign"):
		return &u.UTMCampaign
	case equalFold(k, "term"):
		return &u.UTMTerm
	case equalFold(k, "content"):
		return &u.UTMContent
	}
	return nil
}

// appendValue appends the cleaned form of the raw query value v: decoded,
// sanitised, redacted and cut to MaxValueLength.
func (u *PageURL) appendValue(dst, v []byte, rd *redact.Redactor) []byte {
	start := len(dst)
	if allIn(plainValueBytes, v) {
		// Decoding and sanitising leave v as it is.
		dst = rd.AppendText(dst, v)
	} else {
		u.scratch = appendDecodedValue(u.scratch[:0], v)
		u.scratch2 = appendSanitized(u.scratch2[:0], u.scratch)
		dst = rd.AppendText(dst, u.scratch2)
	}
	return dst[:start+len(truncateUTF8(dst[start:], MaxValueLength))]
}

// builtinKept are the query keys every site keeps.
var builtinKept = [...]string{"ref", "source"}

// cleanQuery extracts UTM fields, ref, the click source and the kept query.
func (p *URLPolicy) cleanQuery(dst *PageURL, query []byte, rd *redact.Redactor) {
	var allow []string
	if p != nil {
		allow = p.Allow
	}
	// present has bit i set when kept key i (builtinKept, then allow)
	// occurs in query, so that the query is scanned again only for keys it
	// has. Keys past the mask's width are always looked for.
	var present uint64
	const maskBits = 64
	var kb [maxKeyLength]byte
	for q := query; len(q) > 0; {
		rawKey, value, rest := nextParam(q)
		q = rest
		key, ok := decodeKey(&kb, rawKey)
		if !ok || len(key) == 0 {
			continue
		}
		if f := dst.utmField(key); f != nil {
			if len(*f) == 0 {
				*f = dst.appendValue(*f, value, rd)
			}
			continue
		}
		if i := lookupClickID(key); i >= 0 {
			if dst.ClickSource == "" && len(trimSpace(value)) > 0 {
				dst.ClickSource, dst.ClickChannel = clickIDs[i].source, clickIDs[i].channel
			}
			continue
		}
		if b := builtinIndex(key); b >= 0 {
			if len(dst.Ref) == 0 {
				dst.Ref = dst.appendValue(dst.Ref, value, rd)
			}
			present |= 1 << b
			continue
		}
		for i, k := range allow {
			if i+len(builtinKept) >= maskBits {
				break
			}
			if equalFold(key, k) {
				present |= 1 << (i + len(builtinKept))
			}
		}
	}

	// Kept query: canonical order, first non-empty occurrence of each key.
	for i, k := range builtinKept {
		if present&(1<<i) != 0 {
			dst.appendKept(query, k, rd)
		}
	}
	for i, k := range allow {
		j := i + len(builtinKept)
		if j < maskBits && present&(1<<j) == 0 ||
			!validAllowKey(k) || isBuiltinKey(k) || containsFold(allow[:i], k) {
			continue
		}
		dst.appendKept(query, k, rd)
	}
}

// appendKept appends "name=value" for the first occurrence of name in
// query that has a non-empty cleaned value.
func (u *PageURL) appendKept(query []byte, name string, rd *redact.Redactor) {
	var kb [maxKeyLength]byte
	for q := query; len(q) > 0; {
		rawKey, value, rest := nextParam(q)
		q = rest
		key, ok := decodeKey(&kb, rawKey)
		if !ok || !equalFold(key, name) {
			continue
		}
		u.value = u.appendValue(u.value[:0], value, rd)
		if len(u.value) == 0 {
			continue
		}
		if len(u.Query) > 0 {
			u.Query = append(u.Query, '&')
		}
		u.Query = append(u.Query, name...)
		u.Query = append(u.Query, '=')
		u.Query = appendQueryEscaped(u.Query, u.value)
		return
	}
}

// builtinIndex returns the index of key in builtinKept, or -1.
func builtinIndex(key []byte) int {
	for i, b := range builtinKept {
		if equalFold(key, b) {
			return i
		}
	}
	return -1
}

// isBuiltinKey reports keys that the allowlist must not add to the kept
// query: the built-in kept keys, utm_* and click identifiers.
func isBuiltinKey(k string) bool {
	for _, b := range builtinKept {
		if equalFold(k, b) {
			return true
		}
	}
	return hasPrefixFold(k, "utm_") || lookupClickID(k) >= 0
}

// validAllowKey reports whether an allowlist entry can be emitted as a
// query key verbatim.
func validAllowKey(k string) bool {
	if k == "" || len(k) > maxKeyLength {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !isAlnum(c) && c != '_' && c != '-' && c != '.' {
			return false
		}
	}
	return true
}

func containsFold(list []string, k string) bool {
	for _, s := range list {
		if equalFold(s, k) {
			return true
		}
	}
	return false
}

// appendCleanPath decodes path where safe, makes it start with '/', redacts
// it with rd, and appends it to dst. scratch is a buffer the caller reuses;
// both are returned grown.
func appendCleanPath(dst, scratch, path []byte, rd *redact.Redactor) ([]byte, []byte) {
	decoded := path // appendDecodedPath leaves such a path as it is
	if !allIn(plainPathBytes, path) {
		scratch = appendDecodedPath(scratch[:0], path)
		decoded = scratch
	}
	if len(decoded) == 0 || decoded[0] != '/' {
		dst = append(dst, '/')
	}
	return rd.AppendPath(dst, decoded), scratch
}

// cutHTTPScheme removes a case-insensitive "http://" or "https://" and
// reports whether one was there.
func cutHTTPScheme(raw []byte) ([]byte, bool) {
	switch {
	case hasPrefixFold(raw, "https://"):
		return raw[len("https://"):], true
	case hasPrefixFold(raw, "http://"):
		return raw[len("http://"):], true
	}
	return nil, false
}
