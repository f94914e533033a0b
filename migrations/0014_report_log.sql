-- Scheduled e-mail reports and alerts (dashboards/reports). Recipients
-- appear only as a keyed hash (HMAC-SHA256 under smtp.signing_key_env,
-- 32 hex digits), never as an address.
--
-- report_sends: one row per message sent, so that a restart does not send
-- a period's report again and an alert's cooldown holds across restarts.
-- kind is week, month or alert; period names what was sent (the first day
-- of the reported week or month, or the alert's minute).
CREATE TABLE IF NOT EXISTS {{table "report_sends"}}{{onCluster}} (
    site_id    String,
    recipient  String,
    kind       String,
    period     String,
    ts         DateTime
) ENGINE = {{engine "ReplacingMergeTree" "report_sends" "ts"}}
ORDER BY (site_id, kind, recipient, period);

{{distributed "report_sends" "cityHash64(recipient)"}}

-- report_unsubscribes: recipients who followed a report's unsubscribe
-- link; kind is the kind of message they no longer get.
CREATE TABLE IF NOT EXISTS {{table "report_unsubscribes"}}{{onCluster}} (
    site_id    String,
    recipient  String,
    kind       String,
    ts         DateTime
) ENGINE = {{engine "ReplacingMergeTree" "report_unsubscribes" "ts"}}
ORDER BY (site_id, kind, recipient);

{{distributed "report_unsubscribes" "cityHash64(recipient)"}}
