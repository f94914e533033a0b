package identity

import (
	"bytes"
	"strings"
	"testing"
)

func testSaltKey(t *testing.T, secret string) *SaltKey {
	t.Helper()
	k, err := NewSaltKey([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestSaltKeySealsAndOpens(t *testing.T) {
	k := testSaltKey(t, "an operator's secret of 32 bytes+")
	day := at("2026-03-04T00:00:00Z")
	salt := []byte("0123456789abcdef")
	sealed := k.Seal(day, salt)
	if len(sealed) != 1+12+len(salt)+16 {
		t.Errorf("sealed salt has %d bytes, want a version byte, a nonce, the salt and a tag", len(sealed))
	}
	if bytes.Contains(sealed, salt) {
		t.Fatal("the sealed salt contains the salt")
	}
	if again := k.Seal(day, salt); bytes.Equal(again, sealed) {
		t.Error("two seals of one salt are equal: the nonce is not random")
	}
	got, err := k.Open(at("2026-03-04T13:00:00Z"), sealed) // any time of the day
	if err != nil || !bytes.Equal(got, salt) {
		t.Fatalf("Open = %x, %v; want the salt", got, err)
	}

	other := testSaltKey(t, "another operator's secret, 32 bytes")
	tampered := bytes.Clone(sealed)
	tampered[len(tampered)-1] ^= 1
	version := bytes.Clone(sealed)
	version[0] = 2
	for name, open := range map[string]func() ([]byte, error){
		"another day": func() ([]byte, error) { return k.Open(at("2026-03-05T00:00:00Z"), sealed) },
		"another key": func() ([]byte, error) { return other.Open(day, sealed) },
		"tampered":    func() ([]byte, error) { return k.Open(day, tampered) },
		"version":     func() ([]byte, error) { return k.Open(day, version) },
		"short":       func() ([]byte, error) { return k.Open(day, sealed[:20]) },
		"empty":       func() ([]byte, error) { return k.Open(day, nil) },
	} {
		if got, err := open(); err == nil || got != nil {
			t.Errorf("%s: Open = %x, %v; want an error", name, got, err)
		}
	}
}

func TestSaltKeyTooShort(t *testing.T) {
	secret := "short-secret-value"
	_, err := NewSaltKey([]byte(secret))
	if err == nil || !strings.Contains(err.Error(), "18 bytes; use at least 32") {
		t.Fatalf("err = %v", err)
	}
	if strings.Contains(err.Error(), secret) {
		t.Error("the error shows the secret")
	}
}

// BenchmarkSaltKeyOpen: what sealing adds to a salt fetch, once per
// collector and day.
func BenchmarkSaltKeyOpen(b *testing.B) {
	k, err := NewSaltKey([]byte("an operator's secret of 32 bytes+"))
	if err != nil {
		b.Fatal(err)
	}
	day := at("2026-03-04T00:00:00Z")
	sealed := k.Seal(day, []byte("0123456789abcdef"))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := k.Open(day, sealed); err != nil {
			b.Fatal(err)
		}
	}
}
