package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/glimpse-analytics/glimpse/internal/chconn"
	"github.com/glimpse-analytics/glimpse/migrations"
)

func migrateCommand() *command {
	var cluster string
	var print bool
	return &command{
		name:  "migrate",
		usage: "apply the ClickHouse schema migrations (--cluster NAME for a cluster, --print to show the SQL)",
		flags: func(fs *flagSet) {
			fs.StringVar(&cluster, "cluster", "", "render for a ClickHouse cluster: ON CLUSTER NAME, Replicated*/Distributed engines")
			fs.BoolVar(&print, "print", false, "print the rendered SQL of every migration instead of applying it")
		},
		run: func(ctx context.Context, o *globalOptions, _ *flag.FlagSet, _ []string, stdout io.Writer, log *slog.Logger) error {
			opts, err := chconn.ParseDSN(o.ClickHouse)
			if err != nil {
				return err
			}
			target := migrations.Target{Database: opts.Auth.Database, Cluster: cluster}
			if print {
				return printMigrations(stdout, target)
			}
			conn, err := chconn.Open(ctx, o.ClickHouse)
			if err != nil {
				return err
			}
			defer conn.Close()
			runner := migrations.NewRunner(conn, target, nil, log)
			if cluster != "" {
				// An ON CLUSTER statement waits for every host (ClickHouse's
				// distributed_ddl_task_timeout, 180 s by default).
				runner.Timeout = 200 * time.Second
				runner.Dial = func(ctx context.Context, addr string) (driver.Conn, error) {
					host := *opts
					host.Addr = []string{addr}
					return clickhouse.Open(&host)
				}
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
