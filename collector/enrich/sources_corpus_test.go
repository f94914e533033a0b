package enrich

import (
	"bufio"
	"os"
	"strings"
	"testing"
)

// TestSourcesCorpus classifies every domain of Snowplow's referer-parser
// list (testdata/referers.yml, copied by internal/gensources) through
// ClassifyReferrer, as a referrer "https://<domain>/", and counts those
// classified in the list's medium with the list's source name.
func TestSourcesCorpus(t *testing.T) {
	f, err := os.Open("testdata/referers.yml")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	channels := map[string]Channel{"search": ChannelSearch, "social": ChannelSocial, "email": ChannelEmail, "unknown": ChannelReferral}
	type tally struct{ total, channel, both int }
	per := map[string]*tally{}
	var all tally
	var misses []string
	var medium, name, key string
	var r Referrer
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		trim := strings.TrimSpace(line)
		if trim == "" || trim[0] == '#' {
			continue
		}
		switch indent := len(line) - len(strings.TrimLeft(line, " ")); {
		case indent == 0:
			medium = strings.TrimSuffix(trim, ":")
			per[medium] = &tally{}
		case indent == 2:
			name = strings.TrimSuffix(trim, ":")
		case indent == 4:
			key = strings.TrimSuffix(trim, ":")
		case key == "domains" && strings.HasPrefix(trim, "- "):
			domain := strings.TrimSpace(trim[2:])
			want, ok := channels[medium]
			if !ok {
				t.Fatalf("unknown medium %q", medium)
			}
			ClassifyReferrer(&r, []byte("https://"+domain+"/"), nil, nil, nil)
			tl := per[medium]
			tl.total++
			all.total++
			if r.Channel == want {
				tl.channel++
				all.channel++
				if r.Source == name {
					tl.both++
					all.both++
					continue
				}
			}
			misses = append(misses, medium+" "+name+" "+domain+" → "+r.Source+" / "+string(r.Channel))
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{"search", "social", "email", "unknown"} {
		tl := per[m]
		t.Logf("%-7s %4d domains: %4d in their channel, %4d also with the list's source name", m, tl.total, tl.channel, tl.both)
	}
	share := float64(all.both) / float64(all.total)
	t.Logf("all     %4d domains: %4d in their channel, %4d with the list's name (%.2f%%)", all.total, all.channel, all.both, 100*share)
	for _, m := range misses {
		t.Logf("miss: %s", m)
	}
	if share < 0.98 {
		t.Errorf("%.2f%% of referer-parser domains classified with their medium and name, want >= 98%%", 100*share)
	}
}
