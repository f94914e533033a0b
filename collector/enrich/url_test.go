package enrich

import (
	"errors"
	"strconv"
	"strings"
	"testing"
)

func TestCleanURL(t *testing.T) {
	site := &URLPolicy{Allow: []string{"page", "lang", "PAGE", "gclid", "utm_source", "ref", "bad&key", ""}}
	hash := &URLPolicy{HashMode: true}
	long := &URLPolicy{}
	for i := range 70 {
		long.Allow = append(long.Allow, "k"+strconv.Itoa(i))
	}
	type want struct {
		host, path, query string
		utm               [5]string // source, medium, campaign, term, content
		ref               string
		click             string
		clickChannel      Channel
	}
	tests := []struct {
		name   string
		policy *URLPolicy
		raw    string
		want   want
	}{
		{"root", nil, "https://example.com", want{host: "example.com", path: "/"}},
		{"root slash", nil, "https://example.com/", want{host: "example.com", path: "/"}},
		{"query only", nil, "https://example.com?x=1", want{host: "example.com", path: "/"}},
		{"uppercase host and port", nil, "https://Example.COM:8443/Blog/Post", want{host: "example.com", path: "/Blog/Post"}},
		{"www kept", nil, "http://WWW.example.com/", want{host: "www.example.com", path: "/"}},
		{"trailing dot host", nil, "https://example.com./a", want{host: "example.com", path: "/a"}},
		{"userinfo dropped", nil, "https://user:secret@example.com/a", want{host: "example.com", path: "/a"}},
		{"ipv6", nil, "https://[2001:DB8::1]:8080/x", want{host: "[2001:db8::1]", path: "/x"}},
		{"ipv4", nil, "http://192.0.2.1:8080/x", want{host: "192.0.2.1", path: "/x"}},
		{"scheme case", nil, "HTTPS://example.com/a", want{host: "example.com", path: "/a"}},
		{"surrounding space", nil, "  https://example.com/a \n", want{host: "example.com", path: "/a"}},
		{"fragment dropped", nil, "https://example.com/a#section", want{host: "example.com", path: "/a"}},

		{"unknown query dropped", nil, "https://example.com/a?session=123&q=secret&email=a@b.co", want{host: "example.com", path: "/a"}},
		{"utm extracted, not in query", nil,
			"https://example.com/?utm_source=Newsletter&utm_medium=email&utm_campaign=spring+sale&utm_term=go%20lang&utm_content=hero",
			want{host: "example.com", path: "/", utm: [5]string{"Newsletter", "email", "spring sale", "go lang", "hero"}}},
		{"utm key case-insensitive, first wins", nil, "https://example.com/?UTM_Source=a&utm_source=b",
			want{host: "example.com", path: "/", utm: [5]string{"a"}}},
		{"unknown utm key dropped", nil, "https://example.com/?utm_id=123&utm_source_platform=x", want{host: "example.com", path: "/"}},
		{"utm email redacted", nil, "https://example.com/?utm_content=john.doe%40example.com&utm_term=x",
			want{host: "example.com", path: "/", utm: [5]string{"", "", "", "x", "[email]"}}},
		{"double-encoded email redacted", nil, "https://example.com/?utm_content=jane%2540example.com",
			want{host: "example.com", path: "/", utm: [5]string{"", "", "", "", "[email]"}}},
		{"utm control bytes and spaces", nil, "https://example.com/?utm_campaign=%00%20spring%09%0Asale%20",
			want{host: "example.com", path: "/", utm: [5]string{"", "", "spring sale"}}},
		{"utm invalid utf8", nil, "https://example.com/?utm_campaign=caf%C3%A9%FF",
			want{host: "example.com", path: "/", utm: [5]string{"", "", "café\uFFFD"}}},
		{"utm truncated", nil, "https://example.com/?utm_campaign=" + strings.Repeat("a", 300),
			want{host: "example.com", path: "/", utm: [5]string{"", "", strings.Repeat("a", MaxValueLength)}}},
		{"ref and source kept", nil, "https://example.com/?source=tw&x=1&ref=hn",
			want{host: "example.com", path: "/", query: "ref=hn&source=tw", ref: "tw"}},
		{"empty ref skipped", nil, "https://example.com/?ref=&ref=hn",
			want{host: "example.com", path: "/", query: "ref=hn", ref: "hn"}},
		{"ref value re-encoded", nil, "https://example.com/?ref=a%26b%3Dc+d",
			want{host: "example.com", path: "/", query: "ref=a%26b%3Dc%20d", ref: "a&b=c d"}},
		{"ref email redacted", nil, "https://example.com/?ref=me@example.com",
			want{host: "example.com", path: "/", query: "ref=[email]", ref: "[email]"}},

		{"gclid", nil, "https://example.com/?gclid=Cj0KCQ", want{host: "example.com", path: "/", click: "Google Ads", clickChannel: ChannelPaid}},
		{"gbraid", nil, "https://example.com/?gbraid=0AAAA", want{host: "example.com", path: "/", click: "Google Ads", clickChannel: ChannelPaid}},
		{"wbraid", nil, "https://example.com/?wbraid=x", want{host: "example.com", path: "/", click: "Google Ads", clickChannel: ChannelPaid}},
		{"dclid", nil, "https://example.com/?dclid=x", want{host: "example.com", path: "/", click: "Google Ads", clickChannel: ChannelPaid}},
		{"fbclid", nil, "https://example.com/?fbclid=IwAR0", want{host: "example.com", path: "/", click: "Facebook", clickChannel: ChannelSocial}},
		{"msclkid", nil, "https://example.com/?msclkid=x", want{host: "example.com", path: "/", click: "Microsoft Ads", clickChannel: ChannelPaid}},
		{"ttclid", nil, "https://example.com/?ttclid=x", want{host: "example.com", path: "/", click: "TikTok", clickChannel: ChannelPaidSocial}},
		{"twclid", nil, "https://example.com/?twclid=x", want{host: "example.com", path: "/", click: "Twitter", clickChannel: ChannelPaidSocial}},
		{"li_fat_id", nil, "https://example.com/?li_fat_id=x", want{host: "example.com", path: "/", click: "LinkedIn", clickChannel: ChannelPaidSocial}},
		{"empty click id ignored", nil, "https://example.com/?gclid=&fbclid=x", want{host: "example.com", path: "/", click: "Facebook", clickChannel: ChannelSocial}},
		{"first click id wins", nil, "https://example.com/?msclkid=1&gclid=2", want{host: "example.com", path: "/", click: "Microsoft Ads", clickChannel: ChannelPaid}},

		{"allowlist in policy order, dedup, click ids and utm never kept", site,
			"https://example.com/p?lang=en&gclid=1&utm_source=x&page=2&secret=1&page=3&bad%26key=1",
			want{host: "example.com", path: "/p", query: "page=2&lang=en", utm: [5]string{"x"}, click: "Google Ads", clickChannel: ChannelPaid}},
		{"allowlist key case-insensitive", site, "https://example.com/?Lang=de",
			want{host: "example.com", path: "/", query: "lang=de"}},
		{"allowlist encoded key", site, "https://example.com/?%6Cang=de",
			want{host: "example.com", path: "/", query: "lang=de"}},
		{"long allowlist", long, "https://example.com/?k69=b&k1=a&k63=c&k64=d&k62=e&lang=x",
			want{host: "example.com", path: "/", query: "k1=a&k62=e&k63=c&k64=d&k69=b"}},

		{"hash mode keeps route", hash, "https://app.example.com/#/orders/42?tab=1",
			want{host: "app.example.com", path: "/#/orders/42"}},
		{"hash mode redacts users", hash, "https://app.example.com/#/users/42?tab=1",
			want{host: "app.example.com", path: "/#/users/[user]"}},
		{"hash mode drops params", hash, "https://app.example.com/#access_token=abc&x=1",
			want{host: "app.example.com", path: "/#access_token"}},
		{"hash mode redacts", hash, "https://app.example.com/app#/invite/a@b.io",
			want{host: "app.example.com", path: "/app#/invite/[email]"}},
		{"hash mode empty fragment", hash, "https://app.example.com/app#",
			want{host: "app.example.com", path: "/app"}},

		{"email in path", nil, "https://example.com/u/john@example.co.uk/x", want{host: "example.com", path: "/u/[email]/x"}},
		{"percent-encoded email", nil, "https://example.com/invite/john.doe%40gmail.com/profile", want{host: "example.com", path: "/invite/[email]/profile"}},
		{"user segment", nil, "https://example.com/users/eve.smith/orders/4111111111111111/reset/ab12CD34ef",
			want{host: "example.com", path: "/users/[user]/orders/[card]/reset/[token]"}},
		{"phone in utm", nil, "https://example.com/?utm_term=%2B49%2030%201234567&utm_content=4111+1111+1111+1111",
			want{host: "example.com", path: "/", utm: [5]string{"", "", "", "[phone]", "[card]"}}},
		{"lowercase %40", nil, "https://example.com/a+b%40c-d.org", want{host: "example.com", path: "/[email]"}},
		{"handle is not an email", nil, "https://example.com/@alice", want{host: "example.com", path: "/@alice"}},
		{"sha256 token", nil, "https://example.com/reset/9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
			want{host: "example.com", path: "/reset/[token]"}},
		{"uuid", nil, "https://example.com/o/550e8400-e29b-41d4-a716-446655440000/items", want{host: "example.com", path: "/o/[token]/items"}},
		{"uuid in slug", nil, "https://example.com/o/550E8400-E29B-41D4-A716-446655440000.json", want{host: "example.com", path: "/o/[token].json"}},
		{"base64url token", nil, "https://example.com/confirm/Xq3ZbT9kLm2PwR7vN4sY8dFh", want{host: "example.com", path: "/confirm/[token]"}},
		{"jwt", nil, "https://example.com/t/eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.dBjftJeZ4CVPmB92K27uhbUJU1p1r_wW1gFWFOEjXk",
			want{host: "example.com", path: "/t/[jwt]"}},
		{"slug kept", nil, "https://example.com/blog/how-to-install-go-1-22-on-ubuntu-24-04", want{host: "example.com", path: "/blog/how-to-install-go-1-22-on-ubuntu-24-04"}},
		{"camel case with year kept", nil, "https://example.com/the2024AnnualReportFinal", want{host: "example.com", path: "/the2024AnnualReportFinal"}},
		{"numeric id kept", nil, "https://example.com/order/123456789012345678901234", want{host: "example.com", path: "/order/123456789012345678901234"}},
		{"short hex kept", nil, "https://example.com/commit/9f86d08", want{host: "example.com", path: "/commit/9f86d08"}},

		{"utf8 decoded", nil, "https://example.com/caf%C3%A9", want{host: "example.com", path: "/café"}},
		{"structural escapes kept", nil, "https://example.com/a%2Fb/c%3fd/e%23f/g%25h/i%20j", want{host: "example.com", path: "/a%2Fb/c%3Fd/e%23f/g%25h/i%20j"}},
		{"unreserved decoded", nil, "https://example.com/%7Euser/%41", want{host: "example.com", path: "/~user/A"}},
		{"invalid utf8 stays escaped", nil, "https://example.com/%FF/caf%C3%A9", want{host: "example.com", path: "/%FF/café"}},
		{"raw invalid utf8 escaped", nil, "https://example.com/\xb7x/caf\xc3\xa9", want{host: "example.com", path: "/%B7x/café"}},
		{"truncated rune escaped", nil, "https://example.com/%E2%82/%E2%82%AC", want{host: "example.com", path: "/%E2%82/€"}},
		{"c1 control stays escaped", nil, "https://example.com/a%C2%80b", want{host: "example.com", path: "/a%C2%80b"}},
		{"stray percent", nil, "https://example.com/100%/x%zz", want{host: "example.com", path: "/100%25/x%25zz"}},
		{"raw control bytes escaped", nil, "https://example.com/a\x01b", want{host: "example.com", path: "/a%01b"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var u PageURL
			if err := tt.policy.Clean(&u, []byte(tt.raw)); err != nil {
				t.Fatalf("Clean(%q): %v", tt.raw, err)
			}
			got := want{
				host: string(u.Host), path: string(u.Path), query: string(u.Query),
				utm: [5]string{string(u.UTMSource), string(u.UTMMedium), string(u.UTMCampaign), string(u.UTMTerm), string(u.UTMContent)},
				ref: string(u.Ref), click: u.ClickSource, clickChannel: u.ClickChannel,
			}
			if got != tt.want {
				t.Errorf("Clean(%q)\n got %+v\nwant %+v", tt.raw, got, tt.want)
			}
		})
	}
}

func TestCleanURLErrors(t *testing.T) {
	tests := []struct {
		raw  string
		want error
	}{
		{"", ErrURLScheme},
		{"/relative/path", ErrURLScheme},
		{"example.com/a", ErrURLScheme},
		{"ftp://example.com/", ErrURLScheme},
		{"javascript:alert(1)", ErrURLScheme},
		{"file:///etc/passwd", ErrURLScheme},
		{"https:/example.com", ErrURLScheme},
		{"https://", ErrURLHost},
		{"https:///path", ErrURLHost},
		{"https://:8080/", ErrURLHost},
		{"https://user@/", ErrURLHost},
		{"https://exa mple.com/", ErrURLHost},
		{"https://ex%41mple.com/", ErrURLHost},
		{"https://example.com:80x/", ErrURLHost},
		{"https://example.com:123456/", ErrURLHost},
		{"https://[::1/", ErrURLHost},
		{"https://[zz]/", ErrURLHost},
		{"https://" + strings.Repeat("a", 254) + "/", ErrURLHost},
		{"https://example.com/" + strings.Repeat("a", MaxURLLength), ErrURLTooLong},
	}
	for _, tt := range tests {
		var u PageURL
		u.Host = append(u.Host, "stale"...)
		err := (*URLPolicy)(nil).Clean(&u, []byte(tt.raw))
		if !errors.Is(err, tt.want) {
			t.Errorf("Clean(%.40q) = %v, want %v", tt.raw, err, tt.want)
		}
		if len(u.Host) != 0 || len(u.Path) != 0 {
			t.Errorf("Clean(%.40q) left output behind after an error", tt.raw)
		}
		if err != nil && strings.Contains(err.Error(), "example") {
			t.Errorf("error %q leaks the URL", err)
		}
	}
}

// TestCleanURLReuse checks that a reused PageURL carries nothing over.
func TestCleanURLReuse(t *testing.T) {
	var u PageURL
	p := &URLPolicy{Allow: []string{"page"}}
	if err := p.Clean(&u, []byte("https://a.example/x?utm_source=s&page=2&gclid=1&ref=r")); err != nil {
		t.Fatal(err)
	}
	if err := p.Clean(&u, []byte("https://b.example/")); err != nil {
		t.Fatal(err)
	}
	if string(u.Host) != "b.example" || string(u.Path) != "/" || len(u.Query) != 0 || len(u.UTMSource) != 0 ||
		len(u.Ref) != 0 || u.ClickSource != "" || u.ClickChannel != "" {
		t.Errorf("stale fields after reuse: %+v", u)
	}
}

// TestCleanURLIdempotent checks that cleaning a cleaned URL changes nothing.
func TestCleanURLIdempotent(t *testing.T) {
	p := &URLPolicy{Allow: []string{"page"}, HashMode: true}
	for _, raw := range []string{
		"https://example.com/a%2Fb/caf%C3%A9/%FF/x%20y/john@example.com/9f86d081884c7d659a2feaa0c55ad015?page=a%26b&ref=x+y",
		"https://example.com/#/r/550e8400-e29b-41d4-a716-446655440000",
		"https://example.com/100%/x%zz",
	} {
		var a, b PageURL
		if err := p.Clean(&a, []byte(raw)); err != nil {
			t.Fatal(err)
		}
		again := "https://" + string(a.Host) + string(a.Path)
		if len(a.Query) > 0 {
			again += "?" + string(a.Query)
		}
		if err := p.Clean(&b, []byte(again)); err != nil {
			t.Fatal(err)
		}
		if string(a.Path) != string(b.Path) || string(a.Query) != string(b.Query) {
			t.Errorf("not idempotent:\n 1st %s ? %s\n 2nd %s ? %s", a.Path, a.Query, b.Path, b.Query)
		}
	}
}
