package apptest_test

import (
	"strings"
	"testing"

	"github.com/VictoriaMetrics/metrics"

	"github.com/glimpse-analytics/glimpse/internal/apptest"
	"github.com/glimpse-analytics/glimpse/internal/chtest"
)

func TestMain(m *testing.M) { apptest.Main(m) }

func TestParseMetrics(t *testing.T) {
	m, err := apptest.ParseMetrics("# HELP x\nglimpse_a_total 3\nglimpse_b{reason=\"a b\"} 1.5\n\n")
	if err != nil || m["glimpse_a_total"] != 3 || m[`glimpse_b{reason="a b"}`] != 1.5 || m["glimpse_missing"] != 0 {
		t.Fatalf("%v %v", m, err)
	}
	if _, err := apptest.ParseMetrics("glimpse_a_total\n"); err == nil {
		t.Error("a line without a value parses")
	}
	if _, err := apptest.ParseMetrics("glimpse_a_total x\n"); err == nil {
		t.Error("a line with a bad value parses")
	}
}

func TestSetMetric(t *testing.T) {
	set := metrics.NewSet()
	set.NewCounter(`glimpse_x_total{reason="r"}`).Add(7)
	if v := apptest.SetMetric(t, set, `glimpse_x_total{reason="r"}`); v != 7 {
		t.Fatalf("SetMetric = %v, want 7", v)
	}
}

func TestKeyHash(t *testing.T) {
	// sha256("test"), as `echo -n test | sha256sum` prints it.
	if h := apptest.KeyHash("test"); h != "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08" {
		t.Fatal(h)
	}
}

// TestServer starts the real binary: it answers, counts, and stops on
// SIGTERM with a clean exit.
func TestServer(t *testing.T) {
	db := chtest.New(t)
	s := apptest.Start(t, nil, "--config", apptest.WriteConfig(t, apptest.SitesYAML), "--clickhouse", db.DSN, "--flush-interval", "100ms")
	code, _ := s.Post(t, "/api/event", `{"n":"pageview","u":"https://example.com/","d":"example.com"}`, map[string][]string{
		"User-Agent": {"Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0"},
	})
	if code != 202 {
		t.Fatalf("POST /api/event = %d", code)
	}
	if v := s.Metric(t, "glimpse_events_accepted_total"); v != 1 {
		t.Errorf("glimpse_events_accepted_total = %v, want 1", v)
	}
	s.Stop(t)
	if n := apptest.Count(t, db.Conn, "SELECT count() FROM events"); n != 1 {
		t.Errorf("%d rows after the stop, want 1", n)
	}
	if !strings.Contains(s.Output(), "127.0.0.1") {
		t.Errorf("the output does not name the listener:\n%s", s.Output())
	}
}
