package collector

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

func TestHTTPLoggerRedactsAddresses(t *testing.T) {
	var buf bytes.Buffer
	l := HTTPLogger{Log: slog.New(slog.NewTextHandler(&buf, nil))}
	l.Printf("error when serving connection %q<->%q: %v", "127.0.0.1:41631", "203.0.113.77:53824", "body too large")
	l.Printf("peer %s", "[2001:db8:1::abcd]:443")
	l.Printf("peer %s", "2001:db8::1")
	l.Printf("peer %s", "::ffff:198.51.100.7")
	out := buf.String()
	for _, ip := range []string{"127.0.0.1", "203.0.113.77", "2001:db8", "198.51.100.7", "41631"} {
		if strings.Contains(out, ip) {
			t.Errorf("log holds %q:\n%s", ip, out)
		}
	}
	if !strings.Contains(out, "body too large") {
		t.Errorf("the error itself was lost:\n%s", out)
	}
}
