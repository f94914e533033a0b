// Package session holds live sessions in memory (Cache) and hands their
// changes to the writer, which checkpoints them in the sessions table: a
// session costs at most two rows per checkpoint however many events it
// had. Nothing in it is stored but through those rows, and nothing
// identifies a person: sessions are keyed by the daily visitor id
// (internal/identity) and end at the idle timeout, at the maximum length
// or at 00:00 UTC, when visitor ids change, so that no session id joins
// two days' ids.
package session
