package insert

import (
	"time"
	"unsafe"

	"github.com/google/uuid"

	"github.com/glimpse-analytics/glimpse/internal/model"
)

// str views b as a string without copying. The rows stay alive and
// unmodified until the batch is sent, and the driver copies the bytes into
// its own buffer on Append, so the view never outlives its bytes.
func str(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// Events builds the events table's INSERTs: column slices reused from
// one batch to the next.
type Events struct {
	strs    [30][]string // one slice per String-like column, in build's order
	ids     []uuid.UUID
	ts      []time.Time
	types   []int8
	u64     [2][]uint64
	f32     []float32
	u16     []uint16
	u8      [4][]uint8
	u32     []uint32
	i64     []int64
	arrs    [2][][]string
	arrPool []string
	insert  Builder
}

// AllColumns makes every INSERT name every column (Builder.All).
func (c *Events) AllColumns() { c.insert.All = true }

// Build returns the INSERT for rows and its column slices. Columns that hold
// only defaults in this batch (empty strings, zeros, empty arrays: e-mail
// fields in a batch of page views, say) are left out of the INSERT, and
// ClickHouse fills the same defaults: less to encode, send and store.
func (c *Events) Build(rows []*model.Event) (string, []any) {
	c.reset()
	// One pass, row by row: an event's fields are read together, so each
	// event is fetched from memory once, not once per column (a batch is
	// far larger than the CPU caches).
	sc := &c.strs
	for _, r := range rows {
		c.ids = append(c.ids, r.EventID)
		c.ts = append(c.ts, r.TS)
		c.types = append(c.types, r.Type)
		c.u64[0] = append(c.u64[0], r.VisitorID)
		c.u64[1] = append(c.u64[1], r.SessionID)
		c.f32 = append(c.f32, r.Downlink)
		c.u16 = append(c.u16, r.RTT)
		c.u8[0] = append(c.u8[0], r.SaveData)
		c.u8[1] = append(c.u8[1], r.ScrollDepth)
		c.u8[2] = append(c.u8[2], r.Interactive)
		c.u32 = append(c.u32, r.EngagementMS)
		c.i64 = append(c.i64, r.RevenueMicros)
		start := len(c.arrPool)
		for _, k := range r.PropKeys {
			c.arrPool = append(c.arrPool, str(k))
		}
		mid := len(c.arrPool)
		for _, v := range r.PropValues {
			c.arrPool = append(c.arrPool, str(v))
		}
		c.arrs[0] = append(c.arrs[0], c.arrPool[start:mid:mid])
		c.arrs[1] = append(c.arrs[1], c.arrPool[mid:len(c.arrPool):len(c.arrPool)])
		for i, v := range [...]string{
			r.SiteID, str(r.Name), str(r.SubjectID), str(r.Hostname), str(r.Pathname), str(r.Referrer),
			r.ReferrerSource, r.Channel, str(r.UTMSource), str(r.UTMMedium), str(r.UTMCampaign),
			str(r.UTMContent), str(r.UTMTerm), str(r.TargetURL), r.CountryCode, r.Region, r.City,
			str(r.IPPrefix), r.Browser, r.BrowserVersion, r.OS, r.OSVersion, r.Device, r.Screen,
			r.ConnectionType, str(r.RevenueCurrency), str(r.EmailCampaign), str(r.EmailRecipient),
			r.EmailVerdict, r.EmailReason,
		} {
			sc[i] = append(sc[i], v)
		}
	}
	cols := []any{
		sc[0], c.ids, c.ts, c.types, sc[1], c.u64[0], c.u64[1], sc[2], sc[3], sc[4], sc[5], sc[6], sc[7],
		sc[8], sc[9], sc[10], sc[11], sc[12], sc[13], sc[14], sc[15], sc[16], sc[17], sc[18], sc[19],
		sc[20], sc[21], sc[22], sc[23], sc[24],
		c.f32, c.u16, c.u8[0], c.u32, c.u8[1], c.u8[2],
		c.arrs[0], c.arrs[1],
		c.i64,
		sc[25], sc[26], sc[27], sc[28], sc[29],
	}
	return c.insert.Build("events", eventColumnNames, cols)
}

var eventColumnNames = model.EventColumns()

func (c *Events) reset() {
	for i := range c.strs {
		c.strs[i] = c.strs[i][:0]
	}
	c.ids, c.ts, c.types = c.ids[:0], c.ts[:0], c.types[:0]
	c.u64[0], c.u64[1] = c.u64[0][:0], c.u64[1][:0]
	c.f32, c.u16, c.u32, c.i64 = c.f32[:0], c.u16[:0], c.u32[:0], c.i64[:0]
	for i := range c.u8 {
		c.u8[i] = c.u8[i][:0]
	}
	c.arrs[0], c.arrs[1] = c.arrs[0][:0], c.arrs[1][:0]
	c.arrPool = c.arrPool[:0]
}

// Release zeroes the string views after a flush so they do not pin the
// released rows' buffers.
func (c *Events) Release() {
	for i := range c.strs {
		clear(c.strs[i])
	}
	clear(c.arrPool)
	clear(c.arrs[0])
	clear(c.arrs[1])
}
