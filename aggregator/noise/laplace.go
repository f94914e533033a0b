package noise

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"math"
	"math/bits"
	"sync"
)

// minKeyLen is the shortest key New accepts, as the config validator's
// MinSigningKeyLen.
const minKeyLen = 32

// Noise draws the noise of one site. It is safe for concurrent use; the
// zero Noise is not usable, make one with New.
type Noise struct {
	// streams holds *stream, each with its own HMAC under the key. The
	// key lives only in the pool's New closure and the HMAC states, so
	// printing a Noise (%v, %+v, %#v) shows no key material.
	streams sync.Pool
}

// New returns the noise of one site, keyed by key (at least 32 bytes; a
// shorter key panics, the config validator refuses them).
func New(key []byte) *Noise {
	if len(key) < minKeyLen {
		panic("noise: key shorter than 32 bytes")
	}
	key = bytes.Clone(key)
	n := new(Noise)
	n.streams.New = func() any { return &stream{mac: hmac.New(sha256.New, key)} }
	return n
}

// Laplace returns an integer drawn from the discrete Laplace distribution
// with scale num/den: P(x) = (1-a)/(1+a) * a^|x| with a = exp(-den/num).
// The draw is a deterministic function of the key and cell: the same key
// and cell always give the same integer; different cells give independent
// draws. num >= 1, den >= 1.
//
// The draw depends on the scale only as a number: num/den is reduced to
// lowest terms first, so 6/2 and 3/1 give the same integer. Laplace
// panics if num or den is 0.
func (n *Noise) Laplace(cell string, num, den uint64) int64 {
	x, _ := n.laplace(cell, num, den)
	return x
}

// laplace is Laplace, also returning how many rounds of the sampler's
// loop the draw took (for tests and benchmarks).
func (n *Noise) laplace(cell string, num, den uint64) (x int64, rounds int) {
	if num == 0 || den == 0 {
		panic("noise: Laplace scale num/den needs num >= 1 and den >= 1")
	}
	if g := gcd(num, den); g > 1 {
		num, den = num/g, den/g
	}
	s := n.streams.Get().(*stream)
	s.start(cell)
	x, rounds = s.laplace(num, den)
	n.streams.Put(s)
	return x, rounds
}

// laplace draws from the discrete Laplace distribution with scale t/d
// (t, d >= 1) by Algorithm 2 of Canonne, Kamath and Steinke, "The
// Discrete Gaussian for Differential Privacy" (NeurIPS 2020):
//
//	repeat:
//	    U uniform in [0, t)
//	    D ~ Bernoulli(exp(-U/t)); if D = 0, start over
//	    V = number of successes of Bernoulli(exp(-1)) before the first failure
//	    X = U + t*V          (geometric: P(X = x) ∝ exp(-x/t))
//	    Y = floor(X/d)       (geometric: P(Y = y) ∝ a^y, a = exp(-d/t))
//	    B ~ Bernoulli(1/2); if B = 1 and Y = 0, start over
//	    return (1-2B)*Y
//
// Each round returns with probability P(D=1)*(1+a)/2, where
// P(D=1) = (1-e^-1)/(t*(1-e^(-1/t))) lies in (0.63, 1], so the loop
// runs 1/(that) < 3.2 rounds on average (1.46 at scale 1, 1.58 for large
// scales, 1.90 at scale 1/3).
//
// Arithmetic and bounds: every quantity is a uint64 and nothing relies
// on a bound on t or d. U < t; the Bernoulli draws below handle d*K
// overflowing; X = U + t*V is formed in 128 bits (t*V + U < 2^128), and
// Y = X/d is the 128-by-64 division, saturated when the quotient does not
// fit. The one concession is that |result| saturates at MaxInt64: that
// needs Y >= 2^63, which at scale t/d has probability about
// exp(-2^63*d/t), below exp(-9e6) for t/d <= 1e12.
func (s *stream) laplace(t, d uint64) (int64, int) {
	for rounds := 1; ; rounds++ {
		u := s.uniform(t)
		if !s.bernoulliExp(u, t) {
			continue
		}
		var v uint64
		for s.bernoulliExp(1, 1) {
			v++
		}
		hi, lo := bits.Mul64(t, v)
		lo, carry := bits.Add64(lo, u, 0)
		hi += carry
		y := uint64(math.MaxUint64)
		if hi < d {
			y, _ = bits.Div64(hi, lo, d)
		}
		neg := s.bits(1) == 1
		if neg && y == 0 {
			continue
		}
		y = min(y, math.MaxInt64)
		if neg {
			return -int64(y), rounds
		}
		return int64(y), rounds
	}
}

// bernoulliExp returns true with probability exp(-n/d) (d >= 1), by
// Algorithm 1 of Canonne, Kamath and Steinke with their reduction for
// γ = n/d > 1: true only if floor(γ) draws of Bernoulli(exp(-1)) and
// one of Bernoulli(exp(-(γ - floor(γ)))) all are. The loop stops at the
// first false, so it runs 1/(1-e^-1) = 1.58 times on average however
// large γ is.
func (s *stream) bernoulliExp(n, d uint64) bool {
	for i := n / d; i > 0; i-- {
		if !s.bernoulliExpUnit(1, 1) {
			return false
		}
	}
	return s.bernoulliExpUnit(n%d, d)
}

// bernoulliExpUnit returns true with probability exp(-γ), γ = n/d in
// [0, 1], by von Neumann's method (Algorithm 1): draw A ~ Bernoulli(γ/K)
// for K = 1, 2, ... until A = 0 and return whether that K is odd. It
// reaches K with probability γ^(K-1)/(K-1)!, so it draws e^γ <= 2.72
// times on average.
func (s *stream) bernoulliExpUnit(n, d uint64) bool {
	k := uint64(1)
	for s.bernoulliScaled(n, d, k) {
		k++
	}
	return k&1 == 1
}

// bernoulliScaled returns true with probability n/(d*k). When d*k
// overflows 64 bits it draws Bernoulli(n/d) and Bernoulli(1/k)
// independently and returns whether both are true, which has the same
// probability. (For d <= 1e12 that needs k > 2^24, which Algorithm 1
// reaches with probability below 1/(2^24)!; for d > 2^63 it is k >= 2.)
func (s *stream) bernoulliScaled(n, d, k uint64) bool {
	hi, dk := bits.Mul64(d, k)
	if hi != 0 {
		return s.bernoulli(n, d) && s.bernoulli(1, k)
	}
	return s.bernoulli(n, dk)
}

// gcd returns the greatest common divisor of a, b >= 1 (Stein's binary
// algorithm: shifts and subtractions, no division).
func gcd(a, b uint64) uint64 {
	shift := bits.TrailingZeros64(a | b)
	a >>= bits.TrailingZeros64(a)
	for {
		b >>= bits.TrailingZeros64(b)
		if a > b {
			a, b = b, a
		}
		b -= a
		if b == 0 {
			return a << shift
		}
	}
}
