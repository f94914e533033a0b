package enrich

import (
	"bytes"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"
)

// emailPattern finds what this package promises never to store: a local
// part, an '@' (raw or still percent-encoded) and a domain with a dot
// followed by two letters.
var emailPattern = regexp.MustCompile(`[A-Za-z0-9._%+\-](@|%40)[A-Za-z0-9.\-]*\.[A-Za-z]{2}`)

func checkNoEmail(t *testing.T, field string, b []byte) {
	t.Helper()
	if m := emailPattern.Find(b); m != nil {
		t.Errorf("%s %q contains an e-mail pattern %q", field, b, m)
	}
}

func checkText(t *testing.T, field string, b []byte) {
	t.Helper()
	if !utf8.Valid(b) {
		t.Errorf("%s %q is not valid UTF-8", field, b)
	}
	for _, c := range b {
		if c < ' ' || c == 0x7f {
			t.Errorf("%s %q contains control byte %#x", field, b, c)
			return
		}
	}
	checkNoEmail(t, field, b)
}

func FuzzCleanURL(f *testing.F) {
	for _, s := range []string{
		"https://example.com/",
		"https://Example.COM:8443/Blog/Post?utm_source=Newsletter&utm_medium=email&gclid=abc&ref=hn&page=2#top",
		"http://user:pw@www.example.com./a%20b/caf%C3%A9/%2F/x%3Fy?q=1",
		"https://example.com/users/john.doe%40gmail.com/profile",
		"https://example.com/o/550e8400-e29b-41d4-a716-446655440000/items?fbclid=x&utm_content=a%2540b.co",
		"https://app.example.com/#/users/42?tab=1",
		"https://[2001:DB8::1]:8080/x",
		"https://example.com/%E0%A4%A/%FF/%zz/%",
		"https://example.com/?page=a%26b%3Dc&lang=%00en%20us&PAGE=x&utm_source=",
		"ftp://example.com/",
	} {
		f.Add([]byte(s), "page,lang", false)
		f.Add([]byte(s), "ref", true)
	}
	f.Fuzz(func(t *testing.T, raw []byte, allow string, hashMode bool) {
		policy := &URLPolicy{Allow: strings.Split(allow, ","), HashMode: hashMode}
		var u PageURL
		if err := policy.Clean(&u, raw); err != nil {
			if len(u.Host)+len(u.Path)+len(u.Query) != 0 {
				t.Errorf("output left after error %v", err)
			}
			return
		}
		if len(u.Host) == 0 || !bytes.Equal(u.Host, bytes.ToLower(u.Host)) || bytes.ContainsAny(u.Host, ":/@?#%") && u.Host[0] != '[' {
			t.Errorf("bad host %q", u.Host)
		}
		if len(u.Path) == 0 || u.Path[0] != '/' {
			t.Errorf("path %q does not start with '/'", u.Path)
		}
		if bytes.IndexByte(u.Path, '?') >= 0 {
			t.Errorf("path %q contains '?'", u.Path)
		}
		if n := bytes.Count(u.Path, []byte("#")); n > 1 || n == 1 && !hashMode {
			t.Errorf("path %q has a fragment outside hash mode", u.Path)
		}
		checkText(t, "path", u.Path)

		// The kept query holds only allowed keys, each at most once.
		allowed := map[string]bool{"ref": true, "source": true}
		for _, k := range policy.Allow {
			if validAllowKey(k) && !isBuiltinKey(k) {
				allowed[strings.ToLower(k)] = true
			}
		}
		seen := map[string]bool{}
		if len(u.Query) > 0 {
			for _, pair := range bytes.Split(u.Query, []byte("&")) {
				k, v, ok := bytes.Cut(pair, []byte("="))
				key := strings.ToLower(string(k))
				if !ok || len(v) == 0 || !allowed[key] || seen[key] {
					t.Errorf("query %q has unexpected parameter %q", u.Query, pair)
				}
				if strings.HasPrefix(key, "utm_") || lookupClickID(key) >= 0 {
					t.Errorf("query %q keeps %q", u.Query, key)
				}
				seen[key] = true
			}
		}
		checkText(t, "query", u.Query)

		for name, v := range map[string][]byte{
			"utm_source": u.UTMSource, "utm_medium": u.UTMMedium, "utm_campaign": u.UTMCampaign,
			"utm_term": u.UTMTerm, "utm_content": u.UTMContent, "ref": u.Ref,
		} {
			if len(v) > MaxValueLength {
				t.Errorf("%s is %d bytes long", name, len(v))
			}
			checkText(t, name, v)
		}
		if (u.ClickSource == "") != (u.ClickChannel == "") {
			t.Errorf("click source %q with channel %q", u.ClickSource, u.ClickChannel)
		}

		// Cleaning is idempotent: the cleaned URL cleans to itself.
		path, frag, hasFrag := bytes.Cut(u.Path, []byte("#"))
		again := append([]byte("https://"), u.Host...)
		again = append(again, path...)
		if len(u.Query) > 0 {
			again = append(append(again, '?'), u.Query...)
		}
		if hasFrag {
			again = append(append(again, '#'), frag...)
		}
		var v PageURL
		if err := policy.Clean(&v, again); err != nil {
			if len(again) <= MaxURLLength {
				t.Fatalf("cleaned URL %q is rejected: %v", again, err)
			}
			return
		}
		if !bytes.Equal(u.Path, v.Path) || !bytes.Equal(u.Query, v.Query) {
			t.Errorf("not idempotent: %q?%q → %q?%q", u.Path, u.Query, v.Path, v.Query)
		}
	})
}

// knownSourceNames lists every Source ClassifyReferrer may return.
func knownSourceNames() map[string]bool {
	names := map[string]bool{"": true}
	for _, m := range []map[string]*source{defaultSources.wild, defaultSources.apps, defaultSources.names} {
		for _, s := range m {
			names[s.name] = true
		}
	}
	for _, e := range defaultSources.hosts {
		if e.src != nil {
			names[e.src.name] = true
		}
		for _, p := range e.paths {
			names[p.src.name] = true
		}
	}
	for _, c := range clickIDs {
		names[c.source] = true
	}
	return names
}

func FuzzReferrer(f *testing.F) {
	for _, s := range []string{
		"https://www.google.co.uk/search?q=secret",
		"https://user:pass@Blog.Someone.NET:8080/post/1?utm=1#frag",
		"android-app://com.google.android.gm/",
		"https://www.example.com/self",
		"https://app.other.io/invite/jane%40example.com/550e8400-e29b-41d4-a716-446655440000",
		"file:///etc/passwd",
		"",
	} {
		f.Add([]byte(s), "https://www.example.com/?utm_medium=cpc&gclid=1")
		f.Add([]byte(s), "https://example.com/?ref=producthunt")
	}
	names := knownSourceNames()
	site := []string{"example.com", "www.example.org"}
	f.Fuzz(func(t *testing.T, raw []byte, pageURL string) {
		var page PageURL
		pp := &page
		if (*URLPolicy)(nil).Clean(&page, []byte(pageURL)) != nil {
			pp = nil
		}
		var r Referrer
		ClassifyReferrer(&r, raw, pp, site, nil)
		switch r.Channel {
		case ChannelDirect, ChannelSearch, ChannelSocial, ChannelEmail, ChannelPaid, ChannelReferral:
		default:
			t.Errorf("unknown channel %q", r.Channel)
		}
		if !names[r.Source] && (len(r.Host) == 0 || r.Source != string(stripWWW(r.Host)) && r.Source != string(r.Host)) {
			t.Errorf("source %q is neither from the tables nor the host %q", r.Source, r.Host)
		}
		if !bytes.Equal(r.Host, bytes.ToLower(r.Host)) || bytes.ContainsAny(r.Host, ":/@?#%") && (len(r.Host) == 0 || r.Host[0] != '[') {
			t.Errorf("bad host %q", r.Host)
		}
		if len(r.Path) > 0 && (len(r.Host) == 0 || r.Path[0] != '/') {
			t.Errorf("path %q with host %q", r.Path, r.Host)
		}
		if bytes.ContainsAny(r.Path, "?#") {
			t.Errorf("path %q keeps a query or fragment", r.Path)
		}
		checkText(t, "referrer path", r.Path)
		if len(r.Host) > 0 && isSelfReferral(r.Host, pp, site) && !isAppReferrer(raw) {
			t.Errorf("self-referral %q kept", r.Host)
		}
	})
}
