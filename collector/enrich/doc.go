// Package enrich turns the raw, privacy-sensitive parts of an ingest request
// (page URL, referrer) into the coarse fields that Glimpse stores: a
// cleaned page URL with UTM fields, and a referrer source and channel.
// (The User-Agent is collector/agent's.)
//
// Everything here sits on the ingest hot path, so the APIs are shaped to
// allocate nothing per request in steady state:
//
//   - inputs are []byte slices straight from the request;
//   - variable-length outputs are appended into caller-owned buffers
//     ([PageURL], [Referrer]) that a handler keeps in a pooled struct and
//     clears with Reset;
//   - fixed vocabulary (channels, source names) is returned as
//     package-level constant strings or strings owned by immutable tables;
//     an unknown referrer's host, the one source outside them, is interned
//     in the pooled [Referrer] that saw it.
//
// Privacy: nothing in this package logs or returns the raw URL or the raw
// referrer. Query strings are reduced to UTM fields, the
// `ref`/`source` parameters and a per-site allowlist; paths and kept values
// are redacted by collector/redact (see DESIGN.md, "Privacy model").
//
// The source table (referrer hosts, source names and channels) is
// sources_gen.txt, generated from Snowplow's referer-parser list by
// `go generate` (internal/gensources; `make update-lists`), plus the local
// overlay sources.local.txt; both are embedded at build time and their
// headers document provenance, licence and format.
package enrich
