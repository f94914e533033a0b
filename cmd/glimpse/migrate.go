package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/glimpse-analytics/glimpse/internal/chconn"
	"github.com/glimpse-analytics/glimpse/migrations"
)

func migrateCommand() *command {
	var serverVersion string
	var print bool
	return &command{
		name:  "migrate",
		usage: "apply the ClickHouse schema migrations (--cluster NAME for a cluster, --print to show the SQL)",
		flags: func(fs *flagSet) {
			fs.BoolVar(&print, "print", false, "print the rendered SQL of every migration instead of applying it")
			fs.StringVar(&serverVersion, "server-version", "", "render for this ClickHouse version (e.g. 25.3) instead of the server's SELECT version(); with --print, default 18.16")
		},
		run: func(ctx context.Context, o *globalOptions, _ *flag.FlagSet, _ []string, stdout io.Writer, log *slog.Logger) error {
			if print {
				opts, err := chconn.ParseDSN(o.ClickHouse)
				if err != nil {
					return err
				}
				return printMigrations(stdout, migrations.Target{Database: opts.Auth.Database, Cluster: o.Cluster, Version: serverVersion})
			}
			conn, err := chconn.Open(ctx, o.ClickHouse)
			if err != nil {
				return err
			}
			defer conn.Close()
			runner, err := migrationRunner(conn, o, serverVersion, log)
			if err != nil {
				return err
			}
			done, err := runner.Apply(ctx)
			if err != nil {
				return err
			}
			if len(done) == 0 {
				fmt.Fprintln(stdout, "schema is current; nothing to apply")
			}
			for _, m := range done {
				fmt.Fprintf(stdout, "applied %s\n", m.Name)
			}
			return nil
		},
	}
}

// migrationRunner returns the runner for the schema o names: one server,
// or on a cluster (--cluster) every host, dialled as conn was; rendered
// for version, or for the server's own (SELECT version()) if empty.
func migrationRunner(conn driver.Conn, o *globalOptions, version string, log *slog.Logger) (*migrations.Runner, error) {
	opts, err := chconn.ParseDSN(o.ClickHouse)
	if err != nil {
		return nil, err
	}
	runner := migrations.NewRunner(conn, migrations.Target{Database: opts.Auth.Database, Cluster: o.Cluster, Version: version}, nil, log)
	if o.Cluster != "" {
		// An ON CLUSTER statement waits for every host (ClickHouse's
		// distributed_ddl_task_timeout, 180 s by default).
		runner.Timeout = 200 * time.Second
		if runner.Dial, err = chconn.DialDSN(o.ClickHouse); err != nil {
			return nil, err
		}
	}
	return runner, nil
}

func printMigrations(w io.Writer, t migrations.Target) error {
	ms, err := migrations.Load(migrations.Files())
	if err != nil {
		return err
	}
	for _, m := range ms {
		stmts, err := m.Statements(t)
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "-- %s\n%s;\n\n", m.Name, strings.Join(stmts, ";\n\n"))
	}
	return nil
}
