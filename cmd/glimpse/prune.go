package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"

	"github.com/glimpse-analytics/glimpse/internal/storage/retention"
)

func pruneCommand() *command {
	var (
		r      retentionOptions
		dryRun bool
	)
	return &command{
		name:  "prune",
		usage: "drop raw rows past each site's retention and rollups past theirs (--dry-run lists them)",
		flags: func(fs *flagSet) {
			r.register(fs)
			fs.BoolVar(&dryRun, "dry-run", false, "list what would be dropped or deleted, change nothing")
		},
		run: func(ctx context.Context, o *globalOptions, _ *flag.FlagSet, _ []string, stdout io.Writer, log *slog.Logger) error {
			sites, conn, err := o.sitesAndConn(ctx)
			if err != nil {
				return err
			}
			defer conn.Close()
			store, err := o.store(conn)
			if err != nil {
				return err
			}
			ro := r.options(store, sites, log)
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
