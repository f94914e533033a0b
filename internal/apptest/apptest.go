// Package apptest runs the real glimpse binary for tests, in the manner of
// VictoriaMetrics' apptest: it builds the binary once per test binary,
// starts `glimpse serve` on a free port with a config and flags, and reads
// what a user or an operator would see: the exit code and output, the HTTP
// answers, /metrics, and the rows in ClickHouse.
//
// It is test support: only _test.go files import it (and its sub-package
// browser). It imports no collector or aggregator package, so the tests of
// the read side and of the write side can both use it without tying the
// two together.
package apptest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// Module is the import path of the module whose binary the tests run.
const module = "github.com/glimpse-analytics/glimpse"

// SitesYAML is the standard test sites file: one site, example.com, with
// every setting at its default but exact aggregates. The tests that use
// it (routing, allocations, load, durability, the process's life) are
// not about disclosure control, and several send a site more than one
// visitor-day may contribute to a noisy one (model's bounds); the tests
// of the contribution caps configure noisy sites of their own.
const SitesYAML = "sites:\n  - domain: example.com\n    privacy: {aggregates: exact}\n"

var (
	buildOnce sync.Once
	buildDir  string
	buildPath string
	buildErr  error

	exitMu sync.Mutex
	atExit []func()
)

// Main runs a package's tests and then what was registered with AtExit,
// removes the built binary, and exits with the tests' code. A TestMain of
// a package that starts the binary or a shared browser calls it:
//
//	func TestMain(m *testing.M) { apptest.Main(m) }
func Main(m *testing.M) {
	code := m.Run()
	exitMu.Lock()
	fs := atExit
	atExit = nil
	exitMu.Unlock()
	for i := len(fs) - 1; i >= 0; i-- {
		fs[i]()
	}
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// AtExit registers f to run after all of the package's tests, for what
// outlives a single test (a shared browser). The last registered runs
// first. Only Main runs them.
func AtExit(f func()) {
	exitMu.Lock()
	defer exitMu.Unlock()
	atExit = append(atExit, f)
}

// Binary returns the path of the glimpse binary, built on first use and
// shared by every test of the test binary; a failed build fails each test
// that asks for it.
func Binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "glimpse-bin")
		if buildErr != nil {
			return
		}
		buildPath = filepath.Join(buildDir, "glimpse")
		out, err := exec.Command("go", "build", "-o", buildPath, module+"/cmd/glimpse").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("cannot build glimpse: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildPath
}

// CleanEnv is the test process's environment without any GLIMPSE_*
// variable, so that the caller's shell (GLIMPSE_TEST_CLICKHOUSE, or a
// developer's GLIMPSE_CONFIG) does not configure the binary under test.
func CleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GLIMPSE_") {
			env = append(env, kv)
		}
	}
	return env
}

// Command is the binary with args and a clean environment plus env, not
// yet started, for a test that feeds its stdin or reads its output itself.
func Command(t testing.TB, env []string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(Binary(t), args...)
	cmd.Env = append(CleanEnv(), env...)
	return cmd
}

// Run runs the binary to completion with a clean GLIMPSE_* environment
// plus env. A binary that cannot be started fails t; a non-zero exit is
// the code returned.
func Run(t testing.TB, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := Command(t, env, args...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return o.String(), e.String(), code
}

// WriteConfig writes text as glimpse.yaml in a temporary directory of t's
// and returns its path.
func WriteConfig(t testing.TB, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "glimpse.yaml")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
// Another process may take it before the caller binds it; the tests accept
// that small race, as the binary under test must be given its address.
func FreePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// FreeAddr is FreePort as host:port.
func FreeAddr(t testing.TB) string {
	t.Helper()
	return fmt.Sprintf("127.0.0.1:%d", FreePort(t))
}

// KeyHash is an API key's hash as api_keys[].sha256 holds it: the
// SHA-256 of the key, in hex.
func KeyHash(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

// repoRoot is the module's root directory, found from the working
// directory (a test runs in its package's directory).
func repoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("apptest: no go.mod above the working directory")
		}
		dir = parent
	}
}
