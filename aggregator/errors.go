package aggregator

import (
	"fmt"
	"time"
)

// Error is a request error the Stats API answers with its Status and
// Message, as {"error": Message}.
type Error struct {
	Status  int
	Message string
	// RetryAt, if set, is when the request may succeed (an exhausted
	// privacy budget: the next UTC day).
	RetryAt time.Time
}

func (e *Error) Error() string { return e.Message }

func badRequest(format string, args ...any) error {
	return &Error{Status: 400, Message: fmt.Sprintf(format, args...)}
}
