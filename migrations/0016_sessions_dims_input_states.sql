-- sessions_dims_input_mv without ARRAY JOIN. The view of 0008 turned each
-- row of sessions_dims_input into one row per visitor of its array (with
-- the sums on the first), so that uniqState saw each visitor, then grouped
-- them: 16 rows per new session (one per attribution dimension), every
-- column copied into each. At 500,000 visitors that was the largest part
-- of ClickHouse's CPU per event after the parts themselves.
--
-- arrayReduce('uniqState', visitor_ids) makes the row's uniq state of its
-- array at once (AggregateFunction(uniq, UInt64), the rollup's type) and
-- uniqMergeState merges the states of a group's rows: uniq is a function
-- of the set of visitors, so the rollup holds the same states and every
-- number read from it is unchanged. A row without visitors (with_visitors
-- 0, visitor_ids [0]) adds an empty state; its sums are added as before.
--
-- The view is replaced: rows inserted into sessions_dims_input between
-- the DROP and the CREATE are not added to sessions_dims_hourly. `glimpse
-- serve` migrates before it writes; stop other writers while migrating to
-- be exact (as for 0004, 0007 and 0008). A run cut short between the two
-- statements is not recorded and runs both again.
DROP TABLE IF EXISTS {{name "sessions_dims_input_mv"}}{{onCluster}};

CREATE MATERIALIZED VIEW IF NOT EXISTS {{name "sessions_dims_input_mv"}}{{onCluster}}
TO {{table "sessions_dims_hourly"}}
AS SELECT
    site_id,
    dim,
    toStartOfHour(start) AS hour,
    value,
    uniqMergeState(arrayReduce('uniqState', if(with_visitors = 1, visitor_ids, emptyArrayUInt64()))) AS visitors,
    sumState(d_visits) AS visits,
    sumState(d_bounces) AS bounces,
    sumState(d_duration) AS duration_sum,
    sumState(d_pageviews) AS pageviews_sum,
    sumState(d_events) AS events_sum
FROM {{table "sessions_dims_input"}}
GROUP BY site_id, dim, hour, value;
