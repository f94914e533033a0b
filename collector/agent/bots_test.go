package agent

import (
	"bufio"
	"compress/gzip"
	"os"
	"regexp"
	"strings"
	"testing"
)

// readCorpus reads a testdata/*.txt.gz corpus written by internal/genbots:
// one User-Agent per line after a '#' attribution header.
func readCorpus(t testing.TB, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	sc := bufio.NewScanner(zr)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if l := sc.Text(); l != "" && l[0] != '#' {
			out = append(out, l)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestBotCorpora runs the public corpora through Parser.Parse, the code
// the collector uses: recall on crawler-user-agents' example instances and
// false positives on the distinct browser UAs of npm's user-agents.
func TestBotCorpora(t *testing.T) {
	p := NewParser(0)
	crawlers := readCorpus(t, "testdata/crawler-user-agents.txt.gz")
	browsers := append(readCorpus(t, "testdata/browser-user-agents.txt.gz"), browserUAs...)
	caught := 0
	var missed []string
	for _, ua := range crawlers {
		if p.Parse([]byte(ua), ClientHints{}).Bot {
			caught++
		} else {
			missed = append(missed, ua)
		}
	}
	var fps []string
	for _, ua := range browsers {
		if u := p.Parse([]byte(ua), ClientHints{}); u.Bot {
			fps = append(fps, u.BotReason+": "+ua)
		}
	}
	recall := float64(caught) / float64(len(crawlers))
	t.Logf("crawler-user-agents instances: %d of %d detected as bots (recall %.2f%%)", caught, len(crawlers), 100*recall)
	t.Logf("browser corpus: %d of %d flagged as bots (false positives)", len(fps), len(browsers))
	for i, m := range missed {
		if i == 20 {
			t.Logf("... and %d more missed", len(missed)-20)
			break
		}
		t.Logf("missed: %q", m)
	}
	if recall < 0.995 {
		t.Errorf("recall %.2f%%, want >= 99.5%%", 100*recall)
	}
	for _, fp := range fps {
		t.Errorf("false positive: %s", fp)
	}
}

// TestBotSetMatchesEveryPattern checks the token prefilter against the
// plain loop over all patterns on both corpora: it may skip work, never a
// match.
func TestBotSetMatchesEveryPattern(t *testing.T) {
	uas := append(readCorpus(t, "testdata/crawler-user-agents.txt.gz"), readCorpus(t, "testdata/browser-user-agents.txt.gz")...)
	uas = append(uas, "", "a", "ab", "googlebot", "GOOGLE", "android google", "cubot", "libhttp", "http",
		"someapp/1.0", "SomeApp/1.0 (x@y)", "mozilla/5.0 foo", "a; b;", "a; b; c", strings.Repeat("x", 60), "(x)")
	for _, ua := range uas {
		lower := strings.ToLower(ua)
		want := false
		for i := range defaultBots.pats {
			if defaultBots.pats[i].match(lower) {
				want = true
				break
			}
		}
		if got := defaultBots.match(lower); got != want {
			t.Errorf("botSet.match(%q) = %v, loop over patterns = %v", ua, got, want)
		}
	}
	t.Logf("%d patterns, %d tokens, %d without a token (run on every miss)",
		len(defaultBots.pats), len(defaultBots.tokens), len(defaultBots.always))
	if len(defaultBots.always) > 12 {
		t.Errorf("%d patterns have no token; the prefilter loses its point", len(defaultBots.always))
	}
}

func TestBotLookarounds(t *testing.T) {
	// isbot's JavaScript lookarounds, translated to literal contexts.
	s := mustBotSet([]botPattern{
		{expr: "google", notBefore: []string{" channel/", "google/"}, notAfter: []string{"wv", "app", "/google", " pixel"}},
		{expr: "bots?(?:\\b|_)", notBefore: []string{" cu"}},
	}, "")
	for ua, want := range map[string]bool{
		"mozilla googlebot":           true,
		"android 11; cubot p50":       false,
		"cubot p50 searchbot":         true,
		"googleapp/1":                 false,
		"google pixel 8":              false,
		"google pixel 8 google/1.0":   true,
		"gsa google/google":           false,
		"something google/google/ x ": false,
	} {
		if got := s.match(ua); got != want {
			t.Errorf("match(%q) = %v, want %v", ua, got, want)
		}
	}
}

func TestBotOverlay(t *testing.T) {
	gen := []botPattern{{expr: "foobot"}, {expr: "barbot"}}
	pats, err := applyOverlay(gen, "# c\n-foobot\nbazcrawler # trailing\nre:qux[0-9]+\n")
	if err != nil {
		t.Fatal(err)
	}
	var exprs []string
	for _, p := range pats {
		exprs = append(exprs, p.expr)
	}
	if got := strings.Join(exprs, " "); got != "barbot bazcrawler qux[0-9]+" {
		t.Errorf("overlay gives %q", got)
	}
	for _, bad := range []string{"-nosuch\n", "UpperCase\n", "re:(\n"} {
		pats, err := applyOverlay(gen, bad)
		if err == nil {
			_, err = newBotSet(pats)
		}
		if err == nil {
			t.Errorf("overlay %q accepted", bad)
		}
	}
}

// TestBotLocalEntriesNeeded lists bots.local.txt additions that the
// generated patterns already cover (set GLIMPSE_BOTS_REDUNDANT=1 to list;
// they may be deleted from the overlay).
func TestBotLocalEntriesNeeded(t *testing.T) {
	if os.Getenv("GLIMPSE_BOTS_REDUNDANT") == "" {
		t.Skip("set GLIMPSE_BOTS_REDUNDANT=1 to list redundant overlay entries")
	}
	gen := mustBotSet(generatedBots, "")
	pats, _ := applyOverlay(nil, botsLocal)
	for _, p := range pats {
		lit := strings.ReplaceAll(regexp.MustCompile(`\\(.)`).ReplaceAllString(p.expr, "$1"), "", "")
		if gen.match(" x " + lit + " x ") {
			t.Logf("redundant: %s", lit)
		}
	}
}
