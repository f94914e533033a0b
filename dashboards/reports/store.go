package reports

import (
	"context"
	"fmt"
	"time"

	"github.com/glimpse-analytics/glimpse/internal/chconn"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// Tables (migrations/0014_report_log.sql). Recipients are stored as their
// keyed hash only.
const (
	SendsTable        = "report_sends"
	UnsubscribesTable = "report_unsubscribes"
)

// store records what was sent and who unsubscribed. Rows are few (one per
// message), so each is its own insert.
type store struct {
	conn    driver.Conn
	cluster string // Options.Cluster
	timeout time.Duration
}

func (s *store) ctx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.timeout)
}

// insert runs an INSERT ... SELECT whose row is read back at once (the
// next report's check), on a cluster through any host (chconn.Store.Sync).
func (s *store) insert(ctx context.Context, table, q string, args ...any) error {
	ctx, err := chconn.Store{Conn: s.conn, Cluster: s.cluster}.Sync(ctx)
	if err == nil {
		err = s.conn.Exec(ctx, q, args...)
	}
	if err != nil {
		return fmt.Errorf("cannot insert into %s: %w", table, err)
	}
	return nil
}

// unsubscribed reports whether recipient unsubscribed from kind on site.
func (s *store) unsubscribed(ctx context.Context, site, kind, recipient string) (bool, error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	var n uint64
	if err := s.conn.QueryRow(ctx, "SELECT count() FROM "+UnsubscribesTable+" WHERE site_id = ? AND kind = ? AND recipient = ?",
		site, kind, recipient).Scan(&n); err != nil {
		return false, fmt.Errorf("cannot read %s: %w", UnsubscribesTable, err)
	}
	return n > 0, nil
}

// unsubscribe records that recipient unsubscribed from kind on site.
func (s *store) unsubscribe(ctx context.Context, site, kind, recipient string, now time.Time) error {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	// INSERT ... SELECT: INSERT ... VALUES hangs on ClickHouse 18.16
	// through clickhouse-go (CLICKHOUSE.md).
	return s.insert(ctx, UnsubscribesTable, "INSERT INTO "+UnsubscribesTable+" (site_id, recipient, kind, ts) SELECT ?, ?, ?, toDateTime(?)",
		site, recipient, kind, now.Unix())
}

// lastSent is when kind was last sent to recipient on site (for period
// when period is not empty), or the zero time.
func (s *store) lastSent(ctx context.Context, site, kind, recipient, period string) (time.Time, error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	q := "SELECT count(), max(ts) FROM " + SendsTable + " WHERE site_id = ? AND kind = ? AND recipient = ?"
	args := []any{site, kind, recipient}
	if period != "" {
		q += " AND period = ?"
		args = append(args, period)
	}
	var n uint64
	var ts time.Time
	if err := s.conn.QueryRow(ctx, q, args...).Scan(&n, &ts); err != nil {
		return time.Time{}, fmt.Errorf("cannot read %s: %w", SendsTable, err)
	}
	if n == 0 {
		return time.Time{}, nil
	}
	return ts, nil
}

// recordSent records that kind for period was sent to recipient on site.
func (s *store) recordSent(ctx context.Context, site, kind, recipient, period string, now time.Time) error {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	return s.insert(ctx, SendsTable, "INSERT INTO "+SendsTable+" (site_id, recipient, kind, period, ts) SELECT ?, ?, ?, ?, toDateTime(?)",
		site, recipient, kind, period, now.Unix())
}
