package sink

import (
	"sync"
	"sync/atomic"

	"github.com/glimpse-analytics/glimpse/collector/spool"
	"github.com/glimpse-analytics/glimpse/internal/model"
)

// pos is a place in the log: with a spool, where a record is; in memory,
// the number of an event (Seq 0, Off the number).
type pos = spool.Pos

// eventLog is where accepted events wait until ClickHouse has them: the
// disk spool with the newest events also in memory (diskLog), or memory
// alone (memLog). The appender appends, the reader reads in order, and
// the flusher says what is stored; each method is called by one of them
// only, as its comment says.
type eventLog interface {
	// capacity is the most events the log holds in memory.
	capacity() int
	// append takes e (the appender). It reports false when the log holds
	// all it can: e was not taken, and the appender waits on space.
	append(e *model.Event) bool
	// space receives when append may take events again (the appender).
	space() <-chan struct{}
	// tick is the appender's periodic call, every SpoolSyncInterval when
	// tickEvery reports true: a group commit.
	tick()
	tickEvery() bool
	// closeAppend ends appending: what was appended becomes readable to
	// its end (the appender).
	closeAppend()
	// next returns what the reader finds next (the reader).
	next() logRead
	// rewind makes next read from p again (the reader).
	rewind(p pos)
	// news receives when next may find more (the reader).
	news() <-chan struct{}
	// full reports whether the appender waits for the flusher to store
	// what the log holds (the reader).
	full() bool
	// done takes back events that next handed out, once they are sent or
	// dropped (the reader, the flusher).
	done(rows []*model.Event)
	// stored says that every event before p is in ClickHouse, and with
	// whole the rest of p's segment too: the log lets go of them (the
	// flusher).
	stored(p pos, whole bool)
	// abandon lets go of everything after Close's deadline and returns
	// the events lost with it (Close, once the goroutines are done).
	abandon() int64
}

// logRead is what the log's next found: with res spool.Record an event
// (e) and where it ends; with spool.SegmentEnd the end of a sealed segment
// (end); otherwise nothing now (spool.CaughtUp, spool.Retry) or ever
// (spool.Done).
type logRead struct {
	e   *model.Event
	end pos
	res spool.Result
	// replay: e may be stored already, by an earlier process.
	replay bool
}

// memLog keeps events in memory alone, in a ring, from the oldest not
// stored to the newest appended: the events of a failed INSERT are read
// again from here. When the ring is full the appender waits, the queue
// fills and Enqueue answers ErrQueueFull.
type memLog struct {
	w       *Writer
	mu      sync.Mutex
	ring    []*model.Event
	first   uint64 // the number of ring's oldest event; those before are stored
	n       int    // events held
	cursor  uint64 // the number of the event next reads
	closed  bool
	waiting atomic.Bool // the appender waits for space
	spaceC  chan struct{}
	newsC   chan struct{}
}

func newMemLog(w *Writer, capacity int) *memLog {
	return &memLog{w: w, ring: make([]*model.Event, capacity), spaceC: make(chan struct{}, 1), newsC: make(chan struct{}, 1)}
}

func (m *memLog) capacity() int { return len(m.ring) }

func (m *memLog) append(e *model.Event) bool {
	m.mu.Lock()
	if m.n == len(m.ring) {
		m.waiting.Store(true)
		m.mu.Unlock()
		signal(m.newsC) // the reader hands over what it has, so that it can be stored
		return false
	}
	m.ring[(m.first+uint64(m.n))%uint64(len(m.ring))] = e
	m.n++
	m.mu.Unlock()
	signal(m.newsC)
	return true
}

func (m *memLog) space() <-chan struct{} { return m.spaceC }
func (m *memLog) tick()                  {}
func (m *memLog) tickEvery() bool        { return false }

func (m *memLog) closeAppend() {
	m.mu.Lock()
	m.closed = true
	m.mu.Unlock()
	signal(m.newsC)
}

func (m *memLog) next() logRead {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cursor < m.first+uint64(m.n) {
		e := m.ring[m.cursor%uint64(len(m.ring))]
		m.cursor++
		return logRead{e: e, end: pos{Off: int64(m.cursor)}, res: spool.Record}
	}
	if m.closed {
		return logRead{res: spool.Done}
	}
	return logRead{res: spool.CaughtUp}
}

func (m *memLog) rewind(p pos) {
	m.mu.Lock()
	m.cursor = uint64(p.Off)
	m.mu.Unlock()
}

func (m *memLog) news() <-chan struct{}    { return m.newsC }
func (m *memLog) full() bool               { return m.waiting.Load() }
func (m *memLog) done(rows []*model.Event) {} // the ring holds them until stored

func (m *memLog) stored(p pos, _ bool) {
	m.mu.Lock()
	for upTo := uint64(p.Off); m.first < upTo && m.n > 0; m.first++ {
		i := m.first % uint64(len(m.ring))
		m.w.Release(m.ring[i])
		m.ring[i] = nil
		m.n--
	}
	m.mu.Unlock()
	if m.waiting.Swap(false) {
		signal(m.spaceC)
	}
}

func (m *memLog) abandon() int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	lost := int64(m.n)
	for ; m.n > 0; m.n-- {
		i := m.first % uint64(len(m.ring))
		m.w.Release(m.ring[i])
		m.ring[i] = nil
		m.first++
	}
	return lost
}

// signal sends on c unless a signal is pending.
func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}
