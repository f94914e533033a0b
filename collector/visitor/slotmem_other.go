//go:build !linux

package visitor

// mapSlots returns n zeroed slots on the Go heap (huge pages: Linux only).
func mapSlots(n int) ([]slot, []byte) { return make([]slot, n), nil }

func unmapSlots([]byte) {}
