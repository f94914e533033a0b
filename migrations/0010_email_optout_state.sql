-- Email opt-outs become reversible: a recipient may opt back in. Each
-- change of a recipient's state is a new row (rows are still never
-- deleted or updated): opted_out says the state it sets, seq orders the
-- changes (the collector's clock in Unix nanoseconds, made unique per
-- collector). A recipient's state is that of the row with the highest
-- seq: argMax(opted_out, seq) per (site_id, recipient). The rows written
-- before this migration were all opt-outs: they read as opted_out = 1,
-- seq = 0, older than any change made since.
--
-- The table stays a ReplacingMergeTree(ts) (an engine's version column
-- cannot change): a merge keeps one row per recipient, the one with the
-- highest ts, so the latest in seconds. A later change of the same second
-- is inserted after the one it follows (the recipient sees the first
-- answered before sending the second), and a merge keeps the last
-- inserted of equal versions, so a merge keeps the latest state.
--
-- One statement per table, both columns at once: ClickHouse 18.16 has no
-- ADD COLUMN IF NOT EXISTS. In cluster mode the Distributed table in
-- front is altered too, after the tables it reads, on each host (18.16
-- refuses ON CLUSTER for a table that does not replicate when shards
-- replicate internally).
{{eachShard}}ALTER TABLE {{table "email_optouts"}}
    ADD COLUMN opted_out UInt8 DEFAULT 1,
    ADD COLUMN seq UInt64 DEFAULT 0;
{{if .Cluster}}
{{eachHost}}ALTER TABLE {{name "email_optouts"}}
    ADD COLUMN opted_out UInt8 DEFAULT 1,
    ADD COLUMN seq UInt64 DEFAULT 0;
{{end}}
