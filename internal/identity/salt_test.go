package identity

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// clock is a settable clock for Salts.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

func at(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

func newTestSalts(t *testing.T, c *clock) *Salts {
	t.Helper()
	s, err := NewSalts(context.Background(), SaltsConfig{Now: c.now})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

var (
	testIP = netip.MustParseAddr("203.0.113.7")
	testUA = []byte("Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0")
)

func isZero(b []byte) bool {
	return len(b) > 0 && bytes.Count(b, []byte{0}) == len(b)
}

func TestNewSalts(t *testing.T) {
	c := &clock{t: at("2025-03-01T12:00:00Z")}
	s := newTestSalts(t, c)
	cur := s.current()
	if len(cur) != SaltSize || isZero(cur) {
		t.Fatalf("current salt = %x", cur)
	}
	other := newTestSalts(t, c)
	if bytes.Equal(cur, other.current()) {
		t.Error("two instances drew the same salt")
	}
}

func TestSaltRotation(t *testing.T) {
	type check struct {
		at          string
		sameCurrent bool // the id equals the one of the step before
	}
	tests := []struct {
		name  string
		steps []check
	}{
		{
			name: "same day is stable",
			steps: []check{
				{at: "2025-03-01T00:00:00Z"},
				{at: "2025-03-01T12:00:00Z", sameCurrent: true},
				{at: "2025-03-01T23:59:59.999Z", sameCurrent: true},
			},
		},
		{
			name: "midnight rotates",
			steps: []check{
				{at: "2025-03-01T23:59:00Z"},
				{at: "2025-03-02T00:00:00Z"},
				{at: "2025-03-02T00:29:59Z", sameCurrent: true},
				{at: "2025-03-01T23:59:30Z", sameCurrent: true}, // clock stepped back: yesterday's salt stays gone
			},
		},
		{
			name: "skipped day",
			steps: []check{
				{at: "2025-03-01T23:59:00Z"},
				{at: "2025-03-03T00:01:00Z"},
			},
		},
		{
			name: "earlier time uses the current salt",
			steps: []check{
				{at: "2025-03-02T10:00:00Z"},
				{at: "2025-03-01T23:00:00Z", sameCurrent: true},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &clock{t: at(tt.steps[0].at)}
			s := newTestSalts(t, c)
			var last uint64
			for i, st := range tt.steps {
				now := at(st.at)
				c.set(now)
				cur := s.VisitorID(now, "example.com", testIP, testUA)
				if cur == 0 {
					t.Fatalf("step %d: zero id", i)
				}
				if i > 0 && (cur == last) != st.sameCurrent {
					t.Errorf("step %d (%s): same id as before = %v, want %v", i, st.at, cur == last, st.sameCurrent)
				}
				last = cur
			}
		})
	}
}

// TestOldSaltIsZeroedAtMidnight: at 00:00 UTC the day's salt is
// overwritten, and the key VisitorID reads without a lock is the new
// day's.
func TestOldSaltIsZeroedAtMidnight(t *testing.T) {
	c := &clock{t: at("2025-03-01T23:59:00Z")}
	s := newTestSalts(t, c)
	old := s.current()
	oldCopy := bytes.Clone(old)

	c.set(at("2025-03-02T00:00:00Z"))
	s.Rotate() // no VisitorID call: Rotate alone must destroy it
	if !isZero(old) {
		t.Errorf("yesterday's salt still holds %x", old)
	}
	if cur := s.current(); bytes.Equal(cur, oldCopy) || isZero(cur) {
		t.Errorf("current salt after midnight = %x", cur)
	}
	k0, k1 := binary.LittleEndian.Uint64(oldCopy[0:8]), binary.LittleEndian.Uint64(oldCopy[8:16])
	if s.hot.k0.Load() == k0 || s.hot.k1.Load() == k1 {
		t.Error("yesterday's key still published to VisitorID")
	}
	if s.hot.k0.Load() != s.cur.k0 || s.hot.k1.Load() != s.cur.k1 || s.hot.day.Load() != s.cur.day {
		t.Error("published key is not the current day's")
	}
}

func TestSkippedDayZeroesOldSalt(t *testing.T) {
	c := &clock{t: at("2025-03-01T10:00:00Z")}
	s := newTestSalts(t, c)
	old := s.current()
	c.set(at("2025-03-03T00:00:01Z"))
	s.Rotate()
	if !isZero(old) {
		t.Errorf("salt from two days ago still holds %x", old)
	}
}

func TestSaltsRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// The bubble's clock starts at 2000-01-01T00:00:00Z.
		time.Sleep(23*time.Hour + 59*time.Minute)
		ctx, cancel := context.WithCancel(t.Context())
		s, err := NewSalts(ctx, SaltsConfig{})
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error)
		go func() { done <- s.Run(ctx) }()
		old := s.current()

		time.Sleep(2 * time.Minute) // 00:01
		synctest.Wait()
		if !isZero(old) || &s.current()[0] == &old[0] {
			t.Fatal("Run did not destroy the day's salt at midnight")
		}
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Run returned %v", err)
		}
	})
}

// memStore is a Store shared by several Salts, like a ClickHouse table.
type memStore struct {
	mu    sync.Mutex
	salts map[time.Time][]byte
	fail  bool
	calls int
}

func (m *memStore) store() *Store {
	return &Store{LoadOrStore: func(ctx context.Context, day time.Time, candidate []byte) ([]byte, error) {
		m.mu.Lock()
		defer m.mu.Unlock()
		m.calls++
		if m.fail {
			return nil, errors.New("connection refused")
		}
		if day.Hour() != 0 || day.Location() != time.UTC {
			return nil, errors.New("day is not a UTC midnight")
		}
		if m.salts == nil {
			m.salts = make(map[time.Time][]byte)
		}
		if s, ok := m.salts[day]; ok {
			return s, nil
		}
		m.salts[day] = candidate
		return candidate, nil
	}}
}

func (m *memStore) setFail(f bool) {
	m.mu.Lock()
	m.fail = f
	m.mu.Unlock()
}

func TestSharedSalts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		time.Sleep(12 * time.Hour)
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		st := &memStore{}
		a, b := twoSalts(t, ctx, st.store())
		same := func(when string) {
			t.Helper()
			if ac, bc := sameVisitor(a, b); ac != bc {
				t.Errorf("%s: instances disagree: %x vs %x", when, ac, bc)
			}
		}
		same("noon")
		go a.Run(ctx)
		go b.Run(ctx)
		time.Sleep(12*time.Hour + time.Minute) // 00:01 next day
		synctest.Wait()
		same("after midnight")

		// Salts copies what the Store returns: destroying its copy must not
		// touch the Store's.
		time.Sleep(24 * time.Hour)
		synctest.Wait()
		st.mu.Lock()
		for day, salt := range st.salts {
			if isZero(salt) {
				t.Errorf("salt of %s in the store was zeroed", day)
			}
		}
		st.mu.Unlock()

		// If the store is down for a whole day, each instance falls back to
		// a private salt rather than stop.
		st.setFail(true)
		st.mu.Lock()
		clear(st.salts)
		st.mu.Unlock()
		a.mu.Lock()
		a.next.destroy()
		a.mu.Unlock()
		time.Sleep(24 * time.Hour)
		synctest.Wait()
		now := time.Now()
		ac := a.VisitorID(now, "example.com", testIP, testUA)
		bc := b.VisitorID(now, "example.com", testIP, testUA)
		if ac == 0 || ac == bc {
			t.Errorf("store down: ids %x and %x, want a private salt on the instance that missed the prefetch", ac, bc)
		}
	})
}

func TestSharedSaltsErrors(t *testing.T) {
	st := &memStore{fail: true}
	if _, err := NewSalts(context.Background(), SaltsConfig{Store: st.store()}); err == nil || !strings.Contains(err.Error(), "cannot load the shared salt for") {
		t.Errorf("store down: err = %v", err)
	}
	short := &Store{LoadOrStore: func(context.Context, time.Time, []byte) ([]byte, error) { return []byte("short"), nil }}
	if _, err := NewSalts(context.Background(), SaltsConfig{Store: short}); err == nil || !strings.Contains(err.Error(), "has 5 bytes, want at least 16") {
		t.Errorf("short salt: err = %v", err)
	}
	if _, err := NewSalts(context.Background(), SaltsConfig{Store: &Store{}}); err == nil {
		t.Error("empty Store accepted")
	}
}

func TestDayOf(t *testing.T) {
	for _, tt := range []struct {
		at   string
		want int64
	}{
		{"1970-01-01T00:00:00Z", 0},
		{"1970-01-01T23:59:59Z", 0},
		{"1970-01-02T00:00:00Z", 1},
		{"1969-12-31T23:59:59Z", -1},
		{"2025-03-02T00:30:00+02:00", dayOf(at("2025-03-01T22:30:00Z"))},
	} {
		if got := dayOf(at(tt.at)); got != tt.want {
			t.Errorf("dayOf(%s) = %d, want %d", tt.at, got, tt.want)
		}
	}
}

// twoSalts returns two instances sharing store, as two collectors.
func twoSalts(t *testing.T, ctx context.Context, store *Store) (a, b *Salts) {
	t.Helper()
	var err error
	if a, err = NewSalts(ctx, SaltsConfig{Store: store}); err != nil {
		t.Fatal(err)
	}
	if b, err = NewSalts(ctx, SaltsConfig{Store: store}); err != nil {
		t.Fatal(err)
	}
	return a, b
}

// sameVisitor returns the ids a and b give one visitor now.
func sameVisitor(a, b *Salts) (ac, bc uint64) {
	now := time.Now()
	return a.VisitorID(now, "example.com", testIP, testUA), b.VisitorID(now, "example.com", testIP, testUA)
}

// laggingStore is a shared store read through replicas that lag: each
// instance's LoadOrStore sees only its own candidate (it stored it and
// read it back before the others' arrived), while Load, asked later,
// sees every candidate and returns the first stored.
type laggingStore struct {
	mu    sync.Mutex
	first map[time.Time][]byte
}

func (l *laggingStore) store() *Store {
	return &Store{
		LoadOrStore: func(ctx context.Context, day time.Time, candidate []byte) ([]byte, error) {
			l.mu.Lock()
			defer l.mu.Unlock()
			if l.first == nil {
				l.first = make(map[time.Time][]byte)
			}
			if _, ok := l.first[day]; !ok {
				l.first[day] = bytes.Clone(candidate)
			}
			return candidate, nil
		},
		Load: func(ctx context.Context, day time.Time) ([]byte, error) {
			l.mu.Lock()
			defer l.mu.Unlock()
			return l.first[day], nil
		},
	}
}

// TestSharedSaltsSettle: two instances that each took their own candidate
// for today and tomorrow (a replica read before the other's candidate
// reached it) agree on the first stored a minute after Run starts, and on
// tomorrow's before midnight.
func TestSharedSaltsSettle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		time.Sleep(12 * time.Hour)
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		st := &laggingStore{}
		a, b := twoSalts(t, ctx, st.store())
		agree := func() bool {
			ac, bc := sameVisitor(a, b)
			return ac == bc
		}
		if agree() {
			t.Fatal("the lagging store let both instances see one candidate; the test proves nothing")
		}
		loser := b.current()
		go a.Run(ctx)
		go b.Run(ctx)
		synctest.Wait()
		time.Sleep(time.Minute + time.Second)
		synctest.Wait()
		if !agree() {
			t.Error("a minute after Run started the instances still disagree on today's salt")
		}
		if !isZero(loser) {
			t.Error("the salt given up was not zeroed")
		}
		time.Sleep(12 * time.Hour) // past midnight: tomorrow's salts were each their own at first
		synctest.Wait()
		if !agree() {
			t.Error("after midnight the instances disagree on the day's salt")
		}
	})
}
