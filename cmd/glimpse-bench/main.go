// Command glimpse-bench measures the collector against a bare fasthttp
// handler on loopback, interleaving the contestants in one run so that the
// ratios hold on a shared, noisy machine:
//
//	(a) bare     a fasthttp handler answering 202 (this binary, "bare" mode)
//	(b) discard  glimpse serve with the writer discarding rows
//	(c) store    glimpse serve writing to ClickHouse (through a disk spool
//	             unless -spool=false)
//
// The load comes from this binary's fasthttp client (--load go, the
// default) or, as a cross-check, from Debian's wrk (--load wrk; wrk.go and
// load.lua); both send the same page views. For each contestant it prints
// events accepted per second (202, not dropped), p50/p99 latency, server
// CPU µs per accepted event and peak RSS, then the ratios b/a and c/a, and
// checks that every event (c) accepted is in ClickHouse. `make bench` runs
// it.
//
// Two more contestants, run only when --only names them, measure how far
// the ratio b/a can go: glimpse built with -tags benchfloor (--floor-glimpse)
// and the writer discarding, its ingest path stopped early
// (collector/benchfloor.go):
//
//	gate     after the privacy gate: decode, site, opt-outs, bot verdict
//	handoff  after the gate, with a near-empty event through the queue and
//	         the writer
//
// e.g. --only bare,gate,handoff,discard (scripts/bench-floor).
package main

import (
	"bytes"
	"context"
	"debug/buildinfo"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/glimpse-analytics/glimpse/collector"
	"github.com/glimpse-analytics/glimpse/internal/chconn"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "bare" {
		bare(os.Args[2:])
		return
	}
	if err := bench(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "glimpse-bench:", err)
		os.Exit(1)
	}
}

// bare serves a handler that answers 202 to everything, with the same
// server settings glimpse uses.
func bare(args []string) {
	fs := flag.NewFlagSet("bare", flag.ExitOnError)
	listen := fs.String("listen", "127.0.0.1:0", "address")
	_ = fs.Parse(args)
	s := collector.HTTPServer("bare", func(ctx *fasthttp.RequestCtx) {
		ctx.Response.Header.Set("Access-Control-Allow-Origin", "*")
		ctx.SetStatusCode(fasthttp.StatusAccepted)
	})
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	go func() { _ = s.Serve(ln) }()
	<-ctx.Done()
	_ = s.Shutdown()
}

type contestant struct {
	name string
	args []string // command line; the listen address is appended
	env  []string
	// settle: after its load, the round waits this long before the next
	// contestant starts, and the CPU the contestant and ClickHouse spend
	// meanwhile is charged to it (the session drain of its round's events).
	settle time.Duration
	floor  bool // a -tags benchfloor glimpse stopping early; runs only when --only names it
	proc   *exec.Cmd
	addr   string
	ch     chServers // whose CPU is ClickHouse's
	stat   []result
}

type result struct {
	requests, accepted, errors int64
	failures                   map[string]int64 // errors by kind: status and drop reason, client error, or wrk's counts
	seconds                    float64
	cpu                        float64 // server CPU seconds
	genCPU                     float64 // this load generator's CPU seconds
	chCPU                      float64 // ClickHouse server's CPU seconds (chServers)
	p50, p99                   time.Duration
}

func bench(args []string) error {
	fs := flag.NewFlagSet("glimpse-bench", flag.ExitOnError)
	glimpse := fs.String("glimpse", "bin/glimpse", "the glimpse binary")
	dsn := fs.String("clickhouse", "clickhouse://127.0.0.1:9000/glimpse_bench", "ClickHouse DSN for (c); the database is dropped first")
	rounds := fs.Int("rounds", 3, "interleaved rounds")
	// A round must hold a session drain, which glimpse serve makes every
	// 10 s (--session-flush-interval): shorter rounds leave out the
	// session inserts that steady traffic pays for.
	dur := fs.Duration("duration", 12*time.Second, "load duration per contestant and round (at least the 10 s session flush interval, so that session writes are measured)")
	settle := fs.Duration("settle", 12*time.Second, "after each store round, wait this long (more than the 10 s session flush interval) and charge the CPU that glimpse and ClickHouse spend meanwhile to the store round, so that its last session drain does not land in the next contestant's round")
	conns := fs.Int("connections", 32, "concurrent client connections")
	visitors := fs.Int("visitors", 50_000, "distinct visitors (IP and User-Agent) the load cycles through; each is a live session")
	geo := fs.String("geoip", "", "GeoIP .mmdb passed to glimpse (optional)")
	only := fs.String("only", "", "run only these contestants, comma-separated: bare, discard, store, and the floors gate and handoff (run only when named)")
	floorGlimpse := fs.String("floor-glimpse", ".bench/glimpse-floor", "glimpse built with -tags benchfloor, for the gate and handoff contestants")
	extra := fs.String("serve-args", "", "extra arguments for glimpse serve, space-separated")
	loadWith := fs.String("load", "go", "load generator: go (this binary's fasthttp client) or wrk (Debian's wrk running load.lua, a cross-check)")
	spool := fs.Bool("spool", true, "run (c) with a disk spool (--spool-dir in a temporary directory), as production should")
	_ = fs.Parse(args)
	if *visitors < 1 {
		return fmt.Errorf("--visitors %d: want at least 1", *visitors)
	}

	tmp, err := os.MkdirTemp("", "glimpse-bench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	cfg := filepath.Join(tmp, "glimpse.yaml")
	if err := os.WriteFile(cfg, []byte("sites:\n  - domain: bench.example\n"), 0o600); err != nil {
		return err
	}
	if err := resetDB(*dsn); err != nil {
		return err
	}
	self, _ := os.Executable()
	common := []string{"serve", "--config", cfg, "--trusted-proxies", "127.0.0.1/32"}
	if *geo != "" {
		common = append(common, "--geoip", *geo)
	}
	cs := []*contestant{
		{name: "bare", args: []string{self, "bare"}},
		{name: "discard", args: append(append([]string{*glimpse}, common...), "--sink", "discard", "--clickhouse", *dsn)},
		{name: "store", args: append(append([]string{*glimpse}, common...), "--clickhouse", *dsn), settle: *settle},
	}
	if *spool {
		cs[2].args = append(cs[2].args, "--spool-dir", filepath.Join(tmp, "spool"))
	}
	for _, stage := range []string{"gate", "handoff"} {
		args := append(append([]string{*floorGlimpse}, common...), "--sink", "discard", "--clickhouse", *dsn)
		cs = append(cs, &contestant{name: stage, args: args, env: []string{"GLIMPSE_BENCH_FLOOR=" + stage}, floor: true})
	}
	if *extra != "" {
		for _, c := range cs[1:] {
			c.args = append(c.args, strings.Fields(*extra)...)
		}
	}
	cs, err = pick(cs, *only)
	if err != nil {
		return err
	}
	opts, err := chconn.ParseDSN(*dsn)
	if err != nil {
		return err
	}
	ch := findClickHouse(opts.Addr[0])
	fmt.Println("ClickHouse CPU:", ch)
	for _, c := range cs {
		c.ch = ch
	}
	if slices.ContainsFunc(cs, func(c *contestant) bool { return c.floor }) {
		if err := checkFloorBuild(*floorGlimpse); err != nil {
			return err
		}
	}
	var run func(c *contestant) (result, error)
	switch *loadWith {
	case "wrk":
		l, err := newWrkLoad(tmp, *conns)
		if err != nil {
			return err
		}
		fmt.Println("load:", l.describe(*conns))
		run = func(c *contestant) (result, error) { return l.run(c, *dur, *conns, *visitors) }
	case "go":
		bodies := payloads(512)
		fmt.Printf("load: this binary's fasthttp client, %d connections\n", *conns)
		run = func(c *contestant) (result, error) { return load(c, *dur, *conns, *visitors, bodies) }
	default:
		return fmt.Errorf("--load %q: want wrk or go", *loadWith)
	}
	for _, c := range cs {
		if err := c.start(); err != nil {
			return err
		}
		defer c.stop()
	}
	for r := 0; r < *rounds; r++ {
		for _, c := range cs {
			res, err := run(c)
			if err != nil {
				return fmt.Errorf("%s: %w", c.name, err)
			}
			c.stat = append(c.stat, res)
			fmt.Printf("round %d %-8s %8.0f accepted/s  p99 %6.2f ms  cpu %6.1f µs/event  refused or failed %d\n",
				r+1, c.name, float64(res.accepted)/res.seconds, ms(res.p99), res.cpu/float64(max(res.accepted, 1))*1e6, res.errors)
			if len(res.failures) > 0 {
				fmt.Printf("        %s refused or failed: %s\n", c.name, failureList(res.failures))
			}
		}
	}
	// Peak RSS is read before stopping; then the store contestant is stopped
	// gracefully so its last batch is flushed, and its rows are counted.
	rss := map[string]int64{}
	for _, c := range cs {
		rss[c.name] = peakRSS(c.proc.Process.Pid)
	}
	var store *contestant
	if i := slices.IndexFunc(cs, func(c *contestant) bool { return c.name == "store" }); i >= 0 {
		store = cs[i]
	}
	var accepted int64
	var stored uint64
	if store != nil {
		store.stop()
		for _, s := range store.stat {
			accepted += s.accepted
		}
		if stored, err = countRows(*dsn); err != nil {
			return err
		}
	}

	if len(cs) == 1 {
		c := cs[0]
		fmt.Printf("%s: %.0f req/s, cpu %.1f µs/event, peak RSS %.1f MB\n", c.name,
			median(c.stat, func(r result) float64 { return float64(r.accepted) / r.seconds }),
			median(c.stat, func(r result) float64 { return r.cpu / float64(max(r.accepted, 1)) * 1e6 }), float64(rss[c.name])/(1<<20))
		c.printShares()
		return checkStored(store, accepted, stored)
	}
	fmt.Println()
	fmt.Printf("%-8s %10s %9s %9s %12s %9s\n", "", "accepted/s", "p50 ms", "p99 ms", "cpu µs/ev", "peak RSS")
	med := map[string]float64{}
	cpu := map[string]float64{}
	for _, c := range cs {
		rps := median(c.stat, func(r result) float64 { return float64(r.accepted) / r.seconds })
		us := median(c.stat, func(r result) float64 { return r.cpu / float64(max(r.accepted, 1)) * 1e6 })
		med[c.name], cpu[c.name] = rps, us
		fmt.Printf("%-8s %10.0f %9.2f %9.2f %12.1f %8.1fM\n", c.name, rps,
			median(c.stat, func(r result) float64 { return ms(r.p50) }),
			median(c.stat, func(r result) float64 { return ms(r.p99) }), us, float64(rss[c.name])/(1<<20))
	}
	fmt.Println()
	printRatios(med, cpu)
	if store != nil {
		fmt.Printf("peak RSS store = %.1f MB (target <= 150)\n", float64(rss["store"])/(1<<20))
	}
	// Where the two cores go: the load generator and ClickHouse run here too,
	// so every µs they spend per request is not available to the server.
	for _, c := range cs {
		c.printShares()
	}
	if store == nil {
		return nil
	}
	return checkStored(store, accepted, stored)
}

// checkStored prints whether ClickHouse holds every event the store
// contestant answered 202, and fails if not.
func checkStored(store *contestant, accepted int64, stored uint64) error {
	if store == nil {
		return nil
	}
	perEvent := func(f func(r result) float64) float64 {
		return median(store.stat, func(r result) float64 { return f(r) / float64(max(r.accepted, 1)) * 1e6 })
	}
	ch, own := perEvent(func(r result) float64 { return r.chCPU }), perEvent(func(r result) float64 { return r.cpu })
	fmt.Printf("store: ClickHouse %.1f µs/event, glimpse %.1f µs/event: ClickHouse/glimpse = %.2f (target < 1)\n", ch, own, ch/max(own, 1e-9))
	if store.settle > 0 {
		fmt.Printf("store cpu µs/event and ClickHouse µs/event include the %s after each store round (its last session drain)\n", store.settle)
	}
	fmt.Printf("store: answered 202 %d, rows in ClickHouse %d\n", accepted, stored)
	if stored != uint64(accepted) {
		return fmt.Errorf("ClickHouse holds %d rows but %d events were answered 202", stored, accepted)
	}
	return nil
}

// pick returns the contestants only names (comma-separated), in their
// order in cs; with only empty, all but the floors.
func pick(cs []*contestant, only string) ([]*contestant, error) {
	if only == "" {
		return slices.DeleteFunc(slices.Clone(cs), func(c *contestant) bool { return c.floor }), nil
	}
	want := map[string]bool{}
	for n := range strings.SplitSeq(only, ",") {
		want[strings.TrimSpace(n)] = true
	}
	var out []*contestant
	for _, c := range cs {
		if want[c.name] {
			out = append(out, c)
			delete(want, c.name)
		}
	}
	if len(want) > 0 || len(out) == 0 {
		return nil, fmt.Errorf("--only %q: want a comma-separated list of %s", only, nameList(cs))
	}
	return out, nil
}

func nameList(cs []*contestant) string {
	names := make([]string, len(cs))
	for i, c := range cs {
		names[i] = c.name
	}
	return strings.Join(names, ", ")
}

// checkFloorBuild refuses a --floor-glimpse binary built without -tags
// benchfloor: it would ignore GLIMPSE_BENCH_FLOOR and run the whole ingest
// path under a floor's name.
func checkFloorBuild(path string) error {
	fix := fmt.Sprintf("build it with: go build -tags benchfloor -o %s ./cmd/glimpse", path)
	bi, err := buildinfo.ReadFile(path)
	if err != nil {
		return fmt.Errorf("--floor-glimpse: %w; %s", err, fix)
	}
	for _, st := range bi.Settings {
		if st.Key == "-tags" && slices.Contains(strings.Split(st.Value, ","), "benchfloor") {
			return nil
		}
	}
	return fmt.Errorf("--floor-glimpse %s was built without -tags benchfloor; %s", path, fix)
}

// ratios are what printRatios prints for each contestant against bare,
// with the targets.
var ratios = []struct{ name, label, throughput, cpu string }{
	{"discard", "b/a", " (target >= 0.85)", ""},
	{"store", "c/a", " (target >= 0.6)", " (target <= 2)"},
	{"gate", "gate/a", "", " (a floor: ingest stopped early)"},
	{"handoff", "handoff/a", "", " (a floor: ingest stopped early)"},
}

// printRatios prints the throughput and CPU per event of each contestant
// that ran against the bare handler's.
func printRatios(med, cpu map[string]float64) {
	if _, ok := med["bare"]; !ok {
		return
	}
	for _, r := range ratios {
		if _, ok := med[r.name]; ok {
			fmt.Printf("%-9s throughput = %.2f%s   cpu per event = %.2f%s\n", r.label,
				med[r.name]/med["bare"], r.throughput, cpu[r.name]/cpu["bare"], r.cpu)
		}
	}
}

// failureList prints failures by kind, most frequent first.
func failureList(failures map[string]int64) string {
	kinds := make([]string, 0, len(failures))
	for k := range failures {
		kinds = append(kinds, k)
	}
	sort.Slice(kinds, func(i, j int) bool { return failures[kinds[i]] > failures[kinds[j]] })
	parts := make([]string, len(kinds))
	for i, k := range kinds {
		parts[i] = fmt.Sprintf("%d× %s", failures[k], k)
	}
	return strings.Join(parts, "; ")
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func median(rs []result, f func(result) float64) float64 {
	v := make([]float64, len(rs))
	for i, r := range rs {
		v[i] = f(r)
	}
	sort.Float64s(v)
	return v[len(v)/2]
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

func (c *contestant) start() error {
	addr, err := freeAddr()
	if err != nil {
		return err
	}
	c.addr = addr
	c.proc = exec.Command(c.args[0], append(c.args[1:], "--listen", addr)...)
	c.proc.Env = append(os.Environ(), c.env...)
	var out bytes.Buffer
	c.proc.Stdout, c.proc.Stderr = &out, &out
	if err := c.proc.Start(); err != nil {
		return err
	}
	for i := 0; i < 300; i++ {
		if conn, err := net.Dial("tcp", addr); err == nil {
			conn.Close()
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%s did not start:\n%s", c.name, out.String())
}

func (c *contestant) stop() {
	if c.proc == nil || c.proc.ProcessState != nil {
		return
	}
	_ = c.proc.Process.Signal(syscall.SIGTERM)
	_ = c.proc.Wait()
}

// cpuSeconds reads utime+stime of pid from /proc.
func cpuSeconds(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command name, which is in parentheses.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100 // USER_HZ is 100 on Linux
}

// printShares prints the CPU the load generator and ClickHouse spent per
// request of c.
func (c *contestant) printShares() {
	fmt.Printf("%-8s load generator %.1f µs/request, ClickHouse server %.1f µs/event\n", c.name,
		median(c.stat, func(r result) float64 { return r.genCPU / float64(max(r.requests, 1)) * 1e6 }),
		median(c.stat, func(r result) float64 { return r.chCPU / float64(max(r.accepted, 1)) * 1e6 }))
}

func peakRSS(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmHWM:") {
			kb, _ := strconv.ParseInt(strings.Fields(line)[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}

var uas = []string{
	"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
	"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15",
	"Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
	"Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
	"Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Mobile Safari/537.36",
}

type payload struct{ body []byte }

// payloads makes varied page views: paths, referrers, UTM tags. Visitors
// vary by client address, set per request (see load).
func payloads(n int) []payload {
	refs := []string{"", "https://www.google.com/", "https://news.ycombinator.com/item?id=1", "https://t.co/abc"}
	out := make([]payload, n)
	for i := range out {
		url := fmt.Sprintf("https://bench.example/blog/post-%d", i%40)
		if i%7 == 0 {
			url += "?utm_source=newsletter&utm_medium=email&utm_campaign=nov"
		}
		out[i] = payload{
			body: fmt.Appendf(nil, `{"n":"pageview","u":%q,"d":"bench.example","r":%q,"w":%d}`, url, refs[i%len(refs)], 360+i%1600),
		}
	}
	return out
}

func load(c *contestant, d time.Duration, conns, visitors int, bodies []payload) (result, error) {
	client := &fasthttp.HostClient{Addr: c.addr, MaxConns: conns, ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second}
	var requests, accepted, errs atomic.Int64
	var failMu sync.Mutex
	failures := map[string]int64{}
	fail := func(kind string) {
		errs.Add(1)
		failMu.Lock()
		failures[kind]++
		failMu.Unlock()
	}
	lat := make([][]time.Duration, conns)
	cpu0 := cpuSeconds(c.proc.Process.Pid)
	gen0, ch0 := cpuSeconds(os.Getpid()), c.ch.cpu()
	start := time.Now()
	deadline := start.Add(d)
	var wg sync.WaitGroup
	for w := 0; w < conns; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(resp)
			var xff []byte
			for i := w; time.Now().Before(deadline); i += conns {
				p := bodies[i%len(bodies)]
				req.Reset()
				req.SetRequestURI("http://" + c.addr + "/api/event")
				req.Header.SetMethod("POST")
				req.Header.SetContentType("text/plain")
				v := i % visitors
				req.Header.SetUserAgent(uas[v%len(uas)]) // a visitor keeps its browser
				// By default 50,000 visitors, each sending a few events a
				// second at most, under the per-visitor limit; more
				// visitors (--visitors) fill the session cache.
				xff = fmt.Appendf(xff[:0], "81.%d.%d.%d", 2+v>>16, v>>8&255, v&255)
				req.Header.SetBytesV("X-Forwarded-For", xff)
				req.SetBody(p.body)
				t0 := time.Now()
				err := client.Do(req, resp)
				lat[w] = append(lat[w], time.Since(t0))
				requests.Add(1)
				switch {
				case err != nil:
					fail(err.Error())
				case resp.StatusCode() == fasthttp.StatusAccepted && len(resp.Header.Peek("X-Glimpse-Dropped")) == 0:
					accepted.Add(1)
				case resp.StatusCode() != fasthttp.StatusAccepted:
					fail(fmt.Sprintf("status %d %s", resp.StatusCode(), resp.Header.Peek("X-Glimpse-Dropped")))
				}
			}
		}(w)
	}
	wg.Wait()
	secs := time.Since(start).Seconds()
	genCPU := cpuSeconds(os.Getpid()) - gen0
	if c.settle > 0 {
		time.Sleep(c.settle)
	}
	cpu := cpuSeconds(c.proc.Process.Pid) - cpu0
	chCPU := c.ch.cpu() - ch0
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	if len(all) == 0 {
		return result{}, errors.New("no request completed")
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	return result{
		requests: requests.Load(), accepted: accepted.Load(), errors: errs.Load(), failures: failures, seconds: secs, cpu: cpu,
		genCPU: genCPU, chCPU: chCPU,
		p50: all[len(all)/2], p99: all[len(all)*99/100],
	}, nil
}

func resetDB(dsn string) error {
	opts, err := chconn.ParseDSN(dsn)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := chconn.Open(ctx, strings.Replace(dsn, "/"+opts.Auth.Database, "/default", 1))
	if err != nil {
		return err
	}
	defer conn.Close()
	return conn.Exec(ctx, "DROP DATABASE IF EXISTS "+opts.Auth.Database)
}

func countRows(dsn string) (uint64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := chconn.Open(ctx, dsn)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	var n uint64
	err = conn.QueryRow(ctx, "SELECT count() FROM events").Scan(&n)
	return n, err
}
