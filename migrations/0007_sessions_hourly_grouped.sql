-- sessions_hourly_mv, grouped. The view of 0003 turned every session row
-- into one sessions_hourly row, so each drain of the collector's sessions
-- (a -1 and a +1 row per changed session) wrote as many rows again, for
-- SummingMergeTree to add up later: about 150,000 rows in a 12 s load run
-- of `make bench`. Summing within each inserted block first writes one row
-- per site and hour (31 in the same run); the sums are the same, since
-- SummingMergeTree adds the rows of a key whichever way they are split.
--
-- The view is replaced: rows inserted into sessions between the DROP and
-- the CREATE are not added to sessions_hourly. `glimpse serve` migrates
-- before it writes; stop other writers while migrating to be exact (as for
-- 0004). A run cut short between the two statements is not recorded and
-- runs both again.
DROP TABLE IF EXISTS {{name "sessions_hourly_mv"}}{{onCluster}};

CREATE MATERIALIZED VIEW IF NOT EXISTS {{name "sessions_hourly_mv"}}{{onCluster}}
TO {{table "sessions_hourly"}}
AS SELECT
    site_id,
    toStartOfHour(start) AS hour,
    sum(toInt64(sign)) AS visits,
    sum(toInt64(sign) * is_bounce) AS bounces,
    sum(toInt64(sign) * duration) AS duration_sum,
    sum(toInt64(sign) * pageviews) AS pageviews_sum,
    sum(toInt64(sign) * toInt64(engagement_ms)) AS engagement_ms_sum
FROM {{table "sessions"}}
GROUP BY site_id, hour;
