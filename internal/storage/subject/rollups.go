package subject

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/glimpse-analytics/glimpse/internal/chconn"
	"github.com/glimpse-analytics/glimpse/internal/model"
	"github.com/glimpse-analytics/glimpse/internal/storage/retention"
)

// Rebuilding rollups. A rollup row sums or counts the rows of a site and
// hour; its visitors are a uniq state, which holds hashes of the visitor
// ids and cannot have one taken out, and pages_hourly and
// sessions_dims_hourly have pages and attribution values in their keys.
// So an erasure deletes the rollup rows of every hour the person's raw
// rows were in and inserts them again from the raw rows of that site and
// hour less the person's, computed as the views compute them
// (TestRebuildMatchesViews checks that they agree). Nothing may be
// inserted meanwhile (Pending.Hold): a row inserted between the delete
// and the insert would be counted twice, once by the view and once here.

// rollup is an hourly rollup and how to compute it from a raw table.
type rollup struct {
	table string
	raw   string // the raw table: events or sessions
	hour  string // the hour of a raw row
	// selects is the SELECT of the rollup's rows from raw rows where
	// %s holds, in the rollup's column order.
	selects string
}

// rollups are the rollups of raw rows, as their views make them:
// 0003_hourly_rollups.sql (pages_hourly), 0013_events_hourly_no_engagement.sql
// (events_hourly),
// 0007_sessions_hourly_grouped.sql (sessions_hourly) and, for
// sessions_dims_hourly, the backfill of 0004_session_rollups.sql, which
// gives the rows the collector's sums give (0008_sessions_dims_input.sql).
var rollups = []rollup{
	{table: "events_hourly", raw: "events", hour: "toStartOfHour(ts)", selects: `SELECT
    site_id,
    toStartOfHour(ts) AS hour,
    uniqState(visitor_id) AS visitors,
    sumState(toUInt64(type = 'pageview')) AS pageviews,
    sumState(toUInt64(type IN ('pageview', 'custom', 'outbound', 'download', 'impression'))) AS events
FROM events
WHERE type NOT IN ('email_open', 'email_click', 'engagement') AND (%s)
GROUP BY site_id, hour`},
	{table: "pages_hourly", raw: "events", hour: "toStartOfHour(ts)", selects: `SELECT
    site_id,
    toStartOfHour(ts) AS hour,
    hostname,
    pathname,
    uniqState(visitor_id) AS visitors,
    sumState(toUInt64(1)) AS pageviews
FROM events
WHERE type = 'pageview' AND (%s)
GROUP BY site_id, hour, hostname, pathname`},
	{table: "sessions_hourly", raw: "sessions", hour: "toStartOfHour(start)", selects: `SELECT
    site_id,
    toStartOfHour(start) AS hour,
    sum(toInt64(sign)) AS visits,
    sum(toInt64(sign) * is_bounce) AS bounces,
    sum(toInt64(sign) * duration) AS duration_sum,
    sum(toInt64(sign) * pageviews) AS pageviews_sum,
    sum(toInt64(sign) * toInt64(engagement_ms)) AS engagement_ms_sum
FROM sessions
WHERE %s
GROUP BY site_id, hour`},
	{table: "sessions_dims_hourly", raw: "sessions", hour: "toStartOfHour(start)", selects: `SELECT
    site_id,
    d.1 AS dim,
    toStartOfHour(start) AS hour,
    d.2 AS value,
    uniqStateIf(visitor_id, sign > 0) AS visitors,
    sumState(toInt64(sign)) AS visits,
    sumState(toInt64(sign) * is_bounce) AS bounces,
    sumState(toInt64(sign) * duration) AS duration_sum,
    sumState(toInt64(sign) * pageviews) AS pageviews_sum,
    sumState(toInt64(sign) * events) AS events_sum
FROM sessions
ARRAY JOIN [` + attrDims() + `] AS d
WHERE %s
GROUP BY site_id, dim, hour, value`},
}

// attrDims is the ARRAY JOIN list of sessions_dims_hourly: each
// attribution dimension's name and value over a sessions row.
func attrDims() string {
	var b strings.Builder
	for i, d := range model.AttrDims {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "('%s', %s)", d.Name, d.SQL())
	}
	return b.String()
}

// rebuild replaces the rollup rows of site in the given hours (Unix
// seconds, by raw table) with rows computed from the raw rows of those
// hours where erased (by raw table) does not hold.
func rebuild(ctx context.Context, s chconn.Store, timeout time.Duration, site string, hours map[string][]uint32, erased map[string]cond) error {
	for _, r := range rollups {
		h := hours[r.raw]
		if len(h) == 0 {
			continue
		}
		if err := retention.DeleteWait(ctx, s, r.table, "site_id = ? AND has(?, toUInt32(hour))", timeout, site, h); err != nil {
			return err
		}
		where := "site_id = ? AND has(?, toUInt32(" + r.hour + "))"
		args := []any{site, h}
		if c := erased[r.raw]; c.sql != "" {
			where += " AND NOT (" + c.sql + ")"
			args = append(args, c.args...)
		}
		q := "INSERT INTO " + r.table + " " + fmt.Sprintf(r.selects, where)
		// On a cluster the rows go to one shard through the Distributed
		// table, before the erasure goes on.
		ictx, err := s.Sync(ctx)
		if err == nil {
			err = s.Conn.Exec(ictx, q, slices.Clone(args)...)
		}
		if err != nil {
			return fmt.Errorf("cannot rebuild %s for the erased hours (%d of them; erase again to retry): %w", r.table, len(h), err)
		}
	}
	return nil
}
