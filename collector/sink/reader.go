package sink

import (
	"sync"
	"time"

	"github.com/glimpse-analytics/glimpse/collector/eventlog"
	"github.com/glimpse-analytics/glimpse/collector/spool"
	"github.com/glimpse-analytics/glimpse/internal/model"
)

// blockKind says how the batch a block belongs to goes on: what the
// flusher may do with the INSERT the block ends up in.
type blockKind int

const (
	// batchGoesOn: one block of a batch still being read; more follows
	// at once, and the reader ends the batch itself.
	batchGoesOn blockKind = iota
	// batchFull: a full batch, and more is ready: the INSERT may stay
	// open for the next one.
	batchFull
	// batchCaughtUp: the reader has caught up with the log (or the log is
	// full and must be stored): end the INSERT now.
	batchCaughtUp
	// logDone: the log is closed and read to its end: end the INSERT,
	// and say so (acked) once everything is stored.
	logDone
)

// block is what the reader hands the flusher: rows in log order, and where
// they start (the previous block's end) and end. A block without rows
// moves the end alone: what it passed (erased events, the end of a
// segment) can be let go of.
type block struct {
	rows    []*model.Event
	from    eventlog.Pos
	end     eventlog.Pos
	whole   bool // end is the end of its sealed segment
	replay  bool // some rows may be stored already (left by an earlier process, or read before a rewind)
	earlier bool // some rows were left by an earlier process
	kind    blockKind
	gen     uint64 // the rewinds it was read after; an older one is dropped
}

// rewinds carries the flusher's requests to read again from where a
// failed INSERT's rows start.
type rewinds struct {
	mu   sync.Mutex
	to   eventlog.Pos
	gen  uint64
	wake chan struct{}
	// redo: the rows from to up to until are to be sent again as they
	// were, so the batch read after the rewind ends exactly at until.
	redo  bool
	until eventlog.Pos
}

// set asks for a rewind to p and returns the generation of the blocks
// read after it. With redo the batch read after it ends at until.
func (r *rewinds) set(p eventlog.Pos, redo bool, until eventlog.Pos) uint64 {
	r.mu.Lock()
	r.to, r.redo, r.until = p, redo, until
	r.gen++
	gen := r.gen
	r.mu.Unlock()
	signal(r.wake)
	return gen
}

func (r *rewinds) get() (gen uint64, to eventlog.Pos, redo bool, until eventlog.Pos) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.gen, r.to, r.redo, r.until
}

// signal sends on c unless a signal is pending.
func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// reader reads the log in order and hands the flusher blocks: at most
// blockRows rows each, a batch of BatchSize rows at most, a batch ended
// when the reader catches up with the log and its first row is Interval
// old. After a rewind it reads from the rewind's position again. Once the
// log is closed and read to its end it hands over a last block and waits
// until the flusher has stored it (acked) or asks for a rewind.
type reader struct {
	w     *Writer
	log   eventlog.Log
	out   chan<- block
	free  <-chan []*model.Event
	acked <-chan struct{}

	rows        []*model.Event // the block being read
	b           block          // where it starts and ends
	start       time.Time      // when its batch's first row was read
	handed      int            // rows of the batch being read handed over already, as blocks
	unconfirmed bool           // b.end moved without rows: something to let go of
	open        bool           // the last block did not end its batch: the flusher may hold an INSERT open
	gen         uint64
	read        eventlog.Pos // the end of the furthest record read: rows before it may be stored already
	lastSent    bool         // the last block is with the flusher
	timer       *time.Timer
	redo        bool // the batch being read ends at until (rewinds.redo)
	until       eventlog.Pos
}

func newReader(w *Writer, out chan<- block, free <-chan []*model.Event, acked <-chan struct{}) *reader {
	w.rewinds.wake = make(chan struct{}, 1)
	return &reader{w: w, log: w.log, out: out, free: free, acked: acked}
}

func (r *reader) run() {
	defer close(r.out)
	r.rows = <-r.free
	r.timer = time.NewTimer(time.Hour)
	defer r.timer.Stop()
	for {
		select {
		case <-r.w.stop:
			r.dropRows()
			return
		default:
		}
		r.checkRewind()
		x := r.log.Next()
		switch x.Res {
		case spool.Record:
			r.take(x)
		case spool.SegmentEnd:
			r.b.end, r.b.whole, r.unconfirmed = x.End, true, true
			if r.redo {
				r.redone()
			}
		case spool.CaughtUp:
			r.caughtUp()
		case spool.Retry:
			r.wait(100 * time.Millisecond)
		case spool.Done:
			if r.finish() {
				return
			}
		}
	}
}

// checkRewind starts reading again where the flusher asks, dropping what
// was read since.
func (r *reader) checkRewind() {
	gen, to, redo, until := r.w.rewinds.get()
	if gen == r.gen {
		return
	}
	r.gen, r.redo, r.until = gen, redo, until
	r.dropRows()
	r.log.Rewind(to)
	r.b = block{from: to, end: to}
	r.unconfirmed, r.lastSent, r.handed, r.open = false, false, 0, false
}

// take adds an event read to the block, unless it is erased, and hands
// the block over when it is full.
func (r *reader) take(x eventlog.Read) {
	switch {
	case x.Replay:
		r.b.replay, r.b.earlier = true, true
	case !r.read.Before(x.End):
		r.b.replay = true // read before a rewind
	default:
		r.read = x.End
	}
	if r.w.erased(x.E) {
		r.log.Done([]*model.Event{x.E})
	} else {
		if len(r.rows) == 0 && r.handed == 0 {
			r.start = time.Now()
		}
		r.rows = append(r.rows, x.E)
	}
	r.b.end, r.b.whole, r.unconfirmed = x.End, false, true
	switch {
	case r.redo:
		r.redone()
	case r.handed+len(r.rows) >= r.w.opts.BatchSize:
		r.hand(batchFull)
	case len(r.rows) >= r.w.blockRows():
		r.hand(batchGoesOn)
	}
}

// redone hands the rows read since the rewind over once they reach the
// end of the INSERT being sent again, ending the batch there, and in
// blocks until then.
func (r *reader) redone() {
	switch {
	case !r.b.end.Before(r.until):
		r.redo = false
		r.hand(batchCaughtUp)
	case len(r.rows) >= r.w.blockRows():
		r.hand(batchGoesOn)
	}
}

// caughtUp ends the batch being read once its first row is Interval old,
// or at once when the log is full and waits for what it holds to be
// stored; a block that only moves the end goes at once too. Otherwise it
// waits for more.
func (r *reader) caughtUp() {
	reading := len(r.rows) > 0 || r.handed > 0
	wait := r.w.opts.Interval - time.Since(r.start)
	if (reading && wait <= 0) || (!reading && r.unconfirmed) || ((reading || r.open) && r.log.Full()) {
		r.hand(batchCaughtUp)
		return
	}
	if !reading {
		wait = r.w.opts.Interval
	}
	r.wait(wait)
}

// finish hands over the last block once, then waits until the flusher has
// stored it; it reports whether the reader is done.
func (r *reader) finish() bool {
	if !r.lastSent {
		r.hand(logDone)
		r.lastSent = true
	}
	select {
	case <-r.acked:
		r.dropRows()
		return true
	case <-r.w.rewinds.wake: // a rewind, maybe
	case <-r.w.stop:
	}
	return false
}

// hand gives the block to the flusher and starts the next one where it
// ends.
func (r *reader) hand(kind blockKind) {
	r.b.rows, r.b.kind, r.b.gen = r.rows, kind, r.gen
	r.out <- r.b
	r.rows = <-r.free
	if kind == batchGoesOn {
		r.handed += len(r.b.rows)
	} else {
		r.handed = 0
	}
	r.open = kind == batchGoesOn || kind == batchFull
	r.b = block{from: r.b.end, end: r.b.end, whole: r.b.whole}
	r.unconfirmed = false
}

// dropRows gives back the rows of the block being read.
func (r *reader) dropRows() {
	r.log.Done(r.rows)
	clear(r.rows)
	r.rows = r.rows[:0]
}

// wait blocks until the log has news, a rewind is asked for, d passes or
// the writer stops.
func (r *reader) wait(d time.Duration) {
	t := r.timer
	t.Reset(d)
	select {
	case <-r.log.News():
	case <-r.w.rewinds.wake:
	case <-t.C:
		return
	case <-r.w.stop:
	}
	if !t.Stop() {
		select {
		case <-t.C:
		default:
		}
	}
}
