// Package enrich turns the raw, privacy-sensitive parts of an ingest request
// (User-Agent, client hints, page URL, referrer) into the coarse fields that
// Glimpse stores: browser and OS names, device class, a bot verdict, a
// cleaned page URL with UTM fields, and a referrer source and channel.
//
// Everything here sits on the ingest hot path, so the APIs are shaped to
// allocate nothing per request in steady state:
//
//   - inputs are []byte slices straight from the request;
//   - variable-length outputs are appended into caller-owned buffers
//     ([PageURL], [Referrer]) that a handler keeps in a pooled struct and
//     clears with Reset;
//   - fixed vocabulary (browser names, channels, source names) is returned as
//     package-level constant strings or strings owned by immutable tables;
//   - parsed User-Agents are cached in a bounded LRU and returned as pointers
//     to immutable [UA] values.
//
// Privacy: nothing in this package logs or returns the raw User-Agent, the
// raw URL or the raw referrer. Query strings are reduced to UTM fields, the
// `ref`/`source` parameters and a per-site allowlist; e-mail addresses and
// long random-looking tokens are redacted from paths and kept values (see
// DESIGN.md, "Privacy model").
//
// The data files bots.txt (crawler User-Agent substrings) and sources.txt
// (referrer hosts, source names and channels) are embedded at build time;
// each documents its provenance and how to update it in its header.
package enrich
