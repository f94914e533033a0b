package collector

import (
	"fmt"
	"log/slog"
	"regexp"
)

// HTTPLogger adapts slog to fasthttp's Logger. fasthttp's connection errors
// name the peer address ("127.0.0.1:53824"); the privacy model forbids a
// client IP in a log line, so every address is replaced before logging.
type HTTPLogger struct{ Log *slog.Logger }

// addrPattern matches IPv4 and IPv6 addresses, with or without a port.
var addrPattern = regexp.MustCompile(`\[?[0-9a-fA-F]*:[0-9a-fA-F:.]*:[0-9a-fA-F:.]*\]?(:\d+)?|\d{1,3}(\.\d{1,3}){3}(:\d+)?`)

// Printf implements fasthttp.Logger.
func (l HTTPLogger) Printf(format string, args ...any) {
	msg := addrPattern.ReplaceAllString(fmt.Sprintf(format, args...), "[addr]")
	l.Log.Warn(msg, "component", "http")
}
