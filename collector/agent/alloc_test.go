//go:build !race

package agent

import "testing"

// The race detector allocates on its own, hence the build tag.

var allocUAs = []struct {
	ua    string
	hints ClientHints
}{
	{uaChromeWin, ClientHints{
		UA:       []byte(`"Chromium";v="124", "Google Chrome";v="124", "Not-A.Brand";v="99"`),
		Mobile:   []byte("?0"),
		Platform: []byte(`"Windows"`),
	}},
	{uaSafariIOS, ClientHints{}},
	{uaSamsung, ClientHints{}},
	{"curl/8.5.0", ClientHints{}},
	{"", ClientHints{}},
}

func TestAllocsUAParseCached(t *testing.T) {
	p := NewParser(64)
	for _, c := range allocUAs {
		p.Parse([]byte(c.ua), c.hints)
	}
	uas := make([][]byte, len(allocUAs))
	for i, c := range allocUAs {
		uas[i] = []byte(c.ua)
	}
	i := 0
	n := testing.AllocsPerRun(1000, func() {
		c := allocUAs[i%len(allocUAs)]
		if p.Parse(uas[i%len(uas)], c.hints) == nil {
			t.Fatal("nil UA")
		}
		i++
	})
	if n != 0 {
		t.Errorf("cached UA parse: %v allocs/op, want 0", n)
	}
}
