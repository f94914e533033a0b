package sink

import (
	"strings"
	"time"
)

// insertBuilder writes INSERT statements naming only the columns a batch
// needs, reusing its buffers from one batch to the next.
type insertBuilder struct {
	sb   strings.Builder
	cols []any
}

// build keeps the columns of names/cols that hold anything but defaults and
// returns the INSERT naming them, with their slices in the same order.
func (ib *insertBuilder) build(table string, names []string, cols []any) (string, []any) {
	ib.cols = ib.cols[:0]
	ib.sb.Reset()
	ib.sb.WriteString("INSERT INTO ")
	ib.sb.WriteString(table)
	ib.sb.WriteString(" (")
	for i, col := range cols {
		if allDefault(col) {
			continue
		}
		if len(ib.cols) > 0 {
			ib.sb.WriteString(", ")
		}
		ib.sb.WriteString(names[i])
		ib.cols = append(ib.cols, col)
	}
	ib.sb.WriteByte(')')
	return ib.sb.String(), ib.cols
}

// allDefault reports whether a column slice holds only the value ClickHouse
// would fill in for an omitted column. An empty slice is not "all default":
// a batch always names at least its first column.
func allDefault(col any) bool {
	switch c := col.(type) {
	case []string:
		return len(c) > 0 && !anyNonZero(c)
	case []uint8:
		return len(c) > 0 && !anyNonZero(c)
	case []uint16:
		return len(c) > 0 && !anyNonZero(c)
	case []uint32:
		return len(c) > 0 && !anyNonZero(c)
	case []int64:
		return len(c) > 0 && !anyNonZero(c)
	case []float32:
		return len(c) > 0 && !anyNonZero(c)
	case [][]string:
		for _, a := range c {
			if len(a) > 0 {
				return false
			}
		}
		return len(c) > 0
	case []uint64, []int8, []time.Time:
		return false // ids, signs, types and times are always written
	}
	return false
}

func anyNonZero[T comparable](s []T) bool {
	var zero T
	for _, v := range s {
		if v != zero {
			return true
		}
	}
	return false
}
