package subject

import (
	"context"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/glimpse-analytics/glimpse/internal/chconn"
)

// Rebuild rebuilds the rollups of site in the given hours (Unix seconds)
// of events and of sessions from every raw row, as an erasure does
// without rows to leave out.
func Rebuild(ctx context.Context, conn driver.Conn, site string, eventHours, sessionHours []uint32) error {
	return rebuild(ctx, chconn.Store{Conn: conn}, time.Minute, site, map[string][]uint32{"events": eventHours, "sessions": sessionHours}, nil)
}

// Rollups are the tables an erasure rebuilds, by the raw table they are
// computed from.
func Rollups() map[string]string {
	out := map[string]string{}
	for _, r := range rollups {
		out[r.table] = r.raw
	}
	return out
}
