package sink

import (
	"time"

	"github.com/glimpse-analytics/glimpse/internal/model"
)

// appendLoop moves events from the queue into the log, ticks the log's
// group commit and serves barriers (erase.go), until Close closes the
// queue; then it closes the log for appending. After Close's deadline
// (stop) the events it could not append are counted lost.
func (w *Writer) appendLoop() {
	defer w.wg.Done()
	l := w.log
	var tick <-chan time.Time
	if l.TickEvery() {
		t := time.NewTicker(w.opts.SpoolSyncInterval)
		defer t.Stop()
		tick = t.C
	}
	var gather gatherer
	for {
		select {
		case e, ok := <-w.queue:
			if !ok {
				l.CloseAppend()
				return
			}
			ok = w.append(e)
			gather.wait()
			// What queued meanwhile, without a select on the ticker per
			// event (that costs more than appending it); a closed queue is
			// left to the select above.
			for n := 0; ok && n < 1024; n++ {
				e := poll(w.queue)
				if e == nil {
					break
				}
				ok = w.append(e)
			}
			if !ok {
				w.dropQueue()
				l.CloseAppend()
				return
			}
		case req := <-w.barriers:
			// What was queued before the request, into the log.
			ok := true
			for n := len(w.queue); ok && n > 0; n-- {
				e := poll(w.queue)
				if e == nil {
					break
				}
				ok = w.append(e)
			}
			if !ok {
				req.done <- ErrClosed
				w.dropQueue()
				l.CloseAppend()
				return
			}
			req.done <- l.Commit(req.seal)
		case <-tick:
			l.Tick()
		}
	}
}

// append appends e to the log, waiting while it is full; false when the
// writer stopped meanwhile (e is counted lost).
func (w *Writer) append(e *model.Event) bool {
	for !w.log.Append(e) {
		select {
		case <-w.log.Space():
		case <-w.stop:
			w.lostQueued.Add(1)
			w.Release(e)
			return false
		}
	}
	return true
}

// poll returns a queued event, or nil when there is none or q is closed.
func poll(q <-chan *model.Event) *model.Event {
	select {
	case e := <-q:
		return e
	default:
		return nil
	}
}

// dropQueue counts the queued events lost when the writer stopped.
func (w *Writer) dropQueue() {
	for e := range w.queue {
		w.lostQueued.Add(1)
		w.Release(e)
	}
}

// gatherer lets a queue's consumer take events in batches under load. A
// consumer blocked on an empty queue is woken by every event sent to it, a
// goroutine switch that costs more than handling the event; when events
// arrive closer together than gatherGap, the consumer waits gatherWait
// after the first one instead, and takes what has queued meanwhile in one
// go. Under light load nothing waits.
type gatherer struct{ last time.Time }

const (
	gatherGap  = 200 * time.Microsecond // 5,000 events a second
	gatherWait = 500 * time.Microsecond
)

// wait is called when an event is taken from a queue that was found empty.
func (g *gatherer) wait() {
	if g.busy(time.Now()) {
		time.Sleep(gatherWait)
	}
}

// busy notes a wake-up at now and reports whether it came within
// gatherGap of the last one.
func (g *gatherer) busy(now time.Time) bool {
	busy := now.Sub(g.last) < gatherGap
	g.last = now
	return busy
}
