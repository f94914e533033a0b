package sink

import (
	"testing"
	"time"
)

func TestGathererWaitsOnlyUnderLoad(t *testing.T) {
	var g gatherer
	t0 := time.Unix(1_700_000_000, 0)
	steps := []struct {
		at   time.Duration
		busy bool
	}{
		{0, false},                // the first event
		{time.Millisecond, false}, // 1,000 a second: taken one by one
		{time.Millisecond + 50*time.Microsecond, true}, // 20,000 a second: gather
		{time.Millisecond + 100*time.Microsecond, true},
		{time.Second, false}, // quiet again
	}
	for i, s := range steps {
		if got := g.busy(t0.Add(s.at)); got != s.busy {
			t.Errorf("step %d (+%v): busy %v, want %v", i, s.at, got, s.busy)
		}
	}
}
