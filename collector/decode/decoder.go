package decode

import (
	"bytes"
	"math"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fastjson"

	"github.com/glimpse-analytics/glimpse/internal/model"
)

// Limits on decoded fields, in bytes unless said otherwise. Longer input is
// rejected, not truncated. The first six follow Plausible.
const (
	MaxNameLen      = 120
	MaxURLLen       = 2048
	MaxReferrerLen  = 2048
	MaxProps        = 30 // number of props kept after dropping empty ones
	MaxPropKeyLen   = 300
	MaxPropValueLen = 2000
	MaxDomainLen    = 1024
	MaxUIDLen       = 256
	MaxTargetLen    = 2048
)

// MaxRevenueAmount bounds a revenue amount, in units of its currency: a
// trillion, whose micros (the revenue_micros column, Int64) are 1e18, so
// every accepted amount converts to micros without overflow. A larger one,
// like 1e300 (whose micros do not fit int64: converted, they were stored
// as -9223372036854775808), is rejected.
const MaxRevenueAmount = 1e12

// field is one logical event field, whichever wire key carried it.
type field uint8

const (
	fType field = iota
	fName
	fURL
	fDomain
	fReferrer
	fProps
	fRevenue
	fHashMode
	fInteractive
	fWidth
	fEngagement
	fScroll
	fConnType
	fDownlink
	fRTT
	fSaveData
	fConsent
	fUID
	fTarget
	numFields
)

// lookupKey maps a wire key to its field. When an event carries several
// keys for one field, the lowest rank wins (Plausible checks "m" before
// "meta" before "p" before "props", and so on); between equal ranks, the
// last one sent wins, as in JavaScript's JSON.parse.
func lookupKey(key []byte) (f field, rank uint8, ok bool) {
	switch string(key) {
	case "k":
		return fType, 0, true
	case "type":
		return fType, 1, true
	case "n":
		return fName, 0, true
	case "name":
		return fName, 1, true
	case "u":
		return fURL, 0, true
	case "url":
		return fURL, 1, true
	case "d":
		return fDomain, 0, true
	case "domain":
		return fDomain, 1, true
	case "r":
		return fReferrer, 0, true
	case "referrer":
		return fReferrer, 1, true
	case "m":
		return fProps, 0, true
	case "meta":
		return fProps, 1, true
	case "p":
		return fProps, 2, true
	case "props":
		return fProps, 3, true
	case "revenue":
		return fRevenue, 0, true
	case "$":
		return fRevenue, 1, true
	case "h":
		return fHashMode, 0, true
	case "hashMode":
		return fHashMode, 1, true
	case "hash_mode":
		return fHashMode, 2, true
	case "i":
		return fInteractive, 0, true
	case "interactive":
		return fInteractive, 1, true
	case "w":
		return fWidth, 0, true
	case "e":
		return fEngagement, 0, true
	case "engagement_time":
		return fEngagement, 1, true
	case "sd":
		return fScroll, 0, true
	case "scroll_depth":
		return fScroll, 1, true
	case "ct":
		return fConnType, 0, true
	case "connection_type":
		return fConnType, 1, true
	case "dl":
		return fDownlink, 0, true
	case "downlink":
		return fDownlink, 1, true
	case "rtt":
		return fRTT, 0, true
	case "sv":
		return fSaveData, 0, true
	case "save_data":
		return fSaveData, 1, true
	case "c":
		return fConsent, 0, true
	case "consent":
		return fConsent, 1, true
	case "uid":
		return fUID, 0, true
	case "user_id":
		return fUID, 1, true
	case "tu":
		return fTarget, 0, true
	case "target":
		return fTarget, 1, true
	}
	return 0, 0, false
}

// slot holds the raw value sent for one field during a decode: a JSON value
// for DecodeJSON, the percent-decoded text for DecodeQuery.
type slot struct {
	rank uint8 // 1 + the key's rank; 0 while the field was not sent
	v    *fastjson.Value
	b    []byte
}

// Decoder decodes events from request bodies and query strings into an
// Event. Once it and the Event have seen inputs of a given size, decoding
// allocates nothing. A Decoder is not safe for concurrent use; pool it (with
// an Event) per request.
type Decoder struct {
	body  fastjson.Parser // the request body
	inner fastjson.Parser // props or revenue sent as a JSON string
	slots [numFields]slot
	num   []byte // scratch: the text of a JSON number
}

// DecodeJSON decodes body, a JSON object in the Plausible Events API format
// or Glimpse's (see the package documentation), into e. On error e is Reset
// and the error is one of the *Error values of this package.
func (d *Decoder) DecodeJSON(e *Event, body []byte) error {
	if err := d.decodeJSON(e, body); err != nil {
		e.Reset()
		return err
	}
	return nil
}

func (d *Decoder) decodeJSON(e *Event, body []byte) *Error {
	e.Reset()
	clear(d.slots[:])
	defer clear(d.slots[:])

	v, ok, checkNumbers := parseStrict(&d.body, body)
	if !ok {
		return ErrMalformedJSON
	}
	if v.Type() != fastjson.TypeObject {
		return ErrNotObject
	}
	o, _ := v.Object()
	valid := true
	o.Visit(func(key []byte, val *fastjson.Value) {
		if checkNumbers && valid {
			valid = d.validNumbers(val)
		}
		if f, rank, ok := lookupKey(key); ok && val.Type() != fastjson.TypeNull {
			d.record(f, rank, val, nil)
		}
	})
	if !valid {
		return ErrMalformedJSON
	}
	return d.apply(e)
}

// DecodeQuery decodes the query args of a GET request (the same keys as
// the JSON body, percent-encoded; props and revenue as JSON strings) into e.
// An empty value counts as absent. On error e is Reset and the error is one
// of the *Error values of this package. The Event keeps no reference to
// args.
func (d *Decoder) DecodeQuery(e *Event, args *fasthttp.Args) error {
	if err := d.decodeQuery(e, args); err != nil {
		e.Reset()
		return err
	}
	return nil
}

func (d *Decoder) decodeQuery(e *Event, args *fasthttp.Args) *Error {
	e.Reset()
	clear(d.slots[:])
	defer clear(d.slots[:])

	for key, value := range args.All() {
		if f, rank, ok := lookupKey(key); ok && len(value) > 0 {
			d.record(f, rank, nil, value)
		}
	}
	return d.apply(e)
}

// record keeps a value for f unless a lower-ranked key already set it.
func (d *Decoder) record(f field, rank uint8, v *fastjson.Value, b []byte) {
	s := &d.slots[f]
	if s.rank != 0 && s.rank < rank+1 {
		return
	}
	*s = slot{rank: rank + 1, v: v, b: b}
}

// apply validates the recorded fields and copies them into e.
func (d *Decoder) apply(e *Event) *Error {
	explicit := TypeUnknown
	typ, err := d.str(fType, false)
	if err != nil {
		return err
	}
	if len(typ) > 0 {
		t, ok := ParseType(typ)
		if !ok {
			return ErrUnknownType
		}
		explicit = t
	}
	// The text fields, checked in this order. Numbers are allowed where
	// senders send them: Plausible's 404 goals are named by numbers, user
	// ids may be numeric.
	for _, t := range [...]struct {
		f       field
		numbers bool
		max     int
		tooLong *Error
		check   func([]byte) *Error
		dst     *[]byte
	}{
		{fName, true, MaxNameLen, ErrNameTooLong, nil, &e.Name},
		{fURL, false, MaxURLLen, ErrURLTooLong, requireURL, &e.URL},
		{fDomain, false, MaxDomainLen, ErrDomainTooLong, requireDomain, &e.Domain},
		{fReferrer, false, MaxReferrerLen, ErrReferrerTooLong, nil, &e.Referrer},
	} {
		v, err := d.str(t.f, t.numbers)
		if err == nil && t.check != nil {
			err = t.check(v)
		}
		switch {
		case err != nil:
			return err
		case len(v) > t.max:
			return t.tooLong
		}
		*t.dst = append(*t.dst, v...)
	}
	for _, step := range [...]func(*Event) *Error{d.props, d.revenue, d.flags, d.numbers, d.tail} {
		if err := step(e); err != nil {
			return err
		}
	}
	return finish(e, explicit)
}

// requireURL refuses an event without a page URL.
func requireURL(v []byte) *Error {
	if len(v) == 0 {
		return ErrMissingURL
	}
	return nil
}

// requireDomain refuses an event without a site domain (a long one is
// refused as too long first).
func requireDomain(v []byte) *Error {
	if len(v) <= MaxDomainLen && !hasDomain(v) {
		return ErrMissingDomain
	}
	return nil
}

// tail copies the connection type, the consented user id and the link
// target into e.
func (d *Decoder) tail(e *Event) *Error {
	ct, err := d.str(fConnType, false)
	if err != nil {
		return err
	}
	switch string(ct) {
	case "", "slow-2g", "2g", "3g", "4g":
		e.ConnType = append(e.ConnType, ct...)
	default:
		return ErrBadConnectionType
	}
	uid, err := d.str(fUID, true) // numbers allowed: numeric user ids
	switch {
	case err != nil:
		return err
	case len(uid) > MaxUIDLen:
		return ErrUIDTooLong
	}
	e.UID = append(e.UID, uid...)
	target, err := d.str(fTarget, false)
	switch {
	case err != nil:
		return err
	case len(target) > MaxTargetLen:
		return ErrTargetTooLong
	}
	e.TargetURL = append(e.TargetURL, target...)
	return nil
}

// flags copies the boolean fields into e.
func (d *Decoder) flags(e *Event) *Error {
	var err *Error
	if e.HashMode, _, err = d.bool(fHashMode); err != nil {
		return err
	}
	interactive, sent, err := d.bool(fInteractive)
	if err != nil {
		return err
	}
	if sent {
		e.Interactive = interactive
	}
	if e.SaveData, _, err = d.bool(fSaveData); err != nil {
		return err
	}
	e.Consent, _, err = d.bool(fConsent)
	return err
}

// numbers copies the numeric fields into e.
func (d *Decoder) numbers(e *Event) *Error {
	w, _, err := d.uint(fWidth, math.MaxUint16)
	if err != nil {
		return err
	}
	e.ScreenWidth = uint16(w)

	ms, _, err := d.uint(fEngagement, math.MaxUint32)
	if err != nil {
		return err
	}
	e.EngagementMS = uint32(ms)

	// Whole percents, at most model.MaxScrollDepth: the bound the noise
	// on a site's scroll depth is calibrated to holds for every event.
	sd, sent, err := d.float(fScroll)
	switch {
	case err != nil:
		return err
	case sd >= model.MaxScrollDepth+1:
		return ErrBadScrollDepth
	}
	e.ScrollDepth, e.HasScrollDepth = uint8(sd), sent

	dl, _, err := d.float(fDownlink)
	switch {
	case err != nil:
		return err
	case dl > math.MaxFloat32:
		return ErrBadNumber
	}
	e.Downlink = float32(dl)

	rtt, _, err := d.uint(fRTT, math.MaxUint16)
	if err != nil {
		return err
	}
	e.RTT = uint16(rtt)
	return nil
}

// finish settles the event type and the checks that depend on it.
func finish(e *Event, explicit Type) *Error {
	e.Type = explicit
	if e.Type == TypeUnknown {
		if len(e.Name) == 0 {
			return ErrMissingName
		}
		e.Type = typeFromName(e.Name)
	}
	if len(e.Name) == 0 {
		if e.Type == TypeCustom {
			return ErrMissingName
		}
		e.Name = append(e.Name, defaultName(e.Type)...)
	}
	switch e.Type {
	case TypeOutbound, TypeDownload:
		if len(e.TargetURL) == 0 {
			// Plausible's tracker sends the link target as props.url.
			for i, k := range e.PropKeys {
				if string(k) == "url" {
					e.TargetURL = append(e.TargetURL, e.PropValues[i]...)
					break
				}
			}
		}
	case TypeEngagement:
		if !e.HasScrollDepth && e.EngagementMS == 0 {
			return ErrEmptyEngagement
		}
	}
	return nil
}

// props copies the custom properties into e.
func (d *Decoder) props(e *Event) *Error {
	o, err := d.object(fProps, ErrBadProps)
	if o == nil || err != nil {
		return err
	}
	o.Visit(func(key []byte, v *fastjson.Value) {
		if err == nil {
			err = d.prop(e, key, v)
		}
	})
	return err
}

// prop adds one property to e, dropping what Plausible drops: blank keys,
// and null, blank, object and array values.
func (d *Decoder) prop(e *Event, key []byte, v *fastjson.Value) *Error {
	if isBlank(key) {
		return nil
	}
	var val []byte
	switch v.Type() {
	case fastjson.TypeString:
		val, _ = v.StringBytes()
		if isBlank(val) {
			return nil
		}
	case fastjson.TypeNumber, fastjson.TypeTrue, fastjson.TypeFalse:
		d.num = v.MarshalTo(d.num[:0])
		val = d.num
	default:
		return nil
	}
	if len(key) > MaxPropKeyLen {
		return ErrPropKeyTooLong
	}
	if len(val) > MaxPropValueLen {
		return ErrPropValueTooLong
	}
	for i, k := range e.PropKeys {
		if bytes.Equal(k, key) {
			e.PropValues[i] = append(e.PropValues[i][:0], val...)
			return nil
		}
	}
	if len(e.PropKeys) == MaxProps {
		return ErrTooManyProps
	}
	e.PropKeys = appendElem(e.PropKeys, key)
	e.PropValues = appendElem(e.PropValues, val)
	return nil
}

// revenue copies the revenue amount and currency into e. An empty revenue
// object counts as absent: Plausible's tracker sends one for tagged events
// without revenue classes.
func (d *Decoder) revenue(e *Event) *Error {
	o, err := d.object(fRevenue, ErrBadRevenue)
	if o == nil || err != nil {
		return err
	}
	amount, currency := o.Get("amount"), o.Get("currency")
	if amount != nil && amount.Type() == fastjson.TypeNull {
		amount = nil
	}
	if currency != nil && currency.Type() == fastjson.TypeNull {
		currency = nil
	}
	switch {
	case amount == nil && currency == nil:
		return nil
	case amount == nil || currency == nil:
		return ErrBadRevenue
	}

	var text []byte
	switch amount.Type() {
	case fastjson.TypeString:
		text, _ = amount.StringBytes()
	case fastjson.TypeNumber:
		d.num = amount.MarshalTo(d.num[:0])
		text = d.num
	default:
		return ErrBadRevenueAmount
	}
	f, ok := parseFloat(text)
	if !ok || !(f >= 0 && f <= MaxRevenueAmount) {
		return ErrBadRevenueAmount
	}

	if currency.Type() != fastjson.TypeString {
		return ErrBadCurrency // checked first: StringBytes would build an error
	}
	cur, _ := currency.StringBytes()
	if !isCurrency(cur) {
		return ErrBadCurrency
	}
	e.HasRevenue = true
	e.RevenueAmount = f
	e.RevenueCurrency = append(e.RevenueCurrency, cur...)
	return nil
}

// object returns the JSON object sent for f, parsing it first when it was
// sent as a JSON string. A missing field, an empty string and a string
// holding null are all absent (nil, nil).
func (d *Decoder) object(f field, bad *Error) (*fastjson.Object, *Error) {
	s := &d.slots[f]
	if s.rank == 0 {
		return nil, nil
	}
	v, raw := s.v, s.b
	if v != nil {
		switch v.Type() {
		case fastjson.TypeObject:
			o, _ := v.Object()
			return o, nil
		case fastjson.TypeString:
			raw, _ = v.StringBytes()
		default:
			return nil, bad
		}
	}
	if isBlank(raw) {
		return nil, nil
	}
	v, ok, checkNumbers := parseStrict(&d.inner, raw)
	if !ok || checkNumbers && !d.validNumbers(v) {
		return nil, bad
	}
	switch v.Type() {
	case fastjson.TypeObject:
		o, _ := v.Object()
		return o, nil
	case fastjson.TypeNull:
		return nil, nil
	default:
		return nil, bad
	}
}

// kind is the JSON type of a scalar field value; query values are strings.
type kind uint8

const (
	kindAbsent kind = iota
	kindString
	kindNumber
	kindTrue
	kindFalse
	kindOther // object or array
)

// scalar returns the kind of the value sent for f and, for strings and
// numbers, its text. The text of a number lives in d.num until the next
// call.
func (d *Decoder) scalar(f field) (kind, []byte) {
	s := &d.slots[f]
	switch {
	case s.rank == 0:
		return kindAbsent, nil
	case s.v == nil:
		return kindString, s.b
	}
	switch s.v.Type() {
	case fastjson.TypeString:
		b, _ := s.v.StringBytes()
		return kindString, b
	case fastjson.TypeNumber:
		d.num = s.v.MarshalTo(d.num[:0])
		return kindNumber, d.num
	case fastjson.TypeTrue:
		return kindTrue, nil
	case fastjson.TypeFalse:
		return kindFalse, nil
	default:
		return kindOther, nil
	}
}

// str returns the string sent for f, empty when absent. With numbers set,
// a JSON number is accepted too, as its text.
func (d *Decoder) str(f field, numbers bool) ([]byte, *Error) {
	switch k, b := d.scalar(f); k {
	case kindAbsent:
		return nil, nil
	case kindString:
		return b, nil
	case kindNumber:
		if numbers {
			return b, nil
		}
	}
	return nil, ErrFieldType
}

// bool returns the boolean sent for f: JSON true or false, or 1, 0, "1",
// "0", "true" or "false".
func (d *Decoder) bool(f field) (val, ok bool, err *Error) {
	switch k, b := d.scalar(f); k {
	case kindAbsent:
		return false, false, nil
	case kindTrue:
		return true, true, nil
	case kindFalse:
		return false, true, nil
	case kindString, kindNumber:
		switch string(b) {
		case "1", "true":
			return true, true, nil
		case "0", "false":
			return false, true, nil
		}
	}
	return false, false, ErrBadBool
}

// float returns the non-negative finite number sent for f, as a JSON number
// or a string holding one.
func (d *Decoder) float(f field) (val float64, ok bool, err *Error) {
	k, b := d.scalar(f)
	switch k {
	case kindAbsent:
		return 0, false, nil
	case kindString, kindNumber:
	default:
		return 0, false, ErrBadNumber
	}
	val, ok = parseFloat(b)
	switch {
	case !ok:
		return 0, false, ErrBadNumber
	case val < 0:
		return 0, false, ErrNegativeNumber
	}
	return val, true, nil
}

// uint returns the number sent for f, truncated to an integer, which must
// not exceed max.
func (d *Decoder) uint(f field, max uint64) (val uint64, ok bool, err *Error) {
	x, ok, err := d.float(f)
	if !ok || err != nil {
		return 0, false, err
	}
	if x >= float64(max)+1 {
		return 0, false, ErrBadNumber
	}
	return uint64(x), true, nil
}
