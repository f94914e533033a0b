package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/glimpse-analytics/glimpse/dashboards"
	"github.com/glimpse-analytics/glimpse/internal/config"
)

// userCommand prints the sites-file lines of a dashboard user:
//
//	printf '%s\n' "$PASSWORD" | glimpse user add --email ana@example.com [--sites a.com,b.com] [--argon2id]
//
// The password is read from the first line of standard input, so it stays
// out of the process list and the shell history; only its hash is printed.
func userCommand() *command {
	return &command{
		name:  "user",
		usage: "print a dashboard user's lines for the sites file: user add --email ... (password on stdin)",
		run: func(_ context.Context, _ *globalOptions, gfs *flag.FlagSet, args []string, stdout io.Writer, _ *slog.Logger) error {
			return runUser(gfs, args, os.Stdin, stdout)
		},
	}
}

const userUsage = `usage: printf '%s\n' "$PASSWORD" | glimpse user add --email ADDRESS [--sites a.com,b.com] [--argon2id]
  add   read a password from the first line of stdin and print the users: entry
        (e-mail and bcrypt hash) to paste into the sites file`

// minPasswordLen is the shortest password user add accepts.
const minPasswordLen = 10

func runUser(gfs *flag.FlagSet, args []string, stdin io.Reader, stdout io.Writer) error {
	if len(args) == 0 || args[0] != "add" {
		return errors.New(userUsage)
	}
	fs := newFlagSet("glimpse user add", gfs.Output())
	var g globalOptions
	g.register(fs) // accepted after the sub-command too; unused here
	var email, sites string
	var argon bool
	fs.StringVar(&email, "email", "", "the user's e-mail address, used to sign in (required)")
	fs.StringVar(&sites, "sites", "", "comma-separated site domains the user may read; empty: all sites")
	fs.BoolVar(&argon, "argon2id", false, "hash with argon2id (64 MiB, t=3, p=2) instead of bcrypt (cost 12)")
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	email, err := config.CanonicalEmail(email)
	if err != nil {
		return fmt.Errorf("--email: %w", err)
	}
	line, err := bufio.NewReader(io.LimitReader(stdin, 4096)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("cannot read the password from stdin: %w", err)
	}
	pw := strings.TrimRight(line, "\r\n")
	if len(pw) < minPasswordLen {
		return fmt.Errorf("the password (first line of stdin) must have at least %d characters", minPasswordLen)
	}
	hash := ""
	if argon {
		hash, err = dashboards.HashPasswordArgon2id(pw)
	} else {
		hash, err = dashboards.HashPassword(pw)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "users:\n  - email: %s\n    password_hash: %q\n", email, hash)
	if s := strings.TrimSpace(sites); s != "" {
		var list []string
		for _, d := range strings.Split(s, ",") {
			if d = strings.TrimSpace(d); d != "" {
				list = append(list, d)
			}
		}
		fmt.Fprintf(stdout, "    sites: [%s]\n", strings.Join(list, ", "))
	}
	return nil
}
