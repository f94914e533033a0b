package sink

import (
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// SessionRow is one row of the sessions table (0002_sessions.sql): a
// session's state with Sign +1, or a previous state cancelled with Sign -1.
// Strings must be immutable (they are shared with the session cache).
type SessionRow struct {
	SiteID         string
	SessionID      uint64
	VisitorID      uint64
	Sign           int8
	Version        uint32
	Start          time.Time
	TS             time.Time
	Duration       uint32
	Pageviews      uint32
	Events         uint32
	IsBounce       uint8
	EngagementMS   uint64
	EntryPage      string
	ExitPage       string
	Hostname       string
	Referrer       string
	ReferrerSource string
	Channel        string
	UTMSource      string
	UTMMedium      string
	UTMCampaign    string
	UTMContent     string
	UTMTerm        string
	CountryCode    string
	Region         string
	City           string
	Browser        string
	BrowserVersion string
	OS             string
	OSVersion      string
	Device         string
	Screen         string
	ConnectionType string
}

const sessionColumns = "site_id, session_id, visitor_id, sign, version, start, ts, duration, pageviews, events, " +
	"is_bounce, engagement_ms, entry_page, exit_page, hostname, referrer, referrer_source, channel, " +
	"utm_source, utm_medium, utm_campaign, utm_content, utm_term, country_code, region, city, " +
	"browser, browser_version, os, os_version, device, screen, connection_type"

// sessionBatch holds column slices reused from one flush to the next.
type sessionBatch struct {
	strs  [22][]string
	u64   [3][]uint64
	signs []int8
	u32   [4][]uint32
	times [2][]time.Time
	u8    []uint8
}

func (c *sessionBatch) appendTo(b driver.Batch, rows []SessionRow) error {
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
		r := &rows[i]
		c.u64[0] = append(c.u64[0], r.SessionID)
		c.u64[1] = append(c.u64[1], r.VisitorID)
		c.u64[2] = append(c.u64[2], r.EngagementMS)
		c.signs = append(c.signs, r.Sign)
		c.u32[0] = append(c.u32[0], r.Version)
		c.u32[1] = append(c.u32[1], r.Duration)
		c.u32[2] = append(c.u32[2], r.Pageviews)
		c.u32[3] = append(c.u32[3], r.Events)
		c.times[0] = append(c.times[0], r.Start)
		c.times[1] = append(c.times[1], r.TS)
		c.u8 = append(c.u8, r.IsBounce)
		for j, v := range [...]string{r.SiteID, r.EntryPage, r.ExitPage, r.Hostname, r.Referrer, r.ReferrerSource,
			r.Channel, r.UTMSource, r.UTMMedium, r.UTMCampaign, r.UTMContent, r.UTMTerm, r.CountryCode,
			r.Region, r.City, r.Browser, r.BrowserVersion, r.OS, r.OSVersion, r.Device, r.Screen, r.ConnectionType} {
			c.strs[j] = append(c.strs[j], v)
		}
	}
	cols := []any{
		c.strs[0], c.u64[0], c.u64[1], c.signs, c.u32[0], c.times[0], c.times[1], c.u32[1], c.u32[2], c.u32[3],
		c.u8, c.u64[2], c.strs[1], c.strs[2], c.strs[3], c.strs[4], c.strs[5], c.strs[6],
		c.strs[7], c.strs[8], c.strs[9], c.strs[10], c.strs[11], c.strs[12], c.strs[13], c.strs[14],
		c.strs[15], c.strs[16], c.strs[17], c.strs[18], c.strs[19], c.strs[20], c.strs[21],
	}
	for i, col := range cols {
		if err := b.Column(i).Append(col); err != nil {
			return err
		}
	}
	return nil
}

func (c *sessionBatch) release() {
	for i := range c.strs {
		clear(c.strs[i])
	}
}

// SessionUpdate is one change of a session: Cur is written with sign +1,
// and Prev, when HasPrev, is cancelled with sign -1. Signs are set by the
// writer.
type SessionUpdate struct {
	Prev, Cur SessionRow
	HasPrev   bool
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

func (c *sessionCoalescer) add(rows []SessionRow, u SessionUpdate) []SessionRow {
	if c.pending == nil {
		c.pending = make(map[uint64]pendingSession)
	}
	u.Cur.Sign = 1
	id := u.Cur.SessionID
	if p, ok := c.pending[id]; ok && u.HasPrev && u.Prev.SessionID == id && p.version == u.Prev.Version {
		rows[p.idx] = u.Cur
		c.pending[id] = pendingSession{idx: p.idx, version: u.Cur.Version}
		return rows
	}
	if u.HasPrev {
		u.Prev.Sign = -1
		rows = append(rows, u.Prev)
	}
	c.pending[id] = pendingSession{idx: len(rows), version: u.Cur.Version}
	return append(rows, u.Cur)
}

func (c *sessionCoalescer) reset() { clear(c.pending) }
