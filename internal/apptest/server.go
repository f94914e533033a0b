package apptest

import (
	"bytes"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Server is a running `glimpse serve`.
type Server struct {
	// Addr is the ingest listener's host:port on 127.0.0.1.
	Addr string

	cmd  *exec.Cmd
	out  *lockedBuffer
	done chan error // the process's exit, once
}

// Start runs `glimpse serve --listen <free port>` with args and a clean
// environment plus env, and returns once /healthz answers 200. It fails t
// if the process exits first or does not answer within 30 s. A server the
// test did not stop is killed when t ends.
func Start(t testing.TB, env []string, args ...string) *Server {
	t.Helper()
	addr := FreeAddr(t)
	cmd := Command(t, env, append([]string{"serve", "--listen", addr}, args...)...)
	s := &Server{Addr: addr, cmd: cmd, out: new(lockedBuffer), done: make(chan error, 1)}
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
		if code, _ := s.Get("/healthz"); code == 200 {
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

// URL is the server's base URL, http://Addr.
func (s *Server) URL() string { return "http://" + s.Addr }

// Output is what the process has written to stdout and stderr so far.
func (s *Server) Output() string { return s.out.String() }

// Get requests path from the server; see Get.
func (s *Server) Get(path string) (int, string) { return Get(s.Addr, path) }

// Post sends body to path with header and returns the status and the
// answer's header; a transport error fails t.
func (s *Server) Post(t testing.TB, path, body string, header http.Header) (int, http.Header) {
	t.Helper()
	req, err := http.NewRequest("POST", s.URL()+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, resp.Header
}

// Metrics reads the server's /metrics; a failed read fails t.
func (s *Server) Metrics(t testing.TB) Samples {
	t.Helper()
	code, body := s.Get("/metrics")
	if code != 200 {
		t.Fatalf("/metrics: %d %s", code, body)
	}
	m, err := ParseMetrics(body)
	if err != nil {
		t.Fatalf("/metrics: %v", err)
	}
	return m
}

// Metric is one sample of /metrics, by its name with labels as printed,
// e.g. glimpse_events_dropped_total{reason="spool-full"}; see Samples.
func (s *Server) Metric(t testing.TB, name string) float64 {
	t.Helper()
	return s.Metrics(t)[name]
}

// Stop sends SIGTERM and fails t unless the process exits cleanly within
// 30 s.
func (s *Server) Stop(t testing.TB) {
	t.Helper()
	s.StopWithin(t, 30*time.Second)
}

// StopWithin is Stop with another bound on the shutdown, for a server
// that has a backlog to flush.
func (s *Server) StopWithin(t testing.TB, limit time.Duration) {
	t.Helper()
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-s.done:
		if err != nil {
			t.Fatalf("glimpse serve exited with %v after SIGTERM:\n%s", err, s.out)
		}
	case <-time.After(limit):
		t.Fatalf("glimpse serve did not stop after SIGTERM:\n%s", s.out)
	}
}

// Kill sends SIGKILL and waits for the process to be gone: no shutdown
// runs, as in a crash. It returns when the signal was sent, the moment a
// test's durability bound counts from.
func (s *Server) Kill(t testing.TB) time.Time {
	t.Helper()
	if err := s.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	<-s.done
	return killed
}

// client is the HTTP client of Get and Post: a bounded wait, so that a
// hung server fails the test instead of stalling it.
var client = http.Client{Timeout: 10 * time.Second}

// Get requests http://addr/path and returns the status and body; a
// transport error is status 0 with the error as the body, so that a
// caller polling a starting or stopping server needs no error path.
func Get(addr, path string) (int, string) {
	resp, err := client.Get("http://" + addr + path)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
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
