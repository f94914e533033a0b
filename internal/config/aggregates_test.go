package config

import (
	"os"
	"strings"
	"testing"
)

func TestAggregatesDefaults(t *testing.T) {
	f, err := Parse("glimpse.yaml", []byte(`sites:
  - domain: strict.example
  - domain: counted.example
    privacy: {mode: aggregate}
  - domain: exact.example
    privacy: {aggregates: exact}
  - domain: tuned.example
    privacy: {epsilon: 1.5, budget: 300, noise_key: "0123456789abcdef0123456789abcdef"}
`))
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []struct {
		aggregates      string
		epsilon, budget float64
	}{
		{AggregatesNoisy, DefaultEpsilon, DefaultBudget},
		{AggregatesExact, DefaultEpsilon, DefaultBudget},
		{AggregatesExact, DefaultEpsilon, DefaultBudget},
		{AggregatesNoisy, 1.5, 300},
	} {
		p := f.Sites[i].Privacy
		if p.Aggregates != want.aggregates || p.Epsilon != want.epsilon || p.Budget != want.budget {
			t.Errorf("%s: aggregates %q epsilon %g budget %g; want %q %g %g", f.Sites[i].Domain, p.Aggregates, p.Epsilon, p.Budget,
				want.aggregates, want.epsilon, want.budget)
		}
		if p.RevenueClip != 1000 {
			t.Errorf("%s: revenue_clip %d, want the default 1000", f.Sites[i].Domain, p.RevenueClip)
		}
		if p.Noisy() != (want.aggregates == AggregatesNoisy) {
			t.Errorf("%s: Noisy() %v", f.Sites[i].Domain, p.Noisy())
		}
	}
}

func TestAggregatesErrors(t *testing.T) {
	getenv = func(k string) string {
		if k == "SHORT_KEY" {
			return "short"
		}
		return ""
	}
	t.Cleanup(func() { getenv = os.Getenv })
	for _, tt := range []struct{ privacy, want string }{
		{`{aggregates: fuzzy}`, `privacy.aggregates: unknown aggregates "fuzzy"`},
		{`{epsilon: -1}`, `privacy.epsilon: -1 is out of range`},
		{`{epsilon: 11}`, `privacy.epsilon: 11 is out of range`},
		{`{epsilon: 2, budget: 1}`, `privacy.budget: 1 is less than epsilon (2)`},
		{`{noise_key: short}`, `privacy.noise_key: 5 bytes is too short`},
		{`{revenue_clip: -5}`, `privacy.revenue_clip: -5 is out of range`},
		{`{revenue_clip: 2000000000}`, `privacy.revenue_clip: 2000000000 is out of range`},
		{`{noise_key_env: MISSING}`, `privacy.noise_key_env: environment variable MISSING is empty or not set`},
		{`{noise_key_env: SHORT_KEY}`, `privacy.noise_key_env: 5 bytes is too short`},
		{`{noise_key: "0123456789abcdef0123456789abcdef", noise_key_env: X}`, `privacy.noise_key: give either`},
	} {
		_, err := Parse("glimpse.yaml", []byte("sites:\n  - domain: example.com\n    privacy: "+tt.privacy+"\n"))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want %q", tt.privacy, err, tt.want)
		}
	}
}
