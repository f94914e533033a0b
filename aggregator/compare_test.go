package aggregator_test

import (
	"context"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/glimpse-analytics/glimpse/aggregator"
	"github.com/glimpse-analytics/glimpse/collector/sink"
	"github.com/glimpse-analytics/glimpse/internal/chtest"
	"github.com/glimpse-analytics/glimpse/internal/config"
	"github.com/glimpse-analytics/glimpse/internal/model"
	"github.com/glimpse-analytics/glimpse/internal/storage/seed"
)

// Comparisons, checked against counts made here from the seeded visits.
// The site is in Europe/Berlin; the current week runs over the leap day
// (2024-02-26 to 2024-03-03), its year-over-year range is 2023-02-26 to
// 2023-03-03 (six days), and a custom range is the first week of 2024.

const cmpSite = "compare.example"

var cmpNow = time.Date(2024, 3, 10, 12, 0, 0, 0, time.UTC)

// cmpVisit is one visitor's visit: views page views of page on day (local
// date) at 10:00 local time.
type cmpVisit struct {
	id      uint64
	day     string
	page    string
	country string
	views   int
}

func cmpData(t *testing.T) (*chtest.DB, []cmpVisit) {
	t.Helper()
	var vs []cmpVisit
	id := uint64(5000)
	add := func(n int, day, page, country string, views int) {
		for range n {
			id++
			vs = append(vs, cmpVisit{id, day, page, country, views})
		}
	}
	cur := []string{"2024-02-26", "2024-02-27", "2024-02-28", "2024-02-29", "2024-03-01", "2024-03-02", "2024-03-03"}
	yoy := []string{"2023-02-26", "2023-02-27", "2023-02-28", "2023-03-01", "2023-03-02", "2023-03-03"}
	for i, d := range cur {
		add(5+i, d, "/", "DE", 1)
		add(2, d, "/a", "DE", 2)
	}
	add(4, "2024-02-29", "/rare", "DE", 1) // 1 visitor a year before: its comparison is withheld
	add(3, "2024-03-01", "/new", "DE", 1)  // none a year before: comparison 0, change 100
	for _, p := range []string{"/x1", "/x2", "/x3"} {
		add(1, "2024-03-02", p, "FR", 1) // folded into (other); 3 FR visitors
	}
	for i, d := range yoy {
		add(3+2*i, d, "/", "DE", 1)
		add(i%3, d, "/a", "DE", 1)
	}
	add(1, "2023-02-28", "/rare", "DE", 2)
	add(4, "2023-03-02", "/x1", "DE", 1) // the folded keys' comparison
	add(2, "2023-03-01", "/", "FR", 1)   // 2 FR visitors: a withheld comparison under country==FR
	add(1, "2023-02-25", "/", "DE", 1)   // outside every range
	add(1, "2023-03-04", "/", "DE", 1)
	for _, d := range []string{"2024-01-01", "2024-01-03", "2024-01-07"} {
		add(4, d, "/", "DE", 1)
		add(3, d, "/new", "DE", 2)
	}

	db := chtest.Migrated(t)
	w := sink.New(sink.Options{Conn: db.Conn, BatchSize: 1000, Interval: 50 * time.Millisecond, SessionInterval: 50 * time.Millisecond})
	sessions := new(seed.SessionBuffer)
	w.WriteSessions(sessions)
	berlin, _ := time.LoadLocation("Europe/Berlin")
	ctx := context.Background()
	for _, v := range vs {
		d, err := time.ParseInLocation(time.DateOnly, v.day, berlin)
		if err != nil {
			t.Fatal(err)
		}
		ts := d.Add(10 * time.Hour)
		sid := v.id ^ 0x5e55
		for j := range v.views {
			e := w.NewEvent()
			e.SiteID, e.EventID, e.TS, e.Type = cmpSite, uuid.New(), ts.Add(time.Duration(j)*time.Minute), model.TypePageview
			e.VisitorID, e.SessionID = v.id, sid
			e.Hostname = append(e.Hostname, cmpSite...)
			e.Pathname = append(e.Pathname, v.page...)
			e.CountryCode, e.Browser, e.OS, e.Device = v.country, "Firefox", "GNU/Linux", model.DeviceDesktop
			e.Interactive = 1
			if err := w.EnqueueWait(ctx, e); err != nil {
				t.Fatal(err)
			}
		}
		attrs := model.Attrs{Country: v.country, Browser: "Firefox", OS: "GNU/Linux", Device: model.DeviceDesktop}
		s := model.Session{ID: sid, VisitorID: v.id, Site: cmpSite, Start: ts, LastSeen: ts.Add(time.Duration(v.views-1) * time.Minute), Version: 1,
			Pageviews: uint32(v.views), Events: uint32(v.views), Bounce: v.views == 1, EntryPage: v.page, ExitPage: v.page, Attrs: &attrs}
		if err := sessions.Add(ctx, model.Session{}, s, false); err != nil {
			t.Fatal(err)
		}
	}
	if lost, err := w.Close(ctx); err != nil || lost != 0 {
		t.Fatalf("writing the comparison data: %d lost, %v", lost, err)
	}
	return db, vs
}

func cmpSites(t *testing.T, aggregates string) *config.File {
	t.Helper()
	f, err := config.Parse("compare.yaml", []byte(fmt.Sprintf(`sites:
  - domain: %s
    timezone: Europe/Berlin
    privacy: {aggregates: %s, k_anonymity: 3, epsilon: 1, budget: 100000, noise_key: "compare-noise-key-0123456789abcdef"}
`, cmpSite, aggregates)))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// count is the visitors and page views of the visits on days [from, to]
// (YYYY-MM-DD) that keep says to keep.
func count(vs []cmpVisit, from, to string, keep func(cmpVisit) bool) (visitors, pageviews int) {
	for _, v := range vs {
		if v.day >= from && v.day <= to && (keep == nil || keep(v)) {
			visitors++
			pageviews += v.views
		}
	}
	return visitors, pageviews
}

// pctChange is Plausible's change rule as the README states it.
func pctChange(cur, prev int) int64 {
	if prev == 0 {
		if cur > 0 {
			return 100
		}
		return 0
	}
	return int64(math.Round(float64(cur-prev) / float64(prev) * 100))
}

type cmpAsker struct {
	t      *testing.T
	e      *aggregator.Engine
	site   *config.Site
	reader string
}

func (a cmpAsker) ask(kind aggregator.Kind, params string) *aggregator.Response {
	a.t.Helper()
	r, err := a.try(kind, params)
	if err != nil {
		a.t.Fatalf("%s: %v", params, err)
	}
	return r
}

func (a cmpAsker) try(kind aggregator.Kind, params string) (*aggregator.Response, error) {
	a.t.Helper()
	v := map[string]string{"period": "7d", "date": "2024-03-03"}
	for _, kv := range strings.Split(params, "&") {
		if k, val, ok := strings.Cut(kv, "="); ok {
			v[k] = val
		}
	}
	q, err := aggregator.ParseQuery(kind, a.site, func(k string) string { return v[k] }, cmpNow)
	if err != nil {
		a.t.Fatalf("%s: %v", params, err)
	}
	q.Reader = a.reader
	ctx := context.Background()
	switch kind {
	case aggregator.KindAggregate:
		return a.e.Aggregate(ctx, q)
	case aggregator.KindTimeseries:
		return a.e.Timeseries(ctx, q)
	}
	return a.e.Breakdown(ctx, q)
}

func TestCompare(t *testing.T) {
	db, vs := cmpData(t)
	exact := cmpAsker{t, aggregator.New(aggregator.Options{Conn: db.Conn}), cmpSites(t, config.AggregatesExact).Site(cmpSite), "reader"}
	page := func(p string) func(cmpVisit) bool { return func(v cmpVisit) bool { return v.page == p } }

	t.Run("aggregate", func(t *testing.T) {
		for _, c := range []struct{ params, from, to string }{
			{"compare=year_over_year", "2023-02-26", "2023-03-03"},
			{"compare=previous_period", "2024-02-19", "2024-02-25"},
			{"compare=custom&compare_date=2024-01-01,2024-01-07", "2024-01-01", "2024-01-07"},
			{"compare=custom&compare_date=2023-02-28,2023-03-02", "2023-02-28", "2023-03-02"},
		} {
			r := exact.ask(aggregator.KindAggregate, "metrics=visitors,pageviews,bounce_rate&"+c.params)
			res := r.Results.(map[string]any)
			cv, cp := count(vs, "2024-02-26", "2024-03-03", nil)
			pv, pp := count(vs, c.from, c.to, nil)
			for m, w := range map[string][2]int{"visitors": {cv, pv}, "pageviews": {cp, pp}} {
				o := res[m].(map[string]any)
				if o["value"] != int64(w[0]) || o["comparison_value"] != int64(w[1]) || o["change"] != pctChange(w[0], w[1]) {
					t.Errorf("%s %s: %v, want value %d, comparison %d, change %d", c.params, m, o, w[0], w[1], pctChange(w[0], w[1]))
				}
			}
			if mc := r.Meta.Comparison; mc == nil || mc.DateRange != [2]string{c.from, c.to} {
				t.Errorf("%s: meta.comparison %+v, want %s to %s", c.params, mc, c.from, c.to)
			}
		}
	})

	t.Run("withheld under filters", func(t *testing.T) {
		fr := func(v cmpVisit) bool { return v.country == "FR" }
		cur, _ := count(vs, "2024-02-26", "2024-03-03", fr)
		prev, _ := count(vs, "2023-02-26", "2023-03-03", fr)
		if cur < 3 || prev == 0 || prev >= 3 {
			t.Fatalf("the data: %d and %d FR visitors, want at least k now and 1 to k-1 a year before", cur, prev)
		}
		o := exact.ask(aggregator.KindAggregate, "metrics=visitors&compare=year_over_year&filters=visit:country==FR").Results.(map[string]any)["visitors"].(map[string]any)
		if o["value"] != int64(cur) || o["comparison_value"] != nil || o["change"] != nil || o["comparison_withheld"] == nil {
			t.Errorf("FR visitors: %v, want %d and a withheld comparison", o, cur)
		}
		// The other way round: the current value withheld, the comparison not.
		o = exact.ask(aggregator.KindAggregate, "period=day&date=2023-03-01&metrics=visitors&compare=custom&compare_date=2024-03-02,2024-03-02&filters=visit:country==FR").Results.(map[string]any)["visitors"].(map[string]any)
		if o["value"] != nil || o["withheld"] == nil || o["comparison_value"] != int64(cur) || o["change"] != nil {
			t.Errorf("FR on 2023-03-01 against 2024-03-02: %v, want withheld against %d, no change", o, cur)
		}
		ts := exact.ask(aggregator.KindTimeseries, "metrics=visitors&compare=year_over_year&filters=visit:country==FR").Results.([]map[string]any)
		// 2023-03-01 is the 4th day of the comparison range, aligned with 2024-02-29.
		c := ts[3]["comparison"].(map[string]any)
		if c["date"] != "2023-03-01" || c["visitors"] != nil || c["withheld"] == nil || ts[3]["change"].(map[string]any)["visitors"] != nil {
			t.Errorf("FR point of %v: comparison %v, change %v; want 2023-03-01 withheld", ts[3]["date"], c, ts[3]["change"])
		}
	})

	t.Run("timeseries over the leap day", func(t *testing.T) {
		r := exact.ask(aggregator.KindTimeseries, "metrics=visitors,pageviews&interval=date&compare=year_over_year")
		pts := r.Results.([]map[string]any)
		prevDays := []string{"2023-02-26", "2023-02-27", "2023-02-28", "2023-03-01", "2023-03-02", "2023-03-03"}
		if len(pts) != 7 {
			t.Fatalf("%d points, want 7", len(pts))
		}
		for i, pt := range pts {
			day := pt["date"].(string)
			cv, cp := count(vs, day, day, nil)
			if pt["visitors"] != int64(cv) || pt["pageviews"] != int64(cp) {
				t.Errorf("%s: %v visitors %v views, want %d %d", day, pt["visitors"], pt["pageviews"], cv, cp)
			}
			if i >= len(prevDays) {
				if pt["comparison"] != nil || pt["change"] != nil {
					t.Errorf("%s: comparison %v past the comparison's last day, want null", day, pt["comparison"])
				}
				continue
			}
			c := pt["comparison"].(map[string]any)
			pv, pp := count(vs, prevDays[i], prevDays[i], nil)
			if c["date"] != prevDays[i] || c["visitors"] != int64(pv) || c["pageviews"] != int64(pp) {
				t.Errorf("%s: comparison %v, want %s with %d visitors, %d views", day, c, prevDays[i], pv, pp)
			}
			if ch := pt["change"].(map[string]any); ch["visitors"] != pctChange(cv, pv) || ch["pageviews"] != pctChange(cp, pp) {
				t.Errorf("%s: change %v, want %d %d", day, ch, pctChange(cv, pv), pctChange(cp, pp))
			}
		}
		// A month: February 2024 (29 days) against February 2023 (28).
		m := exact.ask(aggregator.KindAggregate, "period=month&date=2024-02-29&metrics=visitors&compare=year_over_year")
		cv, _ := count(vs, "2024-02-01", "2024-02-29", nil)
		pv, _ := count(vs, "2023-02-01", "2023-02-28", nil)
		if o := m.Results.(map[string]any)["visitors"].(map[string]any); o["value"] != int64(cv) || o["comparison_value"] != int64(pv) {
			t.Errorf("February: %v, want %d against %d", o, cv, pv)
		}
		if mc := m.Meta.Comparison; mc.DateRange != [2]string{"2023-02-01", "2023-02-28"} {
			t.Errorf("February's comparison: %v", mc.DateRange)
		}
		// The leap day alone compares with February 28.
		d := exact.ask(aggregator.KindAggregate, "period=day&date=2024-02-29&metrics=visitors&compare=year_over_year")
		pv, _ = count(vs, "2023-02-28", "2023-02-28", nil)
		if o := d.Results.(map[string]any)["visitors"].(map[string]any); o["comparison_value"] != int64(pv) {
			t.Errorf("2024-02-29 against 2023-02-28: %v, want comparison %d", o, pv)
		}
	})

	t.Run("breakdown", func(t *testing.T) {
		for _, c := range []struct{ params, from, to string }{
			{"compare=year_over_year", "2023-02-26", "2023-03-03"},
			{"compare=custom&compare_date=2024-01-01,2024-01-07", "2024-01-01", "2024-01-07"},
		} {
			r := exact.ask(aggregator.KindBreakdown, "property=event:page&metrics=visitors,pageviews&"+c.params)
			rows := r.Results.([]map[string]any)
			seen := map[string]bool{}
			for _, row := range rows {
				key := row["page"].(string)
				seen[key] = true
				keep := page(key)
				if key == aggregator.Other {
					keep = func(v cmpVisit) bool { return strings.HasPrefix(v.page, "/x") } // the keys folded now
				}
				cv, cp := count(vs, "2024-02-26", "2024-03-03", keep)
				pv, pp := count(vs, c.from, c.to, keep)
				cmp := row["comparison"].(map[string]any)
				ch := row["change"].(map[string]any)
				if row["visitors"] != int64(cv) || row["pageviews"] != int64(cp) {
					t.Errorf("%s %s: %v, want %d visitors %d views", c.params, key, row, cv, cp)
				}
				if pv > 0 && pv < 3 {
					if cmp["visitors"] != nil || cmp["withheld"] == nil || ch["visitors"] != nil {
						t.Errorf("%s %s: comparison %v change %v, want withheld (%d visitors)", c.params, key, cmp, ch, pv)
					}
					continue
				}
				if cmp["visitors"] != int64(pv) || cmp["pageviews"] != int64(pp) || ch["visitors"] != pctChange(cv, pv) || ch["pageviews"] != pctChange(cp, pp) {
					t.Errorf("%s %s: comparison %v change %v, want %d visitors %d views", c.params, key, cmp, ch, pv, pp)
				}
			}
			for _, k := range []string{"/", "/a", "/rare", "/new", aggregator.Other} {
				if !seen[k] {
					t.Errorf("%s: no row %s in %v", c.params, k, rows)
				}
			}
		}
		// A breakdown by a visit property, from the sessions side.
		r := exact.ask(aggregator.KindBreakdown, "property=visit:country&metrics=visitors,bounce_rate&compare=year_over_year")
		for _, row := range r.Results.([]map[string]any) {
			if row["country"] == "DE" {
				de := func(v cmpVisit) bool { return v.country == "DE" }
				pv, _ := count(vs, "2023-02-26", "2023-03-03", de)
				if c := row["comparison"].(map[string]any); c["visitors"] != int64(pv) {
					t.Errorf("DE a year before: %v, want %d", c, pv)
				}
			}
		}
	})

	// Every special path of a breakdown (entry pages, engagement by
	// visit, conversion rates, email) and realtime answers a comparison,
	// exact and noisy, with a comparison and a change on every row.
	t.Run("every path", func(t *testing.T) {
		noisy := cmpAsker{t, aggregator.New(aggregator.Options{Conn: db.Conn}), cmpSites(t, config.AggregatesNoisy).Site(cmpSite), "paths"}
		for _, a := range []cmpAsker{exact, noisy} {
			for _, params := range []string{
				"property=event:page&metrics=visitors,visits,bounce_rate,visit_duration,time_on_page",
				"property=visit:country&metrics=visitors,time_on_page&filters=event:page==/",
				"property=event:goal&metrics=visitors,events,conversion_rate",
				"property=event:page&metrics=visitors,conversion_rate&filters=event:goal==Visit /a",
				"property=visit:country&metrics=visitors,conversion_rate&filters=event:goal==Visit /a",
				"property=visit:source&metrics=visitors,visits,bounce_rate,views_per_visit&filters=event:page==/a",
				"property=email:campaign&metrics=email_opens,click_through_rate",
				"property=event:page&metrics=visitors&period=realtime",
				"property=event:page&metrics=visitors&page=2&limit=2",
			} {
				for _, cmp := range []string{"compare=previous_period", "compare=year_over_year", "compare=custom&compare_date=2024-01-01,2024-01-07"} {
					r, err := a.try(aggregator.KindBreakdown, params+"&"+cmp)
					if err != nil {
						t.Errorf("%s %s&%s: %v", a.site.Privacy.Aggregates, params, cmp, err)
						continue
					}
					for _, row := range r.Results.([]map[string]any) {
						if _, ok := row["comparison"].(map[string]any); !ok {
							t.Errorf("%s %s&%s: row %v without a comparison", a.site.Privacy.Aggregates, params, cmp, row)
						}
					}
				}
			}
			for _, params := range []string{"period=realtime&metrics=visitors", "metrics=visitors,conversion_rate&filters=event:goal==Visit /a"} {
				if _, err := a.try(aggregator.KindAggregate, params+"&compare=year_over_year"); err != nil {
					t.Errorf("%s aggregate %s: %v", a.site.Privacy.Aggregates, params, err)
				}
			}
			if _, err := a.try(aggregator.KindTimeseries, "metrics=visitors,conversion_rate&filters=event:goal==Visit /a&interval=week&compare=previous_period"); err != nil {
				t.Errorf("%s time series of a conversion rate: %v", a.site.Privacy.Aggregates, err)
			}
		}
	})

	t.Run("noisy", func(t *testing.T) {
		b := aggregator.NewBudget(func() time.Time { return cmpNow }, nil, nil)
		noisy := cmpAsker{t, aggregator.New(aggregator.Options{Conn: db.Conn, Budget: b}), cmpSites(t, config.AggregatesNoisy).Site(cmpSite), "reader"}
		val := func(r *aggregator.Response, m, f string) any {
			return r.Results.(map[string]any)[m].(map[string]any)[f]
		}
		left := func(r *aggregator.Response) float64 { return *r.Meta.BudgetRemaining }

		// The current week alone, then with its comparison: the
		// comparison's cells are new and charged.
		before := noisy.ask(aggregator.KindAggregate, "metrics=visitors,pageviews")
		r := noisy.ask(aggregator.KindAggregate, "metrics=visitors,pageviews&compare=year_over_year")
		if spent := left(before) - left(r); spent != 2 {
			t.Errorf("the comparison cost %g epsilon, want 2 (two new cells)", spent)
		}
		if val(r, "visitors", "value") != val(before, "visitors", "value") {
			t.Errorf("the current value moved under compare: %v, then %v", val(before, "visitors", "value"), val(r, "visitors", "value"))
		}
		// The comparison is the very cell of the comparison range asked
		// directly: the same number, and nothing more to pay.
		direct := noisy.ask(aggregator.KindAggregate, "metrics=visitors,pageviews&period=custom&date=2023-02-26,2023-03-03")
		if val(direct, "visitors", "value") != val(r, "visitors", "comparison_value") || left(direct) != left(r) {
			t.Errorf("comparison %v (left %g), the range asked directly %v (left %g): want the same cell",
				val(r, "visitors", "comparison_value"), left(r), val(direct, "visitors", "value"), left(direct))
		}
		pv, _ := count(vs, "2023-02-26", "2023-03-03", nil)
		if got := number(val(r, "visitors", "comparison_value")); math.Abs(got-float64(pv)) > 20 {
			t.Errorf("noisy comparison %v, far from %d", got, pv)
		}
		if ch := val(r, "visitors", "change"); ch != pctChange(int(number(val(r, "visitors", "value"))), int(number(val(r, "visitors", "comparison_value")))) {
			t.Errorf("change %v does not follow the released numbers", ch)
		}

		// Time series: each comparison point is the bucket of the
		// comparison range's own series.
		ts := noisy.ask(aggregator.KindTimeseries, "metrics=visitors&interval=date&compare=year_over_year").Results.([]map[string]any)
		ownTS := noisy.ask(aggregator.KindTimeseries, "metrics=visitors&interval=date&period=custom&date=2023-02-26,2023-03-03").Results.([]map[string]any)
		for i := range ownTS {
			c := ts[i]["comparison"].(map[string]any)
			if c["date"] != ownTS[i]["date"] || c["visitors"] != ownTS[i]["visitors"] {
				t.Errorf("point %d: comparison %v, the range's own bucket %v", i, c, ownTS[i])
			}
		}

		// Breakdown: a row's comparison is that key's row over the
		// comparison range (the same cell: already paid by a reader who
		// asked that range); (other) is a cell of its own, charged.
		const cmpRange = "compare=custom&compare_date=2024-01-01,2024-01-07"
		carol := noisy
		carol.reader = "carol"
		alone := carol.ask(aggregator.KindBreakdown, "property=event:page&metrics=visitors")
		withCmp := carol.ask(aggregator.KindBreakdown, "property=event:page&metrics=visitors&"+cmpRange)
		cmpCost := left(alone) - left(withCmp)
		if cmpCost <= 1 {
			t.Errorf("a breakdown's comparison cost %g epsilon, want its rows and (other) charged", cmpCost)
		}
		bob := noisy
		bob.reader = "bob"
		own := bob.ask(aggregator.KindBreakdown, "property=event:page&metrics=visitors&period=custom&date=2024-01-01,2024-01-07")
		b1 := bob.ask(aggregator.KindBreakdown, "property=event:page&metrics=visitors&"+cmpRange)
		if spent, want := left(own)-left(b1), (100000-left(alone))+1; spent != want {
			t.Errorf("after the comparison range's own breakdown, the breakdown with its comparison cost %g, want %g: "+
				"the current breakdown and the folded keys' comparison only", spent, want)
		}
		rowOf := map[string]any{}
		for _, row := range own.Results.([]map[string]any) {
			rowOf[row["page"].(string)] = row["visitors"]
		}
		for _, row := range b1.Results.([]map[string]any) {
			key := row["page"].(string)
			c := row["comparison"].(map[string]any)
			if w, ok := rowOf[key]; ok && key != aggregator.Other && c["visitors"] != w {
				t.Errorf("%s: comparison %v, the range's own row %v", key, c["visitors"], w)
			}
			if key == "/new" && c["visitors"] == nil {
				t.Errorf("/new: comparison withheld, want about 9 visitors")
			}
			if key == "/rare" && c["visitors"] != nil {
				t.Errorf("/rare: comparison %v, want withheld (no visitor there: noisy under k)", c)
			}
		}
	})
}
