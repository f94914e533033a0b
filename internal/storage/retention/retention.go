// Package retention forgets on schedule: it drops the monthly partitions
// of the raw tables (events, sessions) once every site in them is past its
// retention_months, deletes one site's rows from a partition with a
// ClickHouse mutation when the partition still holds other sites' rows,
// and drops rollup partitions past the rollups' own (longer) retention.
//
// A month is past a retention of R months when it ended more than R
// months ago, counted in whole months in UTC: with R = 25, on any day of
// March 2026 the months up to January 2024 go. Rows thus live at least R
// and at most R+1 months. On a cluster (Options.Cluster) partitions are
// listed on every shard and dropped, and rows deleted, in the *_local
// tables of each shard (chconn.Store).
package retention

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/glimpse-analytics/glimpse/internal/chconn"
	"github.com/glimpse-analytics/glimpse/internal/config"
)

// Table is a time-partitioned table: PARTITION BY toYYYYMM(TimeCol).
type Table struct {
	Name    string
	TimeCol string
}

// RawTables hold per-visitor rows and follow each site's retention.
var RawTables = []Table{{"events", "ts"}, {"sessions", "start"}}

// RollupTables hold only aggregates and follow Options.RollupMonths.
var RollupTables = []Table{{"events_hourly", "hour"}, {"pages_hourly", "hour"}, {"sessions_hourly", "hour"}, {"sessions_dims_hourly", "hour"}}

// DefaultRollupMonths is the rollups' retention unless configured.
const DefaultRollupMonths = 60

// Options configure a prune.
type Options struct {
	Conn driver.Conn
	// Cluster is the cluster the database was migrated for (--cluster);
	// empty: one server. Dial connects to its hosts (chconn.Store).
	Cluster string
	Dial    func(ctx context.Context, addr string) (driver.Conn, error)
	Sites   *config.File
	// RollupMonths is the retention of the hourly rollups (default
	// DefaultRollupMonths; negative: kept for ever).
	RollupMonths int
	// OtherMonths applies to rows of sites no longer in the sites file
	// (default config.DefaultRetentionMonths).
	OtherMonths int
	// MutationTimeout bounds the wait for one delete mutation (default 30 min).
	MutationTimeout time.Duration
	Now             func() time.Time
	Log             *slog.Logger
}

func (o *Options) defaults() {
	if o.RollupMonths == 0 {
		o.RollupMonths = DefaultRollupMonths
	}
	if o.OtherMonths <= 0 {
		o.OtherMonths = config.DefaultRetentionMonths
	}
	if o.MutationTimeout <= 0 {
		o.MutationTimeout = 30 * time.Minute
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
}

// Action is one step of a prune.
type Action struct {
	Table     string
	Partition uint32   // YYYYMM
	Drop      bool     // drop the whole partition; otherwise delete Sites' rows from it
	Sites     []string // sites whose rows go (empty for a rollup partition)
	Rows      uint64   // rows that go
}

func (a Action) String() string {
	if a.Drop {
		return fmt.Sprintf("drop partition %d of %s (%d rows)", a.Partition, a.Table, a.Rows)
	}
	return fmt.Sprintf("delete %d rows of %s from partition %d of %s", a.Rows, strings.Join(a.Sites, ", "), a.Partition, a.Table)
}

func (o *Options) store() chconn.Store {
	return chconn.Store{Conn: o.Conn, Cluster: o.Cluster, Dial: o.Dial}
}

func monthIndex(yyyymm uint32) int { return int(yyyymm/100)*12 + int(yyyymm%100) - 1 }

// expired reports whether partition p is past a retention of months.
func expired(p uint32, now time.Time, months int) bool {
	n := now.UTC()
	return monthIndex(p) < n.Year()*12+int(n.Month())-1-months
}

// Plan lists what a prune would do now.
func Plan(ctx context.Context, o Options) ([]Action, error) {
	o.defaults()
	now := o.Now()
	retention := map[string]int{}
	for _, s := range o.Sites.Sites {
		retention[s.Domain] = s.Privacy.RetentionMonths
	}
	months := func(site string) int {
		if m, ok := retention[site]; ok && m > 0 {
			return m
		}
		return o.OtherMonths
	}
	shortest := o.OtherMonths
	for _, m := range retention {
		shortest = min(shortest, m)
	}
	var plan []Action
	for _, t := range RawTables {
		parts, err := partitions(ctx, o.store(), t.Name)
		if err != nil {
			return nil, err
		}
		for _, p := range parts {
			if !expired(p, now, shortest) {
				continue
			}
			counts, err := siteRows(ctx, o.Conn, t, p)
			if err != nil {
				return nil, err
			}
			var gone []string
			var rows, total uint64
			for _, c := range counts {
				total += c.rows
				if expired(p, now, months(c.site)) {
					gone = append(gone, c.site)
					rows += c.rows
				}
			}
			switch {
			case len(gone) == 0:
			case len(gone) == len(counts):
				plan = append(plan, Action{Table: t.Name, Partition: p, Drop: true, Sites: gone, Rows: total})
			default:
				plan = append(plan, Action{Table: t.Name, Partition: p, Sites: gone, Rows: rows})
			}
		}
	}
	if o.RollupMonths > 0 {
		for _, t := range RollupTables {
			parts, err := partitions(ctx, o.store(), t.Name)
			if err != nil {
				return nil, err
			}
			for _, p := range parts {
				if expired(p, now, o.RollupMonths) {
					n, err := partitionRows(ctx, o.store(), t.Name, p)
					if err != nil {
						return nil, err
					}
					plan = append(plan, Action{Table: t.Name, Partition: p, Drop: true, Rows: n})
				}
			}
		}
	}
	return plan, nil
}

// Run plans and carries the plan out; it returns what it did.
func Run(ctx context.Context, o Options) ([]Action, error) {
	o.defaults()
	plan, err := Plan(ctx, o)
	if err != nil {
		return nil, err
	}
	for i, a := range plan {
		if err := apply(ctx, o, a); err != nil {
			return plan[:i], err
		}
		o.Log.Info("retention: "+a.String(), "table", a.Table, "partition", a.Partition, "rows", a.Rows)
	}
	return plan, nil
}

func apply(ctx context.Context, o Options, a Action) error {
	if a.Drop {
		// Unquoted: ClickHouse 18.16 takes a toYYYYMM partition as a number.
		if err := o.store().Alter(ctx, a.Table, fmt.Sprintf("DROP PARTITION %d", a.Partition)); err != nil {
			return fmt.Errorf("cannot drop partition %d of %s: %w", a.Partition, a.Table, err)
		}
		return nil
	}
	col := ""
	for _, t := range RawTables {
		if t.Name == a.Table {
			col = t.TimeCol
		}
	}
	return DeleteWait(ctx, o.store(), a.Table, fmt.Sprintf("has(?, site_id) AND toYYYYMM(%s) = %d", col, a.Partition), o.MutationTimeout, a.Sites)
}

// DeleteWait runs ALTER TABLE table DELETE WHERE where (with args bound
// client-side; on a cluster ON CLUSTER in every shard's table_local) and
// waits until system.mutations reports every mutation of the table done,
// or timeout passes.
func DeleteWait(ctx context.Context, s chconn.Store, table, where string, timeout time.Duration, args ...any) error {
	if err := s.Alter(ctx, table, "DELETE WHERE "+where, args...); err != nil {
		return fmt.Errorf("cannot delete from %s: %w", table, err)
	}
	return s.WaitMutations(ctx, table, timeout)
}

// partitions lists a table's active partitions, ascending (on a cluster,
// those of any shard).
func partitions(ctx context.Context, s chconn.Store, table string) ([]uint32, error) {
	db, err := s.Database(ctx)
	if err != nil {
		return nil, err
	}
	rows, err := s.Conn.Query(ctx, "SELECT DISTINCT partition FROM "+s.System("parts")+" WHERE database = ? AND table = ? AND active", db, s.Storage(table))
	if err != nil {
		return nil, fmt.Errorf("cannot list partitions of %s: %w", table, err)
	}
	defer rows.Close()
	var out []uint32
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		p, err := strconv.ParseUint(strings.Trim(s, "'"), 10, 32)
		if err != nil {
			return nil, fmt.Errorf("partition %q of %s is not YYYYMM", s, table)
		}
		out = append(out, uint32(p))
	}
	slices.Sort(out)
	return out, rows.Err()
}

type siteCount struct {
	site string
	rows uint64
}

func siteRows(ctx context.Context, conn driver.Conn, t Table, p uint32) ([]siteCount, error) {
	rows, err := conn.Query(ctx, fmt.Sprintf("SELECT site_id, count() FROM %s WHERE toYYYYMM(%s) = %d GROUP BY site_id ORDER BY site_id", t.Name, t.TimeCol, p))
	if err != nil {
		return nil, fmt.Errorf("cannot count rows of partition %d of %s: %w", p, t.Name, err)
	}
	defer rows.Close()
	var out []siteCount
	for rows.Next() {
		var c siteCount
		if err := rows.Scan(&c.site, &c.rows); err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

func partitionRows(ctx context.Context, s chconn.Store, table string, p uint32) (uint64, error) {
	db, err := s.Database(ctx)
	if err != nil {
		return 0, err
	}
	var n uint64
	err = s.Conn.QueryRow(ctx, "SELECT toUInt64(sum(rows)) FROM "+s.System("parts")+" WHERE database = ? AND table = ? AND active AND partition = ?",
		db, s.Storage(table), strconv.Itoa(int(p))).Scan(&n)
	return n, err
}

// RunDaily prunes once soon after start and then every day until ctx ends;
// failures are logged and retried the next day.
func RunDaily(ctx context.Context, o Options, first time.Duration) {
	o.defaults()
	t := time.NewTimer(first)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		rctx, cancel := context.WithTimeout(ctx, 2*time.Hour)
		done, err := Run(rctx, o)
		cancel()
		if err != nil {
			o.Log.Error("retention run failed; next try in a day", "err", err, "done", len(done))
		} else {
			o.Log.Info("retention run done", "actions", len(done))
		}
		t.Reset(24 * time.Hour)
	}
}
