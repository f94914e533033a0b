package decode

import (
	"encoding/binary"

	"github.com/valyala/fastjson"
)

// parseStrict parses b with p and reports whether b is strict JSON, that
// is whether both fastjson's parser (which bounds nesting depth) and its
// validator (which rejects what the parser lets through) accept it.
//
// Running the validator is a second full scan of b. It is skipped when b
// holds no byte below 0x20 and no backslash and the top-level value is an
// object: for such input the parser and the validator agree on every
// token (same structure, same string bounds, no escapes or control bytes
// to check) except numbers, where the parser also takes NaN, Inf and
// sloppy forms such as "01" or "1-2". Those are caught by checking each
// number in the parsed tree against JSON's grammar (checkNumbers).
func parseStrict(p *fastjson.Parser, b []byte) (v *fastjson.Value, ok, checkNumbers bool) {
	v, err := p.ParseBytes(b)
	if err != nil {
		return nil, false, false
	}
	if v.Type() == fastjson.TypeObject && isPlain(b) {
		return v, true, true
	}
	if fastjson.ValidateBytes(b) != nil {
		return nil, false, false
	}
	return v, true, false
}

// validNumbers reports whether every number in v follows JSON's grammar.
func (d *Decoder) validNumbers(v *fastjson.Value) bool {
	switch v.Type() {
	case fastjson.TypeNumber:
		d.num = v.MarshalTo(d.num[:0])
		return isJSONNumber(d.num)
	case fastjson.TypeObject:
		o, _ := v.Object()
		ok := true
		o.Visit(func(_ []byte, v *fastjson.Value) {
			ok = ok && d.validNumbers(v)
		})
		return ok
	case fastjson.TypeArray:
		a, _ := v.Array()
		for _, x := range a {
			if !d.validNumbers(x) {
				return false
			}
		}
	}
	return true
}

// isPlain reports whether b has no byte below 0x20 and no backslash. It
// tests eight bytes at a time: with lo = 0x01 in every byte and hi = 0x80
// in every byte, (x - lo*n) &^ x & hi is non-zero exactly when some byte of
// x is below n (n <= 0x80); a byte equal to '\\' is a zero byte of
// x ^ lo*'\\'.
func isPlain(b []byte) bool {
	const lo, hi = 0x0101010101010101, 0x8080808080808080
	for len(b) >= 8 {
		x := binary.LittleEndian.Uint64(b)
		y := x ^ lo*'\\'
		if ((x-lo*0x20)&^x|(y-lo)&^y)&hi != 0 {
			return false
		}
		b = b[8:]
	}
	for _, c := range b {
		if c < 0x20 || c == '\\' {
			return false
		}
	}
	return true
}

// isJSONNumber reports whether b is -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?.
func isJSONNumber(b []byte) bool { return numberSyntax(b, true) }
