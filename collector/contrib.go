package collector

import (
	"time"

	"github.com/glimpse-analytics/glimpse/collector/decode"
	"github.com/glimpse-analytics/glimpse/collector/ledger"
	"github.com/glimpse-analytics/glimpse/collector/session"
	"github.com/glimpse-analytics/glimpse/internal/model"
)

// Contribution caps. On a site whose aggregates are noisy, the noise on
// every released number is calibrated to what one visitor-day (a daily
// visitor id) can add to it: model's bounds. The collector enforces them
// as events arrive, in a ledger of what each visitor-day has stored so
// far; an event beyond them is answered 202 and dropped with reason
// contribution-cap. Sites with exact aggregates never touch the ledger.
//
// An anonymous event (mode aggregate, opted out) has no visitor id and
// cannot be bounded: each is its own unit, stored as before.

// ledgerSize is the visitor-days the ledger holds: twice the session
// cache's default (262,144 entries once rounded, 32 bytes each: 8 MiB).
// The session cache is sized for the visitors seen within an idle
// timeout; a visitor-day must outlive its sessions to bound the next
// one, so the ledger holds twice as many, the visitor-days of the last
// hour or so at the traffic the cache is sized for. An older one is
// evicted first (least recently seen in its bucket) and restarts its
// counts if its visitor comes back that day, which
// glimpse_contribution_evictions_total counts.
const ledgerSize = 2 * session.DefaultMaxSessions

// dayCounts is what a visitor-day has stored on a site so far: the value
// of the ledger's entries, 16 bytes and no pointer.
type dayCounts struct {
	session     uint64 // the session its last stored event joined
	engagedMS   uint32 // of MaxEngagedMSPerDay
	events      uint8  // of MaxEventsPerDay
	visits      uint8  // of MaxVisitsPerDay
	engagements uint8  // of MaxEngagementsPerDay
	_           uint8
}

// The counts fit their fields (a constant that overflows is a compile
// error).
const (
	_ = uint8(model.MaxEventsPerDay)
	_ = uint8(model.MaxVisitsPerDay)
	_ = uint8(model.MaxEngagementsPerDay)
	_ = uint32(model.MaxEngagedMSPerDay)
)

func newLedger() *ledger.Table[dayCounts] { return ledger.New[dayCounts](ledgerSize) }

// contribution is what admit counted for one event, for the steps after
// the session touch: noting a visit it started, or giving the counts
// back when the event is not stored after all.
type contribution struct {
	site    uint32
	visitor uint64
	now     time.Time
	event   bool   // counted against MaxEventsPerDay
	report  bool   // counted against MaxEngagementsPerDay
	ms      uint32 // engaged time counted
	noStart bool   // the visitor-day may start no more visits
	session uint64 // the visitor-day's last session when admitted
}

// admit counts ev against its visitor-day's caps and reports whether it
// may be stored. Engagement reports are counted apart from other events,
// and the engaged time of any event is clamped to what the day has left:
// a report left with none is dropped, another event is kept with none.
// The visits are not counted here but once the touch has told whether
// the event started one (visit); admit says whether one more may start.
func (s *Server) admit(st *siteState, ev *decode.Event, visitor uint64, now time.Time) (c contribution, ok bool) {
	c = contribution{site: st.index, visitor: visitor, now: now}
	report := ev.Type == decode.TypeEngagement
	s.ledger.Update(st.index, visitor, now, func(v *dayCounts) {
		left := model.MaxEngagedMSPerDay - v.engagedMS
		switch {
		case !report && v.events >= model.MaxEventsPerDay:
			return
		case report && (v.engagements >= model.MaxEngagementsPerDay || left == 0 && ev.EngagementMS > 0):
			return
		case report:
			v.engagements++
			c.report = true
		default:
			v.events++
			c.event = true
		}
		ok = true
		c.ms = min(ev.EngagementMS, left)
		v.engagedMS += c.ms
		c.noStart = v.visits >= model.MaxVisitsPerDay
		c.session = v.session
	})
	ev.EngagementMS = c.ms
	return c, ok
}

// visit notes that the event of c joined session id: a visit of its
// visitor-day if the day's events had not joined it yet. A session that
// continues across midnight is counted for the new day too, which can
// only leave that day fewer visits than the cap.
func (s *Server) visit(c *contribution, id uint64) {
	if id == c.session {
		return // the common case: the day's last session continues
	}
	s.ledger.Update(c.site, c.visitor, c.now, func(v *dayCounts) {
		if v.session != id {
			v.session = id
			v.visits = min(v.visits+1, model.MaxVisitsPerDay)
		}
	})
}

// refund gives back what admit counted for an event that was not stored
// after all (rate limit, the visits cap, a full queue).
func (s *Server) refund(c *contribution) {
	s.ledger.Update(c.site, c.visitor, c.now, func(v *dayCounts) {
		if c.event && v.events > 0 {
			v.events--
		}
		if c.report && v.engagements > 0 {
			v.engagements--
		}
		v.engagedMS -= min(c.ms, v.engagedMS)
	})
}
