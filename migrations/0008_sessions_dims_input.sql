-- sessions_dims_hourly from rows the collector sums, not from every
-- session row. The view of 0004 turned each row inserted into sessions
-- into 16 rows (one per attribution dimension) before grouping them. Under
-- real traffic most session rows are updates, a -1 row of the state
-- written before and a +1 row of the new one: two rows, 32 joined rows,
-- for one page view of a known visitor. With 500,000 visitors that was
-- half of ClickHouse's CPU.
--
-- The collector now sums each drain of sessions itself: one row per site,
-- quarter hour of the session's start and attribution, with the change of
-- visits, bounces, duration, page views and events (an update's -1 and +1
-- rows add up to one row), and one row per session written for the first
-- time, which carries its visitor id. sessions_dims_input holds nothing
-- (engine Null); its view expands the rows to the 16 dimensions exactly as
-- 0004's view did. The quarter hour keeps toStartOfHour exact in any server
-- time zone (offsets are whole quarter hours). A session's visitor is
-- counted from its first row only: later rows of the session have the same
-- visitor, start and attribution, so uniq would not count it again.
--
-- The view on sessions is dropped last: rows inserted into sessions by an
-- older collector after the DROP are not added to sessions_dims_hourly.
-- `glimpse serve` migrates before it writes; stop other writers while
-- migrating to be exact (as for 0004 and 0007).
CREATE TABLE IF NOT EXISTS {{table "sessions_dims_input"}}{{onCluster}} (
    site_id          String,
    start            DateTime,
    referrer         String,
    referrer_source  String,
    channel          String,
    utm_source       String,
    utm_medium       String,
    utm_campaign     String,
    utm_content      String,
    utm_term         String,
    country_code     String,
    region           String,
    city             String,
    browser          String,
    os               String,
    device           String,
    screen           String,
    connection_type  String,
    visitor_id       UInt64,
    new_visitor      UInt8,
    d_visits         Int64,
    d_bounces        Int64,
    d_duration       Int64,
    d_pageviews      Int64,
    d_events         Int64
) ENGINE = Null;

{{distributed "sessions_dims_input" "rand()"}}

CREATE MATERIALIZED VIEW IF NOT EXISTS sessions_dims_input_mv{{onCluster}}
TO {{table "sessions_dims_hourly"}}
AS SELECT
    site_id,
    d.1 AS dim,
    toStartOfHour(start) AS hour,
    d.2 AS value,
    uniqStateIf(visitor_id, new_visitor = 1) AS visitors,
    sumState(d_visits) AS visits,
    sumState(d_bounces) AS bounces,
    sumState(d_duration) AS duration_sum,
    sumState(d_pageviews) AS pageviews_sum,
    sumState(d_events) AS events_sum
FROM {{table "sessions_dims_input"}}
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

DROP TABLE IF EXISTS sessions_dims_hourly_mv{{onCluster}};
