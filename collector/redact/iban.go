package redact

// ibanLengths is the length of an IBAN by country, from the SWIFT IBAN
// registry as of 2024. A country not listed has no IBAN.
var ibanLengths = map[[2]byte]uint8{
	{'A', 'D'}: 24, {'A', 'E'}: 23, {'A', 'L'}: 28, {'A', 'T'}: 20, {'A', 'Z'}: 28,
	{'B', 'A'}: 20, {'B', 'E'}: 16, {'B', 'G'}: 22, {'B', 'H'}: 22, {'B', 'I'}: 27,
	{'B', 'R'}: 29, {'B', 'Y'}: 28, {'C', 'H'}: 21, {'C', 'R'}: 22, {'C', 'Y'}: 28,
	{'C', 'Z'}: 24, {'D', 'E'}: 22, {'D', 'J'}: 27, {'D', 'K'}: 18, {'D', 'O'}: 28,
	{'E', 'E'}: 20, {'E', 'G'}: 29, {'E', 'S'}: 24, {'F', 'I'}: 18, {'F', 'K'}: 18,
	{'F', 'O'}: 18, {'F', 'R'}: 27, {'G', 'B'}: 22, {'G', 'E'}: 22, {'G', 'I'}: 23,
	{'G', 'L'}: 18, {'G', 'R'}: 27, {'G', 'T'}: 28, {'H', 'N'}: 28, {'H', 'R'}: 21,
	{'H', 'U'}: 28, {'I', 'E'}: 22, {'I', 'L'}: 23, {'I', 'Q'}: 23, {'I', 'S'}: 26,
	{'I', 'T'}: 27, {'J', 'O'}: 30, {'K', 'W'}: 30, {'K', 'Z'}: 20, {'L', 'B'}: 28,
	{'L', 'C'}: 32, {'L', 'I'}: 21, {'L', 'T'}: 20, {'L', 'U'}: 20, {'L', 'V'}: 21,
	{'L', 'Y'}: 25, {'M', 'C'}: 27, {'M', 'D'}: 24, {'M', 'E'}: 22, {'M', 'K'}: 19,
	{'M', 'N'}: 20, {'M', 'R'}: 27, {'M', 'T'}: 31, {'M', 'U'}: 30, {'N', 'I'}: 28,
	{'N', 'L'}: 18, {'N', 'O'}: 15, {'O', 'M'}: 23, {'P', 'K'}: 24, {'P', 'L'}: 28,
	{'P', 'S'}: 29, {'P', 'T'}: 25, {'Q', 'A'}: 29, {'R', 'O'}: 24, {'R', 'S'}: 22,
	{'R', 'U'}: 33, {'S', 'A'}: 24, {'S', 'C'}: 31, {'S', 'D'}: 18, {'S', 'E'}: 24,
	{'S', 'I'}: 19, {'S', 'K'}: 24, {'S', 'M'}: 27, {'S', 'O'}: 23, {'S', 'T'}: 25,
	{'S', 'V'}: 28, {'T', 'L'}: 23, {'T', 'N'}: 24, {'T', 'R'}: 26, {'U', 'A'}: 29,
	{'V', 'A'}: 22, {'V', 'G'}: 24, {'X', 'K'}: 20, {'Y', 'E'}: 30,
}

// ibanTable is ibanLengths indexed by the two letters, so that the hot
// path reads an array rather than a map.
var ibanTable = func() (t [26 * 26]uint8) {
	for cc, n := range ibanLengths {
		t[int(cc[0]-'A')*26+int(cc[1]-'A')] = n
	}
	return t
}()

const maxIBANLen = 34

// matchIBAN matches an IBAN at s[i]: the country code (two letters of the
// same case), two check digits and the account number, as long in all as
// the registry says for the country, compact (DE89370400440532013000) or
// in groups of four joined by single spaces or "%20" (DE89 3704 0044 0532
// 0130 00), that passes the ISO 7064 mod-97 check.
func matchIBAN(s []byte, i int) int {
	if i+4 > len(s) || !isDigit(s[i+2]) || !isDigit(s[i+3]) {
		return 0
	}
	a, b := s[i], s[i+1]
	if !(is(a, cUpper) && is(b, cUpper) || is(a, cLower) && is(b, cLower)) {
		return 0
	}
	want := int(ibanTable[int(toLower(a)-'a')*26+int(toLower(b)-'a')])
	if want == 0 {
		return 0
	}
	var buf [maxIBANLen]byte
	n, j := 0, i
	grouped := false
	for n < want {
		if n >= 4 && n%4 == 0 {
			sl := 0
			switch {
			case j < len(s) && s[j] == ' ':
				sl = 1
			case j+2 < len(s) && s[j] == '%' && s[j+1] == '2' && s[j+2] == '0':
				sl = 3
			}
			if n == 4 {
				grouped = sl > 0
			} else if grouped != (sl > 0) {
				return 0
			}
			j += sl
		}
		if j >= len(s) || !isAlnum(s[j]) {
			return 0
		}
		buf[n] = s[j]
		n++
		j++
	}
	if !endsWord(s, j) || !mod97(buf[:n]) {
		return 0
	}
	return j - i
}

// mod97 reports whether the IBAN (letters and digits) passes the check:
// moved to the end, its first four characters, and every letter read as
// 10 to 35, give a number that is 1 modulo 97.
func mod97(iban []byte) bool {
	r := 0
	for k := range iban {
		c := iban[(k+4)%len(iban)]
		if isDigit(c) {
			r = (r*10 + int(c-'0')) % 97
		} else {
			r = (r*100 + int(toLower(c)-'a') + 10) % 97
		}
	}
	return r == 1
}
