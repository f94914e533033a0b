package aggregator

import (
	"regexp"
	"strings"
	"unicode/utf8"
)

// Filter is one clause of Plausible's v1 filter syntax: property==a|b or
// property!=a|b, where * matches within a path segment and ** across
// segments. Clauses are joined by ";" (AND).
type Filter struct {
	Prop   *Property
	Negate bool
	Values []string
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
		op := "=="
		i := strings.Index(clause, "==")
		if j := strings.Index(clause, "!="); j >= 0 && (i < 0 || j < i) {
			i, op = j, "!="
		}
		if i <= 0 {
			return nil, badRequest("invalid filter %q: want property==value or property!=value", clause)
		}
		prop, err := ParseProperty(strings.TrimSpace(clause[:i]))
		if err != nil {
			return nil, err
		}
		var vals []string
		for _, v := range splitEscaped(clause[i+2:], '|') {
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
		out = append(out, Filter{Prop: prop, Negate: op == "!=", Values: vals})
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
				match(b, func() { b.w("pathname") }, page)
				b.w(")")
			} else {
				b.w("(type = 'custom' AND ")
				match(b, func() { b.w("name") }, v)
				b.w(")")
			}
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

func match(b *sqlb, col func(), v string) {
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
