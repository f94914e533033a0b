package identity

// The shared salt store: the sealed_salts table (0009_sealed_salts.sql)
// through ClickHouse, for serve --shared-salts, so that a visitor gets
// the same id whichever instance answers.
//
// Each instance proposes a random candidate for a day; the earliest row
// stored for the day wins, and every instance reads the winner. Salts.Run
// fetches a day's salt about a day ahead, so instances agree long before
// midnight. Rows are deleted 48 hours after their day began (PruneStore).
//
// Salts are sealed under the collectors' SaltKey before they leave the
// process, and travel as a column of a native INSERT block, never in the
// text of a query: ClickHouse logs query texts (system.query_log, on by
// default in current releases, and its server log on errors), and a salt
// there would be a salt at rest in clear. No query of this file holds
// more than a date.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/glimpse-analytics/glimpse/internal/chconn"
)

// StoreKeep is how long a day's salt stays in the table after the day began.
const StoreKeep = 48 * time.Hour

// ClickHouseStore returns a Store backed by the sealed_salts table: salts
// sealed under key. Rows that do not open under key (sealed under another
// key, or tampered with) are skipped, and counted in a warning on log
// (nil: discard): after the key changes, the collectors agree on a new
// salt for the day, sealed under the new key.
func ClickHouseStore(conn driver.Conn, key *SaltKey, log *slog.Logger) *Store {
	return ClickHouseStoreOn(chconn.Store{Conn: conn}, key, log)
}

// ClickHouseStoreOn is ClickHouseStore on a database that may be a
// cluster's (s.Cluster).
func ClickHouseStoreOn(s chconn.Store, key *SaltKey, log *slog.Logger) *Store {
	conn := s.Conn
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Store{Load: func(ctx context.Context, day time.Time) ([]byte, error) {
		return loadSealed(ctx, conn, key, day.UTC(), log)
	}, LoadOrStore: func(ctx context.Context, day time.Time, candidate []byte) ([]byte, error) {
		day = day.UTC()
		if salt, err := loadSealed(ctx, conn, key, day, log); err != nil || salt != nil {
			return salt, err
		}
		if err := storeSealed(ctx, s, day, key.Seal(day, candidate)); err != nil {
			return nil, err
		}
		salt, err := loadSealed(ctx, conn, key, day, log)
		// On a cluster the read may ask the shard's other replica,
		// which fetches the new part moments later: ask again a while.
		for wait := 10 * time.Millisecond; err == nil && salt == nil && s.Cluster != "" && wait < 5*time.Second; wait *= 2 {
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(wait):
			}
			salt, err = loadSealed(ctx, conn, key, day, log)
		}
		if err == nil && salt == nil {
			err = errors.New("the salt just stored cannot be read back")
		}
		return salt, err
	}}
}

// storeSealed inserts a sealed candidate for day. The bytes go in a
// native block; the server fills created (DEFAULT now()), so that every
// instance orders candidates by one clock.
func storeSealed(ctx context.Context, s chconn.Store, day time.Time, sealed []byte) error {
	// On a cluster the candidate is on its shard when the INSERT returns,
	// to be read back at once. Not with a quorum (chconn.Store.Sync):
	// ReplicatedMergeTree never mutates the last part inserted with one,
	// so the prune's DELETE would wait for ever. A collector that reads
	// through a replica not yet holding another's earlier candidate
	// stores its own; all agree on the earliest once both are replicated
	// (moments later), as when two collectors store at once.
	ictx := clickhouse.Context(ctx, clickhouse.WithSettings(clickhouse.Settings{"insert_distributed_sync": 1}))
	b, err := s.Conn.PrepareBatch(ictx, "INSERT INTO sealed_salts (day, sealed)")
	if err != nil {
		return fmt.Errorf("cannot store a salt candidate: %w", err)
	}
	if err := b.Append(day, sealed); err != nil {
		_ = b.Abort()
		return fmt.Errorf("cannot store a salt candidate: %w", err)
	}
	if err := b.Send(); err != nil {
		return fmt.Errorf("cannot store a salt candidate: %w", err)
	}
	return nil
}

// loadSealed returns the winning salt for day: the earliest row that
// opens under key, or nil if none does yet.
func loadSealed(ctx context.Context, conn driver.Conn, key *SaltKey, day time.Time, log *slog.Logger) ([]byte, error) {
	date := day.Format(time.DateOnly)
	rows, err := conn.Query(ctx, "SELECT sealed FROM sealed_salts WHERE day = toDate(?) ORDER BY created, sealed", date)
	if err != nil {
		return nil, fmt.Errorf("cannot read the shared salt: %w", err)
	}
	defer rows.Close()
	skipped := 0
	var salt []byte
	for salt == nil && rows.Next() {
		var sealed []byte
		if err := rows.Scan(&sealed); err != nil {
			return nil, fmt.Errorf("cannot read the shared salt: %w", err)
		}
		if salt, err = key.Open(day, sealed); err != nil {
			skipped++
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("cannot read the shared salt: %w", err)
	}
	if skipped > 0 {
		log.Warn("skipped shared salts that do not open under this collector's salt key; was the key changed, or is it not the same on every collector?",
			"day", date, "rows", skipped)
	}
	return salt, nil
}

// PruneStore deletes the salts of days that began StoreKeep or more before
// now (on a cluster from every shard, chconn.Store), and waits until
// ClickHouse has rewritten the parts that held them.
func PruneStore(ctx context.Context, s chconn.Store, now time.Time) error {
	// The first day kept: the one after the day StoreKeep ago.
	cutoff := now.UTC().Add(-StoreKeep).Truncate(24*time.Hour).AddDate(0, 0, 1).Format(time.DateOnly)
	var n uint64
	if err := s.Conn.QueryRow(ctx, "SELECT count() FROM sealed_salts WHERE day < toDate(?)", cutoff).Scan(&n); err != nil {
		return fmt.Errorf("cannot count expired salts: %w", err)
	}
	if n == 0 {
		return nil
	}
	if err := s.Alter(ctx, "sealed_salts", "DELETE WHERE day < toDate(?)", cutoff); err != nil {
		return fmt.Errorf("cannot delete expired salts: %w", err)
	}
	// ctx bounds the wait.
	if err := s.WaitMutations(ctx, "sealed_salts", 24*time.Hour); err != nil {
		return fmt.Errorf("expired salts not yet deleted: %w", err)
	}
	return nil
}

// RunStorePrune prunes expired salts every hour until ctx ends.
func RunStorePrune(ctx context.Context, s chconn.Store, now func() time.Time, onErr func(error)) {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		pctx, cancel := context.WithTimeout(ctx, time.Minute)
		if err := PruneStore(pctx, s, now()); err != nil && ctx.Err() == nil {
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
