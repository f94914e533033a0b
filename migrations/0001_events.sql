-- Raw events: page views, custom events, outbound clicks, file downloads,
-- engagement, content impressions, email opens and email clicks, one row
-- each, told apart by `type`.
--
-- Privacy: no column can hold a full IP address (only `ip_prefix`, a text
-- CIDR of the /24 or /48) and none holds the User-Agent string (only its
-- parsed fields). `visitor_id` is a keyed hash under a daily salt.
CREATE TABLE IF NOT EXISTS {{table "events"}}{{onCluster}} (
    site_id          {{lowCardinality "String"}},
    event_id         UUID,
    ts               DateTime{{codec "Delta, ZSTD"}},
    type             Enum8('pageview' = 1, 'custom' = 2, 'outbound' = 3, 'download' = 4,
                           'engagement' = 5, 'impression' = 6, 'email_open' = 7, 'email_click' = 8),
    name             {{lowCardinality "String"}},
    visitor_id       UInt64,
    session_id       UInt64,
    subject_id       String,
    hostname         {{lowCardinality "String"}},
    pathname         String{{codec "ZSTD"}},
    referrer         String{{codec "ZSTD"}},
    referrer_source  {{lowCardinality "String"}},
    channel          {{lowCardinality "String"}},
    utm_source       {{lowCardinality "String"}},
    utm_medium       {{lowCardinality "String"}},
    utm_campaign     {{lowCardinality "String"}},
    utm_content      String,
    utm_term         String,
    target_url       String{{codec "ZSTD"}},
    country_code     {{lowCardinality "String"}},
    region           {{lowCardinality "String"}},
    city             {{lowCardinality "String"}},
    ip_prefix        String,
    browser          {{lowCardinality "String"}},
    browser_version  {{lowCardinality "String"}},
    os               {{lowCardinality "String"}},
    os_version       {{lowCardinality "String"}},
    device           {{lowCardinality "String"}},
    screen           {{lowCardinality "String"}},
    connection_type  {{lowCardinality "String"}},
    downlink         Float32,
    rtt              UInt16,
    save_data        UInt8,
    engagement_ms    UInt32,
    scroll_depth     UInt8,
    interactive      UInt8,
    prop_keys        Array(String){{codec "ZSTD"}},
    prop_values      Array(String){{codec "ZSTD"}},
    revenue_micros   Int64,
    revenue_currency {{lowCardinality "String"}},
    email_campaign   {{lowCardinality "String"}},
    email_recipient  String,
    email_verdict    {{lowCardinality "String"}},
    email_reason     {{lowCardinality "String"}}
) ENGINE = {{engine "MergeTree" "events"}}
PARTITION BY toYYYYMM(ts)
ORDER BY (site_id, toDate(ts), type, visitor_id, ts)
SAMPLE BY visitor_id;

{{distributed "events" "visitor_id"}}
