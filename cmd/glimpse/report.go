package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/glimpse-analytics/glimpse/aggregator"
	"github.com/glimpse-analytics/glimpse/dashboards/reports"
)

// reportCommand sends a site's scheduled report now, for operators:
//
//	glimpse report send --site S --every week|month [--to a@x,b@y] [--dry-run]
func reportCommand() *command {
	var site, every, to string
	var dry bool
	return &command{
		name:  "report",
		usage: "send a site's e-mail report now: report send --site S --every week|month [--to ADDR] [--dry-run]",
		flags: func(fs *flagSet) {
			fs.StringVar(&site, "site", "", "site domain from the sites file (required)")
			fs.StringVar(&every, "every", "week", "which report: week (the last full Monday-Sunday) or month (the last full month)")
			fs.StringVar(&to, "to", "", "comma-separated addresses to send to instead of the report's recipients")
			fs.BoolVar(&dry, "dry-run", false, "print the messages on stdout instead of sending them; nothing is recorded")
		},
		run: func(ctx context.Context, o *globalOptions, fs *flag.FlagSet, args []string, stdout io.Writer, log *slog.Logger) error {
			if len(args) == 0 || args[0] != "send" {
				return errors.New("want send, e.g. glimpse report send --site example.com --every week --dry-run")
			}
			if err := fs.Parse(args[1:]); err != nil { // flags may also follow send
				return err
			}
			if fs.NArg() > 0 {
				return fmt.Errorf("unexpected arguments %q", fs.Args())
			}
			if site == "" {
				return errors.New("--site is required")
			}
			var addrs []string
			for _, a := range strings.Split(to, ",") {
				if a = strings.TrimSpace(a); a != "" {
					addrs = append(addrs, a)
				}
			}
			sites, conn, err := o.sitesAndConn(ctx)
			if err != nil {
				return err
			}
			defer conn.Close()
			if sites.SMTP == nil {
				return errors.New("no smtp: block in the sites file; reports are sent through the relay it names")
			}
			if o.PublicURL == "" {
				log.Warn("--public-url is not set; unsubscribe links point at " + o.publicURL())
			}
			svc, err := reports.New(reports.Options{
				Sites: sites, Conn: conn, Cluster: o.Cluster, PublicURL: o.publicURL(), Log: log,
				// This process's own budget: serve's is in its memory.
				Engine: aggregator.New(aggregator.Options{Conn: conn, Budget: aggregator.NewBudget(time.Now, nil, nil), Cluster: o.Cluster != ""}),
			})
			if err != nil {
				return err
			}
			var w io.Writer
			if dry {
				w = stdout
			}
			n, err := svc.Send(ctx, site, every, addrs, w)
			if err != nil {
				return err
			}
			log.Info("report done", "site", site, "every", every, "messages", n, "dry_run", dry)
			return nil
		},
	}
}
