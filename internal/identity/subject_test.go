package identity

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
)

func TestSubjectKeyIsHMAC(t *testing.T) {
	for _, secret := range []string{strings.Repeat("s", 32), strings.Repeat("long", 40)} {
		k := NewSubjectKey([]byte(secret))
		for _, id := range []string{"", "user-42", strings.Repeat("x", 256)} {
			m := hmac.New(sha256.New, []byte(secret))
			m.Write([]byte(id))
			want := hex.EncodeToString(m.Sum(nil)[:16])
			if got := k.String(id); got != want {
				t.Fatalf("secret %d bytes, id %q: %s, want %s", len(secret), id, got, want)
			}
		}
	}
	buf := make([]byte, 0, 64)
	k := NewSubjectKey([]byte(strings.Repeat("s", 32)))
	id := []byte("user-42")
	if n := testing.AllocsPerRun(100, func() { buf = k.Append(buf[:0], id) }); n != 0 {
		t.Fatalf("Append allocates %v times", n)
	}
}
