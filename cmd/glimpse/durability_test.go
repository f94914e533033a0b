package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/glimpse-analytics/glimpse/internal/apptest"
	"github.com/glimpse-analytics/glimpse/internal/chtest"
)

// loadGen sends page views with a unique path each from several workers
// and records which were answered 202 without a drop header, and when.
type loadGen struct {
	addr    string
	stopped chan struct{}
	wg      sync.WaitGroup

	sent, answered, refused, failed atomic.Int64
	mu                              sync.Mutex
	accepted                        []answer
	refusedLatency                  []time.Duration
}

type answer struct {
	path string
	at   time.Time // when the 202 arrived
}

func startLoad(addr string, workers int, pause time.Duration) *loadGen {
	l := &loadGen{addr: addr, stopped: make(chan struct{})}
	for w := range workers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			c := http.Client{Timeout: 5 * time.Second}
			for i := 0; ; i++ {
				select {
				case <-l.stopped:
					return
				case <-time.After(pause):
				}
				path := fmt.Sprintf("/w%d/%d", w, i)
				body := fmt.Sprintf(`{"n":"pageview","u":"https://example.com%s","d":"example.com"}`, path)
				req, _ := http.NewRequest("POST", "http://"+l.addr+"/api/event", strings.NewReader(body))
				req.Header.Set("User-Agent", "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0")
				req.Header.Set("X-Forwarded-For", fmt.Sprintf("198.51.%d.%d", w, i%250+1))
				l.sent.Add(1)
				start := time.Now()
				resp, err := c.Do(req)
				if err != nil {
					l.failed.Add(1)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				l.answered.Add(1)
				switch {
				case resp.StatusCode == 202 && resp.Header.Get("X-Glimpse-Dropped") == "":
					l.mu.Lock()
					l.accepted = append(l.accepted, answer{path, time.Now()})
					l.mu.Unlock()
				case resp.StatusCode == 503 && resp.Header.Get("X-Glimpse-Dropped") == "spool-full":
					l.refused.Add(1)
					l.mu.Lock()
					l.refusedLatency = append(l.refusedLatency, time.Since(start))
					l.mu.Unlock()
				}
			}
		}()
	}
	return l
}

func (l *loadGen) stop() {
	close(l.stopped)
	l.wg.Wait()
}

func (l *loadGen) nAccepted() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.accepted)
}

// duplicates is the number of rows beyond one per event id, or per path
// (each event the load sends has a path of its own).
func duplicates(t *testing.T, conn driver.Conn) uint64 {
	t.Helper()
	n := apptest.Count(t, conn, "SELECT toUInt64(count() - uniqExact(event_id)) FROM events")
	m := apptest.Count(t, conn, "SELECT toUInt64(count() - uniqExact(pathname)) FROM events")
	return max(n, m)
}

// outageSeconds is how long TestClickHouseOutageLosesNothing keeps
// ClickHouse down: 60 s as the issue asks; GLIMPSE_TEST_OUTAGE shortens it
// for a quick local run.
func outageDuration() time.Duration {
	if d, err := time.ParseDuration(os.Getenv("GLIMPSE_TEST_OUTAGE")); err == nil {
		return d
	}
	return 60 * time.Second
}

// TestClickHouseOutageLosesNothing stops a private ClickHouse for 60 s
// while a load generator sends events, starts it again, and checks that
// every event answered 202 is stored exactly once.
func TestClickHouseOutageLosesNothing(t *testing.T) {
	ch := apptest.StartClickHouse(t)
	cfg := apptest.WriteConfig(t, apptest.SitesYAML)
	spool := t.TempDir()
	s := apptest.Start(t, nil, "--config", cfg, "--clickhouse", ch.DSN(), "--trusted-proxies", "127.0.0.1/32",
		"--spool-dir", spool, "--batch-size", "5000", "--flush-interval", "200ms", "--retry-max-backoff", "2s")
	conn := ch.Connect()
	l := startLoad(s.Addr, 8, 2*time.Millisecond)
	time.Sleep(2 * time.Second)
	ch.Stop()
	outage := outageDuration()
	down := time.Now()
	time.Sleep(outage / 2)
	code, body := s.Get("/readyz")
	if code != 503 || !strings.Contains(body, "spool") {
		t.Errorf("/readyz during the outage = %d %q, want 503 that names the spool", code, body)
	}
	spooled := s.Metric(t, "glimpse_spool_bytes")
	time.Sleep(time.Until(down.Add(outage)))
	backlog := l.nAccepted()
	ch.Start()
	up := time.Now()
	drained := apptest.WaitRows(t, conn, uint64(backlog), 2*time.Minute)
	recovery := drained.Sub(up)
	time.Sleep(2 * time.Second) // the load goes on after the recovery
	l.stop()
	accepted := l.nAccepted()
	apptest.WaitRows(t, conn, uint64(accepted), time.Minute)
	s.Stop(t)
	stored, err := apptest.QueryCount(conn, "SELECT count() FROM events")
	if err != nil {
		t.Fatal(err)
	}
	dups := duplicates(t, conn)
	t.Logf("outage %v: sent %d, answered %d, accepted (202) %d, refused %d, transport errors %d; stored %d, duplicates %d; "+
		"%d accepted by the restart, stored %v after it; spool held %.0f bytes mid-outage",
		outage, l.sent.Load(), l.answered.Load(), accepted, l.refused.Load(), l.failed.Load(), stored, dups, backlog, recovery.Round(time.Millisecond), spooled)
	if stored != uint64(accepted) || dups != 0 {
		t.Fatalf("stored %d rows with %d duplicates for %d events answered 202\n%s", stored, dups, accepted, s.Output())
	}
	if accepted < 1000 || backlog < accepted/4 {
		t.Fatalf("the load did not run through the outage: %d accepted, %d before the restart", accepted, backlog)
	}
}

// TestKill9UnderLoadReplays kills `glimpse serve` with SIGKILL under load,
// restarts it on the same spool, and checks that every event answered 202
// more than one fsync interval before the kill is stored, once.
func TestKill9UnderLoadReplays(t *testing.T) {
	db := chtest.New(t)
	cfg := apptest.WriteConfig(t, apptest.SitesYAML)
	spool := t.TempDir()
	const syncEvery = 200 * time.Millisecond
	args := []string{"--config", cfg, "--clickhouse", db.DSN, "--trusted-proxies", "127.0.0.1/32", "--spool-dir", spool,
		"--batch-size", "2000", "--flush-interval", "500ms", "--spool-sync-interval", syncEvery.String()}
	s := apptest.Start(t, nil, args...)
	l := startLoad(s.Addr, 8, time.Millisecond)
	time.Sleep(2500 * time.Millisecond)
	killed := s.Kill(t)
	l.stop()
	restart := time.Now()
	s2 := apptest.Start(t, nil, args...)
	bound := killed.Add(-syncEvery)
	var mustHave int
	for _, a := range l.accepted {
		if a.at.Before(bound) {
			mustHave++
		}
	}
	apptest.WaitRows(t, db.Conn, uint64(mustHave), time.Minute)
	// Wait until the replay is done: the spool holds only the new, empty segment.
	deadline := time.Now().Add(time.Minute)
	for s2.Metric(t, "glimpse_spool_segments") > 1 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	replayed := time.Since(restart)
	s2.Stop(t)
	stored := map[string]bool{}
	rows, err := db.Conn.Query(context.Background(), "SELECT pathname FROM events")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var p string
		if err := rows.Scan(&p); err != nil {
			t.Fatal(err)
		}
		stored[p] = true
	}
	rows.Close()
	var missing []string
	lateStored, late := 0, 0
	for _, a := range l.accepted {
		switch {
		case a.at.Before(bound) && !stored[a.path]:
			missing = append(missing, a.path)
		case !a.at.Before(bound):
			late++
			if stored[a.path] {
				lateStored++
			}
		}
	}
	dups := duplicates(t, db.Conn)
	t.Logf("kill -9: sent %d, answered %d, accepted (202) %d, of them %d more than %v before the kill; stored %d rows, duplicates %d; "+
		"of the %d accepted in the last interval %d were stored; restart to replayed spool %v",
		l.sent.Load(), l.answered.Load(), len(l.accepted), mustHave, syncEvery, len(stored), dups, late, lateStored, replayed.Round(time.Millisecond))
	if len(missing) > 0 {
		slices.Sort(missing)
		t.Fatalf("%d events answered 202 more than %v before the kill are not stored, e.g. %v\n%s", len(missing), syncEvery, missing[:min(5, len(missing))], s2.Output())
	}
	if dups != 0 {
		t.Fatalf("%d duplicate rows after the replay", dups)
	}
	if mustHave < 1000 {
		t.Fatalf("only %d events accepted before the bound; the load did not run", mustHave)
	}
}

// TestSpoolCapUnderLoad fills a 1 MiB spool while ClickHouse is down: the
// listener keeps answering (refusals as fast as /healthz), every refusal is
// counted, and the process stays up.
func TestSpoolCapUnderLoad(t *testing.T) {
	ch := apptest.StartClickHouse(t)
	cfg := apptest.WriteConfig(t, apptest.SitesYAML)
	s := apptest.Start(t, nil, "--config", cfg, "--clickhouse", ch.DSN(), "--trusted-proxies", "127.0.0.1/32",
		"--spool-dir", t.TempDir(), "--spool-max-mb", "1")
	ch.Stop()
	l := startLoad(s.Addr, 8, 0)
	deadline := time.Now().Add(time.Minute)
	for l.refused.Load() < 2000 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	// /healthz sampled meanwhile is the yardstick for "answers fast".
	var health []time.Duration
	for range 200 {
		start := time.Now()
		if code, _ := s.Get("/healthz"); code != 200 {
			t.Fatalf("/healthz = %d with a full spool", code)
		}
		health = append(health, time.Since(start))
	}
	l.stop()
	counted := s.Metric(t, `glimpse_events_dropped_total{reason="spool-full"}`)
	size, capBytes := s.Metric(t, "glimpse_spool_bytes"), s.Metric(t, "glimpse_spool_cap_bytes")
	code, body := s.Get("/readyz")
	l.mu.Lock()
	lat := slices.Clone(l.refusedLatency)
	l.mu.Unlock()
	slices.Sort(lat)
	slices.Sort(health)
	p50, p99 := lat[len(lat)/2], lat[len(lat)*99/100]
	h50, h99 := health[len(health)/2], health[len(health)*99/100]
	t.Logf("spool cap: sent %d, accepted %d, refused %d (counted %.0f), transport errors %d; spool %.0f of %.0f bytes; "+
		"refusal latency p50 %v p99 %v, /healthz under the same load p50 %v p99 %v; /readyz %d %q",
		l.sent.Load(), l.nAccepted(), l.refused.Load(), counted, l.failed.Load(), size, capBytes, p50, p99, h50, h99, code, body)
	if l.refused.Load() < 2000 || counted != float64(l.refused.Load()) {
		t.Fatalf("refused %d, counted %.0f; want them equal and the spool full", l.refused.Load(), counted)
	}
	if l.failed.Load() != 0 {
		t.Fatalf("%d requests got no answer", l.failed.Load())
	}
	if p50 > 10*h50+time.Millisecond {
		t.Fatalf("refusals answer in %v (p50), /healthz in %v: the full spool slows the listener", p50, h50)
	}
	if !strings.Contains(body, "spool full") {
		t.Fatalf("/readyz %d %q does not say the spool is full", code, body)
	}
	s.Stop(t)
}
