package noise

import (
	"bytes"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// TestLaplaceDeterministic checks that a draw is a function of the key,
// the cell and the scale as a number: the same from two Noise values of
// the same key, in any order, after the caller reuses its key slice, and
// for 6/2 as for 3/1.
func TestLaplaceDeterministic(t *testing.T) {
	key := testKey(7)
	n1 := New(key)
	n2 := New(bytes.Clone(key))
	clear(key) // New keeps its own copy
	cells := []string{"", "a", "visitors|2025-03-01..2025-04-01|Europe/Berlin|page=/x", strings.Repeat("long", 100)}
	for _, sc := range []scale{{1, 1}, {30, 1}, {1, 3}, {1000, 7}} {
		want := make([]int64, len(cells))
		for i, c := range cells {
			want[i] = n1.Laplace(c, sc.num, sc.den)
		}
		for i := len(cells) - 1; i >= 0; i-- {
			if got := n2.Laplace(cells[i], sc.num, sc.den); got != want[i] {
				t.Errorf("%s cell %q: another Noise of the key gives %d, want %d", sc, cells[i], got, want[i])
			}
			if got := n1.Laplace(cells[i], sc.num, sc.den); got != want[i] {
				t.Errorf("%s cell %q: asked again, %d, want %d", sc, cells[i], got, want[i])
			}
			if got := n1.Laplace(cells[i], 5*sc.num, 5*sc.den); got != want[i] {
				t.Errorf("%s cell %q: at %d/%d, %d, want %d", sc, cells[i], 5*sc.num, 5*sc.den, got, want[i])
			}
		}
	}
}

// TestLaplaceGolden pins the derivation: key, domain, cell and counter
// layout, the bit order and the sampler. Released numbers depend on it;
// changing any of it gives every cell fresh noise that a reader who saw
// both versions could average, so it must not change by accident.
func TestLaplaceGolden(t *testing.T) {
	n := New(testKey(0))
	for _, tt := range []struct {
		cell     string
		num, den uint64
		want     int64
	}{
		{"visitors", 1, 1, 1},
		{"visitors", 30, 1, -15},
		{"visitors", 1000, 1, 2083},
		{"pageviews|page=/", 1, 3, 0},
		{"pageviews|page=/", 1_000_000_000_000, 1, -395142755588},
		{"", 2, 1, 2},
	} {
		if got := n.Laplace(tt.cell, tt.num, tt.den); got != tt.want {
			t.Errorf("Laplace(%q, %d, %d) = %d, want %d", tt.cell, tt.num, tt.den, got, tt.want)
		}
	}
}

// TestLaplaceKeying draws 10,000 cells at scale 1 and counts how often
// two draws agree that should be independent: under another key (one
// bit of it flipped), and for the neighbouring cell under the same key.
// Independent draws agree with probability sum P(x)^2 =
// tanh(1/2)^2 (1+a^2)/(1-a^2) = 0.280; the count must be within
// zTwoSided binomial standard deviations of that, not above (the noise
// leaks across keys or cells) and not below.
func TestLaplaceKeying(t *testing.T) {
	const cells = 10_000
	sc := scale{1, 1}
	a := math.Exp(-1)
	p := math.Pow(math.Tanh(0.5), 2) * (1 + a*a) / (1 - a*a)

	key := testKey(0)
	other := bytes.Clone(key)
	other[31] ^= 1
	n, m := New(key), New(other)
	sameKey, sameCell := 0, 0
	prev := n.Laplace("keying/-1", sc.num, sc.den)
	for i := range cells {
		c := "keying/" + strconv.Itoa(i)
		x := n.Laplace(c, sc.num, sc.den)
		if x == m.Laplace(c, sc.num, sc.den) {
			sameCell++
		}
		if x == prev {
			sameKey++
		}
		prev = x
	}
	t.Logf("two keys agree on %d of %d cells, neighbouring cells on %d; independent draws %.1f", sameCell, cells, sameKey, p*cells)
	checkBinomial(t, "one cell under two keys", sameCell, cells, p)
	checkBinomial(t, "neighbouring cells under one key", sameKey, cells, p)
}

// TestLaplaceConcurrent draws the same cells from several goroutines
// sharing one Noise (run it with -race) and compares with one goroutine.
func TestLaplaceConcurrent(t *testing.T) {
	n := New(testKey(4))
	want := make([]int64, 500)
	for i := range want {
		want[i] = n.Laplace("c/"+strconv.Itoa(i), 30, 1)
	}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for j := range want {
				i := (j + 125*g) % len(want)
				if got := n.Laplace("c/"+strconv.Itoa(i), 30, 1); got != want[i] {
					t.Errorf("goroutine %d, cell %d: %d, want %d", g, i, got, want[i])
				}
			}
		})
	}
	wg.Wait()
}

// TestNoisePrint checks that printing a Noise shows none of its key.
func TestNoisePrint(t *testing.T) {
	key := []byte("a secret site key of 32 bytes!!!")
	n := New(key)
	n.Laplace("x", 1, 1) // the pool holds a stream now
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x"} {
		out := fmt.Sprintf(verb, n)
		for _, k := range []string{string(key), fmt.Sprint(key), fmt.Sprintf("%x", key), fmt.Sprintf("%#v", key)} {
			if strings.Contains(out, k) {
				t.Errorf("Sprintf(%q) shows the key: %s", verb, out)
			}
		}
	}
}

func TestPanics(t *testing.T) {
	for _, tt := range []struct {
		name string
		f    func()
	}{
		{"short key", func() { New(make([]byte, 31)) }},
		{"num 0", func() { New(testKey(0)).Laplace("x", 0, 1) }},
		{"den 0", func() { New(testKey(0)).Laplace("x", 1, 0) }},
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic", tt.name)
				}
			}()
			tt.f()
		}()
	}
	New(make([]byte, 32)) // 32 bytes is enough
}
