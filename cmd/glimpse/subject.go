package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"

	"github.com/glimpse-analytics/glimpse/collector/eventlog"
	"github.com/glimpse-analytics/glimpse/internal/storage/subject"
)

func subjectCommand() *command {
	var site, uid, format string
	return &command{
		name:  "subject",
		usage: "data-subject requests for a consented uid: subject export|erase --site S --uid X",
		flags: func(fs *flagSet) {
			fs.StringVar(&site, "site", "", "site domain (privacy mode consented)")
			fs.StringVar(&uid, "uid", "", "the user id the site sent as uid (hashed with the site's subject_key before lookup)")
			fs.StringVar(&format, "format", subject.JSONLines, "export format: jsonl or csv")
		},
		run: func(ctx context.Context, o *globalOptions, fs *flag.FlagSet, args []string, stdout io.Writer, log *slog.Logger) error {
			if len(args) == 0 {
				return errors.New("want export or erase, e.g. glimpse subject export --site example.com --uid user-42")
			}
			op := args[0]
			// Flags may also follow the operation.
			if err := fs.Parse(args[1:]); err != nil {
				return err
			}
			if op != "export" && op != "erase" {
				return fmt.Errorf("unknown operation %q: want export or erase", op)
			}
			if site == "" || uid == "" {
				return errors.New("--site and --uid are required")
			}
			sites, conn, err := o.sitesAndConn(ctx)
			if err != nil {
				return err
			}
			defer conn.Close()
			store, err := o.store(conn)
			if err != nil {
				return err
			}
			so := subject.Options{Conn: conn, Cluster: store.Cluster, Dial: store.Dial, Sites: sites}
			if o.SpoolDir != "" {
				so.Pending = eventlog.Offline(o.SpoolDir)
			}
			svc := subject.New(so)
			id, err := svc.SubjectID(site, uid)
			if err != nil {
				return err
			}
			if op == "export" {
				n, err := svc.Export(ctx, site, id, format, stdout)
				if err != nil {
					return err
				}
				log.Info("exported", "site", site, "rows", n)
				return nil
			}
			res, err := svc.Erase(ctx, site, id)
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "erased %d rows of the subject from %s (%d spooled records blanked); none left\n", res.Deleted, site, res.Blanked)
			return nil
		},
	}
}
