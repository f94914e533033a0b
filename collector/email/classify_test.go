package email

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

const (
	uaChrome  = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/125.0.0.0 Safari/537.36"
	uaIPhone  = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148"
	uaGmail   = "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"
	uaYahoo   = "YahooMailProxy; https://help.yahoo.com/kb/yahoo-mail-proxy-SLN28749.html"
	uaOutlook = "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.17328; Pro)"
)

func TestRulesFile(t *testing.T) {
	c := DefaultRules()
	if len(c.rules) < 20 {
		t.Fatalf("rules.txt has %d rules", len(c.rules))
	}
	seen := map[string]bool{}
	for _, r := range c.rules {
		key := r.reason + "|" + r.s + "|" + r.prefix.String()
		if seen[key] {
			t.Errorf("duplicate rule %s", key)
		}
		seen[key] = true
	}
}

func TestParseRulesErrors(t *testing.T) {
	for src, want := range map[string]string{
		"robot head method HEAD":             "verdict",
		"machine Head method HEAD":           "reason",
		"machine x sniff HEAD":               "unknown matcher",
		"machine x ua Barracuda":             "lower case",
		"machine x cidr 17.0.0.1/8":          "cidr",
		"machine x cidr nope":                "cidr",
		"machine x click-after-send soon":    "duration",
		"machine x ua-bot extra":             "values",
		"machine x ua":                       "values",
		"\n\nmachine x click-after-open -1s": "line 3",
	} {
		if _, err := ParseRules(src); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseRules(%q): err = %v, want %q", src, err, want)
		}
	}
	c, err := ParseRules("machine ua ua curl/ # the reason may be named ua\n")
	if err != nil || len(c.rules) != 1 || c.rules[0].s != "curl/" {
		t.Fatalf("%+v %v", c, err)
	}
}

func TestClassify(t *testing.T) {
	c := DefaultRules()
	now := t0.Add(24 * time.Hour)
	ip := func(s string) netip.Addr { return netip.MustParseAddr(s) }
	home := ip("198.51.100.20")
	tests := []struct {
		name    string
		r       Request
		verdict string
		reason  string
	}{
		{"human desktop", Request{Method: "GET", UA: []byte(uaChrome), IP: home}, "human", "human"},
		{"human phone click", Request{Method: "GET", UA: []byte(uaIPhone), IP: home, Click: true, Sent: t0, LastOpen: now.Add(-time.Minute)}, "human", "human"},
		{"outlook desktop", Request{Method: "GET", UA: []byte(uaOutlook), IP: home}, "human", "human"},
		{"head", Request{Method: "HEAD", UA: []byte(uaChrome), IP: home}, "machine", "head"},
		{"no ua", Request{Method: "GET", IP: home}, "machine", "no_ua"},
		{"apple mpp ua", Request{Method: "GET", UA: []byte("Mozilla/5.0"), IP: ip("203.0.113.9")}, "machine", "apple_mpp"},
		{"apple mpp range", Request{Method: "GET", UA: []byte(uaIPhone), IP: ip("17.58.1.2")}, "machine", "apple_mpp"},
		{"apple mapped v4", Request{Method: "GET", UA: []byte(uaIPhone), IP: ip("::ffff:17.1.2.3")}, "machine", "apple_mpp"},
		{"gmail proxy", Request{Method: "GET", UA: []byte(uaGmail), IP: ip("66.249.84.1")}, "human", "google_proxy"},
		{"yahoo proxy", Request{Method: "GET", UA: []byte(uaYahoo), IP: home}, "human", "yahoo_proxy"},
		{"outlook eop", Request{Method: "GET", UA: []byte(uaChrome), IP: ip("40.93.5.6")}, "machine", "outlook_proxy"},
		{"outlook eop v6", Request{Method: "GET", UA: []byte(uaChrome), IP: ip("2a01:111:f400::1")}, "machine", "outlook_proxy"},
		{"proofpoint", Request{Method: "GET", UA: []byte("Mozilla/5.0 Proofpoint URL Defense"), IP: home}, "machine", "scanner_ua"},
		{"barracuda", Request{Method: "GET", UA: []byte("Barracuda Sentinel (EE)"), IP: home}, "machine", "scanner_ua"},
		{"existence discovery", Request{Method: "GET", UA: []byte("Microsoft Office Existence Discovery"), IP: home}, "machine", "scanner_ua"},
		{"python", Request{Method: "GET", UA: []byte("python-requests/2.31"), IP: home}, "machine", "scanner_ua"},
		{"bot list", Request{Method: "GET", UA: []byte("Mozilla/5.0 (compatible; Googlebot/2.1)"), IP: home, Bot: true}, "machine", "bot_ua"},
		{"aws", Request{Method: "GET", UA: []byte(uaChrome), IP: ip("3.5.140.2")}, "machine", "datacenter"},
		{"hetzner v6", Request{Method: "GET", UA: []byte(uaChrome), IP: ip("2a01:4f8:c0c:1::1")}, "machine", "datacenter"},
		{"click right after send", Request{Method: "GET", UA: []byte(uaChrome), IP: home, Click: true, Sent: now.Add(-3 * time.Second), Now: now}, "machine", "click_after_send"},
		{"open right after send", Request{Method: "GET", UA: []byte(uaChrome), IP: home, Sent: now.Add(-3 * time.Second), Now: now}, "human", "human"},
		{"click right after open", Request{Method: "GET", UA: []byte(uaChrome), IP: home, Click: true, Sent: t0, LastOpen: now.Add(-500 * time.Millisecond), Now: now}, "machine", "click_after_open"},
		{"click a while after open", Request{Method: "GET", UA: []byte(uaChrome), IP: home, Click: true, Sent: t0, LastOpen: now.Add(-30 * time.Second), Now: now}, "human", "human"},
		{"head beats human ua", Request{Method: "HEAD", UA: []byte(uaGmail), IP: home}, "machine", "head"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.r.Now.IsZero() {
				tt.r.Now = now
			}
			v, r := c.Classify(&tt.r)
			if v != tt.verdict || r != tt.reason {
				t.Errorf("got %s/%s, want %s/%s", v, r, tt.verdict, tt.reason)
			}
		})
	}
}
