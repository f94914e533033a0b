package aggregator

import (
	"strings"

	"github.com/glimpse-analytics/glimpse/internal/model"
)

// side is the table a property or metric is read from.
type side int

const (
	sideEvents   side = iota // events: one row per event
	sideSessions             // sessions: read collapsed, sum(sign)-weighted
	sideAny                  // a filter tree over both (Filter.pred)
)

// Property is a breakdown or filter dimension: one of model.Dimensions,
// or a custom property. Its SQL comes from the dimensions table; only a
// custom property's key is a bound value.
type Property struct {
	Name string // as requested: visit:source, event:props:author
	Key  string // the JSON field of a breakdown row: source, author
	side side
	col  string // column or expression over the row, no request values
	// valueCol is the expression over sessions_dims_hourly's value
	// column (attribution properties).
	valueCol string
	prop     string // event:props key, bound as an argument
	// types are the event types a breakdown by it counts (events side
	// only; none: all).
	types []int8
	// omitEmpty: a breakdown by it has no row for the empty value
	// (model.Dimension.OmitEmpty).
	omitEmpty bool
	// visitGoals: a breakdown by event:goal whose filters name pageview
	// goals ("Visit /pricing") lists them too, as Plausible lists its
	// configured goals: the page views each matches, by the goal's name
	// (withVisitGoals).
	visitGoals []visitGoal
	// parts: a breakdown by several dimensions (v2; dims.go) is one
	// property whose value joins its parts' values (their lengths
	// prefixed: splitKey reads them back).
	parts []*Property
	// bucket: a time dimension (v2's time:day, ...), the bucket of
	// timeCol in the zone loc.
	bucket, timeCol, loc string
	// stored is the sessions column a visit property is stored in.
	stored string
	// joined: a visit property read over events rows, from the visit of
	// each row (a column selected by the join of dims.go, jv<n>).
	joined bool
}

// visitGoal is one "Visit /path" value of a goal filter.
type visitGoal struct {
	f    *Filter // its filter: how the path is matched (==, ~, wildcards)
	page string  // the path pattern, without "Visit "
}

// withVisitGoals returns the breakdown property p for a question filtered
// by fs: for event:goal, one that also lists the pageview goals that fs
// names (Plausible's v1 lists a breakdown by goal's configured goals,
// pageview goals among them; Glimpse's goals are the ones the question
// names).
func (p *Property) withVisitGoals(fs []Filter) *Property {
	if p.Name != "event:goal" {
		return p
	}
	var gs []visitGoal
	seen := map[string]bool{}
	for i := range fs {
		f := &fs[i]
		if f.Prop.Name != "event:goal" || f.Negate {
			continue
		}
		for _, v := range f.Values {
			if page, ok := strings.CutPrefix(v, "Visit "); ok && !seen[v] {
				seen[v] = true
				gs = append(gs, visitGoal{f: f, page: page})
			}
		}
	}
	if len(gs) == 0 {
		return p
	}
	c := *p
	c.visitGoals = gs
	return &c
}

// isAttribution reports whether name is a session property fixed when a
// session starts and shared by all its versions (model.Dimension.Attr):
// sessions_dims_hourly holds one dimension per such property, named by
// it. Entry and exit pages change between versions and are not.
func isAttribution(name string) bool {
	d := model.Lookup(name)
	return d != nil && d.Attr != nil
}

// attributionOnly reports whether every filter is on an attribution
// property.
func attributionOnly(fs []Filter) bool {
	for _, f := range fs {
		if !isAttribution(f.Prop.Name) {
			return false
		}
	}
	return true
}

// oneDim returns the attribution property every filter of fs is on, if
// there is one: sessions_dims_hourly can then answer the sessions side.
func oneDim(fs []Filter) (string, bool) {
	if len(fs) == 0 || !attributionOnly(fs) {
		return "", false
	}
	for _, f := range fs[1:] {
		if f.Prop.Name != fs[0].Prop.Name {
			return "", false
		}
	}
	return fs[0].Prop.Name, true
}

// ParseProperty looks name up in the dimensions table; an unknown name is
// a 400 that names it.
func ParseProperty(name string) (*Property, error) {
	if key, ok := strings.CutPrefix(name, model.PropsPrefix); ok {
		if key == "" || len(key) > 300 {
			return nil, badRequest("invalid property %q: want event:props:<key> with a key of 1 to 300 bytes", name)
		}
		return &Property{Name: name, Key: key, side: sideEvents, prop: key}, nil
	}
	d := model.Lookup(name)
	if d == nil {
		return nil, badRequest("unknown property %q", name)
	}
	p := &Property{Name: name, Key: d.Key, side: sideEvents, col: d.ReportSQL(d.Column), valueCol: d.ReportSQL("value"), types: d.Types,
		omitEmpty: d.OmitEmpty, stored: d.Column}
	if d.Table == model.Sessions {
		p.side = sideSessions
	}
	return p, nil
}

// siteTotal reports whether conversion_rate in a breakdown by p divides
// by the visitors of the whole question without its goals rather than by
// each row's: goals, and custom properties, whose values exist only on
// the events that carry them (so a value's visitors without the goal are
// its converters again), as Plausible divides them.
func (p *Property) siteTotal() bool {
	for _, q := range p.parts {
		if q.siteTotal() {
			return true
		}
	}
	return p.Name == "event:goal" || p.prop != ""
}

// goalScoped reports whether a breakdown by p under a goal filter counts
// the events the goal selects rather than its own types: a page
// breakdown of conversions groups the goal events by their page.
func (p *Property) goalScoped(fs []Filter) bool {
	if len(p.parts) > 0 {
		p = p.scoping() // a composite counts its scoping part's events
	}
	return p.Name == "event:page" && hasGoal(fs)
}

// expr writes the property's value expression.
func (p *Property) expr(b *sqlb) {
	if len(p.parts) > 0 {
		b.w("concat(")
		for i, q := range p.parts {
			if i > 0 {
				b.w(", ")
			}
			b.w("toString(length(")
			q.expr(b)
			b.w(")), ':', ")
			q.expr(b)
		}
		b.w(")")
		return
	}
	if p.bucket != "" {
		bucketExpr(b, p.bucket, p.timeCol, p.loc)
		return
	}
	if p.prop == model.LinkURLProp {
		// Plausible reports the link of an outbound click or a download
		// as its url property; ingest stores it (cleaned) in target_url.
		b.w("multiIf(has(prop_keys, ").arg(p.prop).w("), prop_values[indexOf(prop_keys, ").arg(p.prop).w(")], ")
		linkTypes(b)
		b.w(", target_url, '(none)')")
		return
	}
	if p.prop != "" {
		b.w("if(has(prop_keys, ").arg(p.prop).w("), prop_values[indexOf(prop_keys, ").arg(p.prop).w(")], '(none)')")
		return
	}
	if len(p.visitGoals) > 0 {
		// A page view is its first matching pageview goal.
		b.w("multiIf(")
		for _, g := range p.visitGoals {
			b.w("type = 'pageview' AND ")
			g.f.match(b, func() { b.w("pathname") }, g.page)
			b.w(", ").arg("Visit " + g.page).w(", ")
		}
		b.w(p.col, ")")
		return
	}
	b.w(p.col)
}

// scope writes the events a breakdown by p counts (events side only):
// pages count page views, goals custom events, props events carrying the
// key, campaigns email events, outbound links, downloads and impressions
// their own event types (Dimension.Types). With engagement, a breakdown
// by pages also reads the engagement events that page leaves report.
func (p *Property) scope(b *sqlb, engagement bool) {
	if len(p.parts) > 0 {
		p = p.scoping()
	}
	if p.prop != "" || len(p.types) > 0 {
		b.w(" AND ")
		p.scopePred(b, engagement)
	}
}

// scopePred writes scope's predicate; p has a scope.
func (p *Property) scopePred(b *sqlb, engagement bool) {
	switch {
	case engagement:
		b.w("type IN ('", model.TypeName(p.types[0]), "', '", model.TypeName(model.TypeEngagement), "')")
	case p.prop == model.LinkURLProp:
		b.w("(has(prop_keys, ").arg(p.prop).w(") OR ")
		linkTypes(b)
		b.w(")")
	case p.prop != "":
		b.w("has(prop_keys, ").arg(p.prop).w(")")
	case len(p.types) == 1:
		b.w("type = '", model.TypeName(p.types[0]), "'")
	default:
		b.w("type IN (")
		for i, t := range p.types {
			if i > 0 {
				b.w(", ")
			}
			b.w("'", model.TypeName(t), "'")
		}
		if len(p.visitGoals) > 0 {
			// The goal filters keep the page views of the goals alone.
			b.w(", '", model.TypeName(model.TypePageview), "'")
		}
		b.w(")")
	}
}

// linkTypes writes whether an events row is an outbound click or a
// download, whose link is target_url.
func linkTypes(b *sqlb) {
	b.w("type IN ('", model.TypeName(model.TypeOutbound), "', '", model.TypeName(model.TypeDownload), "')")
}
