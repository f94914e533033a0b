package model

import (
	"slices"
	"time"
)

// Erasure is what a data subject's erasure removes from a site: the
// subject's events (by Event.SubjectID, the keyed hash of the consented
// user id) accepted up to Until, and every event of the sessions those
// events belong to, whenever accepted and whether or not they carry the
// subject id: a session is one person's visit, and its rows (the
// sessions table's, and the events that make it up, such as the pages
// seen before signing in) describe that visit.
//
// The writer drops what it matches before it is stored, the spool blanks
// it, and internal/storage/subject deletes what ClickHouse holds.
type Erasure struct {
	Site    string    `json:"site"`
	Subject string    `json:"subject"`
	Until   time.Time `json:"until"`
	// Sessions are the subject's sessions, ascending and without 0 (set
	// them with SetSessions).
	Sessions []uint64 `json:"sessions,omitempty"`
}

// SetSessions sets the sessions, in the order Match needs.
func (x *Erasure) SetSessions(ids []uint64) {
	s := slices.DeleteFunc(slices.Clone(ids), func(id uint64) bool { return id == 0 })
	slices.Sort(s)
	x.Sessions = slices.Compact(s)
}

// Match reports whether e is erased.
func (x *Erasure) Match(e *Event) bool {
	if e.SiteID != x.Site {
		return false
	}
	return x.OfSubject(e) || x.InSession(e.SessionID)
}

// OfSubject reports whether e is one of the subject's events accepted up
// to Until, whatever its site.
func (x *Erasure) OfSubject(e *Event) bool {
	return x.Subject != "" && string(e.SubjectID) == x.Subject && !e.TS.After(x.Until)
}

// InSession reports whether id is one of the subject's sessions.
func (x *Erasure) InSession(id uint64) bool {
	if id == 0 {
		return false
	}
	_, ok := slices.BinarySearch(x.Sessions, id)
	return ok
}
