package main

import (
	"testing"
	"time"
)

// A report of wrk 4.1.0 (Debian) with --latency, with the lines it adds
// when responses are not 2xx and sockets fail.
const wrkReport = `Running 12s test @ http://127.0.0.1:18009/
  2 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     0.86ms  678.42us   9.09ms   85.20%
    Req/Sec     2.52k   178.42     3.02k    72.73%
  Latency Distribution
     50%  718.00us
     75%    1.09ms
     90%    1.57ms
     99%    3.43ms
  1026368 requests in 12.00s, 130.70MB read
  Socket errors: connect 0, read 2, write 1, timeout 4
  Non-2xx or 3xx responses: 12
Requests/sec:  85530.67
Transfer/sec:     10.89MB
`

func TestParseWrk(t *testing.T) {
	r, err := parseWrk(wrkReport)
	if err != nil {
		t.Fatal(err)
	}
	want := wrkResult{requests: 1026368, non2xx: 12, socketErrors: 7, seconds: 12,
		p50: 718 * time.Microsecond, p99: 3430 * time.Microsecond}
	if r != want {
		t.Fatalf("parseWrk = %+v, want %+v", r, want)
	}
}

func TestParseWrkRefusesIncompleteReports(t *testing.T) {
	for name, out := range map[string]string{
		"no count":          "Running 12s test @ http://127.0.0.1:1/\n     50%  718.00us\n     99%    3.43ms\n",
		"no request":        "     50%  718.00us\n     99%    3.43ms\n  0 requests in 12.00s, 0B read\n",
		"no percentiles":    "  1026368 requests in 12.00s, 130.70MB read\n",
		"unable to connect": "unable to connect to 127.0.0.1:1 Connection refused\n",
	} {
		if r, err := parseWrk(out); err == nil {
			t.Errorf("%s: parseWrk = %+v, want an error", name, r)
		}
	}
}

func TestWrkDuration(t *testing.T) {
	for in, want := range map[[2]string]time.Duration{
		{"718.00", "us"}: 718 * time.Microsecond,
		{"1.09", "ms"}:   1090 * time.Microsecond,
		{"12.00", "s"}:   12 * time.Second,
		{"1.50", "m"}:    90 * time.Second,
	} {
		if got := wrkDuration(in[0], in[1]); got != want {
			t.Errorf("wrkDuration(%q, %q) = %v, want %v", in[0], in[1], got, want)
		}
	}
}
