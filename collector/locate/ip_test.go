package locate

import (
	"bytes"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
)

func TestParseTrustedProxies(t *testing.T) {
	tests := []struct {
		name    string
		in      []string
		want    []string // masked prefixes
		wantErr string
	}{
		{name: "none", in: nil, want: nil},
		{name: "cidrs", in: []string{"10.0.0.0/8", "2001:db8::/32"}, want: []string{"10.0.0.0/8", "2001:db8::/32"}},
		{name: "bare v4 is /32", in: []string{"192.0.2.7"}, want: []string{"192.0.2.7/32"}},
		{name: "bare v6 is /128", in: []string{"2001:db8::7"}, want: []string{"2001:db8::7/128"}},
		{name: "masked", in: []string{"10.1.2.3/8"}, want: []string{"10.0.0.0/8"}},
		{name: "mapped v6 network becomes v4", in: []string{"::ffff:10.0.0.0/104"}, want: []string{"10.0.0.0/8"}},
		{name: "mapped v6 host becomes v4", in: []string{"::ffff:192.0.2.1"}, want: []string{"192.0.2.1/32"}},
		{name: "spaces and empty entries", in: []string{" 10.0.0.0/8 ", "", "  "}, want: []string{"10.0.0.0/8"}},
		{name: "bad cidr", in: []string{"10.0.0.0/8", "10.0.0.0/33"}, wantErr: `cannot parse trusted proxy "10.0.0.0/33"`},
		{name: "bad addr", in: []string{"proxy.local"}, wantErr: `cannot parse trusted proxy "proxy.local"`},
		{name: "zone", in: []string{"fe80::1%eth0"}, wantErr: `cannot parse trusted proxy "fe80::1%eth0": IPv6 zones are not supported`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseTrustedProxies(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want prefix %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Len() != len(tt.want) {
				t.Fatalf("got %v, want %v", got.prefixes, tt.want)
			}
			for i, w := range tt.want {
				if got.prefixes[i].String() != w {
					t.Errorf("prefix %d = %s, want %s", i, got.prefixes[i], w)
				}
			}
		})
	}
}

func TestClientIP(t *testing.T) {
	trusted := mustTrusted(t, "10.0.0.0/8", "192.0.2.10", "2001:db8:ffff::/48")
	tests := []struct {
		name    string
		proxies TrustedProxies
		peer    string
		xff     string
		want    string
	}{
		{name: "no proxies configured ignores xff", proxies: TrustedProxies{}, peer: "198.51.100.1", xff: "203.0.113.9", want: "198.51.100.1"},
		{name: "untrusted peer spoofing xff", proxies: trusted, peer: "198.51.100.1", xff: "203.0.113.9, 10.0.0.1", want: "198.51.100.1"},
		{name: "untrusted v6 peer spoofing xff", proxies: trusted, peer: "2001:db8:1::5", xff: "203.0.113.9", want: "2001:db8:1::5"},
		{name: "trusted peer no xff", proxies: trusted, peer: "10.0.0.1", xff: "", want: "10.0.0.1"},
		{name: "trusted peer blank xff", proxies: trusted, peer: "10.0.0.1", xff: " , ,", want: "10.0.0.1"},
		{name: "trusted peer one hop", proxies: trusted, peer: "10.0.0.1", xff: "203.0.113.9", want: "203.0.113.9"},
		{name: "client spoofs left of real client", proxies: trusted, peer: "10.0.0.1", xff: "6.6.6.6, 203.0.113.9", want: "203.0.113.9"},
		{name: "multiple trusted hops", proxies: trusted, peer: "10.0.0.1", xff: "6.6.6.6,203.0.113.9, 192.0.2.10,10.9.9.9", want: "203.0.113.9"},
		{name: "joined header lines", proxies: trusted, peer: "10.0.0.1", xff: "6.6.6.6, 203.0.113.9,10.1.1.1", want: "203.0.113.9"},
		{name: "two lines, proxy's last", proxies: trusted, peer: "10.0.0.1", xff: "6.6.6.6\n203.0.113.9", want: "203.0.113.9"},
		{name: "three lines past trusted hops", proxies: trusted, peer: "10.0.0.1", xff: "6.6.6.6\n203.0.113.9\n10.1.1.1", want: "203.0.113.9"},
		{name: "lists in lines", proxies: trusted, peer: "10.0.0.1", xff: "6.6.6.6, 198.51.100.2\n2001:db8:1::9, 10.0.0.5\n192.0.2.10", want: "2001:db8:1::9"},
		{name: "empty line", proxies: trusted, peer: "10.0.0.1", xff: "203.0.113.9\n\n10.0.0.5", want: "203.0.113.9"},
		{name: "garbage line", proxies: trusted, peer: "10.0.0.1", xff: "203.0.113.9\nunknown\n10.0.0.5", want: "10.0.0.5"},
		{name: "garbage in the last line", proxies: trusted, peer: "10.0.0.1", xff: "203.0.113.9\n10.0.0.5, unknown", want: "10.0.0.1"},
		{name: "trusted lines only", proxies: trusted, peer: "10.0.0.1", xff: "10.0.0.3\n10.0.0.2, 192.0.2.10", want: "10.0.0.3"},
		{name: "untrusted peer ignores every line", proxies: trusted, peer: "198.51.100.1", xff: "203.0.113.9\n10.0.0.2", want: "198.51.100.1"},
		{name: "tabs and spaces", proxies: trusted, peer: "10.0.0.1", xff: "\t203.0.113.9 \t,  10.1.1.1  ", want: "203.0.113.9"},
		{name: "all trusted returns left-most", proxies: trusted, peer: "10.0.0.1", xff: "10.0.0.3, 10.0.0.2", want: "10.0.0.3"},
		{name: "garbage returns last trusted hop", proxies: trusted, peer: "10.0.0.1", xff: "203.0.113.9, garbage, 10.0.0.2", want: "10.0.0.2"},
		{name: "garbage right after peer", proxies: trusted, peer: "10.0.0.1", xff: "203.0.113.9, unknown", want: "10.0.0.1"},
		{name: "obfuscated identifier", proxies: trusted, peer: "10.0.0.1", xff: "_hidden", want: "10.0.0.1"},
		{name: "zone is garbage", proxies: trusted, peer: "10.0.0.1", xff: "fe80::1%eth0", want: "10.0.0.1"},
		{name: "leading zero is garbage", proxies: trusted, peer: "10.0.0.1", xff: "203.0.113.09", want: "10.0.0.1"},
		{name: "v4 with port", proxies: trusted, peer: "10.0.0.1", xff: "203.0.113.9:51234", want: "203.0.113.9"},
		{name: "v4 with bad port", proxies: trusted, peer: "10.0.0.1", xff: "203.0.113.9:http", want: "10.0.0.1"},
		{name: "bracketed v6 with port", proxies: trusted, peer: "10.0.0.1", xff: "[2001:db8:1::9]:443", want: "2001:db8:1::9"},
		{name: "bracketed v6", proxies: trusted, peer: "10.0.0.1", xff: "[2001:db8:1::9]", want: "2001:db8:1::9"},
		{name: "bracketed v4 is garbage", proxies: trusted, peer: "10.0.0.1", xff: "[203.0.113.9]", want: "10.0.0.1"},
		{name: "v6 client", proxies: trusted, peer: "10.0.0.1", xff: "2001:db8:1:2:3:4:5:6", want: "2001:db8:1:2:3:4:5:6"},
		{name: "v6 trusted peer", proxies: trusted, peer: "2001:db8:ffff::1", xff: "203.0.113.9, 2001:db8:ffff::2", want: "203.0.113.9"},
		{name: "mapped peer is trusted as v4", proxies: trusted, peer: "::ffff:10.0.0.1", xff: "203.0.113.9", want: "203.0.113.9"},
		{name: "mapped untrusted peer unmapped", proxies: trusted, peer: "::ffff:198.51.100.1", xff: "203.0.113.9", want: "198.51.100.1"},
		{name: "mapped client unmapped", proxies: trusted, peer: "10.0.0.1", xff: "::ffff:203.0.113.9", want: "203.0.113.9"},
		{name: "mapped trusted hop skipped", proxies: trusted, peer: "10.0.0.1", xff: "203.0.113.9, ::ffff:10.2.2.2", want: "203.0.113.9"},
		{name: "zoned peer", proxies: mustTrusted(t, "fe80::/10"), peer: "fe80::1%eth0", xff: "203.0.113.9", want: "203.0.113.9"},
		{name: "invalid peer", proxies: trusted, peer: "", xff: "203.0.113.9", want: "invalid IP"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var peer netip.Addr
			if tt.peer != "" {
				peer = netip.MustParseAddr(tt.peer)
			}
			got := tt.proxies.ClientIP(peer, xffHeader(tt.xff))
			if got.String() != tt.want {
				t.Errorf("ClientIP(%s, %q) = %s, want %s", tt.peer, tt.xff, got, tt.want)
			}
		})
	}
}

func TestContains(t *testing.T) {
	tp := mustTrusted(t, "10.0.0.0/8", "2001:db8::/32")
	for addr, want := range map[string]bool{
		"10.1.2.3":        true,
		"::ffff:10.1.2.3": true,
		"11.0.0.1":        false,
		"2001:db8::1":     true,
		"2001:db9::1":     false,
	} {
		if got := tp.Contains(netip.MustParseAddr(addr)); got != want {
			t.Errorf("Contains(%s) = %v, want %v", addr, got, want)
		}
	}
}

func TestAppendPrefix(t *testing.T) {
	tests := []struct {
		in   string
		want string
	}{
		{"203.0.113.77", "203.0.113.0/24"},
		{"0.0.0.0", "0.0.0.0/24"},
		{"255.255.255.255", "255.255.255.0/24"},
		{"2001:db8:1:2:3:4:5:6", "2001:db8:1::/48"},
		{"2001:db8:abcd:ffff::1", "2001:db8:abcd::/48"},
		{"::1", "::/48"},
		{"::ffff:203.0.113.77", "203.0.113.0/24"},
		{"fe80::1%eth0", "fe80::/48"},
		{"", ""},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			var ip netip.Addr
			if tt.in != "" {
				ip = netip.MustParseAddr(tt.in)
			}
			got := AppendPrefix([]byte("x="), ip)
			if string(got) != "x="+tt.want {
				t.Errorf("AppendPrefix(%s) = %q, want %q", tt.in, got, "x="+tt.want)
			}
			if p := Prefix(ip); p.IsValid() && p.String() != tt.want {
				t.Errorf("Prefix(%s) = %s, want %s", tt.in, p, tt.want)
			}
		})
	}
}

func TestParseAddr(t *testing.T) {
	for _, s := range []string{
		"1.2.3.4", "0.0.0.0", "255.255.255.255", "::", "::1", "1::", "1::2",
		"2001:db8::", "2001:0db8:0000:0000:0000:0000:0000:0001", "1:2:3:4:5:6:7:8",
		"::ffff:1.2.3.4", "1:2:3:4:5:6:1.2.3.4", "::1.2.3.4", "1::1.2.3.4",
		"ABCD:ef01::", "1:2:3:4:5:6:7::", "::2:3:4:5:6:7:8",
		"0000:0000:0000:0000:0000:0000:255.255.255.255",
		// invalid
		"", ".", "1.2.3", "1.2.3.4.5", "1.2.3.256", "01.2.3.4", "1..3.4", "1.2.3.4.",
		":", ":::", "1:", ":1", "1:2", "1:2:3:4:5:6:7:8:9", "1::2::3", "12345::",
		"1:2:3:4:5:6:7::8", "1:2:3:4:5:1.2.3.4", "1:2:3:4:5:6:7:1.2.3.4",
		"::1.2.3", "::1.2.3.04", "g::", "1.2.3.4:80", " 1.2.3.4",
		"0000:0000:0000:0000:0000:0000:0255.255.255.255",
	} {
		want, werr := netip.ParseAddr(s)
		got, ok := parseAddr([]byte(s))
		if ok != (werr == nil) || (ok && got != want) {
			t.Errorf("parseAddr(%q) = %v, %v; netip.ParseAddr = %v, %v", s, got, ok, want, werr)
		}
	}
}

// FuzzParseAddr keeps parseAddr in agreement with netip.ParseAddr.
func FuzzParseAddr(f *testing.F) {
	for _, s := range []string{"1.2.3.4", "::ffff:1.2.3.4", "2001:db8::1", "1:2:3:4:5:6:7:8", "::", "1::2:3"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if strings.Contains(s, "%") {
			return // zones are rejected on purpose
		}
		want, werr := netip.ParseAddr(s)
		got, ok := parseAddr([]byte(s))
		if ok != (werr == nil) || (ok && got != want) {
			t.Errorf("parseAddr(%q) = %v, %v; netip.ParseAddr = %v, %v", s, got, ok, want, werr)
		}
	})
}

// FuzzClientIP checks that any header, its lines separated by "\n", gives
// the peer, an address written in the header, or a trusted hop, and never
// panics.
func FuzzClientIP(f *testing.F) {
	for _, s := range []string{"203.0.113.9, 10.0.0.2", "garbage", "[::1]:80", ",,", "1.2.3.4:5", "6.6.6.6\n203.0.113.9\n10.0.0.3", "x\n\n10.0.0.2"} {
		f.Add(s)
	}
	tp, err := ParseTrustedProxies([]string{"10.0.0.0/8", "2001:db8::/32"})
	if err != nil {
		f.Fatal(err)
	}
	peer := netip.MustParseAddr("10.0.0.1")
	f.Fuzz(func(t *testing.T, xff string) {
		h := xffHeader(xff)
		got := tp.ClientIP(peer, h)
		if !got.IsValid() || got.Is4In6() || got.Zone() != "" {
			t.Fatalf("ClientIP(%q) = %v", xff, got)
		}
		var joined []byte
		for k, v := range h.All() {
			if string(k) == "X-Forwarded-For" {
				joined = append(append(joined, ','), v...)
			}
		}
		if want := walkFromTheRight(tp, peer, joined); got != want {
			t.Fatalf("ClientIP(%q) = %v; the lines joined with commas, walked from the right, give %v", xff, got, want)
		}
		if got != peer && !strings.Contains(xff, got.String()) && !strings.Contains(xff, ":") {
			t.Fatalf("ClientIP(%q) = %v, which is not in the header", xff, got)
		}
	})
}

// walkFromTheRight is ClientIP as the definition reads, on one
// comma-separated list: from the right, past trusted entries, stopping at
// an untrusted one (the client) or at garbage (the last trusted hop).
func walkFromTheRight(t TrustedProxies, peer netip.Addr, xff []byte) netip.Addr {
	last := peer
	for _, entry := range slices.Backward(bytes.Split(xff, []byte(","))) {
		entry = trimSpace(entry)
		if len(entry) == 0 {
			continue
		}
		ip, ok := parseForwarded(entry)
		if !ok {
			return last
		}
		if ip = ip.Unmap(); !t.contains(ip) {
			return ip
		}
		last = ip
	}
	return last
}

// xffHeader is a request header with one X-Forwarded-For line per line of
// xff (none for "").
func xffHeader(xff string) *fasthttp.RequestHeader {
	h := new(fasthttp.RequestHeader)
	h.Set("Host", "example.com")
	if xff != "" {
		for _, line := range strings.Split(xff, "\n") {
			h.Add("X-Forwarded-For", line)
		}
	}
	return h
}

func mustTrusted(t *testing.T, cidrs ...string) TrustedProxies {
	t.Helper()
	tp, err := ParseTrustedProxies(cidrs)
	if err != nil {
		t.Fatal(err)
	}
	return tp
}
