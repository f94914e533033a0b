-- sessions_dims_hourly from rows the collector sums, not from every
-- session row. The view of 0004 turned each row inserted into sessions
-- into 16 rows (one per attribution dimension) before grouping them. Under
-- real traffic most session rows are updates, a -1 row of the state
-- written before and a +1 row of the new one: two rows, 32 joined rows,
-- for one page view of a known visitor. With 500,000 visitors that was
-- half of ClickHouse's CPU.
--
-- The collector now sums each drain of sessions itself, per site, quarter
-- hour of the session's start, dimension and value: the change of visits,
-- bounces, duration, page views and events (an update's -1 and +1 rows add
-- up to their difference), and the visitors of the sessions written for
-- the first time, as an array (a row without them has [0] and
-- with_visitors 0: ARRAY JOIN drops a row with an empty array).
-- sessions_dims_input holds nothing (engine Null); its view turns each row
-- into the rollup's states, one row per visitor so that uniqState sees each
-- (ClickHouse 18.16 has no way to make a uniq state of an array that the
-- rollup's column takes), with the sums on the first. The quarter hour
-- keeps toStartOfHour exact in any server time zone (offsets are whole
-- quarter hours). A session's visitor is
-- taken from its first row only: its later rows have the same visitor,
-- start and attribution, so uniq would not count it again.
--
-- The view on sessions is dropped last: rows inserted into sessions by an
-- older collector after the DROP are not added to sessions_dims_hourly.
-- `glimpse serve` migrates before it writes; stop other writers while
-- migrating to be exact (as for 0004 and 0007).
CREATE TABLE IF NOT EXISTS {{table "sessions_dims_input"}}{{onCluster}} (
    site_id        String,
    start          DateTime,
    dim            String,
    value          String,
    visitor_ids    Array(UInt64),
    with_visitors  UInt8,
    d_visits       Int64,
    d_bounces      Int64,
    d_duration     Int64,
    d_pageviews    Int64,
    d_events       Int64
) ENGINE = Null;

{{distributed "sessions_dims_input" "rand()"}}

CREATE MATERIALIZED VIEW IF NOT EXISTS {{name "sessions_dims_input_mv"}}{{onCluster}}
TO {{table "sessions_dims_hourly"}}
AS SELECT
    site_id,
    dim,
    toStartOfHour(start) AS hour,
    value,
    uniqStateIf(v, with_visitors = 1) AS visitors,
    sumState(if(i = 1, d_visits, 0)) AS visits,
    sumState(if(i = 1, d_bounces, 0)) AS bounces,
    sumState(if(i = 1, d_duration, 0)) AS duration_sum,
    sumState(if(i = 1, d_pageviews, 0)) AS pageviews_sum,
    sumState(if(i = 1, d_events, 0)) AS events_sum
FROM {{table "sessions_dims_input"}}
ARRAY JOIN visitor_ids AS v, arrayEnumerate(visitor_ids) AS i
GROUP BY site_id, dim, hour, value;

DROP TABLE IF EXISTS {{name "sessions_dims_hourly_mv"}}{{onCluster}};
