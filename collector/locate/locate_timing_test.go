package locate

import (
	"net/netip"
	"testing"
)

func BenchmarkClientIP(b *testing.B) {
	tp, err := ParseTrustedProxies([]string{"10.0.0.0/8", "2001:db8:ffff::/48"})
	if err != nil {
		b.Fatal(err)
	}
	peer := netip.MustParseAddr("10.0.0.1")
	for _, bm := range []struct{ name, xff string }{
		{"untrusted-peer", ""},
		{"v4-one-hop", "203.0.113.9"},
		{"v4-three-hops", "6.6.6.6, 203.0.113.9, 10.0.0.2"},
		{"v6-one-hop", "2001:db8:1:2:3:4:5:6"},
		{"v4-three-lines", "6.6.6.6\n203.0.113.9\n10.0.0.2"},
	} {
		b.Run(bm.name, func(b *testing.B) {
			p := peer
			if bm.xff == "" {
				p = netip.MustParseAddr("198.51.100.1")
			}
			h := xffHeader(bm.xff)
			b.ReportAllocs()
			for b.Loop() {
				tp.ClientIP(p, h)
			}
		})
	}
}

func BenchmarkAppendPrefix(b *testing.B) {
	buf := make([]byte, 0, 64)
	for _, s := range []string{"203.0.113.77", "2001:db8:1:2:3:4:5:6"} {
		ip := netip.MustParseAddr(s)
		b.Run(s, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				buf = AppendPrefix(buf[:0], ip)
			}
		})
	}
}

func BenchmarkGeoLookup(b *testing.B) {
	g := openFixture(b, "GeoLite2-City", 6, true)
	ips := []netip.Addr{
		netip.MustParseAddr("203.0.113.5"),
		netip.MustParseAddr("198.51.100.1"),
		netip.MustParseAddr("2001:db8:1::1"),
		netip.MustParseAddr("2001:db8:2::1"),
	}
	b.Run("cached", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			g.Lookup(ips[i&3], PrecisionRegion)
			i++
		}
	})
	b.Run("cached-parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				g.Lookup(ips[i&3], PrecisionRegion)
				i++
			}
		})
	})
	b.Run("uncached", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			decodePlace(g.db.Lookup(ips[i&3]))
			i++
		}
	})
}
