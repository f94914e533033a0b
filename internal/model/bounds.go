package model

// Contribution bounds: the most one visitor-day (a daily visitor id) may
// add to the stored data of a site whose aggregates are noisy. The
// collector enforces them when it takes events (an event beyond them is
// dropped, reason contribution-cap); the query engine calibrates its
// noise to them, as the sensitivity of each released number. A visitor
// id lives one UTC day (internal/identity), so a visitor-day is the unit
// the noise protects.
const (
	// MaxEventsPerDay bounds the page views, custom events, outbound
	// clicks, downloads and impressions of a visitor-day.
	MaxEventsPerDay = 30
	// MaxVisitsPerDay bounds the sessions a visitor-day starts.
	MaxVisitsPerDay = 3
	// MaxVisitSeconds bounds the duration a visit counts.
	MaxVisitSeconds = 1800
	// MaxEngagementsPerDay bounds the engagement reports of a
	// visitor-day, and MaxEngagedMSPerDay the engaged time they carry.
	MaxEngagementsPerDay = 30
	MaxEngagedMSPerDay   = 30 * 60 * 1000
	// MaxScrollDepth is the largest scroll depth a report carries (%).
	MaxScrollDepth = 100
	// MaxRevenuePerEvent is the revenue (in units of its currency) one
	// event counts with on a noisy site by default (privacy.revenue_clip):
	// larger amounts are clipped to it when summed, so a currency's
	// revenue has sensitivity clip × MaxEventsPerDay.
	MaxRevenuePerEvent = 1000
	// MaxEmailPerRecipientDay bounds the opens and clicks stored for one
	// recipient pseudonym in a UTC day.
	MaxEmailPerRecipientDay = 10
)
