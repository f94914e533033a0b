package insert

import (
	"testing"

	"github.com/glimpse-analytics/glimpse/internal/model"
	"github.com/glimpse-analytics/glimpse/internal/model/modeltest"
)

// BenchmarkEventBatchBuild builds the columns of a 10,000-row batch of
// events that, like the spool reader's, lie apart in memory.
func BenchmarkEventBatchBuild(b *testing.B) {
	rows := make([]*model.Event, 10000)
	pad := make([][]byte, 0, len(rows))
	for i := range rows {
		rows[i] = modeltest.Event(i)
		pad = append(pad, make([]byte, 4096)) // spread the events over memory
	}
	var c Events
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		c.Build(rows)
		c.Release()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(rows)), "ns/row")
	_ = pad
}
