package reports

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strings"
)

// Kinds of message, as stored (report_sends.kind, report_unsubscribes.kind)
// and carried in unsubscribe links: a recipient unsubscribes from one kind
// of a site's messages.
const (
	KindWeek  = "week"
	KindMonth = "month"
	KindAlert = "alert"
)

var kindCode = map[string]byte{KindWeek: 1, KindMonth: 2, KindAlert: 3}

// keys derives what the signing key (smtp.signing_key_env) keys: the
// recipient hash and the unsubscribe links' MAC, each under its own label
// so that one never stands for the other.
type keys struct{ secret []byte }

// recipient is the keyed hash under which an address is stored and
// carried in links: 32 hex digits of HMAC-SHA256(key, label || address),
// the address in its canonical (lower-case) form. Without the key it
// cannot be recomputed from a guessed address.
func (k keys) recipient(addr string) string {
	m := hmac.New(sha256.New, k.secret)
	m.Write([]byte("glimpse-report-recipient\x00"))
	m.Write([]byte(strings.ToLower(addr)))
	return hex.EncodeToString(m.Sum(nil)[:16])
}

// Unsubscribe link layout (base64url, no padding):
//
//	1 byte   version = 1
//	1 byte   kind (1 week, 2 month, 3 alert)
//	1 + n    site (n <= 253)
//	16 bytes recipient hash
//	16 bytes HMAC-SHA256(key, "glimpse-report-link" || all bytes before), truncated
//
// Links do not expire: an unsubscribe link must keep working.
const (
	linkVersion = 1
	linkMAC     = 16
	recLen      = 16
	maxLinkLen  = 4*(3+253+recLen+linkMAC)/3 + 4
)

var errLink = errors.New("invalid or tampered unsubscribe link")

func (k keys) mac(b []byte) []byte {
	m := hmac.New(sha256.New, k.secret)
	m.Write([]byte("glimpse-report-link\x00"))
	m.Write(b)
	return m.Sum(nil)[:linkMAC]
}

// sign returns the token of an unsubscribe link.
func (k keys) sign(site, kind, recipient string) string {
	rec, _ := hex.DecodeString(recipient)
	b := []byte{linkVersion, kindCode[kind], byte(len(site))}
	b = append(b, site...)
	b = append(b, rec...)
	b = append(b, k.mac(b)...)
	return base64.RawURLEncoding.EncodeToString(b)
}

// verify checks a token's MAC in constant time and returns what it names.
func (k keys) verify(tok string) (site, kind, recipient string, err error) {
	if len(tok) > maxLinkLen {
		return "", "", "", errLink
	}
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil || len(b) < 3+recLen+linkMAC || b[0] != linkVersion {
		return "", "", "", errLink
	}
	body, mac := b[:len(b)-linkMAC], b[len(b)-linkMAC:]
	if !hmac.Equal(k.mac(body), mac) {
		return "", "", "", errLink
	}
	n := int(body[2])
	if len(body) != 3+n+recLen {
		return "", "", "", errLink
	}
	for name, c := range kindCode {
		if c == body[1] {
			kind = name
		}
	}
	if kind == "" {
		return "", "", "", errLink
	}
	return string(body[3 : 3+n]), kind, hex.EncodeToString(body[3+n:]), nil
}
