package enrich

import (
	"unicode/utf8"
)

// Byte-level text helpers shared by url.go and referrer.go. They all append
// into a destination slice and never allocate once the destination has
// enough capacity.

const hexDigits = "0123456789ABCDEF"

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case '0' <= c && c <= '9':
		return c - '0'
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}

func isAlpha(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func isAlnum(c byte) bool { return isAlpha(c) || isDigit(c) }

func toLower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// equalFold reports whether b equals s under ASCII case folding.
func equalFold[B []byte | string](b B, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := 0; i < len(b); i++ {
		if toLower(b[i]) != toLower(s[i]) {
			return false
		}
	}
	return true
}

// hasPrefixFold reports whether b starts with s under ASCII case folding.
func hasPrefixFold[B []byte | string](b B, s string) bool {
	return len(b) >= len(s) && equalFold(b[:len(s)], s)
}

// appendLower appends s lower-cased (ASCII only).
func appendLower(dst, s []byte) []byte {
	for _, c := range s {
		dst = append(dst, toLower(c))
	}
	return dst
}

// trimSpace trims ASCII white space and control bytes from both ends.
func trimSpace(b []byte) []byte {
	for len(b) > 0 && b[0] <= ' ' {
		b = b[1:]
	}
	for len(b) > 0 && b[len(b)-1] <= ' ' {
		b = b[:len(b)-1]
	}
	return b
}

// byteSet is a set of bytes, indexed by byte.
type byteSet [256]bool

// allIn reports whether every byte of s is in set.
func allIn(set *byteSet, s []byte) bool {
	for _, c := range s {
		if !set[c] {
			return false
		}
	}
	return true
}

// plainPathBytes are the bytes that appendDecodedPath copies unchanged:
// printable ASCII except '%', '?' and '#'.
var plainPathBytes = printableASCIIExcept("%?#")

// plainValueBytes are the bytes that appendDecodedValue and appendSanitized
// both copy unchanged: printable ASCII except '%' and '+' (and '@', so that
// a value that skips decoding holds no e-mail address).
var plainValueBytes = printableASCIIExcept("%+@")

func printableASCIIExcept(except string) *byteSet {
	var set byteSet
	for c := '!'; c <= '~'; c++ {
		set[c] = true
	}
	for i := 0; i < len(except); i++ {
		set[except[i]] = false
	}
	return &set
}

func appendPctByte(dst []byte, c byte) []byte {
	return append(dst, '%', hexDigits[c>>4], hexDigits[c&15])
}

// keepEscapedInPath reports whether a percent-decoded byte must stay
// escaped in a stored path because decoding it would change the path's
// structure or make it unreadable.
func keepEscapedInPath(c byte) bool {
	return c <= ' ' || c == 0x7f || c == '/' || c == '?' || c == '#' || c == '%'
}

// appendDecodedPath appends the path or fragment s with percent-escapes
// decoded where that is safe, in a canonical form:
//
//   - delimiters ('/', '?', '#'), '%', space and control bytes stay or
//     become escaped (upper-case hex); a stray '%' becomes "%25";
//   - a byte sequence, raw or escaped, that forms a valid UTF-8 rune is
//     stored raw, except C1 controls (U+0080–U+009F), which stay escaped;
//   - every byte that is not part of a valid rune is escaped.
//
// The decision is made per rune, so the output is valid UTF-8 and cleaning
// it again yields it unchanged.
func appendDecodedPath(dst, s []byte) []byte {
	for i := 0; i < len(s); {
		if plainPathBytes[s[i]] {
			// A run of bytes that are stored as they are.
			j := i + 1
			for j < len(s) && plainPathBytes[s[j]] {
				j++
			}
			dst = append(dst, s[i:j]...)
			i = j
			continue
		}
		b, n, esc := decodePathByte(s, i)
		switch {
		case esc:
			dst = appendPctByte(dst, b)
			i += n
			continue
		case b < utf8.RuneSelf:
			dst = append(dst, b)
			i += n
			continue
		}
		// Gather the bytes of one rune, decoding escapes as we go.
		var buf [utf8.UTFMax]byte
		buf[0] = b
		k, j := 1, i+n
		for k < utf8.UTFMax && j < len(s) && !utf8.FullRune(buf[:k]) {
			b2, n2, esc2 := decodePathByte(s, j)
			if esc2 || b2 < utf8.RuneSelf {
				break
			}
			buf[k] = b2
			k++
			j += n2
		}
		r, size := utf8.DecodeRune(buf[:k])
		if r == utf8.RuneError && size <= 1 || r < 0xa0 {
			// Invalid (or a C1 control): escape this byte, go on
			// with the next.
			dst = appendPctByte(dst, b)
			i += n
			continue
		}
		dst = append(dst, buf[:size]...)
		// Skip the input that produced size decoded bytes.
		for ; size > 0; size-- {
			_, n, _ = decodePathByte(s, i)
			i += n
		}
	}
	return dst
}

// decodePathByte decodes the byte at s[i]: a percent-escape or a raw byte.
// It returns the byte, the input length consumed, and whether the byte must
// be stored escaped.
func decodePathByte(s []byte, i int) (b byte, n int, esc bool) {
	c := s[i]
	if c == '%' {
		if i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]) {
			d := unhex(s[i+1])<<4 | unhex(s[i+2])
			return d, 3, keepEscapedInPath(d)
		}
		return '%', 1, true // stray '%'
	}
	return c, 1, keepEscapedInPath(c) && c != '/'
}

// appendDecodedValue appends the query component s fully decoded:
// percent-escapes are decoded and '+' becomes a space.
func appendDecodedValue(dst, s []byte) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '+':
			dst = append(dst, ' ')
		case c == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]):
			dst = append(dst, unhex(s[i+1])<<4|unhex(s[i+2]))
			i += 2
		default:
			dst = append(dst, c)
		}
	}
	return dst
}

// appendSanitized appends s with control characters (C0 and C1) dropped,
// white space collapsed to a single space, invalid UTF-8 replaced by
// U+FFFD, and leading/trailing spaces trimmed.
func appendSanitized(dst, s []byte) []byte {
	start := len(dst)
	space := false
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			i++
			switch {
			case c == ' ' || c == '\t' || c == '\n' || c == '\r':
				space = true
			case c < ' ' || c == 0x7f:
				// Dropped.
			default:
				if space && len(dst) > start {
					dst = append(dst, ' ')
				}
				space = false
				dst = append(dst, c)
			}
			continue
		}
		r, size := utf8.DecodeRune(s[i:])
		if space && len(dst) > start {
			dst = append(dst, ' ')
		}
		space = false
		switch {
		case r == utf8.RuneError && size == 1:
			dst = utf8.AppendRune(dst, utf8.RuneError)
		case r < 0xa0:
			// C1 control: dropped.
		default:
			dst = append(dst, s[i:i+size]...)
		}
		i += size
	}
	return dst
}

// truncateUTF8 shortens b to at most n bytes without splitting a rune.
func truncateUTF8(b []byte, n int) []byte {
	if len(b) <= n {
		return b
	}
	for n > 0 && !utf8.RuneStart(b[n]) {
		n--
	}
	return b[:n]
}

// appendQueryEscaped appends s escaped for use as a query value. ASCII
// letters, digits, "-._~[]:/," and non-ASCII bytes (s must be valid UTF-8)
// are kept; everything else is percent-encoded.
func appendQueryEscaped(dst, s []byte) []byte {
	for _, c := range s {
		switch {
		case isAlnum(c), c >= utf8.RuneSelf:
			dst = append(dst, c)
		case c == '-' || c == '.' || c == '_' || c == '~' || c == '[' || c == ']' || c == ':' || c == '/' || c == ',':
			dst = append(dst, c)
		default:
			dst = appendPctByte(dst, c)
		}
	}
	return dst
}
