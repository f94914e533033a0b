package config

import "strings"

// Query keys that query_allow refuses: a kept query value is stored in
// the pathname column and shown in reports, so a key whose values are
// secrets (sessions, tokens, passwords, API keys, one-time and
// authorisation codes, signatures) or personal data (addresses, phone
// numbers, account numbers) must not be kept. Redaction (collector/redact)
// catches values that look like these; a short session id or a password
// does not look like anything.
//
// A key is split into words at punctuation, at lower-to-upper case
// changes and between letters and digits (session_id and sessionId →
// session id; X-Amz-Signature → x amz signature; otp2 → otp 2), and
// refused when a word contains one of secretParts, ends with one of
// secretSuffixes or is one of secretWords.
var (
	// secretParts are refused anywhere in a word: apikey, csrftoken,
	// phpsessid, useremail, telephone.
	secretParts = []string{"password", "passwd", "passcode", "secret", "token", "session", "sessid", "signature",
		"credential", "bearer", "apikey", "email", "phone", "csrf", "xsrf", "cookie", "jwt"}
	// secretSuffixes are refused at the end of a word: accesskey, oauth,
	// totp.
	secretSuffixes = []string{"key", "auth", "otp"}
	// secretWords are refused as whole words: auth_code but not barcode,
	// sig but not design, pass but not passport.
	secretWords = []string{"code", "sig", "sigs", "pwd", "pw", "pass", "pin", "sid", "sess", "ssn", "cvv", "cvc",
		"iban", "mail", "tel", "nonce", "authorization", "authz", "authn", "login", "user", "username", "uid"}
)

// secretQueryKey returns what makes k a key query_allow refuses, or "".
func secretQueryKey(k string) string {
	for _, w := range keyWords(k) {
		for _, p := range secretParts {
			if strings.Contains(w, p) {
				return p
			}
		}
		for _, s := range secretSuffixes {
			if strings.HasSuffix(w, s) {
				return s
			}
		}
		for _, s := range secretWords {
			if w == s {
				return s
			}
		}
	}
	return ""
}

// keyWords splits a query key into lower-case words.
func keyWords(k string) []string {
	var words []string
	start := -1
	kind := func(c byte) int {
		switch {
		case 'a' <= c && c <= 'z':
			return 1
		case 'A' <= c && c <= 'Z':
			return 2
		case '0' <= c && c <= '9':
			return 3
		}
		return 0
	}
	for i := 0; i <= len(k); i++ {
		c, prev := 0, 0
		if i < len(k) {
			c = kind(k[i])
		}
		if i > 0 {
			prev = kind(k[i-1])
		}
		boundary := c == 0 || c != prev && !(prev == 2 && c == 1) ||
			// "HTTPRequest": the last capital starts the next word.
			c == 2 && prev == 2 && i+1 < len(k) && kind(k[i+1]) == 1
		if boundary && start >= 0 {
			words = append(words, strings.ToLower(k[start:i]))
			start = -1
		}
		if c != 0 && start < 0 {
			start = i
		}
	}
	return words
}
