// Command glimpse is the Glimpse analytics collector.
//
//	glimpse serve     run the collector (ingest, dashboard, APIs)
//	glimpse migrate   apply the ClickHouse schema migrations
//	glimpse version   print the version
//
// Every subcommand takes the same global flags; see glimpse <cmd> -h.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"syscall"
	_ "time/tzdata" // site time zones must load on machines without tzdata
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

type command struct {
	name  string
	usage string
	run   func(ctx context.Context, o *globalOptions, fs *flag.FlagSet, args []string, stdout io.Writer, log *slog.Logger) error
	flags func(fs *flagSet) // subcommand-specific flags, may be nil
}

func commands() []*command {
	return []*command{serveCommand(), migrateCommand(), seedCommand(), emailCommand(), userCommand(), pruneCommand(), subjectCommand(), versionCommand()}
}

// run parses args and runs one subcommand; it returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cmds := commands()
	usage := func() {
		fmt.Fprintf(stderr, "usage: glimpse <command> [flags]\n\ncommands:\n")
		for _, c := range cmds {
			fmt.Fprintf(stderr, "  %-10s %s\n", c.name, c.usage)
		}
		fmt.Fprintf(stderr, "\nEvery command takes the global flags; see glimpse <command> -h.\n")
	}
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage()
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	var cmd *command
	for _, c := range cmds {
		if c.name == args[0] {
			cmd = c
		}
	}
	if cmd == nil {
		fmt.Fprintf(stderr, "glimpse: unknown command %q\n\n", args[0])
		usage()
		return 2
	}
	fs := newFlagSet("glimpse "+cmd.name, stderr)
	var o globalOptions
	o.register(fs)
	if cmd.flags != nil {
		cmd.flags(fs)
	}
	if err := fs.parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if err := o.validate(); err != nil {
		fmt.Fprintf(stderr, "glimpse %s: %v\n", cmd.name, err)
		return 2
	}
	var level slog.Level
	_ = level.UnmarshalText([]byte(o.LogLevel))
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	if err := cmd.run(ctx, &o, fs.FlagSet, fs.Args(), stdout, log); err != nil {
		fmt.Fprintf(stderr, "glimpse %s: %v\n", cmd.name, err)
		return 1
	}
	return 0
}

func versionCommand() *command {
	return &command{
		name:  "version",
		usage: "print the version",
		run: func(_ context.Context, _ *globalOptions, _ *flag.FlagSet, _ []string, stdout io.Writer, _ *slog.Logger) error {
			rev := ""
			if bi, ok := debug.ReadBuildInfo(); ok {
				for _, s := range bi.Settings {
					if s.Key == "vcs.revision" && len(s.Value) >= 12 {
						rev = " " + s.Value[:12]
					}
				}
			}
			_, err := fmt.Fprintf(stdout, "glimpse %s%s %s %s/%s\n", version, rev, runtime.Version(), runtime.GOOS, runtime.GOARCH)
			return err
		},
	}
}
