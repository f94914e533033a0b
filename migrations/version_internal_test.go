package migrations

import "testing"

func TestRenderVersion(t *testing.T) {
	lc, plain := []string{"LowCardinality(String)"}, []string{"String"}
	for _, c := range []struct {
		server string
		siteID []string
		want   string
		modern bool
	}{
		{"18.16.1", nil, "18.16.1", false},
		{"18.16.1", plain, "18.16.1", false},
		{"21.3.20.1", nil, "21.3.20.1", false},
		{"21.8.1", nil, "21.8.1", true},
		{"26.5.1.1", nil, "26.5.1.1", true}, // a fresh database on a current server
		{"26.5.1.1", lc, "26.5.1.1", true},  // made modern, stays modern
		{"26.5.1.1", plain, "", false},      // made on 18.16, then the server upgraded
		{"", nil, "", false},
		{"x.y", nil, "x.y", false},
		{"100.1", nil, "100.1", true},
		{"21", nil, "21", false},
	} {
		got := renderVersion(c.server, c.siteID)
		if got != c.want || (Target{Version: got}).Modern() != c.modern {
			t.Errorf("renderVersion(%q, %v) = %q (modern %v), want %q (modern %v)",
				c.server, c.siteID, got, (Target{Version: got}).Modern(), c.want, c.modern)
		}
	}
}
