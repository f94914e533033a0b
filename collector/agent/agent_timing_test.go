package agent

import (
	"strconv"
	"sync/atomic"
	"testing"
)

// Compare sub-benchmarks of one run (cached vs uncached) rather than
// absolute times: the machines are shared.

func BenchmarkUAParse(b *testing.B) {
	hints := ClientHints{
		UA:       []byte(`"Chromium";v="124", "Google Chrome";v="124", "Not-A.Brand";v="99"`),
		Mobile:   []byte("?0"),
		Platform: []byte(`"Windows"`),
	}
	uas := make([][]byte, len(browserUAs))
	for i, s := range browserUAs {
		uas[i] = []byte(s)
	}
	b.Run("cached", func(b *testing.B) {
		p := NewParser(1024)
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			p.Parse(uas[i%len(uas)], hints)
		}
	})
	b.Run("cached-parallel", func(b *testing.B) {
		p := NewParser(1024)
		b.ReportAllocs()
		var start atomic.Int64
		b.RunParallel(func(pb *testing.PB) {
			// Each goroutine walks the UAs from its own offset, as
			// independent requests would.
			for i := int(start.Add(7)); pb.Next(); i++ {
				p.Parse(uas[i%len(uas)], hints)
			}
		})
	})
	b.Run("uncached", func(b *testing.B) {
		// Distinct UAs on every call: the cost of a miss (library parse,
		// bot list scan, cache insert and eviction).
		p := NewParser(1024)
		distinct := make([][]byte, 4096)
		for i := range distinct {
			distinct[i] = []byte(browserUAs[i%len(browserUAs)] + " Build/" + strconv.Itoa(i))
		}
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			p.Parse(distinct[i%len(distinct)], ClientHints{})
		}
	})
}
