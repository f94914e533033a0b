package email

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/cespare/xxhash/v2"
)

// OptOutTable is the ClickHouse table of opted-out recipients
// (migrations/0005_email_optouts.sql).
const OptOutTable = "email_optouts"

// DefaultOptOutRefresh is how often OptOuts.Run reloads the table, so that
// opt-outs taken by other collector instances apply here too.
const DefaultOptOutRefresh = time.Minute

// OptOuts is the set of opted-out recipient pseudonyms per site: the
// ClickHouse table, mirrored in memory. The mirror keeps a 64-bit hash of
// (site, pseudonym), 8 bytes an entry, so a million opt-outs cost a few
// tens of MiB; a collision would only stop tracking one more recipient.
type OptOuts struct {
	conn driver.Conn
	log  *slog.Logger

	mu  sync.RWMutex
	set map[uint64]struct{}
}

// NewOptOuts returns an empty set backed by conn; call Load before use.
func NewOptOuts(conn driver.Conn, log *slog.Logger) *OptOuts {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &OptOuts{conn: conn, log: log.With("component", "email-optouts"), set: map[uint64]struct{}{}}
}

func optOutKey(site, recipient string) uint64 {
	var d xxhash.Digest
	d.Reset()
	_, _ = d.WriteString(site)
	_, _ = d.Write([]byte{0})
	_, _ = d.WriteString(recipient)
	return d.Sum64()
}

// Has reports whether recipient opted out of tracking on site.
func (o *OptOuts) Has(site, recipient string) bool {
	if recipient == "" {
		return false
	}
	k := optOutKey(site, recipient)
	o.mu.RLock()
	_, ok := o.set[k]
	o.mu.RUnlock()
	return ok
}

// Load replaces the in-memory set with the table's content.
func (o *OptOuts) Load(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	rows, err := o.conn.Query(ctx, "SELECT site_id, recipient FROM "+OptOutTable+" GROUP BY site_id, recipient")
	if err != nil {
		return fmt.Errorf("cannot load email opt-outs from %s: %w", OptOutTable, err)
	}
	defer rows.Close()
	set := make(map[uint64]struct{}, len(o.set))
	for rows.Next() {
		var site, rec string
		if err := rows.Scan(&site, &rec); err != nil {
			return fmt.Errorf("cannot read email opt-outs: %w", err)
		}
		set[optOutKey(site, rec)] = struct{}{}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("cannot read email opt-outs: %w", err)
	}
	o.mu.Lock()
	// Keep what was added here since the query started, in case its
	// insert is not visible yet.
	for k := range o.set {
		set[k] = struct{}{}
	}
	o.set = set
	o.mu.Unlock()
	return nil
}

// Add records an opt-out in the table and in memory.
func (o *OptOuts) Add(ctx context.Context, site, recipient string, now time.Time) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	// INSERT ... SELECT with bound values: INSERT ... VALUES hangs on
	// ClickHouse 18.16 through clickhouse-go (CLICKHOUSE.md). Opt-outs are
	// rare, so one row per insert is fine here.
	err := o.conn.Exec(ctx, "INSERT INTO "+OptOutTable+" (site_id, recipient, ts) SELECT ?, ?, toDateTime(?)",
		site, recipient, now.Unix())
	if err != nil {
		return fmt.Errorf("cannot insert into %s: %w", OptOutTable, err)
	}
	o.mu.Lock()
	o.set[optOutKey(site, recipient)] = struct{}{}
	o.mu.Unlock()
	return nil
}

// Run reloads the set every interval (DefaultOptOutRefresh when <= 0)
// until ctx ends; a failed reload keeps the previous set.
func (o *OptOuts) Run(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		interval = DefaultOptOutRefresh
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := o.Load(ctx); err != nil && ctx.Err() == nil {
				o.log.Warn("email opt-out refresh failed; keeping the previous set", "err", err)
			}
		}
	}
}
