package identity

import (
	"context"
	"net/netip"
	"strings"
	"testing"
)

func TestVisitorID(t *testing.T) {
	c := &clock{t: at("2025-03-01T12:00:00Z")}
	s := newTestSalts(t, c)
	now := c.now()
	id := func(site, ip, ua string) uint64 {
		t.Helper()
		cur := s.VisitorID(now, site, netip.MustParseAddr(ip), []byte(ua))
		if cur == 0 {
			t.Fatal("VisitorID = 0")
		}
		return cur
	}
	longSite := strings.Repeat("a", 300)
	base := id("example.com", "203.0.113.7", "UA")
	tests := []struct {
		name string
		got  uint64
		same bool
	}{
		{"deterministic", id("example.com", "203.0.113.7", "UA"), true},
		{"v4-mapped is the same address", id("example.com", "::ffff:203.0.113.7", "UA"), true},
		{"other site", id("example.org", "203.0.113.7", "UA"), false},
		{"other address in the same /24", id("example.com", "203.0.113.8", "UA"), false},
		{"other UA", id("example.com", "203.0.113.7", "UA2"), false},
		{"empty UA", id("example.com", "203.0.113.7", ""), false},
		{"site/UA boundary moved", id("example.co", "203.0.113.7", "mUA"), false},
		{"long site", id(longSite, "203.0.113.7", "UA"), false},
	}
	for _, tt := range tests {
		if (tt.got == base) != tt.same {
			t.Errorf("%s: id equal to base = %v, want %v", tt.name, tt.got == base, tt.same)
		}
	}
	if id(longSite, "203.0.113.7", "UA") != id(longSite, "203.0.113.7", "UA") {
		t.Error("long site not deterministic")
	}
	if id(longSite, "203.0.113.7", "UA") == id(longSite+"b", "203.0.113.7", "UA") {
		t.Error("long sites collide")
	}
	if id("2001:db8::1", "2001:db8::1", "UA") == id("2001:db8::1", "2001:db8::2", "UA") {
		t.Error("v6 addresses collide")
	}

	// A different salt gives different ids.
	other, err := NewSalts(context.Background(), SaltsConfig{Now: c.now})
	if err != nil {
		t.Fatal(err)
	}
	if cur := other.VisitorID(now, "example.com", netip.MustParseAddr("203.0.113.7"), []byte("UA")); cur == base {
		t.Error("ids do not depend on the salt")
	}
}

func TestVisitorHashFraming(t *testing.T) {
	// The longest inline site and the shortest hashed one differ.
	var addr [16]byte
	long := strings.Repeat("x", maxInlineSite+1)
	h1 := visitorHash(1, 2, long, &addr, nil)
	h2 := visitorHash(1, 2, strings.Repeat("x", maxInlineSite), &addr, nil)
	if h1 == h2 || h1 == 0 || h2 == 0 {
		t.Errorf("framing: %x %x", h1, h2)
	}
}
