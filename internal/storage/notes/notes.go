// Package notes stores what dashboard users write about a site: saved
// segments (named filter sets) and chart annotations, in ClickHouse
// (migrations/0015_segments_annotations.sql).
//
// A record is never updated in place: each create, edit and delete
// inserts the whole record again with a higher version (a delete with
// deleted = 1), and readers keep each id's row of the highest version.
// The tables are ReplacingMergeTree(version), so merges keep that row
// alone and a deleted record stays deleted.
//
// The store checks existence and the per-site limits; what a valid name,
// filter string or text is, the caller decides (dashboards).
package notes

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"sync"
	"time"

	"github.com/glimpse-analytics/glimpse/internal/chconn"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// Tables.
const (
	SegmentsTable    = "segments"
	AnnotationsTable = "annotations"
)

// Limits per site.
const (
	MaxSegments    = 100
	MaxAnnotations = 1000
)

// ErrNotFound: no live record with that id on that site.
var ErrNotFound = errors.New("no such record (deleted, or never there)")

// LimitError: a site has as many records as it may.
type LimitError struct {
	What string
	Max  int
}

func (e *LimitError) Error() string {
	return fmt.Sprintf("a site may have at most %d %s: delete one first", e.Max, e.What)
}

// Store reads and writes the records.
type Store struct {
	conn    driver.Conn
	cluster string // OnCluster
	now     func() time.Time
	timeout time.Duration

	mu   sync.Mutex
	last uint64 // the last version handed out
}

// New returns a store over conn; now defaults to time.Now.
func New(conn driver.Conn, now func() time.Time) *Store {
	if now == nil {
		now = time.Now
	}
	return &Store{conn: conn, now: now, timeout: 10 * time.Second}
}

// OnCluster tells s that its database was migrated for cluster (--cluster;
// empty: one server): a record saved is then on every replica of its
// shard when the save returns (chconn.Store.Sync), so that it is listed
// at once through any host.
func (s *Store) OnCluster(cluster string) *Store {
	s.cluster = cluster
	return s
}

// insert runs an INSERT ... SELECT of one record.
func (s *Store) insert(ctx context.Context, table, q string, args ...any) error {
	ctx, err := chconn.Store{Conn: s.conn, Cluster: s.cluster}.Sync(ctx)
	if err == nil {
		err = s.conn.Exec(ctx, q, args...)
	}
	if err != nil {
		return fmt.Errorf("cannot insert into %s: %w", table, err)
	}
	return nil
}

// version returns a version higher than any this store handed out: the
// clock in Unix nanoseconds, made unique.
func (s *Store) version() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	v := uint64(s.now().UnixNano())
	if v <= s.last {
		v = s.last + 1
	}
	s.last = v
	return v
}

var idRe = regexp.MustCompile(`^[0-9a-f]{16}$`)

// ValidID reports whether id has the form of the ids this store makes.
func ValidID(id string) bool { return idRe.MatchString(id) }

func newID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Segment is a saved filter set.
type Segment struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Filters   string    `json:"filters"`
	CreatedBy string    `json:"created_by,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

const segmentCols = "id, argMax(name, version) AS n, argMax(filters, version) AS f, argMax(created_by, version) AS cb, " +
	"argMax(created_at, version) AS ca, argMax(updated_at, version) AS ua, argMax(deleted, version) AS gone"

// Segments lists site's live segments by name.
func (s *Store) Segments(ctx context.Context, site string) ([]Segment, error) {
	return s.segments(ctx, site, "")
}

func (s *Store) segments(ctx context.Context, site, id string) ([]Segment, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	q := "SELECT " + segmentCols + " FROM " + SegmentsTable + " WHERE site_id = ?"
	args := []any{site}
	if id != "" {
		q += " AND id = ?"
		args = append(args, id)
	}
	q += " GROUP BY id HAVING gone = 0 ORDER BY lowerUTF8(n), id"
	rows, err := s.conn.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("cannot read %s: %w", SegmentsTable, err)
	}
	defer rows.Close()
	out := []Segment{}
	for rows.Next() {
		var g Segment
		var gone uint8
		if err := rows.Scan(&g.ID, &g.Name, &g.Filters, &g.CreatedBy, &g.CreatedAt, &g.UpdatedAt, &gone); err != nil {
			return nil, fmt.Errorf("cannot read %s: %w", SegmentsTable, err)
		}
		g.CreatedAt, g.UpdatedAt = g.CreatedAt.UTC(), g.UpdatedAt.UTC()
		out = append(out, g)
	}
	return out, rows.Err()
}

// Segment returns one live segment, or ErrNotFound.
func (s *Store) Segment(ctx context.Context, site, id string) (Segment, error) {
	gs, err := s.segments(ctx, site, id)
	if err != nil {
		return Segment{}, err
	}
	if len(gs) == 0 {
		return Segment{}, ErrNotFound
	}
	return gs[0], nil
}

// CreateSegment stores a new segment of site, unless the site has
// MaxSegments already (a *LimitError).
func (s *Store) CreateSegment(ctx context.Context, site, name, filters, by string) (Segment, error) {
	gs, err := s.Segments(ctx, site)
	if err != nil {
		return Segment{}, err
	}
	if len(gs) >= MaxSegments {
		return Segment{}, &LimitError{"segments", MaxSegments}
	}
	now := s.now().UTC().Truncate(time.Second)
	g := Segment{ID: newID(), Name: name, Filters: filters, CreatedBy: by, CreatedAt: now, UpdatedAt: now}
	return g, s.putSegment(ctx, site, g, false)
}

// UpdateSegment renames a live segment and replaces its filters.
func (s *Store) UpdateSegment(ctx context.Context, site, id, name, filters string) (Segment, error) {
	g, err := s.Segment(ctx, site, id)
	if err != nil {
		return Segment{}, err
	}
	g.Name, g.Filters, g.UpdatedAt = name, filters, s.now().UTC().Truncate(time.Second)
	return g, s.putSegment(ctx, site, g, false)
}

// DeleteSegment deletes a live segment.
func (s *Store) DeleteSegment(ctx context.Context, site, id string) error {
	g, err := s.Segment(ctx, site, id)
	if err != nil {
		return err
	}
	g.UpdatedAt = s.now().UTC().Truncate(time.Second)
	return s.putSegment(ctx, site, g, true)
}

func (s *Store) putSegment(ctx context.Context, site string, g Segment, deleted bool) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	// INSERT ... SELECT: INSERT ... VALUES hangs on ClickHouse 18.16
	// through clickhouse-go (CLICKHOUSE.md).
	return s.insert(ctx, SegmentsTable, "INSERT INTO "+SegmentsTable+
		" (site_id, id, name, filters, created_by, created_at, updated_at, version, deleted)"+
		" SELECT ?, ?, ?, ?, ?, toDateTime(?), toDateTime(?), toUInt64(?), toUInt8(?)",
		site, g.ID, g.Name, g.Filters, g.CreatedBy, g.CreatedAt.Unix(), g.UpdatedAt.Unix(), s.version(), b2u(deleted))
}

func b2u(b bool) uint8 {
	if b {
		return 1
	}
	return 0
}

// Annotation is a short text on a day, or on a minute of it, in the
// site's time zone.
type Annotation struct {
	ID string `json:"id"`
	// Date is YYYY-MM-DD; Time is HH:MM, or "" for the whole day.
	Date      string    `json:"date"`
	Time      string    `json:"time,omitempty"`
	Text      string    `json:"text"`
	CreatedBy string    `json:"created_by,omitempty"`
	CreatedAt time.Time `json:"created_at"`
}

// minute is a's time as minutes after midnight, -1 for none.
func (a Annotation) minute() int16 {
	if a.Time == "" {
		return -1
	}
	t, err := time.Parse("15:04", a.Time)
	if err != nil {
		return -1
	}
	return int16(t.Hour()*60 + t.Minute())
}

// Annotations lists site's live annotations from day from to day to
// (YYYY-MM-DD, both included; "" for no bound), oldest first.
func (s *Store) Annotations(ctx context.Context, site, from, to string) ([]Annotation, error) {
	return s.annotations(ctx, site, "", from, to)
}

func (s *Store) annotations(ctx context.Context, site, id, from, to string) ([]Annotation, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	q := "SELECT id, toString(argMax(day, version)) AS d, argMax(minute, version) AS m, argMax(text, version) AS t, " +
		"argMax(created_by, version) AS cb, argMax(created_at, version) AS ca, argMax(deleted, version) AS gone FROM " +
		AnnotationsTable + " WHERE site_id = ?"
	args := []any{site}
	if id != "" {
		q += " AND id = ?"
		args = append(args, id)
	}
	q += " GROUP BY id HAVING gone = 0"
	if from != "" {
		q += " AND d >= ?"
		args = append(args, from)
	}
	if to != "" {
		q += " AND d <= ?"
		args = append(args, to)
	}
	q += " ORDER BY d, m, ca, id"
	rows, err := s.conn.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("cannot read %s: %w", AnnotationsTable, err)
	}
	defer rows.Close()
	out := []Annotation{}
	for rows.Next() {
		var a Annotation
		var m int16
		var gone uint8
		if err := rows.Scan(&a.ID, &a.Date, &m, &a.Text, &a.CreatedBy, &a.CreatedAt, &gone); err != nil {
			return nil, fmt.Errorf("cannot read %s: %w", AnnotationsTable, err)
		}
		if m >= 0 {
			a.Time = fmt.Sprintf("%02d:%02d", m/60, m%60)
		}
		a.CreatedAt = a.CreatedAt.UTC()
		out = append(out, a)
	}
	return out, rows.Err()
}

// Annotation returns one live annotation, or ErrNotFound.
func (s *Store) Annotation(ctx context.Context, site, id string) (Annotation, error) {
	as, err := s.annotations(ctx, site, id, "", "")
	if err != nil {
		return Annotation{}, err
	}
	if len(as) == 0 {
		return Annotation{}, ErrNotFound
	}
	return as[0], nil
}

// CreateAnnotation stores a new annotation of site (date YYYY-MM-DD,
// tm HH:MM or ""), unless the site has MaxAnnotations already.
func (s *Store) CreateAnnotation(ctx context.Context, site, date, tm, text, by string) (Annotation, error) {
	as, err := s.Annotations(ctx, site, "", "")
	if err != nil {
		return Annotation{}, err
	}
	if len(as) >= MaxAnnotations {
		return Annotation{}, &LimitError{"annotations", MaxAnnotations}
	}
	a := Annotation{ID: newID(), Date: date, Time: tm, Text: text, CreatedBy: by, CreatedAt: s.now().UTC().Truncate(time.Second)}
	return a, s.putAnnotation(ctx, site, a, false)
}

// UpdateAnnotation changes a live annotation's day, time and text.
func (s *Store) UpdateAnnotation(ctx context.Context, site, id, date, tm, text string) (Annotation, error) {
	a, err := s.Annotation(ctx, site, id)
	if err != nil {
		return Annotation{}, err
	}
	a.Date, a.Time, a.Text = date, tm, text
	return a, s.putAnnotation(ctx, site, a, false)
}

// DeleteAnnotation deletes a live annotation.
func (s *Store) DeleteAnnotation(ctx context.Context, site, id string) error {
	a, err := s.Annotation(ctx, site, id)
	if err != nil {
		return err
	}
	return s.putAnnotation(ctx, site, a, true)
}

func (s *Store) putAnnotation(ctx context.Context, site string, a Annotation, deleted bool) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	return s.insert(ctx, AnnotationsTable, "INSERT INTO "+AnnotationsTable+
		" (site_id, id, day, minute, text, created_by, created_at, version, deleted)"+
		" SELECT ?, ?, toDate(?), toInt16(?), ?, ?, toDateTime(?), toUInt64(?), toUInt8(?)",
		site, a.ID, a.Date, a.minute(), a.Text, a.CreatedBy, a.CreatedAt.Unix(), s.version(), b2u(deleted))
}
