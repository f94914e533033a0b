package config

import (
	"errors"
	"testing"

	"github.com/glimpse-analytics/glimpse/internal/apptest"
)

func TestKeysMatch(t *testing.T) {
	ks := newKeys([]APIKey{
		{Name: "grafana", SHA256: apptest.KeyHash("read-token"), Sites: []string{"a.com"}},
		{Name: "dpo", SHA256: apptest.KeyHash("dpo-token"), Sites: []string{"a.com", "b.com"}, Scopes: []string{ScopeSubjects}},
		{Name: "broken", SHA256: "not hex", Sites: []string{"a.com"}},
	})
	tests := []struct {
		header string
		name   string // the key matched, or ""
		err    error
	}{
		{"Bearer read-token", "grafana", nil},
		{"bearer dpo-token", "dpo", nil},
		{"BEARER dpo-token", "dpo", nil},
		{"", "", ErrNoKey},
		{"Bearer ", "", ErrNoKey},
		{"Basic read-token", "", ErrNoKey},
		{"read-token", "", ErrNoKey},
		{"Bearer read-token ", "", ErrBadKey}, // the token is every byte after the scheme
		{"Bearer READ-TOKEN", "", ErrBadKey},
		{"Bearer " + apptest.KeyHash("read-token"), "", ErrBadKey}, // the hash is not the key
		{"Bearer not hex", "", ErrBadKey},
	}
	for _, tt := range tests {
		i, k, err := ks.Match([]byte(tt.header))
		if !errors.Is(err, tt.err) {
			t.Errorf("%q: error %v, want %v", tt.header, err, tt.err)
			continue
		}
		if tt.name == "" {
			if k != nil || i != -1 {
				t.Errorf("%q: matched %d %v", tt.header, i, k)
			}
			continue
		}
		if k == nil || k.Name != tt.name || ks.keys[i].Name != tt.name {
			t.Errorf("%q: matched %d %v, want %s", tt.header, i, k, tt.name)
		}
	}
}

func TestKeyScopes(t *testing.T) {
	def := APIKey{Sites: []string{"a.com"}}
	dpo := APIKey{Sites: []string{"a.com"}, Scopes: []string{ScopeSubjects}}
	all := APIKey{Sites: []string{"a.com"}, Scopes: []string{ScopeStats, ScopeEmail, ScopeSubjects}}
	for _, tt := range []struct {
		key   APIKey
		scope string
		want  bool
	}{
		{def, ScopeStats, true},
		{def, ScopeEmail, false},    // never by default: links redirect forever
		{def, ScopeSubjects, false}, // never by default
		{dpo, ScopeSubjects, true},
		{dpo, ScopeStats, false}, // listing scopes replaces the default
		{dpo, ScopeEmail, false},
		{all, ScopeStats, true},
		{all, ScopeSubjects, true},
		{all, "erase", false},
	} {
		if got := tt.key.Can(tt.scope); got != tt.want {
			t.Errorf("scopes %v: Can(%s) = %v, want %v", tt.key.Scopes, tt.scope, got, tt.want)
		}
	}
	if !def.Covers("a.com") || def.Covers("b.com") || def.Covers("") {
		t.Error("Covers")
	}
}

func TestParseKeyScopes(t *testing.T) {
	f, err := Parse("glimpse.yaml", []byte(`sites:
  - domain: a.com
api_keys:
  - name: grafana
    sha256: "`+apptest.KeyHash("x")+`"
    sites: [a.com]
  - name: dpo
    sha256: "`+apptest.KeyHash("y")+`"
    sites: [a.com]
    scopes: [stats, subjects]
`))
	if err != nil {
		t.Fatal(err)
	}
	if k := f.APIKeys[0]; !k.Can(ScopeStats) || k.Can(ScopeSubjects) {
		t.Errorf("grafana: %+v", k)
	}
	if k := f.APIKeys[1]; !k.Can(ScopeStats) || !k.Can(ScopeSubjects) || k.Can(ScopeEmail) {
		t.Errorf("dpo: %+v", k)
	}
}
