package enrich

import (
	"fmt"
	"strings"
	"testing"
)

func mustClean(t testing.TB, raw string) *PageURL {
	t.Helper()
	var u PageURL
	if err := (*URLPolicy)(nil).Clean(&u, []byte(raw)); err != nil {
		t.Fatalf("Clean(%q): %v", raw, err)
	}
	return &u
}

func TestClassifyReferrer(t *testing.T) {
	site := []string{"example.com", "www.example.com", "Example.ORG"}
	plain := mustClean(t, "https://www.example.com/pricing")
	type want struct {
		host, path, source string
		channel            Channel
	}
	tests := []struct {
		name string
		ref  string
		page *PageURL
		want want
	}{
		{"none", "", plain, want{channel: ChannelDirect}},
		{"blank", "  ", plain, want{channel: ChannelDirect}},

		{"self same host", "https://www.example.com/other", plain, want{channel: ChannelDirect}},
		{"self www folded", "https://example.com/other", plain, want{channel: ChannelDirect}},
		{"self case and port", "https://WWW.Example.COM:443/x", plain, want{channel: ChannelDirect}},
		{"self alias", "http://example.org/", plain, want{channel: ChannelDirect}},
		{"self www alias", "http://www.example.org/", plain, want{channel: ChannelDirect}},
		{"self page host without site list", "https://example.net/a", mustClean(t, "https://www.example.net/"), want{channel: ChannelDirect}},
		{"subdomain is not self", "https://blog.example.com/post", plain, want{"blog.example.com", "/post", "blog.example.com", ChannelReferral}},
		{"lookalike is not self", "https://example.com.evil.io/", plain, want{"example.com.evil.io", "/", "example.com.evil.io", ChannelReferral}},

		{"google", "https://www.google.com/", plain, want{"www.google.com", "/", "Google", ChannelSearch}},
		{"google ccTLD, query stripped", "https://www.google.co.uk/search?q=secret", plain, want{"www.google.co.uk", "/search", "Google", ChannelSearch}},
		{"google de", "https://google.de/", plain, want{"google.de", "/", "Google", ChannelSearch}},
		{"google lookalike", "https://google.evil.com/", plain, want{"google.evil.com", "/", "google.evil.com", ChannelReferral}},
		{"bing", "https://www.bing.com/search?q=x", plain, want{"www.bing.com", "/search", "Bing", ChannelSearch}},
		{"duckduckgo", "https://duckduckgo.com/", plain, want{"duckduckgo.com", "/", "DuckDuckGo", ChannelSearch}},
		{"yandex ru", "https://yandex.ru/search/?text=x", plain, want{"yandex.ru", "/search/", "Yandex", ChannelSearch}},
		{"facebook l.", "https://l.facebook.com/l.php?u=https%3A%2F%2Fexample.com", plain, want{"l.facebook.com", "/l.php", "Facebook", ChannelSocial}},
		{"twitter t.co", "https://t.co/AbC123", plain, want{"t.co", "/AbC123", "Twitter", ChannelSocial}},
		{"x.com", "https://x.com/someone/status/1", plain, want{"x.com", "/someone/status/1", "Twitter", ChannelSocial}},
		{"linkedin", "https://www.linkedin.com/feed/", plain, want{"www.linkedin.com", "/feed/", "LinkedIn", ChannelSocial}},
		{"reddit", "https://old.reddit.com/r/golang/", plain, want{"old.reddit.com", "/r/golang/", "Reddit", ChannelSocial}},
		{"youtube", "https://m.youtube.com/watch?v=1", plain, want{"m.youtube.com", "/watch", "YouTube", ChannelSocial}},
		{"instagram", "https://l.instagram.com/", plain, want{"l.instagram.com", "/", "Instagram", ChannelSocial}},
		{"hacker news", "https://news.ycombinator.com/item?id=1", plain, want{"news.ycombinator.com", "/item", "Hacker News", ChannelSocial}},
		{"gmail", "https://mail.google.com/mail/u/0/", plain, want{"mail.google.com", "/mail/u/0/", "Gmail", ChannelEmail}},
		{"outlook", "https://outlook.live.com/mail/0/", plain, want{"outlook.live.com", "/mail/0/", "Outlook", ChannelEmail}},
		{"google docs is referral", "https://docs.google.com/document/d/1kGcCjdaigfoo5CMJ-gcBnf4_zdPfCBSk_iabtMZPN6s/edit", plain,
			want{"docs.google.com", "/document/d/[token]/edit", "Google", ChannelReferral}},
		{"github", "https://github.com/glimpse-analytics/glimpse", plain, want{"github.com", "/glimpse-analytics/glimpse", "GitHub", ChannelSocial}}, // referer-parser lists GitHub as social,
		{"ad host", "https://www.googleadservices.com/pagead/aclk?sa=L", plain, want{"www.googleadservices.com", "/pagead/aclk", "Google Ads", ChannelPaid}},

		{"android gmail", "android-app://com.google.android.gm/", plain, want{"com.google.android.gm", "", "Gmail", ChannelEmail}},
		{"android google app", "android-app://com.google.android.googlequicksearchbox/https/www.google.com", plain,
			want{"com.google.android.googlequicksearchbox", "", "Google", ChannelSearch}},
		{"android facebook", "android-app://com.facebook.katana", plain, want{"com.facebook.katana", "", "Facebook", ChannelSocial}},
		{"android unknown app", "android-app://org.example.reader", plain, want{"org.example.reader", "", "org.example.reader", ChannelReferral}},
		{"android bad package", "android-app://a b/", plain, want{channel: ChannelDirect}},

		{"referral with userinfo, port, query, fragment", "https://user:pass@Blog.Someone.NET:8080/post/1?utm=1#frag", plain,
			want{"blog.someone.net", "/post/1", "blog.someone.net", ChannelReferral}},
		{"referral path redacted", "https://app.other.io/invite/jane%40example.com/550e8400-e29b-41d4-a716-446655440000", plain,
			want{"app.other.io", "/invite/[email]/[token]", "app.other.io", ChannelReferral}},
		{"referral empty path", "https://other.io", plain, want{"other.io", "/", "other.io", ChannelReferral}},
		{"referral source without www.", "https://WWW.News.Example.ORG/a", plain, want{"www.news.example.org", "/a", "news.example.org", ChannelReferral}},
		{"utm source name beats unknown host", "https://news.example.org/", mustClean(t, "https://example.com/?utm_source=facebook"),
			want{"news.example.org", "/", "Facebook", ChannelReferral}},
		{"unknown host under utm email", "https://news.example.org/", mustClean(t, "https://example.com/?utm_medium=email"),
			want{"news.example.org", "/", "news.example.org", ChannelEmail}},
		{"unsupported scheme", "file:///etc/passwd", plain, want{channel: ChannelDirect}},
		{"chrome extension", "chrome-extension://abc/page.html", plain, want{channel: ChannelDirect}},
		{"malformed host", "https://exa mple.com/", plain, want{channel: ChannelDirect}},

		{"utm email without referrer", "", mustClean(t, "https://example.com/?utm_source=newsletter&utm_medium=email"), want{channel: ChannelEmail}},
		{"utm newsletter medium", "", mustClean(t, "https://example.com/?utm_medium=Newsletter"), want{channel: ChannelEmail}},
		{"utm social medium beats referrer", "https://t.co/x", mustClean(t, "https://example.com/?utm_medium=social"), want{"t.co", "/x", "Twitter", ChannelSocial}},
		{"utm cpc with bing", "https://www.bing.com/", mustClean(t, "https://example.com/?utm_medium=cpc&utm_source=bing"), want{"www.bing.com", "/", "Bing", ChannelPaid}},
		{"utm paid_social", "", mustClean(t, "https://example.com/?utm_medium=paid_social&utm_source=fb"), want{"", "", "Facebook", ChannelPaidSocial}},
		{"gclid from google is paid search", "https://www.google.com/", mustClean(t, "https://example.com/?gclid=x"), want{"www.google.com", "/", "Google Ads", ChannelPaid}},
		{"cpc with a tiktok click is paid social", "", mustClean(t, "https://example.com/?utm_medium=cpc&ttclid=x"), want{"", "", "TikTok", ChannelPaidSocial}},
		{"utm display", "", mustClean(t, "https://example.com/?utm_medium=display"), want{channel: ChannelPaid}},
		{"utm medium on self referral", "https://example.com/", mustClean(t, "https://example.com/?utm_medium=email"), want{channel: ChannelEmail}},
		{"unknown utm medium ignored", "https://www.google.com/", mustClean(t, "https://example.com/?utm_medium=banana"), want{"www.google.com", "/", "Google", ChannelSearch}},
		{"utm source name", "", mustClean(t, "https://example.com/?utm_source=Facebook"), want{"", "", "Facebook", ChannelSocial}},
		{"ref name via .com", "", mustClean(t, "https://example.com/?ref=producthunt"), want{"", "", "Product Hunt", ChannelSocial}},
		{"unknown ref", "", mustClean(t, "https://example.com/?ref=some-blog"), want{channel: ChannelReferral}},

		{"gclid without referrer", "", mustClean(t, "https://example.com/?gclid=x"), want{"", "", "Google Ads", ChannelPaid}},
		{"gclid from google", "https://www.google.com/", mustClean(t, "https://example.com/?gclid=x"), want{"www.google.com", "/", "Google Ads", ChannelPaid}},
		{"msclkid", "https://www.bing.com/", mustClean(t, "https://example.com/?msclkid=x"), want{"www.bing.com", "/", "Microsoft Ads", ChannelPaid}},
		{"fbclid keeps referrer source", "https://t.co/x", mustClean(t, "https://example.com/?fbclid=x"), want{"t.co", "/x", "Twitter", ChannelSocial}},
		{"fbclid alone", "", mustClean(t, "https://example.com/?fbclid=x"), want{"", "", "Facebook", ChannelSocial}},
		{"utm medium beats click id", "", mustClean(t, "https://example.com/?gclid=x&utm_medium=email"), want{"", "", "Google Ads", ChannelEmail}},

		{"nil page", "https://t.co/x", nil, want{"t.co", "/x", "Twitter", ChannelSocial}},
		{"nil page none", "", nil, want{channel: ChannelDirect}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r Referrer
			ClassifyReferrer(&r, []byte(tt.ref), tt.page, site, nil)
			got := want{string(r.Host), string(r.Path), r.Source, r.Channel}
			if got != tt.want {
				t.Errorf("ClassifyReferrer(%q)\n got %+v\nwant %+v", tt.ref, got, tt.want)
			}
		})
	}
}

func TestReferrerReuse(t *testing.T) {
	var r Referrer
	ClassifyReferrer(&r, []byte("https://www.google.com/search"), nil, nil, nil)
	ClassifyReferrer(&r, []byte(""), nil, nil, nil)
	if len(r.Host) != 0 || len(r.Path) != 0 || r.Source != "" || r.Channel != ChannelDirect {
		t.Errorf("stale fields after reuse: %+v", r)
	}
}

// TestHostSourcesBounded: a Referrer reused for more unknown hosts than it
// keeps strings for, and for hosts longer than it keeps, still names each
// one's source.
func TestHostSourcesBounded(t *testing.T) {
	var r Referrer
	for i := range 3 * maxHostSources {
		host := fmt.Sprintf("site-%d.example.org", i%(2*maxHostSources))
		if i%5 == 0 {
			host = strings.Repeat("x", maxHostSourceLen) + "." + host
		}
		ClassifyReferrer(&r, []byte("https://www."+host+"/p"), nil, nil, nil)
		if r.Source != host || len(r.hosts) > maxHostSources {
			t.Fatalf("%s: source %q, %d strings kept", host, r.Source, len(r.hosts))
		}
	}
}

func TestSourcesTable(t *testing.T) {
	gen, err := parseSources(sourcesGen)
	if err != nil {
		t.Fatal(err)
	}
	if len(gen.hosts) < 1000 {
		t.Errorf("sources_gen.txt has only %d hosts", len(gen.hosts))
	}
	tab, err := parseSources(sourcesLocal)
	if err != nil {
		t.Fatal(err)
	}
	// A host listed under the same source as one of its own suffixes is
	// redundant; keep the overlay minimal.
	for h, s := range tab.hosts {
		for rest := h; ; {
			i := strings.IndexByte(rest, '.')
			if i < 0 {
				break
			}
			rest = rest[i+1:]
			if p := tab.hosts[rest]; p != nil && p.src != nil && s.src != nil && *p.src == *s.src {
				t.Errorf("sources.local.txt: %q is redundant with %q", h, rest)
			}
		}
	}
	for _, bad := range []string{
		"Google: google.com",           // no section
		"[search]\nGoogle:",            // no entries
		"[search]\nGoogle: Google.com", // upper case
		"[search]\nA: a.com\nB: a.com", // duplicate
		"[nonsense]\nA: a.com",         // unknown channel
		"[search]\nA a.com",            // no colon
		"[search]\nA: /path",           // malformed
		"[search]\nA: a.com/p a.com/p", // duplicate path
		"[search]\nA: app:",            // empty app id
	} {
		if _, err := parseSources(bad); err == nil {
			t.Errorf("parseSources(%q) accepted a malformed file", bad)
		}
	}
}

// TestSourcesOverlay: a later file overrides an earlier one's host, a name
// keeps its first entry, and an alias-only line is allowed.
func TestSourcesOverlay(t *testing.T) {
	tab, err := parseSources("[search]\nA: a.com b.com\n", "[social]\nZ: a.com\nA: =aa\n")
	if err != nil {
		t.Fatal(err)
	}
	if s := tab.lookupHost([]byte("www.a.com")); s == nil || s.name != "Z" || s.channel != ChannelSocial {
		t.Errorf("a.com: %+v, want the overlay's Z", s)
	}
	if s := tab.lookupName([]byte("a")); s == nil || s.channel != ChannelSearch {
		t.Errorf("name a: %+v, want the first file's", s)
	}
	if s := tab.lookupName([]byte("aa")); s == nil || s.name != "A" {
		t.Errorf("alias aa: %+v", s)
	}
}

func TestMediumChannel(t *testing.T) {
	for in, want := range map[string]Channel{
		"cpc": ChannelPaid, "PPC": ChannelPaid, "paidsearch": ChannelPaid, "paid-social": ChannelPaid,
		"display": ChannelPaid, "google_cpc": ChannelPaid, "email": ChannelEmail, " Newsletter ": ChannelEmail,
		"social": ChannelSocial, "social-network": ChannelSocial, "organic": ChannelSearch,
		"referral": ChannelReferral, "": "", "banana": "", strings.Repeat("x", 100): "",
	} {
		if got := mediumChannel([]byte(in)); got != want {
			t.Errorf("mediumChannel(%q) = %q, want %q", in, got, want)
		}
	}
}
