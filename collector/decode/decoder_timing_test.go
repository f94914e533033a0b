package decode

import (
	"testing"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fastjson"
)

var benchBodies = []struct{ name, body string }{
	{"plausible_pageview", `{"n":"pageview","u":"https://example.com/blog/post?utm_source=x","d":"example.com","r":"https://www.google.com/","w":1280}`},
	{"plausible_props_string", `{"n":"Signup","u":"https://example.com/pricing","d":"example.com","r":null,"p":"{\"plan\":\"pro\",\"seats\":3}","$":{"amount":"49.00","currency":"EUR"}}`},
	{"plausible_engagement", `{"n":"engagement","sd":80,"d":"example.com","u":"https://example.com/blog/post","p":{"author":"jane"},"e":5300,"v":29}`},
	{"rich", rich},
}

// BenchmarkDecodeJSON decodes typical bodies. The parse_only and
// parse_validate rows are fastjson alone on the pageview body: the floor the
// decoder's figure should be read against.
func BenchmarkDecodeJSON(b *testing.B) {
	for _, bb := range benchBodies {
		b.Run(bb.name, func(b *testing.B) {
			var d Decoder
			var e Event
			body := []byte(bb.body)
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				if err := d.DecodeJSON(&e, body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	body := []byte(benchBodies[0].body)
	b.Run("baseline_parse_only", func(b *testing.B) {
		var p fastjson.Parser
		b.SetBytes(int64(len(body)))
		b.ReportAllocs()
		for b.Loop() {
			if _, err := p.ParseBytes(body); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("baseline_parse_validate", func(b *testing.B) {
		var p fastjson.Parser
		b.SetBytes(int64(len(body)))
		b.ReportAllocs()
		for b.Loop() {
			if _, err := p.ParseBytes(body); err != nil || fastjson.ValidateBytes(body) != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkDecodeJSONParallel(b *testing.B) {
	body := []byte(benchBodies[0].body)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		var d Decoder
		var e Event
		for pb.Next() {
			if err := d.DecodeJSON(&e, body); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkDecodeQuery decodes already parsed args, as the handler gets
// them from fasthttp; baseline_args_parse is fasthttp's own parsing of the
// rich query string, which every request pays before the decoder runs.
func BenchmarkDecodeQuery(b *testing.B) {
	for name, q := range map[string]string{"sparse": sparseQ, "rich": richQ} {
		b.Run(name, func(b *testing.B) {
			var d Decoder
			var e Event
			var args fasthttp.Args
			args.Parse(q)
			b.SetBytes(int64(len(q)))
			b.ReportAllocs()
			for b.Loop() {
				if err := d.DecodeQuery(&e, &args); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("baseline_args_parse_rich", func(b *testing.B) {
		var args fasthttp.Args
		b.SetBytes(int64(len(richQ)))
		b.ReportAllocs()
		for b.Loop() {
			args.Parse(richQ)
		}
	})
}
