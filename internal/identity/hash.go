package identity

import (
	"encoding/binary"
	"net/netip"
	"time"

	"github.com/dchest/siphash"
)

// VisitorID returns the visitor id of a request to site from ip with
// User-Agent ua, seen at now: SipHash-2-4 keyed with the first 16 bytes of
// the salt of now's UTC day, over the site, the full 16-byte address
// (IPv4 in its IPv4-mapped form, so both spellings agree; zones ignored)
// and the User-Agent.
//
// Ids are never 0, which means "no visitor id". Neither ip nor ua is
// retained, and VisitorID does not allocate.
func (s *Salts) VisitorID(now time.Time, site string, ip netip.Addr, ua []byte) uint64 {
	k0, k1 := s.keys(now)
	addr := ip.As16()
	return visitorHash(k0, k1, site, &addr, ua)
}

// maxInlineSite is the longest site hashed as is; longer ones (never a
// real domain, which has at most 253 bytes) are hashed first.
const maxInlineSite = 256

// visitorHash computes the keyed hash of
//
//	tag(1) ‖ address(16) ‖ H(ua)(8) ‖ site
//
// where tag is 0 when site is inline and 1 when it is replaced by H(site)
// (8 bytes). Every field but the last has a fixed length, so no two inputs
// share a message. H is SipHash-2-4 under the same key; hashing the
// User-Agent first bounds the message so it fits a stack buffer.
func visitorHash(k0, k1 uint64, site string, addr *[16]byte, ua []byte) uint64 {
	var buf [1 + 16 + 8 + maxInlineSite]byte
	copy(buf[1:17], addr[:])
	binary.LittleEndian.PutUint64(buf[17:25], siphash.Hash(k0, k1, ua))
	n := 25
	if len(site) <= maxInlineSite {
		n += copy(buf[n:], site)
	} else {
		buf[0] = 1
		// Allocates, but no domain is this long.
		binary.LittleEndian.PutUint64(buf[n:], siphash.Hash(k0, k1, []byte(site)))
		n += 8
	}
	h := siphash.Hash(k0, k1, buf[:n])
	if h == 0 {
		h = 1 // 0 is reserved
	}
	return h
}
