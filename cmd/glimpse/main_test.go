package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/glimpse-analytics/glimpse/internal/apptest"
	"github.com/glimpse-analytics/glimpse/internal/chtest"
)

// TestMain builds the binary on first use and removes it, and closes the
// shared browser, after the last test.
func TestMain(m *testing.M) { apptest.Main(m) }

func TestVersion(t *testing.T) {
	out, _, code := apptest.Run(t, nil, "version")
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
		_, errOut, code := apptest.Run(t, nil, tt.args...)
		if code != tt.code || !strings.Contains(errOut, tt.want) {
			t.Errorf("glimpse %v: code %d, stderr %q; want code %d and %q", tt.args, code, errOut, tt.code, tt.want)
		}
	}
}

func TestBrokenConfigNamesTheField(t *testing.T) {
	p := apptest.WriteConfig(t, "sites:\n  - domain: example.com\n    privacy:\n      k_anonymity: 1\n")
	_, errOut, code := apptest.Run(t, nil, "serve", "--config", p, "--clickhouse", "clickhouse://127.0.0.1:1/x")
	if code != 1 {
		t.Fatalf("exit code %d, want 1; stderr %q", code, errOut)
	}
	if !strings.Contains(errOut, p+":4: sites[0].privacy.k_anonymity") || strings.Contains(errOut, "panic") {
		t.Fatalf("stderr does not name the field: %q", errOut)
	}
}

func TestEnvFallbackAndFlagWins(t *testing.T) {
	bad := apptest.WriteConfig(t, "sites:\n  - domain: BAD\n")
	good := apptest.WriteConfig(t, apptest.SitesYAML)
	// The environment names the broken file: its error shows.
	_, errOut, _ := apptest.Run(t, []string{"GLIMPSE_CONFIG=" + bad}, "serve", "--clickhouse", "clickhouse://127.0.0.1:1/x")
	if !strings.Contains(errOut, bad) {
		t.Fatalf("GLIMPSE_CONFIG not used: %q", errOut)
	}
	// The flag wins: the good file loads and the failure moves on to ClickHouse.
	_, errOut, _ = apptest.Run(t, []string{"GLIMPSE_CONFIG=" + bad}, "serve", "--config", good, "--clickhouse", "clickhouse://127.0.0.1:1/x")
	if strings.Contains(errOut, bad) || !strings.Contains(errOut, "ClickHouse") {
		t.Fatalf("--config did not win over GLIMPSE_CONFIG: %q", errOut)
	}
}

// TestBadEnvFailsLikeABadFlag: an environment value that does not parse
// fails every command with exit code 2 and a message naming the variable,
// as the same value given as the flag does; the flag, when given, wins
// over the variable and the command runs.
func TestBadEnvFailsLikeABadFlag(t *testing.T) {
	for _, cmd := range [][]string{{"migrate", "--print"}, {"version"}} {
		_, flagErr, flagCode := apptest.Run(t, nil, append(cmd, "--shutdown-timeout", "abc")...)
		_, envErr, envCode := apptest.Run(t, []string{"GLIMPSE_SHUTDOWN_TIMEOUT=abc"}, cmd...)
		if flagCode != 2 || envCode != 2 {
			t.Errorf("glimpse %v: exit code %d with the bad flag, %d with the bad variable; want 2 and 2", cmd, flagCode, envCode)
		}
		for _, want := range []string{`invalid value "abc"`, "Usage of glimpse " + cmd[0]} {
			if !strings.Contains(flagErr, want) || !strings.Contains(envErr, want) {
				t.Errorf("glimpse %v: want %q in both\nflag: %q\nenv: %q", cmd, want, flagErr, envErr)
			}
		}
		if !strings.Contains(envErr, "GLIMPSE_SHUTDOWN_TIMEOUT") {
			t.Errorf("glimpse %v: the message does not name the variable: %q", cmd, envErr)
		}
		if _, errOut, code := apptest.Run(t, []string{"GLIMPSE_SHUTDOWN_TIMEOUT=abc"}, append(cmd, "--shutdown-timeout", "5s")...); code != 0 {
			t.Errorf("glimpse %v --shutdown-timeout 5s under a bad variable: code %d, %q; the flag should win", cmd, code, errOut)
		}
	}
}

// TestGlobalFlagsBeforeTheCommand: the global flags may come before the
// command as well as after it, where they win; the command's own flags
// may not.
func TestGlobalFlagsBeforeTheCommand(t *testing.T) {
	out, errOut, code := apptest.Run(t, nil, "--clickhouse", "clickhouse://h:9000/before", "migrate", "--print", "--cluster", "analytics")
	if code != 0 || !strings.Contains(out, "/before/events_local") {
		t.Errorf("--clickhouse before migrate: code %d, stderr %q", code, errOut)
	}
	out, errOut, code = apptest.Run(t, nil, "--clickhouse", "clickhouse://h:9000/before", "migrate", "--print", "--cluster", "analytics",
		"--clickhouse", "clickhouse://h:9000/after")
	if code != 0 || !strings.Contains(out, "/after/events_local") || strings.Contains(out, "/before/") {
		t.Errorf("--clickhouse before and after migrate: code %d, stderr %q; want the one after", code, errOut)
	}
	missing := t.TempDir() + "/missing.yaml"
	_, errOut, code = apptest.Run(t, nil, "--config", missing, "serve")
	if code != 1 || !strings.Contains(errOut, missing) {
		t.Errorf("glimpse --config %s serve: code %d, stderr %q; want 1 naming the file", missing, code, errOut)
	}
	// Before the command as after it, the flag wins over its variable.
	bad := apptest.WriteConfig(t, "sites:\n  - domain: BAD\n")
	_, errOut, _ = apptest.Run(t, []string{"GLIMPSE_CONFIG=" + bad}, "--config", missing, "serve")
	if strings.Contains(errOut, bad) || !strings.Contains(errOut, missing) {
		t.Errorf("--config before serve did not win over GLIMPSE_CONFIG: %q", errOut)
	}
	out, errOut, code = apptest.Run(t, []string{"GLIMPSE_CLICKHOUSE=clickhouse://h:9000/env"}, "--clickhouse=clickhouse://h:9000/flag", "migrate", "--print", "--cluster", "analytics")
	if code != 0 || !strings.Contains(out, "/flag/events_local") || strings.Contains(out, "/env/") {
		t.Errorf("--clickhouse=... before migrate under GLIMPSE_CLICKHOUSE: code %d, stderr %q; want the flag's", code, errOut)
	}
	// --cluster is global (serve, prune and subject need it too).
	out, errOut, code = apptest.Run(t, []string{"GLIMPSE_CLUSTER=analytics"}, "--clickhouse", "clickhouse://h:9000/env", "migrate", "--print")
	if code != 0 || !strings.Contains(out, "ON CLUSTER analytics") {
		t.Errorf("GLIMPSE_CLUSTER with migrate --print: code %d, stderr %q; want the cluster's rendering", code, errOut)
	}
	if _, errOut, code = apptest.Run(t, nil, "-h"); code != 0 || !strings.Contains(errOut, "usage: glimpse") {
		t.Errorf("glimpse -h: code %d, stderr %q", code, errOut)
	}
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--nope", "serve"}, "flag provided but not defined: -nope"},
		{[]string{"--server-version", "25.3", "migrate"}, "flag provided but not defined: -server-version"},
		{[]string{"--shutdown-timeout", "abc", "version"}, `invalid value "abc"`},
		{[]string{"--config", missing}, "usage: glimpse"},
	} {
		if _, errOut, code := apptest.Run(t, nil, tt.args...); code != 2 || !strings.Contains(errOut, tt.want) {
			t.Errorf("glimpse %v: code %d, stderr %q; want 2 and %q", tt.args, code, errOut, tt.want)
		}
	}
}

func TestMigrateTwice(t *testing.T) {
	db := chtest.New(t)
	out, errOut, code := apptest.Run(t, nil, "migrate", "--clickhouse", db.DSN)
	if code != 0 || !strings.Contains(out, "applied 0001_events") {
		t.Fatalf("first migrate: code %d\n%s\n%s", code, out, errOut)
	}
	out, errOut, code = apptest.Run(t, []string{"GLIMPSE_CLICKHOUSE=" + db.DSN}, "migrate")
	if code != 0 || !strings.Contains(out, "nothing to apply") || strings.Contains(out, "applied") {
		t.Fatalf("second migrate: code %d\n%s\n%s", code, out, errOut)
	}
}

func TestMigratePrintCluster(t *testing.T) {
	out, _, code := apptest.Run(t, nil, "migrate", "--print", "--cluster", "analytics", "--clickhouse", "clickhouse://h:9000/stats")
	if code != 0 || !strings.Contains(out, "ReplicatedMergeTree('/clickhouse/tables/{shard}/stats/events_local', '{replica}')") {
		t.Fatalf("code %d, out:\n%s", code, out)
	}
}

func TestServeHealthAndSignals(t *testing.T) {
	db := chtest.New(t)
	cfg := apptest.WriteConfig(t, apptest.SitesYAML)
	s := apptest.Start(t, nil, "--config", cfg, "--clickhouse", db.DSN)
	if code, body := s.Get("/readyz"); code != 200 {
		t.Fatalf("/readyz = %d %q, want 200", code, body)
	}
	if code, _ := s.Get("/nope"); code != 404 {
		t.Fatalf("/nope = %d, want 404", code)
	}
	s.Stop(t)
}

// TestAdminListen: with --admin-listen (or GLIMPSE_ADMIN_LISTEN) /metrics
// and /readyz move to their own listener, the ingest listener answers
// them 404 and keeps /healthz, and the admin listener stops with the
// process.
func TestAdminListen(t *testing.T) {
	db := chtest.New(t)
	cfg := apptest.WriteConfig(t, apptest.SitesYAML)
	for _, how := range []string{"flag", "env"} {
		t.Run(how, func(t *testing.T) {
			admin := apptest.FreeAddr(t)
			var env, args []string
			if how == "flag" {
				args = []string{"--admin-listen", admin}
			} else {
				env = []string{"GLIMPSE_ADMIN_LISTEN=" + admin}
			}
			s := apptest.Start(t, env, append([]string{"--config", cfg, "--clickhouse", db.DSN}, args...)...)
			for _, tt := range []struct {
				addr, path string
				code       int
				body       string
			}{
				{admin, "/metrics", 200, "glimpse_events_accepted_total"},
				{admin, "/readyz", 200, ""},
				{admin, "/healthz", 200, "ok"},
				{admin, "/api/event", 404, ""},
				{s.Addr, "/metrics", 404, ""},
				{s.Addr, "/readyz", 404, ""},
				{s.Addr, "/healthz", 200, "ok"},
				{s.Addr, "/js/glimpse.js", 200, ""},
			} {
				code, body := apptest.Get(tt.addr, tt.path)
				if code != tt.code || !strings.Contains(body, tt.body) {
					t.Errorf("%s%s: %d, want %d with %q", tt.addr, tt.path, code, tt.code, tt.body)
				}
			}
			if !strings.Contains(s.Output(), "metrics and readiness on http://"+admin) {
				t.Errorf("serve does not print the admin address:\n%s", s.Output())
			}
			s.Stop(t)
			if code, _ := apptest.Get(admin, "/metrics"); code != 0 {
				t.Errorf("the admin listener still answers %d after the process stopped", code)
			}
		})
	}
	// An address that cannot be bound fails serve and names the flag.
	busy := apptest.FreeAddr(t)
	l, err := net.Listen("tcp", busy)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, errOut, code := apptest.Run(t, nil, "serve", "--config", cfg, "--clickhouse", db.DSN, "--listen", apptest.FreeAddr(t), "--admin-listen", busy)
	if code != 1 || !strings.Contains(errOut, "--admin-listen") {
		t.Errorf("a busy --admin-listen: code %d, stderr %q; want 1 naming the flag", code, errOut)
	}
}

func TestReadyzNeedsCurrentSchema(t *testing.T) {
	db := chtest.New(t)
	cfg := apptest.WriteConfig(t, apptest.SitesYAML)
	s := apptest.Start(t, nil, "--config", cfg, "--clickhouse", db.DSN, "--no-migrate")
	if code, body := s.Get("/readyz"); code != 503 || !strings.Contains(body, "migrate") {
		t.Fatalf("/readyz without migrations = %d %q, want 503 naming migrate", code, body)
	}
	if _, errOut, code := apptest.Run(t, nil, "migrate", "--clickhouse", db.DSN); code != 0 {
		t.Fatal(errOut)
	}
	if code, body := s.Get("/readyz"); code != 200 {
		t.Fatalf("/readyz after migrate = %d %q", code, body)
	}
	s.Stop(t)
}

// TestReadyzFlipsWhenClickHouseStops starts a second private ClickHouse with
// the project's script, serves against it, stops it, and expects 503.
func TestReadyzFlipsWhenClickHouseStops(t *testing.T) {
	ch := apptest.StartClickHouse(t)
	cfg := apptest.WriteConfig(t, apptest.SitesYAML)
	s := apptest.Start(t, nil, "--config", cfg, "--clickhouse", ch.DSN())
	if code, body := s.Get("/readyz"); code != 200 {
		t.Fatalf("/readyz = %d %q, want 200", code, body)
	}
	ch.Stop()
	deadline := time.Now().Add(20 * time.Second)
	for {
		code, body := s.Get("/readyz")
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
	if code, _ := s.Get("/healthz"); code != 200 {
		t.Fatalf("/healthz = %d while ClickHouse is down; the process is alive", code)
	}
	s.Stop(t)
}

// TestSIGTERMUnderLoadLosesNothing drives `glimpse serve` with concurrent
// senders, sends SIGTERM in the middle, and checks that every event answered
// 202 (without a drop header) is in ClickHouse after the process exits.
func TestSIGTERMUnderLoadLosesNothing(t *testing.T) {
	db := chtest.New(t)
	cfg := apptest.WriteConfig(t, apptest.SitesYAML)
	s := apptest.Start(t, nil, "--config", cfg, "--clickhouse", db.DSN, "--trusted-proxies", "127.0.0.1/32",
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
				req, _ := http.NewRequest("POST", "http://"+s.Addr+"/api/event", strings.NewReader(body))
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
	s.StopWithin(t, 60*time.Second)
	close(stop)
	wg.Wait()
	if accepted.Load() < 100 {
		t.Fatalf("only %d events accepted of %d answered; the load did not run", accepted.Load(), answered.Load())
	}
	n := apptest.Count(t, db.Conn, "SELECT count() FROM events")
	if n != uint64(accepted.Load()) {
		t.Fatalf("%d rows in ClickHouse, but %d events were answered 202\n%s", n, accepted.Load(), s.Output())
	}
	t.Logf("%d events accepted before and during shutdown, all stored", n)
}

func TestDemoSite(t *testing.T) {
	db := chtest.New(t)
	// Noisy without a noise key: the log says what that costs.
	cfg := apptest.WriteConfig(t, "sites:\n  - domain: example.com\n    privacy: {aggregates: noisy}\n")
	s := apptest.Start(t, nil, "--config", cfg, "--clickhouse", db.DSN, "--demo")
	for path, want := range map[string]string{
		"/demo/":                   `data-domain="example.com"`,
		"/demo/pricing":            `src="/js/glimpse.js"`,
		"/demo/demo.js":            `glimpse("Signup"`,
		"/demo/files/brochure.pdf": "%PDF",
	} {
		code, body := s.Get(path)
		if code != 200 || !strings.Contains(body, want) {
			t.Errorf("%s: %d, want 200 with %q", path, code, want)
		}
	}
	s.Stop(t)
	if !strings.Contains(s.Output(), "noisy aggregates without a noise key") {
		t.Errorf("a noisy site without a noise key starts without a warning: %s", s.Output())
	}
}

// TestDemoConfig: make run's sites file serves, and its demo site's
// numbers carry noise under a fixed key, with the reader's budget.
func TestDemoConfig(t *testing.T) {
	db := chtest.New(t)
	s := apptest.Start(t, nil, "--config", "../../scripts/demo.yaml", "--clickhouse", db.DSN)
	req, _ := http.NewRequest("GET", "http://"+s.Addr+"/api/v1/stats/aggregate?site_id=demo.glimpse.localhost&period=30d&metrics=visitors", nil)
	req.Header.Set("Authorization", "Bearer demo-key")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"aggregates":"noisy"`) || resp.Header.Get("X-Glimpse-Privacy-Budget") == "" {
		t.Errorf("the demo's Stats API: %d %s (budget header %q), want noisy numbers and a budget", resp.StatusCode, body, resp.Header.Get("X-Glimpse-Privacy-Budget"))
	}
	if spent := s.Metric(t, "glimpse_privacy_budget_spent_total"); spent != 0.5 {
		t.Errorf("glimpse_privacy_budget_spent_total = %g after one number at epsilon 0.5", spent)
	}
	if log := s.Output(); strings.Contains(log, "without a noise key") {
		t.Errorf("the demo has a noise key, yet the log warns: %s", log)
	}
	s.Stop(t)
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
			cfg := apptest.WriteConfig(t, apptest.SitesYAML)
			args := []string{"--config", cfg, "--clickhouse", db.DSN, "--trusted-proxies", "127.0.0.1/32", "--flush-interval", "100ms"}
			if tt.shared {
				args = append(args, "--shared-salts")
			}
			env := []string{"GLIMPSE_SALT_KEY=" + newSaltKey(t)}
			a := apptest.Start(t, env, args...)
			b := apptest.Start(t, env, args...)
			for i, s := range []*apptest.Server{a, b} {
				code, h := s.Post(t, "/api/event", fmt.Sprintf(`{"n":"pageview","u":"https://example.com/%d","d":"example.com"}`, i), http.Header{
					"User-Agent":      {"Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0"},
					"X-Forwarded-For": {"203.0.113.9"},
				})
				if code != 202 || h.Get("X-Glimpse-Dropped") != "" {
					t.Fatalf("instance %d: %d %q", i, code, h.Get("X-Glimpse-Dropped"))
				}
			}
			a.Stop(t)
			b.Stop(t)
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
	cfg := apptest.WriteConfig(t, apptest.SitesYAML)
	s := apptest.Start(t, nil, "--config", cfg, "--clickhouse", db.DSN, "--trusted-proxies", "127.0.0.1/32", "--max-sessions", "1024")
	const visitors = 3000
	for i := range visitors {
		code, h := s.Post(t, "/api/event", `{"n":"pageview","u":"https://example.com/","d":"example.com"}`, http.Header{
			"Content-Type":    {"text/plain"},
			"User-Agent":      {"Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"},
			"X-Forwarded-For": {fmt.Sprintf("198.51.%d.%d", i/250, i%250+1)},
		})
		if code != http.StatusAccepted || h.Get("X-Glimpse-Dropped") != "" {
			t.Fatalf("event %d: %d %q", i, code, h.Get("X-Glimpse-Dropped"))
		}
	}
	if got := s.Metric(t, "glimpse_sessions_evicted_total"); got < visitors-1024 {
		t.Fatalf("glimpse_sessions_evicted_total = %v after %d visitors with --max-sessions 1024, want at least %d", got, visitors, visitors-1024)
	}
	s.Stop(t)
}
