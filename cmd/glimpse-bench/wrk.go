package main

import (
	"bufio"
	_ "embed"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// loadScript makes wrk send the Go generator's page views (load.lua).
//
//go:embed load.lua
var loadScript []byte

// wrkLoad drives a contestant with Debian's wrk: a generator written
// independently of glimpse, an event loop in C, as a cross-check that the
// ratios belong to the servers and not to this binary's Go client.
type wrkLoad struct {
	path, script string
	threads      int
}

func newWrkLoad(dir string, conns int) (*wrkLoad, error) {
	path, err := exec.LookPath("wrk")
	if err != nil {
		return nil, errors.New("wrk not found: install Debian's wrk (LOAD=wrk make bench or make bench-floor does), or run with --load go")
	}
	script := filepath.Join(dir, "load.lua")
	if err := os.WriteFile(script, loadScript, 0o600); err != nil {
		return nil, err
	}
	return &wrkLoad{path: path, script: script, threads: max(1, min(runtime.NumCPU(), conns))}, nil
}

func (l *wrkLoad) describe(conns int) string {
	return fmt.Sprintf("wrk (%s), %d threads, %d connections, cmd/glimpse-bench/load.lua", l.path, l.threads, conns)
}

// run loads c for d. Requests glimpse accepted are read from its own
// counter (glimpse_events_accepted_total), which leaves out the 202s
// of dropped events as the Go generator does; for the bare handler every
// 2xx is accepted.
func (l *wrkLoad) run(c *contestant, d time.Duration, conns, visitors int) (result, error) {
	var acc0 int64
	if c.name != "bare" {
		var err error
		if acc0, err = acceptedTotal(c.addr); err != nil {
			return result{}, err
		}
	}
	cpu0 := cpuSeconds(c.proc.Process.Pid)
	ch0 := c.ch.cpu()
	secs := max(1, int(d.Round(time.Second)/time.Second))
	cmd := exec.Command(l.path, "-t", strconv.Itoa(l.threads), "-c", strconv.Itoa(conns),
		"-d", fmt.Sprintf("%ds", secs), "--latency", "-s", l.script, "http://"+c.addr+"/",
		"--", strconv.Itoa(visitors), strconv.Itoa(l.threads))
	out, err := cmd.CombinedOutput()
	if err != nil {
		return result{}, fmt.Errorf("wrk: %w\n%s", err, out)
	}
	ps := cmd.ProcessState
	genCPU := (ps.UserTime() + ps.SystemTime()).Seconds()
	w, err := parseWrk(string(out))
	if err != nil {
		return result{}, err
	}
	accepted := w.requests - w.non2xx
	if c.name != "bare" {
		acc1, err := acceptedTotal(c.addr)
		if err != nil {
			return result{}, err
		}
		accepted = acc1 - acc0
	}
	if c.settle > 0 {
		time.Sleep(c.settle)
	}
	failures := map[string]int64{}
	if w.non2xx > 0 {
		failures["non-2xx or 3xx"] = w.non2xx
	}
	if w.socketErrors > 0 {
		failures["socket errors"] = w.socketErrors
	}
	return result{
		requests: w.requests, accepted: accepted, errors: w.non2xx + w.socketErrors, failures: failures, seconds: w.seconds,
		cpu: cpuSeconds(c.proc.Process.Pid) - cpu0, genCPU: genCPU, chCPU: c.ch.cpu() - ch0,
		p50: w.p50, p99: w.p99,
	}, nil
}

// wrkResult is what run reads from wrk's report.
type wrkResult struct {
	requests, non2xx, socketErrors int64
	seconds                        float64
	p50, p99                       time.Duration
}

var (
	wrkTotal   = regexp.MustCompile(`(?m)^\s*(\d+) requests in ([0-9.]+)(us|ms|s|m)\b`)
	wrkNon2xx  = regexp.MustCompile(`(?m)^\s*Non-2xx or 3xx responses: (\d+)`)
	wrkSocket  = regexp.MustCompile(`(?m)^\s*Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
	wrkPercent = regexp.MustCompile(`(?m)^\s*(50|99)%\s+([0-9.]+)(us|ms|s|m)\s*$`)
)

// parseWrk reads the report of wrk --latency.
func parseWrk(out string) (wrkResult, error) {
	var r wrkResult
	m := wrkTotal.FindStringSubmatch(out)
	if m == nil {
		return r, fmt.Errorf("wrk: no request count in its report:\n%s", out)
	}
	r.requests, _ = strconv.ParseInt(m[1], 10, 64)
	r.seconds = wrkDuration(m[2], m[3]).Seconds()
	if r.requests == 0 || r.seconds <= 0 {
		return r, fmt.Errorf("wrk: no request completed:\n%s", out)
	}
	if m := wrkNon2xx.FindStringSubmatch(out); m != nil {
		r.non2xx, _ = strconv.ParseInt(m[1], 10, 64)
	}
	if m := wrkSocket.FindStringSubmatch(out); m != nil {
		for _, s := range m[1:] {
			n, _ := strconv.ParseInt(s, 10, 64)
			r.socketErrors += n
		}
	}
	for _, m := range wrkPercent.FindAllStringSubmatch(out, -1) {
		if m[1] == "50" {
			r.p50 = wrkDuration(m[2], m[3])
		} else {
			r.p99 = wrkDuration(m[2], m[3])
		}
	}
	if r.p50 == 0 || r.p99 == 0 {
		return r, fmt.Errorf("wrk: no latency distribution in its report (--latency):\n%s", out)
	}
	return r, nil
}

// wrkDuration reads one of wrk's durations, a number and a unit.
func wrkDuration(num, unit string) time.Duration {
	f, _ := strconv.ParseFloat(num, 64)
	scale := time.Microsecond
	switch unit {
	case "ms":
		scale = time.Millisecond
	case "s":
		scale = time.Second
	case "m":
		scale = time.Minute
	}
	return time.Duration(f * float64(scale))
}

// acceptedTotal reads glimpse_events_accepted_total from glimpse's
// /metrics.
func acceptedTotal(addr string) (int64, error) {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "glimpse_events_accepted_total "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return int64(f), err
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("%s/metrics has no glimpse_events_accepted_total", addr)
}
