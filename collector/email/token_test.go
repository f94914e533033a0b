package email

import (
	"bytes"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"
)

var (
	key1 = []byte("k1-0123456789abcdef0123456789abcdef")
	key2 = []byte("k2-0123456789abcdef0123456789abcdef")
	t0   = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
)

func mustSigner(t testing.TB, keys ...[]byte) *Signer {
	t.Helper()
	s, err := NewSigner(keys)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func clickToken() Token {
	return Token{Kind: KindClick, Site: "example.com", Campaign: "june-news", URL: "https://example.com/sale?utm_source=news",
		Sent: t0, Expires: t0.Add(90 * 24 * time.Hour), Recipient: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"}
}

func TestTokenRoundTrip(t *testing.T) {
	s := mustSigner(t, key1)
	tests := []Token{
		clickToken(),
		{Kind: KindOpen, Site: "example.com", Campaign: "c", Sent: t0},
		{Kind: KindOpen, Site: "example.com", Campaign: "Sommer 2025 — News", Sent: t0, Expires: t0.Add(time.Hour), Recipient: "deadbeef"},
		{Kind: KindOptOut, Site: "shop.example", Campaign: "c", Sent: t0, Recipient: "00112233445566778899aabbccddeeff"},
	}
	for _, want := range tests {
		t.Run(want.Kind.String(), func(t *testing.T) {
			enc, err := s.Sign(want)
			if err != nil {
				t.Fatal(err)
			}
			if strings.ContainsAny(enc, "+/=") {
				t.Errorf("token %q is not base64url without padding", enc)
			}
			got, err := s.Decode([]byte(enc), t0.Add(time.Minute))
			if err != nil {
				t.Fatal(err)
			}
			if got != want {
				t.Errorf("got %+v\nwant %+v", got, want)
			}
		})
	}
	enc, _ := s.Sign(tests[0])
	if len(enc) > 170 { // 41-byte URL, 32-byte pseudonym, site, campaign: 124 bytes
		t.Errorf("click token for a short URL is %d characters; want it compact", len(enc))
	}
}

func TestTokenExpiry(t *testing.T) {
	s := mustSigner(t, key1)
	tok := clickToken()
	tok.Expires = t0.Add(time.Hour)
	enc, _ := s.Sign(tok)
	if _, err := s.Decode([]byte(enc), t0.Add(time.Hour-time.Second)); err != nil {
		t.Errorf("just before expiry: %v", err)
	}
	if _, err := s.Decode([]byte(enc), t0.Add(time.Hour)); !errors.Is(err, ErrExpired) {
		t.Errorf("at expiry: err = %v, want ErrExpired", err)
	}
	tok.Expires = time.Time{}
	enc, _ = s.Sign(tok)
	if _, err := s.Decode([]byte(enc), t0.Add(100*365*24*time.Hour)); err != nil {
		t.Errorf("no expiry: %v", err)
	}
}

func TestTokenRotation(t *testing.T) {
	old := mustSigner(t, key1)
	rotated := mustSigner(t, key2, key1) // new key first, old still verifies
	dropped := mustSigner(t, key2)
	encOld, _ := old.Sign(clickToken())
	encNew, _ := rotated.Sign(clickToken())
	if encOld == encNew {
		t.Fatal("rotated signer signs with the old key")
	}
	if _, err := rotated.Decode([]byte(encOld), t0); err != nil {
		t.Errorf("old token after rotation: %v", err)
	}
	if _, err := rotated.Decode([]byte(encNew), t0); err != nil {
		t.Errorf("new token: %v", err)
	}
	if _, err := dropped.Decode([]byte(encOld), t0); !errors.Is(err, ErrSignature) {
		t.Errorf("old token after its key is removed: err = %v, want ErrSignature", err)
	}
	if _, err := old.Decode([]byte(encNew), t0); !errors.Is(err, ErrSignature) {
		t.Errorf("new token on an old server: err = %v, want ErrSignature", err)
	}
}

func TestTokenTamper(t *testing.T) {
	s := mustSigner(t, key1)
	enc, _ := s.Sign(clickToken())
	raw, _ := base64.RawURLEncoding.DecodeString(enc)
	for i := range raw {
		for _, bit := range []byte{0x01, 0x80} {
			b := bytes.Clone(raw)
			b[i] ^= bit
			if _, err := s.Decode([]byte(base64.RawURLEncoding.EncodeToString(b)), t0); err == nil {
				t.Fatalf("flipping bit %#x of byte %d still verifies", bit, i)
			}
		}
	}
	for _, bad := range []string{"", "x", enc[:len(enc)-1], enc + "A", enc + "AA", "!" + enc[1:], strings.Repeat("A", MaxTokenLen+1)} {
		if _, err := s.Decode([]byte(bad), t0); err == nil {
			t.Errorf("Decode(%.40q...) accepted", bad)
		}
	}
	// A forged destination: the token of one URL with another URL spliced in.
	forged := strings.Replace(string(raw), "example.com/sale", "evil.example/sal", 1)
	if _, err := s.Decode([]byte(base64.RawURLEncoding.EncodeToString([]byte(forged))), t0); !errors.Is(err, ErrSignature) {
		t.Errorf("spliced URL: err = %v", err)
	}
}

func TestSignRefuses(t *testing.T) {
	s := mustSigner(t, key1)
	mod := func(f func(*Token)) Token { tok := clickToken(); f(&tok); return tok }
	tests := map[string]Token{
		"javascript url":      mod(func(t *Token) { t.URL = "javascript:alert(1)" }),
		"no url":              mod(func(t *Token) { t.URL = "" }),
		"url on open":         mod(func(t *Token) { t.Kind = KindOpen }),
		"bad kind":            mod(func(t *Token) { t.Kind = 9 }),
		"no site":             mod(func(t *Token) { t.Site = "" }),
		"no campaign":         mod(func(t *Token) { t.Campaign = "" }),
		"control campaign":    mod(func(t *Token) { t.Campaign = "a\nb" }),
		"address recipient":   mod(func(t *Token) { t.Recipient = "alice@example.com" }),
		"upper recipient":     mod(func(t *Token) { t.Recipient = "DEADBEEF" }),
		"short recipient":     mod(func(t *Token) { t.Recipient = "abcd" }),
		"expiry before send":  mod(func(t *Token) { t.Expires = t0.Add(-time.Second) }),
		"optout no recipient": {Kind: KindOptOut, Site: "example.com", Campaign: "c", Sent: t0},
	}
	for name, tok := range tests {
		if _, err := s.Sign(tok); err == nil {
			t.Errorf("%s: signed", name)
		}
	}
	if _, err := NewSigner([][]byte{[]byte("short")}); err == nil {
		t.Error("NewSigner accepted a short key")
	}
	if _, err := NewSigner(nil); err == nil {
		t.Error("NewSigner accepted no key")
	}
}

func FuzzDecode(f *testing.F) {
	s := mustSigner(f, key1)
	for _, tok := range []Token{clickToken(), {Kind: KindOpen, Site: "a.b", Campaign: "c", Sent: t0}} {
		enc, _ := s.Sign(tok)
		f.Add(enc)
	}
	f.Add("")
	f.Add("AQEA")
	f.Fuzz(func(t *testing.T, in string) {
		tok, err := s.Decode([]byte(in), t0)
		if err != nil {
			return
		}
		// Anything that verifies must re-sign to a token that decodes the same
		// and, for clicks, carry a destination the redirect accepts.
		if tok.Kind == KindClick && CheckDestination(tok.URL) != nil {
			t.Fatalf("decoded click token with a bad destination %q", tok.URL)
		}
		enc, err := s.Sign(tok)
		if err != nil {
			t.Fatalf("decoded token does not re-sign: %v", err)
		}
		if again, err := s.Decode([]byte(enc), t0); err != nil || again != tok {
			t.Fatalf("re-signed token differs: %+v, %v", again, err)
		}
	})
}

// FuzzParseBody fuzzes the layout parser behind the MAC, which the MAC
// otherwise keeps random input from reaching.
func FuzzParseBody(f *testing.F) {
	s := mustSigner(f, key1)
	enc, _ := s.Sign(clickToken())
	raw, _ := base64.RawURLEncoding.DecodeString(enc)
	f.Add(raw[:len(raw)-macLen])
	f.Add([]byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) < 3 {
			return
		}
		tok, err := parseBody(b)
		if err == nil && tok.Kind == KindClick && CheckDestination(tok.URL) != nil {
			t.Fatalf("parsed a click token with a bad destination %q", tok.URL)
		}
	})
}
