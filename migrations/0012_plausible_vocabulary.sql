-- Channels, devices and screen classes spelled as Plausible spells them
-- (internal/model's vocabularies): "Organic Search", "Desktop", "Laptop".
-- Until now ingest stored "search", "desktop", "laptop", and a filter
-- written for Plausible (visit:device==Desktop) matched nothing.
--
-- Stored rows are rewritten by mutations, which ClickHouse runs in the
-- background after the statement returns; readers see old and new
-- spellings side by side until they finish (system.mutations). "paid" was
-- one channel for every paid visit: it becomes "Paid Search" (the rollup
-- has no source to tell a social network's ads apart); visits collected
-- from now on are "Paid Search" or "Paid Social".
--
-- On a cluster each mutation runs on one replica of each shard, and the
-- shard's other replica repeats it through ZooKeeper: ON CLUSTER would
-- have both replicas race for the task on 18.16, and the loser's DDL
-- worker stops ("Node exists"), failing every later ON CLUSTER statement.
{{eachShard}}ALTER TABLE {{table "events"}} UPDATE
    channel = multiIf(channel = 'direct', 'Direct', channel = 'search', 'Organic Search',
        channel = 'social', 'Organic Social', channel = 'email', 'Email', channel = 'paid', 'Paid Search',
        channel = 'referral', 'Referral', channel),
    device = multiIf(device = 'desktop', 'Desktop', device = 'mobile', 'Mobile', device = 'tablet', 'Tablet', device),
    screen = multiIf(screen = 'desktop', 'Desktop', screen = 'laptop', 'Laptop', screen = 'tablet', 'Tablet',
        screen = 'mobile', 'Mobile', screen)
WHERE channel IN ('direct', 'search', 'social', 'email', 'paid', 'referral')
    OR device IN ('desktop', 'mobile', 'tablet')
    OR screen IN ('desktop', 'laptop', 'tablet', 'mobile');

{{eachShard}}ALTER TABLE {{table "sessions"}} UPDATE
    channel = multiIf(channel = 'direct', 'Direct', channel = 'search', 'Organic Search',
        channel = 'social', 'Organic Social', channel = 'email', 'Email', channel = 'paid', 'Paid Search',
        channel = 'referral', 'Referral', channel),
    device = multiIf(device = 'desktop', 'Desktop', device = 'mobile', 'Mobile', device = 'tablet', 'Tablet', device),
    screen = multiIf(screen = 'desktop', 'Desktop', screen = 'laptop', 'Laptop', screen = 'tablet', 'Tablet',
        screen = 'mobile', 'Mobile', screen)
WHERE channel IN ('direct', 'search', 'social', 'email', 'paid', 'referral')
    OR device IN ('desktop', 'mobile', 'tablet')
    OR screen IN ('desktop', 'laptop', 'tablet', 'mobile');

-- sessions_dims_hourly keeps the value in its sort key, which a mutation
-- cannot change: its rows are copied under the new value (the states as
-- they are; merging adds them to any row already there), then the old
-- ones deleted. On a cluster the copy goes through the Distributed
-- tables, once, from the host that migrates. A run cut short between the
-- two statements is not recorded and copies again: stop writers and check
-- the rollup against sessions if that happens.
INSERT INTO {{name "sessions_dims_hourly"}} (site_id, dim, hour, value, visitors, visits, bounces, duration_sum, pageviews_sum, events_sum)
SELECT site_id, dim, hour,
    multiIf(dim = 'visit:channel', multiIf(value = 'direct', 'Direct', value = 'search', 'Organic Search',
            value = 'social', 'Organic Social', value = 'email', 'Email', value = 'paid', 'Paid Search', 'Referral'),
        value = 'desktop', 'Desktop', value = 'laptop', 'Laptop', value = 'tablet', 'Tablet', 'Mobile'),
    visitors, visits, bounces, duration_sum, pageviews_sum, events_sum
FROM {{name "sessions_dims_hourly"}}
WHERE dim = 'visit:channel' AND value IN ('direct', 'search', 'social', 'email', 'paid', 'referral')
    OR dim = 'visit:device' AND value IN ('desktop', 'mobile', 'tablet')
    OR dim = 'visit:screen' AND value IN ('desktop', 'laptop', 'tablet', 'mobile');

{{eachShard}}ALTER TABLE {{table "sessions_dims_hourly"}} DELETE
WHERE dim = 'visit:channel' AND value IN ('direct', 'search', 'social', 'email', 'paid', 'referral')
    OR dim = 'visit:device' AND value IN ('desktop', 'mobile', 'tablet')
    OR dim = 'visit:screen' AND value IN ('desktop', 'laptop', 'tablet', 'mobile');
