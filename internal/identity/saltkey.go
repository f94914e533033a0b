package identity

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"errors"
	"fmt"
	"time"
)

// SaltKey seals the salts that collectors share through ClickHouse
// (ClickHouseStore). Only the collectors hold it: what the salts table
// keeps is AES-256-GCM ciphertext, so a ClickHouse reader, or anyone who
// reads its files, logs or backups, cannot learn a salt, and without the
// salt can neither reverse a visitor id (try the addresses of its /24
// with likely User-Agents) nor link two ids.
//
// The AES key is derived with HKDF-SHA256 from the operator's secret;
// each seal draws a random nonce; the salt's UTC day is the associated
// data, so a sealed salt opens only as the salt of its own day. A SaltKey
// is immutable and safe for concurrent use.
type SaltKey struct {
	aead cipher.AEAD
}

// MinSaltKeyLen is the shortest accepted secret: 32 bytes, as for the
// other keys (openssl rand -base64 32 gives 44).
const MinSaltKeyLen = 32

// sealVersion is the first byte of a sealed salt: the format (a version
// byte, a 12-byte nonce, the ciphertext and a 16-byte tag, under the key
// derived with saltKeyInfo). It is authenticated too.
const sealVersion = 1

const saltKeyInfo = "glimpse shared salts v1"

// NewSaltKey derives the sealing key from secret, which must have at
// least MinSaltKeyLen bytes. The error never contains the secret.
func NewSaltKey(secret []byte) (*SaltKey, error) {
	if len(secret) < MinSaltKeyLen {
		return nil, fmt.Errorf("the salt key has %d bytes; use at least %d random bytes (e.g. openssl rand -base64 32)", len(secret), MinSaltKeyLen)
	}
	key, err := hkdf.Key(sha256.New, secret, nil, saltKeyInfo, 32)
	if err != nil {
		return nil, fmt.Errorf("cannot derive the salt key: %w", err)
	}
	defer clear(key)
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("cannot derive the salt key: %w", err)
	}
	aead, err := cipher.NewGCMWithRandomNonce(block)
	if err != nil {
		return nil, fmt.Errorf("cannot derive the salt key: %w", err)
	}
	return &SaltKey{aead: aead}, nil
}

// additionalData binds a sealed salt to its format and its day.
func additionalData(day time.Time) []byte {
	return fmt.Appendf(nil, "%d glimpse salt of %s", sealVersion, day.UTC().Format(time.DateOnly))
}

// Seal returns salt sealed as the salt of the UTC day of day.
func (k *SaltKey) Seal(day time.Time, salt []byte) []byte {
	out := make([]byte, 1, 1+len(salt)+k.aead.Overhead())
	out[0] = sealVersion
	return k.aead.Seal(out, nil, salt, additionalData(day))
}

// errUnsealed is Open's only error: it says nothing of the bytes.
var errUnsealed = errors.New("the sealed salt does not open under this salt key: another key, or another day's salt")

// Open returns the salt that Seal sealed as day's; it fails if sealed was
// sealed under another key, for another day, or changed.
func (k *SaltKey) Open(day time.Time, sealed []byte) ([]byte, error) {
	if len(sealed) < 1+k.aead.Overhead() || sealed[0] != sealVersion {
		return nil, errUnsealed
	}
	salt, err := k.aead.Open(nil, nil, sealed[1:], additionalData(day))
	if err != nil {
		return nil, errUnsealed
	}
	return salt, nil
}
