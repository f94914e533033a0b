package identity

import (
	"context"
	"net/netip"
	"testing"
	"time"
)

func BenchmarkVisitorID(b *testing.B) {
	ip := netip.MustParseAddr("203.0.113.7")
	for _, bm := range []struct {
		name string
		now  time.Time
	}{
		{"day", at("2025-03-01T23:59:00Z")},
		{"window", at("2025-03-02T00:01:00Z")}, // two hashes
	} {
		b.Run(bm.name, func(b *testing.B) {
			s, err := NewSalts(context.Background(), SaltsConfig{Now: func() time.Time { return at("2025-03-01T23:59:00Z") }})
			if err != nil {
				b.Fatal(err)
			}
			s.VisitorID(bm.now, "example.com", ip, testUA)
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					s.VisitorID(bm.now, "example.com", ip, testUA)
				}
			})
		})
	}
}

func BenchmarkVisitorIDSerial(b *testing.B) {
	ip := netip.MustParseAddr("203.0.113.7")
	s, err := NewSalts(context.Background(), SaltsConfig{})
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		s.VisitorID(now, "example.com", ip, testUA)
	}
}
