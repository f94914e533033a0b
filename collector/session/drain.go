package session

// Draining: the changes of held and ended sessions leave the cache as
// model.Session versions (Drain, DrainEnded), and Pressure asks for a
// drain of ended sessions before they pile up.

import (
	"time"

	"github.com/glimpse-analytics/glimpse/internal/model"
)

// Drain hands every session changed since the last Drain to emit, once,
// with its state now (cur) and, when an earlier state was handed out, that
// state (prev): the table then cancels prev with sign -1 and holds cur with
// sign +1. Sessions that ended, were evicted or were replaced since their
// last change are included, so their last state is written too. This is
// how sessions reach storage: a busy session costs at most two rows per
// Drain, however many events it had in between. It returns the number of
// sessions emitted.
//
// emit runs with a lock held: it must be quick, must not keep the
// pointers, and must not call into the Cache. pause, if not nil, runs
// after each lock shard's sessions, with no lock held.
func (c *Cache) Drain(emit func(prev, cur *model.Session, hadPrev bool), pause func()) int {
	return c.drain(true, emit, pause)
}

// DrainEnded is Drain for the sessions that ended (expired, were evicted
// or swept) since the last drain, alone: a cheap drain that the writer runs
// when Pressure asks, between the drains of all changes. It returns the
// number of sessions emitted.
func (c *Cache) DrainEnded(emit func(prev, cur *model.Session, hadPrev bool), pause func()) int {
	return c.drain(false, emit, pause)
}

// drain is Drain, or DrainEnded unless all.
func (c *Cache) drain(all bool, emit func(prev, cur *model.Session, hadPrev bool), pause func()) int {
	n := 0
	for i := range c.shards {
		sh := &c.shards[i]
		sh.mu.Lock()
		n += c.drainEnded(sh, emit)
		for j := 0; all && sh.dirty > 0 && j < len(sh.slots); j++ {
			s := &sh.slots[j]
			if s.flags&slotDirty == 0 {
				continue
			}
			c.emitChange(s, &sh.colds[j], emit)
			s.flags &^= slotDirty
			sh.dirty--
			n++
		}
		sh.mu.Unlock()
		if pause != nil {
			pause()
		}
	}
	return n
}

// drainEnded emits the ended sessions waiting in sh, under its lock.
func (c *Cache) drainEnded(sh *sessionShard, emit func(prev, cur *model.Session, hadPrev bool)) int {
	c.drained.Store(time.Now().UnixNano())
	for j := range sh.frozen {
		f := &sh.frozen[j]
		c.emitChange(&f.s, &f.k, emit)
	}
	n := len(sh.frozen)
	c.ended.Add(-int64(n))
	if cap(sh.frozen) > 1024 {
		sh.frozen = nil // a burst's capacity is not kept
	} else {
		sh.frozen = sh.frozen[:0]
	}
	return n
}

// emitChange hands the change of the session of s and k to emit: its
// state now, and the last written one if there is one; then it notes the
// state now as the last written one.
func (c *Cache) emitChange(s *slot, k *cold, emit func(prev, cur *model.Session, hadPrev bool)) {
	w := current(s)
	cur := c.sessionAt(s, k, &w)
	if k.w.version == 0 {
		emit(&model.Session{}, &cur, false)
	} else {
		prev := c.sessionAt(s, k, &k.w) // the last written version
		emit(&prev, &cur, true)
	}
	k.w = w
}

// session returns the state of slot i.
func (c *Cache) session(sh *sessionShard, i int) model.Session {
	s := &sh.slots[i]
	w := current(s)
	return c.sessionAt(s, &sh.colds[i], &w)
}

// current returns what changes between versions as s holds it now. The
// duration is capped here, where every version (and so every row, and
// the rollups summed from them) takes it from.
func current(s *slot) written {
	ms := uint64(max(s.lastEventAt-s.start, 0)/int64(time.Millisecond)) + s.tailMS
	sec := uint32(min(ms/1000, 1<<32-1))
	if s.maxDurSec != 0 {
		sec = min(sec, s.maxDurSec)
	}
	return written{
		lastSeen: s.lastSeen, engagement: s.engagement,
		entryHash: s.entryHash, exitHash: s.exitHash,
		version: s.version, pageviews: s.pageviews, events: s.events,
		durationSec: sec, bounce: s.interactive < 2,
	}
}

// sessionAt is the version w of the session of s and k.
func (c *Cache) sessionAt(s *slot, k *cold, w *written) model.Session {
	return model.Session{
		ID:           s.id,
		VisitorID:    k.visitor0,
		Site:         c.sites.name(s.site),
		Start:        time.Unix(0, s.start).UTC(),
		LastSeen:     time.Unix(0, w.lastSeen).UTC(),
		Version:      w.version,
		Pageviews:    w.pageviews,
		Events:       w.events,
		Bounce:       w.bounce,
		DurationSec:  w.durationSec,
		EngagementMS: w.engagement,
		EntryPage:    c.paths.get(w.entryHash),
		ExitPage:     c.paths.get(w.exitHash),
		Attrs:        c.attrs.get(k.attrs),
	}
}

// endedShare: when more than MaxSessions/endedShare ended sessions wait to
// be drained, the cache asks for a drain of them (Pressure). A full cache
// that evicts live sessions as fast as page views come in would otherwise
// hold every session it evicted between two drains: 350,000 of them,
// 70 MB, in a load run with 500,000 visitors.
const endedShare = 8

// Pressure receives a value when many ended sessions wait to be drained
// (more than an eighth of MaxSessions): call DrainEnded then, so that they
// do not pile up in memory until the next Drain.
func (c *Cache) Pressure() <-chan struct{} { return c.pressure }
