-- sessions_dims_hourly: visits by the hour they started and one attribution
-- dimension, for breakdowns by source, country, device, ... (and for
-- visit filters on one such dimension) without collapsing raw sessions.
-- One session row becomes one row per dimension below; `dim` is the Stats
-- API property name and `value` what aggregator/property.go computes for
-- it, so a query reads `value` where the raw query reads the expression.
--
-- Exactness. Sums are sign-weighted: an update's -1/+1 pair cancels, as in
-- sessions_hourly. Visitors are uniq states over the +1 rows only. Every
-- dimension here is part of a session's attribution, taken from the touch
-- that starts it and shared by every version of the session (as are
-- `start` and `visitor_id`), and a session, once written, is only ever
-- replaced by a newer version, never withdrawn. So the visitors with a +1
-- row under (hour, dim, value) are exactly the visitors with a live session
-- there, whatever was merged or cancelled since; uniq is a function of
-- the set, so uniqMerge over hours equals uniq over collapsed raw rows.
-- Entry and exit pages change between versions (the exit page with every
-- page view), so +1 rows of an old version would count a visitor under a
-- page the session left: they are not here, and breakdowns by them read
-- raw sessions. Erasing a visitor from sessions (ALTER ... DELETE) leaves
-- their hash in these uniq states, as it does in events_hourly.
--
-- A row holds six aggregate states (the visitors one is KBs), and a query
-- reads one dimension: with the default 8,192-row granules it would read
-- and discard most other dimensions' states (measured: 0.7 s instead of
-- 0.1 s for visit:source over 30 days of 2.2 M sessions), hence the small
-- granules.
CREATE TABLE IF NOT EXISTS {{table "sessions_dims_hourly"}}{{onCluster}} (
    site_id            {{lowCardinality "String"}},
    dim                {{lowCardinality "String"}},
    hour               DateTime{{codec "DoubleDelta, ZSTD"}},
    value              String,
    visitors           AggregateFunction(uniq, UInt64),
    visits             AggregateFunction(sum, Int64),
    bounces            AggregateFunction(sum, Int64),
    duration_sum       AggregateFunction(sum, Int64),
    pageviews_sum      AggregateFunction(sum, Int64),
    events_sum         AggregateFunction(sum, Int64)
) ENGINE = {{engine "AggregatingMergeTree" "sessions_dims_hourly"}}
PARTITION BY toYYYYMM(hour)
ORDER BY (site_id, dim, hour, value)
SETTINGS index_granularity = 256;

{{distributed "sessions_dims_hourly" "rand()"}}

-- Backfill. The view below only sees sessions inserted after it exists, so
-- on a single server the rows already in sessions are copied first, once:
-- the copy runs only while the rollup is empty, so a migration retried
-- after a later failure does not copy twice. `glimpse serve` migrates
-- before it starts writing; rows written by another collector between this
-- copy and the view's creation are missing from the rollup (stop other
-- writers while migrating to be exact). The copy must finish within the
-- runner's statement timeout (60 s; 2.2 M sessions took 8-13 s here); a
-- copy cut short leaves part of the rows and is not retried, so on a
-- larger database run `glimpse migrate` with writers stopped and, if it
-- times out, truncate the rollup and run this INSERT by hand. In cluster
-- mode the copy runs on one replica of each shard, against its local
-- tables (an INSERT has no ON CLUSTER): a shard's rollup holds its own
-- sessions.
{{eachShard}}INSERT INTO {{table "sessions_dims_hourly"}}
SELECT
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
FROM {{table "sessions"}}
ARRAY JOIN [
    ('visit:source', if(referrer_source = '', 'Direct / None', referrer_source)),
    ('visit:referrer', referrer),
    ('visit:channel', channel),
    ('visit:utm_source', utm_source),
    ('visit:utm_medium', utm_medium),
    ('visit:utm_campaign', utm_campaign),
    ('visit:utm_content', utm_content),
    ('visit:utm_term', utm_term),
    ('visit:country', country_code),
    ('visit:region', region),
    ('visit:city', city),
    ('visit:browser', browser),
    ('visit:os', os),
    ('visit:device', device),
    ('visit:screen', screen),
    ('visit:connection', connection_type)
] AS d
WHERE (SELECT count() FROM {{table "sessions_dims_hourly"}}) = 0
GROUP BY site_id, dim, hour, value;

CREATE MATERIALIZED VIEW IF NOT EXISTS {{name "sessions_dims_hourly_mv"}}{{onCluster}}
TO {{table "sessions_dims_hourly"}}
AS SELECT
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
FROM {{table "sessions"}}
ARRAY JOIN [
    ('visit:source', if(referrer_source = '', 'Direct / None', referrer_source)),
    ('visit:referrer', referrer),
    ('visit:channel', channel),
    ('visit:utm_source', utm_source),
    ('visit:utm_medium', utm_medium),
    ('visit:utm_campaign', utm_campaign),
    ('visit:utm_content', utm_content),
    ('visit:utm_term', utm_term),
    ('visit:country', country_code),
    ('visit:region', region),
    ('visit:city', city),
    ('visit:browser', browser),
    ('visit:os', os),
    ('visit:device', device),
    ('visit:screen', screen),
    ('visit:connection', connection_type)
] AS d
GROUP BY site_id, dim, hour, value;
