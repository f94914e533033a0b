//go:build !race

package locate

import (
	"net/netip"
	"testing"
)

// The race detector allocates, so these run only without it.

func TestClientIPAllocs(t *testing.T) {
	tp := mustTrusted(t, "10.0.0.0/8", "2001:db8:ffff::/48")
	peer := netip.MustParseAddr("10.0.0.1")
	for _, xff := range []string{
		"203.0.113.9",
		"6.6.6.6, 203.0.113.9, 10.0.0.2",
		"6.6.6.6\n203.0.113.9\n10.0.0.2",
		"2001:db8:1::9, 2001:db8:ffff::1",
		"::ffff:203.0.113.9",
		"[2001:db8:1::9]:443",
		"garbage, 10.0.0.2",
		"2001:db8::zz",
		"",
	} {
		h := xffHeader(xff)
		if n := testing.AllocsPerRun(100, func() { tp.ClientIP(peer, h) }); n != 0 {
			t.Errorf("ClientIP(%q) allocates %v times", xff, n)
		}
	}
}

func TestAppendPrefixAllocs(t *testing.T) {
	buf := make([]byte, 0, 64)
	for _, s := range []string{"203.0.113.77", "2001:db8:1:2:3:4:5:6", "::ffff:203.0.113.77"} {
		ip := netip.MustParseAddr(s)
		if n := testing.AllocsPerRun(100, func() { buf = AppendPrefix(buf[:0], ip) }); n != 0 {
			t.Errorf("AppendPrefix(%s) allocates %v times", s, n)
		}
	}
}

func TestGeoLookupAllocs(t *testing.T) {
	g := openFixture(t, "GeoLite2-City", 6, true)
	for _, s := range []string{"203.0.113.5", "2001:db8:1::1", "::ffff:198.51.100.1", "192.0.2.1", "10.0.0.1"} {
		ip := netip.MustParseAddr(s)
		g.Lookup(ip, PrecisionCity) // fill the cache
		if n := testing.AllocsPerRun(100, func() { g.Lookup(ip, PrecisionRegion) }); n != 0 {
			t.Errorf("Lookup(%s) allocates %v times once cached", s, n)
		}
	}
}
