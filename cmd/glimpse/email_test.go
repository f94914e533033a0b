package main

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/glimpse-analytics/glimpse/internal/apptest"
	"github.com/glimpse-analytics/glimpse/internal/chtest"
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

	// A campaign name with an address in it is signed redacted, with a
	// warning that does not repeat the address.
	out, errOut, code := apptest.Run(t, env, "email", "pixel", "--config", cfg, "--site", "example.com", "--campaign", "promo eve@example.com")
	if code != 0 || !strings.HasPrefix(out, `<img src="https://g.example/e/o/`) || !strings.Contains(errOut, `campaign="promo [email]"`) ||
		strings.Contains(errOut, "eve@") {
		t.Errorf("redacted campaign: exit %d\nstdout %q\nstderr %q", code, out, errOut)
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

// TestSignNeedsTheEmailScope: a key whose entry lists no scopes reads
// stats but cannot mint email links or pixels over POST /api/email/sign
// (a link is a redirect from the collector's domain that may never
// expire); a key that lists email can.
func TestSignNeedsTheEmailScope(t *testing.T) {
	db := chtest.New(t)
	cfg := apptest.WriteConfig(t, emailConfig+`api_keys:
  - name: grafana
    sha256: "`+apptest.KeyHash("no-scopes-key")+`"
    sites: [example.com]
  - name: esp
    sha256: "`+apptest.KeyHash("email-key")+`"
    sites: [example.com]
    scopes: [email]
`)
	s := apptest.Start(t, []string{"TEST_EMAIL_KEY=0123456789abcdef0123456789abcdef-cli"}, "--config", cfg, "--clickhouse", db.DSN)
	call := func(method, path, key, body string) (int, string) {
		req, err := http.NewRequest(method, s.URL()+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	link := `{"kind":"link","site":"example.com","campaign":"c","url":"https://example.com/x","ttl":"never"}`
	pixel := `{"kind":"pixel","site":"example.com","campaign":"c","ttl":"never"}`
	for _, body := range []string{link, pixel} {
		if code, got := call("POST", "/api/email/sign", "no-scopes-key", body); code != 403 || !strings.Contains(got, "list email in its scopes") {
			t.Errorf("key without scopes signs %s: %d %s, want 403 naming the email scope", body, code, got)
		}
		if code, got := call("POST", "/api/email/sign", "email-key", body); code != 200 || !strings.Contains(got, "/e/") {
			t.Errorf("key with the email scope signs %s: %d %s, want 200", body, code, got)
		}
	}
	if code, got := call("GET", "/api/v1/stats/aggregate?site_id=example.com&period=30d&metrics=visitors", "no-scopes-key", ""); code != 200 {
		t.Errorf("key without scopes reads stats: %d %s, want 200", code, got)
	}
	if code, got := call("GET", "/api/v1/stats/aggregate?site_id=example.com&period=30d&metrics=visitors", "email-key", ""); code != 403 {
		t.Errorf("email-only key reads stats: %d %s, want 403", code, got)
	}
}
