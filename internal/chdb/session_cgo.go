//go:build cgo && linux

package chdb

/*
#cgo LDFLAGS: -ldl
#include <dlfcn.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

// The C API of libchdb.so (chdb.h, chDB 3 and later). A connection is a
// pointer to a handle; results are opaque and must be destroyed.
typedef void **(*chdb_connect_fn)(int, char **);
typedef void (*chdb_close_conn_fn)(void **);
typedef void *(*chdb_query_fn)(void *, const char *, const char *);
typedef void (*chdb_destroy_fn)(void *);
typedef char *(*chdb_buffer_fn)(void *);
typedef size_t (*chdb_length_fn)(void *);
typedef const char *(*chdb_error_fn)(void *);
typedef void (*chdb_signals_fn)(int);

typedef struct {
	chdb_connect_fn connect;
	chdb_close_conn_fn close_conn;
	chdb_query_fn query;
	chdb_destroy_fn destroy;
	chdb_buffer_fn buffer;
	chdb_length_fn length;
	chdb_error_fn error;
	void **conn;
} glimpse_chdb;

// glimpse_chdb_open loads the library and connects with clickhouse-local
// style arguments. It returns NULL and sets *err (static or dlerror's
// text, copied by the caller) on failure.
//
// ClickHouse installs handlers for SIGSEGV, SIGBUS, SIGABRT and others,
// and the call that turns them off resets those signals to SIG_DFL; the
// Go runtime needs its own handlers for them (nil dereferences become
// panics through SIGSEGV; goroutines are preempted with SIGURG). So every
// disposition is saved first and put back once the engine has started.
static glimpse_chdb *glimpse_chdb_open(const char *path, int argc, char **argv, const char **err) {
	void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		*err = dlerror();
		return NULL;
	}
	glimpse_chdb *c = calloc(1, sizeof *c);
	c->connect = (chdb_connect_fn)dlsym(h, "chdb_connect");
	c->close_conn = (chdb_close_conn_fn)dlsym(h, "chdb_close_conn");
	c->query = (chdb_query_fn)dlsym(h, "chdb_query");
	c->destroy = (chdb_destroy_fn)dlsym(h, "chdb_destroy_query_result");
	c->buffer = (chdb_buffer_fn)dlsym(h, "chdb_result_buffer");
	c->length = (chdb_length_fn)dlsym(h, "chdb_result_length");
	c->error = (chdb_error_fn)dlsym(h, "chdb_result_error");
	chdb_signals_fn signals = (chdb_signals_fn)dlsym(h, "chdb_set_signal_handlers_enabled");
	if (!c->connect || !c->close_conn || !c->query || !c->destroy || !c->buffer || !c->length || !c->error) {
		free(c);
		*err = "the library lacks the chdb_connect/chdb_query API (chDB 3 or later)";
		return NULL;
	}
	struct sigaction saved[NSIG];
	for (int s = 1; s < NSIG; s++) {
		sigaction(s, NULL, &saved[s]);
	}
	if (signals) {
		signals(0);
	}
	c->conn = c->connect(argc, argv);
	for (int s = 1; s < NSIG; s++) {
		if (s != SIGKILL && s != SIGSTOP) {
			sigaction(s, &saved[s], NULL);
		}
	}
	if (!c->conn || !*c->conn) {
		free(c);
		*err = "chdb_connect failed (is another connection open in this process, or the path unusable?)";
		return NULL;
	}
	return c;
}

// glimpse_chdb_query runs one statement. On success it returns the
// result (which the caller destroys) with *buf and *len set; on failure
// it destroys the result and returns NULL with *msg a malloc'd copy of
// the error, or NULL if chDB gave none.
static void *glimpse_chdb_query(glimpse_chdb *c, const char *sql, const char *format, char **buf, size_t *len, char **msg) {
	void *r = c->query(*c->conn, sql, format);
	*msg = NULL;
	if (!r) {
		*msg = strdup("chdb_query returned no result");
		return NULL;
	}
	const char *e = c->error(r);
	if (e) {
		*msg = strdup(e);
		c->destroy(r);
		return NULL;
	}
	*buf = c->buffer(r);
	*len = c->length(r);
	return r;
}

static void glimpse_chdb_destroy(glimpse_chdb *c, void *r) { c->destroy(r); }

static void glimpse_chdb_close(glimpse_chdb *c) {
	c->close_conn(c->conn);
	free(c);
}
*/
import "C"

import (
	"errors"
	"fmt"
	"sync"
	"unsafe"
)

// Session is one connection to the engine, on one data directory.
type Session struct {
	mu sync.Mutex
	c  *C.glimpse_chdb
}

// Open loads the library at lib (libchdb.so) and connects on the data
// directory dir, which is created if missing. args are further
// clickhouse-local style arguments (e.g. "--some_setting=1"). The library
// stays loaded until the process ends: ClickHouse cannot be unloaded.
func Open(lib, dir string, args ...string) (*Session, error) {
	if lib == "" {
		return nil, errors.New("chdb: no library path (scripts/chdb install prints it)")
	}
	argv := append([]string{"clickhouse", "--path=" + dir}, args...)
	cargv := make([]*C.char, len(argv))
	for i, a := range argv {
		cargv[i] = C.CString(a)
		defer C.free(unsafe.Pointer(cargv[i]))
	}
	clib := C.CString(lib)
	defer C.free(unsafe.Pointer(clib))
	var cerr *C.char
	c := C.glimpse_chdb_open(clib, C.int(len(argv)), &cargv[0], &cerr)
	if c == nil {
		return nil, fmt.Errorf("chdb: cannot open %s on %s: %s", lib, dir, C.GoString(cerr))
	}
	return &Session{c: c}, nil
}

// Query runs one statement and returns its output in format (e.g.
// "TabSeparated", "JSONCompact"), or the engine's error.
func (s *Session) Query(sql, format string) ([]byte, error) {
	csql, cformat := C.CString(sql), C.CString(format)
	defer C.free(unsafe.Pointer(csql))
	defer C.free(unsafe.Pointer(cformat))
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.c == nil {
		return nil, errors.New("chdb: session closed")
	}
	var buf *C.char
	var n C.size_t
	var msg *C.char
	r := C.glimpse_chdb_query(s.c, csql, cformat, &buf, &n, &msg)
	if r == nil {
		defer C.free(unsafe.Pointer(msg))
		if msg == nil {
			return nil, errors.New("chdb: query failed without a message")
		}
		return nil, errors.New(C.GoString(msg))
	}
	defer C.glimpse_chdb_destroy(s.c, r)
	if buf == nil || n == 0 {
		return nil, nil
	}
	return C.GoBytes(unsafe.Pointer(buf), C.int(n)), nil
}

// Close closes the connection; the session answers no more queries.
func (s *Session) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.c != nil {
		C.glimpse_chdb_close(s.c)
		s.c = nil
	}
	return nil
}
