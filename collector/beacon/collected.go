package beacon

import (
	"strings"

	"github.com/glimpse-analytics/glimpse/internal/config"
)

// item is one kind of data the collector stores, as the opt-out page's
// "What is collected" lists it. Every column of the raw tables (events,
// sessions, email_optouts) belongs to an item or to rowColumns; a test
// holds the list to the migrated schema, so a new column cannot go
// unmentioned.
type item struct {
	text string // the line on the page
	// textFor, when set, words the line for the sites the page speaks for.
	textFor func(*scope) string
	columns []string // the stored columns it covers
	// anonColumns are the columns kept when an opted-out visit is counted
	// anonymously (privacy mode aggregate), and anon names them in the
	// page's sentence about that. A test holds them to the rows the
	// collector writes.
	anonColumns []string
	anon        []string
	// when says whether the page lists the item for the sites it speaks
	// for; nil: always.
	when func(*scope) bool
}

// rowColumns say which site and what kind of row, or order a visit's
// versions: nothing about a visitor.
var rowColumns = []string{"site_id", "event_id", "type", "sign", "version"}

// collected is what the collector stores, in the page's order.
var collected = []item{
	{text: "the address of each page you view (without its query string, but for campaign tags and the parameters a site keeps), and when",
		columns: []string{"hostname", "pathname", "ts"}, anonColumns: []string{"hostname", "pathname", "ts"}, anon: []string{"the page", "the time"}},
	{text: "the names of the custom events a site sends (a sign-up, say) and of the marked content you saw",
		columns: []string{"name"}, anonColumns: []string{"name"}, anon: []string{"the event’s name"}},
	{text: "the properties and revenue amounts a site attaches to its custom events",
		columns: []string{"prop_keys", "prop_values", "revenue_micros", "revenue_currency"}},
	{text: "the page that sent you and what kind of source it is (search, social, email and so on)",
		columns: []string{"referrer", "referrer_source", "channel"}},
	{text: "campaign tags in the page’s address (utm_source, utm_medium, utm_campaign, utm_content, utm_term)",
		columns: []string{"utm_source", "utm_medium", "utm_campaign", "utm_content", "utm_term"}},
	{text: "the outbound links you click and the files you download",
		columns: []string{"target_url"}},
	{text: "your browser, operating system and their versions, and your type of device",
		columns: []string{"browser", "browser_version", "os", "os_version", "device"}},
	{text: "the size class of your screen (mobile, tablet, laptop or desktop), not its exact width",
		columns: []string{"screen"}},
	{text: "your connection type and speed (bandwidth and round-trip time) and whether data saving is on",
		columns: []string{"connection_type", "downlink", "rtt", "save_data"}},
	{text: "how long each page was visible, how far you scrolled, and whether you interacted with it",
		columns: []string{"engagement_ms", "scroll_depth", "interactive"}},
	{text: "each visit’s start, length, entry and exit pages, and how many page views and events it had",
		columns: []string{"start", "duration", "pageviews", "events", "is_bounce", "entry_page", "exit_page"}},
	{text: "a visitor id that tells your visits apart for one day at most, and an id of each visit",
		columns: []string{"visitor_id", "session_id"}},
	{textFor: location, columns: []string{"country_code", "region", "city"},
		anonColumns: []string{"country_code"}, anon: []string{"your country"}, when: func(s *scope) bool { return s.geo }},
	{text: "your IP address with its last part cut off: the /24 (IPv4) or /48 (IPv6) network it belongs to",
		columns: []string{"ip_prefix"}},
	{text: "on a site where you agreed to it, a keyed hash of your account id there",
		columns: []string{"subject_id"}, when: func(s *scope) bool { return s.anySite(consented) }},
	{text: "for emails a site tracks: opens and link clicks with their campaign, a pseudonym of the recipient that the sender computes (never the address), whether a person or a machine opened or clicked, and each time a recipient opts out or back in",
		columns: []string{"email_campaign", "email_recipient", "email_verdict", "email_reason", "recipient", "opted_out", "seq"},
		when:    func(s *scope) bool { return s.email }},
}

// scope is what the page speaks for: the sites (one, or all), and what the
// collector is set up to store beside them.
type scope struct {
	sites []config.Site
	geo   bool // --geoip is set
	email bool // email.signing_keys are set
}

func (s *scope) anySite(f func(*config.Site) bool) bool {
	for i := range s.sites {
		if f(&s.sites[i]) {
			return true
		}
	}
	return false
}

func consented(s *config.Site) bool { return s.Privacy.Mode == config.ModeConsented }
func aggregate(s *config.Site) bool { return s.Privacy.Mode == config.ModeAggregate }

// location words the geo line for the sites' precisions.
func location(s *scope) string {
	rank := map[string]int{config.GeoCountry: 0, config.GeoRegion: 1, config.GeoCity: 2}
	lo, hi := 2, 0
	for i := range s.sites {
		r := rank[s.sites[i].Privacy.Geo]
		lo, hi = min(lo, r), max(hi, r)
	}
	const head = "your approximate location, looked up from your IP address: "
	switch {
	case hi == 0:
		return head + "your country"
	case lo == hi && hi == 1:
		return head + "your country and region"
	case lo == hi:
		return head + "your country, region and city"
	case lo == 0 && hi == 1:
		return head + "your country and, depending on the site, region"
	case lo == 0:
		return head + "your country and, depending on the site, region and city"
	default:
		return head + "your country and region and, depending on the site, city"
	}
}

// list returns the page's lines for s.
func (s *scope) list() []string {
	var out []string
	for i := range collected {
		it := &collected[i]
		if it.when != nil && !it.when(s) {
			continue
		}
		if it.textFor != nil {
			out = append(out, it.textFor(s))
			continue
		}
		out = append(out, it.text)
	}
	return out
}

// anonKept names what an anonymously counted event keeps, for s.
func (s *scope) anonKept() string {
	var names []string
	for i := range collected {
		it := &collected[i]
		if it.when == nil || it.when(s) {
			names = append(names, it.anon...)
		}
	}
	return joinAnd(names)
}

// joinAnd joins "a", "b" and "c" as "a, b and c".
func joinAnd(s []string) string {
	if len(s) < 2 {
		return strings.Join(s, "")
	}
	return strings.Join(s[:len(s)-1], ", ") + " and " + s[len(s)-1]
}
