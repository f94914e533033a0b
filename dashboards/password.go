package dashboards

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"strings"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"

	"github.com/glimpse-analytics/glimpse/internal/config"
)

// BcryptCost is the cost HashPassword uses (about 0.2 s on a current core).
const BcryptCost = 12

// HashPassword returns a bcrypt hash of pw for the sites file's users:.
func HashPassword(pw string) (string, error) {
	if len(pw) > 72 {
		return "", fmt.Errorf("the password is longer than bcrypt's 72 bytes")
	}
	h, err := bcrypt.GenerateFromPassword([]byte(pw), BcryptCost)
	return string(h), err
}

// HashPasswordArgon2id returns an argon2id hash of pw in the PHC format
// (m=64 MiB, t=3, p=2).
func HashPasswordArgon2id(pw string) (string, error) {
	var salt [16]byte
	if _, err := rand.Read(salt[:]); err != nil {
		return "", err
	}
	const m, t, p = 64 * 1024, 3, 2
	key := argon2.IDKey([]byte(pw), salt[:], t, m, p, 32)
	enc := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=19$m=%d,t=%d,p=%d$%s$%s", m, t, p, enc.EncodeToString(salt[:]), enc.EncodeToString(key)), nil
}

// VerifyPassword reports whether pw matches hash (bcrypt or argon2id, as
// config validates them), in time independent of where they differ.
func VerifyPassword(hash, pw string) bool {
	if strings.HasPrefix(hash, "$argon2id$") {
		parts := strings.Split(hash, "$") // "", argon2id, v=19, m=..,t=..,p=.., salt, key
		if len(parts) != 6 || parts[2] != "v=19" {
			return false
		}
		var m, t uint32
		var p uint8
		if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &m, &t, &p); err != nil {
			return false
		}
		enc := base64.RawStdEncoding
		salt, err1 := enc.DecodeString(parts[4])
		want, err2 := enc.DecodeString(parts[5])
		if err1 != nil || err2 != nil || len(want) == 0 {
			return false
		}
		got := argon2.IDKey([]byte(pw), salt, t, m, p, uint32(len(want)))
		return subtle.ConstantTimeCompare(got, want) == 1
	}
	return bcrypt.CompareHashAndPassword([]byte(hash), []byte(pw)) == nil
}

// dummyHash is verified against when the address is unknown: a hash like
// the configured users' (their bcrypt cost, or argon2id), so a failed
// sign-in takes as long whether or not the address exists.
func dummyHash(users []config.User) string {
	pw := []byte("no such user, no such password")
	for _, u := range users {
		if strings.HasPrefix(u.PasswordHash, "$argon2id$") {
			h, _ := HashPasswordArgon2id(string(pw))
			return h
		}
		if cost, err := bcrypt.Cost([]byte(u.PasswordHash)); err == nil {
			h, _ := bcrypt.GenerateFromPassword(pw, cost)
			return string(h)
		}
	}
	h, _ := bcrypt.GenerateFromPassword(pw, BcryptCost)
	return string(h)
}
