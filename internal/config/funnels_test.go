package config

import (
	"strings"
	"testing"
	"time"
)

func TestFunnels(t *testing.T) {
	good := `sites:
  - domain: example.com
    funnels:
      - name: Signup
        steps:
          - page: /pricing
          - goal: Signup
            name: Signed up
          - page: /blog/**
        window: 30m
      - name: Default window
        steps: [{page: /}, {goal: Visit /docs/*}]
`
	f, err := Parse("good.yaml", []byte(good))
	if err != nil {
		t.Fatal(err)
	}
	s := f.Site("example.com")
	if got := s.FunnelNamed("Signup"); got == nil || got.Window != 30*time.Minute || got.Steps[1].Label() != "Signed up" || got.Steps[0].Label() != "Visit /pricing" {
		t.Errorf("Signup funnel = %+v", got)
	}
	if got := s.FunnelNamed("Default window"); got == nil || got.Window != time.Hour {
		t.Errorf("default window = %+v", got)
	}
	for _, c := range []struct{ funnel, want string }{
		{"{name: a, steps: [{page: /}]}", "sites[0].funnels[0].steps: 1 steps; a funnel has 2 to 8"},
		{"{name: a, steps: [{page: /}, {page: /a, goal: b}]}", "sites[0].funnels[0].steps[1]: give either page or goal"},
		{"{name: a, steps: [{page: /}, {name: x}]}", "sites[0].funnels[0].steps[1]: missing"},
		{"{name: a, steps: [{page: pricing}, {goal: b}]}", "sites[0].funnels[0].steps[0].page: \"pricing\" is not a path"},
		{"{name: a, steps: [{page: /}, {goal: b}], window: 25h}", "sites[0].funnels[0].window: \"25h\" is longer than 24h: visitor ids are salted per UTC day"},
		{"{name: a, steps: [{page: /}, {goal: b}], window: soon}", "sites[0].funnels[0].window: \"soon\" is not a duration"},
		{"{name: a, steps: [{page: /}, {goal: b}], window: 1500ms}", "want whole seconds"},
		{"{steps: [{page: /}, {goal: b}]}", "sites[0].funnels[0].name: missing"},
		{"{name: a, steps: [{page: /}, {goal: b}]}\n      - {name: a, steps: [{page: /}, {goal: b}]}", "sites[0].funnels[1].name: \"a\" is used by another funnel"},
		{"{name: a, steps: [{page: /}, {page: /1}, {page: /2}, {page: /3}, {page: /4}, {page: /5}, {page: /6}, {page: /7}, {page: /8}]}", "9 steps"},
	} {
		_, err := Parse("bad.yaml", []byte("sites:\n  - domain: example.com\n    funnels:\n      - "+c.funnel+"\n"))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want %q", c.funnel, err, c.want)
		}
	}
}
