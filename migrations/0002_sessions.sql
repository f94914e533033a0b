-- Sessions: one logical row per visit. Every update writes the previous
-- state with sign = -1 and the new state with sign = +1 under a higher
-- version, so VersionedCollapsingMergeTree folds them in any insert order.
-- Attribution (referrer, UTM, geo, device) is the first event's.
CREATE TABLE IF NOT EXISTS {{table "sessions"}}{{onCluster}} (
    site_id          String,
    session_id       UInt64,
    visitor_id       UInt64,
    sign             Int8,
    version          UInt32,
    start            DateTime,
    ts               DateTime,
    duration         UInt32,
    pageviews        UInt32,
    events           UInt32,
    is_bounce        UInt8,
    engagement_ms    UInt64,
    entry_page       String,
    exit_page        String,
    hostname         String,
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
    browser_version  String,
    os               String,
    os_version       String,
    device           String,
    screen           String,
    connection_type  String
) ENGINE = {{engine "VersionedCollapsingMergeTree" "sessions" "sign, version"}}
PARTITION BY toYYYYMM(start)
ORDER BY (site_id, toDate(start), visitor_id, session_id)
SAMPLE BY visitor_id;

{{distributed "sessions" "visitor_id"}}
