//go:build !cgo || !linux

package chdb

// Session is unavailable without cgo (see ErrUnavailable).
type Session struct{}

// Open reports ErrUnavailable: loading libchdb.so needs cgo on linux.
func Open(lib, dir string, args ...string) (*Session, error) { return nil, ErrUnavailable }

// Query is never reached: Open fails.
func (s *Session) Query(sql, format string) ([]byte, error) { return nil, ErrUnavailable }

// Close does nothing.
func (s *Session) Close() error { return nil }
