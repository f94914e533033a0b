package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/glimpse-analytics/glimpse/internal/apptest"
)

// startNginx runs Debian's nginx in the foreground, one process
// (master_process off), with a generated config in a temp dir, proxying
// to the collectors at backends with the upstream options given; it
// returns nginx's address and stops it by PID when t ends.
func startNginx(t *testing.T, upstream string, backends ...string) string {
	t.Helper()
	bin, err := exec.LookPath("nginx")
	if err != nil {
		t.Skip("load balancer test skipped: nginx is missing (apt-get install nginx; make test installs it)")
	}
	dir := t.TempDir()
	addr := apptest.FreeAddr(t)
	var servers strings.Builder
	for _, b := range backends {
		fmt.Fprintf(&servers, "        server %s;\n", b)
	}
	conf := fmt.Sprintf(`master_process off;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
events { worker_connections 256; }
http {
    access_log off;
    client_body_temp_path %[1]s/body;
    proxy_temp_path %[1]s/proxy;
    fastcgi_temp_path %[1]s/fastcgi;
    uwsgi_temp_path %[1]s/uwsgi;
    scgi_temp_path %[1]s/scgi;
    upstream collectors {
        %[2]s
%[3]s        keepalive 8;
    }
    server {
        listen %[4]s;
        location / {
            proxy_pass http://collectors;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        }
    }
}
`, dir, upstream, servers.String(), addr)
	path := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-p", dir, "-c", path, "-g", "daemon off;")
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGQUIT)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return addr
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			t.Fatalf("nginx does not listen on %s:\n%s\n%s", addr, out.String(), log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// visits sends, for site, one visit of each of the visitors: from 8
// loopback addresses (127.0.0.2...), 5 browsers each, 4 page views and an
// engagement event per visit, to addr. It returns the events answered
// 202.
func visits(t *testing.T, addr, site string) int {
	t.Helper()
	const addrs, browsers, pages = 8, 5, 4
	var mu sync.Mutex
	accepted := 0
	var wg sync.WaitGroup
	for a := range addrs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			local := &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(a+2))}
			c := http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
				DialContext: (&net.Dialer{LocalAddr: local, Timeout: 2 * time.Second}).DialContext}}
			for p := range pages + 1 {
				for b := range browsers {
					u := fmt.Sprintf("https://%s/page%d", site, p%pages)
					body := fmt.Sprintf(`{"n":"pageview","u":%q,"d":%q}`, u, site)
					if p == pages {
						body = fmt.Sprintf(`{"n":"engagement","u":%q,"d":%q,"e":4000}`, u, site)
					}
					req, _ := http.NewRequest("POST", "http://"+addr+"/api/event", strings.NewReader(body))
					req.Header.Set("User-Agent", fmt.Sprintf("Mozilla/5.0 (X11; Linux x86_64; rv:12%d.0) Gecko/20100101 Firefox/12%d.0", b, b))
					resp, err := c.Do(req)
					if err != nil {
						t.Errorf("visit from %v: %v", local, err)
						return
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode == 202 && resp.Header.Get("X-Glimpse-Dropped") == "" {
						mu.Lock()
						accepted++
						mu.Unlock()
					} else {
						t.Errorf("visit from %v: %d %q", local, resp.StatusCode, resp.Header.Get("X-Glimpse-Dropped"))
					}
					time.Sleep(20 * time.Millisecond)
				}
			}
		}()
	}
	wg.Wait()
	return accepted
}

// TestCollectorsBehindNginx runs two `glimpse serve --cluster` with
// shared sealed salts behind nginx, and sends the same visits three ways:
// to one collector alone, through nginx with `hash $remote_addr
// consistent` (each client address sticks to one collector), and through
// nginx round-robin. With affinity every number equals the single
// collector's: sessions, visitors, the Stats API's visitors and visits.
// Round-robin keeps the visitor ids (the salts are shared) but splits
// visits into more sessions, as the README says.
func TestCollectorsBehindNginx(t *testing.T) {
	c := liveCluster(t)
	c.migrate(t, 0)
	var key [32]byte
	_, _ = rand.Read(key[:])
	env := []string{"GLIMPSE_SALT_KEY=" + base64.StdEncoding.EncodeToString(key[:])}
	const apiKey = "balance-test-key"
	cfg := apptest.WriteConfig(t, fmt.Sprintf(`sites:
  - domain: single.test
    privacy: {aggregates: exact}
  - domain: hash.test
    privacy: {aggregates: exact}
  - domain: rr.test
    privacy: {aggregates: exact}
api_keys:
  - name: test
    sha256: %q
    sites: [single.test, hash.test, rr.test]
`, apptest.KeyHash(apiKey)))
	dsn := "clickhouse://" + strings.Join(c.hosts, ",") + "/" + c.db
	args := []string{"--cluster", c.name, "--config", cfg, "--clickhouse", dsn, "--shared-salts",
		"--trusted-proxies", "127.0.0.1/32", "--session-flush-interval", "1s", "--flush-interval", "200ms"}
	s1 := apptest.Start(t, env, args...)
	s2 := apptest.Start(t, env, args...)
	hashLB := startNginx(t, "hash $remote_addr consistent;", s1.Addr, s2.Addr)
	rrLB := startNginx(t, "", s1.Addr, s2.Addr)

	// The single collector is reached from the same loopback addresses,
	// which it sees as the TCP peer (nginx's are X-Forwarded-For).
	sent := map[string]int{}
	sent["single.test"] = visits(t, s1.Addr, "single.test")
	before1, before2 := s1.Metric(t, "glimpse_events_accepted_total"), s2.Metric(t, "glimpse_events_accepted_total")
	sent["hash.test"] = visits(t, hashLB, "hash.test")
	sent["rr.test"] = visits(t, rrLB, "rr.test")
	took1, took2 := s1.Metric(t, "glimpse_events_accepted_total")-before1, s2.Metric(t, "glimpse_events_accepted_total")-before2
	if took1 == 0 || took2 == 0 {
		t.Errorf("through nginx collector 1 took %.0f events, collector 2 %.0f: want both to take some", took1, took2)
	}

	type numbers struct{ events, visitors, sessions, storedSessions, apiVisitors, apiVisits uint64 }
	got := map[string]numbers{}
	// The Stats API before the collectors stop (it is served by them).
	for _, site := range []string{"single.test", "hash.test", "rr.test"} {
		var n numbers
		deadline := time.Now().Add(30 * time.Second)
		for {
			n.events = c.countSite(t, "SELECT count() FROM DB.events WHERE site_id = ?", site)
			if int(n.events) >= sent[site] || time.Now().After(deadline) {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		got[site] = n
	}
	s1.Stop(t)
	s2.Stop(t) // the last session checkpoints are written at shutdown
	s1 = apptest.Start(t, env, args...)
	for site, n := range got {
		n.visitors = c.countSite(t, "SELECT uniqExact(visitor_id) FROM DB.events WHERE site_id = ?", site)
		n.sessions = c.countSite(t, "SELECT uniqExact(session_id) FROM DB.events WHERE site_id = ?", site)
		n.storedSessions = c.countSite(t, "SELECT toUInt64(sum(sign)) FROM DB.sessions WHERE site_id = ?", site)
		n.apiVisitors, n.apiVisits = aggregate(t, s1.Addr, apiKey, site)
		got[site] = n
	}
	s1.Stop(t)
	t.Logf("events sent/stored, visitors, sessions (events, sessions table), Stats API visitors and visits:\n"+
		"  one collector     %d/%d %d %d %d %d %d\n  nginx hash        %d/%d %d %d %d %d %d\n  nginx round-robin %d/%d %d %d %d %d %d",
		sent["single.test"], got["single.test"].events, got["single.test"].visitors, got["single.test"].sessions, got["single.test"].storedSessions, got["single.test"].apiVisitors, got["single.test"].apiVisits,
		sent["hash.test"], got["hash.test"].events, got["hash.test"].visitors, got["hash.test"].sessions, got["hash.test"].storedSessions, got["hash.test"].apiVisitors, got["hash.test"].apiVisits,
		sent["rr.test"], got["rr.test"].events, got["rr.test"].visitors, got["rr.test"].sessions, got["rr.test"].storedSessions, got["rr.test"].apiVisitors, got["rr.test"].apiVisits)
	single, hash, rr := got["single.test"], got["hash.test"], got["rr.test"]
	if single.visitors != 40 || single.sessions != 40 || single.storedSessions != 40 {
		t.Errorf("one collector: %+v; want 40 visitors in 40 sessions", single)
	}
	if hash != single {
		t.Errorf("behind nginx with hash affinity: %+v; want the single collector's %+v", hash, single)
	}
	if rr.visitors != single.visitors {
		t.Errorf("round-robin: %d visitors, want %d: the collectors' visitor ids differ (shared salts?)", rr.visitors, single.visitors)
	}
	if rr.sessions <= single.sessions {
		t.Errorf("round-robin: %d sessions for %d visits; expected more (a visit split between collectors)", rr.sessions, single.sessions)
	}
}

// countSite runs q with site on the cluster's first host.
func (c *testCluster) countSite(t *testing.T, q, site string) uint64 {
	t.Helper()
	var n uint64
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.conns[0].QueryRow(ctx, strings.ReplaceAll(q, "DB.", c.db+"."), site).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

// aggregate reads today's visitors and visits of site from the Stats API.
func aggregate(t *testing.T, addr, key, site string) (visitors, visits uint64) {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+addr+"/api/v1/stats/aggregate?site_id="+site+"&period=day&metrics=visitors,visits", nil)
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var r struct {
		Results map[string]struct {
			Value float64 `json:"value"`
		} `json:"results"`
	}
	if resp.StatusCode != 200 || json.Unmarshal(body, &r) != nil {
		t.Fatalf("Stats API aggregate for %s: %d %s", site, resp.StatusCode, body)
	}
	return uint64(r.Results["visitors"].Value), uint64(r.Results["visits"].Value)
}
