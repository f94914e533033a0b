package decode

import (
	"math"
	"strconv"
	"unsafe"
)

// parseFloat parses b, which must follow the JSON number grammar (leading
// zeros allowed), into a finite float64.
func parseFloat(b []byte) (float64, bool) {
	if n, ok := parseSmallUint(b); ok {
		return float64(n), true
	}
	if !isNumber(b) {
		return 0, false
	}
	// b2s is safe here: ParseFloat keeps no reference to its argument when
	// it succeeds, and its error is dropped.
	f, err := strconv.ParseFloat(b2s(b), 64)
	if err != nil || math.IsInf(f, 0) {
		return 0, false
	}
	return f + 0, true // turns -0 into 0
}

// parseSmallUint is the fast path of parseFloat for the common case: up
// to 15 decimal digits, which a float64 holds exactly.
func parseSmallUint(b []byte) (uint64, bool) {
	if len(b) == 0 || len(b) > 15 {
		return 0, false
	}
	var n uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	return n, true
}

// isNumber reports whether b is -?[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?.
func isNumber(b []byte) bool { return numberSyntax(b, false) }

// numberSyntax checks b against the number grammar above; jsonInt
// requires JSON's integer part, which has no leading zero.
func numberSyntax(b []byte, jsonInt bool) bool {
	i := 0
	if i < len(b) && b[i] == '-' {
		i++
	}
	if jsonInt && i < len(b) && b[i] == '0' {
		i++
	} else if i = skipDigits(b, i); i < 0 {
		return false
	}
	if i < len(b) && b[i] == '.' {
		if i = skipDigits(b, i+1); i < 0 {
			return false
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i = skipDigits(b, i); i < 0 {
			return false
		}
	}
	return i == len(b)
}

// skipDigits returns the index after the run of digits at b[i:], or -1 if
// there is none.
func skipDigits(b []byte, i int) int {
	j := i
	for j < len(b) && b[j] >= '0' && b[j] <= '9' {
		j++
	}
	if j == i {
		return -1
	}
	return j
}

// isBlank reports whether b is empty or only ASCII white space.
func isBlank(b []byte) bool {
	for _, c := range b {
		switch c {
		case ' ', '\t', '\n', '\r', '\f', '\v':
		default:
			return false
		}
	}
	return true
}

// isCurrency reports whether b has the shape of an ISO 4217 code: three
// upper-case ASCII letters. Whether the code is assigned is not checked.
func isCurrency(b []byte) bool {
	if len(b) != 3 {
		return false
	}
	for _, c := range b {
		if c < 'A' || c > 'Z' {
			return false
		}
	}
	return true
}

// b2s returns b as a string without copying. The string must not outlive
// the next change to b.
func b2s(b []byte) string {
	return unsafe.String(unsafe.SliceData(b), len(b))
}
