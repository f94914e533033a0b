package redact

// Long tokens: session ids, API keys, reset and confirmation codes,
// hashes, database ids. What sets them apart from words, slugs and product
// names is that they are long, mix letters and digits, and read like
// noise: digits inside the letters, case changing in the middle of words,
// letter groups nobody could pronounce.
const (
	// minTokenLen is the fewest letters and digits in a long token.
	minTokenLen = 16
	// anyTokenLen is the length from which letters and digits mixed are
	// enough: no word, slug or product name runs this long unbroken.
	anyTokenLen = 40
	// minShortToken and maxShortToken bound a whole path segment that is
	// judged on its own (isShortToken).
	minShortToken = 8
	maxShortToken = minTokenLen - 1
	// oddPerLetters: a long token has at least one odd part (see oddness)
	// per this many letters and digits. Random base62, base36 and base32
	// strings have one every two or three; CamelCase product names with
	// numbers (MacBookPro16M3Max2024) one per ten.
	oddPerLetters = 5
)

// appendTokens appends s with long tokens replaced. A token is a run of
// letters and digits, '-' and '_' (base64url) that looksRandom; a run that
// does not but holds a piece between its dashes that does is replaced
// whole, so that a second pass sees no new run to judge.
func (r *Redactor) appendTokens(dst, s []byte) []byte {
	if len(s) < minTokenLen {
		return append(dst, s...)
	}
	start := 0 // first byte of s not yet appended
	for i := 0; i < len(s); {
		if isEscape(s, i) {
			i += 3
			continue
		}
		if !isAlnum(s[i]) {
			i++
			continue
		}
		j := i + 1
		for j < len(s) && is(s[j], cAlnum|cSep) {
			j++
		}
		for is(s[j-1], cSep) {
			j--
		}
		if j-i >= minTokenLen && (looksRandom(s[i:j]) || hasRandomPiece(s[i:j])) {
			dst = append(dst, s[start:i]...)
			dst = r.replace(dst, Token)
			start = j
		}
		i = j
	}
	return append(dst, s[start:]...)
}

// hasRandomPiece reports whether one of run's pieces between '-' and '_'
// is a long token on its own.
func hasRandomPiece(run []byte) bool {
	for p := 0; p < len(run); {
		q := p
		for q < len(run) && isAlnum(run[q]) {
			q++
		}
		if q == len(run) && p == 0 {
			return false // one piece: looksRandom judged it
		}
		if q-p >= minTokenLen && looksRandom(run[p:q]) {
			return true
		}
		for p = q; p < len(run) && !isAlnum(run[p]); p++ {
		}
	}
	return false
}

// looksRandom reports whether run, letters and digits with '-' or '_'
// between them, is a long token: at least 16 letters and digits, both
// letters and digits, at most one separator in eight bytes (a slug has
// more), and hexadecimal, or at least 40 long, or odd (see oddness) in one
// part per oddPerLetters.
func looksRandom(run []byte) bool {
	var letters, digits, hex int
	for _, c := range run {
		switch cl := class[c]; {
		case cl&cDigit != 0:
			digits++
			hex++
		case cl&cAlpha != 0:
			letters++
			if cl&cHex != 0 {
				hex++
			}
		}
	}
	n := letters + digits
	switch {
	case n < minTokenLen, letters == 0, digits == 0, (len(run)-n)*8 > len(run):
		return false
	case hex == n, n >= anyTokenLen:
		return true
	}
	odd, letters, words := oddness(run)
	return odd*oddPerLetters >= n || odd >= 2 && words*2 < letters
}

// isShortToken reports whether the path segment seg is a short random id
// (a reset code, a short link, a video id): 8 to 15 letters and digits,
// '-' or '_' only between them, with lower case, upper case and digits,
// at least two odd parts and fewer than half its letters in words
// (ab12CD34ef, dQw4w9WgXcQ). Codes without lower case (SKU-12345-XL,
// B08N5WRWNW), lower-case ones (slugs), ones with one odd part (iPhone15,
// MacBookPro16, HTML5Canvas) or made of words (Win10Pro64bit,
// FY24Q3Results) are kept.
func isShortToken(seg []byte) bool {
	if len(seg) < minShortToken || len(seg) > maxShortToken || is(seg[0], cSep) || is(seg[len(seg)-1], cSep) {
		return false
	}
	var acc uint8
	for _, c := range seg {
		cl := class[c]
		if cl&(cAlnum|cSep) == 0 {
			return false
		}
		acc |= cl
	}
	if acc&cAlnum != cAlnum {
		return false
	}
	odd, letters, words := oddness(seg)
	return odd >= 2 && words*2 < letters
}

// oddness counts the parts of run that do not read like words or numbers
// in names, and the letters of run and those in words. run is split at
// '-' and '_' into pieces, each piece into digit groups and words
// (HTMLParser: HTML, Parser; iPhone15Pro: i, Phone, 15, Pro; in a run
// without lower case, ULIDs and base32, every letter group is one word).
// Odd are: a digit group with letters on both sides; a word of one or two
// lower-case letters, except at the start of the piece (iPhone) or after
// its last digits (256gb, 1080p); a longer word without a vowel or with
// four consonants in a row, except an upper-case one of at most four
// letters (SKU, HTML). Words are the word-like ones of three letters or
// more.
func oddness(run []byte) (odd, letters, words int) {
	caps := true
	for _, c := range run {
		if is(c, cLower) {
			caps = false
			break
		}
	}
	for p := 0; p < len(run); {
		q := p
		for q < len(run) && isAlnum(run[q]) {
			q++
		}
		o, l, w := pieceOddness(run[p:q], caps)
		odd, letters, words = odd+o, letters+l, words+w
		for p = q; p < len(run) && !isAlnum(run[p]); p++ {
		}
	}
	return odd, letters, words
}

func pieceOddness(p []byte, caps bool) (odd, letters, words int) {
	for i := 0; i < len(p); {
		if isDigit(p[i]) {
			j := i + digitsAt(p, i)
			if i > 0 && j < len(p) {
				odd++
			}
			i = j
			continue
		}
		j := i
		if caps {
			for j < len(p) && isAlpha(p[j]) {
				j++
			}
		} else {
			// Capitals then lower case, or capitals alone.
			for j < len(p) && is(p[j], cUpper) {
				j++
			}
			if j-i > 1 && j < len(p) && is(p[j], cLower) {
				j-- // HTMLParser: the last capital starts the next word
			}
			if j == i || j-i == 1 && j < len(p) && is(p[j], cLower) {
				for j < len(p) && is(p[j], cLower) {
					j++
				}
			}
		}
		letters += j - i
		switch like := wordLike(p, i, j, caps); {
		case !like:
			odd++
		case j-i >= 3:
			words += j - i
		}
		i = j
	}
	return odd, letters, words
}

// wordLike reports whether p[i:j], one word of piece p, reads like part
// of a name.
func wordLike(p []byte, i, j int, caps bool) bool {
	w := p[i:j]
	switch {
	case !caps && is(w[len(w)-1], cUpper) && len(w) <= 4:
		return true // an acronym: SKU, USB, HTML, TV, Q
	case len(w) <= 2:
		return i == 0 || j == len(p) && isDigit(p[i-1]) // iPhone, eBay; 256gb
	}
	vowel, run := false, 0
	for _, c := range w {
		switch toLower(c) {
		case 'a', 'e', 'i', 'o', 'u', 'y':
			vowel, run = true, 0
		default:
			if run++; run >= 4 {
				return false
			}
		}
	}
	return vowel
}
