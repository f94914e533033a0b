package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/glimpse-analytics/glimpse/internal/chtest"
)

// binary is the glimpse binary built once for the binary-level tests.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "glimpse-bin")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "glimpse")
	out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "cannot build glimpse: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// glimpse runs the binary to completion with a clean GLIMPSE_* environment.
func glimpse(t *testing.T, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = append(cleanEnv(), env...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return o.String(), e.String(), code
}

func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GLIMPSE_") {
			env = append(env, kv)
		}
	}
	return env
}

func writeConfig(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "glimpse.yaml")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

const siteYAML = "sites:\n  - domain: example.com\n"

func TestVersion(t *testing.T) {
	out, _, code := glimpse(t, nil, "version")
	if code != 0 || !strings.HasPrefix(out, "glimpse ") {
		t.Fatalf("version: code %d, out %q", code, out)
	}
}

func TestUsageErrors(t *testing.T) {
	tests := []struct {
		args []string
		code int
		want string
	}{
		{nil, 2, "usage: glimpse"},
		{[]string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		{[]string{"serve", "--no-such-flag"}, 2, "flag provided but not defined"},
		{[]string{"serve", "--log-level", "loud"}, 2, "--log-level"},
		{[]string{"serve", "--max-sessions", "0"}, 1, "--max-sessions 0: want at least 1"},
	}
	for _, tt := range tests {
		_, errOut, code := glimpse(t, nil, tt.args...)
		if code != tt.code || !strings.Contains(errOut, tt.want) {
			t.Errorf("glimpse %v: code %d, stderr %q; want code %d and %q", tt.args, code, errOut, tt.code, tt.want)
		}
	}
}

func TestBrokenConfigNamesTheField(t *testing.T) {
	p := writeConfig(t, "sites:\n  - domain: example.com\n    privacy:\n      k_anonymity: 1\n")
	_, errOut, code := glimpse(t, nil, "serve", "--config", p, "--clickhouse", "clickhouse://127.0.0.1:1/x")
	if code != 1 {
		t.Fatalf("exit code %d, want 1; stderr %q", code, errOut)
	}
	if !strings.Contains(errOut, p+":4: sites[0].privacy.k_anonymity") || strings.Contains(errOut, "panic") {
		t.Fatalf("stderr does not name the field: %q", errOut)
	}
}

func TestEnvFallbackAndFlagWins(t *testing.T) {
	bad := writeConfig(t, "sites:\n  - domain: BAD\n")
	good := writeConfig(t, siteYAML)
	// The environment names the broken file: its error shows.
	_, errOut, _ := glimpse(t, []string{"GLIMPSE_CONFIG=" + bad}, "serve", "--clickhouse", "clickhouse://127.0.0.1:1/x")
	if !strings.Contains(errOut, bad) {
		t.Fatalf("GLIMPSE_CONFIG not used: %q", errOut)
	}
	// The flag wins: the good file loads and the failure moves on to ClickHouse.
	_, errOut, _ = glimpse(t, []string{"GLIMPSE_CONFIG=" + bad}, "serve", "--config", good, "--clickhouse", "clickhouse://127.0.0.1:1/x")
	if strings.Contains(errOut, bad) || !strings.Contains(errOut, "ClickHouse") {
		t.Fatalf("--config did not win over GLIMPSE_CONFIG: %q", errOut)
	}
}

func TestMigrateTwice(t *testing.T) {
	db := chtest.New(t)
	out, errOut, code := glimpse(t, nil, "migrate", "--clickhouse", db.DSN)
	if code != 0 || !strings.Contains(out, "applied 0001_events") {
		t.Fatalf("first migrate: code %d\n%s\n%s", code, out, errOut)
	}
	out, errOut, code = glimpse(t, []string{"GLIMPSE_CLICKHOUSE=" + db.DSN}, "migrate")
	if code != 0 || !strings.Contains(out, "nothing to apply") || strings.Contains(out, "applied") {
		t.Fatalf("second migrate: code %d\n%s\n%s", code, out, errOut)
	}
}

func TestMigratePrintCluster(t *testing.T) {
	out, _, code := glimpse(t, nil, "migrate", "--print", "--cluster", "analytics", "--clickhouse", "clickhouse://h:9000/stats")
	if code != 0 || !strings.Contains(out, "ReplicatedMergeTree('/clickhouse/tables/{shard}/stats/events_local', '{replica}')") {
		t.Fatalf("code %d, out:\n%s", code, out)
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// server is a running `glimpse serve`.
type server struct {
	cmd  *exec.Cmd
	addr string
	out  *lockedBuffer
	done chan error
}

func startServe(t *testing.T, env []string, args ...string) *server {
	t.Helper()
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	cmd := exec.Command(binary, append([]string{"serve", "--listen", addr}, args...)...)
	cmd.Env = append(cleanEnv(), env...)
	s := &server{cmd: cmd, addr: addr, out: new(lockedBuffer), done: make(chan error, 1)}
	cmd.Stdout, cmd.Stderr = s.out, s.out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { s.done <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			<-s.done
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if code, _ := get(s.addr, "/healthz"); code == 200 {
			return s
		}
		select {
		case err := <-s.done:
			t.Fatalf("glimpse serve exited: %v\n%s", err, s.out)
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Fatalf("glimpse serve did not answer /healthz:\n%s", s.out)
	return nil
}

// lockedBuffer collects a process's output while tests read it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func get(addr, path string) (int, string) {
	c := http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get("http://" + addr + path)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// stop sends SIGTERM and waits for a clean exit.
func (s *server) stop(t *testing.T) {
	t.Helper()
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-s.done:
		if err != nil {
			t.Fatalf("glimpse serve exited with %v after SIGTERM:\n%s", err, s.out)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("glimpse serve did not stop after SIGTERM:\n%s", s.out)
	}
}

func TestServeHealthAndSignals(t *testing.T) {
	db := chtest.New(t)
	cfg := writeConfig(t, siteYAML)
	s := startServe(t, nil, "--config", cfg, "--clickhouse", db.DSN)
	if code, body := get(s.addr, "/readyz"); code != 200 {
		t.Fatalf("/readyz = %d %q, want 200", code, body)
	}
	if code, _ := get(s.addr, "/nope"); code != 404 {
		t.Fatalf("/nope = %d, want 404", code)
	}
	s.stop(t)
}

func TestReadyzNeedsCurrentSchema(t *testing.T) {
	db := chtest.New(t)
	cfg := writeConfig(t, siteYAML)
	s := startServe(t, nil, "--config", cfg, "--clickhouse", db.DSN, "--no-migrate")
	if code, body := get(s.addr, "/readyz"); code != 503 || !strings.Contains(body, "migrate") {
		t.Fatalf("/readyz without migrations = %d %q, want 503 naming migrate", code, body)
	}
	if _, errOut, code := glimpse(t, nil, "migrate", "--clickhouse", db.DSN); code != 0 {
		t.Fatal(errOut)
	}
	if code, body := get(s.addr, "/readyz"); code != 200 {
		t.Fatalf("/readyz after migrate = %d %q", code, body)
	}
	s.stop(t)
}

// TestReadyzFlipsWhenClickHouseStops starts a second private ClickHouse with
// the project's script, serves against it, stops it, and expects 503.
func TestReadyzFlipsWhenClickHouseStops(t *testing.T) {
	chtest.Addr(t) // skip like the other integration tests when no server is given
	if testing.Short() {
		t.Skip("starts a ClickHouse server")
	}
	port := freePort(t)
	chEnv := append(cleanEnv(),
		fmt.Sprintf("GLIMPSE_CH_PORT=%d", port),
		fmt.Sprintf("GLIMPSE_CH_HTTP_PORT=%d", freePort(t)),
		fmt.Sprintf("GLIMPSE_CH_INTERSERVER_PORT=%d", freePort(t)),
		"GLIMPSE_CH_DIR="+t.TempDir())
	script := func(arg string) {
		t.Helper()
		cmd := exec.Command("../../scripts/clickhouse", arg)
		cmd.Env = chEnv
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("scripts/clickhouse %s: %v\n%s", arg, err, out)
		}
	}
	script("start")
	t.Cleanup(func() { script("stop") })

	cfg := writeConfig(t, siteYAML)
	s := startServe(t, nil, "--config", cfg, "--clickhouse", fmt.Sprintf("clickhouse://127.0.0.1:%d/glimpse", port))
	if code, body := get(s.addr, "/readyz"); code != 200 {
		t.Fatalf("/readyz = %d %q, want 200", code, body)
	}
	script("stop")
	deadline := time.Now().Add(20 * time.Second)
	for {
		code, body := get(s.addr, "/readyz")
		if code == 503 {
			if !strings.Contains(body, "ClickHouse") {
				t.Errorf("503 body %q does not say why", body)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz still %d %q after ClickHouse stopped", code, body)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if code, _ := get(s.addr, "/healthz"); code != 200 {
		t.Fatalf("/healthz = %d while ClickHouse is down; the process is alive", code)
	}
	s.stop(t)
}

// TestSIGTERMUnderLoadLosesNothing drives `glimpse serve` with concurrent
// senders, sends SIGTERM in the middle, and checks that every event answered
// 202 (without a drop header) is in ClickHouse after the process exits.
func TestSIGTERMUnderLoadLosesNothing(t *testing.T) {
	db := chtest.New(t)
	cfg := writeConfig(t, siteYAML)
	s := startServe(t, nil, "--config", cfg, "--clickhouse", db.DSN, "--trusted-proxies", "127.0.0.1/32",
		"--batch-size", "500", "--flush-interval", "200ms")
	var accepted, answered atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := http.Client{Timeout: 5 * time.Second}
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				body := fmt.Sprintf(`{"n":"pageview","u":"https://example.com/w%d/%d","d":"example.com"}`, w, i)
				req, _ := http.NewRequest("POST", "http://"+s.addr+"/api/event", strings.NewReader(body))
				req.Header.Set("User-Agent", "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0")
				req.Header.Set("X-Forwarded-For", fmt.Sprintf("198.51.100.%d", i%250+1))
				resp, err := c.Do(req)
				if err != nil {
					return // the listener is gone
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				answered.Add(1)
				if resp.StatusCode == 202 && resp.Header.Get("X-Glimpse-Dropped") == "" {
					accepted.Add(1)
				}
			}
		}()
	}
	time.Sleep(1500 * time.Millisecond)
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-s.done:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, s.out)
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("no exit after SIGTERM:\n%s", s.out)
	}
	close(stop)
	wg.Wait()
	if accepted.Load() < 100 {
		t.Fatalf("only %d events accepted of %d answered; the load did not run", accepted.Load(), answered.Load())
	}
	var n uint64
	if err := db.Conn.QueryRow(context.Background(), "SELECT count() FROM events").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != uint64(accepted.Load()) {
		t.Fatalf("%d rows in ClickHouse, but %d events were answered 202\n%s", n, accepted.Load(), s.out)
	}
	t.Logf("%d events accepted before and during shutdown, all stored", n)
}

func TestDemoSite(t *testing.T) {
	db := chtest.New(t)
	cfg := writeConfig(t, siteYAML)
	s := startServe(t, nil, "--config", cfg, "--clickhouse", db.DSN, "--demo")
	for path, want := range map[string]string{
		"/demo/":                   `data-domain="example.com"`,
		"/demo/pricing":            `src="/js/glimpse.js"`,
		"/demo/demo.js":            `glimpse("Signup"`,
		"/demo/files/brochure.pdf": "%PDF",
	} {
		code, body := get(s.addr, path)
		if code != 200 || !strings.Contains(body, want) {
			t.Errorf("%s: %d, want 200 with %q", path, code, want)
		}
	}
	s.stop(t)
}

// TestSharedSalts runs two collectors on one database: with --shared-salts
// the same browser gets the same visitor id from either; without it, each
// instance's private salt gives it another id.
func TestSharedSalts(t *testing.T) {
	for _, tt := range []struct {
		shared   bool
		visitors uint64
	}{{true, 1}, {false, 2}} {
		t.Run(fmt.Sprintf("shared=%v", tt.shared), func(t *testing.T) {
			db := chtest.New(t)
			cfg := writeConfig(t, siteYAML)
			args := []string{"--config", cfg, "--clickhouse", db.DSN, "--trusted-proxies", "127.0.0.1/32", "--flush-interval", "100ms"}
			if tt.shared {
				args = append(args, "--shared-salts")
			}
			a := startServe(t, nil, args...)
			b := startServe(t, nil, args...)
			for i, s := range []*server{a, b} {
				req, _ := http.NewRequest("POST", "http://"+s.addr+"/api/event",
					strings.NewReader(fmt.Sprintf(`{"n":"pageview","u":"https://example.com/%d","d":"example.com"}`, i)))
				req.Header.Set("User-Agent", "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0")
				req.Header.Set("X-Forwarded-For", "203.0.113.9")
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != 202 || resp.Header.Get("X-Glimpse-Dropped") != "" {
					t.Fatalf("instance %d: %d %q", i, resp.StatusCode, resp.Header.Get("X-Glimpse-Dropped"))
				}
			}
			a.stop(t)
			b.stop(t)
			var rows, visitors uint64
			if err := db.Conn.QueryRow(context.Background(), "SELECT count(), uniqExact(visitor_id) FROM events").Scan(&rows, &visitors); err != nil {
				t.Fatal(err)
			}
			if rows != 2 || visitors != tt.visitors {
				t.Fatalf("%d rows from %d visitor ids; want 2 rows from %d", rows, visitors, tt.visitors)
			}
		})
	}
}

// TestMaxSessions: --max-sessions bounds the session cache; visitors
// beyond it evict the least recently seen sessions, which the metrics
// count (the default, 100,000, would hold them all).
func TestMaxSessions(t *testing.T) {
	db := chtest.New(t)
	cfg := writeConfig(t, siteYAML)
	s := startServe(t, nil, "--config", cfg, "--clickhouse", db.DSN, "--trusted-proxies", "127.0.0.1/32", "--max-sessions", "1024")
	c := http.Client{Timeout: 5 * time.Second}
	const visitors = 3000
	for i := range visitors {
		req, _ := http.NewRequest("POST", "http://"+s.addr+"/api/event", strings.NewReader(`{"n":"pageview","u":"https://example.com/","d":"example.com"}`))
		req.Header.Set("Content-Type", "text/plain")
		req.Header.Set("User-Agent", "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0")
		req.Header.Set("X-Forwarded-For", fmt.Sprintf("198.51.%d.%d", i/250, i%250+1))
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted || resp.Header.Get("X-Glimpse-Dropped") != "" {
			t.Fatalf("event %d: %d %q", i, resp.StatusCode, resp.Header.Get("X-Glimpse-Dropped"))
		}
	}
	if got := metricValue(s.addr, "glimpse_sessions_evicted_total"); got < visitors-1024 {
		t.Fatalf("glimpse_sessions_evicted_total = %v after %d visitors with --max-sessions 1024, want at least %d", got, visitors, visitors-1024)
	}
	s.stop(t)
}
