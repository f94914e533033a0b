package main

import (
	"flag"
	"time"

	"github.com/glimpse-analytics/glimpse/collector/sink"
)

// spoolFlags are serve's settings of the durable spool (--spool-dir is a
// global flag); defaults are sink.Options' own.
type spoolFlags struct {
	maxMB      int64
	syncEvery  time.Duration
	segmentMB  int64
	maxBackoff time.Duration
}

func (s *spoolFlags) register(fs *flag.FlagSet) {
	fs.Int64Var(&s.maxMB, "spool-max-mb", 1024, "cap of the spool in MiB; at the cap new events are answered 503 (reason spool-full) and /readyz says degraded")
	fs.DurationVar(&s.syncEvery, "spool-sync-interval", 200*time.Millisecond, "group commit: spooled events are fsynced at least this often")
	fs.Int64Var(&s.segmentMB, "spool-segment-mb", 8, "spool segment size in MiB, the unit deleted once its rows are stored")
	fs.DurationVar(&s.maxBackoff, "retry-max-backoff", 5*time.Second, "longest wait between retries of a failing spooled insert")
}

// apply sets the spool options on o; without --spool-dir events are kept
// in memory only, as before.
func (s *spoolFlags) apply(o *sink.Options, dir string) {
	o.SpoolDir = dir
	o.SpoolMaxBytes = s.maxMB << 20
	o.SpoolSyncInterval = s.syncEvery
	o.SpoolSegmentBytes = s.segmentMB << 20
	o.MaxBackoff = s.maxBackoff
}
