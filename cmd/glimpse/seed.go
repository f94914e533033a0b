package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/glimpse-analytics/glimpse/collector/sink"
	"github.com/glimpse-analytics/glimpse/internal/chconn"
	"github.com/glimpse-analytics/glimpse/internal/storage/seed"
	"github.com/glimpse-analytics/glimpse/migrations"
)

func seedCommand() *command {
	var (
		site   string
		events int
		days   int
		rng    uint64
		end    string
	)
	return &command{
		name:  "seed",
		usage: "write synthetic traffic for a site (demo and benchmark data)",
		flags: func(fs *flagSet) {
			fs.StringVar(&site, "site", "example.com", "site domain the events belong to")
			fs.IntVar(&events, "events", 10000, "number of events to write")
			fs.IntVar(&days, "days", 30, "spread the events over this many days before --end")
			fs.Uint64Var(&rng, "seed", 1, "random seed: the same seed and --end write the same rows")
			fs.StringVar(&end, "end", "", "exclusive end day YYYY-MM-DD (UTC); default now (a later end is taken as now: no future events)")
		},
		run: func(ctx context.Context, o *globalOptions, _ *flag.FlagSet, _ []string, stdout io.Writer, log *slog.Logger) error {
			var endT time.Time
			if end != "" {
				var err error
				if endT, err = time.Parse("2006-01-02", end); err != nil {
					return fmt.Errorf("--end %q: want YYYY-MM-DD", end)
				}
			}
			conn, err := chconn.Open(ctx, o.ClickHouse)
			if err != nil {
				return err
			}
			defer conn.Close()
			dsn, _ := chconn.ParseDSN(o.ClickHouse)
			if _, err := migrations.NewRunner(conn, migrations.Target{Database: dsn.Auth.Database}, nil, log).Apply(ctx); err != nil {
				return err
			}
			began := time.Now()
			st, err := seed.Write(ctx, sink.New(sink.Options{Conn: conn, BatchSize: 50000, QueueSize: 200000, Log: log.With("component", "sink"), SessionInterval: seed.SessionInterval}),
				seed.Options{Site: site, Events: events, Days: days, End: endT, Seed: rng, Revenue: true})
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "seeded %s: %d events, %d sessions, %d visitors over %d days in %s\n",
				site, st.Events, st.Sessions, st.Visitors, days, time.Since(began).Round(time.Millisecond))
			return nil
		},
	}
}
