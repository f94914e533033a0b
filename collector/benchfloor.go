//go:build benchfloor

package collector

import "os"

// A glimpse built with -tags benchfloor can stop the ingest path early, to
// measure what the stages before it cost under load (cmd/glimpse-bench's
// gate and handoff contestants). GLIMPSE_BENCH_FLOOR says where:
//
//	gate     after the privacy gate (decode, site, opt-outs, User-Agent and
//	         bot verdict): answer 202 and keep nothing
//	handoff  as gate, then queue an event that holds only its site, id,
//	         time and type, so the queue and the writer are paid for
//
// Anything else, or no value, runs the whole path. Release builds have no
// such switch: benchfloor_off.go makes benchFloor a constant the compiler
// removes.
var benchFloor = floorStage(os.Getenv("GLIMPSE_BENCH_FLOOR"))

func floorStage(v string) int {
	switch v {
	case "gate":
		return floorGate
	case "handoff":
		return floorHandoff
	}
	return floorOff
}

// floor answers for the stage benchFloor names; ok is false when the event
// should go on.
func (s *Server) floor(st *siteState, typ int8) (outcome, bool) {
	switch benchFloor {
	case floorGate:
		s.metrics.accepted.Inc()
		return accepted, true
	case floorHandoff:
		e := s.writer.NewEvent()
		e.SiteID = st.cfg.Domain
		e.NewID()
		e.TS = s.now().UTC()
		e.Type = typ
		return s.enqueue(e), true
	}
	return outcome{}, false
}
