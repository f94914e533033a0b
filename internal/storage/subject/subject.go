// Package subject carries out data-subject requests for consented
// identifiers: export every stored row of one subject (GDPR Art. 15/20,
// as JSON Lines or CSV) and erase them (Art. 17).
//
// A subject is named by the site and the id the site sent as uid in mode
// consented; Glimpse stored only its keyed hash (identity.SubjectKey) in
// events.subject_id, so the id is hashed again with the site's key to find
// the rows. Only the events table carries subject ids: sessions and the
// hourly rollups hold no identifier that links to a subject.
//
// Rows not in ClickHouse yet are included: an export reads the pending
// rows too (Pending), and an erase first makes the writer drop the
// subject's unstored rows (the running server's writer, or a tombstone in
// a stopped server's spool), then deletes with a mutation, waits for
// system.mutations, and verifies that no row is left in ClickHouse or
// pending.
package subject

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/glimpse-analytics/glimpse/internal/config"
	"github.com/glimpse-analytics/glimpse/internal/csvcell"
	"github.com/glimpse-analytics/glimpse/internal/identity"
	"github.com/glimpse-analytics/glimpse/internal/model"
	"github.com/glimpse-analytics/glimpse/internal/storage/retention"
)

// Options configure a Service.
type Options struct {
	Conn  driver.Conn
	Sites *config.File
	// Pending holds the rows not stored yet: the running server's writer
	// (serve), or for the command line a spool directory read without
	// taking it over and erased through a tombstone (refused while a
	// server holds it). Nil: none.
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

// Errors a caller maps to 4xx.
var (
	ErrUnknownSite  = errors.New("unknown site")
	ErrNotConsented = errors.New("site is not in privacy mode consented: it stores no subject ids")
	ErrNoUID        = errors.New("missing uid")
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

// Formats of Export.
const (
	JSONLines = "jsonl"
	CSV       = "csv"
)

// selectList is the events columns with event_id and type as text, the
// shape model.Event.Values gives spooled rows.
func selectList() string {
	cols := model.EventColumns()
	for i, c := range cols {
		if c == "event_id" || c == "type" {
			cols[i] = "toString(" + c + ")"
		}
	}
	return strings.Join(cols, ", ")
}

// Export writes every row of the subject, stored or spooled, once each,
// in format to w; it returns the number of rows.
func (s *Service) Export(ctx context.Context, site, subject, format string, w io.Writer) (int, error) {
	if format != JSONLines && format != CSV {
		return 0, fmt.Errorf("unknown format %q (want jsonl or csv)", format)
	}
	out := newEncoder(format, w)
	seen := map[string]bool{}
	rows, err := s.o.Conn.Query(ctx, "SELECT "+selectList()+" FROM events WHERE site_id = ? AND subject_id = ? ORDER BY ts", site, subject)
	if err != nil {
		return 0, fmt.Errorf("cannot read the subject's events: %w", err)
	}
	var sample model.Event
	dest := make([]any, 0, 64)
	for _, v := range sample.Values() {
		dest = append(dest, reflect.New(reflect.TypeOf(v)).Interface())
	}
	vals := make([]any, len(dest))
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			rows.Close()
			return out.n, fmt.Errorf("cannot read the subject's events: %w", err)
		}
		for i, d := range dest {
			vals[i] = reflect.ValueOf(d).Elem().Interface()
		}
		seen[vals[1].(string)] = true
		if err := out.write(vals); err != nil {
			rows.Close()
			return out.n, err
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return out.n, err
	}
	var werr error
	spooled := func(e *model.Event) {
		if werr != nil || e.SiteID != site || string(e.SubjectID) != subject {
			return
		}
		id := e.EventID.String()
		if seen[id] {
			return // stored already, its segment not yet deleted
		}
		seen[id] = true
		werr = out.write(e.Values())
	}
	if s.o.Pending != nil {
		err = s.o.Pending.Events(site, func(e *model.Event) bool { return string(e.SubjectID) == subject }, spooled)
	}
	if err == nil {
		err = werr
	}
	if err == nil {
		err = out.flush()
	}
	return out.n, err
}

// Erase deletes every row of the subject and verifies none is left; it
// returns how many rows ClickHouse held before.
func (s *Service) Erase(ctx context.Context, site, subject string) (uint64, error) {
	x := model.Erasure{Site: site, Subject: subject, Until: time.Now()}
	if s.o.Pending != nil {
		if _, err := s.o.Pending.Erase(x); err != nil {
			return 0, err
		}
	}
	var before uint64
	q := "SELECT count() FROM events WHERE site_id = ? AND subject_id = ?"
	if err := s.o.Conn.QueryRow(ctx, q, site, subject).Scan(&before); err != nil {
		return 0, fmt.Errorf("cannot count the subject's events: %w", err)
	}
	if before > 0 {
		if err := retention.DeleteWait(ctx, s.o.Conn, "events", "site_id = ? AND subject_id = ?", s.o.MutationTimeout, site, subject); err != nil {
			return 0, err
		}
	}
	var left uint64
	if err := s.o.Conn.QueryRow(ctx, q, site, subject).Scan(&left); err != nil {
		return before, fmt.Errorf("cannot verify the erasure: %w", err)
	}
	spooled := 0
	if s.o.Pending != nil {
		if err := s.o.Pending.Events(site, x.OfSubject, func(*model.Event) { spooled++ }); err != nil {
			return before, err
		}
	}
	if left != 0 || spooled != 0 {
		return before, fmt.Errorf("erasure incomplete: %d rows left in ClickHouse, %d in the spool", left, spooled)
	}
	return before, nil
}

// encoder writes rows as JSON Lines or CSV.
type encoder struct {
	format string
	w      io.Writer
	csv    *csv.Writer
	cols   []string
	n      int
	rec    []string
}

func newEncoder(format string, w io.Writer) *encoder {
	e := &encoder{format: format, w: w, cols: model.EventColumns()}
	if format == CSV {
		e.csv = csv.NewWriter(w)
	}
	return e
}

func (e *encoder) write(vals []any) error {
	if e.format == JSONLines {
		var b strings.Builder
		b.WriteByte('{')
		for i, v := range vals {
			if i > 0 {
				b.WriteByte(',')
			}
			k, _ := json.Marshal(e.cols[i])
			b.Write(k)
			b.WriteByte(':')
			if t, ok := v.(time.Time); ok {
				v = t.UTC().Format(time.RFC3339)
			}
			j, err := json.Marshal(v)
			if err != nil {
				return err
			}
			b.Write(j)
		}
		b.WriteString("}\n")
		e.n++
		_, err := io.WriteString(e.w, b.String())
		return err
	}
	if e.n == 0 {
		if err := e.csv.Write(e.header()); err != nil {
			return err
		}
	}
	e.rec = e.rec[:0]
	for _, v := range vals {
		e.rec = append(e.rec, csvField(v))
	}
	e.n++
	return e.csv.Write(e.rec)
}

// header is the CSV's first record: the column names.
func (e *encoder) header() []string {
	h := make([]string, len(e.cols))
	for i, c := range e.cols {
		h[i] = csvcell.Text(c)
	}
	return h
}

// csvField renders a value; text (visitors sent much of it) is kept from
// running as a formula in a spreadsheet.
func csvField(v any) string {
	switch v := v.(type) {
	case string:
		return csvcell.Text(v)
	case time.Time:
		return v.UTC().Format(time.RFC3339)
	case float32:
		return strconv.FormatFloat(float64(v), 'g', -1, 32)
	case []string:
		j, _ := json.Marshal(v)
		return string(j)
	default:
		return fmt.Sprint(v)
	}
}

func (e *encoder) flush() error {
	if e.csv != nil {
		if e.n == 0 {
			_ = e.csv.Write(e.header())
		}
		e.csv.Flush()
		return e.csv.Error()
	}
	return nil
}
