// Command glimpse is the Glimpse analytics collector.
//
//	glimpse serve     run the collector (ingest, dashboard, APIs)
//	glimpse migrate   apply the ClickHouse schema migrations
//	glimpse version   print the version
//
// Every subcommand takes the same global flags, before or after its name;
// see glimpse <cmd> -h.
//
// The package parses the flags and wires the pieces; the pieces live
// elsewhere. Each subsystem's settings are one options struct whose
// register method binds its flags straight into its fields, each with the
// one default of the option it sets: globalOptions and retentionOptions
// in options.go; serve's writerOptions (a sink.Options), sessionOptions
// (a session.CacheConfig and the rate limit), dashboardOptions,
// adminOptions, debugOptions and memoryOptions in serve_options.go. flagSet (flags.go)
// gives flags their GLIMPSE_* variables.
//
// serve (serve.go) builds the writer, the session cache and salts, gives
// the cache to the writer and both to the collector, and routes every
// component on the main listener's mux (mux.go): the process's /healthz,
// its /metrics and /readyz unless --admin-listen gives them their own
// listener, then the routes each component exposes (the
// collector's ingest, the beacon script and opt-out page, email, the
// Stats API, the subject API, the dashboard unless it has its own
// listener, and the demo pages).
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
	"slices"
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
	return []*command{serveCommand(), migrateCommand(), seedCommand(), emailCommand(), userCommand(), pruneCommand(), subjectCommand(), reportCommand(), versionCommand()}
}

// run parses args and runs one command; it returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cmd, o, fs, code := parse(args, stderr)
	if cmd == nil {
		return code
	}
	var level slog.Level
	_ = level.UnmarshalText([]byte(o.LogLevel))
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	if err := cmd.run(ctx, o, fs.FlagSet, fs.Args(), stdout, log); err != nil {
		fmt.Fprintf(stderr, "glimpse %s: %v\n", cmd.name, err)
		return 1
	}
	return 0
}

// parse finds the command in args and parses the flags: the global ones
// before the command or after it, and the command's own after it. Without
// a command to run it returns the exit code.
func parse(args []string, stderr io.Writer) (*command, *globalOptions, *flagSet, int) {
	cmds := commands()
	usage := func() {
		fmt.Fprintf(stderr, "usage: glimpse [global flags] <command> [flags]\n\ncommands:\n")
		for _, c := range cmds {
			fmt.Fprintf(stderr, "  %-10s %s\n", c.name, c.usage)
		}
		fmt.Fprintf(stderr, "\nEvery command takes the global flags, before or after it; see glimpse <command> -h.\n")
	}
	if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
		usage()
		return nil, nil, nil, 0
	}
	fs := newFlagSet("glimpse", stderr)
	var o globalOptions
	o.register(fs)
	commandUsage := fs.Usage // it names the flag set as it is named when called
	fs.Usage = usage
	if err := fs.Parse(args); err != nil {
		return nil, nil, nil, parseExit(err)
	}
	if fs.NArg() == 0 {
		usage()
		return nil, nil, nil, 2
	}
	i := slices.IndexFunc(cmds, func(c *command) bool { return c.name == fs.Arg(0) })
	if i < 0 {
		fmt.Fprintf(stderr, "glimpse: unknown command %q\n\n", fs.Arg(0))
		usage()
		return nil, nil, nil, 2
	}
	cmd := cmds[i]
	// The same flag set parses on, so a global flag after the command wins
	// over one before it, and the variables fill in what neither gave.
	fs.Init("glimpse "+cmd.name, flag.ContinueOnError)
	fs.Usage = commandUsage
	if cmd.flags != nil {
		cmd.flags(fs)
	}
	if err := fs.parse(fs.Args()[1:]); err != nil {
		return nil, nil, nil, parseExit(err)
	}
	if err := o.validate(); err != nil {
		fmt.Fprintf(stderr, "glimpse %s: %v\n", cmd.name, err)
		return nil, nil, nil, 2
	}
	return cmd, &o, fs, 0
}

// parseExit is the exit code after a parse error: 0 when help was asked
// for, 2 otherwise (the flag package has printed the error and usage).
func parseExit(err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	return 2
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
