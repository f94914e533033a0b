package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/glimpse-analytics/glimpse/internal/config"
	"github.com/glimpse-analytics/glimpse/internal/storage/retention"
)

// retentionFlags are shared by prune and serve's daily job.
type retentionFlags struct {
	rollupMonths int
	noJob        bool // serve only
}

func (r *retentionFlags) register(fs *flag.FlagSet) {
	fs.IntVar(&r.rollupMonths, "rollup-retention-months", retention.DefaultRollupMonths,
		"months the hourly rollups (aggregates, no identifiers) are kept; raw tables follow each site's privacy.retention_months; -1: for ever")
}

func (r *retentionFlags) options(conn driver.Conn, sites *config.File, log *slog.Logger) retention.Options {
	return retention.Options{Conn: conn, Sites: sites, RollupMonths: r.rollupMonths, Log: log.With("component", "retention")}
}

// startDaily runs the retention job inside serve: a first run a minute
// after start, then one a day.
func (r *retentionFlags) startDaily(ctx context.Context, conn driver.Conn, sites *config.File, log *slog.Logger) {
	if r.noJob {
		return
	}
	go retention.RunDaily(ctx, r.options(conn, sites, log), time.Minute)
}

func pruneCommand() *command {
	var (
		r      retentionFlags
		dryRun bool
	)
	return &command{
		name:  "prune",
		usage: "drop raw rows past each site's retention and rollups past theirs (--dry-run lists them)",
		flags: func(fs *flag.FlagSet) {
			r.register(fs)
			fs.BoolVar(&dryRun, "dry-run", false, "list what would be dropped or deleted, change nothing")
		},
		run: func(ctx context.Context, o *Options, _ *flag.FlagSet, _ []string, stdout io.Writer, log *slog.Logger) error {
			sites, conn, err := o.sitesAndConn(ctx)
			if err != nil {
				return err
			}
			defer conn.Close()
			ro := r.options(conn, sites, log)
			var actions []retention.Action
			if dryRun {
				actions, err = retention.Plan(ctx, ro)
			} else {
				actions, err = retention.Run(ctx, ro)
			}
			verb := "done"
			if dryRun {
				verb = "would"
			}
			for _, a := range actions {
				fmt.Fprintf(stdout, "%s: %s\n", verb, a)
			}
			if err != nil {
				return err
			}
			if len(actions) == 0 {
				fmt.Fprintln(stdout, "nothing past retention")
			}
			return nil
		},
	}
}
