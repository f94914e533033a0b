package insert

import (
	"reflect"
	"unsafe"

	"github.com/ClickHouse/ch-go/proto"
	"github.com/ClickHouse/clickhouse-go/v2/lib/column"
)

// Buffers carries the buffers of a streamed INSERT's String columns over to
// the next stream of the same table.
//
// Why: a stream needs a fresh driver batch (Batch.Flush refuses a batch
// that was sent), and a fresh batch's String columns grow their buffers
// from nothing, doubling as a block's rows arrive. Under steady load that
// was two thirds of everything the collector allocated (about 28 MB/s at
// 68k events/s, measured with the allocs profile), and the garbage
// collection it paid for. Within a stream the driver keeps the buffers
// from block to block (Flush resets the columns, not their capacity);
// Buffers does the same from stream to stream.
//
// How: clickhouse-go's column.String keeps its rows in an unexported
// proto.ColStr (Buf holds the bytes, Pos where each row starts and ends).
// Its offset is found by reflection once, and only if the field still has
// that name and type; otherwise (a driver upgrade changed it) lending is
// off and streams grow their buffers as before. TestColBufsReachDriver
// fails in that case, so an upgrade cannot turn it off unnoticed.
// Buffers are lent to a stream's columns right after PrepareBatch, when
// they are empty, and taken back once Send or Abort has returned, when
// the driver is done with the batch.
type Buffers struct {
	free map[string]proto.ColStr // by column name, emptied, capacity kept
}

// colStrOffset is the offset of column.String's proto.ColStr, and
// colStrOK whether it was found.
var colStrOffset, colStrOK = func() (uintptr, bool) {
	f, ok := reflect.TypeFor[column.String]().FieldByName("col")
	if !ok || f.Type != reflect.TypeFor[proto.ColStr]() {
		return 0, false
	}
	return f.Offset, true
}()

// colStrOf returns the ColStr inside c, or nil if c is not a String column
// or its layout is not the one Buffers knows.
func colStrOf(c column.Interface) *proto.ColStr {
	s, ok := c.(*column.String)
	if !ok || !colStrOK {
		return nil
	}
	return (*proto.ColStr)(unsafe.Add(unsafe.Pointer(s), colStrOffset))
}

// lend gives cols (a new batch's columns, still empty) the buffers kept
// for their names.
func (cb *Buffers) lend(cols []column.Interface) {
	if len(cb.free) == 0 {
		return
	}
	for _, c := range cols {
		p := colStrOf(c)
		if p == nil || len(p.Pos) > 0 {
			continue
		}
		if b, ok := cb.free[c.Name()]; ok {
			delete(cb.free, c.Name())
			p.Buf, p.Pos = b.Buf, b.Pos
		}
	}
}

// reclaim keeps the buffers of cols, whose batch the driver is done with
// (sent or aborted), for the next stream.
func (cb *Buffers) reclaim(cols []column.Interface) {
	for _, c := range cols {
		p := colStrOf(c)
		if p == nil {
			continue
		}
		if cb.free == nil {
			cb.free = make(map[string]proto.ColStr)
		}
		cb.free[c.Name()] = proto.ColStr{Buf: p.Buf[:0], Pos: p.Pos[:0]}
		*p = proto.ColStr{} // the dead batch keeps no alias
	}
}
