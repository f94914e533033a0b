package enrich

import (
	"bytes"
	_ "embed"
	"fmt"
	"strings"

	"github.com/glimpse-analytics/glimpse/collector/redact"
	"github.com/glimpse-analytics/glimpse/internal/model"
)

// Channel is the acquisition channel of a visit.
type Channel string

// Channels, in the vocabulary stored in ClickHouse (model.Dimensions'
// visit:channel).
const (
	ChannelDirect     Channel = model.ChannelDirect
	ChannelSearch     Channel = model.ChannelOrganicSearch
	ChannelSocial     Channel = model.ChannelOrganicSocial
	ChannelEmail      Channel = model.ChannelEmail
	ChannelPaid       Channel = model.ChannelPaidSearch
	ChannelPaidSocial Channel = model.ChannelPaidSocial
	ChannelReferral   Channel = model.ChannelReferral
)

// sections maps the [section] headers of the sources table to channels.
var sections = map[string]Channel{
	"search": ChannelSearch, "social": ChannelSocial, "email": ChannelEmail,
	"paid": ChannelPaid, "referral": ChannelReferral,
}

// Referrer receives a cleaned and classified referrer. Host and Path are
// appended into the struct's own buffers, so a caller that keeps a
// Referrer in a pooled struct and calls Reset between requests allocates
// nothing once the buffers have grown.
type Referrer struct {
	// Host is the lower-cased referrer host without port or userinfo, or
	// the package name of an android-app:// referrer. Empty for no
	// referrer, a self-referral or an unusable referrer.
	Host []byte
	// Path is the referrer path, cleaned like a page path (decoded where
	// safe, redacted), without query or fragment: the referrer's query is
	// never stored. Empty when Host is empty or for app referrers.
	Path []byte
	// Source is a readable source name ("Google", "Facebook", "Gmail",
	// "Google Ads", ...) from the sources table or the click-identifier table;
	// for any other external referrer, as in Plausible, its Host without a
	// leading "www." ("news.example.org"); "" when there is neither
	// (Direct / None).
	Source string
	// Channel is never empty: ChannelDirect when nothing points elsewhere.
	Channel Channel

	scratch []byte
	// hosts holds the Source strings of unknown hosts this Referrer has
	// seen, so that a pooled Referrer allocates a host's string once;
	// bounded by maxHostSources entries of at most maxHostSourceLen bytes.
	hosts map[string]string
}

// Reset clears r for reuse, keeping its buffers.
func (r *Referrer) Reset() {
	*r = Referrer{Host: r.Host[:0], Path: r.Path[:0], scratch: r.scratch[:0], hosts: r.hosts}
}

// Bounds of Referrer.hosts: a few KiB per pooled Referrer, whatever
// referrers a client makes up.
const (
	maxHostSources   = 32
	maxHostSourceLen = 64
)

// hostSource returns Host without a leading "www." as a string.
func (r *Referrer) hostSource() string {
	h := stripWWW(r.Host)
	if s, ok := r.hosts[string(h)]; ok {
		return s
	}
	s := string(h)
	if len(s) > maxHostSourceLen {
		return s
	}
	if r.hosts == nil {
		r.hosts = make(map[string]string, maxHostSources)
	} else if len(r.hosts) >= maxHostSources {
		clear(r.hosts) // start over rather than grow
	}
	r.hosts[s] = s
	return s
}

// ClassifyReferrer cleans the raw referrer (document.referrer or the
// Referer header) and classifies the visit's source and channel into dst,
// which it resets first.
//
// page is the visit's cleaned page URL (it may be nil): its host, UTM
// fields, ref and click identifier take part in the decision. site lists
// the site's domain and aliases; a referrer on the page host or any of them
// ("www." folded) is a self-referral and yields no referrer. rd redacts
// the path and counts what it removes (nil: redact, count nothing).
//
// Channel precedence: a recognised utm_medium (cpc/ppc/paid*/display →
// Paid Search, email/newsletter → Email, social → Organic Social,
// organic → Organic Search), then a click identifier, then the referrer
// host in the sources table, then Referral for any other external referrer,
// then a known utm_source or ref name, then Direct. A paid visit from a
// social network (by referrer, click identifier or utm_source) is Paid
// Social, as Plausible names it.
//
// Source precedence: a paid click identifier's network, then the
// referrer host's name in the sources table, then an organic click identifier,
// then a known utm_source or ref name, then the host of any other
// external referrer, else "".
//
// ClassifyReferrer allocates nothing once dst's buffers have grown and dst
// has seen the referrer's host.
func ClassifyReferrer(dst *Referrer, raw []byte, page *PageURL, site []string, rd *redact.Redactor) {
	dst.Reset()
	var src *source
	if dst.parse(raw, rd) {
		switch {
		case len(dst.Path) == 0 && isAppReferrer(raw):
			src = defaultSources.apps[string(dst.Host)]
		case isSelfReferral(dst.Host, page, site):
			dst.Host, dst.Path = dst.Host[:0], dst.Path[:0]
		default:
			src = defaultSources.lookupPath(dst.Host, dst.Path)
		}
	}

	var medium Channel
	var named *source
	if page != nil {
		medium = mediumChannel(page.UTMMedium)
		named = defaultSources.lookupName(page.UTMSource)
		if named == nil {
			named = defaultSources.lookupName(page.Ref)
		}
	}

	// A paid click identifier names the campaign's network even when the
	// referrer is the network's organic host (gclid from google.com is
	// "Google Ads"); an organic one (fbclid) only fills a gap.
	click := ""
	if page != nil {
		click = page.ClickSource
	}
	switch {
	case click != "" && (page.ClickChannel == ChannelPaid || page.ClickChannel == ChannelPaidSocial):
		dst.Source = click
	case src != nil:
		dst.Source = src.name
	case click != "":
		dst.Source = click
	case named != nil:
		dst.Source = named.name
	case len(dst.Host) > 0:
		dst.Source = dst.hostSource()
	}

	switch {
	case medium != "":
		dst.Channel = medium
	case page != nil && page.ClickChannel != "":
		dst.Channel = page.ClickChannel
	case src != nil:
		dst.Channel = src.channel
	case len(dst.Host) > 0:
		dst.Channel = ChannelReferral
	case named != nil:
		dst.Channel = named.channel
	case page != nil && (len(page.UTMSource) > 0 || len(page.Ref) > 0):
		dst.Channel = ChannelReferral
	default:
		dst.Channel = ChannelDirect
	}
	if dst.Channel == ChannelPaid && (src != nil && src.channel == ChannelSocial ||
		named != nil && named.channel == ChannelSocial ||
		page != nil && (page.ClickChannel == ChannelSocial || page.ClickChannel == ChannelPaidSocial)) {
		dst.Channel = ChannelPaidSocial
	}
}

func isAppReferrer(raw []byte) bool {
	return hasPrefixFold(trimSpace(raw), "android-app://")
}

// parse fills Host and Path from an http(s) or android-app referrer and
// reports whether it found a usable one.
func (r *Referrer) parse(raw []byte, rd *redact.Redactor) bool {
	if len(raw) > MaxURLLength {
		return false
	}
	raw = trimSpace(raw)
	rest, ok := cutHTTPScheme(raw)
	switch {
	case ok:
	case hasPrefixFold(raw, "android-app://"):
		pkg := raw[len("android-app://"):]
		if i := bytes.IndexAny(pkg, "/?#"); i >= 0 {
			pkg = pkg[:i]
		}
		if !validPackage(pkg) {
			return false
		}
		r.Host = appendLower(r.Host, pkg)
		return true
	default:
		return false
	}
	host, rest, ok := splitAuthority(rest)
	if !ok {
		return false
	}
	r.Host = appendLower(r.Host, host)
	path, _, _ := splitPathQueryFragment(rest)
	r.Path, r.scratch = appendCleanPath(r.Path, r.scratch, path, rd)
	return true
}

// validPackage accepts Android application ids ("com.google.android.gm").
func validPackage(p []byte) bool {
	if len(p) == 0 || len(p) > 255 {
		return false
	}
	for _, c := range p {
		if !isAlnum(c) && c != '.' && c != '_' {
			return false
		}
	}
	return true
}

// isSelfReferral reports whether host is the page host or one of the site
// names, ignoring a leading "www." on either side and ASCII case.
func isSelfReferral(host []byte, page *PageURL, site []string) bool {
	h := stripWWW(host)
	if page != nil && len(page.Host) > 0 && equalFold(h, string(stripWWW(page.Host))) {
		return true
	}
	for _, s := range site {
		if equalFold(h, stripWWWString(s)) {
			return true
		}
	}
	return false
}

func stripWWW(h []byte) []byte {
	if hasPrefixFold(h, "www.") {
		return h[len("www."):]
	}
	return h
}

func stripWWWString(h string) string {
	if hasPrefixFold(h, "www.") {
		return h[len("www."):]
	}
	return h
}

// maxMediumLength bounds the utm_medium values that are classified.
const maxMediumLength = 32

// mediumChannel maps a utm_medium value to a channel, or "" if the value
// is not a recognised one (Google Analytics' default channel rules).
func mediumChannel(m []byte) Channel {
	m = trimSpace(m)
	if len(m) == 0 || len(m) > maxMediumLength {
		return ""
	}
	var buf [maxMediumLength]byte
	l := appendLower(buf[:0], m)
	switch string(l) {
	case "cpc", "ppc", "cpm", "cpv", "cpa", "cpp", "display", "banner", "retargeting", "remarketing", "ad", "ads", "sem":
		return ChannelPaid
	case "email", "e-mail", "e_mail", "e mail", "newsletter", "mail":
		return ChannelEmail
	case "social", "social-network", "social_network", "social network", "social-media", "social_media",
		"social media", "sm", "organic_social", "organic-social", "social-organic":
		return ChannelSocial
	case "organic", "seo":
		return ChannelSearch
	case "referral":
		return ChannelReferral
	}
	if hasPrefixFold(l, "paid") || len(l) > 3 && string(l[len(l)-3:]) == "cpc" {
		return ChannelPaid
	}
	return ""
}

// source is one entry of the sources table. Entries are immutable.
type source struct {
	name    string
	channel Channel
}

// pathSource is a "host/path" entry: referrers on the host (or a
// subdomain) whose path starts with prefix ("/imgres" on google.com is
// Google Images).
type pathSource struct {
	prefix string
	src    *source
}

// hostEntry is what the table knows about one host suffix: its source
// (nil if only host/path entries name it) and its host/path entries.
type hostEntry struct {
	src   *source
	paths []pathSource
}

// sourceTable is the immutable lookup structure built from the sources
// files.
type sourceTable struct {
	hosts map[string]*hostEntry // host suffix → its source and path entries
	wild  map[string]*source    // "google" for "google.*": any ccTLD-like suffix
	apps  map[string]*source    // Android application id → source
	names map[string]*source    // lower-case name or alias → source, for utm_source/ref
}

//go:generate go run ./internal/gensources

//go:embed sources_gen.txt
var sourcesGen string

//go:embed sources.local.txt
var sourcesLocal string

// defaultSources is the immutable table built at init from sources_gen.txt
// (generated from Snowplow's referer-parser list) and the local overlay
// sources.local.txt, which wins for a host both list.
var defaultSources = mustParseSources(sourcesGen, sourcesLocal)

func mustParseSources(files ...string) *sourceTable {
	t, err := parseSources(files...)
	if err != nil {
		panic("enrich: cannot parse the embedded sources: " + err.Error())
	}
	return t
}

// parseSources parses files in the the sources table format (see the header of
// sources.local.txt) into one table. A host, wildcard or app listed twice
// in one file is an error; a later file overrides an earlier one. For a
// name or alias, the first file's entry wins.
func parseSources(files ...string) (*sourceTable, error) {
	t := &sourceTable{
		hosts: map[string]*hostEntry{},
		wild:  map[string]*source{},
		apps:  map[string]*source{},
		names: map[string]*source{},
	}
	for i, src := range files {
		if err := t.parse(src); err != nil {
			return nil, fmt.Errorf("file %d: %w", i+1, err)
		}
	}
	return t, nil
}

func (t *sourceTable) parse(src string) error {
	seen := map[string]bool{} // "h:"/"w:"/"a:" + key, in this file
	var channel Channel
	for n, line := range strings.Split(src, "\n") {
		if i := strings.Index(line, "#"); i >= 0 {
			line = line[:i]
		}
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		if line[0] == '[' && line[len(line)-1] == ']' {
			c, ok := sections[line[1:len(line)-1]]
			if !ok {
				return fmt.Errorf("line %d: unknown channel %q", n+1, line[1:len(line)-1])
			}
			channel = c
			continue
		}
		if channel == "" {
			return fmt.Errorf("line %d: entry before the first [channel] header", n+1)
		}
		name, list, ok := strings.Cut(line, ":")
		name = strings.TrimSpace(name)
		if !ok || name == "" {
			return fmt.Errorf("line %d: want \"Name: host ...\"", n+1)
		}
		s := &source{name: name, channel: channel}
		if _, dup := t.names[strings.ToLower(name)]; !dup {
			t.names[strings.ToLower(name)] = s
		}
		fields := strings.Fields(list)
		if len(fields) == 0 {
			return fmt.Errorf("line %d: %s has no entries", n+1, name)
		}
		for _, f := range fields {
			if f != strings.ToLower(f) {
				return fmt.Errorf("line %d: %q is not lower case", n+1, f)
			}
			var m map[string]*source
			key, kind := f, "h:"
			switch {
			case strings.HasPrefix(f, "="):
				m, key, kind = t.names, f[1:], "="
			case strings.HasPrefix(f, "app:"):
				m, key, kind = t.apps, f[len("app:"):], "a:"
			case strings.HasSuffix(f, ".*"):
				m, key, kind = t.wild, strings.TrimSuffix(f, ".*"), "w:"
			case strings.Contains(f, "/"):
				host, path, _ := strings.Cut(f, "/")
				if host == "" || strings.ContainsAny(host, ":*") || seen["p:"+f] {
					return fmt.Errorf("line %d: malformed or repeated entry %q", n+1, f)
				}
				seen["p:"+f] = true
				e := t.host(host)
				e.paths = append(e.paths, pathSource{prefix: "/" + path, src: s})
				continue
			default:
				if key == "" || strings.ContainsAny(key, "/:*") {
					return fmt.Errorf("line %d: malformed entry %q", n+1, f)
				}
				if seen["h:"+key] {
					return fmt.Errorf("line %d: %q is listed twice", n+1, f)
				}
				seen["h:"+key] = true
				t.host(key).src = s
				continue
			}
			if key == "" || strings.ContainsAny(key, "/:*") {
				return fmt.Errorf("line %d: malformed entry %q", n+1, f)
			}
			if kind == "=" {
				if _, dup := m[key]; !dup { // an alias may repeat a name; the first wins
					m[key] = s
				}
				continue
			}
			if seen[kind+key] {
				return fmt.Errorf("line %d: %q is listed twice", n+1, f)
			}
			seen[kind+key] = true
			m[key] = s
		}
	}
	return nil
}

// host returns the entry of a host suffix, adding an empty one.
func (t *sourceTable) host(h string) *hostEntry {
	e := t.hosts[h]
	if e == nil {
		e = &hostEntry{}
		t.hosts[h] = e
	}
	return e
}

// lookupPath finds the source for a lower-case host and cleaned path by
// the host's longest listed suffix on a label boundary, trying "name.*"
// wildcards at each label as well; at a listed suffix, a "host/path"
// entry whose path is a prefix of path wins over the host's own source.
func (t *sourceTable) lookupPath(host, path []byte) *source {
	for i := 0; i < len(host); {
		suffix := host[i:]
		if e := t.hosts[string(suffix)]; e != nil {
			for _, p := range e.paths {
				if len(path) >= len(p.prefix) && string(path[:len(p.prefix)]) == p.prefix {
					return p.src
				}
			}
			if e.src != nil {
				return e.src
			}
		}
		dot := bytes.IndexByte(suffix, '.')
		if dot < 0 {
			return nil
		}
		if isPublicSuffixLike(suffix[dot+1:]) {
			if s := t.wild[string(suffix[:dot])]; s != nil {
				return s
			}
		}
		i += dot + 1
	}
	return nil
}

// lookupHost is lookupPath without a path.
func (t *sourceTable) lookupHost(host []byte) *source { return t.lookupPath(host, nil) }

// secondLevels are the common second-level labels under country codes
// ("co.uk", "com.au", "ne.jp").
var secondLevels = [...]string{"co", "com", "net", "org", "ac", "gov", "edu", "ne", "or", "go", "gob", "gen", "ltd", "plc"}

// isPublicSuffixLike reports whether s looks like a top-level domain ("de",
// "com") or a country-code second level ("co.uk", "com.br"), so that
// "google.*" matches google.de and google.co.uk but not google.evil.com.
func isPublicSuffixLike(s []byte) bool {
	dot := bytes.IndexByte(s, '.')
	if dot < 0 {
		return allAlpha(s) && len(s) >= 2 && len(s) <= 24
	}
	first, rest := s[:dot], s[dot+1:]
	if len(rest) != 2 || !allAlpha(rest) {
		return false
	}
	for _, l := range secondLevels {
		if string(first) == l {
			return true
		}
	}
	return false
}

func allAlpha(b []byte) bool {
	for _, c := range b {
		if !isAlpha(c) {
			return false
		}
	}
	return true
}

// maxNameLength bounds utm_source/ref values looked up by name.
const maxNameLength = 64

// lookupName finds a source by its name or alias, case-insensitively, for
// utm_source and ref values ("google", "Facebook", "fb"), then as a listed
// host ("reddit.com") or a bare name under .com ("producthunt").
func (t *sourceTable) lookupName(v []byte) *source {
	v = trimSpace(v)
	if len(v) == 0 || len(v) > maxNameLength {
		return nil
	}
	var buf [maxNameLength + len(".com")]byte
	l := appendLower(buf[:0], v)
	if s := t.names[string(l)]; s != nil {
		return s
	}
	h := stripWWW(l)
	if e := t.hosts[string(h)]; e != nil && e.src != nil {
		return e.src
	}
	if bytes.IndexByte(h, '.') < 0 {
		// "producthunt" → producthunt.com
		if e := t.hosts[string(append(h, ".com"...))]; e != nil {
			return e.src
		}
	}
	return nil
}
