package redact

import (
	"testing"

	"github.com/VictoriaMetrics/metrics"
)

// The inputs of the benchmarks: what most events carry (clean), and the
// issue's worst case.
var benchInputs = []struct {
	name string
	path bool
	in   string
}{
	{"path/clean", true, "/blog/how-to-choose-a-laptop"},
	{"path/clean-digits", true, "/blog/2024/10/how-to-choose-a-laptop"},
	{"path/product", true, "/shop/p/iphone-15-pro-max-256gb-black/12345"},
	{"path/dirty", true, "/users/eve.smith/orders/4111111111111111/reset/ab12CD34ef"},
	{"text/clean", false, "spring-sale"},
	{"text/clean-digits", false, "Spring Sale 2024 – 20% off orders over 100"},
	{"text/dirty", false, "eve@example.com +49 30 1234567 sk_live_4eC39HqLyjWDarjtT1zdp7dc"},
}

func BenchmarkRedact(b *testing.B) {
	r := New(metrics.NewSet())
	dst := make([]byte, 0, 1024)
	for _, bi := range benchInputs {
		in := []byte(bi.in)
		red := r.AppendText
		if bi.path {
			red = r.AppendPath
		}
		b.Run(bi.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(in)))
			for b.Loop() {
				dst = red(dst[:0], in)
			}
		})
	}
}
