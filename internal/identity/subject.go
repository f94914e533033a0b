package identity

import (
	"crypto/sha256"
	"encoding/hex"
)

// SubjectKey turns a consented user id (a site's own user id, or a
// device/advertising id sent the same way) into the pseudonym stored in
// events.subject_id: the first 16 bytes of HMAC-SHA256 under the site's
// key, in hex. The raw id is never stored; the same id always maps to the
// same pseudonym, so a subject's rows can be found, exported and erased by
// hashing the id again.
//
// HMAC is computed from its definition over precomputed pads with
// sha256.Sum256, so hashing allocates nothing; a SubjectKey is immutable
// and safe for concurrent use.
type SubjectKey struct {
	ipad, opad [sha256.BlockSize]byte
}

// SubjectIDLen is the length of a stored subject id (hex).
const SubjectIDLen = 32

// MaxSubjectInput bounds the id that is hashed (decode.MaxUIDLen).
const MaxSubjectInput = 256

// NewSubjectKey derives the pads from secret.
func NewSubjectKey(secret []byte) *SubjectKey {
	var k SubjectKey
	var key [sha256.BlockSize]byte
	if len(secret) > sha256.BlockSize {
		sum := sha256.Sum256(secret)
		copy(key[:], sum[:])
	} else {
		copy(key[:], secret)
	}
	for i := range key {
		k.ipad[i] = key[i] ^ 0x36
		k.opad[i] = key[i] ^ 0x5c
	}
	return &k
}

// Append appends the pseudonym of id to dst. An id longer than
// MaxSubjectInput is hashed by its first MaxSubjectInput bytes (the
// decoder rejects longer ones before this).
func (k *SubjectKey) Append(dst, id []byte) []byte {
	id = id[:min(len(id), MaxSubjectInput)]
	var in [sha256.BlockSize + MaxSubjectInput]byte
	copy(in[:], k.ipad[:])
	n := copy(in[sha256.BlockSize:], id)
	inner := sha256.Sum256(in[:sha256.BlockSize+n])
	var out [sha256.BlockSize + sha256.Size]byte
	copy(out[:], k.opad[:])
	copy(out[sha256.BlockSize:], inner[:])
	mac := sha256.Sum256(out[:])
	return hex.AppendEncode(dst, mac[:SubjectIDLen/2])
}

// String returns the pseudonym of id.
func (k *SubjectKey) String(id string) string { return string(k.Append(nil, []byte(id))) }
