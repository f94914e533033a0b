package aggregator

import (
	"regexp"
	"slices"
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
	// Exact: the values are literal (v2's is: no wildcards).
	Exact bool
	// Regex: the values are RE2 patterns matched anywhere in the value
	// (v2's matches), run by ClickHouse's match().
	Regex bool
	// Fold: compare without regard to case (v2's case_sensitive: false).
	Fold bool
	// Op makes the filter a tree (v2): "and", "or" or "not" over Sub, or
	// "has_done" (Negate: has_not_done): the visit has an event matching
	// Sub[0]. Prop is then a stand-in naming no property (treeProp) on
	// the side the tree is read on (treeSide).
	Op  string
	Sub []Filter
}

// op is the filter's operator, as written: ==, !=, ~ or !~ (v1), and
// the v2 spellings of the others.
func (f *Filter) op() string {
	neg := ""
	if f.Negate {
		neg = "!"
	}
	ci := ""
	if f.Fold {
		ci = "/i"
	}
	switch {
	case f.Op != "":
		return neg + f.Op
	case f.Regex:
		return neg + "matches" + ci
	case f.Exact && !f.Fold && !slices.ContainsFunc(f.Values, func(v string) bool { return strings.Contains(v, "*") }):
		// The same question as v1's == (no value globs): the same
		// canonical cell, so that v1 and v2 draw the same noise.
	case f.Exact:
		return neg + "is" + ci
	case f.Fold:
		return neg + "contains" + ci
	}
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

// pred writes the filter as a boolean expression over one row of a
// scan s: an events row, or (rows sideSessions) a sessions row. A leaf
// of a tree on the other side is asked of the row's visit (visitPred).
func (f *Filter) pred(b *sqlb, s *scan, rows side) {
	if f.Op != "" {
		f.treePred(b, s, rows)
		return
	}
	if f.Prop.side != rows {
		f.visitPred(b, s, rows, func() { f.leafPred(b) })
		return
	}
	f.leafPred(b)
}

// leafPred writes a property filter over a row of its own side.
func (f *Filter) leafPred(b *sqlb) {
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
	if f.Contains || f.Regex || (f.Exact && f.Fold) {
		for i, v := range f.Values {
			if i > 0 {
				b.w(" OR ")
			}
			f.match(b, func() { f.Prop.expr(b) }, v)
		}
		b.w(")")
		return
	}
	var exact []string
	first := true
	for _, v := range f.Values {
		if f.Exact || !strings.Contains(v, "*") {
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
	switch {
	case f.Regex:
		if f.Fold {
			v = "(?i)" + v
		}
		b.w("match(")
		col()
		b.w(", ").arg(v).w(")")
		return
	case f.Contains && f.Fold:
		b.w("positionCaseInsensitiveUTF8(")
		col()
		b.w(", ").arg(v).w(") > 0")
		return
	case f.Contains:
		contains(b, col, v)
		return
	case f.Exact && f.Fold:
		b.w("lowerUTF8(")
		col()
		b.w(") = lowerUTF8(").arg(v).w(")")
		return
	case f.Exact:
		col()
		b.w(" = ").arg(v)
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
// Goal filters are top-level leaves (v2 refuses them inside a tree).
func hasGoal(fs []Filter) bool {
	for _, f := range fs {
		if f.Op == "" && f.Prop.Name == "event:goal" && !f.Negate {
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

// bySide returns the filters of fs on side s. Trees over both sides
// (sideAny) are on neither: anySide lists them.
func bySide(fs []Filter, s side) []Filter {
	var out []Filter
	for _, f := range fs {
		if f.Prop.side == s {
			out = append(out, f)
		}
	}
	return out
}

// anySide returns the trees of fs that mix sides (or ask about the
// visit's events, has_done): they are written over whichever row a scan
// reads, a leaf on the row's side applying to the row and one on the
// other side to the row's visit (Filter.pred).
func anySide(fs []Filter) []Filter { return bySide(fs, sideAny) }

// treePred writes a tree filter over a row of s.
func (f *Filter) treePred(b *sqlb, s *scan, rows side) {
	if f.Negate {
		b.w("NOT ")
	}
	b.w("(")
	switch f.Op {
	case "has_done":
		// The visit has an event matching the inner filter (event
		// properties only: ParseQueryV2 checks).
		sessionOfEvent(b, s, func() { f.Sub[0].leafTree(b) })
	case "not":
		b.w("NOT ")
		f.Sub[0].pred(b, s, rows)
	default:
		for i := range f.Sub {
			if i > 0 {
				b.w(" ", strings.ToUpper(f.Op), " ")
			}
			f.Sub[i].pred(b, s, rows)
		}
	}
	b.w(")")
}

// leafTree writes a filter whose leaves are all on its own rows' side
// (the events of has_done).
func (f *Filter) leafTree(b *sqlb) {
	if f.Op == "" {
		f.leafPred(b)
		return
	}
	if f.Negate {
		b.w("NOT ")
	}
	b.w("(")
	if f.Op == "not" {
		b.w("NOT ")
	}
	for i := range f.Sub {
		if i > 0 {
			b.w(" ", strings.ToUpper(f.Op), " ")
		}
		f.Sub[i].leafTree(b)
	}
	b.w(")")
}

// visitPred writes a leaf of the other side than s's rows: over an
// events row, whether the row's visit matches it; over a sessions row,
// whether the visit holds an event matching it.
func (f *Filter) visitPred(b *sqlb, s *scan, rows side, leaf func()) {
	if rows == sideSessions {
		sessionOfEvent(b, s, leaf)
		return
	}
	b.w("session_id IN (SELECT session_id FROM sessions")
	s.sampleClause(b)
	b.w(" WHERE site_id = ").arg(s.site).w(" AND ")
	s.timeRange(b, "start", s.p.From.Add(-sessionSlack), s.p.To)
	b.w(" AND ")
	leaf()
	b.w(" GROUP BY session_id HAVING sum(sign) > 0)")
}

// sessionOfEvent writes whether a row's visit holds an event in the
// period matching leaf.
func sessionOfEvent(b *sqlb, s *scan, leaf func()) {
	b.w("session_id IN (SELECT session_id FROM events")
	s.sampleClause(b)
	b.w(" WHERE site_id = ").arg(s.site).w(" AND ")
	s.timeRange(b, "ts", s.p.From, s.p.To)
	b.w(" AND type NOT IN " + noVisitTypes + " AND ")
	leaf()
	b.w(")")
}

// eventTrees are the trees of fs with an event leaf outside has_done:
// over events rows they choose which of a visit's events count (its
// page views and events), as top-level event leaves do.
func eventTrees(fs []Filter) []Filter {
	var out []Filter
	for _, f := range fs {
		if hasEventLeaf(f) {
			out = append(out, f)
		}
	}
	return out
}

func hasEventLeaf(f Filter) bool {
	switch f.Op {
	case "":
		return f.Prop.side == sideEvents
	case "has_done":
		return false // the same for every event of the visit
	}
	return slices.ContainsFunc(f.Sub, hasEventLeaf)
}

// treeProp is the stand-in property of a tree filter read on side sd.
func treeProp(sd side) *Property { return &Property{side: sd} }

// treeSide is the side a tree over subs is read on: its leaves' side if
// they share one and none is has_done, else sideAny.
func treeSide(subs []Filter) side {
	sd := side(-1)
	for _, f := range subs {
		fs := f.Prop.side
		if f.Op == "has_done" {
			fs = sideAny
		}
		if sd == -1 {
			sd = fs
		} else if sd != fs {
			return sideAny
		}
	}
	return sd
}

// canonical describes f regardless of the order of its values and of
// the order of an and/or's members.
func (f *Filter) canonical() string {
	if f.Op != "" {
		parts := make([]string, len(f.Sub))
		for i := range f.Sub {
			parts[i] = f.Sub[i].canonical()
		}
		if f.Op == "and" || f.Op == "or" {
			slices.Sort(parts)
			parts = slices.Compact(parts)
		}
		return f.op() + "(" + strings.Join(parts, "\x1d") + ")"
	}
	vals := slices.Clone(f.Values)
	slices.Sort(vals)
	vals = slices.Compact(vals)
	return f.Prop.Name + f.op() + strings.Join(vals, "\x1f")
}
