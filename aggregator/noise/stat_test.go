package noise

import (
	"crypto/hmac"
	"crypto/sha256"
	"math"
	"math/bits"
)

// The statistical tests use fixed keys and cells, so each either always
// passes or always fails; alpha is the false-alarm rate a check would
// have over random keys. With a few dozen checks in the package the
// chance that a correct sampler fails one for a given choice of keys is
// below 1e-4.
const alpha = 1e-6

// testKey is a fixed 32-byte key: 0x00, 0x01, ..., 0x1f.
func testKey(seed byte) []byte {
	k := make([]byte, 32)
	for i := range k {
		k[i] = seed + byte(i)
	}
	return k
}

func newStream(key []byte) *stream {
	return &stream{mac: hmac.New(sha256.New, key)}
}

// zUpper returns z with P(Z > z) = p for a standard normal Z.
func zUpper(p float64) float64 { return math.Sqrt2 * math.Erfcinv(2*p) }

// zTwoSided is the two-sided threshold of a normal test at alpha
// (4.89 for 1e-6).
var zTwoSided = zUpper(alpha / 2)

// chi2Critical returns the upper-p critical value of a chi-square
// distribution with df degrees of freedom by the Wilson–Hilferty
// approximation: (X/df)^(1/3) is close to normal with mean 1-2/(9df)
// and variance 2/(9df). In the far tail it errs high for few degrees of
// freedom, which makes a test a little more lenient: at 1e-6 it gives
// 27.5 for df = 1 (exact 23.9), 48.0 for df = 10 (46.9), 113.0 for
// df = 50 (112.6) and is within 0.01% from df = 1000 on.
func chi2Critical(df int, p float64) float64 {
	k := float64(df)
	v := 2 / (9 * k)
	c := 1 - v + zUpper(p)*math.Sqrt(v)
	return k * c * c * c
}

// chi2 returns Pearson's statistic of observed counts against expected
// ones.
func chi2(obs []int, exp []float64) float64 {
	var x float64
	for i, o := range obs {
		d := float64(o) - exp[i]
		x += d * d / exp[i]
	}
	return x
}

func mul64(x, y uint64) (hi, lo uint64)    { return bits.Mul64(x, y) }
func div64(hi, lo, y uint64) (q, r uint64) { return bits.Div64(hi, lo, y) }
