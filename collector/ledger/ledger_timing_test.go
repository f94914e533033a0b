package ledger

import (
	"sync/atomic"
	"testing"
)

// BenchmarkUpdate updates the counts of 200,000 keys, more than the CPU
// caches hold, in a table of the collector's size: what the contribution
// caps add to an event.
func BenchmarkUpdate(b *testing.B) {
	tb := New[counts](262_144)
	const keys = 200_000
	var next atomic.Uint64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		k := next.Add(1) * 7919
		for pb.Next() {
			k++
			tb.Update(1, (k%keys+1)*0x9E3779B97F4A7C15, t0, func(v *counts) { v.a++ })
		}
	})
}
