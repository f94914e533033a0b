package ledger

import (
	"sync"
	"testing"
	"time"
	"unsafe"
)

// counts is a value shaped like the collector's: 16 bytes.
type counts struct {
	a, b uint32
	c    uint64
}

var t0 = time.Date(2026, 5, 6, 10, 0, 0, 0, time.UTC)

func add(t *Table[counts], site uint32, id uint64, now time.Time) uint32 {
	var n uint32
	t.Update(site, id, now, func(v *counts) {
		v.a++
		n = v.a
	})
	return n
}

func TestTableCounts(t *testing.T) {
	tb := New[counts](1024)
	for i := range 5 {
		if n := add(tb, 1, 42, t0.Add(time.Duration(i)*time.Minute)); n != uint32(i+1) {
			t.Fatalf("update %d: count %d", i+1, n)
		}
	}
	if n := add(tb, 2, 42, t0); n != 1 {
		t.Errorf("another site shares the key's counts (%d)", n)
	}
	if n := add(tb, 1, 43, t0); n != 1 {
		t.Errorf("another id shares the key's counts (%d)", n)
	}
	if n := add(tb, 1, 42, t0.Add(13*time.Hour+59*time.Minute)); n != 6 {
		t.Errorf("last second of the day: count %d, want 6", n)
	}
	// The next UTC day starts afresh, with no eviction.
	if n := add(tb, 1, 42, t0.Add(14*time.Hour)); n != 1 {
		t.Errorf("next day: count %d, want 1", n)
	}
	if n := tb.Evictions(); n != 0 {
		t.Errorf("%d evictions in a table with room", n)
	}
}

func TestTableEvictsLeastRecent(t *testing.T) {
	tb := New[counts](ways) // one bucket
	if tb.Len() != ways || len(tb.buckets) != 1 {
		t.Fatalf("%d entries in %d buckets", tb.Len(), len(tb.buckets))
	}
	for id := uint64(1); id <= ways; id++ {
		for range id {
			add(tb, 1, id, t0.Add(time.Duration(id)*time.Second))
		}
	}
	add(tb, 1, 1, t0.Add(time.Minute)) // 1 is now the most recent, 2 the least
	if n := add(tb, 1, 99, t0.Add(time.Minute)); n != 1 || tb.Evictions() != 1 {
		t.Fatalf("a new key in a full bucket: count %d, %d evictions", n, tb.Evictions())
	}
	want := map[uint64]uint32{1: 3, 3: 4, 4: 5, 2: 1} // 2 was evicted and restarts
	for _, id := range []uint64{1, 3, 4, 2} {
		if n := add(tb, 1, id, t0.Add(2*time.Minute)); n != want[id] {
			t.Errorf("key %d: count %d, want %d", id, n, want[id])
		}
	}
	// Entries of an earlier day are free: the next day evicts nothing.
	before := tb.Evictions()
	for id := uint64(10); id < 10+ways; id++ {
		add(tb, 1, id, t0.Add(24*time.Hour))
	}
	if n := tb.Evictions(); n != before {
		t.Errorf("the next day's keys evicted %d entries of the day before", n-before)
	}
}

func TestTableConcurrent(t *testing.T) {
	tb := New[counts](1 << 12)
	const goroutines, keys, rounds = 8, 500, 20
	var wg sync.WaitGroup
	for range goroutines {
		wg.Go(func() {
			for r := range rounds {
				for k := uint64(1); k <= keys; k++ {
					tb.Update(uint32(k%3), k*0x9E3779B97F4A7C15, t0.Add(time.Duration(r)*time.Second), func(v *counts) { v.a++ })
				}
			}
		})
	}
	wg.Wait()
	for k := uint64(1); k <= keys; k++ {
		if n := add(tb, uint32(k%3), k*0x9E3779B97F4A7C15, t0); n != goroutines*rounds+1 {
			t.Fatalf("key %d counted %d, want %d", k, n-1, goroutines*rounds)
		}
	}
	if tb.Evictions() != 0 {
		t.Errorf("%d evictions", tb.Evictions())
	}
}

func TestTableLayout(t *testing.T) {
	if n := unsafe.Sizeof(bucket[counts]{}); n != 128 {
		t.Errorf("a bucket of 16-byte counts is %d bytes, want 128 (two cache lines)", n)
	}
	if n := unsafe.Sizeof(paddedMutex{}); n != 64 {
		t.Errorf("a lock is %d bytes, want 64", n)
	}
	for _, tt := range []struct{ n, want int }{{0, ways}, {1, ways}, {ways + 1, 2 * ways}, {200_000, 1 << 18}} {
		if got := New[counts](tt.n).Len(); got != tt.want {
			t.Errorf("New(%d) holds %d entries, want %d", tt.n, got, tt.want)
		}
	}
}
