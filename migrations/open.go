package migrations

import (
	"context"
	"fmt"
	"regexp"
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
	return opts, nil
}

// Open connects to the DSN's database over the native protocol, creating the
// database first if it is missing. The caller closes the connection.
func Open(ctx context.Context, dsn string) (driver.Conn, error) {
	opts, err := ParseDSN(dsn)
	if err != nil {
		return nil, err
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
