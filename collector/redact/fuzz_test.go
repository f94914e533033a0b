package redact

import (
	"bytes"
	"regexp"
	"testing"
	"unicode/utf8"
)

// emailPattern is what the e-mail rule promises never to leave: a local
// part, an '@' (raw or still percent-encoded) and a domain with a dot
// followed by two letters.
var emailPattern = regexp.MustCompile(`[A-Za-z0-9._%+\-](@|%40)[A-Za-z0-9.\-]*\.[A-Za-z]{2}`)

func FuzzRedact(f *testing.F) {
	for _, tt := range textCases {
		f.Add(tt.in, false)
	}
	for _, s := range []string{
		"/users/eve.smith/orders/4111111111111111/reset/ab12CD34ef",
		"/user/user/user/a",
		"/call/+49%2030%201234567/x%40y.io/%E2%82%AC",
		"/blog/2024/10/my-post-title",
	} {
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, in string, path bool) {
		r := (*Redactor)(nil)
		red := r.AppendText
		bound := 2*len(in) + 2 // an e-mail match is at least 5 bytes, its placeholder 7
		if path {
			red = r.AppendPath
			bound = 4 * len(in) // "[user]" may replace a 1-byte segment after "user/"
		}
		out := red(nil, []byte(in))
		if len(out) > bound {
			t.Errorf("%q → %q: %d bytes, more than %d", in, out, len(out), bound)
		}
		if utf8.ValidString(in) && !utf8.Valid(out) {
			t.Errorf("%q → %q: not valid UTF-8", in, out)
		}
		if again := red(nil, out); !bytes.Equal(again, out) {
			t.Errorf("not idempotent: %q → %q → %q", in, out, again)
		}
		if m := emailPattern.Find(out); m != nil {
			t.Errorf("%q → %q keeps an e-mail pattern %q", in, out, m)
		}
		// Appending keeps what dst held.
		if got := red([]byte("keep"), []byte(in)); string(got[:4]) != "keep" || !bytes.Equal(got[4:], out) {
			t.Errorf("appending to dst: %q", got)
		}
	})
}
