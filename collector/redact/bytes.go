package redact

import "unicode/utf8"

// Byte classes, one table lookup per byte on the hot path.
const (
	cLower uint8 = 1 << iota
	cUpper
	cDigit
	cHex
	cAt          // '@'
	cEmailLocal  // may appear in the local part of an e-mail address
	cEmailDomain // may appear in an e-mail domain
	cSep         // '-' and '_', which join the parts of a base64url token
)

const cAlpha, cAlnum = cLower | cUpper, cLower | cUpper | cDigit

var class = func() (t [256]uint8) {
	for c := 0; c < 256; c++ {
		b := byte(c)
		switch {
		case 'a' <= b && b <= 'z':
			t[c] |= cLower
		case 'A' <= b && b <= 'Z':
			t[c] |= cUpper
		case '0' <= b && b <= '9':
			t[c] |= cDigit
		}
		if '0' <= b && b <= '9' || 'a' <= b && b <= 'f' || 'A' <= b && b <= 'F' {
			t[c] |= cHex
		}
		if t[c]&cAlnum != 0 {
			t[c] |= cEmailLocal | cEmailDomain
		}
		if b >= utf8.RuneSelf {
			// Internationalised addresses (RFC 6531). A run of these
			// bytes ends at an ASCII byte, so a match never splits a rune.
			t[c] |= cEmailLocal | cEmailDomain
		}
		switch b {
		case '@':
			t[c] |= cAt
		case '.', '-':
			t[c] |= cEmailLocal | cEmailDomain
		case '_', '%', '+':
			t[c] |= cEmailLocal
		}
		if b == '-' || b == '_' {
			t[c] |= cSep
		}
	}
	return t
}()

func is(c byte, cl uint8) bool { return class[c]&cl != 0 }

func isAlnum(c byte) bool { return class[c]&cAlnum != 0 }
func isDigit(c byte) bool { return class[c]&cDigit != 0 }
func isAlpha(c byte) bool { return class[c]&cAlpha != 0 }
func isHex(c byte) bool   { return class[c]&cHex != 0 }

func toLower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// isEscape reports whether a percent-escape "%XX" starts at s[i].
func isEscape(s []byte, i int) bool {
	return s[i] == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2])
}

// sepLen returns the length of a group separator at s[i]: a space, a
// dash, or an escaped space "%20"; 0 for anything else. dot adds '.'.
func sepLen(s []byte, i int, dot bool) int {
	if i >= len(s) {
		return 0
	}
	switch s[i] {
	case ' ', '-':
		return 1
	case '.':
		if dot {
			return 1
		}
	case '%':
		if i+2 < len(s) && s[i+1] == '2' && s[i+2] == '0' {
			return 3
		}
	}
	return 0
}

// digitsAt returns the length of the run of ASCII digits at s[i:].
func digitsAt(s []byte, i int) int {
	j := i
	for j < len(s) && isDigit(s[j]) {
		j++
	}
	return j - i
}

// endsWord reports whether a match may end before s[j]: at the end, or
// before a byte that is not a letter or digit. Escapes start with '%', so
// a match never ends inside one.
func endsWord(s []byte, j int) bool { return j >= len(s) || !isAlnum(s[j]) }
