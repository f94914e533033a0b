-- Sessions: one logical row per visit. Every update writes the previous
-- state with sign = -1 and the new state with sign = +1 under a higher
-- version, so VersionedCollapsingMergeTree folds them in any insert order.
-- Attribution (referrer, UTM, geo, device) is the first event's.
CREATE TABLE IF NOT EXISTS {{table "sessions"}}{{onCluster}} (
    site_id          {{lowCardinality "String"}},
    session_id       UInt64,
    visitor_id       UInt64,
    sign             Int8,
    version          UInt32,
    start            DateTime{{codec "Delta, ZSTD"}},
    ts               DateTime{{codec "Delta, ZSTD"}},
    duration         UInt32,
    pageviews        UInt32,
    events           UInt32,
    is_bounce        UInt8,
    engagement_ms    UInt64,
    entry_page       String{{codec "ZSTD"}},
    exit_page        String{{codec "ZSTD"}},
    hostname         {{lowCardinality "String"}},
    referrer         String{{codec "ZSTD"}},
    referrer_source  {{lowCardinality "String"}},
    channel          {{lowCardinality "String"}},
    utm_source       {{lowCardinality "String"}},
    utm_medium       {{lowCardinality "String"}},
    utm_campaign     {{lowCardinality "String"}},
    utm_content      String,
    utm_term         String,
    country_code     {{lowCardinality "String"}},
    region           {{lowCardinality "String"}},
    city             {{lowCardinality "String"}},
    browser          {{lowCardinality "String"}},
    browser_version  {{lowCardinality "String"}},
    os               {{lowCardinality "String"}},
    os_version       {{lowCardinality "String"}},
    device           {{lowCardinality "String"}},
    screen           {{lowCardinality "String"}},
    connection_type  {{lowCardinality "String"}}
) ENGINE = {{engine "VersionedCollapsingMergeTree" "sessions" "sign, version"}}
PARTITION BY toYYYYMM(start)
ORDER BY (site_id, toDate(start), visitor_id, session_id)
SAMPLE BY visitor_id;

{{distributed "sessions" "visitor_id"}}
