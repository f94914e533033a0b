//go:build !race

package enrich

import (
	"testing"

	"github.com/glimpse-analytics/glimpse/collector/agent"
)

// These tests pin the hot-path contract: once caches are warm and buffers
// have grown, enrichment allocates nothing per request. The race detector
// allocates on its own, hence the build tag.

var allocURLs = [][]byte{
	[]byte("https://WWW.Example.com:8443/blog/caf%C3%A9/john.doe%40example.com/9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08" +
		"?utm_source=Newsletter&utm_medium=email&utm_campaign=spring+sale&gclid=abc&ref=hn&page=2&lang=en&secret=1#top"),
	[]byte("https://example.com/"),
	[]byte("https://example.com/o/550e8400-e29b-41d4-a716-446655440000/items?fbclid=x&utm_content=a%40b.co"),
	[]byte("ftp://bad.example/"),
}

func TestAllocsCleanURL(t *testing.T) {
	policy := &URLPolicy{Allow: []string{"page", "lang"}, HashMode: true}
	var u PageURL
	for _, raw := range allocURLs {
		_ = policy.Clean(&u, raw)
	}
	i := 0
	n := testing.AllocsPerRun(1000, func() {
		_ = policy.Clean(&u, allocURLs[i%len(allocURLs)])
		i++
	})
	if n != 0 {
		t.Errorf("URL clean: %v allocs/op, want 0", n)
	}
}

var allocReferrers = [][]byte{
	[]byte("https://www.google.co.uk/search?q=secret"),
	[]byte("https://user:pw@blog.someone.net:8080/post/jane%40example.com?x=1"),
	[]byte("android-app://com.google.android.gm/"),
	[]byte("https://www.example.com/self"),
	[]byte(""),
	[]byte("https://news.ycombinator.com/item?id=1"),
}

func TestAllocsClassifyReferrer(t *testing.T) {
	site := []string{"example.com", "www.example.com"}
	pages := make([]PageURL, 3)
	for i, raw := range []string{
		"https://www.example.com/",
		"https://example.com/?utm_source=producthunt&utm_medium=paid_social",
		"https://example.com/?ref=Facebook&gclid=1",
	} {
		if err := (*URLPolicy)(nil).Clean(&pages[i], []byte(raw)); err != nil {
			t.Fatal(err)
		}
	}
	var r Referrer
	for _, raw := range allocReferrers {
		ClassifyReferrer(&r, raw, &pages[0], site, nil)
	}
	i := 0
	n := testing.AllocsPerRun(1000, func() {
		ClassifyReferrer(&r, allocReferrers[i%len(allocReferrers)], &pages[i%len(pages)], site, nil)
		i++
	})
	if n != 0 {
		t.Errorf("referrer classify: %v allocs/op, want 0", n)
	}
}

// TestAllocsEnrichPipeline runs the three steps the way an ingest handler
// does, with one pooled PageURL and Referrer.
func TestAllocsEnrichPipeline(t *testing.T) {
	p := agent.NewParser(64)
	policy := &URLPolicy{Allow: []string{"page"}}
	site := []string{"example.com"}
	var (
		u PageURL
		r Referrer
	)
	uas := make([][]byte, len(pipelineUAs))
	for i, c := range pipelineUAs {
		uas[i] = []byte(c.ua)
	}
	step := func(i int) {
		_ = p.Parse(uas[i%len(uas)], pipelineUAs[i%len(pipelineUAs)].hints)
		if policy.Clean(&u, allocURLs[i%len(allocURLs)]) == nil {
			ClassifyReferrer(&r, allocReferrers[i%len(allocReferrers)], &u, site, nil)
		}
	}
	for i := 0; i < 64; i++ {
		step(i)
	}
	i := 0
	n := testing.AllocsPerRun(1000, func() {
		step(i)
		i++
	})
	if n != 0 {
		t.Errorf("enrich pipeline: %v allocs/op, want 0", n)
	}
}
