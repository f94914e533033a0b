package main

// The dashboard's defences as an operator deploys them: the flags of
// glimpse serve and the commands that write the sites file.

import (
	"strings"
	"testing"

	"github.com/glimpse-analytics/glimpse/internal/apptest"
)

// TestUserAddCanonicalEmail: user add prints the address in the one form
// sign-in compares (config.CanonicalEmail), and refuses one no user can
// sign in with.
func TestUserAddCanonicalEmail(t *testing.T) {
	cmd := apptest.Command(t, nil, "user", "add", "--email", "Ana@Example.COM")
	cmd.Stdin = strings.NewReader("correct horse battery\n")
	out, err := cmd.Output()
	if err != nil || !strings.Contains(string(out), "- email: ana@example.com\n") {
		t.Errorf("user add --email Ana@Example.COM: %v\n%s", err, out)
	}
	for _, email := range []string{"ana@de\u017fk.example", "Ana <ana@example.com>"} {
		cmd := apptest.Command(t, nil, "user", "add", "--email", email)
		cmd.Stdin = strings.NewReader("correct horse battery\n")
		if b, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(b), "--email: ") {
			t.Errorf("user add --email %q: %v\n%s", email, err, b)
		}
	}
}
