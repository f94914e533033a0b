package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"time"
)

// flagSet is a flag.FlagSet whose flags may fall back to an environment
// variable: a flag given on the command line wins over its variable,
// which wins over the flag's default. A variable is read after the
// command line, through the flag's own parser, so a value that does not
// parse fails the command as the same value given as the flag does.
type flagSet struct {
	*flag.FlagSet
	env []envFlag // in registration order, so errors come in a stable order
}

type envFlag struct{ flag, variable string }

func newFlagSet(name string, out io.Writer) *flagSet {
	fs := &flagSet{FlagSet: flag.NewFlagSet(name, flag.ContinueOnError)}
	fs.SetOutput(out)
	return fs
}

// stringEnv is StringVar with the fallback variable env.
func (fs *flagSet) stringEnv(p *string, name, env, value, usage string) {
	fs.StringVar(p, name, value, usage)
	fs.fromEnv(name, env)
}

// durationEnv is DurationVar with the fallback variable env.
func (fs *flagSet) durationEnv(p *time.Duration, name, env string, value time.Duration, usage string) {
	fs.DurationVar(p, name, value, usage)
	fs.fromEnv(name, env)
}

// fromEnv makes the flag name fall back to the variable env and names the
// variable in the flag's usage.
func (fs *flagSet) fromEnv(name, env string) {
	f := fs.Lookup(name)
	f.Usage += " (env " + env + ")"
	fs.env = append(fs.env, envFlag{name, env})
}

// parse parses the command line args, then reads the variables.
func (fs *flagSet) parse(args []string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	return fs.parseEnv()
}

// parseEnv sets each flag the command line did not from its variable, if
// that is set. Like Parse, it reports a value that does not parse with
// the usage.
func (fs *flagSet) parseEnv() error {
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	for _, e := range fs.env {
		v, ok := os.LookupEnv(e.variable)
		if !ok || given[e.flag] {
			continue
		}
		if err := fs.Set(e.flag, v); err != nil {
			err = fmt.Errorf("invalid value %q for environment variable %s (flag -%s): %v", v, e.variable, e.flag, err)
			fmt.Fprintln(fs.Output(), err)
			fs.Usage()
			return err
		}
	}
	return nil
}
