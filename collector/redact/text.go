package redact

import "bytes"

// The text rules run in three layers, each on the text between the
// matches of the one before: e-mail addresses (found from their '@'), then
// the structured rules tried at each word start (JWT, UUID, IBAN, card,
// phone), then long tokens on what is left. A layer sees the same text on
// a second pass, with placeholders, which are brackets and letters, where
// the earlier layers matched; and a match is accepted only on what it
// covers and on the byte after it not being a letter or digit. That is
// what makes redaction idempotent.

// appendEmails appends s with e-mail addresses replaced, and the text
// between them redacted by the later layers.
func (r *Redactor) appendEmails(dst, s []byte) []byte {
	if bytes.IndexByte(s, '@') < 0 && bytes.Index(s, at40) < 0 {
		return r.appendStructured(dst, s)
	}
	start := 0 // first byte of s not yet appended
	for i := 0; i < len(s); i++ {
		at := atSignLen(s, i)
		if at == 0 {
			continue
		}
		l := i
		for l > start && is(s[l-1], cEmailLocal) {
			l--
		}
		if l == i {
			continue
		}
		e := emailDomainEnd(s, i+at)
		if e < 0 {
			continue
		}
		dst = r.appendStructured(dst, s[start:l])
		dst = r.replace(dst, Email)
		start = e
		i = e - 1
	}
	return r.appendStructured(dst, s[start:])
}

var at40 = []byte("%40")

// atSignLen returns the length of an '@' at s[i]: 1 for '@', 3 for a
// still-encoded "%40" (double-encoded input), else 0.
func atSignLen(s []byte, i int) int {
	switch {
	case s[i] == '@':
		return 1
	case s[i] == '%' && i+2 < len(s) && s[i+1] == '4' && s[i+2] == '0':
		return 3
	}
	return 0
}

// emailDomainEnd returns the end of the e-mail domain starting at s[i], or
// -1 if there is none. A domain is a run of domain bytes that contains a
// dot directly followed by two ASCII letters (".com", ".co.uk", ".museum").
func emailDomainEnd(s []byte, i int) int {
	j := i
	for j < len(s) && is(s[j], cEmailDomain) {
		j++
	}
	for j > i && (s[j-1] == '.' || s[j-1] == '-') {
		j--
	}
	for k := i; k+2 < j; k++ {
		if s[k] == '.' && isAlpha(s[k+1]) && isAlpha(s[k+2]) {
			return j
		}
	}
	return -1
}

// appendStructured appends s with JWTs, UUIDs, IBANs, cards and phone
// numbers replaced, trying them at each word start, and the text between
// them redacted by appendTokens. A word starts at a letter or digit after
// any other byte, an escape or a match. A phone number may also start
// with '+' or '(' right after a letter or digit: a later layer may turn
// those into a placeholder, and the second pass must not find a number
// the first one did not.
func (r *Redactor) appendStructured(dst, s []byte) []byte {
	start := 0 // first byte of s not yet appended
	for i := 0; i < len(s); {
		c := s[i]
		n, rule := 0, Rule(0)
		switch {
		case isAlnum(c):
			if mayStart(s, i) {
				n, rule = matchAt(s, i)
			}
			if n == 0 {
				for i++; i < len(s) && isAlnum(s[i]); i++ {
				}
				continue
			}
		case c == '+' || c == '(':
			n, rule = matchAt(s, i)
		case isEscape(s, i):
			i += 3
			continue
		}
		if n == 0 {
			i++
			continue
		}
		dst = r.appendTokens(dst, s[start:i])
		dst = r.replace(dst, rule)
		i += n
		start = i
	}
	return r.appendTokens(dst, s[start:])
}

// mayStart is a quick test of whether a structured match may start at the
// word start s[i]: a digit, or the first bytes of a JWT ("eyJ"), a UUID
// (its first dash) or an IBAN (letters, then check digits).
func mayStart(s []byte, i int) bool {
	if isDigit(s[i]) {
		return true
	}
	return i+3 < len(s) && isAlpha(s[i+1]) && isDigit(s[i+2]) && isDigit(s[i+3]) ||
		i+8 < len(s) && s[i+8] == '-' ||
		i+2 < len(s) && s[i] == 'e' && s[i+1] == 'y' && s[i+2] == 'J'
}

// matchAt returns the length and rule of a structured match starting at
// the word start s[i], or 0.
func matchAt(s []byte, i int) (int, Rule) {
	c := s[i]
	switch {
	case isAlpha(c):
		if c == 'e' {
			if n := matchJWT(s, i); n > 0 {
				return n, JWT
			}
		}
		if isHex(c) {
			if n := matchUUID(s, i); n > 0 {
				return n, Token
			}
		}
		if n := matchIBAN(s, i); n > 0 {
			return n, IBAN
		}
	case isDigit(c):
		if n := matchUUID(s, i); n > 0 {
			return n, Token
		}
		if n := matchCard(s, i); n > 0 {
			return n, Card
		}
		if n := matchPhone(s, i); n > 0 {
			return n, Phone
		}
	case c == '+' || c == '(':
		if n := matchPhone(s, i); n > 0 {
			return n, Phone
		}
	}
	return 0, 0
}

// matchJWT matches a JSON Web Token at s[i]: a base64url header that
// starts "eyJ" ('{"'), a payload that starts 'e' ('{'), and a signature,
// empty for an unsecured token, joined by dots.
func matchJWT(s []byte, i int) int {
	if i+3 > len(s) || string(s[i:i+3]) != "eyJ" {
		return 0
	}
	j := b64End(s, i)
	if j-i < 10 || j >= len(s) || s[j] != '.' {
		return 0
	}
	k := b64End(s, j+1)
	if k-(j+1) < 2 || s[j+1] != 'e' || k >= len(s) || s[k] != '.' {
		return 0
	}
	end := b64End(s, k+1)
	if end < len(s) && s[end] == '.' {
		return 0 // more parts: not a JWS compact serialisation
	}
	return end - i
}

func b64End(s []byte, i int) int {
	for i < len(s) && is(s[i], cAlnum|cSep) {
		i++
	}
	return i
}

// uuidLen is the length of the textual form 8-4-4-4-12.
const uuidLen = 36

// matchUUID matches a UUID at s[i] that is not glued to more letters or
// digits.
func matchUUID(s []byte, i int) int {
	if i+uuidLen > len(s) {
		return 0
	}
	for k := 0; k < uuidLen; k++ {
		c := s[i+k]
		switch k {
		case 8, 13, 18, 23:
			if c != '-' {
				return 0
			}
		default:
			if !isHex(c) {
				return 0
			}
		}
	}
	if !endsWord(s, i+uuidLen) {
		return 0
	}
	return uuidLen
}

// Card numbers.
const (
	minCardDigits = 13
	maxCardDigits = 19
)

// matchCard matches a payment card number at s[i]: 13 to 19 digits in
// groups of at least three joined by single spaces or dashes, starting
// with 2 to 6 (Mastercard 2-series and 5, Amex, Diners and JCB 3, Visa 4,
// Discover, Maestro and UnionPay 6), that pass the Luhn check. Of the
// prefixes of whole groups the longest valid one matches, so that
// "4111 1111 1111 1111 123" leaves the trailing group.
func matchCard(s []byte, i int) int {
	if s[i] < '2' || s[i] > '6' {
		return 0
	}
	var digits [maxCardDigits]byte
	n, best := 0, 0
	j := i
	for {
		g := digitsAt(s, j)
		if g < 3 || n+g > maxCardDigits {
			break
		}
		n += copy(digits[n:], s[j:j+g])
		j += g
		if n >= minCardDigits && endsWord(s, j) && luhn(digits[:n]) {
			best = j - i
		}
		sl := sepLen(s, j, false)
		if sl == 0 || j+sl >= len(s) || !isDigit(s[j+sl]) {
			break
		}
		j += sl
	}
	return best
}

// luhn reports whether the digits pass the Luhn checksum.
func luhn(d []byte) bool {
	sum := 0
	double := false
	for k := len(d) - 1; k >= 0; k-- {
		v := int(d[k] - '0')
		if double {
			v *= 2
			if v > 9 {
				v -= 9
			}
		}
		sum += v
		double = !double
	}
	return sum%10 == 0
}
