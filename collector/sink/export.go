package sink

import (
	"strings"
)

var typeNames = [...]string{TypePageview: "pageview", TypeCustom: "custom", TypeOutbound: "outbound", TypeDownload: "download",
	TypeEngagement: "engagement", TypeImpression: "impression", TypeEmailOpen: "email_open", TypeEmailClick: "email_click"}

// EventColumns are the events table's columns in insert order, for
// exports that must show a spooled event like a stored row.
func EventColumns() []string { return strings.Split(eventColumns, ", ") }

// Values returns e's columns in EventColumns order as a query of the table
// returns them with event_id and type cast to String: the UUID in its
// text form, the type by its Enum8 name. It allocates; it is not for the
// hot path.
func (e *Event) Values() []any {
	typ := ""
	if int(e.Type) > 0 && int(e.Type) < len(typeNames) {
		typ = typeNames[e.Type]
	}
	strs := func(bs [][]byte) []string {
		out := make([]string, len(bs))
		for i, b := range bs {
			out[i] = string(b)
		}
		return out
	}
	return []any{
		e.SiteID, e.EventID.String(), e.TS.UTC(), typ, string(e.Name), e.VisitorID, e.SessionID, string(e.SubjectID),
		string(e.Hostname), string(e.Pathname), string(e.Referrer), e.ReferrerSource, e.Channel,
		string(e.UTMSource), string(e.UTMMedium), string(e.UTMCampaign), string(e.UTMContent), string(e.UTMTerm),
		string(e.TargetURL), e.CountryCode, e.Region, e.City, string(e.IPPrefix), e.Browser, e.BrowserVersion,
		e.OS, e.OSVersion, e.Device, e.Screen, e.ConnectionType, e.Downlink, e.RTT, e.SaveData, e.EngagementMS,
		e.ScrollDepth, e.Interactive, strs(e.PropKeys), strs(e.PropValues), e.RevenueMicros,
		string(e.RevenueCurrency), string(e.EmailCampaign), string(e.EmailRecipient), e.EmailVerdict, e.EmailReason,
	}
}
