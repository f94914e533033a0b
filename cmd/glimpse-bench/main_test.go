package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestPick(t *testing.T) {
	var all []*contestant
	for _, n := range []string{"bare", "discard", "store", "gate", "handoff"} {
		all = append(all, &contestant{name: n, floor: n == "gate" || n == "handoff"})
	}
	tests := []struct {
		only string
		want []string // nil: refused
	}{
		{"", []string{"bare", "discard", "store"}}, // the floors run only when named
		{"store", []string{"store"}},
		{"handoff, bare,gate", []string{"bare", "gate", "handoff"}}, // in the run's order
		{"bare,discard,store,gate,handoff", []string{"bare", "discard", "store", "gate", "handoff"}},
		{"bare,nope", nil},
		{"Bare", nil},
		{",", nil},
	}
	for _, tt := range tests {
		got, err := pick(all, tt.only)
		var names []string
		for _, c := range got {
			names = append(names, c.name)
		}
		if tt.want == nil {
			if err == nil {
				t.Errorf("pick(%q) = %v, want an error", tt.only, names)
			}
			continue
		}
		if err != nil || !slices.Equal(names, tt.want) {
			t.Errorf("pick(%q) = %v, %v; want %v", tt.only, names, err, tt.want)
		}
	}
}

// TestCheckFloorBuild builds a program with and without -tags benchfloor
// and checks that only the first is taken as a floor binary.
func TestCheckFloorBuild(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "main.go")
	if err := os.WriteFile(src, []byte("package main\n\nfunc main() {}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	build := func(name string, args ...string) string {
		out := filepath.Join(dir, name)
		cmd := exec.Command("go", append(append([]string{"build"}, args...), "-o", out, src)...)
		cmd.Dir = dir
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build %v: %v\n%s", args, err, b)
		}
		return out
	}
	if err := checkFloorBuild(build("floor", "-tags", "netgo,benchfloor")); err != nil {
		t.Errorf("a -tags benchfloor build refused: %v", err)
	}
	err := checkFloorBuild(build("plain"))
	if err == nil || !strings.Contains(err.Error(), "without -tags benchfloor") {
		t.Errorf("a plain build: err %v, want it refused", err)
	}
	if err := checkFloorBuild(filepath.Join(dir, "missing")); err == nil {
		t.Error("a missing binary was taken")
	}
}
