package email

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"
)

// Kind says what a token may be used for; a token of one kind is refused
// by the other endpoints.
type Kind uint8

// Token kinds.
const (
	KindOpen   Kind = 1 // /e/o/{token}.gif
	KindClick  Kind = 2 // /e/c/{token}
	KindOptOut Kind = 3 // /e/optout/{token}
)

func (k Kind) String() string {
	switch k {
	case KindOpen:
		return "open"
	case KindClick:
		return "click"
	case KindOptOut:
		return "optout"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Token is what a signed email URL carries. Glimpse never sees an email
// address: Recipient is a pseudonym the sender computes (e.g. the hex
// SHA-256 of a per-list salt and the address).
type Token struct {
	Kind     Kind
	Site     string    // a configured site domain
	Campaign string    // the sender's campaign id
	URL      string    // click tokens only: the http(s) destination
	Sent     time.Time // when the link was minted (whole seconds)
	// Expires is when the token stops working; zero: never.
	Expires time.Time
	// Recipient is the pseudonym as lower-case hex (8 to 64 digits, even
	// count), or "". It is carried in binary.
	Recipient string
}

// Token layout, version 1. All integers are unsigned varints
// (encoding/binary); strings are length-prefixed.
//
//	offset  size      field
//	0       1         version = 1
//	1       1         kind (1 open, 2 click, 3 opt-out)
//	2       1         key id: first byte of SHA-256("glimpse-email-key" || secret)
//	3       varint    sent, Unix seconds
//	        varint    lifetime in seconds after sent; 0 = no expiry
//	        1 + n     site (n ≤ 253)
//	        1 + n     campaign (n ≤ 100)
//	        1 + n     recipient pseudonym, binary (n = 0 or 4..32)
//	        varint+n  destination URL (click tokens only, n ≤ 2048)
//	last 16 bytes     HMAC-SHA256(secret, all bytes before), truncated to
//	                  128 bits (RFC 2104 §5 allows truncation to half)
//
// The whole is base64url without padding. A click token for a short URL
// is about 100 characters.
const (
	tokenVersion   = 1
	macLen         = 16
	maxSiteLen     = 253
	maxCampaignLen = 100
	maxRecipient   = 32
	minRecipient   = 4
	maxURLLen      = 2048
	// MaxTokenLen bounds the encoded token the decoder looks at.
	MaxTokenLen = 4 + 3*binary.MaxVarintLen64 + 3 + maxSiteLen + maxCampaignLen + maxRecipient + maxURLLen + macLen + 700
)

// Errors of Decode; handlers count them by name and never show them.
var (
	ErrMalformed = errors.New("malformed token")
	ErrSignature = errors.New("bad token signature")
	ErrExpired   = errors.New("token expired")
)

// Signer signs tokens with the first key and verifies with any.
type Signer struct {
	keys []signingKey
}

type signingKey struct {
	id     byte
	secret []byte
}

// NewSigner returns a Signer for secrets, the signing one first.
func NewSigner(secrets [][]byte) (*Signer, error) {
	if len(secrets) == 0 {
		return nil, errors.New("no email signing keys: add email.signing_keys to the sites file")
	}
	s := &Signer{}
	for i, sec := range secrets {
		if len(sec) < 32 {
			return nil, fmt.Errorf("email signing key %d is shorter than 32 bytes", i)
		}
		s.keys = append(s.keys, signingKey{id: keyID(sec), secret: append([]byte(nil), sec...)})
	}
	return s, nil
}

func keyID(secret []byte) byte {
	h := sha256.New()
	h.Write([]byte("glimpse-email-key"))
	h.Write(secret)
	return h.Sum(nil)[0]
}

// Sign validates t and returns it encoded and signed.
func (s *Signer) Sign(t Token) (string, error) {
	if err := t.validate(); err != nil {
		return "", err
	}
	rec, _ := hex.DecodeString(t.Recipient)
	k := s.keys[0]
	b := make([]byte, 0, 64+len(t.Site)+len(t.Campaign)+len(t.URL))
	b = append(b, tokenVersion, byte(t.Kind), k.id)
	sent := t.Sent.Unix()
	b = binary.AppendUvarint(b, uint64(sent))
	var life uint64
	if !t.Expires.IsZero() {
		life = uint64(t.Expires.Unix() - sent)
	}
	b = binary.AppendUvarint(b, life)
	b = appendShort(b, t.Site)
	b = appendShort(b, t.Campaign)
	b = appendShort(b, string(rec))
	if t.Kind == KindClick {
		b = binary.AppendUvarint(b, uint64(len(t.URL)))
		b = append(b, t.URL...)
	}
	b = appendMAC(b, k.secret)
	return base64.RawURLEncoding.EncodeToString(b), nil
}

func appendShort(b []byte, s string) []byte {
	return append(append(b, byte(len(s))), s...)
}

func appendMAC(b, secret []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write(b)
	var sum [sha256.Size]byte
	return append(b, m.Sum(sum[:0])[:macLen]...)
}

// validate checks what Sign would otherwise encode wrongly.
func (t *Token) validate() error {
	switch t.Kind {
	case KindOpen, KindClick, KindOptOut:
	default:
		return fmt.Errorf("unknown token kind %d", t.Kind)
	}
	if t.Site == "" || len(t.Site) > maxSiteLen {
		return errors.New("site: want a configured site domain")
	}
	if err := ValidCampaign(t.Campaign); err != nil {
		return err
	}
	if t.Recipient != "" {
		if err := ValidRecipient(t.Recipient); err != nil {
			return err
		}
	}
	if t.Kind == KindOptOut && t.Recipient == "" {
		return errors.New("an opt-out link needs a recipient pseudonym")
	}
	if t.Kind == KindClick {
		if err := CheckDestination(t.URL); err != nil {
			return err
		}
	} else if t.URL != "" {
		return fmt.Errorf("a %s token carries no URL", t.Kind)
	}
	if t.Sent.Unix() <= 0 {
		return errors.New("send time before 1970")
	}
	if !t.Expires.IsZero() && !t.Expires.After(t.Sent) {
		return errors.New("expiry must be after the send time")
	}
	return nil
}

// ValidCampaign checks a campaign id: 1 to 100 bytes of printable UTF-8.
func ValidCampaign(c string) error {
	if c == "" || len(c) > maxCampaignLen || !utf8.ValidString(c) {
		return errors.New("campaign: want 1 to 100 bytes of printable UTF-8")
	}
	for _, r := range c {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return errors.New("campaign: control characters are not allowed")
		}
	}
	return nil
}

// ValidRecipient checks a recipient pseudonym: 8 to 64 lower-case hex
// digits, an even count (e.g. a hex SHA-256 the sender computes).
func ValidRecipient(r string) error {
	if len(r) < 2*minRecipient || len(r) > 2*maxRecipient || len(r)%2 != 0 {
		return errors.New("recipient: want a pseudonym of 8 to 64 lower-case hex digits (e.g. a SHA-256), never an address")
	}
	for i := 0; i < len(r); i++ {
		c := r[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return errors.New("recipient: want a pseudonym of 8 to 64 lower-case hex digits (e.g. a SHA-256), never an address")
		}
	}
	return nil
}

// Decode checks the signature and expiry of an encoded token and returns
// its content. A token signed by any of the keys is accepted; MACs are
// compared in constant time.
func (s *Signer) Decode(enc []byte, now time.Time) (Token, error) {
	var t Token
	if len(enc) > MaxTokenLen || len(enc) < 8 {
		return t, ErrMalformed
	}
	var buf [MaxTokenLen]byte
	n, err := base64.RawURLEncoding.Decode(buf[:], enc)
	if err != nil || n < 3+macLen {
		return t, ErrMalformed
	}
	b := buf[:n]
	if b[0] != tokenVersion {
		return t, ErrMalformed
	}
	body, mac := b[:n-macLen], b[n-macLen:]
	ok := false
	for _, k := range s.keys {
		if k.id != b[2] {
			continue
		}
		var sum [sha256.Size]byte
		m := hmac.New(sha256.New, k.secret)
		m.Write(body)
		if hmac.Equal(m.Sum(sum[:0])[:macLen], mac) {
			ok = true
			break
		}
	}
	if !ok {
		return t, ErrSignature
	}
	// Signed by us: the rest is parsed strictly all the same, so a bug in
	// an old minting version cannot turn into a bad redirect.
	t, err = parseBody(body)
	if err != nil {
		return Token{}, err
	}
	if !t.Expires.IsZero() && !now.Before(t.Expires) {
		return Token{}, ErrExpired
	}
	return t, nil
}

// parseBody parses a token without its MAC.
func parseBody(b []byte) (Token, error) {
	var t Token
	t.Kind = Kind(b[1])
	p := b[3:]
	sent, n := binary.Uvarint(p)
	if n <= 0 || sent == 0 || sent > 1<<40 {
		return t, ErrMalformed
	}
	p = p[n:]
	life, n := binary.Uvarint(p)
	if n <= 0 || life > 1<<40 {
		return t, ErrMalformed
	}
	p = p[n:]
	t.Sent = time.Unix(int64(sent), 0).UTC()
	if life > 0 {
		t.Expires = t.Sent.Add(time.Duration(life) * time.Second)
	}
	var site, campaign, rec []byte
	var ok bool
	if site, p, ok = short(p); !ok {
		return t, ErrMalformed
	}
	if campaign, p, ok = short(p); !ok {
		return t, ErrMalformed
	}
	if rec, p, ok = short(p); !ok {
		return t, ErrMalformed
	}
	t.Site, t.Campaign = string(site), string(campaign)
	if len(rec) > 0 {
		t.Recipient = hex.EncodeToString(rec)
	}
	if t.Kind == KindClick {
		l, n := binary.Uvarint(p)
		if n <= 0 || l > maxURLLen || uint64(len(p)-n) != l {
			return t, ErrMalformed
		}
		t.URL = string(p[n:])
		p = nil
	}
	if len(p) != 0 {
		return t, ErrMalformed
	}
	if t.validate() != nil {
		return Token{}, ErrMalformed
	}
	return t, nil
}

func short(p []byte) (s, rest []byte, ok bool) {
	if len(p) < 1 {
		return nil, nil, false
	}
	n := 1 + int(p[0]) // int first: 1 + a byte of 255 wraps to 0
	if len(p) < n {
		return nil, nil, false
	}
	return p[1:n], p[n:], true
}
