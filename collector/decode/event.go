package decode

import (
	"bytes"
	"iter"
)

// Type is the kind of an analytics event.
type Type uint8

// Event types. The zero value, TypeUnknown, never comes out of a successful
// decode.
const (
	TypeUnknown    Type = iota // not decoded yet
	TypePageview               // a page view
	TypeCustom                 // a named custom event (goal)
	TypeOutbound               // a click on a link to another site
	TypeDownload               // a click on a file download link
	TypeEngagement             // time on page and scroll depth of a page view
	TypeImpression             // an element or e-mail was shown
)

// String returns the wire name of t ("pageview", "custom", ...), or
// "unknown".
func (t Type) String() string {
	switch t {
	case TypePageview:
		return "pageview"
	case TypeCustom:
		return "custom"
	case TypeOutbound:
		return "outbound"
	case TypeDownload:
		return "download"
	case TypeEngagement:
		return "engagement"
	case TypeImpression:
		return "impression"
	default:
		return "unknown"
	}
}

// ParseType returns the Type whose String is s, and false when s names no
// type (including "unknown").
func ParseType(s []byte) (Type, bool) {
	switch string(s) {
	case "pageview":
		return TypePageview, true
	case "custom":
		return TypeCustom, true
	case "outbound":
		return TypeOutbound, true
	case "download":
		return TypeDownload, true
	case "engagement":
		return TypeEngagement, true
	case "impression":
		return TypeImpression, true
	default:
		return TypeUnknown, false
	}
}

// Event names that Plausible's tracker sends and that imply a Type. An event
// of one of these types that arrives without a name gets the matching name.
const (
	NamePageview   = "pageview"
	NameOutbound   = "Outbound Link: Click"
	NameDownload   = "File Download"
	NameEngagement = "engagement"
	NameImpression = "impression"
)

// typeFromName infers the Type of an event sent without an explicit type.
func typeFromName(name []byte) Type {
	switch string(name) {
	case NamePageview:
		return TypePageview
	case NameOutbound:
		return TypeOutbound
	case NameDownload:
		return TypeDownload
	case NameEngagement:
		return TypeEngagement
	default:
		return TypeCustom
	}
}

// defaultName is the name given to an event of type t sent without one.
// Custom events have no default: they must be named.
func defaultName(t Type) string {
	switch t {
	case TypePageview:
		return NamePageview
	case TypeOutbound:
		return NameOutbound
	case TypeDownload:
		return NameDownload
	case TypeEngagement:
		return NameEngagement
	case TypeImpression:
		return NameImpression
	default:
		return ""
	}
}

// Event is one decoded analytics event.
//
// An Event is meant to be reused: every byte slice in it is backed by
// buffers that the next decode (or Reset) overwrites. A caller that keeps
// any of them past that point must copy it. An Event is not safe for
// concurrent use.
type Event struct {
	// Type is the explicit type if one was sent, else inferred from Name.
	Type Type
	// Name is the event name as sent, or the type's default name
	// (NamePageview, ...) when a non-custom event came without one.
	Name []byte
	// URL is the page URL as sent; never empty after a successful decode.
	URL []byte
	// Domain is the site domain field as sent; Plausible allows a
	// comma-separated list ("a.com,b.com"). Use Domains to iterate.
	Domain []byte
	// Referrer is the referrer URL as sent, possibly empty.
	Referrer []byte

	// PropKeys and PropValues are the custom properties, in the order sent,
	// duplicates removed (the last value wins). Numbers and booleans are
	// rendered as their JSON text; null, empty, nested objects and arrays
	// are dropped, as Plausible does.
	PropKeys   [][]byte
	PropValues [][]byte

	// HashMode is set when the site routes by URL fragment (Plausible `h`).
	HashMode bool
	// Interactive is false for events that must not end a bounce
	// (Plausible `i: false`); true by default.
	Interactive bool

	// HasRevenue reports whether RevenueAmount and RevenueCurrency were sent.
	HasRevenue bool
	// RevenueAmount is the revenue amount, 0..MaxRevenueAmount.
	RevenueAmount float64
	// RevenueCurrency is a 3-letter upper-case ISO 4217 code.
	RevenueCurrency []byte

	// ScreenWidth is the screen width in CSS pixels (Plausible `w`), 0 if
	// not sent.
	ScreenWidth uint16
	// EngagementMS is the engaged time on page in milliseconds.
	EngagementMS uint32
	// HasScrollDepth reports whether ScrollDepth was sent: a depth of 0 is
	// a real value.
	HasScrollDepth bool
	// ScrollDepth is the maximum scroll depth in percent, 0..100.
	ScrollDepth uint8

	// ConnType is navigator.connection.effectiveType: one of "slow-2g",
	// "2g", "3g", "4g", or empty.
	ConnType []byte
	// Downlink is navigator.connection.downlink in Mbit/s.
	Downlink float32
	// RTT is navigator.connection.rtt in milliseconds.
	RTT uint16
	// SaveData is navigator.connection.saveData.
	SaveData bool

	// Consent reports that the visitor consented to identified tracking.
	Consent bool
	// UID is the site's own user id, sent in consented mode only. It must be
	// hashed before it is stored anywhere.
	UID []byte
	// TargetURL is the link target of an outbound click or a download: the
	// Glimpse `tu` field, or else Plausible's `props.url`.
	TargetURL []byte
}

// Reset clears e for reuse, keeping the capacity of its buffers.
// Interactive is true after Reset, like a decoded event that did not say.
func (e *Event) Reset() {
	*e = Event{
		Name:            e.Name[:0],
		URL:             e.URL[:0],
		Domain:          e.Domain[:0],
		Referrer:        e.Referrer[:0],
		PropKeys:        e.PropKeys[:0],
		PropValues:      e.PropValues[:0],
		Interactive:     true,
		RevenueCurrency: e.RevenueCurrency[:0],
		ConnType:        e.ConnType[:0],
		UID:             e.UID[:0],
		TargetURL:       e.TargetURL[:0],
	}
}

// Domains iterates over the non-empty entries of the comma-separated Domain
// field, with surrounding spaces trimmed. It allocates nothing.
func (e *Event) Domains() iter.Seq[[]byte] {
	return func(yield func([]byte) bool) {
		rest := e.Domain
		for len(rest) > 0 {
			var d []byte
			d, rest = cutDomain(rest)
			if len(d) > 0 && !yield(d) {
				return
			}
		}
	}
}

// cutDomain splits the first entry off a comma-separated domain list.
func cutDomain(list []byte) (d, rest []byte) {
	if i := bytes.IndexByte(list, ','); i >= 0 {
		d, rest = list[:i], list[i+1:]
	} else {
		d = list
	}
	return bytes.TrimSpace(d), rest
}

// hasDomain reports whether a domain list has at least one non-empty entry.
func hasDomain(list []byte) bool {
	for len(list) > 0 {
		var d []byte
		d, list = cutDomain(list)
		if len(d) > 0 {
			return true
		}
	}
	return false
}

// appendElem sets list[len(list)] to a copy of b, reusing the buffer that a
// previous decode left in that element when there is one.
func appendElem(list [][]byte, b []byte) [][]byte {
	n := len(list)
	if n < cap(list) {
		list = list[:n+1]
		list[n] = append(list[n][:0], b...)
		return list
	}
	return append(list, append([]byte(nil), b...))
}
