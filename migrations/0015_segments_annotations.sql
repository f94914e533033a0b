-- Saved segments and chart annotations of the dashboard (dashboards/
-- segments.go, annotations.go; internal/storage/notes). Both are written
-- by signed-in users and shared with everyone who may read the site.
--
-- Rows are never updated or deleted in place (ClickHouse 18.16 has no
-- lightweight DELETE): every create, edit and delete inserts the whole
-- record again with a higher version, a delete with deleted = 1. Readers
-- take each id's row of the highest version (argMax(col, version) per
-- (site_id, id)) and drop deleted ones; a merge keeps only that row
-- (ReplacingMergeTree(version)), so a deleted record stays deleted after
-- merges. created_by is the user's e-mail address as the sites file lists
-- it (the only name a user has there).
--
-- segments: a named filter set; filters is the dashboard's v1 filter
-- string (aggregator.ParseFilters).
CREATE TABLE IF NOT EXISTS {{table "segments"}}{{onCluster}} (
    site_id    String,
    id         String,
    name       String,
    filters    String,
    created_by String,
    created_at DateTime,
    updated_at DateTime,
    version    UInt64,
    deleted    UInt8
) ENGINE = {{engine "ReplacingMergeTree" "segments" "version"}}
ORDER BY (site_id, id);

{{distributed "segments" "cityHash64(site_id)"}}

-- annotations: a short text on a day, or on a minute of it (minute is
-- minutes after midnight in the site's time zone, -1 for the whole day).
CREATE TABLE IF NOT EXISTS {{table "annotations"}}{{onCluster}} (
    site_id    String,
    id         String,
    day        Date,
    minute     Int16,
    text       String,
    created_by String,
    created_at DateTime,
    version    UInt64,
    deleted    UInt8
) ENGINE = {{engine "ReplacingMergeTree" "annotations" "version"}}
ORDER BY (site_id, id);

{{distributed "annotations" "cityHash64(site_id)"}}
