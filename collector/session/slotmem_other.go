//go:build !linux

package session

// The slot and cold arrays on the Go heap (other systems).

// mapArray returns n zeroed elements on the Go heap (huge pages: Linux
// only).
func mapArray[T any](n int) ([]T, []byte) { return make([]T, n), nil }

func unmapArray([]byte) {}
