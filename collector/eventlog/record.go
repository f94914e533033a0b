package eventlog

import (
	"encoding/binary"
	"errors"
	"math"
	"time"

	"github.com/google/uuid"

	"github.com/glimpse-analytics/glimpse/internal/model"
)

// Spool records. A record's payload (the spool frames it, with its length
// and CRC) is a version byte (recordV1) followed by the fields of Event in
// declaration order: byte and string fields as a uvarint length and the
// bytes, integers as uvarints (TS as a zigzag varint of Unix
// nanoseconds), EventID as 16 raw bytes, Downlink as its IEEE-754 bits,
// PropKeys/PropValues as a count and then the pairs. The fields are
// exactly the events table's columns, so the spool holds no more than the
// table does: truncated IP prefix, hashes, parsed User-Agent fields.
//
// A payload that starts with 0 is a record an erasure blanked
// (spool.Rewrite: all zeros): no event, and no damage either.
const recordV1 = 1

var errBadRecord = errors.New("malformed spool record")

// ErrBlank is DecodeRecord's answer for a blanked record: skip it.
var ErrBlank = errors.New("blanked spool record")

// AppendRecord appends e's record payload to dst.
func AppendRecord(dst []byte, e *model.Event) []byte {
	dst = append(dst, recordV1)
	bs := func(b []byte) { dst = binary.AppendUvarint(dst, uint64(len(b))); dst = append(dst, b...) }
	ss := func(s string) { dst = binary.AppendUvarint(dst, uint64(len(s))); dst = append(dst, s...) }
	u := func(v uint64) { dst = binary.AppendUvarint(dst, v) }
	ss(e.SiteID)
	dst = append(dst, e.EventID[:]...)
	dst = binary.AppendVarint(dst, e.TS.UnixNano())
	dst = append(dst, byte(e.Type))
	bs(e.Name)
	u(e.VisitorID)
	u(e.SessionID)
	bs(e.SubjectID)
	bs(e.Hostname)
	bs(e.Pathname)
	bs(e.Referrer)
	ss(e.ReferrerSource)
	ss(e.Channel)
	bs(e.UTMSource)
	bs(e.UTMMedium)
	bs(e.UTMCampaign)
	bs(e.UTMContent)
	bs(e.UTMTerm)
	bs(e.TargetURL)
	ss(e.CountryCode)
	ss(e.Region)
	ss(e.City)
	bs(e.IPPrefix)
	ss(e.Browser)
	ss(e.BrowserVersion)
	ss(e.OS)
	ss(e.OSVersion)
	ss(e.Device)
	ss(e.Screen)
	ss(e.ConnectionType)
	u(uint64(math.Float32bits(e.Downlink)))
	u(uint64(e.RTT))
	u(uint64(e.SaveData))
	u(uint64(e.EngagementMS))
	u(uint64(e.ScrollDepth))
	u(uint64(e.Interactive))
	u(uint64(len(e.PropKeys)))
	for i := range e.PropKeys {
		bs(e.PropKeys[i])
		bs(e.PropValues[i])
	}
	dst = binary.AppendVarint(dst, e.RevenueMicros)
	bs(e.RevenueCurrency)
	bs(e.EmailCampaign)
	bs(e.EmailRecipient)
	ss(e.EmailVerdict)
	ss(e.EmailReason)
	return dst
}

// Interner returns one string per distinct value, so decoding the
// low-cardinality string fields (site, browser, country, ...) of a replayed
// row allocates only the first time a value is seen.
type Interner struct {
	m map[string]string
	// last holds the string each field slot had in the previous record:
	// consecutive events mostly share their site, browser, OS, country and
	// so on, and comparing with the last value is cheaper than hashing.
	last [16]string
}

// get returns an interned copy of b; slot names the field, for last.
func (in *Interner) get(slot int, b []byte) string {
	if len(b) == 0 {
		return ""
	}
	if in.last[slot] == string(b) {
		return in.last[slot]
	}
	s := in.lookup(b)
	in.last[slot] = s
	return s
}

func (in *Interner) lookup(b []byte) string {
	if s, ok := in.m[string(b)]; ok {
		return s
	}
	if in.m == nil || len(in.m) > 1<<16 {
		in.m = make(map[string]string) // bounded: start over rather than grow
	}
	s := string(b)
	in.m[s] = s
	return s
}

// recordDecoder reads fields from one payload.
type recordDecoder struct {
	p   []byte
	err error
	in  *Interner
}

func (d *recordDecoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.p)
	if n <= 0 {
		d.err = errBadRecord
		return 0
	}
	d.p = d.p[n:]
	return v
}

func (d *recordDecoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.p)
	if n <= 0 {
		d.err = errBadRecord
		return 0
	}
	d.p = d.p[n:]
	return v
}

func (d *recordDecoder) raw(n int) []byte {
	if d.err != nil || n < 0 || n > len(d.p) {
		d.err = errBadRecord
		return nil
	}
	b := d.p[:n]
	d.p = d.p[n:]
	return b
}

func (d *recordDecoder) bytes(dst []byte) []byte {
	n := d.uvarint()
	if n > uint64(len(d.p)) {
		d.err = errBadRecord
		return dst
	}
	return append(dst, d.raw(int(n))...)
}

// str reads a string field; slot numbers the string fields of a record.
func (d *recordDecoder) str(slot int) string {
	n := d.uvarint()
	if n > uint64(len(d.p)) {
		d.err = errBadRecord
		return ""
	}
	return d.in.get(slot, d.raw(int(n)))
}

// DecodeRecord fills e (reset, from the pool) from a record's payload.
func DecodeRecord(p []byte, e *model.Event, in *Interner) error {
	if len(p) > 0 && p[0] == 0 {
		return ErrBlank
	}
	if len(p) == 0 || p[0] != recordV1 {
		return errBadRecord
	}
	d := recordDecoder{p: p[1:], in: in}
	e.SiteID = d.str(0)
	copy(e.EventID[:], d.raw(len(uuid.UUID{})))
	e.TS = time.Unix(0, d.varint()).UTC()
	if t := d.raw(1); len(t) == 1 {
		e.Type = int8(t[0])
	}
	e.Name = d.bytes(e.Name)
	e.VisitorID = d.uvarint()
	e.SessionID = d.uvarint()
	e.SubjectID = d.bytes(e.SubjectID)
	e.Hostname = d.bytes(e.Hostname)
	e.Pathname = d.bytes(e.Pathname)
	e.Referrer = d.bytes(e.Referrer)
	e.ReferrerSource = d.str(1)
	e.Channel = d.str(2)
	e.UTMSource = d.bytes(e.UTMSource)
	e.UTMMedium = d.bytes(e.UTMMedium)
	e.UTMCampaign = d.bytes(e.UTMCampaign)
	e.UTMContent = d.bytes(e.UTMContent)
	e.UTMTerm = d.bytes(e.UTMTerm)
	e.TargetURL = d.bytes(e.TargetURL)
	e.CountryCode = d.str(3)
	e.Region = d.str(4)
	e.City = d.str(5)
	e.IPPrefix = d.bytes(e.IPPrefix)
	e.Browser = d.str(6)
	e.BrowserVersion = d.str(7)
	e.OS = d.str(8)
	e.OSVersion = d.str(9)
	e.Device = d.str(10)
	e.Screen = d.str(11)
	e.ConnectionType = d.str(12)
	e.Downlink = math.Float32frombits(uint32(d.uvarint()))
	e.RTT = uint16(d.uvarint())
	e.SaveData = uint8(d.uvarint())
	e.EngagementMS = uint32(d.uvarint())
	e.ScrollDepth = uint8(d.uvarint())
	e.Interactive = uint8(d.uvarint())
	nprops := d.uvarint()
	if nprops > uint64(len(d.p)) {
		return errBadRecord
	}
	for range nprops {
		k := d.raw(int(d.uvarint()))
		v := d.raw(int(d.uvarint()))
		if d.err != nil {
			return d.err
		}
		e.AddProp(k, v)
	}
	e.RevenueMicros = d.varint()
	e.RevenueCurrency = d.bytes(e.RevenueCurrency)
	e.EmailCampaign = d.bytes(e.EmailCampaign)
	e.EmailRecipient = d.bytes(e.EmailRecipient)
	e.EmailVerdict = d.str(13)
	e.EmailReason = d.str(14)
	if d.err != nil {
		return d.err
	}
	if len(d.p) != 0 {
		return errBadRecord
	}
	return nil
}
