-- events_hourly_mv without engagement events. Engagement reports the time
-- and scroll on a page already counted; Plausible leaves it out of
-- visitors, and so does the raw events side (aggregator: noVisitTypes).
-- The view of 0011 fed it into the hourly visitors: an engagement sent
-- after its session ended (stored with no session, under the next day's
-- visitor id) made one more visitor of that day, and one sent in the hour
-- after its page view one more visitor of that hour, so the rollup and
-- the raw events disagreed. Engagement adds nothing to page views or
-- events: only the visitors states of the hours holding it were wrong.
--
-- As in 0011, the view is replaced, then those hours are rebuilt from
-- events: their rows are deleted (a mutation: it applies to the parts
-- written before it, not to the rebuilt rows inserted after it) and
-- written again without engagement and email events. Rows inserted into
-- events between the DROP and the CREATE are not added to events_hourly,
-- and rows inserted into those hours during the rebuild may count twice:
-- stop other writers while migrating to be exact. In cluster mode both
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
WHERE type NOT IN ('email_open', 'email_click', 'engagement')
GROUP BY site_id, hour;

{{eachShard}}ALTER TABLE {{table "events_hourly"}} DELETE
WHERE (site_id, hour) IN (
    SELECT site_id, toStartOfHour(ts) FROM {{table "events"}} WHERE type = 'engagement');

{{eachShard}}INSERT INTO {{table "events_hourly"}}
SELECT
    site_id,
    toStartOfHour(ts) AS hour,
    uniqState(visitor_id) AS visitors,
    sumState(toUInt64(type = 'pageview')) AS pageviews,
    sumState(toUInt64(type IN ('pageview', 'custom', 'outbound', 'download', 'impression'))) AS events
FROM {{table "events"}}
WHERE type NOT IN ('email_open', 'email_click', 'engagement')
    AND (site_id, toStartOfHour(ts)) IN (
        SELECT site_id, toStartOfHour(ts) FROM {{table "events"}} WHERE type = 'engagement')
GROUP BY site_id, hour;
