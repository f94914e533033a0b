package noise

import (
	"fmt"
	"math"
	"strconv"
	"sync"
	"testing"
	"time"
)

// scale is a discrete Laplace scale num/den.
type scale struct{ num, den uint64 }

func (s scale) String() string { return fmt.Sprintf("%d/%d", s.num, s.den) }

// lambda returns den/num, so that a = exp(-lambda).
func (s scale) lambda() float64 { return float64(s.den) / float64(s.num) }

// pmf returns the exact probability of x: (1-a)/(1+a) * a^|x|, with
// (1-a)/(1+a) = tanh(lambda/2), accurate for a close to 1.
func (s scale) pmf(x int64) float64 {
	l := s.lambda()
	return math.Tanh(l/2) * math.Exp(-l*math.Abs(float64(x)))
}

// tail returns P(|X| >= m) = 2a^m/(1+a) for m >= 1.
func (s scale) tail(m int64) float64 {
	l := s.lambda()
	return 2 * math.Exp(-l*float64(m)) / (1 + math.Exp(-l))
}

// tailOne returns P(X > m) = a^(m+1)/(1+a) for m >= 0.
func (s scale) tailOne(m int64) float64 { return s.tail(m+1) / 2 }

// variance returns 2a/(1-a)^2 and the fourth moment
// 2a(1+11a+11a^2+a^3)/((1+a)(1-a)^4), from the geometric series
// sum x^2 a^x = a(1+a)/(1-a)^3 and sum x^4 a^x = a(1+11a+11a^2+a^3)/(1-a)^5.
func (s scale) moments() (variance, fourth float64) {
	a := math.Exp(-s.lambda())
	b := -math.Expm1(-s.lambda()) // 1-a
	variance = 2 * a / (b * b)
	fourth = 2 * a * (1 + 11*a + 11*a*a + a*a*a) / ((1 + a) * b * b * b * b)
	return variance, fourth
}

// rounds returns the expected number of rounds of Algorithm 2 at this
// scale in lowest terms t/d: 1/(P(D=1) * (1+a)/2) with
// P(D=1) = (1-e^-1)/(t*(1-e^(-1/t))).
func (s scale) rounds() float64 {
	g := gcd(s.num, s.den)
	t := float64(s.num / g)
	pd := -math.Expm1(-1) / (t * -math.Expm1(-1/t))
	return 2 / (pd * (1 + math.Exp(-s.lambda())))
}

// TestBernoulliExp checks Algorithm 1 with the reduction for γ > 1
// against exp(-n/d), including the fallback when d*K overflows.
func TestBernoulliExp(t *testing.T) {
	const draws = 200_000
	for _, tt := range []struct{ n, d uint64 }{
		{0, 1}, {1, 3}, {1, 2}, {1, 1}, {2, 1}, {5, 2}, {7, 3}, {10, 3},
		{999_999_999_999, 1_000_000_000_000},
		{1 << 63, 1<<63 + 1}, // d*K overflows from K = 2
		{math.MaxUint64, 1 << 63},
	} {
		s := newStream(testKey(3))
		s.start(fmt.Sprintf("bernoulliExp/%d/%d", tt.n, tt.d))
		hits := 0
		for range draws {
			if s.bernoulliExp(tt.n, tt.d) {
				hits++
			}
		}
		p := math.Exp(-float64(tt.n) / float64(tt.d))
		if p == 1 {
			if hits != draws {
				t.Errorf("bernoulliExp(%d, %d): %d of %d, want all", tt.n, tt.d, hits, draws)
			}
			continue
		}
		checkBinomial(t, fmt.Sprintf("bernoulliExp(%d, %d)", tt.n, tt.d), hits, draws, p)
	}
}

func TestGCD(t *testing.T) {
	euclid := func(a, b uint64) uint64 {
		for b != 0 {
			a, b = b, a%b
		}
		return a
	}
	vals := []uint64{1, 2, 3, 4, 6, 12, 30, 97, 1000, 1 << 40, 3 << 40, 999_999_999_989, 1_000_000_000_000, math.MaxUint64, math.MaxUint64 - 1, 1 << 63}
	for _, a := range vals {
		for _, b := range vals {
			if got, want := gcd(a, b), euclid(a, b); got != want {
				t.Errorf("gcd(%d, %d) = %d, want %d", a, b, got, want)
			}
		}
	}
}

// The scales of the distribution tests: small and large, below 1, not
// integers, and with num and den near 2^40 and 2^64 (where d*K overflows
// in Algorithm 1 and the fallback draws).
var scales = []scale{
	{1, 1}, {2, 1}, {1, 2}, {1, 3}, {30, 1}, {1000, 1}, {1000, 7},
	{999_999_999_989, 300_000_000_000}, // a prime over 3e11: scale 3.33
	{math.MaxUint64, math.MaxUint64 - 1},
}

// sampleSet is nSamples draws at one scale, over distinct cells.
type sampleSet struct {
	n      int
	counts map[int64]int
	sum    float64 // of x
	sumSq  float64 // of x^2
	rounds int     // of Algorithm 2, in all
}

var (
	samplesMu    sync.Mutex
	samplesCache = map[scale]*sampleSet{}
)

// samplesTimeout bounds the time to draw one sample set: a broken
// sampler can loop forever (an acceptance that is never true), and the
// test should then fail rather than wait for go test's timeout.
const samplesTimeout = time.Minute

// samples draws nSamples at sc once per test binary, from cells
// "dist/<scale>/<i>" under testKey(0); the distribution, symmetry and
// tail tests share them.
func samples(t *testing.T, sc scale) *sampleSet {
	t.Helper()
	samplesMu.Lock()
	defer samplesMu.Unlock()
	if s, ok := samplesCache[sc]; ok {
		if s == nil {
			t.Fatalf("drawing at %s did not finish before", sc)
		}
		return s
	}
	samplesCache[sc] = nil
	done := make(chan *sampleSet, 1)
	go func() {
		n := New(testKey(0))
		s := &sampleSet{n: nSamples, counts: map[int64]int{}}
		cell := []byte("dist/" + sc.String() + "/")
		prefix := len(cell)
		for i := range nSamples {
			cell = strconv.AppendInt(cell[:prefix], int64(i), 10)
			x, r := n.laplace(string(cell), sc.num, sc.den)
			s.counts[x]++
			s.sum += float64(x)
			s.sumSq += float64(x) * float64(x)
			s.rounds += r
		}
		done <- s
	}()
	select {
	case s := <-done:
		samplesCache[sc] = s
		return s
	case <-time.After(samplesTimeout):
		t.Fatalf("%d draws at %s did not finish in %v: does a loop of the sampler never end?", nSamples, sc, samplesTimeout)
		return nil
	}
}

// TestLaplaceDistribution compares the draws at each scale with the
// exact pmf: a chi-square test over the values x with an expected count
// of at least 5 (|x| <= M) and the two tails x > M and x < -M (folded
// into ±M when their expected count is below 5), against the
// Wilson–Hilferty critical value at alpha; and the mean and the
// variance against 0 and 2a/(1-a)^2 within zTwoSided standard errors
// (sigma/sqrt(n), and sqrt((mu4 - sigma^4)/n) for the variance).
func TestLaplaceDistribution(t *testing.T) {
	for _, sc := range scales {
		t.Run(sc.String(), func(t *testing.T) {
			s := samples(t, sc)
			n := float64(s.n)
			var m int64
			for n*sc.pmf(m+1) >= 5 {
				m++
			}
			if n*sc.pmf(0) < 5 || m < 1 {
				t.Fatalf("too few samples for scale %s", sc)
			}
			// bins: -M..M, then x < -M, x > M
			var obs []int
			var exp []float64
			for x := -m; x <= m; x++ {
				obs = append(obs, s.counts[x])
				exp = append(exp, n*sc.pmf(x))
			}
			var below, above int
			for x, c := range s.counts {
				if x < -m {
					below += c
				} else if x > m {
					above += c
				}
			}
			if tail := n * sc.tailOne(m); tail >= 5 {
				obs = append(obs, below, above)
				exp = append(exp, tail, tail)
			} else {
				obs[0] += below
				exp[0] += tail
				obs[len(obs)-1] += above
				exp[len(exp)-1] += tail
			}
			df := len(obs) - 1
			x2, crit := chi2(obs, exp), chi2Critical(df, alpha)
			t.Logf("chi2 %.1f, df %d (|x| <= %d), critical %.1f", x2, df, m, crit)
			if x2 > crit {
				t.Errorf("chi2 %.1f > %.1f (df %d): the draws do not follow the pmf", x2, crit, df)
			}

			variance, fourth := sc.moments()
			mean := s.sum / n
			if se := math.Sqrt(variance / n); math.Abs(mean) > zTwoSided*se {
				t.Errorf("mean %.4f, want 0 ± %.4f", mean, zTwoSided*se)
			}
			v := s.sumSq/n - mean*mean
			se := math.Sqrt((fourth - variance*variance) / n)
			t.Logf("mean %.4f, variance %.4f (want %.4f ± %.4f)", mean, v, variance, zTwoSided*se)
			if math.Abs(v-variance) > zTwoSided*se {
				t.Errorf("variance %.4f, want %.4f ± %.4f", v, variance, zTwoSided*se)
			}
		})
	}
}

// TestLaplaceSymmetry compares the counts of x and -x: given that
// c(x) + c(-x) = N, c(x) is Binomial(N, 1/2) under symmetry, so
// sum (c(x) - c(-x))^2 / (c(x) + c(-x)) over the pairs x = 1..M with an
// expected N of at least 10, and the pooled tail pair |x| > M, is
// chi-square with one degree of freedom per pair; and the signs alone,
// (positives - negatives)/sqrt(positives + negatives), are within
// zTwoSided.
func TestLaplaceSymmetry(t *testing.T) {
	for _, sc := range scales {
		t.Run(sc.String(), func(t *testing.T) {
			s := samples(t, sc)
			n := float64(s.n)
			var m int64
			for 2*n*sc.pmf(m+1) >= 10 {
				m++
			}
			var x2 float64
			df := 0
			pair := func(pos, neg int) {
				if pos+neg > 0 {
					d := float64(pos - neg)
					x2 += d * d / float64(pos+neg)
					df++
				}
			}
			var tailPos, tailNeg, pos, neg int
			for x, c := range s.counts {
				switch {
				case x > 0:
					pos += c
				case x < 0:
					neg += c
				}
				switch {
				case x > m:
					tailPos += c
				case x < -m:
					tailNeg += c
				}
			}
			for x := int64(1); x <= m; x++ {
				pair(s.counts[x], s.counts[-x])
			}
			pair(tailPos, tailNeg)
			crit := chi2Critical(df, alpha)
			t.Logf("chi2 %.1f, df %d, critical %.1f; %d positive, %d negative", x2, df, crit, pos, neg)
			if x2 > crit {
				t.Errorf("chi2 %.1f > %.1f (df %d): x and -x are not equally likely", x2, crit, df)
			}
			if z := float64(pos-neg) / math.Sqrt(float64(pos+neg)); math.Abs(z) > zTwoSided {
				t.Errorf("%d positive against %d negative (z = %.2f, threshold %.2f)", pos, neg, z, zTwoSided)
			}
		})
	}
}

// TestLaplaceTails compares the frequency of |x| >= m with
// 2a^m/(1+a) for m = 1 and the m where that probability first falls
// below 1e-2, 1e-3 and 1e-4, as long as the expected count is at least
// 20, within zTwoSided binomial standard deviations.
func TestLaplaceTails(t *testing.T) {
	for _, sc := range scales {
		t.Run(sc.String(), func(t *testing.T) {
			s := samples(t, sc)
			ms := []int64{1}
			for _, q := range []float64{1e-2, 1e-3, 1e-4} {
				m := int64(math.Ceil(math.Log(q*(1+math.Exp(-sc.lambda()))/2) / -sc.lambda()))
				if m > ms[len(ms)-1] && float64(s.n)*sc.tail(m) >= 20 {
					ms = append(ms, m)
				}
			}
			for _, m := range ms {
				hits := 0
				for x, c := range s.counts {
					if x >= m || x <= -m {
						hits += c
					}
				}
				checkBinomial(t, fmt.Sprintf("|x| >= %d", m), hits, s.n, sc.tail(m))
			}
			t.Logf("m = %v", ms)
		})
	}
}

// TestLaplaceRounds checks the mean number of rounds of Algorithm 2
// against its expectation; a round is geometric with success
// probability p = 1/rounds, so the mean of n has standard error
// sqrt((1-p)/p^2/n).
func TestLaplaceRounds(t *testing.T) {
	for _, sc := range scales {
		s := samples(t, sc)
		want := sc.rounds()
		p := 1 / want
		se := math.Sqrt((1 - p) / (p * p) / float64(s.n))
		got := float64(s.rounds) / float64(s.n)
		t.Logf("%s: %.4f rounds per draw, expected %.4f", sc, got, want)
		if math.Abs(got-want) > zTwoSided*se {
			t.Errorf("%s: %.4f rounds per draw, want %.4f ± %.4f", sc, got, want, zTwoSided*se)
		}
	}
}
