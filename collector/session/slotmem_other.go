//go:build !linux

package session

// mapArray returns n zeroed elements on the Go heap (huge pages: Linux
// only).
func mapArray[T any](n int) ([]T, []byte) { return make([]T, n), nil }

func unmapArray([]byte) {}
