package model

import "strings"

// Table is where raw queries read a dimension.
type Table int

const (
	// Events: one row per event.
	Events Table = iota
	// Sessions: one row per session version, read collapsed (sum(sign)).
	Sessions
)

// Dimension is a property that reports break down and filter by: the one
// place that knows its API name, its column, the SQL of its value, how a
// session carries it and how the dashboard labels it. Ingest, the
// writer's rollups, the query engine, the seed, the dashboard and the
// Grafana dashboards's checks read it from Dimensions.
type Dimension struct {
	// Name is the dimension as the Stats API names it: "visit:source".
	Name string
	// Key is the field of a breakdown row: "source".
	Key string
	// Label is what the dashboard calls it: "Source".
	Label string
	// Table is the raw table queries read it from, Column its column there.
	Table  Table
	Column string
	// Empty is what a row whose column is empty reports: DirectNone for a
	// visit without a source; "" reports the empty value itself. Rollups
	// store it (SQL, Value).
	Empty string
	// Unset is what reports show for an empty value that is stored empty,
	// rollups included: the mapping is at read time only (ReportSQL), so
	// filters by it match the empty rows, and no stored row changes.
	// DirectNone for a visit without a referrer, NotSet for an unknown
	// browser, OS, device or version, as Plausible names them.
	Unset string
	// OmitEmpty: a breakdown by the dimension lists only the rows with a
	// value (UTM parameters, as Plausible's breakdowns list them); the
	// empty value is neither a row nor folded into (other).
	OmitEmpty bool
	// Clean, when set, returns the SQL of the reported value of a stored
	// one, col (the raw column, or a rollup's value column). It must be
	// idempotent: rollups hold stored values, cleaned at read.
	Clean func(col string) string
	// Types are the event types a breakdown by the dimension counts
	// (page views for pages, custom events for goals); none: all.
	Types []int8
	// Attr points at the dimension's field of a session's attribution.
	// Attribution dimensions are fixed when a session starts, written on
	// every version of it and rolled up per dimension in
	// sessions_dims_hourly; nil for the others.
	Attr func(*Attrs) *string
	// Vocabulary lists the values ingest stores for a dimension with a
	// fixed set of them (channels, devices, screen classes, connections);
	// nil for open sets.
	Vocabulary []string
}

// Goals that Plausible names itself: its tracker sends outbound link
// clicks and file downloads as custom events of these names, which
// ingest stores as outbound and download events (with the link in
// target_url).
const (
	GoalOutbound = "Outbound Link: Click"
	GoalDownload = "File Download"
)

// goalSQL is a goal's name over an events row: a custom event's name, or
// Plausible's name of an outbound or download event.
const goalSQL = "multiIf(type = 'outbound', '" + GoalOutbound + "', type = 'download', '" + GoalDownload + "', name)"

// LinkURLProp is the custom property by which Plausible reports the link
// of an outbound click or a download: event:props:url reads target_url
// on those events.
const LinkURLProp = "url"

// DirectNone is the source of a visit that came from no referrer and no
// campaign, as Plausible names it.
const DirectNone = "Direct / None"

// NotSet is what Plausible reports for a browser, OS, device or version
// it does not know.
const NotSet = "(not set)"

// SQL returns the expression of the dimension's value over a row of its
// table as rollups store it (Value): Empty for an empty column, not
// cleaned. It holds no request values.
func (d *Dimension) SQL() string {
	if d.Empty == "" {
		return d.Column
	}
	return "if(" + d.Column + " = '', '" + d.Empty + "', " + d.Column + ")"
}

// ReportSQL returns the expression of the value reports show over col,
// a column holding stored values (the dimension's column, or a rollup's
// value column): cleaned (Clean), Empty or Unset for an empty one.
func (d *Dimension) ReportSQL(col string) string {
	if d.Clean != nil {
		col = d.Clean(col)
	}
	empty := d.Empty
	if empty == "" {
		empty = d.Unset
	}
	if empty == "" {
		return col
	}
	return "if(" + col + " = '', '" + empty + "', " + col + ")"
}

// cleanReferrer reports a referrer as Plausible does: the URL without
// its scheme, a leading "www." or a trailing slash ("google.com",
// "news.ycombinator.com/item"). Ingest stores host and path without
// scheme or query; older rows and the seed hold full URLs.
func cleanReferrer(col string) string {
	return "replaceRegexpAll(" + col + ", '^https?://www[.]|^https?://|^www[.]|/$', '')"
}

// Value returns the value of an attribution dimension for a, as SQL
// computes it over the sessions row that carries a.
func (d *Dimension) Value(a *Attrs) string {
	if v := *d.Attr(a); v != "" || d.Empty == "" {
		return v
	}
	return d.Empty
}

// Vocabularies: the values ingest, the seed and the migrations store for
// channels, devices, screen classes and connection types, spelled as
// Plausible spells them, so that a filter written for Plausible
// (visit:device==Desktop, visit:channel==Organic Search) means the same
// here. Connection types are the Network Information API's effective
// types, which Plausible does not report.
const (
	ChannelDirect        = "Direct"
	ChannelOrganicSearch = "Organic Search"
	ChannelOrganicSocial = "Organic Social"
	ChannelEmail         = "Email"
	ChannelPaidSearch    = "Paid Search"
	ChannelPaidSocial    = "Paid Social"
	ChannelReferral      = "Referral"

	DeviceDesktop = "Desktop"
	DeviceMobile  = "Mobile"
	DeviceTablet  = "Tablet"

	ScreenMobile  = "Mobile"
	ScreenTablet  = "Tablet"
	ScreenLaptop  = "Laptop"
	ScreenDesktop = "Desktop"

	ConnectionSlow2G = "slow-2g"
	Connection2G     = "2g"
	Connection3G     = "3g"
	Connection4G     = "4g"
)

// Dimensions lists every dimension, events side first. Browser and OS
// versions are not part of a session's attribution (the sessions table
// leaves them empty), so they are read from events.
var Dimensions = []Dimension{
	{Name: "event:page", Key: "page", Label: "Page", Table: Events, Column: "pathname", Types: []int8{TypePageview}},
	{Name: "event:goal", Key: "goal", Label: "Goal", Table: Events, Column: goalSQL, Types: []int8{TypeCustom, TypeOutbound, TypeDownload}},
	{Name: "event:hostname", Key: "hostname", Label: "Hostname", Table: Events, Column: "hostname"},
	{Name: "event:outbound_link", Key: "url", Label: "Outbound link", Table: Events, Column: "target_url", Types: []int8{TypeOutbound}},
	{Name: "event:download", Key: "url", Label: "Download", Table: Events, Column: "target_url", Types: []int8{TypeDownload}},
	{Name: "event:impression", Key: "impression", Label: "Impression", Table: Events, Column: "name", Types: []int8{TypeImpression}},
	{Name: "email:campaign", Key: "campaign", Label: "Email campaign", Table: Events, Column: "email_campaign",
		Types: []int8{TypeEmailOpen, TypeEmailClick}},
	{Name: "visit:browser_version", Key: "browser_version", Label: "Browser version", Table: Events, Column: "browser_version", Unset: NotSet},
	{Name: "visit:os_version", Key: "os_version", Label: "Operating system version", Table: Events, Column: "os_version", Unset: NotSet},

	{Name: "visit:entry_page", Key: "entry_page", Label: "Entry page", Table: Sessions, Column: "entry_page"},
	{Name: "visit:exit_page", Key: "exit_page", Label: "Exit page", Table: Sessions, Column: "exit_page"},
	{Name: "visit:source", Key: "source", Label: "Source", Table: Sessions, Column: "referrer_source", Empty: DirectNone,
		Attr: func(a *Attrs) *string { return &a.Source }},
	{Name: "visit:referrer", Key: "referrer", Label: "Referrer", Table: Sessions, Column: "referrer", Clean: cleanReferrer, Unset: DirectNone,
		Attr: func(a *Attrs) *string { return &a.Referrer }},
	{Name: "visit:channel", Key: "channel", Label: "Channel", Table: Sessions, Column: "channel",
		Attr: func(a *Attrs) *string { return &a.Channel },
		Vocabulary: []string{ChannelDirect, ChannelOrganicSearch, ChannelOrganicSocial, ChannelEmail,
			ChannelPaidSearch, ChannelPaidSocial, ChannelReferral}},
	{Name: "visit:utm_source", Key: "utm_source", Label: "UTM source", Table: Sessions, Column: "utm_source", OmitEmpty: true,
		Attr: func(a *Attrs) *string { return &a.UTMSource }},
	{Name: "visit:utm_medium", Key: "utm_medium", Label: "UTM medium", Table: Sessions, Column: "utm_medium", OmitEmpty: true,
		Attr: func(a *Attrs) *string { return &a.UTMMedium }},
	{Name: "visit:utm_campaign", Key: "utm_campaign", Label: "UTM campaign", Table: Sessions, Column: "utm_campaign", OmitEmpty: true,
		Attr: func(a *Attrs) *string { return &a.UTMCampaign }},
	{Name: "visit:utm_content", Key: "utm_content", Label: "UTM content", Table: Sessions, Column: "utm_content", OmitEmpty: true,
		Attr: func(a *Attrs) *string { return &a.UTMContent }},
	{Name: "visit:utm_term", Key: "utm_term", Label: "UTM term", Table: Sessions, Column: "utm_term", OmitEmpty: true,
		Attr: func(a *Attrs) *string { return &a.UTMTerm }},
	{Name: "visit:country", Key: "country", Label: "Country", Table: Sessions, Column: "country_code",
		Attr: func(a *Attrs) *string { return &a.Country }},
	{Name: "visit:region", Key: "region", Label: "Region", Table: Sessions, Column: "region",
		Attr: func(a *Attrs) *string { return &a.Region }},
	{Name: "visit:city", Key: "city", Label: "City", Table: Sessions, Column: "city",
		Attr: func(a *Attrs) *string { return &a.City }},
	{Name: "visit:browser", Key: "browser", Label: "Browser", Table: Sessions, Column: "browser", Unset: NotSet,
		Attr: func(a *Attrs) *string { return &a.Browser }},
	{Name: "visit:os", Key: "os", Label: "Operating system", Table: Sessions, Column: "os", Unset: NotSet,
		Attr: func(a *Attrs) *string { return &a.OS }},
	{Name: "visit:device", Key: "device", Label: "Device", Table: Sessions, Column: "device", Unset: NotSet,
		Attr:       func(a *Attrs) *string { return &a.Device },
		Vocabulary: []string{DeviceDesktop, DeviceMobile, DeviceTablet}},
	{Name: "visit:screen", Key: "screen", Label: "Screen size", Table: Sessions, Column: "screen",
		Attr:       func(a *Attrs) *string { return &a.Screen },
		Vocabulary: []string{ScreenMobile, ScreenTablet, ScreenLaptop, ScreenDesktop}},
	{Name: "visit:connection", Key: "connection", Label: "Connection", Table: Sessions, Column: "connection_type",
		Attr:       func(a *Attrs) *string { return &a.ConnectionType },
		Vocabulary: []string{ConnectionSlow2G, Connection2G, Connection3G, Connection4G}},
}

// PropsPrefix starts the name of a custom property dimension:
// event:props:<key>, read from the events' prop_keys and prop_values.
const PropsPrefix = "event:props:"

// byName indexes Dimensions.
var byName = func() map[string]*Dimension {
	m := make(map[string]*Dimension, len(Dimensions))
	for i := range Dimensions {
		m[Dimensions[i].Name] = &Dimensions[i]
	}
	return m
}()

// Lookup returns the dimension named name, or nil (custom properties
// included: they are not in the table).
func Lookup(name string) *Dimension { return byName[name] }

// AttrDims are the attribution dimensions, in Dimensions' order: the
// dimensions of sessions_dims_hourly, and the fields of Attrs.
var AttrDims = func() []*Dimension {
	var out []*Dimension
	for i := range Dimensions {
		if Dimensions[i].Attr != nil {
			out = append(out, &Dimensions[i])
		}
	}
	return out
}()

// IsCustom reports whether name is a custom property dimension.
func IsCustom(name string) bool { return strings.HasPrefix(name, PropsPrefix) }
