package decode

import (
	"strings"
	"testing"

	"github.com/valyala/fastjson"
)

// strictOK is what parseStrict and validNumbers together decide.
func strictOK(d *Decoder, b []byte) bool {
	v, ok, checkNumbers := parseStrict(&d.body, b)
	return ok && (!checkNumbers || d.validNumbers(v))
}

// referenceOK is the definition: both fastjson's parser and validator
// accept b.
func referenceOK(b []byte) bool {
	var p fastjson.Parser
	_, err := p.ParseBytes(b)
	return err == nil && fastjson.ValidateBytes(b) == nil
}

var strictInputs = []string{
	``, `{}`, `[]`, `1`, `01`, `"x"`, `null`, `{"a":1}`, `{"a":01}`, `{"a":-0}`,
	`{"a":-}`, `{"a":1.}`, `{"a":.5}`, `{"a":1e5}`, `{"a":1E+5}`, `{"a":1e}`,
	`{"a":1-2}`, `{"a":+1}`, `{"a":NaN}`, `{"a":nan}`, `{"a":-Inf}`, `{"a":inf}`,
	`{"a":[1,2,{"b":[01]}]}`, `{"a":{"b":{"c":1.5e-3}}}`, `{"a":"\u00e9"}`,
	`{"a":"\x"}`, "{\"a\":\"\x01\"}", "{\"a\":1}\n", "\t{\"a\":1}", `{"a":1} x`,
	`{"a":true,"b":false,"c":null}`, `{"a":tru}`, `{"a":[1,]}`, `{"a":1,}`,
	`{"` + strings.Repeat("k", 40) + `":"` + strings.Repeat("v", 40) + `"}`,
	rich, sparse, badLater,
}

func TestParseStrict(t *testing.T) {
	var d Decoder
	for _, in := range strictInputs {
		if got, want := strictOK(&d, []byte(in)), referenceOK([]byte(in)); got != want {
			t.Errorf("%q: strict %v, want %v", in, got, want)
		}
	}
}

func TestIsPlain(t *testing.T) {
	for n := 0; n < 24; n++ {
		for pos := 0; pos < n; pos++ {
			for _, c := range []byte{0x00, 0x01, 0x1f, 0x20, '\\', '[', ']', 0x7f, 0x80, 0xdc, 0xff} {
				b := []byte(strings.Repeat("a", n))
				b[pos] = c
				want := c >= 0x20 && c != '\\'
				if got := isPlain(b); got != want {
					t.Errorf("isPlain(%q) = %v, want %v", b, got, want)
				}
			}
		}
	}
}

func FuzzParseStrict(f *testing.F) {
	for _, in := range strictInputs {
		f.Add([]byte(in))
	}
	var d Decoder // reused, as in production
	f.Fuzz(func(t *testing.T, b []byte) {
		if got, want := strictOK(&d, b), referenceOK(b); got != want {
			t.Fatalf("%q: strict %v, want %v", b, got, want)
		}
		plain := true
		for _, c := range b {
			if c < 0x20 || c == '\\' {
				plain = false
			}
		}
		if isPlain(b) != plain {
			t.Fatalf("isPlain(%q) = %v, want %v", b, !plain, plain)
		}
	})
}
