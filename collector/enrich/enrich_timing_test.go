package enrich

import (
	"strconv"
	"sync/atomic"
	"testing"
)

// Benchmarks for the hot path. Compare sub-benchmarks of one run (cached
// vs uncached UA parse) rather than absolute times: the machines are shared.

func BenchmarkUAParse(b *testing.B) {
	hints := ClientHints{
		UA:       []byte(`"Chromium";v="124", "Google Chrome";v="124", "Not-A.Brand";v="99"`),
		Mobile:   []byte("?0"),
		Platform: []byte(`"Windows"`),
	}
	uas := make([][]byte, len(browserUAs))
	for i, s := range browserUAs {
		uas[i] = []byte(s)
	}
	b.Run("cached", func(b *testing.B) {
		p := NewUAParser(1024)
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			p.Parse(uas[i%len(uas)], hints)
		}
	})
	b.Run("cached-parallel", func(b *testing.B) {
		p := NewUAParser(1024)
		b.ReportAllocs()
		var start atomic.Int64
		b.RunParallel(func(pb *testing.PB) {
			// Each goroutine walks the UAs from its own offset, as
			// independent requests would.
			for i := int(start.Add(7)); pb.Next(); i++ {
				p.Parse(uas[i%len(uas)], hints)
			}
		})
	})
	b.Run("uncached", func(b *testing.B) {
		// Distinct UAs on every call: the cost of a miss (library parse,
		// bot list scan, cache insert and eviction).
		p := NewUAParser(1024)
		distinct := make([][]byte, 4096)
		for i := range distinct {
			distinct[i] = []byte(browserUAs[i%len(browserUAs)] + " Build/" + strconv.Itoa(i))
		}
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			p.Parse(distinct[i%len(distinct)], ClientHints{})
		}
	})
}

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
				ClassifyReferrer(&r, raw, &page, site)
			}
		})
	}
}

// BenchmarkEnrich is the whole package's share of one page view.
func BenchmarkEnrich(b *testing.B) {
	p := NewUAParser(1024)
	policy := &URLPolicy{Allow: []string{"page"}}
	site := []string{"example.com"}
	ua := []byte(uaChromeWin)
	hints := ClientHints{UA: []byte(`"Chromium";v="124", "Google Chrome";v="124", "Not-A.Brand";v="99"`)}
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
			ClassifyReferrer(&r, ref, &u, site)
		}
	})
}
