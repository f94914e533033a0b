// Package model is what Glimpse stores, in one place: the event row
// (Event) and its columns, a session version (Session) and its
// attribution (Attrs), and the dimensions table (Dimensions): for every
// property reports break down and filter by, its API name, column, SQL
// value expression, session accessor, dashboard label and vocabulary.
//
// It is a leaf: ingest, the writer and its rollups, the query engine, the
// seed and the dashboards all read it, and it imports none of them.
package model
