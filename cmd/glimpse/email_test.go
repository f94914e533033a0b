package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/glimpse-analytics/glimpse/internal/apptest"
)

const emailConfig = `sites:
  - domain: example.com
email:
  signing_keys:
    - {name: k1, secret_env: TEST_EMAIL_KEY}
`

func TestEmailCommand(t *testing.T) {
	cfg := apptest.WriteConfig(t, emailConfig)
	env := []string{"TEST_EMAIL_KEY=0123456789abcdef0123456789abcdef-cli", "GLIMPSE_PUBLIC_URL=https://g.example"}
	tests := []struct {
		name string
		args []string
		code int
		want string // prefix of stdout, or substring of stderr on failure
	}{
		{"link", []string{"email", "link", "--config", cfg, "--site", "example.com", "--campaign", "june", "--url", "https://example.com/x", "--ttl", "30d"}, 0, "https://g.example/e/c/"},
		{"link public url flag after", []string{"email", "link", "--site", "example.com", "--campaign", "june", "--url", "https://example.com/x", "--config", cfg, "--public-url", "https://h.example"}, 0, "https://h.example/e/c/"},
		{"pixel", []string{"email", "pixel", "--config", cfg, "--site", "example.com", "--campaign", "june", "--recipient", "deadbeef"}, 0, `<img src="https://g.example/e/o/`},
		{"optout", []string{"email", "link", "--optout", "--config", cfg, "--site", "example.com", "--campaign", "june", "--recipient", "deadbeef"}, 0, "https://g.example/e/optout/"},
		{"open redirect", []string{"email", "link", "--config", cfg, "--site", "example.com", "--campaign", "june", "--url", "//evil.example"}, 1, "destination"},
		{"unknown site", []string{"email", "link", "--config", cfg, "--site", "evil.example", "--campaign", "june", "--url", "https://example.com/"}, 1, "not configured"},
		{"no sub", []string{"email", "--config", cfg}, 1, "usage: glimpse email"},
		{"bad sub", []string{"email", "mail", "--config", cfg}, 1, "unknown email command"},
		{"missing", []string{"email", "pixel", "--config", cfg, "--site", "example.com"}, 1, "--campaign"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, errOut, code := apptest.Run(t, env, tt.args...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tt.code, out, errOut)
			}
			if code == 0 && !strings.HasPrefix(out, tt.want) || code != 0 && !strings.Contains(errOut, tt.want) {
				t.Errorf("stdout %q\nstderr %q\nwant %q", out, errOut, tt.want)
			}
		})
	}

	cmd := apptest.Command(t, env, "email", "rewrite", "--config", cfg, "--site", "example.com", "--campaign", "june")
	cmd.Stdin = strings.NewReader(`<html><body><a href="https://example.com/a">a</a> <a href="{{unsubscribe}}">u</a></body></html>`)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	if err := cmd.Run(); err != nil {
		t.Fatalf("rewrite: %v\n%s", err, e.String())
	}
	if !strings.Contains(o.String(), `<a href="https://g.example/e/c/`) || !strings.Contains(o.String(), `<a href="{{unsubscribe}}">`) ||
		!strings.Contains(o.String(), `/e/o/`) || !strings.Contains(e.String(), "links=1") {
		t.Errorf("rewrite:\n%s\n%s", o.String(), e.String())
	}
}
