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
