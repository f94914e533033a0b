package chdb_test

import (
	"strings"
	"testing"

	"github.com/glimpse-analytics/glimpse/internal/chdb"
)

// open opens a session on a temporary directory, skipping t without the
// library. chDB allows one connection per process, so each test closes
// its own before the next opens.
func open(t *testing.T) *chdb.Session {
	t.Helper()
	lib := chdb.LibFromEnv()
	if lib == "" {
		t.Skipf("chDB test skipped: set %s to libchdb.so (scripts/chdb install prints it; make test does)", chdb.EnvLib)
	}
	s, err := chdb.Open(lib, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestQuery(t *testing.T) {
	s := open(t)
	out, err := s.Query("SELECT version() LIKE '2%', 1 + 1", "TabSeparated")
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != "1\t2\n" {
		t.Errorf("got %q, want %q", out, "1\t2\n")
	}
	// State lives across statements of the session.
	for _, q := range []string{
		"CREATE DATABASE g",
		"CREATE TABLE g.t (a UInt8, s LowCardinality(String) CODEC(ZSTD)) ENGINE = MergeTree ORDER BY a",
		"INSERT INTO g.t FORMAT TabSeparated\n1\tx\n2\ty\n",
	} {
		if _, err := s.Query(q, "TabSeparated"); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	out, err = s.Query("SELECT a, s FROM g.t ORDER BY a", "JSONCompact")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), `[1, "x"]`) || !strings.Contains(string(out), `[2, "y"]`) {
		t.Errorf("JSONCompact: %s", out)
	}
	// An error is the engine's message, and the session goes on.
	_, err = s.Query("SELECT nope FROM g.t", "TabSeparated")
	if err == nil || !strings.Contains(err.Error(), "nope") {
		t.Errorf("bad query: err %v, want the engine's message naming the column", err)
	}
	if out, err := s.Query("SELECT count() FROM g.t", "TabSeparated"); err != nil || string(out) != "2\n" {
		t.Errorf("after an error: %q, %v", out, err)
	}
	// A Go panic still recovers after the engine started (its signal
	// handlers did not replace the runtime's).
	func() {
		defer func() {
			if recover() == nil {
				t.Error("nil dereference did not panic")
			}
		}()
		var p *int
		_ = *p
	}()
}
