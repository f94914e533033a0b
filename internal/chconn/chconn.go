// Package chconn is the application's ClickHouse connection: the DSN
// (clickhouse://host:9000/database, native protocol), Open, which creates
// the database when it is missing, and a dialer that bounds every write so
// that a server which stops reading cannot hold a writer forever. Every
// command, the writer, the query engine and the migrations runner connect
// through it.
package chconn

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"regexp"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

var databaseName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,63}$`)

// ParseDSN parses a clickhouse:// DSN and checks its database name.
func ParseDSN(dsn string) (*clickhouse.Options, error) {
	opts, err := clickhouse.ParseDSN(dsn)
	if err != nil {
		return nil, fmt.Errorf("cannot parse ClickHouse DSN (want clickhouse://host:9000/database): %w", err)
	}
	if opts.Auth.Database == "" {
		opts.Auth.Database = "default"
	}
	if !databaseName.MatchString(opts.Auth.Database) {
		return nil, fmt.Errorf("ClickHouse DSN names database %q; use letters, digits and underscores", opts.Auth.Database)
	}
	if opts.DialTimeout == 0 || opts.DialTimeout == 30*time.Second {
		opts.DialTimeout = 5 * time.Second
	}
	opts.DialContext = dialer(opts.DialTimeout, opts.TLS)
	return opts, nil
}

// WriteTimeout bounds each write to ClickHouse. The driver sends the blocks
// of an INSERT (Batch.Flush) without watching any context or deadline, so
// without it a server that stops reading would hold the writing goroutine,
// and a graceful shutdown, forever.
var WriteTimeout = 30 * time.Second

// dialer connects as the driver would, with every write bounded by
// WriteTimeout.
func dialer(timeout time.Duration, conf *tls.Config) func(context.Context, string) (net.Conn, error) {
	d := &net.Dialer{Timeout: timeout}
	return func(ctx context.Context, addr string) (net.Conn, error) {
		var c net.Conn
		var err error
		if conf != nil {
			c, err = (&tls.Dialer{NetDialer: d, Config: conf}).DialContext(ctx, "tcp", addr)
		} else {
			c, err = d.DialContext(ctx, "tcp", addr)
		}
		if err != nil {
			return nil, err
		}
		return &writeLimitConn{Conn: c}, nil
	}
}

// writeLimitConn sets a write deadline before each write: the driver's own
// deadline when it set one that comes sooner, else WriteTimeout from now.
// The driver writes from one goroutine at a time, but when it cancels a
// query it sets deadlines from another, so the deadline it set is kept
// atomically.
type writeLimitConn struct {
	net.Conn
	deadline atomic.Int64 // the driver's write deadline, Unix ns; 0: none
}

func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func (c *writeLimitConn) SetDeadline(t time.Time) error {
	c.deadline.Store(unixNano(t))
	return c.Conn.SetDeadline(t)
}

func (c *writeLimitConn) SetWriteDeadline(t time.Time) error {
	c.deadline.Store(unixNano(t))
	return c.Conn.SetWriteDeadline(t)
}

func (c *writeLimitConn) Write(p []byte) (int, error) {
	d := time.Now().Add(WriteTimeout)
	if own := c.deadline.Load(); own != 0 && own < d.UnixNano() {
		d = time.Unix(0, own)
	}
	if err := c.Conn.SetWriteDeadline(d); err != nil {
		return 0, err
	}
	return c.Conn.Write(p)
}

// SyscallConn lets the driver check a pooled connection for a server that
// hung up, as it does on its own connections.
func (c *writeLimitConn) SyscallConn() (syscall.RawConn, error) {
	conn := c.Conn
	if t, ok := conn.(*tls.Conn); ok {
		conn = t.NetConn()
	}
	if s, ok := conn.(syscall.Conn); ok {
		return s.SyscallConn()
	}
	return nil, errors.New("not a socket")
}

// Open connects to the DSN's database over the native protocol, creating the
// database first if it is missing. The caller closes the connection.
func Open(ctx context.Context, dsn string) (driver.Conn, error) {
	return OpenWith(ctx, dsn, nil)
}

// ClusterSettings are the settings of a connection to a cluster's
// Distributed tables: INSERTs are synchronous, so that an INSERT answered
// OK is stored on a replica of every shard it had rows for, not queued on
// the disk of the server that took it (18.16's default), and a failed one
// says so.
var ClusterSettings = clickhouse.Settings{"insert_distributed_sync": 1}

// OpenWith is Open with settings for every query of the connection
// (besides the DSN's own).
func OpenWith(ctx context.Context, dsn string, settings clickhouse.Settings) (driver.Conn, error) {
	opts, err := ParseDSN(dsn)
	if err != nil {
		return nil, err
	}
	for k, v := range settings {
		if opts.Settings == nil {
			opts.Settings = clickhouse.Settings{}
		}
		opts.Settings[k] = v
	}
	db := opts.Auth.Database
	if db != "default" {
		admin := *opts
		admin.Auth.Database = "default"
		conn, err := clickhouse.Open(&admin)
		if err != nil {
			return nil, fmt.Errorf("cannot connect to ClickHouse at %v: %w", opts.Addr, err)
		}
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err = conn.Exec(ctx, "CREATE DATABASE IF NOT EXISTS "+db)
		cancel()
		conn.Close()
		if err != nil {
			return nil, fmt.Errorf("cannot create database %s on ClickHouse at %v: %w", db, opts.Addr, err)
		}
	}
	conn, err := clickhouse.Open(opts)
	if err != nil {
		return nil, fmt.Errorf("cannot connect to ClickHouse at %v: %w", opts.Addr, err)
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := conn.Ping(pctx); err != nil {
		conn.Close()
		return nil, fmt.Errorf("cannot reach ClickHouse at %v: %w", opts.Addr, err)
	}
	return conn, nil
}
