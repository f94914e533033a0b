package aggregator

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestWildcard(t *testing.T) {
	tests := []struct {
		glob       string
		match, not []string
	}{
		{"/blog/*", []string{"/blog/", "/blog/a"}, []string{"/blog/a/b", "/blog", "/blogx"}},
		{"/blog/**", []string{"/blog/a/b/c"}, []string{"/blo"}},
		{"/a.b+c?(d)", []string{"/a.b+c?(d)"}, []string{"/aXb+c?(d)", "/a.bbc"}},
		{"/\x00*", []string{"/\x00", "/\x00x"}, []string{"/x", "/"}},
		{"*\\x00*", []string{`a\x00b`}, []string{"a\x00b"}},
	}
	for _, tt := range tests {
		re := regexp.MustCompile(wildcard(tt.glob))
		for _, s := range tt.match {
			if !re.MatchString(s) {
				t.Errorf("%q (%s) does not match %q", tt.glob, re, s)
			}
		}
		for _, s := range tt.not {
			if re.MatchString(s) {
				t.Errorf("%q (%s) matches %q", tt.glob, re, s)
			}
		}
	}
}

// FuzzParseFilters: any filters parameter parses or fails with a 400,
// never panics; every value is valid UTF-8; each wildcard compiles as
// RE2 (Go's regexp has its syntax) and matches its own glob with each *
// taken literally.
func FuzzParseFilters(f *testing.F) {
	for _, s := range []string{
		"event:page==/blog/**", "visit:country==DE|US;visit:browser!=Chrome",
		`event:page==/a\|b`, "event:page==/\xff*", "event:page==/\x00*", "event:goal==Visit /x*",
		"event:props:plan==a*b**c", "visit:city==", ";;", "==",
		"event:page~blog|docs", "visit:source!~oog", "event:page==~%_", "visit:source!=~x", "~", "!~x", "event:props:a~b~c",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		fs, err := ParseFilters(s)
		if err != nil {
			if e, ok := err.(*Error); !ok || e.Status != 400 {
				t.Fatalf("%q: %T %v, want a 400", s, err, err)
			}
			return
		}
		for _, f := range fs {
			for _, v := range f.Values {
				if !utf8.ValidString(v) {
					t.Fatalf("%q: value %q is not UTF-8", s, v)
				}
				re, err := regexp.Compile(wildcard(v))
				if err != nil {
					t.Fatalf("%q: wildcard(%q) = %q: %v", s, v, wildcard(v), err)
				}
				if lit := strings.ReplaceAll(v, "*", ""); !re.MatchString(lit) {
					t.Fatalf("%q: %s does not match %q", v, re, lit)
				}
			}
		}
	})
}

func TestParseContains(t *testing.T) {
	for in, want := range map[string]string{
		"event:page~blog":        "event:page ~ [blog]",
		"event:page==~blog|docs": "event:page ~ [blog docs]",
		"visit:source!~oog":      "visit:source !~ [oog]",
		"visit:source!=~oog":     "visit:source !~ [oog]",
		"event:page==a~b":        "event:page == [a~b]",
		"event:props:k~v~w":      "event:props:k ~ [v~w]",
	} {
		fs, err := ParseFilters(in)
		if err != nil {
			t.Errorf("%s: %v", in, err)
			continue
		}
		if got := fs[0].Prop.Name + " " + fs[0].op() + " " + fmt.Sprint(fs[0].Values); got != want {
			t.Errorf("%s: %s, want %s", in, got, want)
		}
	}
	for _, in := range []string{"~x", "!~x", "event:page", "event:nope~x"} {
		if _, err := ParseFilters(in); err == nil {
			t.Errorf("%s: parsed, want a 400", in)
		}
	}
}
