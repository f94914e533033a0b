package aggregator

import (
	"strconv"
	"strings"

	"github.com/glimpse-analytics/glimpse/internal/model"
)

// Breakdowns by several dimensions (Plausible's v2 "dimensions": event
// and visit properties and a time bucket together) are breakdowns by one
// composite property: its value joins the parts' values, each prefixed
// by its length in bytes ("5:Googl6:/about"), so any value splits back
// exactly (splitKey) and the whole engine (ranking, folding under k,
// noise cells, conversion totals) works on it unchanged.
//
// Where a composite is read: over sessions rows when every part is a
// visit property (or the time of the visit's start); over events rows
// as soon as one part is an event property. Visit properties over events
// rows are the row's visit's: the scan joins each event to the live
// sessions' attribution (joinVisits), so an event counts under the
// source its visit came from, as Plausible counts it.

// timeDims are v2's time dimensions and their buckets; "time" takes the
// interval the period suggests.
var timeDims = map[string]string{"time:hour": "hour", "time:day": "date", "time:week": "week", "time:month": "month"}

// joinable reports whether visit property name can be read over events
// rows from the visit (its value is the same on every version of a
// session).
func joinable(name string) bool {
	return isAttribution(name) || isAttribution(v2Aliases[name]) || name == "visit:entry_page" || name == "visit:entry_page_hostname"
}

// Dimensions builds the property of a breakdown by names, a v2
// dimensions list of at least two, or of one time dimension with the
// bucket iv resolved by the caller. loc is the site's zone.
func Dimensions(names []string, iv, loc string) (*Property, error) {
	c := &Property{Name: strings.Join(names, ","), Key: "dimensions"}
	events := false
	for _, n := range names {
		if _, ok := timeDims[n]; ok || n == "time" {
			continue
		}
		p, err := parseV2Property(n)
		if err != nil {
			return nil, err
		}
		if len(p.visitGoals) > 0 {
			return nil, badRequest("invalid dimension %q", n)
		}
		c.parts = append(c.parts, p)
		if p.side == sideEvents {
			events = true
		}
	}
	c.side, c.timeCol = sideSessions, "start"
	if events {
		c.side, c.timeCol = sideEvents, "ts"
	}
	parts := c.parts
	c.parts = nil
	j := 0
	for _, n := range names {
		if _, ok := timeDims[n]; ok || n == "time" {
			c.parts = append(c.parts, &Property{Name: n, side: c.side, bucket: iv, timeCol: c.timeCol, loc: loc})
			continue
		}
		p := parts[j]
		j++
		if events && p.side == sideSessions {
			if !joinable(p.Name) {
				return nil, badRequest("Invalid dimensions: %s cannot be combined with event dimensions", p.Name)
			}
			q := *p
			q.joined = true
			alias := "jv" + strconv.Itoa(len(c.parts))
			q.valueCol = alias // the joined column
			q.col = alias
			d := model.Lookup(p.Name)
			if d == nil {
				d = model.Lookup(v2Aliases[p.Name]) // visit:country_name, ...
			}
			if d != nil {
				q.col = d.ReportSQL(alias)
			}
			p = &q
		}
		c.parts = append(c.parts, p)
	}
	return c, nil
}

// scoping returns the part of a composite whose events a breakdown
// counts: a custom property's, else a goal's, else the first part's with
// event types (a page's page views); the composite itself if none.
func (p *Property) scoping() *Property {
	for _, q := range p.parts {
		if q.prop != "" {
			return q
		}
	}
	for _, q := range p.parts {
		if q.Name == "event:goal" {
			return q
		}
	}
	for _, q := range p.parts {
		if len(q.types) > 0 {
			return q
		}
	}
	return &Property{}
}

// joinVisits writes, after FROM events, the join of each event to its
// live visit's values of the composite's joined visit properties. The
// right side holds one row per visit, so a plain (ALL) join gives each
// event its visit. ANY would not do: on current ClickHouse an ANY INNER
// JOIN keeps one left row per key too (18.16 kept them all), one event
// per visit.
func (s *scan) joinVisits(b *sqlb) {
	if s.prop == nil || !s.prop.hasJoined() {
		return
	}
	b.w(" INNER JOIN (SELECT session_id")
	for _, q := range s.prop.parts {
		if q.joined {
			b.w(", any(", q.stored, ") AS ", q.valueCol)
		}
	}
	b.w(" FROM sessions")
	s.sampleClause(b)
	b.w(" WHERE site_id = ").arg(s.site).w(" AND ")
	s.timeRange(b, "start", s.p.From.Add(-sessionSlack), s.p.To)
	b.w(" GROUP BY session_id HAVING sum(sign) > 0) AS v USING session_id")
}

func (p *Property) hasJoined() bool {
	for _, q := range p.parts {
		if q.joined {
			return true
		}
	}
	return false
}

// Parts returns the dimensions of a composite's key, or nil if key is
// not one (the (other) row).
func SplitKey(key string, n int) []string {
	out := make([]string, 0, n)
	for key != "" {
		i := strings.IndexByte(key, ':')
		if i < 0 {
			return nil
		}
		l, err := strconv.Atoi(key[:i])
		if err != nil || l < 0 || i+1+l > len(key) {
			return nil
		}
		out = append(out, key[i+1:i+1+l])
		key = key[i+1+l:]
	}
	if len(out) != n {
		return nil
	}
	return out
}
