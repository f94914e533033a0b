package session

// The slot and cold arrays in mappings of their own, backed by huge pages
// (Linux).

import (
	"syscall"
	"unsafe"
)

// hugePage is the size of a transparent huge page on amd64 and arm64.
const hugePage = 2 << 20

// mapArray returns n zeroed elements (slots, or the colds beside them) in
// a mapping of their own, advised to be backed by huge pages, and the
// mapping to unmap when they are no longer used; for less than a huge
// page, or if the mapping fails, elements on the Go heap and nil.
//
// A touch finds its slot with one cache miss, but with 4 KiB pages that
// miss also misses the TLB, and under virtualisation a page walk costs as
// much again: huge pages halve what finding a slot costs in the load run.
// The Go heap is not backed by huge pages (Go no longer advises it), hence
// a mapping; it also keeps the arrays out of the heap that GOMEMLIMIT
// paces the collector by. T must hold no pointers: memory the garbage
// collector does not know about is safe only for such types.
func mapArray[T any](n int) ([]T, []byte) {
	var zero T
	size := n * int(unsafe.Sizeof(zero))
	if size < hugePage {
		return make([]T, n), nil
	}
	// One huge page more than needed, to start at a huge page boundary;
	// pages never touched cost nothing.
	m, err := syscall.Mmap(-1, 0, size+hugePage, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANON)
	if err != nil {
		return make([]T, n), nil
	}
	off := (hugePage - int(uintptr(unsafe.Pointer(&m[0]))%hugePage)) % hugePage
	region := m[off : off+size]
	_ = syscall.Madvise(region, syscall.MADV_HUGEPAGE) // advice: without it, 4 KiB pages
	return unsafe.Slice((*T)(unsafe.Pointer(&region[0])), n), m
}

// unmapArray frees what mapArray mapped (nil: nothing).
func unmapArray(m []byte) {
	if m != nil {
		_ = syscall.Munmap(m)
	}
}
