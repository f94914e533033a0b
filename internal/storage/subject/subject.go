// Package subject carries out data-subject requests for consented
// identifiers: export every stored row of one subject (GDPR Art. 15/20,
// as JSON Lines or CSV) and erase them (Art. 17).
//
// A subject is named by the site and the id the site sent as uid in mode
// consented; Glimpse stored only its keyed hash (identity.SubjectKey) in
// events.subject_id, so the id is hashed again with the site's key to find
// the rows. A person's rows are their events (by subject id) and the
// sessions those events belong to (model.Erasure): the sessions rows and
// every event of those sessions, such as the pages seen before signing
// in, which carry no subject id. The hourly rollups hold no rows of a
// person, but their visitor states hold the person's visitor ids, and
// pages_hourly and sessions_dims_hourly their pages and attribution as
// keys: an erasure rebuilds the rollup rows of every hour the person's
// rows were in from the raw rows of everyone else (rollups.go).
//
// Rows not in ClickHouse yet are included: an export reads the pending
// rows too (Pending), and an erasure first makes the writer drop the
// person's unstored rows and blank their spooled records (the running
// server's writer, or a stopped server's spool), then deletes with
// mutations, waits for system.mutations, and counts what is left.
package subject

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/glimpse-analytics/glimpse/internal/chconn"
	"github.com/glimpse-analytics/glimpse/internal/config"
	"github.com/glimpse-analytics/glimpse/internal/identity"
	"github.com/glimpse-analytics/glimpse/internal/model"
	"github.com/glimpse-analytics/glimpse/internal/storage/retention"
)

// Options configure a Service.
type Options struct {
	Conn driver.Conn
	// Cluster is the cluster the database was migrated for (--cluster);
	// empty: one server. Deletes then go to the *_local tables of each
	// shard, through Dial (chconn.Store).
	Cluster string
	Dial    func(ctx context.Context, addr string) (driver.Conn, error)
	Sites   *config.File
	// Pending holds the rows not stored yet: the running server's writer
	// (serve), or for the command line a spool directory read without
	// taking it over and erased through a tombstone (refused while a
	// server holds it). Nil: none, and nothing to hold while rollups
	// are rebuilt (another process writing meanwhile may make the
	// rebuilt hours count a row twice or miss it).
	Pending Pending
	// MutationTimeout bounds the wait for the delete (default 30 min).
	MutationTimeout time.Duration
}

// Pending is where accepted rows wait before ClickHouse has them: the
// collector's writer implements it (collector/sink), and so does a spool
// directory read offline (collector/eventlog).
type Pending interface {
	// Events calls fn for every pending event of site (possibly stored
	// already, not erased) that match selects, every event accepted
	// before the call included; the event is valid during the call.
	Events(site string, match func(*model.Event) bool, fn func(*model.Event)) error
	// Erase drops every pending event x matches and every change of its
	// sessions, blanks the erased events' bytes where they are spooled,
	// and returns how many records it blanked; once it returns, nothing
	// of x can be stored.
	Erase(x model.Erasure) (int, error)
	// Hold runs fn while nothing is inserted, so that a rollup rebuilt
	// from the raw tables misses no row and counts none twice.
	Hold(fn func() error) error
}

// Service runs subject requests.
type Service struct{ o Options }

// New returns a Service.
func New(o Options) *Service {
	if o.MutationTimeout <= 0 {
		o.MutationTimeout = 30 * time.Minute
	}
	return &Service{o: o}
}

func (s *Service) store() chconn.Store {
	return chconn.Store{Conn: s.o.Conn, Cluster: s.o.Cluster, Dial: s.o.Dial}
}

// Errors a caller maps to 4xx.
var (
	ErrUnknownSite  = errors.New("unknown site")
	ErrNotConsented = errors.New("site is not in privacy mode consented: it stores no subject ids")
	ErrNoUID        = errors.New("missing uid")
	// ErrIncomplete: rows of the subject are left after an erasure,
	// accepted after it began (Erased.Remaining); erase again.
	ErrIncomplete = errors.New("erasure incomplete")
)

// SubjectID hashes uid with site's key.
func (s *Service) SubjectID(site, uid string) (string, error) {
	if uid == "" {
		return "", ErrNoUID
	}
	for i := range s.o.Sites.Sites {
		c := &s.o.Sites.Sites[i]
		if c.Domain != site {
			continue
		}
		if c.Privacy.Mode != config.ModeConsented || c.Privacy.SubjectKey == "" {
			return "", ErrNotConsented
		}
		return identity.NewSubjectKey([]byte(c.Privacy.SubjectKey)).String(uid), nil
	}
	return "", fmt.Errorf("%w %q", ErrUnknownSite, site)
}

// Erased is what an erasure did.
type Erased struct {
	// Deleted is the rows ClickHouse held, events and sessions rows.
	Deleted uint64
	// Blanked is the spooled records blanked.
	Blanked int
	// Remaining is the rows of the subject left: events accepted after
	// the erasure began, and the rows of their sessions.
	Remaining uint64
}

// Erase deletes every row of the subject accepted up to now: their
// events, their sessions' rows and events, pending or stored, and their
// visitor ids, pages and attribution in the rollups. It then counts the
// subject's rows left anywhere and returns ErrIncomplete if there are any.
func (s *Service) Erase(ctx context.Context, site, subject string) (Erased, error) {
	var res Erased
	x := model.Erasure{Site: site, Subject: subject, Until: time.Now()}
	ids, err := s.sessionsOf(ctx, site, subject, x.Until)
	if err != nil {
		return res, err
	}
	x.SetSessions(ids)
	if s.o.Pending != nil {
		if res.Blanked, err = s.o.Pending.Erase(x); err != nil {
			return res, err
		}
	}
	if res.Deleted, err = s.deleteStored(ctx, &x); err != nil {
		return res, err
	}
	if res.Remaining, err = s.remaining(ctx, &x); err != nil {
		return res, err
	}
	if res.Remaining > 0 {
		return res, fmt.Errorf("%w: %d rows of the subject were accepted after the erasure began; erase again", ErrIncomplete, res.Remaining)
	}
	return res, nil
}

// deleteStored deletes what ClickHouse holds of x and returns the rows
// deleted from events and sessions. The rollups are rebuilt first, from
// the raw rows less x's, while nothing is inserted; the raw rows go last,
// sessions before the events that name them, so that an erasure cut
// short finds the same rows again when it is run again.
func (s *Service) deleteStored(ctx context.Context, x *model.Erasure) (uint64, error) {
	ev, err := s.eventsOf(ctx, x)
	if err != nil {
		return 0, err
	}
	ses := sessionsOf(x.Site, x.Sessions)
	nEv, err := s.count(ctx, "events", ev)
	if err != nil {
		return 0, err
	}
	nSes, err := s.count(ctx, "sessions", ses)
	if err != nil {
		return 0, err
	}
	if nEv+nSes == 0 {
		return 0, nil
	}
	erased := map[string]cond{"events": ev, "sessions": ses}
	hours := map[string][]uint32{}
	for _, r := range rollups {
		if _, ok := hours[r.raw]; !ok {
			if hours[r.raw], err = s.hours(ctx, r.raw, r.hour, erased[r.raw]); err != nil {
				return 0, err
			}
		}
	}
	hold := func(fn func() error) error { return fn() }
	if s.o.Pending != nil {
		hold = s.o.Pending.Hold
	}
	err = hold(func() error { return rebuild(ctx, s.store(), s.o.MutationTimeout, x.Site, hours, erased) })
	if err != nil {
		return 0, err
	}
	for _, d := range []struct {
		table string
		n     uint64
		c     cond
	}{{"sessions", nSes, ses}, {"events", nEv, ev}} {
		if d.n > 0 {
			if err := retention.DeleteWait(ctx, s.store(), d.table, d.c.sql, s.o.MutationTimeout, d.c.args...); err != nil {
				return 0, err
			}
		}
	}
	return nEv + nSes, nil
}

// remaining counts the rows of x's subject left after its erasure: in
// ClickHouse, their events of any time and the events and rows of their
// sessions; pending, the events not stored yet.
func (s *Service) remaining(ctx context.Context, x *model.Erasure) (uint64, error) {
	ids, err := s.sessionsOf(ctx, x.Site, x.Subject, time.Time{})
	if err != nil {
		return 0, err
	}
	all := model.Erasure{Site: x.Site, Subject: x.Subject}
	all.SetSessions(append(ids, x.Sessions...))
	ev := cond{"site_id = ? AND subject_id = ?", []any{x.Site, x.Subject}}
	if len(all.Sessions) > 0 {
		ev = cond{"site_id = ? AND (subject_id = ? OR has(?, session_id))", []any{x.Site, x.Subject, all.Sessions}}
	}
	nEv, err := s.count(ctx, "events", ev)
	if err != nil {
		return 0, err
	}
	nSes, err := s.count(ctx, "sessions", sessionsOf(x.Site, all.Sessions))
	if err != nil {
		return 0, err
	}
	n := nEv + nSes
	if s.o.Pending == nil {
		return n, nil
	}
	var pending []string
	mine := func(e *model.Event) bool { return string(e.SubjectID) == x.Subject || all.InSession(e.SessionID) }
	if err := s.o.Pending.Events(x.Site, mine, func(e *model.Event) { pending = append(pending, e.EventID.String()) }); err != nil {
		return 0, fmt.Errorf("cannot read pending events: %w", err)
	}
	if len(pending) > 0 {
		// Those stored already are counted above.
		stored, err := s.count(ctx, "events", cond{"site_id = ? AND has(?, toString(event_id))", []any{x.Site, pending}})
		if err != nil {
			return 0, err
		}
		n += uint64(len(pending)) - stored
	}
	return n, nil
}

// cond is a WHERE clause and its arguments, bound client-side.
type cond struct {
	sql  string
	args []any
}

// sessionsOf is the sessions rows of site's sessions ids.
func sessionsOf(site string, ids []uint64) cond {
	if len(ids) == 0 {
		return cond{"0", nil} // has([], x) fails on 18.16: Array(Nothing)
	}
	return cond{"site_id = ? AND has(?, session_id)", []any{site, ids}}
}

// eventsOf returns the events x erases from ClickHouse: those of its
// sessions, and the subject's events up to x.Until outside them (none
// are expected: every event of a known visitor has a session). The
// subject id is in the condition only when needed, since ClickHouse
// keeps the text of its last mutations (mutation_*.txt beside the
// table's parts) and session ids link to no one once their rows are gone.
func (s *Service) eventsOf(ctx context.Context, x *model.Erasure) (cond, error) {
	loose := cond{"site_id = ? AND subject_id = ? AND toUInt32(ts) <= ?", []any{x.Site, x.Subject, x.Until.Unix()}}
	if len(x.Sessions) == 0 {
		return loose, nil
	}
	in := sessionsOf(x.Site, x.Sessions)
	n, err := s.count(ctx, "events", cond{loose.sql + " AND NOT has(?, session_id)", append(slices.Clone(loose.args), x.Sessions)})
	if err != nil || n == 0 {
		return in, err
	}
	return cond{"site_id = ? AND (has(?, session_id) OR (subject_id = ? AND toUInt32(ts) <= ?))",
		[]any{x.Site, x.Sessions, x.Subject, x.Until.Unix()}}, nil
}

// sessionsOf returns the sessions of site's events of subject, pending
// and stored, accepted up to until (zero: any time), ascending. Pending
// events are read first, so that one stored meanwhile is found in
// ClickHouse.
func (s *Service) sessionsOf(ctx context.Context, site, subject string, until time.Time) ([]uint64, error) {
	var ids []uint64
	if s.o.Pending != nil {
		mine := func(e *model.Event) bool {
			return string(e.SubjectID) == subject && (until.IsZero() || !e.TS.After(until))
		}
		if err := s.o.Pending.Events(site, mine, func(e *model.Event) { ids = append(ids, e.SessionID) }); err != nil {
			return nil, fmt.Errorf("cannot read pending events: %w", err)
		}
	}
	q := "SELECT DISTINCT session_id FROM events WHERE site_id = ? AND subject_id = ?"
	args := []any{site, subject}
	if !until.IsZero() {
		q += " AND toUInt32(ts) <= ?"
		args = append(args, until.Unix())
	}
	rows, err := s.o.Conn.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("cannot read the subject's sessions: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id uint64
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("cannot read the subject's sessions: %w", err)
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("cannot read the subject's sessions: %w", err)
	}
	var x model.Erasure
	x.SetSessions(ids)
	return x.Sessions, nil
}

// count counts table's rows where c holds.
func (s *Service) count(ctx context.Context, table string, c cond) (uint64, error) {
	var n uint64
	if err := s.o.Conn.QueryRow(ctx, "SELECT count() FROM "+table+" WHERE "+c.sql, c.args...).Scan(&n); err != nil {
		return 0, fmt.Errorf("cannot count the subject's rows in %s: %w", table, err)
	}
	return n, nil
}

// hours returns the hours (Unix seconds) of table's rows where c holds,
// hour being the SQL of a row's hour.
func (s *Service) hours(ctx context.Context, table, hour string, c cond) ([]uint32, error) {
	rows, err := s.o.Conn.Query(ctx, "SELECT DISTINCT toUInt32("+hour+") FROM "+table+" WHERE "+c.sql, c.args...)
	if err != nil {
		return nil, fmt.Errorf("cannot read the hours of the subject's rows in %s: %w", table, err)
	}
	defer rows.Close()
	var out []uint32
	for rows.Next() {
		var h uint32
		if err := rows.Scan(&h); err != nil {
			return nil, fmt.Errorf("cannot read the hours of the subject's rows in %s: %w", table, err)
		}
		out = append(out, h)
	}
	return out, rows.Err()
}
