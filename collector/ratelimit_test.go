package collector

import (
	"sync"
	"testing"
	"time"
)

func TestRateLimiter(t *testing.T) {
	r := &rateLimiter{limit: 3}
	t0 := time.Unix(1_700_000_000, 0)
	tests := []struct {
		visitor uint64
		at      time.Time
		want    bool
	}{
		{1, t0, true}, {1, t0, true}, {1, t0, true},
		{1, t0, false}, // fourth in the same second
		{1, t0.Add(500 * time.Millisecond), false},
		{2, t0, true},                          // another visitor has its own budget
		{1, t0.Add(time.Second), true},         // a new second resets
		{1 + 1<<16, t0.Add(time.Second), true}, // shares visitor 1's slot and budget
		{1, t0.Add(time.Second), true},
		{1 + 1<<16, t0.Add(time.Second), false},
	}
	for i, tt := range tests {
		if got := r.allow(tt.visitor, tt.at); got != tt.want {
			t.Errorf("%d: allow(%d, +%v) = %v, want %v", i, tt.visitor, tt.at.Sub(t0), got, tt.want)
		}
	}
	if !(&rateLimiter{}).allow(1, t0) {
		t.Error("a zero limit must allow everything")
	}
}

func TestRateLimiterConcurrent(t *testing.T) {
	r := &rateLimiter{limit: 100}
	now := time.Unix(1_700_000_000, 0)
	var wg sync.WaitGroup
	var mu sync.Mutex
	allowed := 0
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n := 0
			for range 1000 {
				if r.allow(7, now) {
					n++
				}
			}
			mu.Lock()
			allowed += n
			mu.Unlock()
		}()
	}
	wg.Wait()
	if allowed != 100 {
		t.Fatalf("allowed %d of 8000 in one second, want exactly the limit 100", allowed)
	}
}
