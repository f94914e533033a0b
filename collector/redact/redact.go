// Package redact removes personal data and secrets from the free text the
// collector stores: page and referrer paths, UTM and other kept query
// values, custom property keys and values, link targets and email campaign
// names. One set of rules applies everywhere (DESIGN.md, "Privacy model"):
//
//	rule   placeholder  what is replaced
//	email  [email]      an e-mail address (an '@', raw or still "%40", between
//	                    a local part and a domain with a dot and two letters)
//	card   [card]       13 to 19 digits, in groups of three or more joined by
//	                    single spaces or dashes or not grouped, starting with
//	                    2 to 6 (the card networks' ranges) and passing the
//	                    Luhn check
//	phone  [phone]      '+' and 8 to 15 digits (E.164, spaces, dashes, dots and
//	                    one parenthesised group allowed); or a national number
//	                    written with its separators: (555) 123-4567,
//	                    555-123-4567, 030 1234567, 07700 900123, 06 12 34 56 78
//	iban   [iban]       a country code, two check digits and the account, of the
//	                    length the IBAN registry gives that country, compact or
//	                    in groups of four, passing the mod-97 check
//	jwt    [jwt]        a JSON Web Token: "eyJ…" header, '.', "e…" payload, '.',
//	                    signature (base64url)
//	token  [token]      a UUID; a run of 16 or more letters and digits (base64url
//	                    '-' and '_' allowed) that is hexadecimal, 40 or more
//	                    long, or irregular (see looksRandom); in paths also a
//	                    whole segment of 8 to 15 letters and digits that mixes
//	                    lower case, upper case and digits irregularly
//	user   [user]       in paths only: the segment after users/, user/,
//	                    members/, people/, profiles/, customers/ (and a
//	                    few more), unless it names a page of the
//	                    collection itself (new, edit, sign_in, settings, ...)
//
// What is kept on purpose: words and slugs, dates, times, version numbers,
// prices and other plain numbers (a phone needs a '+' or its separators, a
// card the Luhn check), numeric ids of any length that are not a card,
// short hex ids such as commit hashes and colours, and product codes
// without lower case (SKU-12345-XL, B08N5WRWNW).
//
// A UUID is redacted: in the paths of sites it names users, orders, carts
// and reset links far more often than public records, so it is treated as
// an identifier of a person; grouping "/orders/[token]" also makes the
// pages report readable.
//
// Matching is done by hand-written scanners, not regular expressions: the
// collector runs them on every event. Text with no digit and no '@' is
// copied after one pass over its bytes, and no function here allocates
// once dst has room. Redacting is idempotent: redacting the output again
// changes nothing. Each match counts in glimpse_redactions_total{rule};
// the label is the rule, never the value.
package redact

import (
	"github.com/VictoriaMetrics/metrics"
)

// Rule is a redaction rule.
type Rule uint8

// The rules. In text, e-mail addresses are found first, then JWTs, UUIDs
// (counted as tokens), IBANs, cards and phone numbers at word starts, then
// long tokens in what is left; in paths the user rule and short tokens are
// tried first, on whole segments.
const (
	Email Rule = iota
	JWT
	IBAN
	Card
	Phone
	Token
	User
	numRules
)

// Rules lists every rule.
func Rules() []Rule {
	r := make([]Rule, numRules)
	for i := range r {
		r[i] = Rule(i)
	}
	return r
}

var ruleNames = [numRules]string{
	Email: "email",
	JWT:   "jwt",
	IBAN:  "iban",
	Card:  "card",
	Phone: "phone",
	Token: "token",
	User:  "user",
}

var placeholders = [numRules]string{
	Email: "[email]",
	JWT:   "[jwt]",
	IBAN:  "[iban]",
	Card:  "[card]",
	Phone: "[phone]",
	Token: "[token]",
	User:  "[user]",
}

// String is the rule's name, the value of the metric's rule label.
func (r Rule) String() string { return ruleNames[r] }

// Placeholder is what replaces a match of r.
func (r Rule) Placeholder() string { return placeholders[r] }

// MetricName is the counter of matches of r.
func (r Rule) MetricName() string { return `glimpse_redactions_total{rule="` + r.String() + `"}` }

// Redactor applies the rules and counts what they replace. A nil
// *Redactor redacts the same and counts nothing.
type Redactor struct {
	counters [numRules]*metrics.Counter
}

// New returns a Redactor counting in set. Redactors on the same set share
// their counters.
func New(set *metrics.Set) *Redactor {
	r := &Redactor{}
	for i := range r.counters {
		r.counters[i] = set.GetOrCreateCounter(Rule(i).MetricName())
	}
	return r
}

func (r *Redactor) count(rule Rule) {
	if r != nil {
		r.counters[rule].Inc()
	}
}

func (r *Redactor) replace(dst []byte, rule Rule) []byte {
	r.count(rule)
	return append(dst, placeholders[rule]...)
}

// Text returns s redacted as text. It allocates; it is for cold paths
// (minting email links, tests).
func (r *Redactor) Text(s string) string {
	if !suspicious([]byte(s)) {
		return s
	}
	return string(r.AppendText(nil, []byte(s)))
}

// AppendText appends s to dst with every match of the text rules (all but
// user) replaced by its placeholder. s is decoded text: a query value, a
// property, a campaign name. A percent-escape ("%20") is kept whole and
// read as the byte it encodes where that byte separates (a space) or joins
// (the '@' of "%40") the parts of a match.
func (r *Redactor) AppendText(dst, s []byte) []byte {
	if len(s) < minMatchLen || !suspicious(s) {
		return append(dst, s...)
	}
	return r.appendEmails(dst, s)
}

// AppendPath appends the URL path s (decoded where safe, as stored) to dst
// with the text rules applied to each segment, and the path rules to
// whole segments: the user rule and short random tokens.
func (r *Redactor) AppendPath(dst, s []byte) []byte {
	collection := false // the previous segment names a collection of people
	for len(s) > 0 {
		seg, rest, slash := cut(s, '/')
		switch {
		case len(seg) == 0:
		case collection && !isPlaceholder(seg) && !isCollectionPage(seg):
			dst = r.replace(dst, User)
		case isShortToken(seg):
			dst = r.replace(dst, Token)
		default:
			dst = r.AppendText(dst, seg)
		}
		if slash {
			dst = append(dst, '/')
		}
		collection = len(seg) > 0 && isPeople(seg)
		s = rest
	}
	return dst
}

// minMatchLen is the length of the shortest text a rule matches, the
// e-mail address "a@.co"; a phone number takes 9 bytes, a token 16.
const minMatchLen = 5

// cut is bytes.Cut for one byte.
func cut(s []byte, sep byte) (before, after []byte, found bool) {
	for i, c := range s {
		if c == sep {
			return s[:i], s[i+1:], true
		}
	}
	return s, nil, false
}

// suspicious reports whether s has a byte that some text rule needs: a
// digit or an '@' ("%40" has digits). Every match holds one: cards, phones
// and IBANs are digits, tokens and JWTs mix in digits by definition (a
// UUID has its version digit), an e-mail address has its '@'.
func suspicious(s []byte) bool {
	var acc uint8
	for _, c := range s {
		acc |= class[c]
	}
	return acc&(cDigit|cAt) != 0
}

// isPlaceholder reports whether seg is one of the placeholders, which are
// never redacted again.
func isPlaceholder(seg []byte) bool {
	if len(seg) < 5 || seg[0] != '[' {
		return false
	}
	for _, p := range placeholders {
		if string(seg) == p {
			return true
		}
	}
	return false
}
