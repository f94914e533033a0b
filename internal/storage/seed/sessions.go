package seed

import (
	"context"
	"sync"
	"time"

	"github.com/glimpse-analytics/glimpse/internal/model"
)

// SessionBuffer is a model.SessionSource for sessions that do not come from a
// session cache, such as generated demo data: Add queues a change, and the
// writer takes what is queued on its next drain. The zero value holds up
// to DefaultSessionBufferLimit changes.
type SessionBuffer struct {
	// Limit bounds the queued changes; Add waits while it is reached.
	Limit   int
	mu      sync.Mutex
	pending []sessionChange
}

// DefaultSessionBufferLimit is SessionBuffer's limit when Limit is 0.
const DefaultSessionBufferLimit = 100_000

type sessionChange struct {
	prev, cur model.Session
	hadPrev   bool
}

// Add queues a change of a session: cur, replacing prev when hadPrev (see
// the writer's WriteSessions). It waits while the buffer is full, polling
// every few milliseconds, until the writer drains it or ctx ends.
func (b *SessionBuffer) Add(ctx context.Context, prev, cur model.Session, hadPrev bool) error {
	limit := b.Limit
	if limit <= 0 {
		limit = DefaultSessionBufferLimit
	}
	for {
		b.mu.Lock()
		if len(b.pending) < limit {
			b.pending = append(b.pending, sessionChange{prev, cur, hadPrev})
			b.mu.Unlock()
			return nil
		}
		b.mu.Unlock()
		t := time.NewTimer(2 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// Drain implements SessionSource.
func (b *SessionBuffer) Drain(emit model.Emit, pause func()) int {
	b.mu.Lock()
	taken := b.pending
	b.pending = nil
	b.mu.Unlock()
	for i := range taken {
		c := &taken[i]
		emit(&c.prev, &c.cur, c.hadPrev)
		if i%1024 == 1023 && pause != nil {
			pause()
		}
	}
	return len(taken)
}
