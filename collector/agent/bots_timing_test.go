package agent

import (
	"strings"
	"testing"
)

// BenchmarkBotMatch times the bot verdict of a cache miss alone, on real
// browser User-Agents (the common miss: no pattern matches, so every UA is
// scanned to the end) and on crawler User-Agents.
func BenchmarkBotMatch(b *testing.B) {
	for _, c := range []struct{ name, path string }{
		{"browsers", "testdata/browser-user-agents.txt.gz"},
		{"crawlers", "testdata/crawler-user-agents.txt.gz"},
	} {
		uas := readCorpus(b, c.path)
		for i := range uas {
			uas[i] = strings.ToLower(uas[i])
		}
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				defaultBots.match(uas[i%len(uas)])
			}
		})
	}
}
