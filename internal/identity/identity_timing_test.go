package identity

import (
	"context"
	"net/netip"
	"testing"
	"time"
)

func BenchmarkVisitorID(b *testing.B) {
	ip := netip.MustParseAddr("203.0.113.7")
	now := at("2025-03-01T23:59:00Z")
	s, err := NewSalts(context.Background(), SaltsConfig{Now: func() time.Time { return now }})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			s.VisitorID(now, "example.com", ip, testUA)
		}
	})
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
