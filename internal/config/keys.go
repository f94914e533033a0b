package config

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"slices"
)

// API key scopes: what a key may do on the sites it lists.
const (
	// ScopeStats reads the Stats API: aggregates, folded below k.
	ScopeStats = "stats"
	// ScopeEmail mints signed email links and pixels (POST /api/email/sign).
	ScopeEmail = "email"
	// ScopeSubjects exports and erases one subject's rows
	// (/api/v1/subject/export|erase).
	ScopeSubjects = "subjects"
)

// Scopes are the scope names a key may list.
var Scopes = []string{ScopeStats, ScopeEmail, ScopeSubjects}

// DefaultScopes are the scopes of a key whose entry lists none: reading
// stats, what a dashboard's key needs, and nothing else. A minted email
// link is a redirect from the collector's domain that may never expire,
// an export hands out one person's rows and an erase destroys them: a key
// may do any of these only when its entry lists the scope.
var DefaultScopes = []string{ScopeStats}

// Can reports whether the key holds scope.
func (k *APIKey) Can(scope string) bool {
	if len(k.Scopes) == 0 {
		return slices.Contains(DefaultScopes, scope)
	}
	return slices.Contains(k.Scopes, scope)
}

// Covers reports whether the key lists site.
func (k *APIKey) Covers(site string) bool { return slices.Contains(k.Sites, site) }

// Keys finds the configured API key a request's bearer token belongs to.
type Keys struct {
	keys   []APIKey
	hashes [][sha256.Size]byte
}

// Errors of Keys.Match; both mean 401.
var (
	ErrNoKey  = errors.New("missing API key: send Authorization: Bearer <key>")
	ErrBadKey = errors.New("invalid API key")
)

// newKeys indexes keys, whose hashes the validator has checked, by their
// SHA-256 (Parse does, once; File.Keys returns them).
func newKeys(keys []APIKey) *Keys {
	ks := &Keys{keys: keys, hashes: make([][sha256.Size]byte, len(keys))}
	for i, k := range keys {
		if len(k.SHA256) == 2*sha256.Size {
			_, _ = hex.Decode(ks.hashes[i][:], []byte(k.SHA256))
		}
	}
	return ks
}

// Keys returns the API keys, ready to match bearer tokens.
func (f *File) Keys() *Keys { return f.keys }

// Len is the number of keys; Match's indexes are below it.
func (ks *Keys) Len() int { return len(ks.keys) }

// Match returns the key, and its index in the configured list, whose
// SHA-256 is that of the token in authorization ("Bearer <token>", the
// scheme in any case). It hashes the token and compares the hash with
// every key's in constant time, so the time taken says nothing of which
// key, if any, matched.
func (ks *Keys) Match(authorization []byte) (int, *APIKey, error) {
	const prefix = "bearer "
	if len(authorization) <= len(prefix) || !bytes.EqualFold(authorization[:len(prefix)], []byte(prefix)) {
		return -1, nil, ErrNoKey
	}
	sum := sha256.Sum256(authorization[len(prefix):])
	found := -1
	for i := range ks.hashes {
		if subtle.ConstantTimeCompare(sum[:], ks.hashes[i][:]) == 1 {
			found = i
		}
	}
	if found < 0 {
		return -1, nil, ErrBadKey
	}
	return found, &ks.keys[found], nil
}
