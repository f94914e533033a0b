package redact

import (
	"bytes"
	"math/rand/v2"
	"testing"
	"unicode/utf8"
)

// fragments are the pieces the rules look at: digit groups, separators,
// escapes, placeholders, parts of addresses, IBANs, JWTs, tokens and paths.
var fragments = []string{
	"0", "1", "2", "3", "4", "5", "9", "00", "030", "555", "123", "4567", "4111", "1111", "800", "06", "12", "34",
	"7700", "900123", "3704", "0044", "0532", "0130", "82", "89", "1-", "(0)", "+49", "4111111111111111",
	"+", "(", ")", " ", "-", ".", "/", "_", "%", "%20", "%40", "%2F", "%C3%A9", "@", "com", ".io",
	"a", "b", "e", "x", "z", "A", "Q", "Z", "DE", "GB", "WEST", "mb", "gb", "Pro", "é", "€", "\xff",
	"eyJ", "eyJhbGciOiJIUzI1NiJ9", "eyJzdWIiOiIxMjM0In0", "dBjft", "k3j9", "Xq3Z", "ab12CD34ef", "9f86d0818",
	"550e8400-e29b-41d4-a716-446655440000", "users", "user", "members", "new",
	"[user]", "[card]", "[token]", "[phone]",
}

// TestFragments redacts random strings made of fragments, which a
// byte-level fuzzer rarely puts together, and checks what FuzzRedact
// checks.
func TestFragments(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	fails := 0
	for n := 0; n < 30000 && fails < 10; n++ {
		var b []byte
		for range 1 + rng.IntN(14) {
			b = append(b, fragments[rng.IntN(len(fragments))]...)
		}
		for _, path := range []bool{false, true} {
			red := (*Redactor)(nil).AppendText
			if path {
				red = (*Redactor)(nil).AppendPath
			}
			out := red(nil, b)
			if again := red(nil, out); !bytes.Equal(out, again) {
				t.Errorf("path %v: not idempotent: %q → %q → %q", path, b, out, again)
				fails++
			}
			if utf8.Valid(b) && !utf8.Valid(out) {
				t.Errorf("path %v: %q → %q: not valid UTF-8", path, b, out)
				fails++
			}
			if m := emailPattern.Find(out); m != nil {
				t.Errorf("path %v: %q → %q keeps an e-mail pattern %q", path, b, out, m)
				fails++
			}
		}
	}
}
