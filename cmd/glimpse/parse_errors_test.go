package main

import (
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/glimpse-analytics/glimpse/internal/apptest"
	"github.com/glimpse-analytics/glimpse/internal/chtest"
)

// Secrets a request may carry. Each holds "s3cr3t" or the client's full
// address, so the test can look for them all at once.
const (
	secretKey      = "Bearer key-s3cr3t-bearer"
	secretCookie   = "glimpse_session=s3cr3t-session"
	secretToken    = "token=s3cr3t-link-token"
	secretPassword = "email=a%40example.com&password=s3cr3t-password"
	clientAddr     = "203.0.113.77"
)

// rawRequest writes req over a new connection to addr and returns the
// status line of the answer.
func rawRequest(t *testing.T, addr, req string) string {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	// The server may answer and close before it has read everything.
	go io.WriteString(conn, req)
	status, _ := io.ReadAll(io.LimitReader(conn, int64(len("HTTP/1.1 400"))))
	return string(status)
}

// secretHeaders are the header lines every test request carries.
func secretHeaders() string {
	return "Host: example.com\r\nAuthorization: " + secretKey + "\r\nCookie: " + secretCookie +
		"\r\nX-Forwarded-For: " + clientAddr + "\r\nContent-Type: application/x-www-form-urlencoded\r\n"
}

// TestUnparsableRequestsLogNoRequestBytes sends both listeners requests
// fasthttp cannot parse, each carrying a bearer key, a session cookie, a
// shared-link token, a password and the client's address: each gets its
// 4xx, is counted, and is logged by reason and size with none of its bytes.
func TestUnparsableRequestsLogNoRequestBytes(t *testing.T) {
	db := chtest.New(t)
	cfg := apptest.WriteConfig(t, apptest.SitesYAML)
	dash := apptest.FreeAddr(t)
	s := apptest.Start(t, nil, "--config", cfg, "--clickhouse", db.DSN, "--dashboard-listen", dash,
		"--trusted-proxies", "127.0.0.1", "--log-level", "debug")
	twoLengths := func(method, path string) string {
		return method + " " + path + " HTTP/1.1\r\n" + secretHeaders() +
			fmt.Sprintf("Content-Length: %d\r\nContent-Length: %d\r\n\r\n", len(secretPassword), len(secretPassword)+1) + secretPassword
	}
	bigHeader := func(path string) string {
		return "GET " + path + " HTTP/1.1\r\n" + secretHeaders() + "X-Pad: " + strings.Repeat(secretToken, 8<<10/len(secretToken)) + "\r\n\r\n"
	}
	bigBody := func(method, path string) string {
		return method + " " + path + " HTTP/1.1\r\n" + secretHeaders() + fmt.Sprintf("Content-Length: %d\r\n\r\n", 1<<20) + secretPassword
	}
	tests := []struct {
		name, addr, req, status string
	}{
		{"event, two lengths", s.Addr, twoLengths("POST", "/api/event?"+secretToken), "HTTP/1.1 400"},
		{"stats API, two lengths", s.Addr, twoLengths("GET", "/api/v1/stats/aggregate?site_id=example.com&"+secretToken), "HTTP/1.1 400"},
		{"sign-in, two lengths", dash, twoLengths("POST", "/dashboard/login?"+secretToken), "HTTP/1.1 400"},
		{"bad chunk", s.Addr, "POST /api/event?" + secretToken + " HTTP/1.1\r\n" + secretHeaders() +
			"Transfer-Encoding: chunked\r\n\r\n" + secretPassword + "\r\n", "HTTP/1.1 400"},
		{"event, header too large", s.Addr, bigHeader("/api/event?" + secretToken), "HTTP/1.1 431"},
		{"dashboard, header too large", dash, bigHeader("/dashboard/site?" + secretToken), "HTTP/1.1 431"},
		{"event, body too large", s.Addr, bigBody("POST", "/api/event?"+secretToken), "HTTP/1.1 413"},
		{"sign-in, body too large", dash, bigBody("POST", "/dashboard/login?"+secretToken), "HTTP/1.1 413"},
	}
	for _, tt := range tests {
		if got := rawRequest(t, tt.addr, tt.req); got != tt.status {
			t.Errorf("%s: answered %q, want %q", tt.name, got, tt.status)
		}
	}
	// Both listeners still serve.
	if code, _ := s.Get("/healthz"); code != 200 {
		t.Errorf("/healthz after bad requests: %d", code)
	}
	if code, _ := apptest.Get(dash, "/dashboard/login"); code != 200 {
		t.Errorf("dashboard sign-in page after bad requests: %d", code)
	}
	m := s.Metrics(t)
	for reason, want := range map[string]float64{"malformed_request": 4, "header_too_large": 2, "too_large": 2} {
		if got := m[`glimpse_requests_rejected_total{reason="`+reason+`"}`]; got != want {
			t.Errorf("rejected %s: %v, want %v", reason, got, want)
		}
	}
	s.Stop(t)
	out := s.Output()
	for _, secret := range []string{"s3cr3t", clientAddr, "Bearer", "glimpse_session", "password"} {
		if strings.Contains(out, secret) {
			t.Errorf("the log holds %q", secret)
		}
	}
	for _, want := range []string{"reason=malformed_request", "reason=header_too_large", "reason=too_large", "content_length=1048576"} {
		if !strings.Contains(out, want) {
			t.Errorf("the log lacks %q", want)
		}
	}
	if t.Failed() {
		t.Log(out)
	}
}
