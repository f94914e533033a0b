// Package aggregator is Glimpse's query side: metrics, breakdowns and time
// series over the events and sessions tables and their hourly rollups,
// k-anonymity folding, the Stats API handlers, and the retention and erasure
// jobs. Its capabilities arrive with the aggregator issue; nothing here is
// wired yet.
package aggregator
