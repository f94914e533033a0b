//go:build !benchfloor

package collector

// benchFloor is off in release builds; see benchfloor.go.
const benchFloor = floorOff

func (s *Server) floor(*siteState, int8) (outcome, bool) { return outcome{}, false }
