package enrich

import (
	"testing"

	"github.com/glimpse-analytics/glimpse/collector/agent"
)

// Benchmarks for the hot path. Compare sub-benchmarks of one run (cached
// vs uncached UA parse) rather than absolute times: the machines are shared.

func BenchmarkCleanURL(b *testing.B) {
	policy := &URLPolicy{Allow: []string{"page", "lang"}}
	for _, bc := range []struct{ name, url string }{
		{"simple", "https://www.example.com/pricing"},
		{"campaign", "https://www.example.com/blog/caf%C3%A9-guide?utm_source=newsletter&utm_medium=email&utm_campaign=spring+sale&gclid=Cj0KCQ&page=2&session=abc"},
		{"redaction", "https://example.com/users/john.doe%40gmail.com/reset/9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			raw := []byte(bc.url)
			var u PageURL
			b.ReportAllocs()
			b.SetBytes(int64(len(raw)))
			for b.Loop() {
				if err := policy.Clean(&u, raw); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkClassifyReferrer(b *testing.B) {
	site := []string{"example.com", "www.example.com"}
	var page PageURL
	if err := (*URLPolicy)(nil).Clean(&page, []byte("https://www.example.com/pricing?utm_source=x")); err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct{ name, ref string }{
		{"search", "https://www.google.co.uk/search?q=secret"},
		{"social", "https://l.facebook.com/l.php?u=https%3A%2F%2Fexample.com"},
		{"unknown", "https://blog.someone.net/2024/03/post-title?x=1"},
		{"self", "https://example.com/other"},
		{"android-app", "android-app://com.google.android.gm/"},
		{"direct", ""},
	} {
		b.Run(bc.name, func(b *testing.B) {
			raw := []byte(bc.ref)
			var r Referrer
			b.ReportAllocs()
			for b.Loop() {
				ClassifyReferrer(&r, raw, &page, site, nil)
			}
		})
	}
}

// pipelineUAs are the User-Agents the pipeline's alloc test and benchmark
// parse beside the URLs.
var pipelineUAs = []struct {
	ua    string
	hints agent.ClientHints
}{
	{"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
		agent.ClientHints{UA: []byte(`"Chromium";v="124", "Google Chrome";v="124", "Not-A.Brand";v="99"`), Mobile: []byte("?0")}},
	{"Mozilla/5.0 (iPhone; CPU iPhone OS 17_4_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4.1 Mobile/15E148 Safari/604.1", agent.ClientHints{}},
	{"curl/8.5.0", agent.ClientHints{}},
}

// BenchmarkEnrich is enrichment's share of one page view: the User-Agent
// (collector/agent), the URL and the referrer.
func BenchmarkEnrich(b *testing.B) {
	p := agent.NewParser(1024)
	policy := &URLPolicy{Allow: []string{"page"}}
	site := []string{"example.com"}
	ua := []byte(pipelineUAs[0].ua)
	hints := agent.ClientHints{UA: []byte(`"Chromium";v="124", "Google Chrome";v="124", "Not-A.Brand";v="99"`)}
	raw := []byte("https://www.example.com/blog/post?utm_source=newsletter&utm_medium=email&page=2")
	ref := []byte("https://www.google.com/")
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		var (
			u PageURL
			r Referrer
		)
		for pb.Next() {
			p.Parse(ua, hints)
			if err := policy.Clean(&u, raw); err != nil {
				b.Fatal(err)
			}
			ClassifyReferrer(&r, ref, &u, site, nil)
		}
	})
}
