package noise

import (
	"fmt"
	"math"
	"testing"
)

// BenchmarkLaplace draws the noise of cells shaped like the engine's
// (about 50 bytes) at several scales; besides time and allocations it
// reports the rounds of Algorithm 2 and the HMAC blocks per draw.
func BenchmarkLaplace(b *testing.B) {
	cells := benchCells()
	for _, sc := range []scale{{1, 1}, {1, 3}, {30, 1}, {1000, 1}, {1_000_000_000_000, 1}, {math.MaxUint64, math.MaxUint64 - 1}} {
		b.Run(sc.String(), func(b *testing.B) {
			n := New(testKey(0))
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				n.Laplace(cells[i%len(cells)], sc.num, sc.den)
				i++
			}
			var rounds, blocks uint64
			s := newStream(testKey(0))
			for _, c := range cells {
				s.start(c)
				_, r := s.laplace(sc.num, sc.den)
				rounds += uint64(r)
				blocks += s.ctr
			}
			b.ReportMetric(float64(rounds)/float64(len(cells)), "rounds/op")
			b.ReportMetric(float64(blocks)/float64(len(cells)), "blocks/op")
		})
	}
}

// BenchmarkLaplaceParallel draws from all CPUs through one Noise, as
// concurrent requests for one site do.
func BenchmarkLaplaceParallel(b *testing.B) {
	cells := benchCells()
	n := New(testKey(0))
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			n.Laplace(cells[i%len(cells)], 30, 1)
			i++
		}
	})
}

func benchCells() []string {
	cells := make([]string, 1024)
	for i := range cells {
		cells[i] = fmt.Sprintf("visitors|2025-03-01..2025-04-01|page=/blog/%d", i)
	}
	return cells
}

// BenchmarkStreamBlock is the floor under a draw: one HMAC block of an
// engine-shaped cell (three SHA-256 compressions for these 70-byte
// messages).
func BenchmarkStreamBlock(b *testing.B) {
	cells := benchCells()
	s := newStream(testKey(0))
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		s.start(cells[i%len(cells)])
		s.refill()
		i++
	}
}
