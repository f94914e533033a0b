// Package insert is how the writer talks to ClickHouse: INSERTs that name
// only the columns a batch needs (Builder), prepared batches reused from
// one INSERT to the next (Prepared), INSERTs kept open across several
// blocks (Stream), and the driver's String column buffers carried from one
// stream to the next (Buffers). It knows nothing of events or sessions:
// callers hand it column slices.
package insert

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/column"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/google/uuid"
)

// Builder writes INSERT statements naming only the columns a batch
// needs, reusing its buffers from one batch to the next.
type Builder struct {
	// All names every column, defaults or not: every INSERT of a table
	// is then the same statement, so that any run of rows can go in one
	// INSERT (a cluster's writer resends a failed INSERT's rows as one).
	All  bool
	sb   strings.Builder
	cols []any
}

// Build keeps the columns of names/cols that hold anything but defaults
// (every column with All) and returns the INSERT naming them, with their
// slices in the same order.
func (ib *Builder) Build(table string, names []string, cols []any) (string, []any) {
	ib.cols = ib.cols[:0]
	ib.sb.Reset()
	ib.sb.WriteString("INSERT INTO ")
	ib.sb.WriteString(table)
	ib.sb.WriteString(" (")
	for i, col := range cols {
		if !ib.All && allDefault(col) {
			continue
		}
		if len(ib.cols) > 0 {
			ib.sb.WriteString(", ")
		}
		ib.sb.WriteString(names[i])
		ib.cols = append(ib.cols, col)
	}
	ib.sb.WriteByte(')')
	return ib.sb.String(), ib.cols
}

// allDefault reports whether a column slice holds only the value ClickHouse
// would fill in for an omitted column. An empty slice is not "all default":
// a batch always names at least its first column.
func allDefault(col any) bool {
	switch c := col.(type) {
	case []string:
		return len(c) > 0 && !anyNonZero(c)
	case []uint8:
		return len(c) > 0 && !anyNonZero(c)
	case []uint16:
		return len(c) > 0 && !anyNonZero(c)
	case []uint32:
		return len(c) > 0 && !anyNonZero(c)
	case []int64:
		return len(c) > 0 && !anyNonZero(c)
	case []float32:
		return len(c) > 0 && !anyNonZero(c)
	case [][]string:
		for _, a := range c {
			if len(a) > 0 {
				return false
			}
		}
		return len(c) > 0
	case []uint64, []int8, []time.Time:
		return false // ids, signs, types and times are always written
	}
	return false
}

func anyNonZero[T comparable](s []T) bool {
	var zero T
	for _, v := range s {
		if v != zero {
			return true
		}
	}
	return false
}

// maxPrepared bounds the INSERTs a table keeps prepared: one per column set
// in recent use (a site's page-view batches, say, and its mixed batches).
const maxPrepared = 3

// Prepared keeps a table's recent INSERT batches for reuse. The
// driver encodes rows into column buffers that a fresh batch grows from
// nothing (a few MB per 10,000 events, the collector's main source of
// garbage); a reused batch resets its columns and keeps their capacity.
//
// Reuse rests on clickhouse-go's retry path: Send on a batch that was sent
// acquires a connection, starts the same INSERT again and sends the batch's
// block, so resetting the columns and appending new rows first sends the
// new rows, with the server's answer checked as on any Send. The columns
// are appended through Batch.Columns, as Batch.Column refuses a sent batch.
// TestPreparedInsertReuse pins this down against the real server.
type Prepared struct {
	Table string // for error messages
	mu    sync.Mutex
	list  []*preparedInsert // most recently used first
}

type preparedInsert struct {
	query  string
	id     string // the query id of its current INSERT
	idc    *idContext
	batch  driver.Batch
	cols   []column.Interface
	ctx    context.Context // the batch's context for its whole life
	cancel context.CancelFunc
	sent   bool
}

// take removes and returns the prepared INSERT for query, or nil.
func (ps *Prepared) take(query string) *preparedInsert {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	for i, p := range ps.list {
		if p.query == query {
			ps.list = append(ps.list[:i], ps.list[i+1:]...)
			return p
		}
	}
	return nil
}

// put keeps p as the most recently used, dropping the least recently used
// beyond maxPrepared.
func (ps *Prepared) put(p *preparedInsert) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	ps.list = append(ps.list, nil)
	copy(ps.list[1:], ps.list)
	ps.list[0] = p
	if len(ps.list) > maxPrepared {
		ps.list[maxPrepared].close()
		ps.list[maxPrepared] = nil
		ps.list = ps.list[:maxPrepared]
	}
}

// CloseAll drops every prepared INSERT.
func (ps *Prepared) CloseAll() {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	for _, p := range ps.list {
		p.close()
	}
	ps.list = nil
}

func (p *preparedInsert) close() {
	if p.batch != nil && !p.sent {
		_ = p.batch.Abort() // releases the connection PrepareBatch holds
	}
	p.cancel()
}

// Insert sends cols (one slice per column of query) as one INSERT through
// conn, reusing a prepared batch for query when there is one. The attempt
// ends with ctx or after timeout, whichever is first.
func (ps *Prepared) Insert(ctx context.Context, conn driver.Conn, timeout time.Duration, query string, cols []any) error {
	p := ps.take(query)
	if p == nil {
		idc := &idContext{Context: clickhouse.Context(context.Background(), clickhouse.WithQueryID(""))}
		bctx, cancel := context.WithCancel(idc)
		p = &preparedInsert{query: query, idc: idc, ctx: bctx, cancel: cancel}
	}
	// Each INSERT of a reused batch has a query id of its own: the server
	// may list the previous one a moment after answering it (or still
	// forward it to a shard), and refuses a query id it lists with code
	// 216, "already running".
	p.id = uuid.NewString()
	p.idc.id = p.id
	// The batch keeps its context from PrepareBatch on, so the attempt's
	// deadline and ctx cancel the batch's context instead: the driver then
	// closes the connection and the attempt fails, and the batch is dropped.
	stop := cancelAfter(ctx, timeout, p.cancel)
	err := p.send(ps.Table, conn, cols)
	stop()
	if err == nil {
		err = p.ctx.Err()
	}
	if err != nil {
		p.close()
		return &Error{QueryID: p.id, Err: err}
	}
	ps.put(p)
	return nil
}

func (p *preparedInsert) send(table string, conn driver.Conn, cols []any) error {
	if p.batch == nil {
		b, err := conn.PrepareBatch(p.ctx, p.query)
		if err != nil {
			return fmt.Errorf("cannot prepare %s: %w", table, err)
		}
		p.batch, p.cols = b, b.Columns()
	} else {
		for _, c := range p.cols {
			c.Reset()
		}
	}
	if err := appendColumns(table, p.cols, cols); err != nil {
		return err
	}
	err := p.batch.Send()
	p.sent = true
	if err != nil {
		return fmt.Errorf("cannot insert into %s: %w", table, err)
	}
	return nil
}

// idContext gives the queries started under it the query id id: the
// driver reads a batch's query options from its context each time it
// starts the batch's INSERT, so one prepared batch can send INSERTs of
// different ids. id is set only between INSERTs of the batch.
type idContext struct {
	context.Context
	id string
}

func (c *idContext) Value(key any) any {
	v := c.Context.Value(key)
	if o, ok := v.(clickhouse.QueryOptions); ok {
		_ = clickhouse.WithQueryID(c.id)(&o)
		return o
	}
	return v
}

// cancelAfter calls cancel when ctx ends or timeout passes, whichever is
// first, until stop is called.
func cancelAfter(ctx context.Context, timeout time.Duration, cancel context.CancelFunc) (stop func()) {
	stopCtx := context.AfterFunc(ctx, cancel)
	timer := time.AfterFunc(timeout, cancel)
	return func() {
		timer.Stop()
		stopCtx()
	}
}

// appendColumns appends vals, one slice per column, to a batch's columns.
func appendColumns(table string, cols []column.Interface, vals []any) error {
	if len(cols) != len(vals) {
		return fmt.Errorf("cannot insert into %s: the server has %d of the %d columns", table, len(cols), len(vals))
	}
	for i, v := range vals {
		if _, err := cols[i].Append(v); err != nil {
			return fmt.Errorf("cannot append to %s.%s: %w", table, cols[i].Name(), err)
		}
	}
	return nil
}

// Stream is one INSERT kept open across several blocks. ClickHouse
// squashes the blocks of one INSERT into one part (up to its
// min_insert_block_size_rows, 1,048,576 rows, and _bytes, 256 MiB), and
// writes nothing before the INSERT ends: N blocks sent in one INSERT cost
// the server one part, one set of files and one step of merges instead of
// N. On 18.16 each part costs about 45 ms of CPU however small it is.
//
// A stream takes a fresh batch from PrepareBatch: the driver's Flush sends
// a block and keeps the columns' capacity for the next block of the same
// INSERT, but refuses a batch that was sent, so Prepared's reuse does not
// extend to streams. The String columns' buffers are carried from one
// stream to the next by Buffers instead.
type Stream struct {
	table  string
	query  string
	id     string // the INSERT's query id
	batch  driver.Batch
	cols   []column.Interface
	ctx    context.Context
	cancel context.CancelFunc
	stop   func() // stops the deadline
	rows   int
	busy   time.Duration // time spent sending
	bufs   *Buffers      // lends the columns' buffers, and takes them back
}

// OpenStream starts an INSERT of query that lasts at most timeout and ends
// with ctx. Its String columns take their buffers from bufs, and give them
// back when the INSERT ends.
func OpenStream(ctx context.Context, conn driver.Conn, timeout time.Duration, table, query string, bufs *Buffers) (*Stream, error) {
	id := uuid.NewString()
	sctx, cancel := context.WithCancel(clickhouse.Context(context.Background(), clickhouse.WithQueryID(id)))
	s := &Stream{table: table, query: query, id: id, ctx: sctx, cancel: cancel, stop: cancelAfter(ctx, timeout, cancel), bufs: bufs}
	start := time.Now()
	b, err := conn.PrepareBatch(sctx, query)
	s.busy += time.Since(start)
	if err != nil {
		s.stop()
		cancel()
		return nil, &Error{QueryID: id, Err: fmt.Errorf("cannot prepare %s: %w", table, err)}
	}
	s.batch, s.cols = b, b.Columns()
	bufs.lend(s.cols)
	return s, nil
}

// Add sends cols, one slice of n rows per column of the stream's query,
// as a block.
func (s *Stream) Add(cols []any, n int) error {
	start := time.Now()
	defer func() { s.busy += time.Since(start) }()
	if err := appendColumns(s.table, s.cols, cols); err != nil {
		return &Error{QueryID: s.id, Err: err}
	}
	s.rows += n
	if err := s.batch.Flush(); err != nil {
		return &Error{QueryID: s.id, Err: fmt.Errorf("cannot send a block to %s: %w", s.table, err)}
	}
	if err := s.ctx.Err(); err != nil {
		return &Error{QueryID: s.id, Err: err}
	}
	return nil
}

// Commit ends the INSERT: the server writes the rows and answers.
func (s *Stream) Commit() error {
	start := time.Now()
	err := s.batch.Send()
	s.busy += time.Since(start)
	s.bufs.reclaim(s.cols)
	s.stop()
	if err == nil {
		err = s.ctx.Err()
	}
	s.cancel()
	if err != nil {
		return &Error{QueryID: s.id, Err: fmt.Errorf("cannot insert into %s: %w", s.table, err)}
	}
	return nil
}

// QueryID is the query id the server knows the stream's INSERT by.
func (s *Stream) QueryID() string { return s.id }

// Query is the stream's INSERT statement.
func (s *Stream) Query() string { return s.query }

// Rows is how many rows the stream has sent so far.
func (s *Stream) Rows() int { return s.rows }

// Busy is how long the stream has spent sending.
func (s *Stream) Busy() time.Duration { return s.busy }

// Abort drops the INSERT by closing its connection. That does not make it
// all or nothing: 18.16 takes a dropped connection for the end of the data
// and may store the blocks it received (TestColBufsReachDriver sees it do
// so), which is why rows sent again after an abort are first checked
// against the table by event id (the writer's dedupe).
func (s *Stream) Abort() {
	if !s.batch.IsSent() {
		_ = s.batch.Abort()
	}
	s.bufs.reclaim(s.cols)
	s.stop()
	s.cancel()
}

// Error is an INSERT that failed, with the query id the server knows it
// by. The server may still be running it: a dropped connection ends an
// INSERT's data, not the INSERT, and 18.16 stores the blocks it received.
// Before rows of it are checked against the table and sent again, wait
// until Running says the server is done with it.
type Error struct {
	QueryID string
	Err     error
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// QueryID returns the query id of the INSERT that err is about, or "".
func QueryID(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.QueryID
	}
	return ""
}

// Running returns how many of the queries ids names the server is still
// running.
func Running(ctx context.Context, conn driver.Conn, ids []string) (uint64, error) {
	var n uint64
	err := conn.QueryRow(ctx, "SELECT count() FROM system.processes WHERE has(?, query_id)", ids).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("cannot read the running queries: %w", err)
	}
	return n, nil
}
