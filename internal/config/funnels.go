package config

import (
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Funnel is a named sequence of steps a site's visitors take in order
// (aggregator/funnel.go): each step is a page (a path pattern) or a goal,
// and every step after the first must follow the first within Window.
type Funnel struct {
	Name  string       `yaml:"name"`
	Steps []FunnelStep `yaml:"steps"`
	// WindowText is a Go duration (default DefaultFunnelWindow, at most
	// MaxFunnelWindow, whole seconds); Window is it parsed.
	WindowText string        `yaml:"window"`
	Window     time.Duration `yaml:"-"`
}

// FunnelStep is one step: exactly one of Page and Goal.
type FunnelStep struct {
	// Name labels the step in reports (default "Visit <page>" or the goal).
	Name string `yaml:"name"`
	// Page is a path pattern with Plausible's globs: * within a path
	// segment, ** across segments.
	Page string `yaml:"page"`
	// Goal is a goal as event:goal filters name it: a custom event's
	// name, "Visit /path", "Outbound Link: Click" or "File Download".
	Goal string `yaml:"goal"`
}

// Funnel limits.
const (
	MinFunnelSteps      = 2
	MaxFunnelSteps      = 8
	DefaultFunnelWindow = time.Hour
	// MaxFunnelWindow: visitor ids are salted per UTC day, so the same
	// person is another visitor the next day and no funnel can follow
	// them across midnight UTC; a longer window would promise what the
	// data cannot hold.
	MaxFunnelWindow = 24 * time.Hour
)

// Label is the step's name as reported.
func (s FunnelStep) Label() string {
	switch {
	case s.Name != "":
		return s.Name
	case s.Page != "":
		return "Visit " + s.Page
	}
	return s.Goal
}

// FunnelProblem is one invalid field of a funnel: Field relative to the
// funnel (e.g. steps[1].page, window), and what is wrong.
type FunnelProblem struct {
	Field []any
	Msg   string
}

func (p FunnelProblem) Error() string {
	if len(p.Field) == 0 {
		return p.Msg
	}
	return fieldName(p.Field) + ": " + p.Msg
}

// CheckFunnel validates f's steps and window (not its name), setting
// f.Window, and returns what is wrong.
func CheckFunnel(f *Funnel) []FunnelProblem {
	var out []FunnelProblem
	fail := func(msg string, field ...any) { out = append(out, FunnelProblem{field, msg}) }
	if n := len(f.Steps); n < MinFunnelSteps || n > MaxFunnelSteps {
		fail(fmt.Sprintf("%d steps; a funnel has %d to %d", n, MinFunnelSteps, MaxFunnelSteps), "steps")
	}
	for i, s := range f.Steps {
		switch {
		case s.Page != "" && s.Goal != "":
			fail("give either page or goal, not both", "steps", i)
		case s.Page == "" && s.Goal == "":
			fail("missing; give a page (a path such as /pricing or /blog/**) or a goal (a custom event's name, or \"Visit /path\")", "steps", i)
		case s.Page != "" && !strings.HasPrefix(s.Page, "/"):
			fail(fmt.Sprintf("%q is not a path; start it with / (globs: * within a segment, ** across)", s.Page), "steps", i, "page")
		case len(s.Page) > 2000 || !utf8.ValidString(s.Page):
			fail("not a path of at most 2000 bytes of UTF-8", "steps", i, "page")
		case len(s.Goal) > 300 || !utf8.ValidString(s.Goal):
			fail("not a goal name of at most 300 bytes of UTF-8", "steps", i, "goal")
		case strings.HasPrefix(s.Goal, "Visit ") && !strings.HasPrefix(s.Goal, "Visit /"):
			fail(fmt.Sprintf("%q: a page goal is \"Visit /path\"", s.Goal), "steps", i, "goal")
		}
		if len(s.Name) > 100 {
			fail("longer than 100 bytes", "steps", i, "name")
		}
	}
	d, err := ParseFunnelWindow(f.WindowText)
	if err != nil {
		fail(err.Error(), "window")
	}
	f.Window = d
	return out
}

// ParseFunnelWindow parses a funnel's window: a Go duration of whole
// seconds from 1s to MaxFunnelWindow; "" is DefaultFunnelWindow.
func ParseFunnelWindow(s string) (time.Duration, error) {
	if s == "" {
		return DefaultFunnelWindow, nil
	}
	d, err := time.ParseDuration(s)
	switch {
	case err != nil:
		return 0, fmt.Errorf("%q is not a duration like 30m, 1h or 2h30m", s)
	case d < time.Second || d%time.Second != 0:
		return 0, fmt.Errorf("%q: want whole seconds, at least 1s", s)
	case d > MaxFunnelWindow:
		return 0, fmt.Errorf("%q is longer than 24h: visitor ids are salted per UTC day, so no funnel can follow a visitor across days", s)
	}
	return d, nil
}

// FormatFunnelWindow writes d as its largest whole unit: 1h, 90m, 45s.
func FormatFunnelWindow(d time.Duration) string {
	switch {
	case d%time.Hour == 0:
		return strconv.FormatInt(int64(d/time.Hour), 10) + "h"
	case d%time.Minute == 0:
		return strconv.FormatInt(int64(d/time.Minute), 10) + "m"
	}
	return strconv.FormatInt(int64(d/time.Second), 10) + "s"
}

// funnels validates a site's funnels.
func (v *validator) funnels(s *Site, at []any) {
	names := map[string]bool{}
	for i := range s.Funnels {
		f := &s.Funnels[i]
		fat := append(append([]any{}, at...), "funnels", i)
		if f.Name == "" {
			v.fail(append(fat, "name"), "missing; name each funnel (the dashboard and the API's funnel= name it)")
		} else if names[f.Name] {
			v.fail(append(fat, "name"), "%q is used by another funnel of this site", f.Name)
		} else if len(f.Name) > 100 || !utf8.ValidString(f.Name) {
			v.fail(append(fat, "name"), "not a name of at most 100 bytes of UTF-8")
		}
		names[f.Name] = true
		for _, p := range CheckFunnel(f) {
			v.fail(append(append([]any{}, fat...), p.Field...), "%s", p.Msg)
		}
	}
}

// FunnelNamed returns the site's funnel called name, or nil.
func (s *Site) FunnelNamed(name string) *Funnel {
	for i := range s.Funnels {
		if s.Funnels[i].Name == name {
			return &s.Funnels[i]
		}
	}
	return nil
}
