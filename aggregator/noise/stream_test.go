package noise

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math"
	"testing"
)

// TestStreamBits reads a cell's stream in widths from 1 to 64 bits and
// checks every bit against HMAC-SHA256 computed here from the
// definition: block i is HMAC(key, domain || cell || uint64be(i)), read
// word by little-endian word, each word from its least significant bit.
func TestStreamBits(t *testing.T) {
	key := testKey(0)
	for _, cell := range []string{"", "visitors|2025-03-01|", "x\x00y"} {
		var want []byte // one bit per byte
		for i := uint64(0); i < 8; i++ {
			mac := hmac.New(sha256.New, key)
			mac.Write([]byte(domain + cell))
			mac.Write(binary.BigEndian.AppendUint64(nil, i))
			sum := mac.Sum(nil)
			for w := 0; w < 4; w++ {
				word := binary.LittleEndian.Uint64(sum[8*w:])
				for b := 0; b < 64; b++ {
					want = append(want, byte(word>>b&1))
				}
			}
		}
		s := newStream(key)
		s.start(cell)
		pos := 0
		for i := 0; pos < len(want)-64; i++ {
			k := uint(1 + (i*37)%64) // 1, 38, 11, 48, ... all widths
			if i%5 == 4 {
				k = 64
			}
			v := s.bits(k)
			for b := uint(0); b < k; b++ {
				if got := byte(v >> b & 1); got != want[pos] {
					t.Fatalf("cell %q: bit %d (read %d of %d bits) = %d, want %d", cell, pos, i, k, got, want[pos])
				}
				pos++
			}
			if k < 64 && v>>k != 0 {
				t.Fatalf("cell %q: bits(%d) = %#x has more than %d bits", cell, k, v, k)
			}
		}
		if s.ctr != 8 {
			t.Errorf("cell %q: %d blocks computed for %d bits, want 8", cell, s.ctr, pos)
		}
	}
}

// TestUniform checks that uniform(m) is unbiased by a chi-square test of
// its counts, per value for small moduli and in 100 equal-width bins for
// large ones. The moduli are not powers of two, so a modulo reduction
// of too few bits (3: 0 twice as likely; 1000: 0..23 twice as likely;
// 1e12: the lowest 9% of the range twice as likely) fails it.
func TestUniform(t *testing.T) {
	for _, tt := range []struct {
		m     uint64
		draws int
		bins  int // 0: one per value
	}{
		{3, 300_000, 0},
		{5, 300_000, 0},
		{1000, 1_000_000, 0},
		{1_000_000_000_000, 200_000, 100},
		{3 << 62, 200_000, 100}, // 64 bits a try, a quarter rejected
		{math.MaxUint64, 200_000, 100},
	} {
		t.Run(fmt.Sprint(tt.m), func(t *testing.T) {
			bins := tt.bins
			if bins == 0 {
				bins = int(tt.m)
			}
			s := newStream(testKey(1))
			s.start(fmt.Sprintf("uniform/%d", tt.m))
			obs := make([]int, bins)
			for range tt.draws {
				v := s.uniform(tt.m)
				if v >= tt.m {
					t.Fatalf("uniform(%d) = %d", tt.m, v)
				}
				// v*bins/m in 128 bits; the bins' widths differ by at
				// most one value, nothing against m/bins.
				hi, lo := mul64(v, uint64(bins))
				q, _ := div64(hi, lo, tt.m)
				obs[q]++
			}
			exp := make([]float64, bins)
			for i := range exp {
				exp[i] = float64(tt.draws) / float64(bins)
			}
			x, crit := chi2(obs, exp), chi2Critical(bins-1, alpha)
			t.Logf("chi2 %.1f, df %d, critical %.1f", x, bins-1, crit)
			if x > crit {
				t.Errorf("chi2 %.1f > %.1f (df %d): uniform(%d) is biased", x, crit, bins-1, tt.m)
			}
		})
	}
	s := newStream(testKey(1))
	s.start("one")
	if v := s.uniform(1); v != 0 || s.ctr != 0 {
		t.Errorf("uniform(1) = %d after %d blocks, want 0 without drawing", v, s.ctr)
	}
}

// TestBernoulli checks bernoulli(n, d) against n/d with a binomial
// tolerance, and that certain outcomes draw nothing.
func TestBernoulli(t *testing.T) {
	const draws = 200_000
	for _, tt := range []struct{ n, d uint64 }{
		{1, 3}, {2, 3}, {1, 2}, {999, 1000}, {1, 10}, {500_000_000_001, 1_000_000_000_000},
	} {
		s := newStream(testKey(2))
		s.start(fmt.Sprintf("bernoulli/%d/%d", tt.n, tt.d))
		hits := 0
		for range draws {
			if s.bernoulli(tt.n, tt.d) {
				hits++
			}
		}
		checkBinomial(t, fmt.Sprintf("bernoulli(%d, %d)", tt.n, tt.d), hits, draws, float64(tt.n)/float64(tt.d))
	}
	s := newStream(testKey(2))
	s.start("certain")
	if s.bernoulli(0, 5) || !s.bernoulli(5, 5) || !s.bernoulli(6, 5) || s.ctr != 0 {
		t.Errorf("bernoulli(0|5|6, 5): want false, true, true without drawing")
	}
}

// checkBinomial fails t unless hits out of n is within zTwoSided
// standard deviations of n*p.
func checkBinomial(t *testing.T, what string, hits, n int, p float64) {
	t.Helper()
	mean := float64(n) * p
	sd := math.Sqrt(float64(n) * p * (1 - p))
	z := (float64(hits) - mean) / sd
	if math.Abs(z) > zTwoSided {
		t.Errorf("%s: %d of %d, expected %.1f ± %.1f (z = %.2f, threshold %.2f)", what, hits, n, mean, sd, z, zTwoSided)
	}
}
