//go:build benchfloor && !race

package collector

import (
	"context"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/glimpse-analytics/glimpse/internal/apptest"
)

// TestBenchFloor checks where each floor stops the ingest path, on a
// writer that is closed: an event that reaches the queue is answered 503
// (shutting-down), one that stops before it 202.
func TestBenchFloor(t *testing.T) {
	defer func(f int) { benchFloor = f }(benchFloor)
	body := `{"n":"pageview","u":"https://example.com/a","d":"example.com"}`
	tests := []struct {
		stage    string
		status   int
		sessions int // sessions touched: only the whole path goes that far
	}{
		{"gate", fasthttp.StatusAccepted, 0},
		{"handoff", fasthttp.StatusServiceUnavailable, 0},
		{"", fasthttp.StatusServiceUnavailable, 1},
	}
	for _, tt := range tests {
		t.Run("stage="+tt.stage, func(t *testing.T) {
			benchFloor = floorStage(tt.stage)
			s := newAllocServer(t, apptest.SitesYAML)
			s.writer.Close(context.Background())
			ctx := newEventCtx(body, allocUA, "203.0.113.7")
			s.serveEvent(ctx)
			if got := ctx.Response.StatusCode(); got != tt.status {
				t.Errorf("status %d, want %d (dropped %q)", got, tt.status, ctx.Response.Header.Peek("X-Glimpse-Dropped"))
			}
			if got := s.sessions.Len(); got != tt.sessions {
				t.Errorf("%d sessions, want %d", got, tt.sessions)
			}
			// A bot is still dropped before any floor.
			bot := newEventCtx(body, "Googlebot/2.1 (+http://www.google.com/bot.html)", "203.0.113.8")
			s.serveEvent(bot)
			if got := string(bot.Response.Header.Peek("X-Glimpse-Dropped")); got != dropBot {
				t.Errorf("bot: dropped %q, want %q", got, dropBot)
			}
		})
	}
}
