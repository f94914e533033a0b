package email

import (
	"bufio"
	_ "embed"
	"fmt"
	"net/netip"
	"regexp"
	"strings"
	"time"
)

// Verdicts stored in events.email_verdict.
const (
	VerdictHuman   = "human"
	VerdictMachine = "machine"
)

// ReasonHuman is the reason when no rule matched.
const ReasonHuman = "human"

//go:embed rules.txt
var defaultRules string

// DefaultRules returns the classifier of the embedded rules.txt.
func DefaultRules() *Classifier {
	c, err := ParseRules(defaultRules)
	if err != nil {
		panic("collector/email: embedded rules.txt: " + err.Error())
	}
	return c
}

type matcher uint8

const (
	matchMethod matcher = iota + 1
	matchUAEmpty
	matchUAExact
	matchUA
	matchUABot
	matchCIDR
	matchClickAfterSend
	matchClickAfterOpen
)

var matcherNames = map[string]matcher{
	"method": matchMethod, "ua-empty": matchUAEmpty, "ua-exact": matchUAExact, "ua": matchUA,
	"ua-bot": matchUABot, "cidr": matchCIDR, "click-after-send": matchClickAfterSend,
	"click-after-open": matchClickAfterOpen,
}

type rule struct {
	verdict, reason string
	m               matcher
	s               string // method, exact UA, or lower-case UA substring
	prefix          netip.Prefix
	within          time.Duration
}

// Classifier decides whether an open or click came from a person, from
// rules in data (rules.txt). It is safe for concurrent use.
type Classifier struct {
	rules []rule
}

var reasonName = regexp.MustCompile(`^[a-z0-9_]{1,32}$`)

// ParseRules parses rules in the rules.txt format.
func ParseRules(src string) (*Classifier, error) {
	c := &Classifier{}
	sc := bufio.NewScanner(strings.NewReader(src))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if i := strings.Index(line, " #"); i >= 0 {
			line = line[:i]
		}
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 3 {
			return nil, fmt.Errorf("line %d: want \"verdict reason matcher [value]\"", n)
		}
		r := rule{verdict: f[0], reason: f[1]}
		if r.verdict != VerdictHuman && r.verdict != VerdictMachine {
			return nil, fmt.Errorf("line %d: verdict %q: want human or machine", n, f[0])
		}
		if !reasonName.MatchString(r.reason) {
			return nil, fmt.Errorf("line %d: reason %q: want [a-z0-9_], at most 32", n, f[1])
		}
		m, ok := matcherNames[f[2]]
		if !ok {
			return nil, fmt.Errorf("line %d: unknown matcher %q", n, f[2])
		}
		r.m = m
		// The value is the rest of the line after the matcher, so UA
		// strings may contain spaces.
		value := line
		for range 3 {
			value = strings.TrimLeft(value, " \t")
			value = value[strings.IndexAny(value+" ", " \t"):]
		}
		value = strings.TrimSpace(value)
		needValue := m != matchUAEmpty && m != matchUABot
		if needValue != (value != "") {
			return nil, fmt.Errorf("line %d: matcher %s: wrong number of values", n, f[2])
		}
		switch m {
		case matchMethod:
			r.s = strings.ToUpper(value)
		case matchUAExact:
			r.s = value
		case matchUA:
			if value != strings.ToLower(value) {
				return nil, fmt.Errorf("line %d: ua %q: write substrings in lower case", n, value)
			}
			r.s = value
		case matchCIDR:
			p, err := netip.ParsePrefix(value)
			if err != nil || p != p.Masked() {
				return nil, fmt.Errorf("line %d: cidr %q: want a network like 17.0.0.0/8", n, value)
			}
			r.prefix = p
		case matchClickAfterSend, matchClickAfterOpen:
			d, err := time.ParseDuration(value)
			if err != nil || d <= 0 {
				return nil, fmt.Errorf("line %d: %s %q: want a positive duration like 10s", n, f[2], value)
			}
			r.within = d
		}
		c.rules = append(c.rules, r)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return c, nil
}

// Request is what the classifier may look at. None of it is stored.
type Request struct {
	Method string
	UA     []byte
	Bot    bool       // the UA parser's verdict (collector/enrich)
	IP     netip.Addr // the client, after trusted proxies
	Click  bool
	Now    time.Time
	Sent   time.Time // from the token
	// LastOpen is the latest open of the same campaign by the same
	// recipient seen by this process; zero when unknown.
	LastOpen time.Time
}

// Classify returns the verdict and reason of the first matching rule, or
// human/human. The strings are immutable.
func (c *Classifier) Classify(r *Request) (verdict, reason string) {
	var lowerUA []byte // computed once, on the first ua rule
	ip := r.IP.Unmap()
	for i := range c.rules {
		rl := &c.rules[i]
		hit := false
		switch rl.m {
		case matchMethod:
			hit = r.Method == rl.s
		case matchUAEmpty:
			hit = len(strings.TrimSpace(string(r.UA))) == 0
		case matchUAExact:
			hit = string(r.UA) == rl.s
		case matchUA:
			if lowerUA == nil {
				lowerUA = lower(r.UA)
			}
			hit = strings.Contains(string(lowerUA), rl.s)
		case matchUABot:
			hit = r.Bot
		case matchCIDR:
			hit = ip.IsValid() && rl.prefix.Contains(ip)
		case matchClickAfterSend:
			hit = r.Click && !r.Sent.IsZero() && r.Now.Sub(r.Sent) < rl.within
		case matchClickAfterOpen:
			hit = r.Click && !r.LastOpen.IsZero() && r.Now.Sub(r.LastOpen) < rl.within
		}
		if hit {
			return rl.verdict, rl.reason
		}
	}
	return VerdictHuman, ReasonHuman
}

func lower(b []byte) []byte {
	out := make([]byte, len(b))
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		out[i] = c
	}
	return out
}
