//go:build !race

package decode

import (
	"testing"

	"github.com/valyala/fasthttp"
)

// The race detector allocates on its own, hence the build tag.

func TestDecodeJSONAllocs(t *testing.T) {
	bodies := map[string]string{
		"plausible pageview":    `{"n":"pageview","u":"https://example.com/a?b=1","d":"example.com","r":null,"w":1280}`,
		"props as string":       page(`"n":"Signup","p":"{\"plan\":\"pro\",\"seats\":3}","$":"{\"amount\":\"12.5\",\"currency\":\"EUR\"}"`),
		"rich":                  rich,
		"escapes":               `{"\u006e":"pageview","u":"https:\/\/example.com\/caf\u00e9","d":"example.com"}`,
		"validation error":      badLater,
		"currency not a string": `{"n":"Buy","u":"https://example.com/","d":"example.com","$":{"amount":1,"currency":1}}`,
		"not an object":         `[1]`,
		"sloppy number":         `{"n":"pageview","u":"https://example.com/","d":"example.com","w":01}`,
	}
	for name, body := range bodies {
		t.Run(name, func(t *testing.T) {
			var d Decoder
			var e Event
			b := []byte(body)
			_ = d.DecodeJSON(&e, b) // warm up buffers
			if n := testing.AllocsPerRun(200, func() { _ = d.DecodeJSON(&e, b) }); n != 0 {
				t.Errorf("DecodeJSON allocates %v times per run, want 0", n)
			}
		})
	}
}

func TestDecodeJSONAllocsAlternating(t *testing.T) {
	var d Decoder
	var e Event
	a, b := []byte(rich), []byte(sparse)
	_ = d.DecodeJSON(&e, a)
	_ = d.DecodeJSON(&e, b)
	if n := testing.AllocsPerRun(200, func() {
		_ = d.DecodeJSON(&e, a)
		_ = d.DecodeJSON(&e, b)
	}); n != 0 {
		t.Errorf("DecodeJSON allocates %v times per run, want 0", n)
	}
}

func TestDecodeQueryAllocs(t *testing.T) {
	for name, q := range map[string]string{"rich": richQ, "sparse": sparseQ} {
		t.Run(name, func(t *testing.T) {
			var d Decoder
			var e Event
			var args fasthttp.Args
			args.Parse(q)
			_ = d.DecodeQuery(&e, &args)
			if n := testing.AllocsPerRun(200, func() { _ = d.DecodeQuery(&e, &args) }); n != 0 {
				t.Errorf("DecodeQuery allocates %v times per run, want 0", n)
			}
		})
	}
}

func TestDomainsAllocs(t *testing.T) {
	e := Event{Domain: []byte("a.com, b.com")}
	n := 0
	if a := testing.AllocsPerRun(200, func() {
		for d := range e.Domains() {
			n += len(d)
		}
	}); a != 0 {
		t.Errorf("Domains allocates %v times per loop, want 0", a)
	}
}
