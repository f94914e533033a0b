-- Shared daily salts, for several collectors behind one load balancer
-- (serve --shared-salts). A row per UTC day and candidate: the earliest row
-- of a day is that day's salt for every instance. Rows are deleted 48 hours
-- after their day began (a mutation run by the collectors), so a salt is at
-- rest only while it can still be used to continue a session.
CREATE TABLE IF NOT EXISTS {{table "salts"}}{{onCluster}} (
    day     Date,
    salt    String,
    created DateTime
) ENGINE = {{engine "MergeTree" "salts"}}
PARTITION BY toYYYYMM(day)
ORDER BY (day, created);

{{distributed "salts" "rand()"}}
