package collector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/valyala/fasthttp"
)

// HTTPErrors answers, counts and logs what a fasthttp.Server meets outside
// any handler: requests it cannot parse, and connection errors. fasthttp's
// own messages quote up to 400 bytes of a bad request (a bearer key, a
// session cookie, a shared-link token, a password, X-Forwarded-For) and
// name the peer's address, so no text of theirs reaches the log: a line
// says the reason and sizes, nothing else. One HTTPErrors serves every
// listener of a process (Install); it is safe for concurrent use.
type HTTPErrors struct {
	log      *slog.Logger
	rejected map[string]*metrics.Counter
	throttle map[string]*logThrottle
}

// rejectHeaderTooLarge and rejectTimeout are the reasons, beside
// rejectTooLarge and rejectMalformed, of requests fasthttp could not read.
const (
	rejectHeaderTooLarge = "header_too_large"
	rejectTimeout        = "timeout"
)

var parseReasons = []string{rejectMalformed, rejectHeaderTooLarge, rejectTooLarge, rejectTimeout}

// NewHTTPErrors returns an HTTPErrors counting in set's
// glimpse_requests_rejected_total{reason} and logging to log.
func NewHTTPErrors(set *metrics.Set, log *slog.Logger) *HTTPErrors {
	e := &HTTPErrors{log: log.With("component", "http"), rejected: map[string]*metrics.Counter{}, throttle: map[string]*logThrottle{}}
	for _, r := range parseReasons {
		// GetOrCreate: the collector counts its own 413s as too_large too.
		e.rejected[r] = set.GetOrCreateCounter(`glimpse_requests_rejected_total{reason="` + r + `"}`)
		e.throttle[r] = new(logThrottle)
	}
	return e
}

// Install makes e hs's ErrorHandler and Logger.
func (e *HTTPErrors) Install(hs *fasthttp.Server) {
	hs.ErrorHandler, hs.Logger = e.ErrorHandler, e
}

// classify returns the reason and status for a request fasthttp could not
// read because of err.
func classify(err error) (string, int) {
	var small *fasthttp.ErrSmallBuffer
	var ne net.Error
	switch {
	case errors.As(err, &small):
		return rejectHeaderTooLarge, fasthttp.StatusRequestHeaderFieldsTooLarge
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		return rejectTooLarge, fasthttp.StatusRequestEntityTooLarge
	case errors.Is(err, fasthttp.ErrTimeout), errors.As(err, &ne) && ne.Timeout():
		return rejectTimeout, fasthttp.StatusRequestTimeout
	}
	return rejectMalformed, fasthttp.StatusBadRequest
}

// ErrorHandler answers a request fasthttp could not read (a malformed or
// ambiguous header block such as two Content-Length fields, a header block
// over the read buffer, a body over the limit, a timeout) with 400, 431,
// 413 or 408, counts it, and logs its reason and sizes.
func (e *HTTPErrors) ErrorHandler(ctx *fasthttp.RequestCtx, err error) {
	reason, status := classify(err)
	e.rejected[reason].Inc()
	ctx.Error(fasthttp.StatusMessage(status), status)
	ok, suppressed := e.throttle[reason].allow(time.Now())
	if !ok {
		return
	}
	attrs := []any{"reason", reason, "status", status}
	if n, ok := headerBytes(err); ok {
		attrs = append(attrs, "header_bytes", n)
	}
	if reason == rejectTooLarge {
		attrs = append(attrs, "content_length", ctx.Request.Header.ContentLength())
	}
	if suppressed > 0 {
		attrs = append(attrs, "suppressed", suppressed)
	}
	e.log.Warn("rejected a request the HTTP server could not read", attrs...)
}

// headerBytes finds in fasthttp's error the size of the header block it
// had read ("buffer size=312" or "reader buffered=4096"): digits only.
func headerBytes(err error) (int, bool) {
	s := err.Error()
	for _, key := range [...]string{"buffer size=", "reader buffered="} {
		i := strings.Index(s, key)
		if i < 0 {
			continue
		}
		s = s[i+len(key):]
		j := 0
		for j < len(s) && j < 10 && s[j] >= '0' && s[j] <= '9' {
			j++
		}
		n, err := strconv.Atoi(s[:j])
		return n, err == nil
	}
	return 0, false
}

// Printf implements fasthttp.Logger. It keeps fasthttp's format and its
// numbers; an error becomes its reason, and every other argument (an
// address, a request's text) becomes "[redacted]". A request error was
// logged by ErrorHandler already, so its line is repeated at debug only.
func (e *HTTPErrors) Printf(format string, args ...any) {
	level := slog.LevelWarn
	safe := make([]any, len(args))
	for i, a := range args {
		switch v := a.(type) {
		case error:
			var desc string
			desc, level = describe(v)
			safe[i] = desc
		case int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64, float32, float64, time.Duration:
			safe[i] = v
		default:
			safe[i] = "[redacted]"
		}
	}
	e.log.Log(context.Background(), level, fmt.Sprintf(format, safe...))
}

// describe names err without its text: the network operation and errno of
// a connection error, or the reason of a request error.
func describe(err error) (string, slog.Level) {
	var op *net.OpError
	if errors.As(err, &op) && !op.Timeout() {
		desc := "network error: " + op.Op
		var errno syscall.Errno
		if errors.As(err, &errno) {
			desc += ": " + errno.Error()
		}
		return desc, slog.LevelWarn
	}
	reason, _ := classify(err)
	return reason, slog.LevelDebug
}

// logThrottle lets through one log line per logEvery and counts the rest.
type logThrottle struct {
	next       atomic.Int64 // unix nanoseconds
	suppressed atomic.Uint64
}

// logEvery is how often a reason is logged: a client sending bad requests
// in a loop must not fill the disk. The counters see every request.
const logEvery = 10 * time.Second

func (t *logThrottle) allow(now time.Time) (bool, uint64) {
	n, next := now.UnixNano(), t.next.Load()
	if n < next || !t.next.CompareAndSwap(next, n+int64(logEvery)) {
		t.suppressed.Add(1)
		return false, 0
	}
	return true, t.suppressed.Swap(0)
}
