package ratelimit

import (
	"testing"
	"time"
)

func TestTake(t *testing.T) {
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	b := New[string](Limit{PerHour: 60, Burst: 3}, 0)
	for i := range 3 {
		if w := b.Take("a", now); w != 0 {
			t.Fatalf("request %d of the burst waits %v", i+1, w)
		}
	}
	if w := b.Take("a", now); w != time.Minute {
		t.Fatalf("after the burst: wait %v, want 1m (60 an hour)", w)
	}
	if w := b.Take("b", now); w != 0 {
		t.Fatalf("another key waits %v", w)
	}
	if w := b.Take("a", now.Add(45*time.Second)); w != 15*time.Second {
		t.Fatalf("45 s later: wait %v, want 15s", w)
	}
	if w := b.Take("a", now.Add(time.Minute)); w != 0 {
		t.Fatalf("a minute later: wait %v, want a token back", w)
	}
	// A full hour refills no more than the burst.
	later := now.Add(2 * time.Hour)
	for i := range 3 {
		if w := b.Take("a", later); w != 0 {
			t.Fatalf("refilled burst, request %d: wait %v", i+1, w)
		}
	}
	if w := b.Take("a", later); w == 0 {
		t.Fatal("a refilled bucket holds more than the burst")
	}
}

func TestDefaultBurstIsAnHour(t *testing.T) {
	now := time.Now()
	b := New[int](Limit{PerHour: 10}, 0)
	for i := range 10 {
		if w := b.Take(7, now); w != 0 {
			t.Fatalf("request %d: wait %v", i+1, w)
		}
	}
	if w := b.Take(7, now); w != 6*time.Minute {
		t.Fatalf("11th request: wait %v, want 6m", w)
	}
}

// TestBounded: the table never holds more than its keys; a full one
// forgets refilled buckets first, then the fullest, never an empty one.
func TestBounded(t *testing.T) {
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	b := New[int](Limit{PerHour: 3600, Burst: 2}, 3)
	b.Take(1, now)
	b.Take(1, now) // empty
	b.Take(2, now) // one left
	b.Take(3, now) // one left
	b.Take(4, now) // forgets 2 or 3, never 1
	if len(b.m) != 3 || b.m[1] == nil || b.m[4] == nil {
		t.Fatalf("after a fourth key: %v", b.m)
	}
	if w := b.Take(1, now); w == 0 {
		t.Fatal("the empty bucket was forgotten")
	}
	b.Take(5, now.Add(time.Hour)) // all refilled: forgotten
	if len(b.m) != 1 || b.m[5] == nil {
		t.Fatalf("after an hour: %d keys", len(b.m))
	}
}
