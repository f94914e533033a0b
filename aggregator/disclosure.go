package aggregator

import (
	"crypto/rand"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/glimpse-analytics/glimpse/aggregator/noise"
	"github.com/glimpse-analytics/glimpse/internal/config"
	"github.com/glimpse-analytics/glimpse/internal/model"
)

// Disclosure control. For a site whose aggregates are noisy, every number
// a query releases is computed from raw components (the sums and unique
// counts of metric.go), each perturbed with discrete Laplace noise
// (aggregator/noise) of scale sensitivity/epsilon, before any threshold
// is applied or any metric derived:
//
//   - A component's sensitivity is the most one visitor-day can change
//     it, which the collector's contribution bounds make known
//     (model.MaxEventsPerDay and the others): 1 for visitors, the event
//     bound for page views, and so on (sensitivity below).
//   - A cell's noise is keyed by the site's noise key and a canonical
//     description of the cell: the component, the table side, the time
//     range in UTC, the filters with their values sorted (so that their
//     order and spelling do not matter), and for a breakdown the property
//     and the row's value. The same question always gets the same answer,
//     and asking again gains nothing.
//   - Thresholds compare noisy visitors with k: a withheld row and an
//     empty one look alike.
//   - Every distinct cell released costs epsilon from the reader's daily
//     budget (Budget); a cell released before costs nothing again.
//
// Exact sites release exact numbers under the k threshold alone.

// sensitivity is the most one visitor-day (for email rows, one
// recipient-day) can change each component, given the collector's
// contribution bounds.
var sensitivity = map[string]int64{
	"visitors":        1,
	"total_visitors":  1,
	"pageviews":       model.MaxEventsPerDay,
	"visit_pageviews": model.MaxEventsPerDay,
	"events":          model.MaxEventsPerDay,
	"outbound":        model.MaxEventsPerDay,
	"visits":          model.MaxVisitsPerDay,
	"bounces":         model.MaxVisitsPerDay,
	"duration":        model.MaxVisitsPerDay * model.MaxVisitSeconds,
	"eng_n":           model.MaxEngagementsPerDay,
	"eng_ms":          model.MaxEngagedMSPerDay,
	"scroll":          model.MaxEngagementsPerDay * model.MaxScrollDepth,
	"opens":           model.MaxEmailPerRecipientDay,
	"machine_opens":   model.MaxEmailPerRecipientDay,
	"clicks":          model.MaxEmailPerRecipientDay,
	"openers":         1,
	"clickers":        1,
	// keys: the rows a visitor-day can move in or out of a breakdown's
	// folded set.
	"keys": model.MaxEventsPerDay,
}

// additive lists, per side, the components that one visitor-day moves by
// at most their sensitivity across all rows of a breakdown together: each
// of its events (or, on the sessions side, each of its visits) falls in
// one row. Any other component (a count of people, or of visits read
// from events) can move in every row the visitor-day reaches.
var additive = map[string]map[string]bool{
	"ev": {"pageviews": true, "events": true, "outbound": true, "eng_n": true, "eng_ms": true, "scroll": true,
		"opens": true, "machine_opens": true, "clicks": true},
	"se": {"visits": true, "bounces": true, "duration": true, "pageviews": true, "events": true, "visit_pageviews": true},
}

// rowsReached is how many rows of a breakdown one visitor-day can reach:
// one per event (events side) or per visit (sessions side).
var rowsReached = map[string]float64{"ev": model.MaxEventsPerDay, "se": model.MaxVisitsPerDay}

// release is one request's disclosure control: the noise of its cells in
// noisy mode, and what it released, for the budget.
type release struct {
	noisy  bool
	site   string
	n      *noise.Noise
	epsNum uint64 // epsilon in thousandths
	clip   int64  // the revenue one event counts with (privacy.revenue_clip)
	scope  string // the canonical filters
	// charges are the releases' privacy costs in units of epsilon, by
	// what they release: a cell, or a component across a breakdown's rows.
	charges map[string]float64
}

func (e *Engine) release(q *Query) *release {
	p := q.Site.Privacy
	r := &release{noisy: p.Noisy(), site: q.Site.Domain}
	if !r.noisy {
		return r
	}
	r.n = e.noiseOf(q.Site)
	r.epsNum = uint64(max(1, math.Round(p.Epsilon*1000)))
	r.clip = max(p.RevenueClip, 1)
	r.scope = canonicalFilters(q.Filters)
	return r
}

// noiseOf returns the site's noise, keyed by its noise key or, without
// one, by a key random for this process (config.Privacy.NoiseKey).
func (e *Engine) noiseOf(site *config.Site) *noise.Noise {
	e.noiseMu.Lock()
	defer e.noiseMu.Unlock()
	if n, ok := e.noises[site.Domain]; ok {
		return n
	}
	key := []byte(site.Privacy.NoiseKey)
	if len(key) == 0 {
		key = make([]byte, 32)
		_, _ = rand.Read(key)
	}
	n := noise.New(key)
	if e.noises == nil {
		e.noises = map[string]*noise.Noise{}
	}
	e.noises[site.Domain] = n
	return n
}

// canonicalFilters describes filters regardless of their order and the
// order of their values.
func canonicalFilters(fs []Filter) string {
	parts := make([]string, 0, len(fs))
	for _, f := range fs {
		parts = append(parts, f.canonical())
	}
	slices.Sort(parts)
	parts = slices.Compact(parts)
	return strings.Join(parts, "\x1e")
}

// cell names one released component: the side it is read from, the time
// range, and for a breakdown the property and the row's value.
type cell struct {
	side     string
	from, to time.Time
	by, key  string
	// row: the cell is one row of a breakdown by by, charged with the
	// component across all rows (the breakdown's rows are one release).
	row bool
	// scope, when set, replaces the request's filters: the canonical
	// filters of another question whose cell this is.
	scope *string
}

// withoutGoals returns the cell as asked without the goal filters: the
// denominator of conversion_rate is the visitors of that question.
func (c cell) withoutGoals(fs []Filter) cell {
	s := canonicalFilters(withoutGoals(fs))
	c.scope = &s
	return c
}

// value returns component c of cell as released: in noisy mode raw plus
// noise of scale sensitivity×factor/epsilon (factor scales a sampled
// count), and the cell is recorded for the budget.
func (r *release) value(c string, at cell, raw, factor float64) float64 {
	if !r.noisy {
		return raw
	}
	key := r.charge(c, at)
	unit := 1.0
	s, ok := sensitivity[c]
	if kind, _, rev := revenueComponent(c); rev {
		s, _ = revenueSensitivity(kind, r.clip)
		if kind == revSum {
			// Micros are released on a grid of cents (revenueGrid), so
			// that the noise's scale fits its integer arithmetic: the sum
			// is rounded to the grid first, which moves it by at most one
			// more step.
			unit = revenueGrid
			raw = math.Round(raw / unit)
			s = s/revenueGrid + 1
		}
	} else if !ok {
		s = model.MaxEventsPerDay
	}
	num := uint64(math.Round(float64(s) * max(factor, 1) * 1000))
	// The noise is drawn for the cell as it holds now: should its rows
	// change after a release (late rows replayed from a spool), the new
	// answer carries new noise rather than the old noise plus the exact
	// change. The charge stays the cell's: whether the rows changed is
	// not told by the budget.
	return (raw + float64(r.n.Laplace(key+"\x00"+strconv.FormatFloat(raw, 'g', -1, 64), num, r.epsNum))) * unit
}

// charge records the release of component c of cell at for the budget
// and returns the cell's canonical description.
func (r *release) charge(c string, at cell) string {
	scope := r.scope
	if at.scope != nil {
		scope = *at.scope
	}
	fam := func(c string) string {
		return strings.Join([]string{r.site, at.side, c, strconv.FormatInt(at.from.Unix(), 10), strconv.FormatInt(at.to.Unix(), 10),
			scope, at.by}, "\x00")
	}
	family := fam(c)
	if r.charges == nil {
		r.charges = map[string]float64{}
	}
	if kind, _, ok := revenueComponent(c); ok {
		// A revenue component is charged for all currencies together,
		// whichever the cell holds: its sums and counts are additive
		// over currencies (and rows), its buyers reach at most one
		// currency and row per event of a visitor-day.
		units := 1.0
		if _, add := revenueSensitivity(kind, r.clip); !add {
			units = model.MaxEventsPerDay
		}
		r.charges[fam(kind)+"\x00rows"] = units
		return family + "\x00" + at.key
	}
	switch {
	case !at.row:
		r.charges[family+"\x00"+at.key] = 1
	case additive[at.side][c]:
		r.charges[family+"\x00rows"] = 1
	default:
		r.charges[family+"\x00rows"] = rowsReached[at.side]
	}
	return family + "\x00" + at.key
}

// values returns the components cols of v, released for cell at.
func (r *release) values(v map[string]float64, at cell, factor float64) map[string]float64 {
	if !r.noisy || v == nil {
		return v
	}
	out := make(map[string]float64, len(v))
	for c, raw := range v {
		if c == "total_visitors" {
			out[c] = raw // released by the caller, as visitors of another scope
			continue
		}
		out[c] = r.value(c, at, raw, factor)
	}
	return out
}

// Budget is what readers may release in a UTC day, per reader and site:
// each distinct cell costs the site's epsilon, and a reader over the
// site's budget gets ErrBudget until the next UTC day. Safe for concurrent
// use.
type Budget struct {
	now     func() time.Time
	mu      sync.Mutex
	day     int64
	readers map[string]*spent
	// onSpend is told the epsilon spent and each refusal.
	onSpend   func(eps float64)
	onRefusal func()
}

type spent struct {
	total    float64
	released map[string]struct{} // the charges paid today
}

// NewBudget returns an empty budget; onSpend and onRefusal may be nil.
func NewBudget(now func() time.Time, onSpend func(float64), onRefusal func()) *Budget {
	if now == nil {
		now = time.Now
	}
	return &Budget{now: now, readers: map[string]*spent{}, onSpend: onSpend, onRefusal: onRefusal}
}

// ErrBudget is a reader's exhausted daily budget: the Stats API answers
// 429 until the next UTC day.
func errBudget(site string, limit float64, until time.Time) error {
	return &Error{Status: 429, Message: fmt.Sprintf("privacy budget of %s spent for today (%g): new numbers are released again after %s",
		site, limit, until.Format(time.RFC3339)), RetryAt: until}
}

// spend charges reader what r releases that it did not release to the
// reader before today, epsilon per unit, and returns what is left; with
// not enough left it charges nothing and returns ErrBudget.
func (b *Budget) spend(reader string, site *config.Site, r *release) (float64, error) {
	if b == nil || !r.noisy {
		return math.Inf(1), nil
	}
	now := b.now().UTC()
	day := now.Unix() / 86400
	b.mu.Lock()
	defer b.mu.Unlock()
	if day != b.day {
		b.day, b.readers = day, map[string]*spent{}
	}
	id := reader + "\x00" + site.Domain
	s := b.readers[id]
	if s == nil {
		s = &spent{released: map[string]struct{}{}}
		b.readers[id] = s
	}
	var fresh []string
	units := 0.0
	for c, u := range r.charges {
		if _, ok := s.released[c]; !ok {
			fresh = append(fresh, c)
			units += u
		}
	}
	cost := units * site.Privacy.Epsilon
	limit := site.Privacy.Budget
	if s.total+cost > limit+1e-9 {
		if b.onRefusal != nil {
			b.onRefusal()
		}
		return 0, errBudget(site.Domain, limit, time.Unix((day+1)*86400, 0).UTC())
	}
	for _, c := range fresh {
		s.released[c] = struct{}{}
	}
	s.total += cost
	if b.onSpend != nil && cost > 0 {
		b.onSpend(cost)
	}
	return limit - s.total, nil
}
