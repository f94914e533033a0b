package noise

import (
	"encoding/binary"
	"hash"
	"math/bits"
)

// domain separates the noise stream from any other use of the same key
// with HMAC-SHA256. Changing it (or anything else in the derivation)
// gives every cell fresh noise, which a reader who saw both versions
// could average: it is part of the released data's contract.
const domain = "glimpse/noise/v1\x00"

// A stream is the pseudorandom bit stream of one cell:
//
//	block i = HMAC-SHA256(key, domain || cell || uint64be(i)), i = 0, 1, ...
//
// read as a sequence of little-endian 64-bit words, each word from its
// least significant bit up. The message is injective in (cell, i): the
// domain is fixed and the counter has a fixed length at the end.
//
// A stream is not safe for concurrent use; Noise keeps one per goroutine
// in a sync.Pool.
type stream struct {
	mac   hash.Hash // HMAC-SHA256 under the site key
	msg   []byte    // domain || cell || counter, reused between cells
	block [32]byte  // the current HMAC output
	next  int       // offset of the next unread word in block
	ctr   uint64    // blocks computed for this cell
	word  uint64    // unread bits of the current word, least significant first
	nbits uint      // how many bits of word are unread
}

// start positions s at the beginning of cell's stream.
func (s *stream) start(cell string) {
	s.msg = append(s.msg[:0], domain...)
	s.msg = append(s.msg, cell...)
	s.msg = binary.BigEndian.AppendUint64(s.msg, 0)
	s.next = len(s.block)
	s.ctr = 0
	s.word, s.nbits = 0, 0
}

// refill computes the next block of the stream.
func (s *stream) refill() {
	binary.BigEndian.PutUint64(s.msg[len(s.msg)-8:], s.ctr)
	s.ctr++
	s.mac.Reset() // restores the keyed state HMAC saved; no key schedule
	s.mac.Write(s.msg)
	s.mac.Sum(s.block[:0])
	s.next = 0
}

// word64 returns the next 64 bits of the stream as one word.
func (s *stream) word64() uint64 {
	if s.next == len(s.block) {
		s.refill()
	}
	w := binary.LittleEndian.Uint64(s.block[s.next:])
	s.next += 8
	return w
}

// bits returns the next k bits of the stream (1 <= k <= 64) as an
// integer in [0, 2^k). In Go a shift by 64 or more yields 0, so the
// masks are right for k = 64 too.
func (s *stream) bits(k uint) uint64 {
	if k <= s.nbits {
		v := s.word & (1<<k - 1)
		s.word >>= k
		s.nbits -= k
		return v
	}
	v, have := s.word, s.nbits
	w := s.word64()
	need := k - have
	v |= (w & (1<<need - 1)) << have
	s.word = w >> need
	s.nbits = 64 - need
	return v
}

// uniform returns an integer uniform in [0, m), m >= 1, by rejection:
// it draws just enough bits to cover m-1 and retries when the value is
// m or more, so every value has probability exactly 1/m (no modulo
// bias). Each try succeeds with probability m/2^k > 1/2.
func (s *stream) uniform(m uint64) uint64 {
	if m <= 1 {
		if m == 0 {
			panic("noise: uniform(0)") // would never return
		}
		return 0
	}
	k := uint(bits.Len64(m - 1))
	for {
		if v := s.bits(k); v < m {
			return v
		}
	}
}

// bernoulli returns true with probability n/d (d >= 1): a uniform draw
// in [0, d) below n. It draws nothing when the answer is certain.
func (s *stream) bernoulli(n, d uint64) bool {
	if n == 0 {
		return false
	}
	if n >= d {
		return true
	}
	return s.uniform(d) < n
}
