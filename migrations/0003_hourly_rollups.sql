-- Hourly rollups filled by materialized views. They hold no identifiers:
-- visitors are uniq states, everything else sums. Hours are UTC.
--
-- events_hourly: per site and hour.
CREATE TABLE IF NOT EXISTS {{table "events_hourly"}}{{onCluster}} (
    site_id    {{lowCardinality "String"}},
    hour       DateTime{{codec "DoubleDelta, ZSTD"}},
    visitors   AggregateFunction(uniq, UInt64),
    pageviews  AggregateFunction(sum, UInt64),
    events     AggregateFunction(sum, UInt64)
) ENGINE = {{engine "AggregatingMergeTree" "events_hourly"}}
PARTITION BY toYYYYMM(hour)
ORDER BY (site_id, hour);

CREATE MATERIALIZED VIEW IF NOT EXISTS {{name "events_hourly_mv"}}{{onCluster}}
TO {{table "events_hourly"}}
AS SELECT
    site_id,
    toStartOfHour(ts) AS hour,
    uniqState(visitor_id) AS visitors,
    sumState(toUInt64(type = 'pageview')) AS pageviews,
    sumState(toUInt64(type IN ('pageview', 'custom', 'outbound', 'download', 'impression'))) AS events
FROM {{table "events"}}
GROUP BY site_id, hour;

{{distributed "events_hourly" "rand()"}}

-- pages_hourly: per site, hour and page, for the top-pages breakdown.
CREATE TABLE IF NOT EXISTS {{table "pages_hourly"}}{{onCluster}} (
    site_id    {{lowCardinality "String"}},
    hour       DateTime{{codec "DoubleDelta, ZSTD"}},
    hostname   {{lowCardinality "String"}},
    pathname   String{{codec "ZSTD"}},
    visitors   AggregateFunction(uniq, UInt64),
    pageviews  AggregateFunction(sum, UInt64)
) ENGINE = {{engine "AggregatingMergeTree" "pages_hourly"}}
PARTITION BY toYYYYMM(hour)
ORDER BY (site_id, hour, hostname, pathname);

CREATE MATERIALIZED VIEW IF NOT EXISTS {{name "pages_hourly_mv"}}{{onCluster}}
TO {{table "pages_hourly"}}
AS SELECT
    site_id,
    toStartOfHour(ts) AS hour,
    hostname,
    pathname,
    uniqState(visitor_id) AS visitors,
    sumState(toUInt64(1)) AS pageviews
FROM {{table "events"}}
WHERE type = 'pageview'
GROUP BY site_id, hour, hostname, pathname;

{{distributed "pages_hourly" "rand()"}}

-- sessions_hourly: sign-weighted sums over sessions by the hour the visit
-- started; a -1/+1 pair of one update cancels out, so sums stay exact.
CREATE TABLE IF NOT EXISTS {{table "sessions_hourly"}}{{onCluster}} (
    site_id            {{lowCardinality "String"}},
    hour               DateTime{{codec "DoubleDelta, ZSTD"}},
    visits             Int64,
    bounces            Int64,
    duration_sum       Int64,
    pageviews_sum      Int64,
    engagement_ms_sum  Int64
) ENGINE = {{engine "SummingMergeTree" "sessions_hourly" "(visits, bounces, duration_sum, pageviews_sum, engagement_ms_sum)"}}
PARTITION BY toYYYYMM(hour)
ORDER BY (site_id, hour);

CREATE MATERIALIZED VIEW IF NOT EXISTS {{name "sessions_hourly_mv"}}{{onCluster}}
TO {{table "sessions_hourly"}}
AS SELECT
    site_id,
    toStartOfHour(start) AS hour,
    toInt64(sign) AS visits,
    toInt64(sign) * is_bounce AS bounces,
    toInt64(sign) * duration AS duration_sum,
    toInt64(sign) * pageviews AS pageviews_sum,
    toInt64(sign) * toInt64(engagement_ms) AS engagement_ms_sum
FROM {{table "sessions"}};

{{distributed "sessions_hourly" "rand()"}}
