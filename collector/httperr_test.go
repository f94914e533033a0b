package collector

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/VictoriaMetrics/metrics"
	"github.com/valyala/fasthttp"
)

// TestHTTPErrorsLogNoArgumentText feeds Printf what fasthttp passes it: a
// request error quoting the request, the peer's address, and an accept
// error. Only the format, numbers and the reason survive.
func TestHTTPErrorsLogNoArgumentText(t *testing.T) {
	var buf bytes.Buffer
	e := NewHTTPErrors(metrics.NewSet(), slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	parse := fmt.Errorf("error when reading request headers: %w: buffer size=200, contents: %q", errors.New("duplicate content-length header"),
		"POST /e?token=s3cr3t HTTP/1.1\r\nAuthorization: Bearer s3cr3t\r\nX-Forwarded-For: 203.0.113.77\r\n")
	e.Printf("error when serving connection %q<->%q: %v", "127.0.0.1:41631", "203.0.113.77:53824", parse)
	e.Printf("The number of connections from %s exceeds MaxConnsPerIP=%d", "2001:db8::1", 10)
	accept := &net.OpError{Op: "accept", Net: "tcp", Addr: &net.TCPAddr{IP: net.IPv4(203, 0, 113, 77)}, Err: os.NewSyscallError("accept4", syscall.EMFILE)}
	e.Printf("Permanent error when accepting new connections: %v", accept)
	out := buf.String()
	for _, s := range []string{"s3cr3t", "203.0.113", "127.0.0.1", "2001:db8", "41631", "Bearer", "token"} {
		if strings.Contains(out, s) {
			t.Errorf("log holds %q:\n%s", s, out)
		}
	}
	for _, s := range []string{"level=DEBUG msg=\"error when serving connection \\\"[redacted]\\\"<->\\\"[redacted]\\\": malformed_request\"",
		"MaxConnsPerIP=10", "level=WARN msg=\"Permanent error when accepting new connections: network error: accept: too many open files\""} {
		if !strings.Contains(out, s) {
			t.Errorf("log lacks %s:\n%s", s, out)
		}
	}
}

func TestClassifyParseErrors(t *testing.T) {
	tests := []struct {
		err    error
		reason string
		status int
	}{
		{&fasthttp.ErrSmallBuffer{}, rejectHeaderTooLarge, 431},
		{fasthttp.ErrBodyTooLarge, rejectTooLarge, 413},
		{fmt.Errorf("reading: %w", &net.OpError{Op: "read", Err: os.ErrDeadlineExceeded}), rejectTimeout, 408},
		{errors.New("duplicate content-length header"), rejectMalformed, 400},
	}
	for _, tt := range tests {
		if r, s := classify(tt.err); r != tt.reason || s != tt.status {
			t.Errorf("classify(%v) = %s %d, want %s %d", tt.err, r, s, tt.reason, tt.status)
		}
	}
}
