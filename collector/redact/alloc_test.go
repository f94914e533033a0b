//go:build !race

package redact

import (
	"testing"

	"github.com/VictoriaMetrics/metrics"
)

// TestAllocs pins the hot-path contract: with room in dst, redacting
// allocates nothing, clean input or not.
func TestAllocs(t *testing.T) {
	r := New(metrics.NewSet())
	dst := make([]byte, 0, 1024)
	for _, tt := range textCases {
		in := []byte(tt.in)
		if n := testing.AllocsPerRun(100, func() { dst = r.AppendText(dst[:0], in) }); n != 0 {
			t.Errorf("AppendText(%q): %v allocs", in, n)
		}
		if n := testing.AllocsPerRun(100, func() { dst = r.AppendPath(dst[:0], in) }); n != 0 {
			t.Errorf("AppendPath(%q): %v allocs", in, n)
		}
	}
}
