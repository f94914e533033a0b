-- Raw events: page views, custom events, outbound clicks, file downloads,
-- engagement, content impressions, email opens and email clicks, one row
-- each, told apart by `type`.
--
-- Privacy: no column can hold a full IP address (only `ip_prefix`, a text
-- CIDR of the /24 or /48) and none holds the User-Agent string (only its
-- parsed fields). `visitor_id` is a keyed hash under a daily salt.
CREATE TABLE IF NOT EXISTS {{table "events"}}{{onCluster}} (
    site_id          String,
    event_id         UUID,
    ts               DateTime,
    type             Enum8('pageview' = 1, 'custom' = 2, 'outbound' = 3, 'download' = 4,
                           'engagement' = 5, 'impression' = 6, 'email_open' = 7, 'email_click' = 8),
    name             String,
    visitor_id       UInt64,
    session_id       UInt64,
    subject_id       String,
    hostname         String,
    pathname         String,
    referrer         String,
    referrer_source  String,
    channel          String,
    utm_source       String,
    utm_medium       String,
    utm_campaign     String,
    utm_content      String,
    utm_term         String,
    target_url       String,
    country_code     String,
    region           String,
    city             String,
    ip_prefix        String,
    browser          String,
    browser_version  String,
    os               String,
    os_version       String,
    device           String,
    screen           String,
    connection_type  String,
    downlink         Float32,
    rtt              UInt16,
    save_data        UInt8,
    engagement_ms    UInt32,
    scroll_depth     UInt8,
    interactive      UInt8,
    prop_keys        Array(String),
    prop_values      Array(String),
    revenue_micros   Int64,
    revenue_currency String,
    email_campaign   String,
    email_recipient  String,
    email_verdict    String,
    email_reason     String
) ENGINE = {{engine "MergeTree" "events"}}
PARTITION BY toYYYYMM(ts)
ORDER BY (site_id, toDate(ts), type, visitor_id, ts)
SAMPLE BY visitor_id;

{{distributed "events" "visitor_id"}}
