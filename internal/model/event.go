package model

import (
	"encoding/binary"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Event types, as the events.type Enum8 numbers them (0001_events.sql).
const (
	TypePageview   int8 = 1
	TypeCustom     int8 = 2
	TypeOutbound   int8 = 3
	TypeDownload   int8 = 4
	TypeEngagement int8 = 5
	TypeImpression int8 = 6
	TypeEmailOpen  int8 = 7
	TypeEmailClick int8 = 8
)

var typeNames = [...]string{TypePageview: "pageview", TypeCustom: "custom", TypeOutbound: "outbound", TypeDownload: "download",
	TypeEngagement: "engagement", TypeImpression: "impression", TypeEmailOpen: "email_open", TypeEmailClick: "email_click"}

// TypeName is t's name in the events.type Enum8, or "" for no type.
func TypeName(t int8) string {
	if int(t) > 0 && int(t) < len(typeNames) {
		return typeNames[t]
	}
	return ""
}

// Event is one row of the events table. Events are pooled: the collector
// takes one from the writer, fills it, and hands it back to be stored;
// the writer owns it from then on and returns it to the pool after the
// insert. Byte fields are buffers reused across events (append into them
// with [:0]); string fields must point at immutable values (site domains,
// cached UA and geo answers, constant tables) so filling an event
// allocates nothing.
type Event struct {
	SiteID          string
	EventID         uuid.UUID
	TS              time.Time
	Type            int8
	Name            []byte
	VisitorID       uint64
	SessionID       uint64
	SubjectID       []byte
	Hostname        []byte
	Pathname        []byte
	Referrer        []byte
	ReferrerSource  string
	Channel         string
	UTMSource       []byte
	UTMMedium       []byte
	UTMCampaign     []byte
	UTMContent      []byte
	UTMTerm         []byte
	TargetURL       []byte
	CountryCode     string
	Region          string
	City            string
	IPPrefix        []byte
	Browser         string
	BrowserVersion  string
	OS              string
	OSVersion       string
	Device          string
	Screen          string
	ConnectionType  string
	Downlink        float32
	RTT             uint16
	SaveData        uint8
	EngagementMS    uint32
	ScrollDepth     uint8
	Interactive     uint8
	PropKeys        [][]byte
	PropValues      [][]byte
	RevenueMicros   int64
	RevenueCurrency []byte
	EmailCampaign   []byte
	EmailRecipient  []byte
	EmailVerdict    string
	EmailReason     string
}

// Reset clears e for reuse, keeping its buffers.
func (e *Event) Reset() {
	keys, vals := e.PropKeys[:0], e.PropValues[:0]
	*e = Event{
		Name: e.Name[:0], SubjectID: e.SubjectID[:0], Hostname: e.Hostname[:0], Pathname: e.Pathname[:0],
		Referrer: e.Referrer[:0], UTMSource: e.UTMSource[:0], UTMMedium: e.UTMMedium[:0],
		UTMCampaign: e.UTMCampaign[:0], UTMContent: e.UTMContent[:0], UTMTerm: e.UTMTerm[:0],
		TargetURL: e.TargetURL[:0], IPPrefix: e.IPPrefix[:0], PropKeys: keys, PropValues: vals,
		RevenueCurrency: e.RevenueCurrency[:0], EmailCampaign: e.EmailCampaign[:0], EmailRecipient: e.EmailRecipient[:0],
	}
}

// NewID gives e a fresh random event id (a version 4 UUID). The bits come
// from math/rand/v2's global generator, ChaCha8 seeded from the operating
// system: unique and unpredictable enough for an id that only deduplicates
// retried inserts, at a fraction of crypto/rand's cost per event.
func (e *Event) NewID() {
	binary.LittleEndian.PutUint64(e.EventID[:8], rand.Uint64())
	binary.LittleEndian.PutUint64(e.EventID[8:], rand.Uint64())
	e.EventID[6] = e.EventID[6]&0x0f | 0x40 // version 4
	e.EventID[8] = e.EventID[8]&0x3f | 0x80 // RFC 4122 variant
}

// AddProp appends a property, reusing the event's buffers.
func (e *Event) AddProp(k, v []byte) {
	n := len(e.PropKeys)
	if n < cap(e.PropKeys) {
		e.PropKeys = e.PropKeys[:n+1]
		e.PropValues = e.PropValues[:n+1]
		e.PropKeys[n] = append(e.PropKeys[n][:0], k...)
		e.PropValues[n] = append(e.PropValues[n][:0], v...)
		return
	}
	e.PropKeys = append(e.PropKeys, append([]byte(nil), k...))
	e.PropValues = append(e.PropValues, append([]byte(nil), v...))
}

// eventColumns lists the events table's columns in the order the writer
// appends them and Values returns them.
const eventColumns = "site_id, event_id, ts, type, name, visitor_id, session_id, subject_id, hostname, pathname, " +
	"referrer, referrer_source, channel, utm_source, utm_medium, utm_campaign, utm_content, utm_term, target_url, " +
	"country_code, region, city, ip_prefix, browser, browser_version, os, os_version, device, screen, " +
	"connection_type, downlink, rtt, save_data, engagement_ms, scroll_depth, interactive, prop_keys, prop_values, " +
	"revenue_micros, revenue_currency, email_campaign, email_recipient, email_verdict, email_reason"

// EventColumns are the events table's columns in insert order, for the
// writer and for exports that must show a spooled event like a stored row.
func EventColumns() []string { return strings.Split(eventColumns, ", ") }

// Values returns e's columns in EventColumns order as a query of the table
// returns them with event_id and type cast to String: the UUID in its
// text form, the type by its Enum8 name. It allocates; it is not for the
// hot path.
func (e *Event) Values() []any {
	strs := func(bs [][]byte) []string {
		out := make([]string, len(bs))
		for i, b := range bs {
			out[i] = string(b)
		}
		return out
	}
	return []any{
		e.SiteID, e.EventID.String(), e.TS.UTC(), TypeName(e.Type), string(e.Name), e.VisitorID, e.SessionID, string(e.SubjectID),
		string(e.Hostname), string(e.Pathname), string(e.Referrer), e.ReferrerSource, e.Channel,
		string(e.UTMSource), string(e.UTMMedium), string(e.UTMCampaign), string(e.UTMContent), string(e.UTMTerm),
		string(e.TargetURL), e.CountryCode, e.Region, e.City, string(e.IPPrefix), e.Browser, e.BrowserVersion,
		e.OS, e.OSVersion, e.Device, e.Screen, e.ConnectionType, e.Downlink, e.RTT, e.SaveData, e.EngagementMS,
		e.ScrollDepth, e.Interactive, strs(e.PropKeys), strs(e.PropValues), e.RevenueMicros,
		string(e.RevenueCurrency), string(e.EmailCampaign), string(e.EmailRecipient), e.EmailVerdict, e.EmailReason,
	}
}
