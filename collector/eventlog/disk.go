package eventlog

import (
	"log/slog"
	"sync"

	"github.com/VictoriaMetrics/metrics"

	"github.com/glimpse-analytics/glimpse/collector/spool"
	"github.com/glimpse-analytics/glimpse/internal/model"
)

// Disk keeps events in the spool, each as a record (record.go), and
// the newest of them in memory too, in the tail: while the reader keeps up
// it takes them from there instead of reading and decoding them back (the
// records are on disk all the same; memory only saves the read). At most
// tailCap events are held; beyond that (the reader is behind) the tail is
// dropped and the reader reads from disk until it reaches the newer
// records kept after that. Events read from a failed INSERT's start again
// come from disk.
type Disk struct {
	o  DiskOptions
	sp *spool.Spool
	r  *spool.Reader
	in Interner

	mu      sync.Mutex
	tail    []tailRecord // from tail[head] on, in spool order
	head    int
	tailCap int
	taken   *model.Event // the tail's event the reader's memo took (the reader's)

	uncommitted int // records appended since the last sync (the appender's)

	fromMemory, fromDisk, replayed, undecodable *metrics.Counter
}

// tailRecord is an event in the tail and where its record is.
type tailRecord struct {
	e       *model.Event
	at, end Pos
}

// DiskOptions configure NewDisk.
type DiskOptions struct {
	Pool Pool
	// TailCap is the most events held in memory.
	TailCap int
	// Stop ends the retries of the final commit (CloseAppend).
	Stop    <-chan struct{}
	Metrics *metrics.Set
	Log     *slog.Logger
	// Released is told the oldest segment left (0 for none) after Stored
	// released some.
	Released func(oldest uint64)
}

// NewDisk returns a log over sp.
func NewDisk(sp *spool.Spool, o DiskOptions) *Disk {
	m := o.Metrics
	d := &Disk{
		o: o, sp: sp, r: sp.NewReader(), tailCap: o.TailCap,
		fromMemory:  m.NewCounter(`glimpse_spool_rows_read_total{from="memory"}`),
		fromDisk:    m.NewCounter(`glimpse_spool_rows_read_total{from="disk"}`),
		replayed:    m.NewCounter("glimpse_spool_replayed_rows_total"),
		undecodable: m.NewCounter("glimpse_spool_undecodable_records_total"),
	}
	return d
}

var _ Log = (*Disk)(nil)

func (d *Disk) Capacity() int { return d.tailCap }

func (d *Disk) Append(e *model.Event) bool {
	start, end, err := d.sp.Append(func(dst []byte) []byte { return AppendRecord(dst, e) })
	d.sp.LogError(err)
	d.pushTail(e, start, end)
	if d.uncommitted++; d.uncommitted >= d.tailCap/4 {
		// Sync early under load, so that the reader can take the tail
		// before it outgrows its cap.
		d.sp.LogError(d.sp.Sync())
		d.uncommitted = 0
	}
	return true
}

func (d *Disk) Space() <-chan struct{} { return nil } // append never refuses
func (d *Disk) TickEvery() bool        { return true }

func (d *Disk) Tick() {
	d.sp.LogError(d.sp.Sync())
	d.uncommitted = 0
}

func (d *Disk) Commit(seal bool) error {
	d.uncommitted = 0
	if seal {
		return d.sp.Seal()
	}
	return d.sp.Commit()
}

func (d *Disk) Scan(fn func(*model.Event)) error {
	var in Interner
	var e model.Event
	return d.sp.Scan(func(p []byte) {
		e.Reset()
		if DecodeRecord(p, &e, &in) == nil {
			fn(&e)
		}
	})
}

func (d *Disk) CloseAppend() { d.sp.CloseAppend(d.o.Stop) }

// pushTail hands e, whose record the appender has just added at
// [start, end), to the tail; the log owns it from then on.
func (d *Disk) pushTail(e *model.Event, start, end Pos) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if n := len(d.tail); n > d.head {
		last := d.tail[n-1]
		follows := last.end == start || last.at.Seq+1 == start.Seq
		if !follows || n-d.head >= d.tailCap {
			d.dropTailLocked() // the reader is behind: it reads these from disk
		}
	}
	if d.head > 0 && d.head >= len(d.tail)/2 {
		n := copy(d.tail, d.tail[d.head:])
		clear(d.tail[n:])
		d.tail, d.head = d.tail[:n], 0
	}
	d.tail = append(d.tail, tailRecord{e, start, end})
}

// memo is the reader's spool.Memo: it takes the event whose record starts
// at at and ends by limit from the tail, if the tail holds it; records
// before at are dropped (the reader has passed them).
func (d *Disk) memo(at Pos, limit int64) (int64, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for d.head < len(d.tail) {
		t := &d.tail[d.head]
		if !t.at.Before(at) {
			break
		}
		d.o.Pool.Release(t.e)
		*t = tailRecord{}
		d.head++
	}
	if d.head == len(d.tail) {
		d.tail, d.head = d.tail[:0], 0
		return 0, false
	}
	t := d.tail[d.head]
	if t.at != at || t.end.Off > limit {
		return 0, false
	}
	d.tail[d.head] = tailRecord{}
	d.head++
	d.taken = t.e
	return t.end.Off, true
}

func (d *Disk) dropTailLocked() {
	for i := d.head; i < len(d.tail); i++ {
		d.o.Pool.Release(d.tail[i].e)
	}
	clear(d.tail)
	d.tail, d.head = d.tail[:0], 0
}

func (d *Disk) Next() Read {
	for {
		res, payload, end := d.r.Next(d.memo)
		if res != spool.Record {
			return Read{Res: res, End: end}
		}
		e := d.taken
		d.taken = nil
		if e != nil {
			d.fromMemory.Inc()
		} else {
			e = d.o.Pool.NewEvent()
			if err := DecodeRecord(payload, e, &d.in); err == ErrBlank {
				d.o.Pool.Release(e) // an erased event: nothing to store
				continue
			} else if err != nil {
				// The record checked (its CRC) but does not decode: a
				// newer version's, or a bug. It is skipped and counted.
				d.o.Pool.Release(e)
				d.undecodable.Inc()
				d.o.Log.Error("spool record does not decode; skipped", "segment", end.Seq, "offset", end.Off, "err", err)
				continue
			}
			d.fromDisk.Inc()
		}
		r := Read{E: e, End: end, Res: spool.Record, Replay: d.sp.LeftOver(end.Seq)}
		if r.Replay {
			d.replayed.Inc()
		}
		return r
	}
}

func (d *Disk) Rewind(p Pos) { d.r.Seek(p) }

func (d *Disk) News() <-chan struct{} { return d.sp.Notify() }
func (d *Disk) Full() bool            { return false }

func (d *Disk) Done(rows []*model.Event) {
	for _, e := range rows {
		d.o.Pool.Release(e)
	}
}

func (d *Disk) Stored(p Pos, whole bool) {
	oldest := d.sp.Release(p, whole)
	if d.o.Released != nil {
		d.o.Released(oldest)
	}
}

func (d *Disk) Abandon() int64 {
	d.mu.Lock()
	d.dropTailLocked()
	d.mu.Unlock()
	d.r.Close()
	return 0 // the rest stays in the spool for the next start
}
