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

// OptOutTable is the ClickHouse table of recipients' opt-outs and
// opt-ins (migrations/0005_email_optouts.sql, 0010_email_optout_state.sql).
const OptOutTable = "email_optouts"

// DefaultOptOutRefresh is how often OptOuts.Run reloads the table, so that
// opt-outs taken by other collector instances apply here too.
const DefaultOptOutRefresh = time.Minute

// OptOuts is the set of opted-out recipient pseudonyms per site: the
// ClickHouse table, mirrored in memory. The table holds every change of a
// recipient's state (opt-out or opt-in), never updated or deleted; the
// latest by seq is the state. The mirror keeps a 64-bit hash of (site,
// pseudonym), 8 bytes an entry, so a million opt-outs cost a few tens of
// MiB; a collision would only stop tracking one more recipient.
type OptOuts struct {
	conn driver.Conn
	log  *slog.Logger

	mu  sync.RWMutex
	set map[uint64]struct{}
	// local holds the changes made here that a Load has not yet seen in
	// the table (an insert may become visible later, through a
	// Distributed table, than it returns); Load applies them over what
	// it read until the table has them or a later change.
	local   map[uint64]change
	lastSeq uint64
}

// change is one change of a recipient's state made on this collector.
type change struct {
	out bool
	seq uint64
}

// NewOptOuts returns an empty set backed by conn; call Load before use.
func NewOptOuts(conn driver.Conn, log *slog.Logger) *OptOuts {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &OptOuts{conn: conn, log: log.With("component", "email-optouts"), set: map[uint64]struct{}{}, local: map[uint64]change{}}
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

// Load replaces the in-memory set with each recipient's latest state in
// the table, then applies the changes made here that the table does not
// show yet. An entry the table no longer has, because the recipient
// opted back in on any collector, is gone after Load.
func (o *OptOuts) Load(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	rows, err := o.conn.Query(ctx, "SELECT site_id, recipient, argMax(opted_out, seq), max(seq) FROM "+OptOutTable+
		" GROUP BY site_id, recipient")
	if err != nil {
		return fmt.Errorf("cannot load email opt-outs from %s: %w", OptOutTable, err)
	}
	defer rows.Close()
	// The keys changed here so far, and the table's latest seq of each:
	// a change made during the query is applied below in any case.
	o.mu.RLock()
	set := make(map[uint64]struct{}, len(o.set))
	seen := make(map[uint64]uint64, len(o.local))
	pending := make(map[uint64]bool, len(o.local))
	for k := range o.local {
		pending[k] = true
	}
	o.mu.RUnlock()
	for rows.Next() {
		var site, rec string
		var out uint8
		var seq uint64
		if err := rows.Scan(&site, &rec, &out, &seq); err != nil {
			return fmt.Errorf("cannot read email opt-outs: %w", err)
		}
		k := optOutKey(site, rec)
		if out == 1 {
			set[k] = struct{}{}
		}
		if pending[k] {
			seen[k] = seq
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("cannot read email opt-outs: %w", err)
	}
	o.mu.Lock()
	for k, c := range o.local {
		if s, ok := seen[k]; ok && s >= c.seq {
			delete(o.local, k) // the table has it, or a later change
			continue
		}
		apply(set, k, c.out)
	}
	o.set = set
	o.mu.Unlock()
	return nil
}

func apply(set map[uint64]struct{}, k uint64, out bool) {
	if out {
		set[k] = struct{}{}
	} else {
		delete(set, k)
	}
}

// Set records that recipient opted out of tracking on site (out) or back
// in, in the table and in memory. now orders the change: its Unix
// nanoseconds, made larger than this collector's previous change.
func (o *OptOuts) Set(ctx context.Context, site, recipient string, out bool, now time.Time) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	o.mu.Lock()
	seq := max(uint64(now.UnixNano()), o.lastSeq+1)
	o.lastSeq = seq
	o.mu.Unlock()
	var state uint8
	if out {
		state = 1
	}
	// INSERT ... SELECT with bound values: INSERT ... VALUES hangs on
	// ClickHouse 18.16 through clickhouse-go (CLICKHOUSE.md). Changes are
	// rare, so one row per insert is fine here.
	err := o.conn.Exec(ctx, "INSERT INTO "+OptOutTable+" (site_id, recipient, ts, opted_out, seq) SELECT ?, ?, toDateTime(?), ?, ?",
		site, recipient, now.Unix(), state, seq)
	if err != nil {
		return fmt.Errorf("cannot insert into %s: %w", OptOutTable, err)
	}
	k := optOutKey(site, recipient)
	o.mu.Lock()
	defer o.mu.Unlock()
	if c, ok := o.local[k]; ok && c.seq > seq {
		return nil // a later change of the same recipient was recorded first
	}
	o.local[k] = change{out: out, seq: seq}
	apply(o.set, k, out)
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
