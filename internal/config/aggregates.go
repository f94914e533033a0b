package config

import "github.com/glimpse-analytics/glimpse/internal/model"

// MaxRevenueClip bounds privacy.revenue_clip, so that the noise's scale
// in cents (clip × 100 × 30 events, × 1000 for epsilon's thousandths,
// × up to 1000 for sampling) fits 64 bits.
const MaxRevenueClip = 1_000_000_000

// aggregates validates a site's disclosure control: the mode (noisy by
// default in mode strict, exact otherwise), epsilon, the daily budget and
// the noise key.
func (v *validator) aggregates(p *Privacy, at []any) {
	switch p.Aggregates {
	case "":
		p.Aggregates = AggregatesExact
		if p.Mode == ModeStrict {
			p.Aggregates = AggregatesNoisy
		}
	case AggregatesNoisy, AggregatesExact:
	default:
		v.fail(append(at, "aggregates"), "unknown aggregates %q (want noisy or exact)", p.Aggregates)
	}
	switch {
	case p.Epsilon == 0:
		p.Epsilon = DefaultEpsilon
	case p.Epsilon < 0 || p.Epsilon > MaxEpsilon:
		v.fail(append(at, "epsilon"), "%g is out of range: want more than 0 and at most %d (smaller is more private and noisier)", p.Epsilon, MaxEpsilon)
	}
	switch {
	case p.Budget == 0:
		p.Budget = DefaultBudget
	case p.Budget < p.Epsilon:
		v.fail(append(at, "budget"), "%g is less than epsilon (%g): no number could be released", p.Budget, p.Epsilon)
	}
	switch {
	case p.RevenueClip == 0:
		p.RevenueClip = model.MaxRevenuePerEvent
	case p.RevenueClip < 0 || p.RevenueClip > MaxRevenueClip:
		v.fail(append(at, "revenue_clip"), "%d is out of range: want 1 to %d (units of a currency counted per event)", p.RevenueClip, int64(MaxRevenueClip))
	}
	if p.NoiseKey != "" && p.NoiseKeyEnv != "" {
		v.fail(append(at, "noise_key"), "give either noise_key or noise_key_env, not both")
		return
	}
	field := "noise_key"
	if p.NoiseKeyEnv != "" {
		field = "noise_key_env"
		p.NoiseKey = getenv(p.NoiseKeyEnv)
		if p.NoiseKey == "" {
			v.fail(append(at, field), "environment variable %s is empty or not set", p.NoiseKeyEnv)
			return
		}
	}
	if p.NoiseKey != "" && len(p.NoiseKey) < MinSigningKeyLen {
		v.fail(append(at, field), "%d bytes is too short; use at least %d random bytes (e.g. openssl rand -base64 32)", len(p.NoiseKey), MinSigningKeyLen)
	}
}
