package aggregator

// Reading a cluster (Options.Cluster). Every table the engine names is
// then a Distributed table in front of each shard's *_local table, and a
// query over one runs on every shard and is merged on the host asked.
// Uniq states, sums and counts merge across shards as they merge across
// parts, so what matters is the subqueries of IN and JOIN, which
// ClickHouse refuses over Distributed tables unless told how to run them:
//
//   - co-located: `session_id IN (SELECT session_id FROM sessions ...)`,
//     its mirror over events, and the JOIN of events to their visits on
//     session_id. Events and sessions are both sharded by visitor_id, so
//     a visit's session rows and its events live on the same shard, and
//     each shard answers the subquery from its own local table
//     (distributed_product_mode = 'local', which every query ends by
//     setting: the driver cannot send a string setting to ClickHouse
//     18.16), which is what one server computes over all rows;
//   - not co-located: the keys a breakdown folds into (other) are keys
//     under k visitors over all shards; `GLOBAL IN` computes that set
//     once, on the host asked, and sends it to every shard (plan.in).
//
// A subquery in FROM, and a JOIN whose left side is a subquery, run on
// the host asked over the Distributed tables, as on one server.

// settings ends b, a whole query, with the settings it needs on a
// cluster.
func (e *Engine) settings(b *sqlb) *sqlb {
	if e.opts.Cluster {
		b.w(" SETTINGS distributed_product_mode = 'local'")
	}
	return b
}

// in is the operator testing a key against a set of keys computed over
// every shard: IN on one server, GLOBAL IN on a cluster.
func (pl *plan) in() string {
	if pl.cluster {
		return " GLOBAL IN "
	}
	return " IN "
}
