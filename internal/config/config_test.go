package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

const good = `sites:
  - domain: example.com
    aliases: [www.example.com, example.org]
    timezone: Europe/Berlin
    privacy:
      mode: strict
      honor_gpc: true
      honor_dnt: false
      k_anonymity: 5
      retention_months: 25
      geo: region
  - domain: shop.example
api_keys:
  - name: grafana
    sha256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
    sites: [example.com]
`

func TestParseGood(t *testing.T) {
	f, err := Parse("glimpse.yaml", []byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Sites) != 2 {
		t.Fatalf("got %d sites", len(f.Sites))
	}
	s := f.Sites[1]
	if s.Timezone != "UTC" || s.Location == nil || s.Privacy.Mode != ModeStrict || s.Privacy.KAnonymity != DefaultK ||
		s.Privacy.RetentionMonths != DefaultRetentionMonths || s.Privacy.Geo != GeoRegion || !s.Privacy.GPC() || s.Privacy.DNT() {
		t.Errorf("defaults not applied: %+v", s)
	}
	if f.Sites[0].Location.String() != "Europe/Berlin" {
		t.Errorf("location %v", f.Sites[0].Location)
	}
}

func TestLookup(t *testing.T) {
	f, err := Parse("glimpse.yaml", []byte(good))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		host string
		want string
	}{
		{"example.com", "example.com"},
		{"EXAMPLE.com", "example.com"},
		{"www.example.com", "example.com"},
		{"example.org", "example.com"},
		{"www.example.org", "example.com"},
		{"shop.example", "shop.example"},
		{"www.shop.example", "shop.example"},
		{"evil.com", ""},
		{"xample.com", ""},
		{"", ""},
		{strings.Repeat("a", 300), ""},
	}
	for _, tt := range tests {
		got := ""
		if s := f.Lookup([]byte(tt.host)); s != nil {
			got = s.Domain
		}
		if got != tt.want {
			t.Errorf("Lookup(%q) = %q, want %q", tt.host, got, tt.want)
		}
	}
	if n := testing.AllocsPerRun(100, func() { f.Lookup([]byte("WWW.Example.com")) }); n != 0 {
		t.Errorf("Lookup allocates %v times", n)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want string // substring of the error
	}{
		{"unknown top key", "sites:\n  - domain: a.com\nsitez: []\n", `glimpse.yaml:3: unknown field "sitez" in file`},
		{"unknown site key", "sites:\n  - domain: a.com\n    domian: b.com\n", `glimpse.yaml:3: unknown field "domian" in site`},
		{"unknown privacy key", "sites:\n  - domain: a.com\n    privacy:\n      k: 3\n", `glimpse.yaml:4: unknown field "k" in privacy`},
		{"bad domain scheme", "sites:\n  - domain: https://a.com\n", `glimpse.yaml:2: sites[0].domain: "https://a.com" is not a bare lower-case host name`},
		{"bad domain upper", "sites:\n  - domain: A.com\n", `sites[0].domain`},
		{"bad domain port", "sites:\n  - domain: a.com:8080\n", `sites[0].domain`},
		{"duplicate domain", "sites:\n  - domain: a.com\n  - domain: a.com\n", `glimpse.yaml:3: sites[1].domain: "a.com" is already used by sites[0]`},
		{"bad alias", "sites:\n  - domain: a.com\n    aliases: [ok.com, \"bad alias\"]\n", `glimpse.yaml:3: sites[0].aliases[1]`},
		{"bad timezone", "sites:\n  - domain: a.com\n    timezone: Mars/Olympus\n", `glimpse.yaml:3: sites[0].timezone: unknown time zone "Mars/Olympus"`},
		{"bad mode", "sites:\n  - domain: a.com\n    privacy:\n      mode: stricter\n", `glimpse.yaml:4: sites[0].privacy.mode: unknown privacy mode "stricter"`},
		{"k below 2", "sites:\n  - domain: a.com\n    privacy:\n      k_anonymity: 1\n", `glimpse.yaml:4: sites[0].privacy.k_anonymity: 1 is below 2`},
		{"k negative", "sites:\n  - domain: a.com\n    privacy:\n      k_anonymity: -3\n", `sites[0].privacy.k_anonymity`},
		{"bad geo", "sites:\n  - domain: a.com\n    privacy:\n      geo: street\n", `sites[0].privacy.geo: unknown geo precision "street"`},
		{"bad retention", "sites:\n  - domain: a.com\n    privacy:\n      retention_months: -1\n", `sites[0].privacy.retention_months`},
		{"wrong type", "sites:\n  - domain: a.com\n    privacy:\n      k_anonymity: five\n", `glimpse.yaml:4: cannot unmarshal`},
		{"no sites", "sites: []\n", `sites: no sites configured`},
		{"empty file", "", `no sites configured`},
		{"bad yaml", "sites:\n  - domain: [\n", `glimpse.yaml:2: did not find expected node content`},
		{"key not hex", "sites:\n  - domain: a.com\napi_keys:\n  - name: k\n    sha256: secret\n    sites: [a.com]\n", `glimpse.yaml:5: api_keys[0].sha256`},
		{"key name twice", "sites:\n  - domain: a.com\napi_keys:\n  - name: k\n    sha256: \"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\"\n    sites: [a.com]\n  - name: k\n    sha256: \"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\"\n    sites: [a.com]\n", `glimpse.yaml:7: api_keys[1].name: "k" is used by another key`},
		{"key unknown site", "sites:\n  - domain: a.com\napi_keys:\n  - name: k\n    sha256: \"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\"\n    sites: [b.com]\n", `glimpse.yaml:6: api_keys[0].sites[0]: "b.com" is not a configured site`},
		{"key unknown scope", "sites:\n  - domain: a.com\napi_keys:\n  - name: k\n    sha256: \"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\"\n    sites: [a.com]\n    scopes: [stats, erase]\n", `glimpse.yaml:7: api_keys[0].scopes[1]: "erase" is not a scope; want stats, email, subjects`},
		{"bad query key", "sites:\n  - domain: a.com\n    query_allow: [\"a=b\"]\n", `sites[0].query_allow[0]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("glimpse.yaml", []byte(tt.yaml))
			if err == nil {
				t.Fatalf("no error for:\n%s", tt.yaml)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q\ndoes not contain %q", err, tt.want)
			}
		})
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.yaml"))
	if err == nil || !strings.Contains(err.Error(), "--config") {
		t.Fatalf("err = %v, want a hint about --config", err)
	}
}

func TestLoadFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "g.yaml")
	if err := os.WriteFile(p, []byte("sites:\n  - domain: a.com\n    privacy: {mode: nope}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Load(p)
	if err == nil || !strings.HasPrefix(err.Error(), p+":3: sites[0].privacy.mode") {
		t.Fatalf("err = %v", err)
	}
}

func TestOptOutFrameAncestors(t *testing.T) {
	tests := []struct {
		origin string
		ok     bool
	}{
		{"https://example.com", true},
		{"http://example.com", true},
		{"https://www.example.com:8443", true},
		{"https://*.example.com", true},
		{"http://127.0.0.1:8080", true},
		{"https://[2001:db8::1]", true},
		{"https://[2001:db8::1]:443", true},
		{"example.com", false},
		{"https://example.com/", false},
		{"https://example.com/page", false},
		{"https://Example.com", false},
		{"https://example.com:0", false},
		{"https://example.com:99999", false},
		{"https://example.com:080", false},
		{"https://example.com:", false},
		{"ftp://example.com", false},
		{"'self'", false},
		{"*", false},
		{"https://*", false},
		{"https://a.*.example.com", false},
		{"https://[nope]", false},
		{"https://[2001:db8::1]x", false},
		{"https://example.com?x=1", false},
		{"", false},
	}
	for _, tt := range tests {
		t.Run(tt.origin, func(t *testing.T) {
			text := "sites:\n  - domain: a.com\n    optout_frame_ancestors:\n      - " + strconv.Quote(tt.origin) + "\n"
			f, err := Parse("glimpse.yaml", []byte(text))
			if tt.ok {
				if err != nil {
					t.Fatalf("rejected: %v", err)
				}
				if got := f.Sites[0].OptOutFrameAncestors; len(got) != 1 || got[0] != tt.origin {
					t.Fatalf("parsed as %q", got)
				}
				return
			}
			want := `glimpse.yaml:4: sites[0].optout_frame_ancestors[0]: ` + strconv.Quote(tt.origin) + ` is not an origin`
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("err = %v, want %q", err, want)
			}
		})
	}
}

func TestEmailKeys(t *testing.T) {
	const secret = "0123456789abcdef0123456789abcdef"
	getenv = func(k string) string {
		if k == "GLIMPSE_EMAIL_KEY" {
			return secret + "env"
		}
		return ""
	}
	t.Cleanup(func() { getenv = os.Getenv })
	head := "sites:\n  - domain: a.com\nemail:\n  signing_keys:\n"
	tests := []struct {
		name string
		keys string
		want string // substring of the error; "" for valid
		n    int    // keys when valid
	}{
		{"none", "", "", 0},
		{"one", "    - {name: k1, secret: " + secret + "}\n", "", 1},
		{"env and rotation", "    - {name: new, secret_env: GLIMPSE_EMAIL_KEY}\n    - {name: old, secret: " + secret + "}\n", "", 2},
		{"short", "    - {name: k1, secret: short}\n", "glimpse.yaml:5: email.signing_keys[0].secret: 5 bytes is too short", 0},
		{"missing secret", "    - {name: k1}\n", "glimpse.yaml:5: email.signing_keys[0].secret: missing", 0},
		{"missing name", "    - {secret: " + secret + "}\n", "glimpse.yaml:5: email.signing_keys[0].name: missing", 0},
		{"both", "    - {name: k1, secret: " + secret + ", secret_env: GLIMPSE_EMAIL_KEY}\n", "email.signing_keys[0].secret: give either", 0},
		{"env unset", "    - {name: k1, secret_env: NOPE}\n", "glimpse.yaml:5: email.signing_keys[0].secret_env: environment variable NOPE is empty", 0},
		{"duplicate name", "    - {name: k1, secret: " + secret + "}\n    - {name: k1, secret: " + secret + "x}\n", "glimpse.yaml:6: email.signing_keys[1].name: \"k1\" is used", 0},
		{"duplicate secret", "    - {name: k1, secret: " + secret + "}\n    - {name: k2, secret: " + secret + "}\n", "email.signing_keys[1].secret: same secret as email.signing_keys[0]", 0},
		{"unknown field", "    - {name: k1, secret: " + secret + ", sekret: x}\n", `glimpse.yaml:5: unknown field "sekret" in signingkey`, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := Parse("glimpse.yaml", []byte(head+tt.keys))
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				keys := f.Email.Keys()
				if len(keys) != tt.n {
					t.Fatalf("got %d keys, want %d", len(keys), tt.n)
				}
				if tt.n == 2 && string(keys[0]) != secret+"env" {
					t.Errorf("first key %q not resolved from the environment", keys[0])
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v\ndoes not contain %q", err, tt.want)
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("error leaks the secret: %v", err)
			}
		})
	}
}

func TestQueryAllowRefusesSecrets(t *testing.T) {
	refused := map[string]string{
		"session": "session", "session_id": "session", "sessionId": "session", "PHPSESSID": "sessid", "sid": "sid",
		"token": "token", "access_token": "token", "csrfToken": "csrf", "auth": "auth", "oauth": "auth",
		"Authorization": "authorization", "auth_code": "auth", "code": "code", "password": "password",
		"passwd": "passwd", "pwd": "pwd", "key": "key", "api_key": "key", "apiKey": "key", "accesskey": "key",
		"secret": "secret", "client_secret": "secret", "email": "email", "userEmail": "user", "e-mail": "mail",
		"sig": "sig", "X-Amz-Signature": "signature", "otp": "otp", "totp": "otp", "otp2": "otp",
		"phone": "phone", "iban": "iban", "jwt": "jwt", "user": "user", "uid": "uid",
	}
	for k, why := range refused {
		yaml := "sites:\n  - domain: a.com\n    query_allow: [page, \"" + k + "\"]\n"
		_, err := Parse("glimpse.yaml", []byte(yaml))
		want := fmt.Sprintf(`glimpse.yaml:3: sites[0].query_allow[1]: %q may carry a secret or personal data (it names %q)`, k, why)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("query_allow %q: error %v, want %s", k, err, want)
		}
	}
	allowed := []string{"page", "lang", "q", "sort", "category", "keyword", "keywords", "author", "design", "passport",
		"barcode", "tab", "view", "p", "product_id", "variant", "color", "size", "year", "ref_page"}
	yaml := "sites:\n  - domain: a.com\n    query_allow: [" + strings.Join(allowed, ", ") + "]\n"
	if _, err := Parse("glimpse.yaml", []byte(yaml)); err != nil {
		t.Errorf("ordinary keys refused: %v", err)
	}
}
