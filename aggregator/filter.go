package aggregator

import (
	"regexp"
	"strings"
	"unicode/utf8"
)

// Filter is one clause of Plausible's v1 filter syntax: property==a|b or
// property!=a|b, where * matches within a path segment and ** across
// segments, or property~a|b (also written property==~a|b) for values
// containing a or b and property!~a|b (property!=~a|b) for values
// containing neither. Clauses are joined by ";" (AND).
type Filter struct {
	Prop   *Property
	Negate bool
	// Contains: the values are substrings, taken literally (no
	// wildcards).
	Contains bool
	Values   []string
}

// op is the filter's operator, as written: ==, !=, ~ or !~.
func (f *Filter) op() string {
	switch {
	case f.Contains && f.Negate:
		return "!~"
	case f.Contains:
		return "~"
	case f.Negate:
		return "!="
	}
	return "=="
}

// cutOperator splits a clause at its first operator: ==, !=, ~ or !~,
// and Plausible's ==~ and !=~ (contains, negated or not).
func cutOperator(clause string) (prop, op, rest string, ok bool) {
	i := strings.IndexAny(clause, "=!~")
	for i >= 0 {
		switch {
		case strings.HasPrefix(clause[i:], "==~"), strings.HasPrefix(clause[i:], "!=~"):
			return clause[:i], clause[i:i+1] + "~", clause[i+3:], true
		case strings.HasPrefix(clause[i:], "=="), strings.HasPrefix(clause[i:], "!="):
			return clause[:i], clause[i : i+2], clause[i+2:], true
		case strings.HasPrefix(clause[i:], "!~"):
			return clause[:i], "!~", clause[i+2:], true
		case clause[i] == '~':
			return clause[:i], "~", clause[i+1:], true
		}
		j := strings.IndexAny(clause[i+1:], "=!~")
		if j < 0 {
			break
		}
		i += 1 + j
	}
	return "", "", "", false
}

// ParseFilters parses the filters parameter. "\|" and "\;" escape the
// separators inside values.
func ParseFilters(s string) ([]Filter, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var out []Filter
	for _, clause := range splitEscaped(s, ';') {
		clause = strings.TrimSpace(clause)
		if clause == "" {
			continue
		}
		name, op, rest, ok := cutOperator(clause)
		if !ok || strings.TrimSpace(name) == "" {
			return nil, badRequest("invalid filter %q: want property==value, property!=value, property~value or property!~value", clause)
		}
		prop, err := ParseProperty(strings.TrimSpace(name))
		if err != nil {
			return nil, err
		}
		if prop.Name == "event:goal" && op[0] == '!' {
			// A goal is a set of events, not a value of each: NOT over
			// rows kept every visitor with any other event. Plausible's
			// v1 documents != as unsupported for goals.
			return nil, badRequest("invalid filter %q: event:goal takes == or ~ only (!= is not supported for goals, as in Plausible's v1)", clause)
		}
		var vals []string
		for _, v := range splitEscaped(rest, '|') {
			v = unescape(strings.TrimSpace(v))
			if !utf8.ValidString(v) {
				// RE2 refuses such a pattern, and no stored value is one.
				return nil, badRequest("invalid filter %q: a value is not valid UTF-8", clause)
			}
			vals = append(vals, v)
		}
		if len(vals) > 100 {
			return nil, badRequest("invalid filter %q: at most 100 alternatives", clause)
		}
		out = append(out, Filter{Prop: prop, Negate: op[0] == '!', Contains: strings.HasSuffix(op, "~"), Values: vals})
	}
	if len(out) > 20 {
		return nil, badRequest("too many filters: at most 20")
	}
	return out, nil
}

func splitEscaped(s string, sep byte) []string {
	var out []string
	start := 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case sep:
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			i++
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// wildcard turns a Plausible glob into an anchored RE2 pattern, bound as
// a value: ** matches across path segments, * within one, and every other
// byte stands for itself (a NUL too, which RE2 reads as \x00).
func wildcard(v string) string {
	var b strings.Builder
	b.WriteByte('^')
	for v != "" {
		switch {
		case strings.HasPrefix(v, "**"):
			b.WriteString(".*")
			v = v[2:]
		case v[0] == '*':
			b.WriteString("[^/]*")
			v = v[1:]
		default:
			n := strings.IndexByte(v, '*')
			if n < 0 {
				n = len(v)
			}
			b.WriteString(strings.ReplaceAll(regexp.QuoteMeta(v[:n]), "\x00", `\x00`))
			v = v[n:]
		}
	}
	b.WriteByte('$')
	return b.String()
}

// pred writes the filter as a boolean expression over one row.
func (f *Filter) pred(b *sqlb) {
	if f.Negate {
		b.w("NOT ")
	}
	b.w("(")
	if f.Prop.Name == "event:goal" {
		for i, v := range f.Values {
			if i > 0 {
				b.w(" OR ")
			}
			if page, ok := strings.CutPrefix(v, "Visit "); ok {
				b.w("(type = 'pageview' AND ")
				f.match(b, func() { b.w("pathname") }, page)
				b.w(")")
			} else {
				// Custom events by name, outbound clicks and downloads by
				// Plausible's names for them (the dimension's SQL).
				b.w("(")
				f.Prop.scopePred(b, false)
				b.w(" AND ")
				f.match(b, func() { f.Prop.expr(b) }, v)
				b.w(")")
			}
		}
		b.w(")")
		return
	}
	if f.Contains {
		for i, v := range f.Values {
			if i > 0 {
				b.w(" OR ")
			}
			contains(b, func() { f.Prop.expr(b) }, v)
		}
		b.w(")")
		return
	}
	var exact []string
	first := true
	for _, v := range f.Values {
		if !strings.Contains(v, "*") {
			exact = append(exact, v)
			continue
		}
		if !first {
			b.w(" OR ")
		}
		first = false
		b.w("match(")
		f.Prop.expr(b)
		b.w(", ").arg(wildcard(v)).w(")")
	}
	if len(exact) > 0 {
		if !first {
			b.w(" OR ")
		}
		b.w("has(").arg(exact).w(", ")
		f.Prop.expr(b)
		b.w(")")
	}
	b.w(")")
}

// contains writes whether col contains v. position() compares bytes:
// unlike LIKE, no character of v (%, _, \) is a metacharacter to escape,
// and a substring of valid UTF-8 is found exactly where it is a
// substring of characters.
func contains(b *sqlb, col func(), v string) {
	b.w("position(")
	col()
	b.w(", ").arg(v).w(") > 0")
}

func (f *Filter) match(b *sqlb, col func(), v string) {
	if f.Contains {
		contains(b, col, v)
		return
	}
	if strings.Contains(v, "*") {
		b.w("match(")
		col()
		b.w(", ").arg(wildcard(v)).w(")")
		return
	}
	col()
	b.w(" = ").arg(v)
}

// hasGoal reports whether fs filters on a goal (for conversion_rate).
func hasGoal(fs []Filter) bool {
	for _, f := range fs {
		if f.Prop.Name == "event:goal" && !f.Negate {
			return true
		}
	}
	return false
}

// withoutGoals drops goal filters: the denominator of conversion_rate.
func withoutGoals(fs []Filter) []Filter {
	var out []Filter
	for _, f := range fs {
		if f.Prop.Name != "event:goal" {
			out = append(out, f)
		}
	}
	return out
}

func bySide(fs []Filter, s side) []Filter {
	var out []Filter
	for _, f := range fs {
		if f.Prop.side == s {
			out = append(out, f)
		}
	}
	return out
}
