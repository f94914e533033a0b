package collector

import (
	"fmt"

	"github.com/VictoriaMetrics/metrics"

	"github.com/glimpse-analytics/glimpse/collector/decode"
)

// Drop reasons: why an event was answered but not stored. Each is a value
// of the reason label of glimpse_events_dropped_total and of the
// X-Glimpse-Dropped response header.
const (
	dropUnknownSite = "unknown-site"
	dropOptOut      = OptOutCookieReason
	dropGPC         = OptOutGPCReason
	dropDNT         = OptOutDNTReason
	dropBot         = "bot"
	dropRateLimit   = "rate-limit"
	dropQueueFull   = "queue-full"
	dropShutdown    = "shutting-down"
	dropSpoolFull   = "spool-full"
	// dropContributionCap: the visitor-day is at a contribution cap of
	// its noisy site (contrib.go).
	dropContributionCap = "contribution-cap"
)

var dropReasons = []string{dropUnknownSite, dropOptOut, dropGPC, dropDNT, dropBot, dropRateLimit, dropQueueFull, dropShutdown, dropSpoolFull, dropContributionCap}

// rejections are 4xx answers to bad requests, by reason. Decoder errors
// use the decoder's codes; the rest are the HTTP layer's.
const (
	rejectMethod      = "method"
	rejectTooLarge    = "too_large"
	rejectContentType = "content_type"
	rejectBadURL      = "bad_url"
	rejectNotFound    = "not_found"
	rejectMalformed   = "malformed_request" // fasthttp could not parse the request (HTTPErrors)
)

// collectorMetrics are the ingest counters, created up front so the hot
// path only increments them.
type collectorMetrics struct {
	accepted *metrics.Counter
	dropped  map[string]*metrics.Counter
	rejected map[string]*metrics.Counter
	anon     *metrics.Counter
}

func newCollectorMetrics(set *metrics.Set) *collectorMetrics {
	m := &collectorMetrics{
		accepted: set.NewCounter("glimpse_events_accepted_total"),
		dropped:  map[string]*metrics.Counter{},
		rejected: map[string]*metrics.Counter{},
		anon:     set.NewCounter("glimpse_events_anonymous_total"),
	}
	for _, r := range dropReasons {
		m.dropped[r] = set.NewCounter(fmt.Sprintf(`glimpse_events_dropped_total{reason=%q}`, r))
	}
	reasons := []string{rejectMethod, rejectTooLarge, rejectContentType, rejectBadURL, rejectNotFound}
	for _, e := range decode.Errors() {
		reasons = append(reasons, e.Code)
	}
	for _, r := range reasons {
		// GetOrCreate: HTTPErrors counts the listener's 413s as too_large too.
		m.rejected[r] = set.GetOrCreateCounter(fmt.Sprintf(`glimpse_requests_rejected_total{reason=%q}`, r))
	}
	// Make sure the stored counter exists from the start even before a flush.
	set.GetOrCreateCounter("glimpse_events_stored_total")
	return m
}

func (m *collectorMetrics) drop(reason string) { m.dropped[reason].Inc() }

func (m *collectorMetrics) reject(reason string) {
	if c, ok := m.rejected[reason]; ok {
		c.Inc()
	}
}
