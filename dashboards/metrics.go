package dashboards

import (
	"fmt"

	"github.com/VictoriaMetrics/metrics"
)

// dashMetrics are the dashboard's counters, in the /metrics of glimpse
// serve (Options.Metrics).
type dashMetrics struct {
	// signins counts POSTs of the sign-in form by outcome.
	signins map[int]*metrics.Counter // by the status answered
	// limited counts the requests of the JSON and CSV endpoints refused
	// by the limit of the client's network or of the reader.
	limited map[string]*metrics.Counter
}

// signinResults name the outcomes of a sign-in by the status answered.
var signinResults = map[int]string{
	303: "ok",        // signed in
	401: "failed",    // wrong address or password: one password check
	429: "throttled", // refused before any check
	403: "forbidden", // the CSRF token or the origin was wrong
	400: "invalid",   // not an address a user can have, too long
	405: "invalid",   // not a POST or GET
}

func newDashMetrics(set *metrics.Set) *dashMetrics {
	m := &dashMetrics{signins: map[int]*metrics.Counter{}, limited: map[string]*metrics.Counter{}}
	for _, by := range []string{"client", "reader"} {
		m.limited[by] = set.GetOrCreateCounter(fmt.Sprintf(`glimpse_dashboard_requests_limited_total{by=%q}`, by))
	}
	for status, result := range signinResults {
		m.signins[status] = set.GetOrCreateCounter(fmt.Sprintf(`glimpse_dashboard_signins_total{result=%q}`, result))
	}
	return m
}

// signin counts a sign-in answered with status.
func (m *dashMetrics) signin(status int) {
	if c := m.signins[status]; c != nil {
		c.Inc()
	}
}
