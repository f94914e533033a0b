package main

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// readmeSection returns the README's section under heading, up to the
// next heading of the same or a higher level.
func readmeSection(t *testing.T, heading string) string {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	i := strings.Index(s, "\n"+heading+"\n")
	if i < 0 {
		t.Fatalf("README has no heading %q", heading)
	}
	s = s[i+1+len(heading):]
	level := strings.SplitN(heading, " ", 2)[0]
	for _, h := range []string{"\n# ", "\n## ", "\n### "} {
		if len(strings.TrimSpace(h)) > len(level) {
			continue
		}
		if j := strings.Index(s, h); j >= 0 {
			s = s[:j]
		}
	}
	return s
}

var fence = regexp.MustCompile("(?ms)^```([a-z]*)\n(.*?)^```\n")

// TestReadmeCompose: the Docker Compose example cannot be run here (no
// Docker), so at least its files parse, and every glimpse flag and
// GLIMPSE_* variable it uses is one serve knows.
func TestReadmeCompose(t *testing.T) {
	sec := readmeSection(t, "### Docker Compose")
	blocks := fence.FindAllStringSubmatch(sec, -1)
	kinds := map[string]int{}
	for _, b := range blocks {
		kind, text := b[1], b[2]
		kinds[kind]++
		switch kind {
		case "yaml":
			var v map[string]any
			if err := yaml.Unmarshal([]byte(text), &v); err != nil {
				t.Errorf("yaml block does not parse: %v\n%s", err, text)
			} else if _, ok := v["services"]; !ok {
				t.Errorf("yaml block has no services:\n%s", text)
			}
		case "xml":
			d := xml.NewDecoder(strings.NewReader(text))
			for {
				_, err := d.Token()
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					t.Errorf("xml block does not parse: %v\n%s", err, text)
					break
				}
			}
		case "nginx":
			if strings.Count(text, "{") != strings.Count(text, "}") {
				t.Errorf("nginx block has unbalanced braces:\n%s", text)
			}
		}
	}
	for _, k := range []string{"dockerfile", "yaml", "xml", "nginx", "sh"} {
		if kinds[k] == 0 {
			t.Errorf("the Docker Compose section has no %s block (blocks: %v)", k, kinds)
		}
	}

	// The variables and flags serve takes.
	fs := newFlagSet("glimpse", io.Discard)
	var o globalOptions
	o.register(fs)
	cmds := commands()
	serve := cmds[slices.IndexFunc(cmds, func(c *command) bool { return c.name == "serve" })]
	serve.flags(fs)
	vars := map[string]bool{defaultSaltKeyEnv: true}
	for _, e := range fs.env {
		vars[e.variable] = true
	}
	for _, v := range regexp.MustCompile(`GLIMPSE_[A-Z_]+`).FindAllString(sec, -1) {
		if !vars[v] {
			t.Errorf("README's Docker Compose section uses %s, which serve does not read", v)
		}
	}
	for _, m := range regexp.MustCompile(`"--([a-z-]+)"`).FindAllStringSubmatch(sec, -1) {
		if fs.Lookup(m[1]) == nil {
			t.Errorf("README's Docker Compose section passes --%s, which serve does not take", m[1])
		}
	}
	if !bytes.Contains([]byte(sec), []byte("GLIMPSE_CLUSTER")) {
		t.Error("the cluster example does not name the cluster")
	}
}
