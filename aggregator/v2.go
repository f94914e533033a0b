package aggregator

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"regexp/syntax"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/glimpse-analytics/glimpse/aggregator/period"
	"github.com/glimpse-analytics/glimpse/internal/config"
	"github.com/glimpse-analytics/glimpse/internal/geonames"
	"github.com/glimpse-analytics/glimpse/internal/model"
)

// Plausible's Stats API v2: POST /api/v2/query with a JSON body naming
// metrics, a date range, dimensions (several at once, time buckets among
// them), filter trees, ordering, pagination and includes. ParseQueryV2
// validates a body as Plausible does, with its error messages (JSON
// Schema errors as "#/<pointer>: <message>", the rest as its query
// builder words them); Engine.QueryV2 (v2run.go) answers it on the same
// engine as v1, under the same k threshold and disclosure control.

// QueryV2 is one validated v2 request.
type QueryV2 struct {
	Site       *config.Site
	Metrics    []string
	Dimensions []string // as resolved: "time" is replaced by its bucket
	Filters    []Filter
	// filtersJSON echoes the filters as sent.
	filtersJSON json.RawMessage
	// dateRange is the range as asked: a shortcut or two dates/datetimes;
	// Period is its resolution (for "all", resolved by the engine from
	// the site's first data: all).
	dateRange string
	Period    period.Period
	all       bool
	OrderBy   []OrderBy
	Limit     int
	Offset    int
	// Includes.
	TimeLabels bool
	TotalRows  bool
	Imports    bool
	Compare    *CompareV2
	// Reader is who the answer is released to (its privacy budget).
	Reader string
	now    time.Time
	until  time.Time
}

// OrderBy is one order_by entry: a metric or dimension of the query.
type OrderBy struct {
	Name string
	Desc bool
}

// CompareV2 is include.comparisons.
type CompareV2 struct {
	Mode           string // previous_period, year_over_year or custom
	Period         period.Period
	MatchDayOfWeek bool
	custom         [2]string // custom: the dates as sent
}

// knownV2Metric reports whether the engine computes m or v2 derives it.
func knownV2Metric(m string) bool {
	return metrics[m].value != nil || m == "percentage" || m == "group_conversion_rate"
}

// sessionMetricsV2 are read from visits: Plausible refuses them with
// event dimensions other than event:page alone.
var sessionMetricsV2 = []string{"bounce_rate", "views_per_visit", "visit_duration"}

// V2MaxRegex bounds a matches pattern, in bytes: RE2 runs in linear time
// but compiles in proportion to the pattern.
const V2MaxRegex = 1000

// V2MaxLimit is the most rows a page may hold (Plausible's maximum and
// default).
const V2MaxLimit = 10000

// inspect renders a JSON value as Plausible's error messages show it
// (Elixir's inspect of the decoded value): JSON with ", " between items.
func inspect(raw json.RawMessage) string {
	var v any
	if json.Unmarshal(raw, &v) != nil {
		return string(raw)
	}
	var b strings.Builder
	var w func(v any)
	w = func(v any) {
		switch x := v.(type) {
		case []any:
			b.WriteByte('[')
			for i, e := range x {
				if i > 0 {
					b.WriteString(", ")
				}
				w(e)
			}
			b.WriteByte(']')
		case map[string]any:
			keys := make([]string, 0, len(x))
			for k := range x {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			b.WriteString("%{")
			for i, k := range keys {
				if i > 0 {
					b.WriteString(", ")
				}
				kb, _ := json.Marshal(k)
				b.Write(kb)
				b.WriteString(" => ")
				w(x[k])
			}
			b.WriteByte('}')
		case nil:
			b.WriteString("nil")
		default:
			e, _ := json.Marshal(x)
			b.Write(e)
		}
	}
	w(v)
	return b.String()
}

// SiteOfV2 returns the site_id of a v2 body, for the caller to authorize
// before the body is parsed further; "" if the body has none.
func SiteOfV2(body []byte) string {
	var top struct {
		SiteID any `json:"site_id"`
	}
	if json.Unmarshal(body, &top) != nil {
		return ""
	}
	s, _ := top.SiteID.(string)
	return s
}

// ParseQueryV2 validates a v2 request body for site (already resolved
// from its site_id and authorized). now anchors relative date ranges.
func ParseQueryV2(site *config.Site, body []byte, now time.Time) (*QueryV2, error) {
	var top map[string]json.RawMessage
	var syntaxErr any
	if err := json.Unmarshal(body, &syntaxErr); err != nil {
		return nil, badRequest("Invalid JSON in the request body: %s", err)
	}
	d := json.NewDecoder(bytes.NewReader(body))
	d.UseNumber()
	if err := d.Decode(&top); err != nil || top == nil {
		return nil, badRequest("#: Type mismatch. Expected Object but got %s.", jsonType(body))
	}
	keys := make([]string, 0, len(top))
	for k := range top {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		switch k {
		case "site_id", "metrics", "date_range", "dimensions", "filters", "order_by", "include", "pagination":
		default:
			return nil, badRequest("#/%s: Schema does not allow additional properties.", k)
		}
	}
	var missing []string
	for _, k := range []string{"site_id", "metrics", "date_range"} {
		if _, ok := top[k]; !ok {
			missing = append(missing, k)
		}
	}
	if len(missing) > 0 {
		return nil, badRequest("#: Required properties %s were not present.", strings.Join(missing, ", "))
	}
	loc := site.Location
	if loc == nil {
		loc = time.UTC
	}
	q := &QueryV2{Site: site, Limit: V2MaxLimit, now: now}
	var err error
	if q.Metrics, err = parseV2Metrics(top["metrics"]); err != nil {
		return nil, err
	}
	if q.Period, q.dateRange, q.all, err = parseDateRange(top["date_range"], "#/date_range", loc, now); err != nil {
		return nil, err
	}
	if raw, ok := top["dimensions"]; ok {
		if q.Dimensions, err = parseV2Dimensions(raw); err != nil {
			return nil, err
		}
	}
	if raw, ok := top["filters"]; ok {
		if q.Filters, err = parseV2Filters(raw); err != nil {
			return nil, err
		}
		q.filtersJSON = raw
	}
	if raw, ok := top["include"]; ok {
		if err := q.parseInclude(raw, loc, now); err != nil {
			return nil, err
		}
	}
	if raw, ok := top["pagination"]; ok {
		if err := q.parsePagination(raw); err != nil {
			return nil, err
		}
	}
	if raw, ok := top["order_by"]; ok {
		if err := q.parseOrderBy(raw); err != nil {
			return nil, err
		}
	}
	if err := q.validate(); err != nil {
		return nil, err
	}
	return q, nil
}

func jsonType(raw []byte) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return "Null"
	}
	switch raw[0] {
	case '[':
		return "Array"
	case '"':
		return "String"
	case '{':
		return "Object"
	case 't', 'f':
		return "Boolean"
	case 'n':
		return "Null"
	}
	if bytes.ContainsAny(raw, ".eE") {
		return "Number"
	}
	return "Integer"
}

func parseV2Metrics(raw json.RawMessage) ([]string, error) {
	var items []json.RawMessage
	if json.Unmarshal(raw, &items) != nil {
		return nil, badRequest("#/metrics: Type mismatch. Expected Array but got %s.", jsonType(raw))
	}
	if len(items) == 0 {
		return nil, badRequest("#/metrics: Expected a minimum of 1 items but got 0.")
	}
	var out []string
	for i, it := range items {
		var m string
		if json.Unmarshal(it, &m) != nil || !knownV2Metric(m) {
			return nil, badRequest("#/metrics/%d: Invalid metric %s", i, string(it))
		}
		if slices.Contains(out, m) {
			return nil, badRequest("#/metrics: Expected items to be unique but they were not.")
		}
		out = append(out, m)
	}
	return out, nil
}

// v2Dimension reports whether name is a dimension a v2 query may group
// or filter by (time dimensions: group only).
func v2Dimension(name string) bool {
	if key, ok := strings.CutPrefix(name, model.PropsPrefix); ok {
		return key != "" && len(key) <= 300
	}
	if v2Aliases[name] != "" {
		return true
	}
	return model.Lookup(name) != nil
}

// v2Aliases are Plausible v2 dimensions read through one of Glimpse's.
var v2Aliases = map[string]string{
	"visit:entry_page_hostname": "visit:hostname",
	"event:name":                "event:name",
	"visit:country_name":        "visit:country",
	"visit:region_name":         "visit:region",
	"visit:city_name":           "visit:city",
}

func isTimeDim(name string) bool { _, ok := timeDims[name]; return ok || name == "time" }

func parseV2Dimensions(raw json.RawMessage) ([]string, error) {
	var items []json.RawMessage
	if json.Unmarshal(raw, &items) != nil {
		return nil, badRequest("#/dimensions: Type mismatch. Expected Array but got %s.", jsonType(raw))
	}
	var out []string
	times := 0
	for i, it := range items {
		var d string
		if json.Unmarshal(it, &d) != nil || !(isTimeDim(d) || v2Dimension(d)) {
			return nil, badRequest("#/dimensions/%d: Invalid dimension %s", i, string(it))
		}
		if slices.Contains(out, d) {
			return nil, badRequest("#/dimensions: Expected items to be unique but they were not.")
		}
		if isTimeDim(d) {
			times++
		}
		out = append(out, d)
	}
	if times > 1 {
		return nil, badRequest("Invalid dimensions '%s'", inspect(raw))
	}
	return out, nil
}

// parseDateRange resolves date_range (Plausible's newest rules): "day"
// is today; "Nd" the N whole days before today (today excluded); "Nmo"
// the N whole calendar months before the current one; "month" and
// "year" the current calendar month and year, whole; "24h" the last 24
// hours; "all" every day from the site's first data to today; or two
// dates (both included) or two ISO 8601 datetimes with offsets (both
// included, to the second).
func parseDateRange(raw json.RawMessage, ptr string, loc *time.Location, now time.Time) (period.Period, string, bool, error) {
	n := now.In(loc)
	today := time.Date(n.Year(), n.Month(), n.Day(), 0, 0, 0, 0, loc)
	var s string
	if json.Unmarshal(raw, &s) == nil {
		bad := badRequest("%s: Invalid date range %s", ptr, string(raw))
		span := func(from, to time.Time) period.Period { return period.Span(s, from, to, loc) }
		switch {
		case s == "day":
			return span(today, today.AddDate(0, 0, 1)), s, false, nil
		case s == "24h":
			to := now.Truncate(time.Second).Add(time.Second)
			return span(to.Add(-24*time.Hour), to), s, false, nil
		case s == "month":
			first := time.Date(today.Year(), today.Month(), 1, 0, 0, 0, 0, loc)
			return span(first, first.AddDate(0, 1, 0)), s, false, nil
		case s == "year":
			first := time.Date(today.Year(), 1, 1, 0, 0, 0, 0, loc)
			return span(first, first.AddDate(1, 0, 0)), s, false, nil
		case s == "all":
			return span(today, today.AddDate(0, 0, 1)), s, true, nil
		case strings.HasSuffix(s, "mo"):
			k, err := strconv.Atoi(strings.TrimSuffix(s, "mo"))
			if err != nil || k < 1 || k > 100 || strings.HasPrefix(s, "+") || strings.HasPrefix(s, "0") {
				return period.Period{}, "", false, bad
			}
			first := time.Date(today.Year(), today.Month(), 1, 0, 0, 0, 0, loc)
			return span(first.AddDate(0, -k, 0), first), s, false, nil
		case strings.HasSuffix(s, "d"):
			k, err := strconv.Atoi(strings.TrimSuffix(s, "d"))
			if err != nil || k < 1 || k > 5000 || strings.HasPrefix(s, "+") || strings.HasPrefix(s, "0") {
				return period.Period{}, "", false, bad
			}
			return span(today.AddDate(0, 0, -k), today), s, false, nil
		}
		return period.Period{}, "", false, bad
	}
	var pair []string
	if json.Unmarshal(raw, &pair) != nil || len(pair) != 2 {
		return period.Period{}, "", false, badRequest("%s: Invalid date range %s", ptr, inspect(raw))
	}
	bad := badRequest("Invalid date_range '%s'.", inspect(raw))
	a, errA := time.ParseInLocation("2006-01-02", pair[0], loc)
	b, errB := time.ParseInLocation("2006-01-02", pair[1], loc)
	if errA == nil && errB == nil {
		if b.Before(a) {
			return period.Period{}, "", false, bad
		}
		return period.Span("custom", a, b.AddDate(0, 0, 1), loc), "", false, nil
	}
	a, errA = time.Parse(time.RFC3339, pair[0])
	b, errB = time.Parse(time.RFC3339, pair[1])
	if errA != nil || errB != nil || b.Before(a) {
		return period.Period{}, "", false, bad
	}
	// The last second is included, as Plausible's "…T23:59:59" ends are.
	return period.Span("custom", a.Truncate(time.Second), b.Truncate(time.Second).Add(time.Second), loc), "", false, nil
}

// parseV2Filters parses the filters list (an implicit and), flattening a
// top-level and into it.
func parseV2Filters(raw json.RawMessage) ([]Filter, error) {
	var items []json.RawMessage
	if json.Unmarshal(raw, &items) != nil {
		return nil, badRequest("#/filters: Type mismatch. Expected Array but got %s.", jsonType(raw))
	}
	var out []Filter
	for i, it := range items {
		f, err := parseV2Filter(it, fmt.Sprintf("#/filters/%d", i), 0, false)
		if err != nil {
			return nil, err
		}
		f = normalize(f)
		if f.Op == "and" && !f.Negate {
			out = append(out, f.Sub...)
			continue
		}
		out = append(out, f)
	}
	if n := countLeaves(out); n > 50 {
		return nil, badRequest("Invalid filters. At most 50 conditions may be used in a query; this one has %d.", n)
	}
	return out, nil
}

// normalize rewrites the trivial spellings of one question into one: an
// and in an and (or in an or) is flattened, a single member stands for
// its and/or, not(not x) is x, and leaves of an or on one property with
// the same operator are one leaf with their values together (is a|b).
// The disclosure control keys noise by the canonical question: fewer
// spellings mean fewer independent draws a reader can average (each
// other spelling is a cell of its own, charged to the budget).
func normalize(f Filter) Filter {
	if f.Op == "" {
		return f
	}
	for i := range f.Sub {
		f.Sub[i] = normalize(f.Sub[i])
	}
	switch f.Op {
	case "not":
		if g := f.Sub[0]; g.Op == "not" && !g.Negate {
			return g.Sub[0]
		}
		if g := f.Sub[0]; g.Op == "" && !g.Negate {
			// not(is x) is is_not x.
			g.Negate = true
			return g
		}
	case "and", "or":
		var subs []Filter
		for _, g := range f.Sub {
			if g.Op == f.Op && !g.Negate {
				subs = append(subs, g.Sub...)
			} else {
				subs = append(subs, g)
			}
		}
		if f.Op == "or" {
			subs = mergeLeaves(subs)
		}
		if len(subs) == 1 && !f.Negate {
			return subs[0]
		}
		f.Sub = subs
		f.Prop = treeProp(treeSide(subs))
	}
	return f
}

// mergeLeaves merges or'd leaves that differ only by their values.
func mergeLeaves(fs []Filter) []Filter {
	var out []Filter
	for _, g := range fs {
		merged := false
		if g.Op == "" && !g.Negate {
			for i := range out {
				o := &out[i]
				if o.Op == "" && !o.Negate && o.Prop.Name == g.Prop.Name && o.op() == g.op() && o.Contains == g.Contains && len(o.Values)+len(g.Values) <= 100 {
					o.Values = append(slices.Clone(o.Values), g.Values...)
					merged = true
					break
				}
			}
		}
		if !merged {
			out = append(out, g)
		}
	}
	return out
}

func countLeaves(fs []Filter) int {
	n := 0
	for _, f := range fs {
		if f.Op == "" {
			n++
		} else {
			n += countLeaves(f.Sub)
		}
	}
	return n
}

// parseV2Filter parses one filter tree at depth (0: top level); inDone:
// inside has_done.
func parseV2Filter(raw json.RawMessage, ptr string, depth int, inDone bool) (Filter, error) {
	invalid := badRequest("%s: Invalid filter %s", ptr, inspect(raw))
	if depth > 10 {
		return Filter{}, badRequest("Invalid filters. Filters may be nested at most 10 deep.")
	}
	var items []json.RawMessage
	if json.Unmarshal(raw, &items) != nil || len(items) < 2 {
		return Filter{}, invalid
	}
	var op string
	if json.Unmarshal(items[0], &op) != nil {
		return Filter{}, invalid
	}
	switch op {
	case "and", "or":
		var subs []json.RawMessage
		if len(items) != 2 || json.Unmarshal(items[1], &subs) != nil || len(subs) == 0 {
			return Filter{}, invalid
		}
		f := Filter{Op: op}
		for i, s := range subs {
			g, err := parseV2Filter(s, fmt.Sprintf("%s/1/%d", ptr, i), depth+1, inDone)
			if err != nil {
				return Filter{}, err
			}
			f.Sub = append(f.Sub, g)
		}
		f.Prop = treeProp(treeSide(f.Sub))
		return f, nil
	case "not":
		if len(items) != 2 {
			return Filter{}, invalid
		}
		g, err := parseV2Filter(items[1], ptr+"/1", depth+1, inDone)
		if err != nil {
			return Filter{}, err
		}
		return Filter{Op: "not", Sub: []Filter{g}, Prop: treeProp(treeSide([]Filter{g}))}, nil
	case "has_done", "has_not_done":
		if len(items) != 2 {
			return Filter{}, invalid
		}
		if inDone {
			return Filter{}, badRequest("Invalid filters. Behavioral filters (has_done, has_not_done) cannot be nested.")
		}
		g, err := parseV2Filter(items[1], ptr+"/1", depth+1, true)
		if err != nil {
			return Filter{}, err
		}
		if !eventsOnly(g) {
			return Filter{}, badRequest("Invalid filters. Behavioral filters (has_done, has_not_done) can only be used with event dimension filters.")
		}
		return Filter{Op: "has_done", Negate: op == "has_not_done", Sub: []Filter{g}, Prop: treeProp(sideAny)}, nil
	case "is", "is_not", "contains", "contains_not", "matches", "matches_not":
	default:
		return Filter{}, badRequest("Unknown operator for filter '%s'.", inspect(raw))
	}
	if len(items) != 3 && len(items) != 4 {
		return Filter{}, invalid
	}
	var dim string
	if json.Unmarshal(items[1], &dim) != nil || isTimeDim(dim) || !v2Dimension(dim) {
		return Filter{}, invalid
	}
	var clauses []json.RawMessage
	if json.Unmarshal(items[2], &clauses) != nil || len(clauses) == 0 || len(clauses) > 100 {
		return Filter{}, invalid
	}
	f := Filter{Negate: strings.HasSuffix(op, "_not")}
	switch strings.TrimSuffix(op, "_not") {
	case "is":
		f.Exact = true
	case "contains":
		f.Contains = true
	case "matches":
		f.Regex = true
	}
	for _, c := range clauses {
		var v string
		if json.Unmarshal(c, &v) != nil {
			var n json.Number
			if dim != "visit:city" || json.Unmarshal(c, &n) != nil {
				return Filter{}, invalid
			}
			v = n.String()
		}
		if !utf8.ValidString(v) {
			return Filter{}, invalid
		}
		if f.Regex {
			if len(v) > V2MaxRegex {
				return Filter{}, badRequest("Invalid filters. The regular expression of %s is %d bytes long; at most %d are allowed.", dim, len(v), V2MaxRegex)
			}
			if _, err := syntax.Parse(v, syntax.Perl); err != nil {
				return Filter{}, badRequest("Invalid filters. %q is not a valid regular expression: %s", v, err)
			}
		}
		f.Values = append(f.Values, v)
	}
	if len(items) == 4 {
		var mods map[string]json.RawMessage
		if json.Unmarshal(items[3], &mods) != nil {
			return Filter{}, invalid
		}
		for k, m := range mods {
			var cs bool
			if k != "case_sensitive" || json.Unmarshal(m, &cs) != nil {
				return Filter{}, invalid
			}
			f.Fold = !cs
		}
	}
	if dim == "visit:country" && f.Exact {
		for _, v := range f.Values {
			if len(v) != 2 {
				return Filter{}, badRequest("Invalid visit:country filter, visit:country needs to be a valid 2-letter country code.")
			}
		}
	}
	if dim == "event:goal" {
		if f.Negate {
			return Filter{}, invalid
		}
		if depth > 0 && !inDone {
			return Filter{}, badRequest("Invalid filters. Dimension `event:goal` can only be filtered at the top level.")
		}
	}
	p, err := parseV2Property(dim)
	if err != nil {
		return Filter{}, invalid
	}
	f.Prop = p
	if base := v2Aliases[dim]; strings.HasSuffix(dim, "_name") && base != "" {
		// A filter on names is one on the stored values: the same
		// question (and noise cell) as one on the codes.
		if f.Prop, err = ParseProperty(base); err != nil {
			return Filter{}, invalid
		}
	}
	if t := nameTable(dim); t != nil {
		f = byName(f, t)
		if len(f.Values) > 100 {
			// Too many codes to bind as one has(): the names matched
			// are too vague.
			return Filter{}, badRequest("Invalid filters. %s matches %d names; at most 100 may be matched.", inspect(raw), len(f.Values))
		}
	}
	return f, nil
}

// parseV2Property is ParseProperty for v2's names.
func parseV2Property(name string) (*Property, error) {
	switch name {
	case "visit:entry_page_hostname":
		p := &Property{Name: name, Key: "entry_page_hostname", side: sideSessions, col: "hostname", stored: "hostname"}
		return p, nil
	case "visit:country_name", "visit:region_name", "visit:city_name":
		p, err := ParseProperty(v2Aliases[name])
		if err != nil {
			return nil, err
		}
		// The codes are read and grouped; names replace them in Go
		// (nameTable), and a filter on names is one on their codes.
		c := *p
		c.Name, c.Key = name, strings.TrimPrefix(name, "visit:")
		return &c, nil
	case "event:name":
		// Plausible's event names: "pageview" for page views, a custom
		// event's name, or Plausible's names of outbound clicks and
		// downloads (the goal's).
		p, err := ParseProperty("event:goal")
		if err != nil {
			return nil, err
		}
		c := *p
		c.Name, c.Key, c.col, c.types = name, "name", "if(type = 'pageview', 'pageview', "+p.col+")", []int8{model.TypePageview, model.TypeCustom, model.TypeOutbound, model.TypeDownload}
		return &c, nil
	}
	return ParseProperty(name)
}

// nameTable returns the names of a *_name dimension's codes, or nil.
func nameTable(dim string) *geonames.Table {
	var t geonames.Table
	switch dim {
	case "visit:country_name":
		t = geonames.Countries()
	case "visit:region_name":
		t = geonames.Regions()
	default:
		return nil
	}
	if len(t.Codes) == 0 {
		return nil // no names known: codes stand for themselves
	}
	return &t
}

// byName rewrites a leaf on a *_name dimension into one on its codes:
// the codes whose names match f (the matching is Go's, as ClickHouse's
// on the names would be: RE2, byte substrings, Unicode case folding).
func byName(f Filter, t *geonames.Table) Filter {
	var re *regexp.Regexp
	if f.Regex {
		pat := strings.Join(f.Values, "|")
		if f.Fold {
			pat = "(?i)" + pat
		}
		re = regexp.MustCompile(pat) // checked by the parser
	}
	var codes []string
	for i, name := range t.Names {
		hit := false
		for _, v := range f.Values {
			switch {
			case re != nil:
				hit = re.MatchString(name)
			case f.Contains && f.Fold:
				hit = strings.Contains(strings.ToLower(name), strings.ToLower(v))
			case f.Contains:
				hit = strings.Contains(name, v)
			case f.Fold:
				hit = strings.EqualFold(name, v)
			default:
				hit = name == v
			}
			if hit {
				break
			}
		}
		if hit {
			codes = append(codes, t.Codes[i])
		}
	}
	if len(codes) == 0 {
		codes = []string{"\x00"} // no code is this: has([], x) does not type-check
	}
	return Filter{Prop: f.Prop, Negate: f.Negate, Exact: true, Values: codes}
}

// eventsOnly reports whether every leaf of f is an event property.
func eventsOnly(f Filter) bool {
	if f.Op == "" {
		return f.Prop.side == sideEvents
	}
	for _, g := range f.Sub {
		if !eventsOnly(g) {
			return false
		}
	}
	return true
}

func (q *QueryV2) parseInclude(raw json.RawMessage, loc *time.Location, now time.Time) error {
	var inc map[string]json.RawMessage
	if json.Unmarshal(raw, &inc) != nil || inc == nil {
		return badRequest("#/include: Type mismatch. Expected Object but got %s.", jsonType(raw))
	}
	keys := make([]string, 0, len(inc))
	for k := range inc {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		v := inc[k]
		var b bool
		switch k {
		case "imports", "time_labels", "total_rows":
			if json.Unmarshal(v, &b) != nil {
				return badRequest("#/include/%s: Type mismatch. Expected Boolean but got %s.", k, jsonType(v))
			}
			switch k {
			case "imports":
				q.Imports = b
			case "time_labels":
				q.TimeLabels = b
			default:
				q.TotalRows = b
			}
		case "comparisons":
			if string(bytes.TrimSpace(v)) == "null" {
				continue
			}
			c, err := parseComparison(v, q.Period, loc, now)
			if err != nil {
				return err
			}
			q.Compare = c
		default:
			return badRequest("#/include/%s: Schema does not allow additional properties.", k)
		}
	}
	return nil
}

func parseComparison(raw json.RawMessage, p period.Period, loc *time.Location, now time.Time) (*CompareV2, error) {
	var c struct {
		Mode           string          `json:"mode"`
		DateRange      json.RawMessage `json:"date_range"`
		MatchDayOfWeek bool            `json:"match_day_of_week"`
	}
	d := json.NewDecoder(bytes.NewReader(raw))
	d.DisallowUnknownFields()
	if d.Decode(&c) != nil {
		return nil, badRequest("#/include/comparisons: Invalid comparisons %s", inspect(raw))
	}
	out := &CompareV2{Mode: c.Mode, MatchDayOfWeek: c.MatchDayOfWeek}
	switch c.Mode {
	case "previous_period", "year_over_year":
		if c.DateRange != nil {
			return nil, badRequest("#/include/comparisons: date_range is for mode custom only")
		}
	case "custom":
		var pair []string
		if json.Unmarshal(c.DateRange, &pair) != nil || len(pair) != 2 {
			return nil, badRequest("#/include/comparisons: mode custom needs a date_range of two dates")
		}
		cp, _, _, err := parseDateRange(c.DateRange, "#/include/comparisons/date_range", loc, now)
		if err != nil {
			return nil, err
		}
		out.Period, out.custom = cp, [2]string{pair[0], pair[1]}
	default:
		return nil, badRequest("#/include/comparisons/mode: Invalid comparison mode %s: want previous_period, year_over_year or custom", inspect(json.RawMessage(strconv.Quote(c.Mode))))
	}
	return out, nil
}

func (q *QueryV2) parsePagination(raw json.RawMessage) error {
	var pg map[string]json.RawMessage
	if json.Unmarshal(raw, &pg) != nil || pg == nil {
		return badRequest("#/pagination: Type mismatch. Expected Object but got %s.", jsonType(raw))
	}
	for k, v := range pg {
		var n int
		if k != "limit" && k != "offset" {
			return badRequest("#/pagination/%s: Schema does not allow additional properties.", k)
		}
		if json.Unmarshal(v, &n) != nil {
			return badRequest("#/pagination/%s: Type mismatch. Expected Integer but got %s.", k, jsonType(v))
		}
		switch {
		case k == "limit" && n < 1:
			return badRequest("#/pagination/limit: Expected the value to be >= 1")
		case k == "limit" && n > V2MaxLimit:
			return badRequest("#/pagination/limit: Expected the value to be <= %d", V2MaxLimit)
		case k == "offset" && n < 0:
			return badRequest("#/pagination/offset: Expected the value to be >= 0")
		case k == "offset" && n > 1_000_000:
			return badRequest("#/pagination/offset: Expected the value to be <= 1000000")
		case k == "limit":
			q.Limit = n
		default:
			q.Offset = n
		}
	}
	return nil
}

func (q *QueryV2) parseOrderBy(raw json.RawMessage) error {
	var items []json.RawMessage
	if json.Unmarshal(raw, &items) != nil {
		return badRequest("#/order_by: Type mismatch. Expected Array but got %s.", jsonType(raw))
	}
	for i, it := range items {
		var e []string
		if json.Unmarshal(it, &e) != nil || len(e) != 2 || (e[1] != "asc" && e[1] != "desc") ||
			!(knownV2Metric(e[0]) || isTimeDim(e[0]) || v2Dimension(e[0])) {
			return badRequest("#/order_by/%d: Invalid value in order_by %s", i, inspect(it))
		}
		name := e[0]
		if name == "time" {
			for _, d := range q.Dimensions {
				if isTimeDim(d) {
					name = d
				}
			}
		}
		if !slices.Contains(q.Metrics, name) && !slices.Contains(q.Dimensions, name) {
			term := strconv.Quote(name)
			if knownV2Metric(name) {
				term = ":" + name
			}
			return badRequest("Invalid order_by entry '{%s, :%s}'. Entry is not a queried metric or dimension.", term, e[1])
		}
		q.OrderBy = append(q.OrderBy, OrderBy{Name: name, Desc: e[1] == "desc"})
	}
	return nil
}

// timeDim returns the query's time dimension, or "".
func (q *QueryV2) timeDim() string {
	for _, d := range q.Dimensions {
		if isTimeDim(d) {
			return d
		}
	}
	return ""
}

// propDims returns the query's dimensions but its time dimension.
func (q *QueryV2) propDims() []string {
	var out []string
	for _, d := range q.Dimensions {
		if !isTimeDim(d) {
			out = append(out, d)
		}
	}
	return out
}

// resolveTime replaces "time" by the bucket the range suggests, as
// Plausible does: hours up to 48 hours, days up to 40 days, weeks up to
// 52 weeks, months beyond.
func (q *QueryV2) resolveTime() {
	for i, d := range q.Dimensions {
		if d != "time" {
			continue
		}
		span := q.Period.To.Sub(q.Period.From)
		switch {
		case span <= 48*time.Hour:
			d = "time:hour"
		case span <= 40*24*time.Hour:
			d = "time:day"
		case span <= 52*7*24*time.Hour:
			d = "time:week"
		default:
			d = "time:month"
		}
		q.Dimensions[i] = d
		for j := range q.OrderBy {
			if q.OrderBy[j].Name == "time" {
				q.OrderBy[j].Name = d
			}
		}
	}
}

// topFilter reports whether a top-level filter is on property name.
func topFilter(fs []Filter, name string) bool {
	for _, f := range fs {
		if f.Op == "" && f.Prop.Name == name {
			return true
		}
	}
	return false
}

// validate applies Plausible's query builder checks, in its order.
func (q *QueryV2) validate() error {
	if q.TimeLabels && q.timeDim() == "" {
		return badRequest("Invalid include.time_labels: requires a time dimension.")
	}
	hasGoalDim := slices.Contains(q.Dimensions, "event:goal")
	for _, m := range q.Metrics {
		switch m {
		case "conversion_rate", "group_conversion_rate":
			if !hasGoal(q.Filters) && !hasGoalDim {
				return badRequest("Metric `%s` can only be queried with event:goal filters or dimensions.", m)
			}
		case "scroll_depth", "time_on_page":
			if !topFilter(q.Filters, "event:page") && !slices.Contains(q.Dimensions, "event:page") {
				return badRequest("Metric `%s` can only be queried with event:page filters or dimensions.", m)
			}
		case "views_per_visit":
			if topFilter(q.Filters, "event:page") {
				return badRequest("Metric `views_per_visit` cannot be queried with a filter on `event:page`.")
			}
			if len(q.Dimensions) > 0 {
				return badRequest("Metric `views_per_visit` cannot be queried with `dimensions`.")
			}
		case "percentage":
			if len(q.propDims()) == 0 && len(q.Dimensions) == 0 {
				return badRequest("Metric `percentage` can only be queried with dimensions.")
			}
		}
	}
	// Session metrics with event dimensions (event:page alone excepted:
	// its visits are those entering on it).
	var evDims []string
	sessionDims := false
	for _, d := range q.propDims() {
		p, err := parseV2Property(d)
		if err != nil {
			return err
		}
		if p.side == sideEvents {
			evDims = append(evDims, d)
		} else {
			sessionDims = true
		}
	}
	// (event:page alone: a composite has no entry page to read visits by)
	if len(evDims) > 0 && !(len(q.Dimensions) == 1 && evDims[0] == "event:page") {
		var sm []string
		for _, m := range q.Metrics {
			if slices.Contains(sessionMetricsV2, m) {
				sm = append(sm, "`"+m+"`")
			}
		}
		if len(sm) > 0 {
			ds := make([]string, len(evDims))
			for i, d := range evDims {
				ds[i] = "`" + d + "`"
			}
			return badRequest("Session metric(s) %s cannot be queried along with event dimension(s) %s", strings.Join(sm, ", "), strings.Join(ds, ", "))
		}
	}
	if sessionDims && len(evDims) == 0 {
		var em []string
		for _, m := range q.Metrics {
			if (m == "scroll_depth" || m == "time_on_page") && !topFilter(q.Filters, "event:page") {
				em = append(em, "`"+m+"`")
			}
		}
		if len(em) > 0 {
			return badRequest("Event metric(s) %s cannot be queried along with session dimension(s) `%s`", strings.Join(em, ", "), q.propDims()[0])
		}
	}
	if len(q.Dimensions) > 1 {
		for _, m := range q.Metrics {
			if m == "time_on_page" || m == "scroll_depth" {
				return badRequest("Metric `%s` can only be queried with event:page as the only dimension.", m)
			}
		}
	}
	if slices.Contains(q.Metrics, "group_conversion_rate") && hasGoalDim && len(q.Dimensions) > 1 {
		return badRequest("Metric `group_conversion_rate` with event:goal among several dimensions is not supported by Glimpse: ask for conversion_rate, or break down by event:goal alone.")
	}
	for _, d := range q.propDims() {
		if len(q.propDims()) > 1 || q.timeDim() != "" {
			p, _ := parseV2Property(d)
			if p.side == sideSessions && len(evDims) > 0 && !joinable(d) {
				return badRequest("Invalid dimensions: %s cannot be combined with event dimensions", d)
			}
		}
	}
	return nil
}
