// Package eventlog is where accepted events wait until ClickHouse has
// them: the disk spool (collector/spool) with the newest events also in
// memory (Disk), or memory alone (Memory), behind one interface (Log) that
// the writer's appender, reader and flusher use. It holds the events'
// record format in the spool (AppendRecord, DecodeRecord), the erasures
// that must never be stored (Tombstones), and the spool read from the
// command line (Offline).
package eventlog

import (
	"sync"
	"sync/atomic"

	"github.com/glimpse-analytics/glimpse/collector/spool"
	"github.com/glimpse-analytics/glimpse/internal/model"
)

// Pos is a place in a log: with a spool, where a record is; in memory,
// the number of an event (Seq 0, Off the number).
type Pos = spool.Pos

// Pool is where a log takes events from and gives them back to: the
// writer's pool.
type Pool interface {
	NewEvent() *model.Event
	Release(e *model.Event)
}

// Log is where accepted events wait until ClickHouse has them: the disk
// spool with the newest events also in memory (Disk), or memory alone
// (Memory). The writer's appender appends, its reader reads in order, and
// its flusher says what is stored; each method is called by one of them
// only, as its comment says.
type Log interface {
	// Capacity is the most events the log holds in memory.
	Capacity() int
	// Append takes e (the appender). It reports false when the log holds
	// all it can: e was not taken, and the appender waits on space.
	Append(e *model.Event) bool
	// Space receives when Append may take events again (the appender).
	Space() <-chan struct{}
	// Tick is the appender's periodic call, every sync interval when
	// TickEvery reports true: a group commit.
	Tick()
	TickEvery() bool
	// Commit makes what was appended readable now, and with seal closes
	// the spool segment it is in, so that it can be rewritten (the
	// appender; Disk: spool.Seal).
	Commit(seal bool) error
	// CloseAppend ends appending: what was appended becomes readable to
	// its end (the appender).
	CloseAppend()
	// Next returns what the reader finds next (the reader).
	Next() Read
	// Rewind makes Next read from p again (the reader).
	Rewind(p Pos)
	// News receives when Next may find more (the reader).
	News() <-chan struct{}
	// Full reports whether the appender waits for the flusher to store
	// what the log holds (the reader).
	Full() bool
	// Done takes back events that Next handed out, once they are sent or
	// dropped (the reader, the flusher).
	Done(rows []*model.Event)
	// Stored says that every event before p is in ClickHouse, and with
	// whole the rest of p's segment too: the log lets go of them (the
	// flusher).
	Stored(p Pos, whole bool)
	// Abandon lets go of everything after the writer gave up and returns
	// the events lost with it (the writer's Close, once the others are
	// done).
	Abandon() int64
	// Scan calls fn for every event the log holds (stored or not; with a
	// spool, what its files hold of what was committed), valid during the
	// call (anyone, beside the others).
	Scan(fn func(*model.Event)) error
}

// Read is what a log's Next found: with res spool.Record an event
// (E) and where it ends; with spool.SegmentEnd the end of a sealed segment
// (End); otherwise nothing now (spool.CaughtUp, spool.Retry) or ever
// (spool.Done).
type Read struct {
	E   *model.Event
	End Pos
	Res spool.Result
	// Replay: E may be stored already, by an earlier process.
	Replay bool
}

// Memory keeps events in memory alone, in a ring, from the oldest not
// stored to the newest appended: the events of a failed INSERT are read
// again from here. When the ring is full the appender waits, the queue
// fills and the writer refuses new events.
type Memory struct {
	pool    Pool
	mu      sync.Mutex
	ring    []*model.Event
	first   uint64 // the number of ring's oldest event; those before are stored
	n       int    // events held
	cursor  uint64 // the number of the event Next reads
	closed  bool
	waiting atomic.Bool // the appender waits for space
	spaceC  chan struct{}
	newsC   chan struct{}
}

// NewMemory returns a log that holds up to capacity events.
func NewMemory(pool Pool, capacity int) *Memory {
	return &Memory{pool: pool, ring: make([]*model.Event, capacity), spaceC: make(chan struct{}, 1), newsC: make(chan struct{}, 1)}
}

var _ Log = (*Memory)(nil)

func (m *Memory) Capacity() int { return len(m.ring) }

func (m *Memory) Append(e *model.Event) bool {
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

func (m *Memory) Space() <-chan struct{} { return m.spaceC }
func (m *Memory) Tick()                  {}
func (m *Memory) TickEvery() bool        { return false }
func (m *Memory) Commit(bool) error      { return nil }

func (m *Memory) Scan(fn func(*model.Event)) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for i := range m.n {
		fn(m.ring[(m.first+uint64(i))%uint64(len(m.ring))])
	}
	return nil
}

func (m *Memory) CloseAppend() {
	m.mu.Lock()
	m.closed = true
	m.mu.Unlock()
	signal(m.newsC)
}

func (m *Memory) Next() Read {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cursor < m.first+uint64(m.n) {
		e := m.ring[m.cursor%uint64(len(m.ring))]
		m.cursor++
		return Read{E: e, End: Pos{Off: int64(m.cursor)}, Res: spool.Record}
	}
	if m.closed {
		return Read{Res: spool.Done}
	}
	return Read{Res: spool.CaughtUp}
}

func (m *Memory) Rewind(p Pos) {
	m.mu.Lock()
	m.cursor = uint64(p.Off)
	m.mu.Unlock()
}

func (m *Memory) News() <-chan struct{}    { return m.newsC }
func (m *Memory) Full() bool               { return m.waiting.Load() }
func (m *Memory) Done(rows []*model.Event) {} // the ring holds them until stored

func (m *Memory) Stored(p Pos, _ bool) {
	m.mu.Lock()
	for upTo := uint64(p.Off); m.first < upTo && m.n > 0; m.first++ {
		i := m.first % uint64(len(m.ring))
		m.pool.Release(m.ring[i])
		m.ring[i] = nil
		m.n--
	}
	m.mu.Unlock()
	if m.waiting.Swap(false) {
		signal(m.spaceC)
	}
}

func (m *Memory) Abandon() int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	lost := int64(m.n)
	for ; m.n > 0; m.n-- {
		i := m.first % uint64(len(m.ring))
		m.pool.Release(m.ring[i])
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
