package config

import (
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

func TestUsersAndSharedLinks(t *testing.T) {
	h, err := bcrypt.GenerateFromPassword([]byte("correct horse"), MinBcryptCost)
	if err != nil {
		t.Fatal(err)
	}
	low, _ := bcrypt.GenerateFromPassword([]byte("x"), 4)
	bc := string(h)
	argon := "$argon2id$v=19$m=65536,t=3,p=2$c2FsdHNhbHRzYWx0c2FsdA$cNaRY3aWWCd/hL5drZ8z+ClXu48WGiwLl1x3wQJt1Aw"
	token := "abcdefghijklmnopqrstuvwxyz012345"
	base := "sites:\n  - domain: example.com\n  - domain: shop.example\n"
	tests := []struct {
		name, yaml string
		want       string // substring of the error; "" for valid
	}{
		{"bcrypt user", base + "users:\n  - email: ana@example.com\n    password_hash: \"" + bc + "\"\n", ""},
		{"argon2id user with sites", base + "users:\n  - email: ana@example.com\n    password_hash: \"" + argon + "\"\n    sites: [shop.example]\n", ""},
		{"missing email", base + "users:\n  - password_hash: \"" + bc + "\"\n", ":5: users[0].email: missing"},
		{"display name email", base + "users:\n  - email: \"Ana <ana@example.com>\"\n    password_hash: \"" + bc + "\"\n", "users[0].email: \"Ana <ana@example.com>\" is not a bare e-mail"},
		{"duplicate email", base + "users:\n  - email: ana@example.com\n    password_hash: \"" + bc + "\"\n  - email: ANA@example.com\n    password_hash: \"" + bc + "\"\n", ":7: users[1].email: \"ANA@example.com\" is already users[0]"},
		{"non-ASCII email", base + "users:\n  - email: ana@\u017fhop.example\n    password_hash: \"" + bc + "\"\n", "users[0].email: \"ana@\u017fhop.example\" has characters outside printable ASCII"},
		{"plain password", base + "users:\n  - email: ana@example.com\n    password_hash: hunter2\n", ":6: users[0].password_hash: want a bcrypt"},
		{"missing hash", base + "users:\n  - email: ana@example.com\n", "users[0].password_hash: missing"},
		{"weak bcrypt", base + "users:\n  - email: ana@example.com\n    password_hash: \"" + string(low) + "\"\n", "bcrypt cost 4 is too low"},
		{"broken bcrypt", base + "users:\n  - email: ana@example.com\n    password_hash: \"$2b$12$short\"\n", "not a valid bcrypt hash"},
		{"weak argon2id", base + "users:\n  - email: ana@example.com\n    password_hash: \"" + strings.Replace(argon, "m=65536", "m=1024", 1) + "\"\n", "argon2id parameters too weak"},
		{"unknown user site", base + "users:\n  - email: ana@example.com\n    password_hash: \"" + bc + "\"\n    sites: [nope.example]\n", ":7: users[0].sites[0]: \"nope.example\" is not a configured site"},
		{"shared link", "sites:\n  - domain: example.com\n    shared_links:\n      - name: board\n        token: " + token + "\n", ""},
		{"short token", "sites:\n  - domain: example.com\n    shared_links:\n      - name: board\n        token: abc\n", ":5: sites[0].shared_links[0].token: 3 characters is too short"},
		{"token with slash", "sites:\n  - domain: example.com\n    shared_links:\n      - name: board\n        token: " + token + "/x\n", "use only A-Z"},
		{"link without name", "sites:\n  - domain: example.com\n    shared_links:\n      - token: " + token + "\n", "sites[0].shared_links[0].name: missing"},
		{"token reused across sites", "sites:\n  - domain: example.com\n    shared_links:\n      - name: a\n        token: " + token + "\n  - domain: shop.example\n    shared_links:\n      - name: b\n        token: " + token + "\n",
			":9: sites[1].shared_links[0].token: same token as sites[0].shared_links[0]"},
		{"unknown user field", base + "users:\n  - email: ana@example.com\n    password: x\n", "unknown field \"password\""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := Parse("glimpse.yaml", []byte(tt.yaml))
			if tt.want == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want it to contain %q", err, tt.want)
			}
			_ = f
		})
	}
}

func TestUserLookupAndCanRead(t *testing.T) {
	h, _ := bcrypt.GenerateFromPassword([]byte("pw"), MinBcryptCost)
	f, err := Parse("glimpse.yaml", []byte("sites:\n  - domain: example.com\n  - domain: shop.example\nusers:\n  - email: Ana@Example.com\n    password_hash: \""+string(h)+"\"\n    sites: [shop.example]\n"))
	if err != nil {
		t.Fatal(err)
	}
	u := f.User("ana@example.com")
	if u == nil || f.User("ANA@EXAMPLE.COM") != u || f.User("bob@example.com") != nil {
		t.Fatalf("User lookup: %v", u)
	}
	// Only the canonical form finds a user: nothing outside ASCII (which
	// Unicode case folding could equate with it), nothing around it.
	for _, e := range []string{"ana@ex\u0430mple.com", "ana@example.com\u200b", " ana@example.com", "Ana <ana@example.com>"} {
		if f.User(e) != nil {
			t.Errorf("User(%q) finds %s", e, u.Email)
		}
	}
	if u.CanRead("example.com") || !u.CanRead("shop.example") {
		t.Errorf("CanRead ignores sites: %v", u.Sites)
	}
}

func TestCanonicalEmail(t *testing.T) {
	tests := []struct{ in, want, err string }{
		{"ana@example.com", "ana@example.com", ""},
		{"Ana@Example.COM", "ana@example.com", ""},
		{"ana@xn--bcher-kva.example", "ana@xn--bcher-kva.example", ""},
		{"ana@de\u017fk.example", "", "outside printable ASCII"}, // ſ folds to s
		{"ana@des\u212a.example", "", "outside printable ASCII"}, // the Kelvin sign folds to k
		{"ana@bücher.example", "", "outside printable ASCII"},
		{"ana@example.com\n", "", "outside printable ASCII"},
		{" ana@example.com", "", "not a bare e-mail address"},
		{"Ana <ana@example.com>", "", "not a bare e-mail address"},
		{"ana", "", "not a bare e-mail address"},
		{"", "", "not a bare e-mail address"},
	}
	for _, tt := range tests {
		got, err := CanonicalEmail(tt.in)
		if got != tt.want || (err == nil) != (tt.err == "") || (err != nil && !strings.Contains(err.Error(), tt.err)) {
			t.Errorf("CanonicalEmail(%q) = %q, %v; want %q, error containing %q", tt.in, got, err, tt.want, tt.err)
		}
	}
}
