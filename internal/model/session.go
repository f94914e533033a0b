package model

import (
	"time"
	"unsafe"
)

// Session is one version of a session: a row of the sessions table (a
// VersionedCollapsingMergeTree on Version, 0002_sessions.sql). Its strings
// are immutable, so a Session may be kept as long as needed (for example
// until its row is flushed).
type Session struct {
	// ID is random and never 0; a zero ID means "no session".
	ID uint64
	// VisitorID is the visitor id of every event of the session: sessions
	// end at 00:00 UTC, when visitor ids change (collector/session).
	VisitorID uint64
	Site      string
	Start     time.Time
	LastSeen  time.Time
	// Version starts at 1 and grows by one with every touch.
	Version uint32
	// Pageviews counts page views; Events counts page views and custom
	// events, but not engagement reports.
	Pageviews uint32
	Events    uint32
	// Bounce holds until the second interactive touch (page views count).
	Bounce bool
	// DurationSec is the time from the first to the last page view or
	// event, plus the engagement reported after that last one: reports
	// arrive when a page is left, so earlier reports are already inside
	// the first-to-last span and adding them again would count them twice.
	// At most the cap the session started with (MaxVisitSeconds on a site
	// with noisy aggregates).
	DurationSec uint32
	// EngagementMS is all engagement reported in the session.
	EngagementMS uint64
	// EntryPage is the path of the touch that started the session (or of
	// the first page view, if that touch had none); ExitPage is the path of
	// the last page view (until there is one, the starting touch's path).
	EntryPage string
	ExitPage  string
	// Attrs is the attribution of the touch that started the session; never
	// nil. It is shared by all versions of the session, and by other
	// sessions with the same attribution, and must not be modified.
	Attrs *Attrs
}

// Emit takes one change of a session: cur, replacing prev when hadPrev.
type Emit = func(prev, cur *Session, hadPrev bool)

// SessionSource is where the writer takes session changes from: the
// session cache, or generated sessions (the seed).
type SessionSource interface {
	// Drain calls emit for every session changed since the last Drain, and
	// pause now and then between them, with no lock held: the writer
	// inserts there what it has collected, so that a drain of many
	// sessions is never held in memory whole.
	Drain(emit Emit, pause func()) int
}

// Attrs is a session's attribution: the values of the attribution
// dimensions (Dimension.Attr), taken from the event that starts the
// session and the same in all its versions.
type Attrs struct {
	Referrer       string
	Source         string
	Channel        string
	UTMSource      string
	UTMMedium      string
	UTMCampaign    string
	UTMTerm        string
	UTMContent     string
	Country        string
	Region         string
	City           string
	Browser        string
	OS             string
	Device         string
	Screen         string
	ConnectionType string
}

// AttrsView returns e's attribution. Its strings are views of e's
// buffers, valid while e is unchanged: a caller that keeps them copies
// them (the session cache interns them).
func AttrsView(e *Event) Attrs {
	return Attrs{
		Referrer: view(e.Referrer), Source: e.ReferrerSource, Channel: e.Channel,
		UTMSource: view(e.UTMSource), UTMMedium: view(e.UTMMedium), UTMCampaign: view(e.UTMCampaign),
		UTMTerm: view(e.UTMTerm), UTMContent: view(e.UTMContent),
		Country: e.CountryCode, Region: e.Region, City: e.City,
		Browser: e.Browser, OS: e.OS, Device: e.Device, Screen: e.Screen, ConnectionType: e.ConnectionType,
	}
}

// view is a string over b without copying.
func view(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }
