package apptest

import (
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/VictoriaMetrics/metrics"
)

// Samples are the samples of a Prometheus text exposition, by the name
// with its labels exactly as printed, e.g.
// glimpse_events_dropped_total{reason="spool-full"}. A sample that is not
// there reads as 0: VictoriaMetrics' counters appear on first use, so a
// count that never started is zero.
type Samples map[string]float64

// ParseMetrics reads the text format /metrics and metrics.Set write.
// Comments and blank lines are skipped; any other line that is not
// "name value" is an error, so that a change of format fails the tests
// that read it instead of reading as zeros.
func ParseMetrics(text string) (Samples, error) {
	m := Samples{}
	for line := range strings.Lines(text) {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		// The value follows the last space: label values may hold spaces.
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			return nil, fmt.Errorf("metrics line %q: no value", line)
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			return nil, fmt.Errorf("metrics line %q: %v", line, err)
		}
		m[strings.TrimSpace(line[:i])] = v
	}
	return m, nil
}

// SetMetric is one sample of set, as Samples reads it; for a package's
// tests that hold the metrics.Set their code writes to.
func SetMetric(t testing.TB, set *metrics.Set, name string) float64 {
	t.Helper()
	var b strings.Builder
	set.WritePrometheus(&b)
	m, err := ParseMetrics(b.String())
	if err != nil {
		t.Fatal(err)
	}
	return m[name]
}
