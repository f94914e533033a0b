// Package locate finds where a request comes from: the client address
// behind trusted reverse proxies, the truncated network prefix that is the
// only form of the address Glimpse stores, and coarse geography.
//
// Privacy: the full client address exists only in memory during one
// request. Nothing in this package logs an address, keeps one after a call
// returns, or puts one into an error message.
//
// Everything on the ingest hot path (ClientIP, AppendPrefix, Geo.Lookup on
// a cached record) allocates nothing.
package locate

import (
	"bytes"
	"fmt"
	"net/netip"
	"strings"

	"github.com/valyala/fasthttp"
)

// TrustedProxies is the set of networks whose X-Forwarded-For header is
// believed. The zero value trusts nobody, so the TCP peer is the client.
// A TrustedProxies is immutable and safe for concurrent use.
type TrustedProxies struct {
	prefixes []netip.Prefix
}

// ParseTrustedProxies parses CIDRs such as "10.0.0.0/8" or "2001:db8::/32".
// A bare address is accepted as a single host (/32 or /128). Surrounding
// spaces are trimmed and empty entries are skipped, so the result of
// splitting "a, b," on commas can be passed directly. IPv4-mapped IPv6
// networks (::ffff:10.0.0.0/104) are treated as the IPv4 network they map.
func ParseTrustedProxies(cidrs []string) (TrustedProxies, error) {
	var t TrustedProxies
	for _, raw := range cidrs {
		s := strings.TrimSpace(raw)
		if s == "" {
			continue
		}
		var p netip.Prefix
		if strings.Contains(s, "/") {
			var err error
			if p, err = netip.ParsePrefix(s); err != nil {
				return TrustedProxies{}, fmt.Errorf("cannot parse trusted proxy %q: %w", raw, err)
			}
		} else {
			a, err := netip.ParseAddr(s)
			if err != nil {
				return TrustedProxies{}, fmt.Errorf("cannot parse trusted proxy %q: %w", raw, err)
			}
			if a.Zone() != "" {
				return TrustedProxies{}, fmt.Errorf("cannot parse trusted proxy %q: IPv6 zones are not supported", raw)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
		}
		t.prefixes = append(t.prefixes, p.Masked())
	}
	return t, nil
}

// Len reports how many networks are trusted.
func (t TrustedProxies) Len() int { return len(t.prefixes) }

// Contains reports whether ip lies in one of the trusted networks.
// IPv4-mapped IPv6 addresses match their IPv4 network; zones are ignored.
func (t TrustedProxies) Contains(ip netip.Addr) bool {
	return t.contains(normalize(ip))
}

func (t TrustedProxies) contains(ip netip.Addr) bool {
	for _, p := range t.prefixes {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// ClientIP returns the address of the client that sent a request which
// arrived from the TCP peer peer with the header h.
//
// If the peer is not a trusted proxy (in particular when none are
// configured), the peer is the client and X-Forwarded-For is ignored
// entirely: anybody can send one, so believing it from an untrusted peer
// would let clients choose their own address.
//
// Behind a trusted peer, every X-Forwarded-For line of the header section
// counts: several lines are one comma-separated list in their order (RFC
// 9110 section 5.3), as a proxy that adds a line of its own instead of
// appending to the client's sends it. Reading only the first line would
// believe the line the client wrote. Trailer fields are never read.
//
// The list is walked from the right (the entry of the nearest proxy) to
// the left, skipping entries that are themselves trusted proxies; the
// first untrusted entry is the client. Empty entries are skipped. An entry
// that is not an address (garbage, "unknown", an obfuscated RFC 7239
// identifier, a zone) ends the walk: the last trusted hop seen (initially
// the peer) is returned, as nothing left of a bad entry can be trusted. If
// every entry is trusted, the left-most one is returned. Entries may carry
// a port ("192.0.2.1:1234", "[2001:db8::1]:443").
//
// IPv4-mapped IPv6 addresses are returned as IPv4, and zones are dropped.
// ClientIP does not allocate and does not retain h's bytes.
func (t TrustedProxies) ClientIP(peer netip.Addr, h *fasthttp.RequestHeader) netip.Addr {
	peer = normalize(peer)
	if len(t.prefixes) == 0 || !t.contains(peer) {
		return peer
	}
	var w forwardedWalk
	for k, v := range h.All() {
		if len(k) == len(xffName) && bytes.EqualFold(k, xffName) {
			w.line(t, v)
		}
	}
	return w.client(peer)
}

var xffName = []byte("X-Forwarded-For")

// forwardedWalk reads an X-Forwarded-For list from the left, one line at a
// time, and keeps what the walk from the right that ClientIP describes
// would stop at, so that lines need not be collected first.
type forwardedWalk struct {
	// stop is the right-most entry seen that is not a trusted proxy: its
	// address, or the zero Addr for an entry that is not an address.
	stop    netip.Addr
	stopped bool
	// after is the left-most trusted entry right of stop (of all entries,
	// while nothing stopped the walk).
	after netip.Addr
}

// line adds the entries of one header line.
func (w *forwardedWalk) line(t TrustedProxies, v []byte) {
	for len(v) > 0 {
		var entry []byte
		if i := bytes.IndexByte(v, ','); i >= 0 {
			entry, v = v[:i], v[i+1:]
		} else {
			entry, v = v, nil
		}
		entry = trimSpace(entry)
		if len(entry) == 0 {
			continue
		}
		ip, ok := parseForwarded(entry)
		ip = ip.Unmap()
		switch {
		case !ok:
			w.stop, w.stopped, w.after = netip.Addr{}, true, netip.Addr{}
		case !t.contains(ip):
			w.stop, w.stopped, w.after = ip, true, netip.Addr{}
		case !w.after.IsValid():
			w.after = ip
		}
	}
}

// client is the walk's answer for a request from the trusted peer.
func (w *forwardedWalk) client(peer netip.Addr) netip.Addr {
	switch {
	case w.stopped && w.stop.IsValid():
		return w.stop // the untrusted client
	case w.after.IsValid():
		return w.after // the last trusted hop right of garbage, or the left-most of all trusted
	}
	return peer // no entries, or garbage right next to the peer
}

// Prefix returns the network Glimpse stores instead of ip: the /24 of an
// IPv4 address or the /48 of an IPv6 address. IPv4-mapped IPv6 addresses
// are treated as IPv4 and zones are dropped. The zero Addr gives the zero
// Prefix.
func Prefix(ip netip.Addr) netip.Prefix {
	ip = normalize(ip)
	bits := 48
	if ip.Is4() {
		bits = 24
	}
	p, err := ip.Prefix(bits)
	if err != nil {
		return netip.Prefix{}
	}
	return p
}

// AppendPrefix appends the text form of Prefix(ip), such as
// "203.0.113.0/24" or "2001:db8:1::/48", to dst and returns the extended
// buffer. Nothing is appended for the zero Addr. AppendPrefix does not
// allocate when dst has room for the text (at most 43 bytes).
func AppendPrefix(dst []byte, ip netip.Addr) []byte {
	p := Prefix(ip)
	if !p.IsValid() {
		return dst
	}
	return p.AppendTo(dst)
}

// normalize unmaps IPv4-mapped IPv6 addresses and drops zones, so that
// comparisons with configured networks and truncation behave the same for
// every spelling of an address.
func normalize(ip netip.Addr) netip.Addr {
	return ip.Unmap().WithZone("")
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// parseForwarded parses one X-Forwarded-For entry: an address, optionally
// with a port ("192.0.2.1:80") or bracketed ("[2001:db8::1]", with or
// without ":port").
func parseForwarded(b []byte) (netip.Addr, bool) {
	if b[0] == '[' {
		end := bytes.IndexByte(b, ']')
		if end < 0 || !isPort(b[end+1:]) {
			return netip.Addr{}, false
		}
		ip, ok := parseAddr(b[1:end])
		if !ok || !ip.Is6() {
			return netip.Addr{}, false
		}
		return ip, true
	}
	if i := bytes.IndexByte(b, ':'); i >= 0 && bytes.IndexByte(b[i+1:], ':') < 0 {
		// Exactly one colon: IPv4 with a port.
		if !isPort(b[i:]) {
			return netip.Addr{}, false
		}
		b = b[:i]
	}
	return parseAddr(b)
}

// isPort reports whether b is empty or ":" followed by 1–5 digits.
func isPort(b []byte) bool {
	if len(b) == 0 {
		return true
	}
	if b[0] != ':' || len(b) < 2 || len(b) > 6 {
		return false
	}
	for _, c := range b[1:] {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// parseAddr parses an IPv4 or IPv6 address (without zone) exactly as
// netip.ParseAddr does, but from a byte slice and without allocating, also
// on bad input. FuzzParseAddr keeps the two in agreement.
func parseAddr(b []byte) (netip.Addr, bool) {
	if len(b) > maxAddrLen {
		return netip.Addr{}, false
	}
	if bytes.IndexByte(b, ':') >= 0 {
		return parseIPv6(b)
	}
	v4, ok := parseIPv4(b)
	if !ok {
		return netip.Addr{}, false
	}
	return netip.AddrFrom4(v4), true
}

// maxAddrLen is the longest text form ParseAddr accepts without a zone:
// six 4-digit groups and a dotted quad, "0000:0000:0000:0000:0000:0000:255.255.255.255".
const maxAddrLen = 45

// parseIPv4 parses a dotted quad with decimal fields of 0–255 and, like
// netip, no leading zeros.
func parseIPv4(b []byte) ([4]byte, bool) {
	var out [4]byte
	field := 0
	val, digits := 0, 0
	for i := 0; i <= len(b); i++ {
		if i == len(b) || b[i] == '.' {
			if digits == 0 || field > 3 {
				return out, false
			}
			out[field] = byte(val)
			field++
			val, digits = 0, 0
			continue
		}
		c := b[i]
		if c < '0' || c > '9' {
			return out, false
		}
		if digits == 1 && val == 0 {
			return out, false // leading zero
		}
		val = val*10 + int(c-'0')
		digits++
		if val > 255 {
			return out, false
		}
	}
	return out, field == 4
}

// parseIPv6 parses RFC 4291 text: up to eight groups of 1–4 hex digits,
// at most one "::" standing for at least one zero group, and an optional
// trailing dotted quad in place of the last two groups.
func parseIPv6(s []byte) (netip.Addr, bool) {
	var ip [16]byte
	ellipsis := -1 // byte index in ip where "::" stands
	if len(s) >= 2 && s[0] == ':' && s[1] == ':' {
		ellipsis = 0
		s = s[2:]
		if len(s) == 0 {
			return netip.IPv6Unspecified(), true
		}
	}
	i := 0
	for i < 16 {
		n, acc := 0, 0
		for n < len(s) {
			d, ok := hexDigit(s[n])
			if !ok {
				break
			}
			acc = acc<<4 | d
			n++
			if n > 4 {
				return netip.Addr{}, false
			}
		}
		if n < len(s) && s[n] == '.' {
			// Embedded IPv4 for the last 32 bits.
			if (ellipsis < 0 && i != 12) || i+4 > 16 {
				return netip.Addr{}, false
			}
			v4, ok := parseIPv4(s)
			if !ok {
				return netip.Addr{}, false
			}
			copy(ip[i:], v4[:])
			i += 4
			s = nil
			break
		}
		if n == 0 {
			return netip.Addr{}, false
		}
		ip[i], ip[i+1] = byte(acc>>8), byte(acc)
		i += 2
		s = s[n:]
		if len(s) == 0 {
			break
		}
		if s[0] != ':' || len(s) == 1 {
			return netip.Addr{}, false
		}
		s = s[1:]
		if s[0] == ':' {
			if ellipsis >= 0 {
				return netip.Addr{}, false
			}
			ellipsis = i
			s = s[1:]
			if len(s) == 0 {
				break
			}
		}
	}
	if len(s) != 0 {
		return netip.Addr{}, false
	}
	if i < 16 {
		if ellipsis < 0 {
			return netip.Addr{}, false
		}
		n := 16 - i
		for j := i - 1; j >= ellipsis; j-- {
			ip[j+n] = ip[j]
		}
		clear(ip[ellipsis : ellipsis+n])
	} else if ellipsis >= 0 {
		return netip.Addr{}, false // "::" must stand for at least one group
	}
	return netip.AddrFrom16(ip), true
}

func hexDigit(c byte) (int, bool) {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0'), true
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10, true
	case c >= 'A' && c <= 'F':
		return int(c-'A') + 10, true
	}
	return 0, false
}
