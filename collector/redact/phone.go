package redact

// Phone numbers. A plain run of digits is never a phone number here:
// years, prices, counts and ids are runs of digits too. A number counts as
// a phone number when it is written like one: with a leading '+' (E.164),
// or with the separators of a national format.

const (
	minE164Digits = 8
	maxE164Digits = 15
	// National numbers with a trunk prefix: 030 1234567 (10 digits),
	// 07700 900123 (11), 06 12 34 56 78 (10), 0171 12345678 (12).
	minTrunkDigits = 9
	maxTrunkDigits = 12
)

// matchPhone matches a phone number at the word start s[i].
func matchPhone(s []byte, i int) int {
	switch c := s[i]; {
	case c == '+':
		if i+1 < len(s) && '1' <= s[i+1] && s[i+1] <= '9' {
			return matchIntl(s, i, i+1, false)
		}
		return 0
	case c == '(':
		return matchNANP(s, i)
	case c == '0':
		if i+2 < len(s) && s[i+1] == '0' && '1' <= s[i+2] && s[i+2] <= '9' {
			return matchIntl(s, i, i+2, true) // 0049 30 1234567
		}
		if n := matchTrunk(s, i); n > 0 {
			return n
		}
		return matchFrench(s, i)
	default:
		return matchNANP(s, i)
	}
}

// matchIntl matches an international number whose country code starts at
// s[j] after "+" or "00" at s[i]: 8 to 15 digits in groups joined by
// single spaces, dashes, dots or "%20", with at most one group in
// parentheses ("+1 (555) 123-4567", "+44 (0)20 7946 0958"; a "(0)" is not
// counted). After "00" the digits must be grouped: "0049301234567" is a
// plain number. Of the prefixes of whole groups the longest valid one
// matches.
func matchIntl(s []byte, i, j int, grouped bool) int {
	n, groups, best := 0, 0, 0
	paren := false
	for {
		if j < len(s) && s[j] == '(' && !paren {
			g := digitsAt(s, j+1)
			if g == 0 || g > 4 || j+1+g >= len(s) || s[j+1+g] != ')' {
				break
			}
			paren = true
			if !(g == 1 && s[j+1] == '0') {
				n += g
			}
			groups++
			j += g + 2
			sl := sepLen(s, j, true)
			if j+sl >= len(s) || !isDigit(s[j+sl]) {
				break
			}
			j += sl
			continue
		}
		g := digitsAt(s, j)
		if g == 0 {
			break
		}
		n += g
		groups++
		j += g
		if n > maxE164Digits {
			break
		}
		if n >= minE164Digits && endsWord(s, j) && (!grouped || groups > 1) {
			best = j - i
		}
		if j < len(s) && s[j] == '(' {
			continue // "+44(0)20 ..."
		}
		sl := sepLen(s, j, true)
		if sl == 0 || j+sl >= len(s) || !isDigit(s[j+sl]) && s[j+sl] != '(' {
			break
		}
		j += sl
	}
	return best
}

// matchNANP matches a North American number: (555) 123-4567,
// (555)123-4567, 555-123-4567, 555.123.4567, optionally after "1-"; the
// area code starts with 2 to 9, and the separators of the unbracketed form
// are the same twice. Three groups joined by spaces alone
// ("300 500 1000") are too often something else.
func matchNANP(s []byte, i int) int {
	j := i
	if s[j] == '1' {
		sl := sepLen(s, j+1, true)
		if sl == 0 {
			return 0
		}
		j += 1 + sl
	}
	var sep1 []byte
	if j < len(s) && s[j] == '(' {
		if !areaCode(s, j+1) || j+4 >= len(s) || s[j+4] != ')' {
			return 0
		}
		j += 5
		if j < len(s) && s[j] == ' ' {
			j++
		} else if sl := sepLen(s, j, false); sl == 3 {
			j += sl
		}
	} else {
		if !areaCode(s, j) {
			return 0
		}
		j += 3
		sl := sepLen(s, j, true)
		if sl == 0 || sl == 1 && s[j] == ' ' || sl == 3 {
			return 0
		}
		sep1 = s[j : j+sl]
		j += sl
	}
	if digitsAt(s, j) != 3 {
		return 0
	}
	j += 3
	sl := sepLen(s, j, true)
	if sl == 0 || sep1 != nil && string(s[j:j+sl]) != string(sep1) {
		return 0
	}
	j += sl
	if digitsAt(s, j) != 4 || !endsWord(s, j+4) {
		return 0
	}
	return j + 4 - i
}

// areaCode reports whether s[j:j+3] are three digits, the first 2 to 9,
// not followed by another digit.
func areaCode(s []byte, j int) bool {
	return j+3 <= len(s) && '2' <= s[j] && s[j] <= '9' && digitsAt(s, j) == 3
}

// matchTrunk matches a national number with a trunk prefix '0': an area
// code of 2 to 5 digits starting with 0, then one to four groups of 2 to 8
// digits joined by single spaces, dashes or "%20" ('/' may follow the area
// code: 030/1234567), 9 to 12 digits in all. Without a separator
// (07700900123) it is a plain number. Of the prefixes of whole groups the
// longest valid one matches.
func matchTrunk(s []byte, i int) int {
	if i+1 >= len(s) || s[i+1] < '1' || s[i+1] > '9' {
		return 0
	}
	g := digitsAt(s, i)
	if g < 2 || g > 5 {
		return 0
	}
	n, groups, best := g, 1, 0
	j := i + g
	for groups < 5 {
		sl := sepLen(s, j, false)
		if sl == 0 && groups == 1 && j < len(s) && s[j] == '/' {
			sl = 1
		}
		if sl == 0 {
			break
		}
		g := digitsAt(s, j+sl)
		if g < 2 || g > 8 || n+g > maxTrunkDigits {
			break
		}
		n += g
		groups++
		j += sl + g
		if n >= minTrunkDigits && endsWord(s, j) {
			best = j - i
		}
	}
	return best
}

// matchFrench matches the dotted French form 06.12.34.56.78: five groups of
// two digits (dates, 05.10.2024, have a group of four).
func matchFrench(s []byte, i int) int {
	if i+1 >= len(s) || s[i+1] < '1' || s[i+1] > '9' {
		return 0
	}
	j := i
	for k := 0; k < 5; k++ {
		if digitsAt(s, j) != 2 {
			return 0
		}
		j += 2
		if k < 4 {
			if j >= len(s) || s[j] != '.' {
				return 0
			}
			j++
		}
	}
	if !endsWord(s, j) {
		return 0
	}
	return j - i
}
