package identity

// The shared salt store: the salts table (0006_salts.sql) through
// ClickHouse, for serve --shared-salts, so that a visitor gets the same
// id whichever instance answers.
//
// Each instance proposes a random candidate for a day; the earliest row
// stored for the day wins, and every instance reads the winner. Salts.Run
// fetches a day's salt about a day ahead, so instances agree long before
// midnight. Rows are deleted 48 hours after their day began (PruneStore):
// a salt is at rest only while it can still continue a session.

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// StoreKeep is how long a day's salt stays in the table after the day began.
const StoreKeep = 48 * time.Hour

// ClickHouseStore returns a Store backed by the salts table (0006_salts.sql).
func ClickHouseStore(conn driver.Conn) *Store {
	return &Store{LoadOrStore: func(ctx context.Context, day time.Time, candidate []byte) ([]byte, error) {
		if salt, err := loadStored(ctx, conn, day); err != nil || salt != nil {
			return salt, err
		}
		// INSERT ... VALUES hangs on 18.16 through clickhouse-go; INSERT ... SELECT works.
		if err := conn.Exec(ctx, "INSERT INTO salts (day, salt, created) SELECT toDate(?), ?, now()",
			day.UTC().Format(time.DateOnly), string(candidate)); err != nil {
			return nil, fmt.Errorf("cannot store a salt candidate: %w", err)
		}
		salt, err := loadStored(ctx, conn, day)
		if err == nil && salt == nil {
			err = errors.New("the salt just stored cannot be read back")
		}
		return salt, err
	}}
}

// loadStored returns the winning salt for day, or nil if the day has none yet.
func loadStored(ctx context.Context, conn driver.Conn, day time.Time) ([]byte, error) {
	rows, err := conn.Query(ctx, "SELECT salt FROM salts WHERE day = toDate(?) ORDER BY created, salt LIMIT 1",
		day.UTC().Format(time.DateOnly))
	if err != nil {
		return nil, fmt.Errorf("cannot read the shared salt: %w", err)
	}
	defer rows.Close()
	if !rows.Next() {
		return nil, rows.Err()
	}
	var salt string
	if err := rows.Scan(&salt); err != nil {
		return nil, fmt.Errorf("cannot read the shared salt: %w", err)
	}
	return []byte(salt), nil
}

// PruneStore deletes the salts of days that began StoreKeep or more before
// now, and waits until ClickHouse has rewritten the parts that held them.
func PruneStore(ctx context.Context, conn driver.Conn, now time.Time) error {
	// The first day kept: the one after the day StoreKeep ago.
	cutoff := now.UTC().Add(-StoreKeep).Truncate(24*time.Hour).AddDate(0, 0, 1).Format(time.DateOnly)
	var n uint64
	if err := conn.QueryRow(ctx, "SELECT count() FROM salts WHERE day < toDate(?)", cutoff).Scan(&n); err != nil {
		return fmt.Errorf("cannot count expired salts: %w", err)
	}
	if n == 0 {
		return nil
	}
	if err := conn.Exec(ctx, "ALTER TABLE salts DELETE WHERE day < toDate(?)", cutoff); err != nil {
		return fmt.Errorf("cannot delete expired salts: %w", err)
	}
	for {
		var pending uint64
		err := conn.QueryRow(ctx, "SELECT count() FROM system.mutations WHERE database = currentDatabase() AND table = 'salts' AND is_done = 0").
			Scan(&pending)
		if err != nil {
			return fmt.Errorf("cannot read system.mutations: %w", err)
		}
		if pending == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("expired salts not yet deleted: %w", ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// RunStorePrune prunes expired salts every hour until ctx ends.
func RunStorePrune(ctx context.Context, conn driver.Conn, now func() time.Time, onErr func(error)) {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		pctx, cancel := context.WithTimeout(ctx, time.Minute)
		if err := PruneStore(pctx, conn, now()); err != nil && ctx.Err() == nil {
			onErr(err)
		}
		cancel()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
