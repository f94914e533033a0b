-- Email recipients who opted out of open and click tracking
-- (/e/optout/{token}), keyed by the sender's recipient pseudonym: a hash
-- the sender computes, never an address. collector/email keeps the whole
-- set in memory and reloads it every minute; a row is never deleted
-- (ReplacingMergeTree folds repeated opt-outs of one recipient).
CREATE TABLE IF NOT EXISTS {{table "email_optouts"}}{{onCluster}} (
    site_id    String,
    recipient  String,
    ts         DateTime
) ENGINE = {{engine "ReplacingMergeTree" "email_optouts" "ts"}}
ORDER BY (site_id, recipient);

{{distributed "email_optouts" "cityHash64(recipient)"}}
