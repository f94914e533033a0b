package api_test

// The oracle of the Stats API v2 (POST /api/v2/query): the traffic and
// the ground truth of TestOracle (orGenerate, orReplay), asked as v2
// questions (aggregates, time buckets, breakdowns by one property and by
// several, filter trees, derived metrics, ordering, pagination,
// comparisons) and compared with answers counted here in plain Go.
// Nothing here calls aggregator code to compute what is expected.
//
// The model's semantics, as Plausible's v2 and the engine's filter
// trees (aggregator/filter.go) define them:
//   - a visit leaf over an event asks the event's visit; an event leaf
//     over a visit asks whether the visit has a (non-engagement) event
//     in the range that matches it; has_done likewise;
//   - event metrics count the events that pass every filter; session
//     metrics count the visits that started in the range and pass the
//     visit leaves and trees, or, with top-level event leaves, the
//     visits of the events that pass those (and the visit's filters);
//   - a breakdown by a visit property counts an event under its visit's
//     value.

import (
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/glimpse-analytics/glimpse/aggregator"
	"github.com/glimpse-analytics/glimpse/aggregator/api"
	"github.com/glimpse-analytics/glimpse/internal/chtest"
)

// v2F is a v2 filter: a leaf (dim set) or a tree (and, or, not,
// has_done, has_not_done over sub).
type v2F struct {
	op   string
	dim  string
	vals []string
	fold bool // case_sensitive: false
	sub  []v2F
}

func v2Leaf(op, dim string, vals ...string) v2F { return v2F{op: op, dim: dim, vals: vals} }

func (f v2F) json() any {
	switch f.op {
	case "and", "or":
		subs := make([]any, len(f.sub))
		for i, s := range f.sub {
			subs[i] = s.json()
		}
		return []any{f.op, subs}
	case "not", "has_done", "has_not_done":
		return []any{f.op, f.sub[0].json()}
	}
	out := []any{f.op, f.dim, f.vals}
	if f.fold {
		out = append(out, map[string]bool{"case_sensitive": false})
	}
	return out
}

func (f v2F) leaf() bool   { return f.dim != "" }
func (f v2F) visit() bool  { return strings.HasPrefix(f.dim, "visit:") }
func (f v2F) isGoal() bool { return f.dim == "event:goal" }

// test matches a value against the leaf's clauses (any clause).
func (f v2F) test(v string) bool {
	for _, x := range f.vals {
		switch strings.TrimSuffix(f.op, "_not") {
		case "is":
			if v == x || (f.fold && strings.EqualFold(v, x)) {
				return true
			}
		case "contains":
			if strings.Contains(v, x) || (f.fold && strings.Contains(strings.ToLower(v), strings.ToLower(x))) {
				return true
			}
		case "matches":
			if regexp.MustCompile(x).MatchString(v) {
				return true
			}
		}
	}
	return false
}

// onEvents reports whether f chooses events: an event leaf, in a tree
// or not, but in has_done (the same for every event of a visit).
func (f v2F) onEvents() bool {
	switch {
	case f.leaf():
		return !f.visit()
	case f.op == "has_done" || f.op == "has_not_done":
		return false
	}
	return slices.ContainsFunc(f.sub, v2F.onEvents)
}

func (f v2F) negated() bool { return strings.HasSuffix(f.op, "_not") }

// leafE: the leaf over event e (a visit leaf over e's visit).
func (f v2F) leafE(e *orEvent) bool {
	if f.visit() && e.sess == nil {
		return false
	}
	if f.isGoal() {
		any := false
		if e.typ == tPageview {
			for _, x := range f.vals {
				if p, ok := strings.CutPrefix(x, "Visit "); ok && e.path == p {
					any = true
				}
			}
		}
		if g, ok := orGoal(e); ok && f.test(g) {
			any = true
		}
		return any != f.negated()
	}
	v, _ := orFilter{dim: f.dim}.value(e)
	return f.test(v) != f.negated()
}

// v2Q is a v2 question of the model.
type v2Q struct {
	site     string
	from, to time.Time
	filters  []v2F
	// The question's range, when from and to are one time bucket's:
	// an event leaf or has_done over a visit asks the visit's events in
	// the whole range, not in the bucket.
	wholeFrom, wholeTo time.Time
}

// whole is q's range (not its bucket's).
func (q v2Q) whole() v2Q {
	if !q.wholeFrom.IsZero() {
		q.from, q.to = q.wholeFrom, q.wholeTo
	}
	return q
}

func (q v2Q) in(t time.Time) bool { return !t.Before(q.from) && t.Before(q.to) }

// hasEvent: s has a non-engagement event in q's range that pred accepts.
func (m *v2Model) hasEvent(q v2Q, s *orSession, pred func(*orEvent) bool) bool {
	q = q.whole()
	for _, e := range m.bySess[s] {
		if e.typ != tEngagement && q.in(e.ts) && pred(e) {
			return true
		}
	}
	return false
}

// evalE is a filter over event e.
func (m *v2Model) evalE(q v2Q, f v2F, e *orEvent) bool {
	switch f.op {
	case "and":
		for _, s := range f.sub {
			if !m.evalE(q, s, e) {
				return false
			}
		}
		return true
	case "or":
		for _, s := range f.sub {
			if m.evalE(q, s, e) {
				return true
			}
		}
		return false
	case "not":
		return !m.evalE(q, f.sub[0], e)
	case "has_done", "has_not_done":
		if e.sess == nil {
			return false
		}
		return m.hasEvent(q, e.sess, func(x *orEvent) bool { return m.evalE(q, f.sub[0], x) }) == (f.op == "has_done")
	}
	return f.leafE(e)
}

// evalS is a filter over visit s: an event leaf asks whether s has an
// event matching it.
func (m *v2Model) evalS(q v2Q, f v2F, s *orSession) bool {
	switch f.op {
	case "and":
		for _, x := range f.sub {
			if !m.evalS(q, x, s) {
				return false
			}
		}
		return true
	case "or":
		for _, x := range f.sub {
			if m.evalS(q, x, s) {
				return true
			}
		}
		return false
	case "not":
		return !m.evalS(q, f.sub[0], s)
	case "has_done", "has_not_done":
		return m.hasEvent(q, s, func(x *orEvent) bool { return m.evalE(q, f.sub[0], x) }) == (f.op == "has_done")
	}
	if f.visit() {
		return f.leafE(&orEvent{sess: s})
	}
	return m.hasEvent(q, s, f.leafE)
}

type v2Model struct {
	*orModel
	bySess map[*orSession][]*orEvent
}

// events are the events of q that pass its filters.
func (m *v2Model) events(q v2Q) []*orEvent {
	var out []*orEvent
next:
	for _, e := range m.orModel.events {
		if e.site != q.site || !q.in(e.ts) {
			continue
		}
		for _, f := range q.filters {
			if !m.evalE(q, f, e) {
				continue next
			}
		}
		out = append(out, e)
	}
	return out
}

// sessions are the visits of q's session metrics: those that started
// in the range and pass the filters over visits, or, when filters
// choose events (onEvents), those holding such an event in the range
// (in a time series, in the bucket of that event) that pass the rest.
func (m *v2Model) sessions(q v2Q) []*orSession {
	var evLeaves, rest []v2F
	for _, f := range q.filters {
		if f.onEvents() {
			evLeaves = append(evLeaves, f)
		}
		if !f.leaf() || f.visit() {
			rest = append(rest, f)
		}
	}
	pass := func(s *orSession) bool {
		for _, f := range rest {
			if !m.evalS(q, f, s) {
				return false
			}
		}
		return true
	}
	var out []*orSession
	if len(evLeaves) == 0 {
		for _, s := range m.orModel.sessions {
			if s.site == q.site && q.in(s.start) && pass(s) {
				out = append(out, s)
			}
		}
		return out
	}
	seen := map[*orSession]bool{}
	for _, e := range m.orModel.events {
		if e.site != q.site || !q.in(e.ts) || e.typ == tEngagement || e.sess == nil || seen[e.sess] {
			continue
		}
		ok := true
		for _, f := range evLeaves {
			ok = ok && m.evalE(q, f, e)
		}
		if ok && pass(e.sess) {
			seen[e.sess] = true
			out = append(out, e.sess)
		}
	}
	return out
}

// v2Metrics computes the model's metrics over events es and visits ss.
func v2Metrics(es []*orEvent, ss []*orSession) map[string]float64 {
	vs := orVisitorSet(es)
	out := map[string]float64{"visitors": float64(len(vs)), "pageviews": 0, "events": 0}
	for _, e := range es {
		switch e.typ {
		case tPageview:
			out["pageviews"]++
			out["events"]++
		case tCustom, tOutbound, tDownload:
			out["events"]++
		}
	}
	var bounces, dur float64
	for _, s := range ss {
		if s.bounce() {
			bounces++
		}
		dur += float64(s.duration())
	}
	out["visits"] = float64(len(ss))
	svs := map[string]bool{}
	for _, s := range ss {
		svs[s.vkey] = true
	}
	// The visitors of the visits: a filtered answer is withheld when
	// either side counts 1 to k-1 people.
	out["session_visitors"] = float64(len(svs))
	if n := float64(len(ss)); n > 0 {
		out["bounce_rate"] = math.Round(100 * bounces / n)
		out["visit_duration"] = math.Round(dur / n)
	} else {
		out["bounce_rate"] = 0
		out["visit_duration"] = 0
	}
	return out
}

func (m *v2Model) aggregate(q v2Q) map[string]float64 {
	return v2Metrics(m.events(q), m.sessions(q))
}

func (q v2Q) withoutGoals() v2Q {
	q.filters = slices.DeleteFunc(slices.Clone(q.filters), v2F.isGoal)
	return q
}

func (q v2Q) hasGoal() bool { return slices.ContainsFunc(q.filters, v2F.isGoal) }

func v2Round(x float64, p int) float64 { f := math.Pow(10, float64(p)); return math.Round(x*f) / f }

func v2Ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

// v2Row is a model row: its dimension values and metrics.
type v2Row struct {
	dims     []string
	metrics  map[string]float64
	visitors map[string]bool
}

// v2Dim is one dimension of a breakdown as the model reads it.
type v2Dim struct {
	name    string
	buckets orPeriod // time dimensions: the range, bucket labels
	iv      string
}

// label is the time bucket of t.
func (d v2Dim) label(t time.Time) string {
	labels, from, to := orBuckets(d.buckets, d.iv)
	for i := range labels {
		if !t.Before(from[i]) && t.Before(to[i]) {
			return labels[i]
		}
	}
	return ""
}

var v2TimeIvs = map[string]string{"time:hour": "hour", "time:day": "date", "time:week": "week", "time:month": "month"}

// breakdown is the model's rows of q by dims, before the fold.
func (m *v2Model) breakdown(q v2Q, dims []string, p orPeriod) []*v2Row {
	ds := make([]v2Dim, len(dims))
	events := false
	for i, d := range dims {
		ds[i] = v2Dim{name: d, buckets: p, iv: v2TimeIvs[d]}
		if strings.HasPrefix(d, "event:") {
			events = true
		}
	}
	rows := map[string]*v2Row{}
	get := func(key []string) *v2Row {
		k := strings.Join(key, "\x00")
		r := rows[k]
		if r == nil {
			r = &v2Row{dims: key}
			rows[k] = r
		}
		return r
	}
	es := m.events(q)
	if !events && len(dims) > 1 {
		// Over visits: each visit's values, its start's bucket.
		ss := m.sessions(q)
		// Page views are the visits' own without event filters, else
		// those of the events that pass the filters (event metrics).
		evLeaves := slices.ContainsFunc(q.filters, v2F.onEvents)
		groups := map[string][]*orSession{}
		keys := map[string][]string{}
		for _, s := range ss {
			key := make([]string, len(ds))
			for i, d := range ds {
				if d.iv != "" {
					key[i] = d.label(s.start)
				} else {
					key[i], _ = orFilter{dim: d.name}.value(&orEvent{sess: s})
				}
			}
			k := strings.Join(key, "\x00")
			groups[k] = append(groups[k], s)
			keys[k] = key
		}
		for k, g := range groups {
			r := get(keys[k])
			r.visitors = map[string]bool{}
			for _, s := range g {
				r.visitors[s.vkey] = true
			}
			r.metrics = v2Metrics(nil, g)
			r.metrics["visitors"] = float64(len(r.visitors))
			pv := 0.0
			for _, s := range g {
				if !evLeaves {
					pv += float64(s.pageviews)
					continue
				}
				// With event filters, the visit's matching page views.
				for _, e := range es {
					if e.sess == s && e.typ == tPageview {
						pv++
					}
				}
			}
			r.metrics["pageviews"] = pv
		}
		return v2Sorted(rows)
	}
	goal := q.hasGoal()
	groups := map[string][]*orEvent{}
	keys := map[string][]string{}
	for _, e := range es {
		key := make([]string, len(ds))
		ok := true
		for i, d := range ds {
			switch {
			case d.iv != "":
				key[i] = d.label(e.ts)
			case d.name == "event:page":
				if !goal && e.typ != tPageview {
					ok = false
				}
				key[i] = e.path
			case d.name == "event:goal":
				g, isG := orGoal(e)
				if !isG && e.typ == tPageview {
					for _, f := range q.filters {
						for _, x := range f.vals {
							if pg, y := strings.CutPrefix(x, "Visit "); y && f.isGoal() && pg == e.path && !isG {
								g, isG = x, true
							}
						}
					}
				}
				ok = ok && isG
				key[i] = g
			case strings.HasPrefix(d.name, "event:props:"):
				v, has := orFilter{dim: d.name}.stored(e)
				ok = ok && has
				key[i] = v
			case d.name == "event:hostname":
				key[i] = e.site
			default: // a visit property: the event's visit's
				v, has := orFilter{dim: d.name}.value(e)
				ok = ok && has && !(v == "" && strings.HasPrefix(d.name, "visit:utm_"))
				key[i] = v
			}
		}
		if !ok || e.typ == tEngagement {
			continue
		}
		k := strings.Join(key, "\x00")
		groups[k] = append(groups[k], e)
		keys[k] = key
	}
	single := len(dims) == 1 && strings.HasPrefix(dims[0], "visit:")
	var ss []*orSession
	if single {
		ss = m.sessions(q)
	}
	for k, g := range groups {
		r := get(keys[k])
		var rs []*orSession
		if single {
			f := orFilter{dim: dims[0]}
			for _, s := range ss {
				if v, _ := f.value(&orEvent{sess: s}); v == keys[k][0] {
					rs = append(rs, s)
				}
			}
		}
		r.metrics = v2Metrics(g, rs)
		r.visitors = orVisitorSet(g)
	}
	return v2Sorted(rows)
}

func v2Sorted(rows map[string]*v2Row) []*v2Row {
	var out []*v2Row
	for _, r := range rows {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return strings.Join(out[i].dims, "\x00") < strings.Join(out[j].dims, "\x00") })
	return out
}

// v2Checker asks POST /api/v2/query and compares.
type v2Checker struct {
	*orChecker
	m *v2Model
}

func (c *v2Checker) post(body map[string]any) (int, map[string]any, string) {
	b, _ := json.Marshal(body)
	c.requests++
	c.reqs[viaAPI]++
	var rc fasthttp.RequestCtx
	rc.Request.Header.SetMethod("POST")
	rc.Request.SetRequestURI(api.PathQuery)
	rc.Request.Header.Set("Authorization", "Bearer "+orKey)
	rc.Request.Header.SetContentType("application/json")
	rc.Request.SetBody(b)
	c.routes[api.PathQuery](&rc)
	var out map[string]any
	_ = json.Unmarshal(rc.Response.Body(), &out)
	return rc.Response.StatusCode(), out, string(b)
}

// ask posts body and returns its rows by their dimensions joined with
// NUL (nil on an error, which is a mismatch).
func (c *v2Checker) ask(body map[string]any) (map[string][]any, map[string]any, string) {
	code, out, q := c.post(body)
	if code != 200 {
		c.count()
		c.mismatch("v2 %s | (status) | : %d %v", q, code, out)
		return nil, nil, q
	}
	rows := map[string][]any{}
	list, _ := out["results"].([]any)
	for _, x := range list {
		r := x.(map[string]any)
		ds, _ := r["dimensions"].([]any)
		ks := make([]string, len(ds))
		for i, d := range ds {
			ks[i] = fmt.Sprint(d)
		}
		k := strings.Join(ks, "\x00")
		if _, dup := rows[k]; dup {
			c.count()
			c.mismatch("v2 %s | (row) | %q: twice", q, ks)
		}
		rows[k], _ = r["metrics"].([]any)
		if cmp, ok := r["comparison"].(map[string]any); ok {
			rows[k+"\x01cmp"], _ = cmp["metrics"].([]any)
			rows[k+"\x01change"], _ = cmp["change"].([]any)
		}
	}
	return rows, out, q
}

func (c *v2Checker) cmp(q, metric, key string, want *float64, got any) {
	c.compare("v2 "+q, metric, strings.ReplaceAll(key, "\x00", " × "), want, got)
}

func v2Filters(fs []v2F) []any {
	out := []any{}
	for _, f := range fs {
		out = append(out, f.json())
	}
	return out
}

// v2Period is a period of the oracle as v2 date_range.
type v2Period struct {
	orPeriod
	dateRange any
}

func v2Periods(loc *time.Location) []v2Period {
	d := func(a, b string) v2Period {
		return v2Period{orPeriod{from: orDay(loc, a), to: orDay(loc, b).AddDate(0, 0, 1)}, []string{a, b}}
	}
	// now (orNow) is 2025-03-14 00:30 UTC: 2025-03-13 in New York.
	today := orDay(loc, orNow.In(loc).Format("2006-01-02"))
	return []v2Period{
		d("2025-03-09", "2025-03-09"),
		d("2025-03-03", "2025-03-03"),
		d("2025-03-05", "2025-03-11"),
		{orPeriod{from: today.AddDate(0, 0, -7), to: today}, "7d"},
		{orPeriod{from: orDay(loc, "2025-03-01"), to: orDay(loc, "2025-04-01")}, "month"},
	}
}

func (p v2Period) day() bool { return p.to.Sub(p.from) <= 25*time.Hour }

func (c *v2Checker) query(site string, p v2Period, metrics, dims []string, fs []v2F) map[string]any {
	body := map[string]any{"site_id": site, "metrics": metrics, "date_range": p.dateRange}
	if len(dims) > 0 {
		body["dimensions"] = dims
	}
	if len(fs) > 0 {
		body["filters"] = v2Filters(fs)
	}
	return body
}

// aggregate checks an aggregate (and with comparisons, their change).
func (c *v2Checker) aggregate(site string, p v2Period, fs []v2F, mode string) {
	q := v2Q{site: site, from: p.from, to: p.to, filters: fs}
	want := c.m.aggregate(q)
	metrics := []string{"visitors", "visits", "pageviews", "events", "bounce_rate", "visit_duration"}
	if q.hasGoal() {
		metrics = append(metrics, "conversion_rate")
		want["conversion_rate"] = v2Round(100*v2Ratio(want["visitors"], c.m.aggregate(q.withoutGoals())["visitors"]), 1)
	}
	body := c.query(site, p, metrics, nil, fs)
	var old map[string]float64
	if mode != "" {
		body["include"] = map[string]any{"comparisons": map[string]any{"mode": mode}}
		pq := q
		if mode == "previous_period" {
			n := int(math.Round(p.to.Sub(p.from).Hours() / 24))
			pq.from, pq.to = p.from.AddDate(0, 0, -n), p.from
		} else {
			pq.from, pq.to = p.from.AddDate(-1, 0, 0), p.to.AddDate(-1, 0, 0)
		}
		old = c.m.aggregate(pq)
		if q.hasGoal() {
			old["conversion_rate"] = v2Round(100*v2Ratio(old["visitors"], c.m.aggregate(pq.withoutGoals())["visitors"]), 1)
		}
	}
	rows, _, qs := c.ask(body)
	if rows == nil {
		return
	}
	got, ok := rows[""]
	if !ok || len(rows) != 1+2*btoi(mode != "") {
		c.count()
		c.mismatch("v2 %s | (rows) | : want one row, got %d", qs, len(rows))
		return
	}
	withheld := v2Withheld(fs, want)
	if withheld {
		c.withheld += len(metrics)
	}
	for i, mt := range metrics {
		var w *float64
		if !withheld {
			x := want[mt]
			w = &x
		}
		c.cmp(qs, mt, "", w, got[i])
	}
	if mode == "" {
		return
	}
	oldWithheld := v2Withheld(fs, old)
	cm, ch := rows["\x01cmp"], rows["\x01change"]
	for i, mt := range metrics {
		var w *float64
		if !oldWithheld {
			x := old[mt]
			w = &x
		}
		c.cmp(qs, mt+" (comparison)", "", w, v2At(cm, i))
		w = nil
		if !withheld && !oldWithheld {
			if x, ok := v2Change(mt, old, want); ok {
				w = &x
			}
		}
		c.cmp(qs, mt+" change", fmt.Sprintf("%v → %v", old[mt], want[mt]), w, v2At(ch, i))
	}
}

// v2Withheld: a filtered answer whose events or visits count 1 to k-1
// visitors is withheld (both sides are read: every aggregate and time
// series here asks session metrics).
func v2Withheld(fs []v2F, v map[string]float64) bool {
	return orWithheld(len(fs) > 0, v["visitors"]) || orWithheld(len(fs) > 0, v["session_visitors"])
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func v2At(xs []any, i int) any {
	if i < len(xs) {
		return xs[i]
	}
	return "(missing)"
}

// v2Change is /work/v2-spec.md §2's change; ok false: null.
func v2Change(mt string, old, cur map[string]float64) (float64, bool) {
	o, n := old[mt], cur[mt]
	switch mt {
	case "conversion_rate", "group_conversion_rate":
		return v2Round(n-o, 1), true
	case "bounce_rate":
		if o > 0 {
			return v2Round(n-o, 1), true
		}
		return 0, false
	}
	switch {
	case o == 0 && n > 0:
		return 100, true
	case o == 0:
		return 0, true
	}
	return math.Round((n - o) / o * 100), true
}

// timeseries checks a time dimension alone: rows only for buckets with
// data, each bucket's metrics, and meta.time_labels.
func (c *v2Checker) timeseries(site string, p v2Period, dim string, fs []v2F) {
	metrics := []string{"visitors", "visits", "pageviews", "events", "bounce_rate", "visit_duration"}
	q := v2Q{site: site, filters: fs}
	if q.hasGoal() {
		metrics = append(metrics, "conversion_rate")
	}
	body := c.query(site, p, metrics, []string{dim}, fs)
	body["include"] = map[string]any{"time_labels": true}
	rows, out, qs := c.ask(body)
	if rows == nil {
		return
	}
	labels, from, to := orBuckets(p.orPeriod, v2TimeIvs[dim])
	meta, _ := out["meta"].(map[string]any)
	gotLabels := fmt.Sprint(meta["time_labels"])
	c.count()
	if want := fmt.Sprint(labelsAny(labels)); gotLabels != want {
		c.mismatch("v2 %s | time_labels | : want %s, got %s", qs, want, gotLabels)
	}
	for i, l := range labels {
		bq := q
		bq.from, bq.to, bq.wholeFrom, bq.wholeTo = from[i], to[i], p.from, p.to
		want := c.m.aggregate(bq)
		if q.hasGoal() {
			want["conversion_rate"] = v2Round(100*v2Ratio(want["visitors"], c.m.aggregate(bq.withoutGoals())["visitors"]), 1)
		}
		got, ok := rows[l]
		delete(rows, l)
		empty := want["visitors"] == 0 && want["visits"] == 0 && want["pageviews"] == 0 && want["events"] == 0
		c.count()
		switch {
		case empty && ok:
			c.mismatch("v2 %s | (row) | %s: a bucket without data answered: %v", qs, l, got)
			continue
		case empty:
			continue
		case !ok:
			c.mismatch("v2 %s | (row) | %s: no row (want %v)", qs, l, want)
			continue
		}
		withheld := v2Withheld(fs, want)
		for j, mt := range metrics {
			var w *float64
			if !withheld {
				x := want[mt]
				w = &x
			}
			c.cmp(qs, mt, l, w, v2At(got, j))
		}
	}
	for l, r := range rows {
		c.count()
		c.mismatch("v2 %s | (row) | %s: unexpected row %v", qs, l, r)
	}
}

func labelsAny(ls []string) []any {
	var out []any
	for i, l := range ls {
		if i == 0 || ls[i-1] != l {
			out = append(out, l)
		}
	}
	return out
}

// fold splits model rows at k: those shown, and the visitors of the
// folded.
func v2Fold(rows []*v2Row) (shown []*v2Row, other map[string]bool, folded int) {
	other = map[string]bool{}
	for _, r := range rows {
		if len(r.visitors) < orK {
			folded++
			for v := range r.visitors {
				other[v] = true
			}
			continue
		}
		shown = append(shown, r)
	}
	return shown, other, folded
}

// breakdown checks a breakdown by dims: every row at or above k with its
// metrics, no row under k, (other) with the folded rows' visitors.
func (c *v2Checker) breakdown(site string, p v2Period, dims []string, metrics []string, fs []v2F) {
	q := v2Q{site: site, from: p.from, to: p.to, filters: fs}
	rows := c.m.breakdown(q, dims, p.orPeriod)
	shown, other, folded := v2Fold(rows)
	c.folded += folded
	total := c.m.aggregate(q)["visitors"]
	noGoal := c.m.aggregate(q.withoutGoals())["visitors"]
	totalWithheld := orWithheld(len(fs) > 0, total)
	noGoalWithheld := orWithheld(len(fs) > 0, noGoal)
	got, _, qs := c.ask(c.query(site, p, metrics, dims, fs))
	if got == nil {
		return
	}
	for _, r := range shown {
		k := strings.Join(r.dims, "\x00")
		g, ok := got[k]
		delete(got, k)
		if !ok {
			c.count()
			c.mismatch("v2 %s | (row) | %q: no row (want %v)", qs, r.dims, r.metrics)
			continue
		}
		for i, mt := range metrics {
			var w *float64
			x, known := r.metrics[mt]
			switch mt {
			case "percentage":
				x, known = v2Round(100*v2Ratio(r.metrics["visitors"], total), 2), !totalWithheld
			case "conversion_rate":
				x, known = v2Round(100*v2Ratio(r.metrics["visitors"], noGoal), 2), !noGoalWithheld
			case "group_conversion_rate":
				x, known = c.groupConversion(q, dims, p.orPeriod, r)
			case "visit_duration":
				known = known && r.metrics["visits"] > 0
			}
			if known {
				w = &x
			}
			c.cmp(qs, mt, k, w, v2At(g, i))
		}
	}
	otherKey := strings.Repeat("(other)\x00", len(dims))
	otherKey = otherKey[:len(otherKey)-1]
	if g, ok := got[otherKey]; ok || len(other) >= orK {
		delete(got, otherKey)
		c.count()
		x := float64(len(other))
		switch {
		case !ok:
			c.mismatch("v2 %s | (other) | : no row (want %v visitors)", qs, x)
		case len(other) < orK:
			c.mismatch("v2 %s | (other) | : a row of %v visitors under k (model %v)", qs, g, x)
		default:
			c.cmp(qs, "visitors", "(other)", &x, v2At(g, 0))
		}
	}
	for k, g := range got {
		c.count()
		n := 0.0
		for _, r := range rows {
			if strings.Join(r.dims, "\x00") == k {
				n = float64(len(r.visitors))
			}
		}
		if n > 0 && n < orK {
			c.mismatch("v2 %s | (k) | %q: a row of %v visitors (under k) shown: %v", qs, k, n, g)
		} else {
			c.mismatch("v2 %s | (row) | %q: unexpected row %v", qs, k, g)
		}
	}
}

// groupConversion: the row's visitors over those of its group without
// goal filters (one decimal, the engine's conversion_rate); known false
// when not modelled.
func (c *v2Checker) groupConversion(q v2Q, dims []string, p orPeriod, r *v2Row) (float64, bool) {
	if len(dims) != 1 {
		return 0, false
	}
	if dims[0] == "event:goal" {
		all := c.m.aggregate(q.withoutGoals())["visitors"]
		return v2Round(100*v2Ratio(r.metrics["visitors"], all), 1), !orWithheld(len(q.filters) > 0, all)
	}
	if !strings.HasPrefix(dims[0], "visit:") {
		return 0, false
	}
	for _, g := range c.m.breakdown(q.withoutGoals(), dims, p) {
		if g.dims[0] == r.dims[0] {
			return v2Round(100*v2Ratio(r.metrics["visitors"], g.metrics["visitors"]), 1), true
		}
	}
	return 0, true
}

// compared checks the comparisons of a breakdown (dims) or of a time
// dimension alone (td) with mode previous_period: each row's metrics in
// the previous period (its row there, or 0 and null for a row folded or
// missing) and their change.
func (c *v2Checker) compared(site string, p v2Period, dims []string) {
	metrics := []string{"visitors", "visits", "pageviews", "bounce_rate", "visit_duration"}
	n := int(math.Round(p.to.Sub(p.from).Hours() / 24))
	pp := v2Period{orPeriod{from: p.from.AddDate(0, 0, -n), to: p.from}, nil}
	q, pq := v2Q{site: site, from: p.from, to: p.to}, v2Q{site: site, from: pp.from, to: pp.to}
	type keyed struct {
		key, old  string
		cur, prev map[string]float64
	}
	var want []keyed
	if iv := v2TimeIvs[dims[0]]; iv != "" {
		labels, from, to := orBuckets(p.orPeriod, iv)
		plabels, pfrom, pto := orBuckets(pp.orPeriod, iv)
		for i, l := range labels {
			bq := q
			bq.from, bq.to = from[i], to[i]
			cur := c.m.aggregate(bq)
			if cur["visitors"] == 0 && cur["visits"] == 0 && cur["events"] == 0 {
				continue
			}
			k := keyed{key: l, cur: cur}
			if i < len(plabels) {
				bq.from, bq.to = pfrom[i], pto[i]
				k.old = plabels[i]
				if prev := c.m.aggregate(bq); prev["visitors"] != 0 || prev["visits"] != 0 || prev["events"] != 0 {
					k.prev = prev
				}
			}
			want = append(want, k)
		}
	} else {
		shown, _, _ := v2Fold(c.m.breakdown(q, dims, p.orPeriod))
		pshown, _, _ := v2Fold(c.m.breakdown(pq, dims, pp.orPeriod))
		for _, r := range shown {
			k := keyed{key: strings.Join(r.dims, "\x00"), cur: r.metrics}
			k.old = k.key
			for _, o := range pshown {
				if strings.Join(o.dims, "\x00") == k.key {
					k.prev = o.metrics
				}
			}
			want = append(want, k)
		}
	}
	body := c.query(site, p, metrics, dims, nil)
	body["include"] = map[string]any{"comparisons": map[string]any{"mode": "previous_period"}}
	code, out, qs := c.post(body)
	if code != 200 {
		c.count()
		c.mismatch("v2 %s | (status) | : %d %v", qs, code, out)
		return
	}
	got := map[string]map[string]any{}
	for _, x := range out["results"].([]any) {
		r := x.(map[string]any)
		var ks []string
		for _, d := range r["dimensions"].([]any) {
			ks = append(ks, fmt.Sprint(d))
		}
		got[strings.Join(ks, "\x00")] = r
	}
	for _, w := range want {
		r, ok := got[w.key]
		if !ok {
			c.count()
			c.mismatch("v2 %s | (row) | %q: no row", qs, w.key)
			continue
		}
		cmp, _ := r["comparison"].(map[string]any)
		var cd []string
		cds, _ := cmp["dimensions"].([]any)
		for _, d := range cds {
			cd = append(cd, fmt.Sprint(d))
		}
		c.count()
		if strings.Join(cd, "\x00") != w.old {
			c.mismatch("v2 %s | comparison dimensions | %q: want %q, got %q", qs, w.key, w.old, cd)
		}
		cm, _ := cmp["metrics"].([]any)
		ch, _ := cmp["change"].([]any)
		prev := w.prev
		if prev == nil {
			prev = map[string]float64{}
		}
		for i, mt := range metrics {
			var x *float64
			if w.prev != nil || mt != "visit_duration" {
				v := prev[mt]
				x = &v
			}
			c.cmp(qs, mt+" (comparison)", w.key, x, v2At(cm, i))
			x = nil
			if w.prev != nil || mt != "visit_duration" {
				if v, ok := v2Change(mt, prev, w.cur); ok {
					x = &v
				}
			}
			c.cmp(qs, mt+" change", w.key, x, v2At(ch, i))
		}
	}
}

// resolved checks that the dimension "time" resolves to the bucket the
// range suggests (hours for a day, days up to 40 days), in the query
// echo, its order_by and the rows' labels.
func (c *v2Checker) resolved(site string, p v2Period, want string) {
	body := c.query(site, p, []string{"visitors"}, []string{"time"}, nil)
	body["order_by"] = [][]string{{"time", "desc"}}
	code, out, qs := c.post(body)
	c.count()
	if code != 200 {
		c.mismatch("v2 %s | (status) | : %d %v", qs, code, out)
		return
	}
	echo, _ := out["query"].(map[string]any)
	if got := fmt.Sprint(echo["dimensions"], echo["order_by"]); got != fmt.Sprintf("[%s] [[%s desc]]", want, want) {
		c.mismatch("v2 %s | (time) | : want %s, got %s", qs, want, got)
	}
	labels, _, _ := orBuckets(p.orPeriod, v2TimeIvs[want])
	c.count()
	var got []string
	for _, x := range out["results"].([]any) {
		got = append(got, fmt.Sprint(x.(map[string]any)["dimensions"].([]any)[0]))
	}
	if !slices.IsSortedFunc(got, func(a, b string) int { return strings.Compare(b, a) }) || len(got) == 0 || !slices.Contains(labels, got[0]) {
		c.mismatch("v2 %s | (time) | : rows %q, not labels of %s descending", qs, got, want)
	}
}

// order checks order_by, pagination and total_rows of a breakdown by
// dim: the rows over k in the order asked, page by page.
func (c *v2Checker) order(site string, p v2Period, dim string, limit int) {
	q := v2Q{site: site, from: p.from, to: p.to}
	shown, other, _ := v2Fold(c.m.breakdown(q, []string{dim}, p.orPeriod))
	for _, asc := range []bool{true, false} {
		dir := "desc"
		if asc {
			dir = "asc"
		}
		want := slices.Clone(shown)
		sort.SliceStable(want, func(i, j int) bool {
			a, b := want[i].metrics["visitors"], want[j].metrics["visitors"]
			if a != b {
				return (a < b) == asc
			}
			return want[i].dims[0] < want[j].dims[0]
		})
		var wantKeys []string
		for _, r := range want {
			wantKeys = append(wantKeys, r.dims[0])
		}
		if len(other) >= orK {
			wantKeys = append(wantKeys, "(other)")
		}
		var gotKeys []string
		for off := 0; off < len(wantKeys)+limit; off += limit {
			body := c.query(site, p, []string{"visitors"}, []string{dim}, nil)
			body["order_by"] = [][]string{{"visitors", dir}, {dim, "asc"}}
			body["pagination"] = map[string]int{"limit": limit, "offset": off}
			body["include"] = map[string]bool{"total_rows": true}
			code, out, qs := c.post(body)
			if code != 200 {
				c.count()
				c.mismatch("v2 %s | (status) | : %d %v", qs, code, out)
				return
			}
			meta, _ := out["meta"].(map[string]any)
			n := float64(len(wantKeys))
			c.cmp(qs, "total_rows", "", &n, meta["total_rows"])
			list, _ := out["results"].([]any)
			if len(list) > limit {
				c.count()
				c.mismatch("v2 %s | (rows) | : %d rows over the limit", qs, len(list))
			}
			for _, x := range list {
				ds := x.(map[string]any)["dimensions"].([]any)
				gotKeys = append(gotKeys, fmt.Sprint(ds[0]))
			}
		}
		c.count()
		if !slices.Equal(gotKeys, wantKeys) {
			c.mismatch("v2 order %s %v by visitors %s, limit %d | (order) | : want %q, got %q", site, p.dateRange, dir, limit, wantKeys, gotKeys)
		}
	}
	// By the dimension, descending.
	want := slices.Clone(shown)
	sort.Slice(want, func(i, j int) bool { return want[i].dims[0] > want[j].dims[0] })
	var wantKeys []string
	for _, r := range want {
		wantKeys = append(wantKeys, r.dims[0])
	}
	if len(other) >= orK {
		wantKeys = append(wantKeys, "(other)")
	}
	body := c.query(site, p, []string{"visitors"}, []string{dim}, nil)
	body["order_by"] = [][]string{{dim, "desc"}}
	rows, out, qs := c.ask(body)
	if rows == nil {
		return
	}
	var gotKeys []string
	for _, x := range out["results"].([]any) {
		gotKeys = append(gotKeys, fmt.Sprint(x.(map[string]any)["dimensions"].([]any)[0]))
	}
	c.count()
	if !slices.Equal(gotKeys, wantKeys) {
		c.mismatch("v2 %s | (order) | : want %q, got %q", qs, wantKeys, gotKeys)
	}
}

// v2TestFilters are the filters of the aggregates.
var v2TestFilters = [][]v2F{
	nil,
	{v2Leaf("is", "visit:country", "DE")},
	{v2Leaf("is_not", "visit:country", "DE")},
	{{op: "contains", dim: "visit:browser", vals: []string{"fire"}, fold: true}},
	{v2Leaf("contains_not", "visit:source", "oog")},
	{v2Leaf("matches", "event:page", "^/blog/")},
	{v2Leaf("matches_not", "event:page", "^/docs")},
	{v2Leaf("matches", "visit:entry_page", "^/(pricing|docs)")},
	{{op: "is", dim: "event:page", vals: []string{"/PRICING"}, fold: true}},
	{v2Leaf("contains", "event:page", "blog", "docs")},
	{v2Leaf("is", "event:goal", "Signup")},
	{v2Leaf("is", "event:goal", "Signup", "Visit /pricing"), v2Leaf("is", "visit:country", "US")},
	{v2Leaf("is", "event:props:plan", "pro")},
	{{op: "or", sub: []v2F{v2Leaf("is", "event:page", "/pricing"), v2Leaf("is", "visit:country", "DE")}}},
	{{op: "and", sub: []v2F{v2Leaf("contains", "event:page", "blog"), {op: "not", sub: []v2F{v2Leaf("is", "visit:source", "Google")}}}}},
	{{op: "not", sub: []v2F{{op: "or", sub: []v2F{v2Leaf("is", "visit:country", "US"), v2Leaf("matches", "event:page", "^/docs")}}}}},
	{{op: "has_done", sub: []v2F{v2Leaf("is", "event:goal", "Signup")}}},
	{{op: "has_not_done", sub: []v2F{v2Leaf("is", "event:page", "/pricing")}}},
	{{op: "has_done", sub: []v2F{v2Leaf("is", "event:goal", "Purchase")}}, v2Leaf("is", "visit:device", "Desktop")},
	{{op: "or", sub: []v2F{{op: "has_done", sub: []v2F{v2Leaf("is", "event:page", "/docs/api")}}, v2Leaf("is", "visit:channel", "Organic Search")}}},
	{v2Leaf("is", "visit:country", "US"), {op: "or", sub: []v2F{v2Leaf("is", "event:page", "/"), v2Leaf("is", "visit:screen", "Desktop")}}},
	{v2Leaf("is", "visit:country", "FR"), {op: "or", sub: []v2F{v2Leaf("is", "event:page", "/pricing"), v2Leaf("is", "visit:country", "DE")}}},
	{v2Leaf("matches", "event:page", "^/(blog|pricing)"), {op: "or", sub: []v2F{v2Leaf("is", "event:page", "/pricing"), v2Leaf("is", "visit:country", "DE")}}},
}

// TestOracleV2: see the top of the file.
// newV2Model replays evs into sessions and returns the model of both
// oracles (v2Model embeds v1's orModel).
func newV2Model(evs []*orEvent) *v2Model {
	om := &orModel{sessions: orReplay(evs)}
	m := &v2Model{orModel: om, bySess: map[*orSession][]*orEvent{}}
	for _, e := range evs {
		switch {
		case e.email():
			om.emails = append(om.emails, e)
		case e.stored():
			om.events = append(om.events, e)
			if e.sess != nil {
				m.bySess[e.sess] = append(m.bySess[e.sess], e)
			}
		}
	}
	return m
}

func TestOracleV2(t *testing.T) {
	start := time.Now()
	sites := orSites(t)
	evs := orGenerate()
	m := newV2Model(evs)
	db := chtest.Migrated(t)
	orSend(t, db, sites, evs)
	t.Logf("sent %d events (%d stored, %d sessions) in %v", len(evs), len(m.orModel.events), len(m.orModel.sessions), time.Since(start).Round(time.Millisecond))
	engine := aggregator.New(aggregator.Options{Conn: db.Conn})
	a, err := api.New(api.Options{Engine: engine, Sites: sites, RateLimit: 1 << 30, Now: func() time.Time { return orNow }})
	if err != nil {
		t.Fatal(err)
	}
	siteList := []string{orSiteUTC, orSiteNY}
	checkers := make([]*v2Checker, len(siteList))
	var wg sync.WaitGroup
	for i, site := range siteList {
		c := &v2Checker{orChecker: &orChecker{t: t, routes: a.Routes()}, m: m}
		checkers[i] = c
		wg.Add(1)
		go func() {
			defer wg.Done()
			loc, _ := time.LoadLocation(sites.Site(site).Timezone)
			c.run(site, loc)
		}()
	}
	wg.Wait()
	c := &orChecker{t: t}
	for _, sc := range checkers {
		c.merge(sc.orChecker)
	}
	t.Logf("oracle v2: %d values checked (%d expected withheld, %d rows folded) over %d requests, %d mismatches, in %v",
		c.compared, c.withheld, c.folded, c.requests, len(c.bad), time.Since(start).Round(time.Millisecond))
	summary := map[string]int{}
	for _, b := range c.bad {
		k := "?"
		if f := strings.Split(b, " | "); len(f) > 1 {
			k = f[1]
		}
		summary[k]++
	}
	for _, k := range orKeys(summary) {
		t.Logf("mismatches: %4d %s", summary[k], k)
	}
	for _, b := range c.bad {
		t.Error(b)
	}
}

// run asks every question of one site.
func (c *v2Checker) run(site string, loc *time.Location) {
	visitProps := []string{"visit:source", "visit:referrer", "visit:utm_source", "visit:utm_medium", "visit:utm_campaign",
		"visit:country", "visit:browser", "visit:os", "visit:device", "visit:screen", "visit:entry_page", "visit:exit_page", "visit:channel"}
	visitMetrics := []string{"visitors", "visits", "pageviews", "events", "bounce_rate", "visit_duration", "percentage"}
	goalSignup := []v2F{v2Leaf("is", "event:goal", "Signup")}
	for pi, p := range v2Periods(loc) {
		for _, fs := range v2TestFilters {
			c.aggregate(site, p, fs, "")
		}
		for _, fs := range [][]v2F{nil, {v2Leaf("is", "visit:country", "DE")}, goalSignup} {
			c.aggregate(site, p, fs, "previous_period")
			c.aggregate(site, p, fs, "year_over_year")
		}
		var tdims []string
		switch {
		case p.day():
			tdims = []string{"time:hour"}
		case p.dateRange == "month":
			tdims = []string{"time:day", "time:week", "time:month"}
		default:
			tdims = []string{"time:day", "time:week"}
		}
		for _, td := range tdims {
			for _, fs := range [][]v2F{nil, {v2Leaf("is", "visit:country", "DE")}, {v2Leaf("matches", "event:page", "^/blog")}, goalSignup,
				{{op: "or", sub: []v2F{v2Leaf("is", "event:page", "/pricing"), v2Leaf("is", "visit:country", "DE")}}},
				{{op: "has_not_done", sub: []v2F{v2Leaf("is", "event:goal", "Signup")}}}} {
				c.timeseries(site, p, td, fs)
			}
		}
		if pi > 2 {
			continue // breakdowns over three periods
		}
		for _, fs := range [][]v2F{nil, {v2Leaf("is", "visit:country", "US")}, goalSignup,
			{{op: "or", sub: []v2F{v2Leaf("is", "event:page", "/pricing"), v2Leaf("is", "visit:country", "DE")}}},
			{{op: "has_done", sub: []v2F{v2Leaf("is", "event:goal", "Signup")}}},
			{{op: "contains", dim: "event:page", vals: []string{"BLOG"}, fold: true}},
			{v2Leaf("matches", "event:page", "^/(blog|pricing)"), {op: "or", sub: []v2F{v2Leaf("is", "event:page", "/pricing"), v2Leaf("is", "visit:country", "DE")}}}} {
			for _, prop := range visitProps {
				ms := visitMetrics
				if len(fs) == 1 && fs[0].isGoal() {
					ms = append(slices.Clone(ms), "conversion_rate", "group_conversion_rate")
				}
				c.breakdown(site, p, []string{prop}, ms, fs)
			}
			c.breakdown(site, p, []string{"event:page"}, []string{"visitors", "pageviews", "percentage"}, fs)
			c.breakdown(site, p, []string{"event:goal"}, []string{"visitors", "events", "percentage", "conversion_rate", "group_conversion_rate"}, fs)
			c.breakdown(site, p, []string{"event:props:plan"}, []string{"visitors", "events", "percentage"}, fs)
			c.breakdown(site, p, []string{"event:props:url"}, []string{"visitors", "events", "percentage"}, fs)
			c.breakdown(site, p, []string{"event:hostname"}, []string{"visitors", "events"}, fs)
			c.breakdown(site, p, []string{"visit:source", "visit:country"}, []string{"visitors", "visits", "pageviews", "bounce_rate", "visit_duration", "percentage"}, fs)
			c.breakdown(site, p, []string{"visit:device", "visit:channel", "visit:entry_page"}, []string{"visitors", "visits", "percentage"}, fs)
			c.breakdown(site, p, []string{"event:page", "visit:source"}, []string{"visitors", "pageviews", "percentage"}, fs)
			c.breakdown(site, p, []string{"event:goal", "visit:source"}, []string{"visitors", "events", "conversion_rate"}, fs)
			c.breakdown(site, p, []string{"time:day", "visit:country"}, []string{"visitors", "visits", "pageviews", "percentage"}, fs)
			c.breakdown(site, p, []string{"visit:device", "time:week"}, []string{"visitors", "visits", "bounce_rate"}, fs)
			c.breakdown(site, p, []string{"time:day", "event:goal"}, []string{"visitors", "events", "conversion_rate"}, fs)
			c.breakdown(site, p, []string{"event:goal", "visit:country", "visit:source"}, []string{"visitors", "events"}, fs)
		}
		for _, dim := range []string{"visit:source", "visit:entry_page", "event:page"} {
			c.order(site, p, dim, 2)
		}
		c.resolved(site, p, tdims[0])
		c.compared(site, p, []string{"visit:source"})
		c.compared(site, p, []string{"visit:country", "visit:device"})
		c.compared(site, p, []string{tdims[0]})
	}
}
