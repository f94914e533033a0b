// Package chdb runs SQL on chDB, the ClickHouse engine as a library
// (libchdb.so, npm's @chdb/lib-linux-x64-gnu; scripts/chdb installs it),
// so that tests can check Glimpse's schema and queries on a current
// ClickHouse release where only an old server can be installed.
//
// The library is opened with dlopen at run time, not linked: the module
// builds and vets without it, and without cgo Open reports that it is
// unavailable. chDB holds one engine per process and allows one open
// connection at a time, so a process (a test binary) opens one Session
// and shares it; a Session serialises its queries.
//
// chDB speaks no network protocol: SQL goes in as text (arguments bound
// by the caller) and results come back as bytes in the format asked for.
package chdb

import (
	"errors"
	"os"
)

// EnvLib names the environment variable with the path of libchdb.so that
// tests use; scripts/test sets it (scripts/chdb install).
const EnvLib = "GLIMPSE_TEST_CHDB"

// ErrUnavailable is returned by Open in a build without cgo.
var ErrUnavailable = errors.New("chdb: this binary was built without cgo, so it cannot load libchdb.so")

// LibFromEnv returns the library path EnvLib gives, or "".
func LibFromEnv() string { return os.Getenv(EnvLib) }
