package subject

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/glimpse-analytics/glimpse/internal/csvcell"
	"github.com/glimpse-analytics/glimpse/internal/model"
)

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

// sessionsHidden are the sessions columns an export leaves out: how the
// table folds versions, not what it says of the visit.
var sessionsHidden = map[string]bool{"sign": true, "version": true}

// Export writes every row of the subject, stored or pending, once each,
// in format to w, and returns the number of rows: the subject's events,
// the events and the current state of their sessions (what Erase
// deletes; a live session's state is its last one written). Each row
// names its table: a "table" field in JSON Lines, the first column in
// CSV, whose header has every events column and then the sessions
// columns that events lack.
func (s *Service) Export(ctx context.Context, site, subject, format string, w io.Writer) (int, error) {
	if format != JSONLines && format != CSV {
		return 0, fmt.Errorf("unknown format %q (want jsonl or csv)", format)
	}
	ids, err := s.sessionsOf(ctx, site, subject, time.Time{})
	if err != nil {
		return 0, err
	}
	x := model.Erasure{Site: site, Subject: subject}
	x.SetSessions(ids)
	mine := func(e *model.Event) bool { return string(e.SubjectID) == subject || x.InSession(e.SessionID) }

	// Pending events before stored ones, so that one stored meanwhile is
	// found in ClickHouse; those found there too are left out below.
	var pending [][]any
	if s.o.Pending != nil {
		err := s.o.Pending.Events(site, mine, func(e *model.Event) { pending = append(pending, e.Values()) })
		if err != nil {
			return 0, fmt.Errorf("cannot read pending events: %w", err)
		}
	}
	sesCols, sessions, err := s.sessionRows(ctx, site, x.Sessions)
	if err != nil {
		return 0, err
	}
	out := newEncoder(format, w, sesCols)

	ev := cond{"site_id = ? AND subject_id = ?", []any{site, subject}}
	if len(x.Sessions) > 0 {
		ev = cond{"site_id = ? AND (subject_id = ? OR has(?, session_id))", []any{site, subject, x.Sessions}}
	}
	rows, err := s.o.Conn.Query(ctx, "SELECT "+selectList()+" FROM events WHERE "+ev.sql+" ORDER BY ts", ev.args...)
	if err != nil {
		return 0, fmt.Errorf("cannot read the subject's events: %w", err)
	}
	seen := map[string]bool{}
	dest, vals := scanDest(rows.ColumnTypes())
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			rows.Close()
			return out.n, fmt.Errorf("cannot read the subject's events: %w", err)
		}
		deref(dest, vals)
		seen[vals[1].(string)] = true
		if err := out.write("events", out.events, vals); err != nil {
			rows.Close()
			return out.n, err
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return out.n, fmt.Errorf("cannot read the subject's events: %w", err)
	}
	for _, vals := range pending {
		if id := vals[1].(string); !seen[id] {
			seen[id] = true
			if err := out.write("events", out.events, vals); err != nil {
				return out.n, err
			}
		}
	}
	for _, vals := range sessions {
		if err := out.write("sessions", out.sessions, vals); err != nil {
			return out.n, err
		}
	}
	return out.n, out.flush()
}

// sessionRows returns the sessions columns an export shows and the
// current state (the newest version) of each of site's sessions ids.
func (s *Service) sessionRows(ctx context.Context, site string, ids []uint64) ([]string, [][]any, error) {
	in := sessionsOf(site, ids)
	rows, err := s.o.Conn.Query(ctx, `SELECT * FROM (
    SELECT * FROM sessions WHERE `+in.sql+` AND sign = 1 ORDER BY version DESC LIMIT 1 BY session_id
) ORDER BY start, session_id`, in.args...)
	if err != nil {
		return nil, nil, fmt.Errorf("cannot read the subject's sessions: %w", err)
	}
	defer rows.Close()
	var cols []string
	var keep []int
	for i, c := range rows.Columns() {
		if !sessionsHidden[c] {
			cols = append(cols, c)
			keep = append(keep, i)
		}
	}
	var out [][]any
	dest, vals := scanDest(rows.ColumnTypes())
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return nil, nil, fmt.Errorf("cannot read the subject's sessions: %w", err)
		}
		deref(dest, vals)
		row := make([]any, len(keep))
		for i, k := range keep {
			row[i] = vals[k]
		}
		out = append(out, row)
	}
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("cannot read the subject's sessions: %w", err)
	}
	return cols, out, nil
}

// scanDest returns pointers to scan a row of columns of types into, and
// the slice deref fills with their values.
func scanDest[T interface{ ScanType() reflect.Type }](types []T) (dest, vals []any) {
	dest = make([]any, len(types))
	for i, t := range types {
		dest[i] = reflect.New(t.ScanType()).Interface()
	}
	return dest, make([]any, len(types))
}

func deref(dest, vals []any) {
	for i, d := range dest {
		vals[i] = reflect.ValueOf(d).Elem().Interface()
	}
}

// encoder writes rows of events and sessions as JSON Lines or CSV.
type encoder struct {
	format           string
	w                io.Writer
	csv              *csv.Writer
	events, sessions []string // each table's columns
	all              []string // CSV: "table", then every column once
	at               map[string]int
	n                int
	rec              []string
}

func newEncoder(format string, w io.Writer, sessions []string) *encoder {
	e := &encoder{format: format, w: w, events: model.EventColumns(), sessions: sessions}
	if format == CSV {
		e.csv = csv.NewWriter(w)
		e.all = append([]string{"table"}, e.events...)
		e.at = map[string]int{}
		for i, c := range e.all {
			e.at[c] = i
		}
		for _, c := range sessions {
			if _, ok := e.at[c]; !ok {
				e.at[c] = len(e.all)
				e.all = append(e.all, c)
			}
		}
	}
	return e
}

func (e *encoder) write(table string, cols []string, vals []any) error {
	if e.format == JSONLines {
		var b strings.Builder
		b.WriteString(`{"table":`)
		t, _ := json.Marshal(table)
		b.Write(t)
		for i, v := range vals {
			b.WriteByte(',')
			k, _ := json.Marshal(cols[i])
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
	e.rec = append(e.rec[:0], make([]string, len(e.all))...)
	e.rec[0] = table
	for i, v := range vals {
		e.rec[e.at[cols[i]]] = csvField(v)
	}
	e.n++
	return e.csv.Write(e.rec)
}

// header is the CSV's first record: the column names.
func (e *encoder) header() []string {
	h := make([]string, len(e.all))
	for i, c := range e.all {
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
