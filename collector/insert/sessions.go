package insert

import (
	"strings"
	"time"

	"github.com/glimpse-analytics/glimpse/internal/model"
)

func bounce(s *model.Session) int64 {
	if s.Bounce {
		return 1
	}
	return 0
}

// SessionRow is a row of the sessions table: a session state with its
// sign (+1 for a state, -1 to cancel one written before).
type SessionRow struct {
	S    model.Session
	Sign int8
}

// sessionColumns are the sessions table's columns that Sessions
// appends first; the attribution columns (model.AttrDims) follow. The
// hostname and browser and OS versions are not part of a session's
// attribution: those columns are left out and stay empty.
const sessionColumns = "site_id, session_id, visitor_id, sign, version, start, ts, duration, pageviews, events, " +
	"is_bounce, engagement_ms, entry_page, exit_page"

// Sessions builds the sessions table's INSERTs: column slices reused
// from one batch to the next.
type Sessions struct {
	strs   [3][]string
	attrs  [][]string // one per model.AttrDims
	u64    [3][]uint64
	signs  []int8
	u32    [4][]uint32
	times  [2][]time.Time
	u8     []uint8
	cols   []any
	insert Builder
}

var noAttrs model.Attrs

// Build returns the INSERT for rows and its column slices, leaving out
// columns that hold only defaults (see Events.Build).
func (c *Sessions) Build(rows []SessionRow) (string, []any) {
	return c.insert.Build("sessions", sessionColumnNames, c.fill(rows))
}

// BuildAll is Build naming every column, whatever rows hold: the blocks of
// one streamed INSERT must all have its columns.
func (c *Sessions) BuildAll(rows []SessionRow) (string, []any) {
	return allSessionColumns, c.fill(rows)
}

// fill sets the column slices to rows and returns them, in the order of
// sessionColumnNames.
func (c *Sessions) fill(rows []SessionRow) []any {
	for i := range c.strs {
		c.strs[i] = c.strs[i][:0]
	}
	if c.attrs == nil {
		c.attrs = make([][]string, len(model.AttrDims))
	}
	for i := range c.attrs {
		c.attrs[i] = c.attrs[i][:0]
	}
	for i := range c.u64 {
		c.u64[i] = c.u64[i][:0]
	}
	for i := range c.u32 {
		c.u32[i] = c.u32[i][:0]
	}
	c.times[0], c.times[1], c.signs, c.u8 = c.times[0][:0], c.times[1][:0], c.signs[:0], c.u8[:0]
	for i := range rows {
		r := &rows[i].S
		a := r.Attrs
		if a == nil {
			a = &noAttrs
		}
		c.u64[0] = append(c.u64[0], r.ID)
		c.u64[1] = append(c.u64[1], r.VisitorID)
		c.u64[2] = append(c.u64[2], r.EngagementMS)
		c.signs = append(c.signs, rows[i].Sign)
		c.u32[0] = append(c.u32[0], r.Version)
		c.u32[1] = append(c.u32[1], r.DurationSec)
		c.u32[2] = append(c.u32[2], r.Pageviews)
		c.u32[3] = append(c.u32[3], r.Events)
		c.times[0] = append(c.times[0], r.Start)
		c.times[1] = append(c.times[1], r.LastSeen)
		c.u8 = append(c.u8, uint8(bounce(r)))
		c.strs[0] = append(c.strs[0], r.Site)
		c.strs[1] = append(c.strs[1], r.EntryPage)
		c.strs[2] = append(c.strs[2], r.ExitPage)
		for j, d := range model.AttrDims {
			c.attrs[j] = append(c.attrs[j], *d.Attr(a))
		}
	}
	cols := append(c.cols[:0],
		c.strs[0], c.u64[0], c.u64[1], c.signs, c.u32[0], c.times[0], c.times[1], c.u32[1], c.u32[2], c.u32[3],
		c.u8, c.u64[2], c.strs[1], c.strs[2])
	for _, a := range c.attrs {
		cols = append(cols, a)
	}
	c.cols = cols
	return cols
}

var sessionColumnNames = func() []string {
	names := strings.Split(sessionColumns, ", ")
	for _, d := range model.AttrDims {
		names = append(names, d.Column)
	}
	return names
}()

var allSessionColumns = "INSERT INTO sessions (" + strings.Join(sessionColumnNames, ", ") + ")"

// Release zeroes the string views after a flush.
func (c *Sessions) Release() {
	for i := range c.strs {
		clear(c.strs[i])
	}
	for i := range c.attrs {
		clear(c.attrs[i])
	}
}
