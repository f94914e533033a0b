//go:build !race

package identity

import (
	"net/netip"
	"testing"
	"time"
)

// The race detector allocates, so this runs only without it.

func TestVisitorIDAllocs(t *testing.T) {
	c := &clock{t: at("2025-03-01T23:59:00Z")}
	s := newTestSalts(t, c)
	ip6 := netip.MustParseAddr("2001:db8:1::7")
	for _, now := range []time.Time{at("2025-03-01T23:59:00Z"), at("2025-03-02T00:01:00Z")} { // before and after midnight
		s.VisitorID(now, "example.com", ip6, testUA) // rotate outside the measurement
		if n := testing.AllocsPerRun(100, func() { s.VisitorID(now, "example.com", ip6, testUA) }); n != 0 {
			t.Errorf("VisitorID at %s allocates %v times", now.Format(time.TimeOnly), n)
		}
	}
}
