-- events_hourly_mv without email opens and clicks. The view of 0003 fed
-- every event into the site's hourly visitors, and email events carry no
-- visitor id: each hour with one counted visitor 0 as one more site
-- visitor (7 visitors over 6 visits). Email events are the email panel's
-- (read raw, by campaign); they add nothing to page views or events, so
-- only the visitors states of the hours holding them were wrong.
--
-- The view is replaced, then those hours are rebuilt from events: their
-- rows are deleted (a mutation: it applies to the parts written before
-- it, not to the rebuilt rows inserted after it) and written again
-- without email events. Rows inserted into events between the DROP and
-- the CREATE are not added to events_hourly, and rows inserted into those
-- hours during the rebuild may count twice: stop other writers while
-- migrating to be exact (as for 0004 and 0007). In cluster mode both
-- statements run on one replica of each shard, against its local tables
-- (an INSERT has no ON CLUSTER): a shard's rollup holds its own events.
DROP TABLE IF EXISTS {{name "events_hourly_mv"}}{{onCluster}};

CREATE MATERIALIZED VIEW IF NOT EXISTS {{name "events_hourly_mv"}}{{onCluster}}
TO {{table "events_hourly"}}
AS SELECT
    site_id,
    toStartOfHour(ts) AS hour,
    uniqState(visitor_id) AS visitors,
    sumState(toUInt64(type = 'pageview')) AS pageviews,
    sumState(toUInt64(type IN ('pageview', 'custom', 'outbound', 'download', 'impression'))) AS events
FROM {{table "events"}}
WHERE type NOT IN ('email_open', 'email_click')
GROUP BY site_id, hour;

{{eachShard}}ALTER TABLE {{table "events_hourly"}} DELETE
WHERE (site_id, hour) IN (
    SELECT site_id, toStartOfHour(ts) FROM {{table "events"}} WHERE type IN ('email_open', 'email_click'));

{{eachShard}}INSERT INTO {{table "events_hourly"}}
SELECT
    site_id,
    toStartOfHour(ts) AS hour,
    uniqState(visitor_id) AS visitors,
    sumState(toUInt64(type = 'pageview')) AS pageviews,
    sumState(toUInt64(type IN ('pageview', 'custom', 'outbound', 'download', 'impression'))) AS events
FROM {{table "events"}}
WHERE type NOT IN ('email_open', 'email_click')
    AND (site_id, toStartOfHour(ts)) IN (
        SELECT site_id, toStartOfHour(ts) FROM {{table "events"}} WHERE type IN ('email_open', 'email_click'))
GROUP BY site_id, hour;
