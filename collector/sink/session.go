package sink

import (
	"strings"
	"time"

	"github.com/glimpse-analytics/glimpse/collector/visitor"
)

// SessionUpdate is one change of a session: Cur is written with sign +1,
// and Prev, when HasPrev, is cancelled with sign -1 (sessions is a
// VersionedCollapsingMergeTree, 0002_sessions.sql). The sessions are the
// cache's immutable values, so an update is small and copies no strings.
type SessionUpdate struct {
	Prev, Cur visitor.Session
	HasPrev   bool
}

// sessionRow is a session state with its sign.
type sessionRow struct {
	s    visitor.Session
	sign int8
}

const sessionColumns = "site_id, session_id, visitor_id, sign, version, start, ts, duration, pageviews, events, " +
	"is_bounce, engagement_ms, entry_page, exit_page, hostname, referrer, referrer_source, channel, " +
	"utm_source, utm_medium, utm_campaign, utm_content, utm_term, country_code, region, city, " +
	"browser, browser_version, os, os_version, device, screen, connection_type"

// sessionBatch holds column slices reused from one flush to the next.
type sessionBatch struct {
	strs   [22][]string
	u64    [3][]uint64
	signs  []int8
	u32    [4][]uint32
	times  [2][]time.Time
	u8     []uint8
	insert insertBuilder
}

var noAttrs visitor.Attrs

// build returns the INSERT for rows and its column slices, leaving out
// columns that hold only defaults (see eventBatch.build).
func (c *sessionBatch) build(rows []sessionRow) (string, []any) {
	for i := range c.strs {
		c.strs[i] = c.strs[i][:0]
	}
	for i := range c.u64 {
		c.u64[i] = c.u64[i][:0]
	}
	for i := range c.u32 {
		c.u32[i] = c.u32[i][:0]
	}
	c.times[0], c.times[1], c.signs, c.u8 = c.times[0][:0], c.times[1][:0], c.signs[:0], c.u8[:0]
	for i := range rows {
		r := &rows[i].s
		a := r.Attrs
		if a == nil {
			a = &noAttrs
		}
		c.u64[0] = append(c.u64[0], r.ID)
		c.u64[1] = append(c.u64[1], r.VisitorID)
		c.u64[2] = append(c.u64[2], r.EngagementMS)
		c.signs = append(c.signs, rows[i].sign)
		c.u32[0] = append(c.u32[0], r.Version)
		c.u32[1] = append(c.u32[1], r.DurationSec)
		c.u32[2] = append(c.u32[2], r.Pageviews)
		c.u32[3] = append(c.u32[3], r.Events)
		c.times[0] = append(c.times[0], r.Start)
		c.times[1] = append(c.times[1], r.LastSeen)
		var bounce uint8
		if r.Bounce {
			bounce = 1
		}
		c.u8 = append(c.u8, bounce)
		// hostname and the browser/OS versions are not part of a session's
		// attribution; the columns stay empty.
		for j, v := range [...]string{r.Site, r.EntryPage, r.ExitPage, "", a.Referrer, a.Source,
			a.Channel, a.UTMSource, a.UTMMedium, a.UTMCampaign, a.UTMContent, a.UTMTerm, a.Country,
			a.Region, a.City, a.Browser, "", a.OS, "", a.Device, a.Screen, a.ConnectionType} {
			c.strs[j] = append(c.strs[j], v)
		}
	}
	cols := []any{
		c.strs[0], c.u64[0], c.u64[1], c.signs, c.u32[0], c.times[0], c.times[1], c.u32[1], c.u32[2], c.u32[3],
		c.u8, c.u64[2], c.strs[1], c.strs[2], c.strs[3], c.strs[4], c.strs[5], c.strs[6],
		c.strs[7], c.strs[8], c.strs[9], c.strs[10], c.strs[11], c.strs[12], c.strs[13], c.strs[14],
		c.strs[15], c.strs[16], c.strs[17], c.strs[18], c.strs[19], c.strs[20], c.strs[21],
	}
	return c.insert.build("sessions", sessionColumnNames, cols)
}

var sessionColumnNames = strings.Split(sessionColumns, ", ")

func (c *sessionBatch) release() {
	for i := range c.strs {
		clear(c.strs[i])
	}
}

// sessionCoalescer folds updates of one session that arrive while a batch
// is collecting: when an update cancels a +1 row that is still in the
// batch, the cancel is dropped and the new state takes that row's place.
// After VersionedCollapsingMergeTree collapses, the table holds the same as
// without folding — the last state written cancelled and the newest one —
// from fewer rows: a busy visitor's updates within one flush cost at most
// two rows, not two per event.
type sessionCoalescer struct {
	pending map[uint64]pendingSession // session id → its +1 row in the batch
}

type pendingSession struct {
	idx     int    // index of the +1 row in the batch
	version uint32 // its version
}

func (c *sessionCoalescer) add(rows []sessionRow, u SessionUpdate) []sessionRow {
	if c.pending == nil {
		c.pending = make(map[uint64]pendingSession)
	}
	id := u.Cur.ID
	if p, ok := c.pending[id]; ok && u.HasPrev && u.Prev.ID == id && p.version == u.Prev.Version {
		rows[p.idx] = sessionRow{u.Cur, 1}
		c.pending[id] = pendingSession{idx: p.idx, version: u.Cur.Version}
		return rows
	}
	if u.HasPrev {
		rows = append(rows, sessionRow{u.Prev, -1})
	}
	c.pending[id] = pendingSession{idx: len(rows), version: u.Cur.Version}
	return append(rows, sessionRow{u.Cur, 1})
}

func (c *sessionCoalescer) reset() { clear(c.pending) }
