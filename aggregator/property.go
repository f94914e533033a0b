package aggregator

import (
	"strings"
)

// side is the table a property or metric is read from.
type side int

const (
	sideEvents   side = iota // events: one row per event
	sideSessions             // sessions: read collapsed, sum(sign)-weighted
)

// Property is a breakdown or filter dimension. Its SQL comes from the
// fixed table below; only a custom property's key is a bound value.
type Property struct {
	Name string // as requested: visit:source, event:props:author
	Key  string // the JSON field of a breakdown row: source, author
	side side
	col  string // column or expression over the row, no request values
	prop string // event:props key, bound as an argument
}

type propDef struct {
	key  string
	side side
	col  string
}

// properties is the whitelist of properties and the SQL they map to.
// Browser and OS versions are not part of a session's attribution (the
// sessions table leaves them empty), so they are read from events.
var properties = map[string]propDef{
	"event:page":            {"page", sideEvents, "pathname"},
	"event:goal":            {"goal", sideEvents, "name"},
	"event:hostname":        {"hostname", sideEvents, "hostname"},
	"email:campaign":        {"campaign", sideEvents, "email_campaign"},
	"event:outbound_link":   {"url", sideEvents, "target_url"},
	"event:download":        {"url", sideEvents, "target_url"},
	"event:impression":      {"impression", sideEvents, "name"},
	"visit:entry_page":      {"entry_page", sideSessions, "entry_page"},
	"visit:exit_page":       {"exit_page", sideSessions, "exit_page"},
	"visit:source":          {"source", sideSessions, "if(referrer_source = '', 'Direct / None', referrer_source)"},
	"visit:referrer":        {"referrer", sideSessions, "referrer"},
	"visit:channel":         {"channel", sideSessions, "channel"},
	"visit:utm_source":      {"utm_source", sideSessions, "utm_source"},
	"visit:utm_medium":      {"utm_medium", sideSessions, "utm_medium"},
	"visit:utm_campaign":    {"utm_campaign", sideSessions, "utm_campaign"},
	"visit:utm_content":     {"utm_content", sideSessions, "utm_content"},
	"visit:utm_term":        {"utm_term", sideSessions, "utm_term"},
	"visit:country":         {"country", sideSessions, "country_code"},
	"visit:region":          {"region", sideSessions, "region"},
	"visit:city":            {"city", sideSessions, "city"},
	"visit:browser":         {"browser", sideSessions, "browser"},
	"visit:browser_version": {"browser_version", sideEvents, "browser_version"},
	"visit:os":              {"os", sideSessions, "os"},
	"visit:os_version":      {"os_version", sideEvents, "os_version"},
	"visit:device":          {"device", sideSessions, "device"},
	"visit:screen":          {"screen", sideSessions, "screen"},
	"visit:connection":      {"connection", sideSessions, "connection_type"},
}

const propsPrefix = "event:props:"

// attribution lists the session properties fixed when a session starts and
// shared by all its versions; sessions_dims_hourly holds one dimension per
// property here, named by it, with the value the property's expression
// above computes (the collector's writer computes it in Go: dimensions in
// collector/sink/session.go; keep the two in step). Entry and exit pages
// change between versions and are not here.
var attribution = map[string]bool{
	"visit:source": true, "visit:referrer": true, "visit:channel": true,
	"visit:utm_source": true, "visit:utm_medium": true, "visit:utm_campaign": true,
	"visit:utm_content": true, "visit:utm_term": true,
	"visit:country": true, "visit:region": true, "visit:city": true,
	"visit:browser": true, "visit:os": true, "visit:device": true,
	"visit:screen": true, "visit:connection": true,
}

// attributionOnly reports whether every filter is on an attribution
// property.
func attributionOnly(fs []Filter) bool {
	for _, f := range fs {
		if !attribution[f.Prop.Name] {
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

// ParseProperty looks name up in the whitelist; an unknown name is a 400
// that names it.
func ParseProperty(name string) (*Property, error) {
	if key, ok := strings.CutPrefix(name, propsPrefix); ok {
		if key == "" || len(key) > 300 {
			return nil, badRequest("invalid property %q: want event:props:<key> with a key of 1 to 300 bytes", name)
		}
		return &Property{Name: name, Key: key, side: sideEvents, prop: key}, nil
	}
	d, ok := properties[name]
	if !ok {
		return nil, badRequest("unknown property %q", name)
	}
	return &Property{Name: name, Key: d.key, side: d.side, col: d.col}, nil
}

// expr writes the property's value expression.
func (p *Property) expr(b *sqlb) {
	if p.prop != "" {
		b.w("if(has(prop_keys, ").arg(p.prop).w("), prop_values[indexOf(prop_keys, ").arg(p.prop).w(")], '(none)')")
		return
	}
	b.w(p.col)
}

// scope writes the events a breakdown by p counts (events side only):
// pages count page views, goals custom events, props events carrying the
// key, campaigns email events, outbound links, downloads and impressions
// their own event types (keyed by the cleaned target URL or the name).
func (p *Property) scope(b *sqlb) {
	switch {
	case p.prop != "":
		b.w(" AND has(prop_keys, ").arg(p.prop).w(")")
	case p.Name == "event:page":
		b.w(" AND type = 'pageview'")
	case p.Name == "event:goal":
		b.w(" AND type = 'custom'")
	case p.Name == "email:campaign":
		b.w(" AND type IN ('email_open', 'email_click')")
	case p.Name == "event:outbound_link":
		b.w(" AND type = 'outbound'")
	case p.Name == "event:download":
		b.w(" AND type = 'download'")
	case p.Name == "event:impression":
		b.w(" AND type = 'impression'")
	}
}
