package agent

import (
	_ "embed"
	"fmt"
	"regexp"
	"regexp/syntax"
	"strings"
	"unicode/utf8"
)

//go:generate go run ./internal/genbots

// botPattern is one crawler pattern: an RE2 expression matched
// case-insensitively, valid only where the text just before the match does
// not end with any of notBefore and the text just after it does not start
// with any of notAfter (isbot's JavaScript lookarounds, translated).
type botPattern struct {
	source, expr        string
	notBefore, notAfter []string
}

//go:embed bots.local.txt
var botsLocal string

// defaultBots is the immutable crawler matcher built at init from
// bots_gen.go (generated from maintained lists) and bots.local.txt.
var defaultBots = mustBotSet(generatedBots, botsLocal)

func mustBotSet(gen []botPattern, overlay string) *botSet {
	pats, err := applyOverlay(gen, overlay)
	if err == nil {
		var s *botSet
		if s, err = newBotSet(pats); err == nil {
			return s
		}
	}
	panic("agent: cannot build the bot list: " + err.Error())
}

// applyOverlay applies bots.local.txt to the generated patterns. Each line
// is a lower-case substring to add, "re:EXPR" to add an expression, or
// "-EXPR" to remove the generated pattern with exactly that expression;
// '#' starts a comment line, " #" a trailing comment.
func applyOverlay(gen []botPattern, overlay string) ([]botPattern, error) {
	remove := map[string]bool{}
	var add []botPattern
	for n, line := range strings.Split(overlay, "\n") {
		if i := strings.Index(line, " #"); i >= 0 {
			line = line[:i]
		}
		line = strings.TrimSpace(line)
		switch {
		case line == "" || line[0] == '#':
		case line[0] == '-':
			remove[line[1:]] = true
		case strings.HasPrefix(line, "re:"):
			add = append(add, botPattern{source: "local", expr: line[len("re:"):]})
		default:
			if line != strings.ToLower(line) {
				return nil, fmt.Errorf("bots.local.txt line %d: %q is not lower case", n+1, line)
			}
			add = append(add, botPattern{source: "local", expr: regexp.QuoteMeta(line)})
		}
	}
	out := make([]botPattern, 0, len(gen)+len(add))
	for _, p := range gen {
		if remove[p.expr] {
			delete(remove, p.expr)
			continue
		}
		out = append(out, p)
	}
	for e := range remove {
		return nil, fmt.Errorf("bots.local.txt removes %q, which the generated list does not have", e)
	}
	return append(out, add...), nil
}

// botSet matches a lower-cased User-Agent against many patterns without a
// loop over them: every pattern contributes lower-case literal tokens of
// which at least one must occur in any match; one pass over the UA finds
// the tokens present (indexed by their first two bytes), and only the
// patterns of those tokens run their expression. A pattern that is a plain
// literal needs no expression. The few patterns without a usable token run
// on every UA. It is immutable after construction.
type botSet struct {
	tokens []botToken
	// start[b] .. start[b+1] are the tokens whose first two bytes form b.
	start [1<<16 + 1]int32
	pats  []compiled
	// always are the patterns without a usable token, run on every UA.
	always []int32
}

type botToken struct {
	// head and mask hold the token's first up to 4 bytes (little endian),
	// compared with the UA's next 4 bytes before the whole token.
	head, mask uint32
	lit        string
	// pats are the patterns to confirm; nil means the token alone is a
	// match (a literal pattern).
	pats []int32
}

type compiled struct {
	re                  *regexp.Regexp
	notBefore, notAfter []string
	// alphabet, for a pattern anchored at both ends (^...$), holds every
	// byte a match can contain: a UA with any other byte cannot match, and
	// the expression need not run. nil for other patterns.
	alphabet *byteSet
	// suffix is a literal that a pattern ending in "literal$" needs at the
	// end of the UA, or "".
	suffix string
}

// byteSet is a set of bytes.
type byteSet [4]uint64

func (b *byteSet) add(c byte) { b[c>>6] |= 1 << (c & 63) }
func (b *byteSet) subsetOf(o *byteSet) bool {
	return b[0]&^o[0] == 0 && b[1]&^o[1] == 0 && b[2]&^o[2] == 0 && b[3]&^o[3] == 0
}

// bytesOf returns the set of bytes in s.
func bytesOf(s string) (b byteSet) {
	for i := 0; i < len(s); i++ {
		b.add(s[i])
	}
	return b
}

// alphabetOf adds to b every byte that a match of re can contain
// (matching case-insensitively); it reports false when that is not known
// (then every byte is possible).
func alphabetOf(re *syntax.Regexp, b *byteSet) bool {
	addRune := func(r rune) bool {
		if r >= utf8.RuneSelf {
			return false
		}
		b.add(byte(r))
		if 'a' <= r && r <= 'z' {
			b.add(byte(r - 'a' + 'A'))
		} else if 'A' <= r && r <= 'Z' {
			b.add(byte(r - 'A' + 'a'))
		}
		return true
	}
	switch re.Op {
	case syntax.OpEmptyMatch, syntax.OpBeginText, syntax.OpEndText, syntax.OpBeginLine, syntax.OpEndLine,
		syntax.OpWordBoundary, syntax.OpNoWordBoundary:
		return true
	case syntax.OpLiteral:
		for _, r := range re.Rune {
			if !addRune(r) {
				return false
			}
		}
		return true
	case syntax.OpCharClass:
		for i := 0; i+1 < len(re.Rune); i += 2 {
			if re.Rune[i+1] >= utf8.RuneSelf {
				return false
			}
			for r := re.Rune[i]; r <= re.Rune[i+1]; r++ {
				addRune(r)
			}
		}
		return true
	case syntax.OpCapture, syntax.OpStar, syntax.OpPlus, syntax.OpQuest, syntax.OpRepeat, syntax.OpConcat, syntax.OpAlternate:
		for _, sub := range re.Sub {
			if !alphabetOf(sub, b) {
				return false
			}
		}
		return true
	}
	return false
}

// anchors reports whether re must match the whole text (^...$), and the
// literal it must end with when it ends in "literal$".
func anchors(re *syntax.Regexp) (whole bool, suffix string) {
	if re.Op != syntax.OpConcat || len(re.Sub) < 2 || re.Sub[len(re.Sub)-1].Op != syntax.OpEndText {
		return false, ""
	}
	if last := re.Sub[len(re.Sub)-2]; last.Op == syntax.OpLiteral && last.Flags&syntax.FoldCase == 0 {
		if s := string(last.Rune); isASCII(s) && s == strings.ToLower(s) {
			suffix = s
		}
	}
	return re.Sub[0].Op == syntax.OpBeginText, suffix
}

// minToken is the shortest token worth indexing (the bigram index needs 2).
const minToken = 2

func newBotSet(pats []botPattern) (*botSet, error) {
	s := &botSet{}
	byLit := map[string]*botToken{}
	for _, p := range pats {
		re, err := regexp.Compile("(?i)" + p.expr)
		if err != nil {
			return nil, fmt.Errorf("%s pattern %q: %v", p.source, p.expr, err)
		}
		ast, err := syntax.Parse(p.expr, syntax.Perl)
		if err != nil {
			return nil, err
		}
		ast = ast.Simplify()
		idx := int32(len(s.pats))
		c := compiled{re: re, notBefore: p.notBefore, notAfter: p.notAfter}
		whole, suffix := anchors(ast)
		c.suffix = suffix
		var alpha byteSet
		if whole && alphabetOf(ast, &alpha) {
			c.alphabet = &alpha
		}
		s.pats = append(s.pats, c)
		plain := ast.Op == syntax.OpLiteral && len(p.notBefore) == 0 && len(p.notAfter) == 0
		toks := requiredTokens(ast)
		if toks == nil {
			if len(p.notBefore) > 0 || len(p.notAfter) > 0 {
				return nil, fmt.Errorf("%s pattern %q: a pattern with lookarounds needs a literal token", p.source, p.expr)
			}
			s.always = append(s.always, idx)
			continue
		}
		for _, t := range toks {
			bt := byLit[t]
			if bt == nil {
				bt = &botToken{lit: t, pats: []int32{}}
				byLit[t] = bt
			}
			if plain {
				bt.pats = nil // the token alone matches
			} else if bt.pats != nil {
				bt.pats = append(bt.pats, idx)
			}
		}
	}
	var count [1 << 16]int32
	for t := range byLit {
		count[bigram(t)]++
	}
	for b := range count {
		s.start[b+1] = s.start[b] + count[b]
	}
	s.tokens = make([]botToken, len(byLit))
	fill := s.start
	for _, bt := range byLit {
		b := bigram(bt.lit)
		for i := 0; i < 4 && i < len(bt.lit); i++ {
			bt.head |= uint32(bt.lit[i]) << (8 * i)
			bt.mask |= 0xff << (8 * i)
		}
		s.tokens[fill[b]] = *bt
		fill[b]++
	}
	return s, nil
}

func bigram(s string) int { return int(s[0])<<8 | int(s[1]) }

// requiredTokens returns lower-case ASCII literals of which at least one
// occurs in every match of re, or nil when there are none of minToken
// bytes or more.
func requiredTokens(re *syntax.Regexp) []string {
	switch re.Op {
	case syntax.OpLiteral:
		s := strings.ToLower(string(re.Rune))
		if len(s) < minToken || !isASCII(s) {
			return nil
		}
		return []string{s}
	case syntax.OpCapture:
		return requiredTokens(re.Sub[0])
	case syntax.OpPlus:
		return requiredTokens(re.Sub[0])
	case syntax.OpRepeat:
		if re.Min >= 1 {
			return requiredTokens(re.Sub[0])
		}
	case syntax.OpConcat:
		// The child whose tokens are the most selective: longest shortest
		// token, then fewest tokens.
		var best []string
		for _, sub := range re.Sub {
			t := requiredTokens(sub)
			if t != nil && (best == nil || shortest(t) > shortest(best) ||
				shortest(t) == shortest(best) && len(t) < len(best)) {
				best = t
			}
		}
		return best
	case syntax.OpAlternate:
		var all []string
		for _, sub := range re.Sub {
			t := requiredTokens(sub)
			if t == nil {
				return nil
			}
			all = append(all, t...)
		}
		return all
	}
	return nil
}

func shortest(t []string) int {
	n := 1 << 30
	for _, s := range t {
		n = min(n, len(s))
	}
	return n
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// match reports whether the lower-cased User-Agent matches any pattern.
func (s *botSet) match(lowerUA string) bool {
	present := bytesOf(lowerUA)
	for i := 0; i+1 < len(lowerUA); i++ {
		b := int(lowerUA[i])<<8 | int(lowerUA[i+1])
		toks := s.tokens[s.start[b]:s.start[b+1]]
		if len(toks) == 0 {
			continue
		}
		var w uint32
		for j := 0; j < 4 && i+j < len(lowerUA); j++ {
			w |= uint32(lowerUA[i+j]) << (8 * j)
		}
		for k := range toks {
			t := &toks[k]
			if w&t.mask != t.head || !strings.HasPrefix(lowerUA[i:], t.lit) {
				continue
			}
			if t.pats == nil {
				return true
			}
			for _, p := range t.pats {
				if s.pats[p].mayMatch(lowerUA, &present) && s.pats[p].match(lowerUA) {
					return true
				}
			}
		}
	}
	for _, p := range s.always {
		if s.pats[p].mayMatch(lowerUA, &present) && s.pats[p].match(lowerUA) {
			return true
		}
	}
	return false
}

// mayMatch is a cheap necessary condition for match; present is the set
// of bytes in ua.
func (c *compiled) mayMatch(ua string, present *byteSet) bool {
	return (c.alphabet == nil || present.subsetOf(c.alphabet)) && strings.HasSuffix(ua, c.suffix)
}

func (c *compiled) match(ua string) bool {
	if c.notBefore == nil && c.notAfter == nil {
		return c.re.MatchString(ua)
	}
	// Lookarounds: any match whose surroundings are allowed. Searching on
	// from each match's start + 1 also finds overlapping matches.
	for off := 0; off <= len(ua); {
		loc := c.re.FindStringIndex(ua[off:])
		if loc == nil {
			return false
		}
		start, end := off+loc[0], off+loc[1]
		if !hasSuffixAny(ua[:start], c.notBefore) && !hasPrefixAny(ua[end:], c.notAfter) {
			return true
		}
		off = start + 1
	}
	return false
}

func hasSuffixAny(s string, l []string) bool {
	for _, x := range l {
		if strings.HasSuffix(s, x) {
			return true
		}
	}
	return false
}

func hasPrefixAny(s string, l []string) bool {
	for _, x := range l {
		if strings.HasPrefix(s, x) {
			return true
		}
	}
	return false
}
