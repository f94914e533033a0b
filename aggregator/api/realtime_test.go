package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/valyala/fasthttp"

	"github.com/glimpse-analytics/glimpse/aggregator"
	"github.com/glimpse-analytics/glimpse/aggregator/api"
	"github.com/glimpse-analytics/glimpse/collector/sink"
	"github.com/glimpse-analytics/glimpse/internal/apptest"
	"github.com/glimpse-analytics/glimpse/internal/chtest"
	"github.com/glimpse-analytics/glimpse/internal/config"
	"github.com/glimpse-analytics/glimpse/internal/model"
	"github.com/glimpse-analytics/glimpse/internal/storage/seed"
)

// The realtime view's questions: period=30m, by the minute, over real
// ClickHouse, against counts made here from the events written.

const (
	rtSite    = "rt.example"  // exact
	rtNoisy   = "rtn.example" // the same traffic, noisy
	rtTZ      = "Asia/Kolkata"
	rtReaderK = "rt-key"
)

// rtNow is the moment of the first question: 40 s into a minute, so the
// 30m period is [17:38, 18:08) UTC and 18:07 is the current minute.
var rtNow = time.Date(2025, 6, 7, 18, 7, 40, 0, time.UTC)

type rtEvent struct {
	visitor uint64
	ts      time.Time
	page    string
	country string
	source  string
}

// rtTraffic is the events of both sites: for each minute m of the 30,
// a varying crowd of visitors drawn from 40 (so visitors come back in
// other minutes), one or two page views each; /rare gets one visitor in
// every fifth minute (under k) and three in minute 12; and some page
// views before the period, which must not count.
func rtTraffic() []rtEvent {
	from := rtNow.Truncate(time.Minute).Add(-29 * time.Minute)
	var out []rtEvent
	for m := 0; m < 30; m++ {
		n := (m*7)%9 + 1
		if m%4 == 0 {
			n += 5
		}
		for v := 0; v < n; v++ {
			id := uint64(1000 + (m*3+v)%40)
			ts := from.Add(time.Duration(m)*time.Minute + time.Duration(v*3+1)*time.Second)
			page := []string{"/", "/pricing", "/blog"}[v%3]
			if (m%5 == 0 && v == 0) || (m == 12 && v < 3) {
				page = "/rare"
			}
			country := []string{"IS", "DE", "FR", "NZ"}[id%4]
			if id == 1007 {
				country = "JP" // one visitor: under k
			}
			source := []string{"Google", "", "DuckDuckGo"}[id%3]
			for i := 0; i <= v%2; i++ {
				out = append(out, rtEvent{id, ts.Add(time.Duration(i) * time.Second), page, country, source})
			}
		}
	}
	for v := 0; v < 8; v++ { // before the period
		out = append(out, rtEvent{uint64(2000 + v), from.Add(-5 * time.Minute), "/", "IS", ""})
	}
	return out
}

// writeRT stores evs for site, with one session per visitor.
func writeRT(t *testing.T, db *chtest.DB, site string, evs []rtEvent) {
	t.Helper()
	ctx := context.Background()
	w := sink.New(sink.Options{Conn: db.Conn, BatchSize: 5000, Interval: 20 * time.Millisecond, SessionInterval: 20 * time.Millisecond})
	buf := new(seed.SessionBuffer)
	w.WriteSessions(buf)
	sessions := map[uint64]*model.Session{}
	var order []uint64
	for _, x := range evs {
		e := w.NewEvent()
		e.SiteID, e.EventID, e.TS, e.Type = site, uuid.New(), x.ts, model.TypePageview
		e.VisitorID, e.SessionID = x.visitor, x.visitor^0x5e55
		e.Hostname = append(e.Hostname, site...)
		e.Pathname = append(e.Pathname, x.page...)
		e.ReferrerSource, e.CountryCode, e.Interactive = x.source, x.country, 1
		e.IPPrefix = append(e.IPPrefix, "192.0.2.0/24"...)
		if err := w.EnqueueWait(ctx, e); err != nil {
			t.Fatal(err)
		}
		s := sessions[x.visitor]
		if s == nil {
			s = &model.Session{ID: x.visitor ^ 0x5e55, VisitorID: x.visitor, Site: site, Start: x.ts, Version: 1, Bounce: true, EntryPage: x.page,
				Attrs: &model.Attrs{Source: x.source, Country: x.country}}
			sessions[x.visitor] = s
			order = append(order, x.visitor)
		} else {
			s.Bounce = false
		}
		if x.ts.After(s.LastSeen) {
			s.LastSeen, s.ExitPage = x.ts, x.page
		}
		s.Pageviews++
		s.Events++
		s.DurationSec = uint32(s.LastSeen.Sub(s.Start) / time.Second)
	}
	for _, id := range order {
		if err := buf.Add(ctx, model.Session{}, *sessions[id], false); err != nil {
			t.Fatal(err)
		}
	}
	if lost, err := w.Close(ctx); err != nil || lost != 0 {
		t.Fatalf("%d lost, %v", lost, err)
	}
}

// rtAPI serves the v1 API at a settable clock.
type rtAPI struct {
	t   *testing.T
	a   *api.API
	now *time.Time
}

func (r rtAPI) get(path string, v url.Values) (map[string]any, int) {
	r.t.Helper()
	var rc fasthttp.RequestCtx
	rc.Request.SetRequestURI(path + "?" + v.Encode())
	rc.Request.Header.Set("Authorization", "Bearer "+rtReaderK)
	r.a.Routes()[path](&rc)
	var out map[string]any
	if err := json.Unmarshal(rc.Response.Body(), &out); err != nil {
		r.t.Fatalf("%s %v: %d %s", path, v, rc.Response.StatusCode(), rc.Response.Body())
	}
	return out, rc.Response.StatusCode()
}

func (r rtAPI) ok(path string, v url.Values) map[string]any {
	r.t.Helper()
	out, code := r.get(path, v)
	if code != 200 {
		r.t.Fatalf("%s %v: %d %v", path, v, code, out)
	}
	return out
}

func TestRealtime30m(t *testing.T) {
	db := chtest.Migrated(t)
	evs := rtTraffic()
	writeRT(t, db, rtSite, evs)
	writeRT(t, db, rtNoisy, evs)
	f, err := config.Parse("rt.yaml", []byte(`sites:
  - domain: `+rtSite+`
    timezone: `+rtTZ+`
    privacy: {k_anonymity: 3, aggregates: exact}
  - domain: `+rtNoisy+`
    timezone: `+rtTZ+`
    privacy: {k_anonymity: 3, aggregates: noisy, epsilon: 1, budget: 10000, noise_key: "0123456789abcdef0123456789abcdef"}
api_keys:
  - name: reader
    sha256: "`+apptest.KeyHash(rtReaderK)+`"
    sites: [`+rtSite+`, `+rtNoisy+`]
`))
	if err != nil {
		t.Fatal(err)
	}
	now := rtNow
	a, err := api.New(api.Options{
		Engine: aggregator.New(aggregator.Options{Conn: db.Conn, Budget: aggregator.NewBudget(func() time.Time { return now }, nil, nil)}),
		Sites:  f, Now: func() time.Time { return now },
	})
	if err != nil {
		t.Fatal(err)
	}
	c := rtAPI{t, a, &now}
	loc, _ := time.LoadLocation(rtTZ)

	// The independent count: per local minute label, the visitors and
	// page views; over the period, visitors by page and by country.
	from := rtNow.Truncate(time.Minute).Add(-29 * time.Minute)
	type cnt struct {
		who   map[uint64]bool
		views int
	}
	minutes := map[string]*cnt{}
	var labels []string
	for m := 0; m < 30; m++ {
		l := from.Add(time.Duration(m) * time.Minute).In(loc).Format("2006-01-02 15:04:00")
		labels = append(labels, l)
		minutes[l] = &cnt{who: map[uint64]bool{}}
	}
	all := map[uint64]bool{}
	rare := map[string]map[uint64]bool{}
	byPage := map[string]map[uint64]bool{}
	for _, e := range evs {
		if e.ts.Before(from) {
			continue
		}
		l := e.ts.Truncate(time.Minute).In(loc).Format("2006-01-02 15:04:00")
		minutes[l].who[e.visitor] = true
		minutes[l].views++
		all[e.visitor] = true
		if byPage[e.page] == nil {
			byPage[e.page] = map[uint64]bool{}
		}
		byPage[e.page][e.visitor] = true
		if e.page == "/rare" {
			if rare[l] == nil {
				rare[l] = map[uint64]bool{}
			}
			rare[l][e.visitor] = true
		}
	}

	t.Run("exact: minute buckets equal the count", func(t *testing.T) {
		for _, iv := range []string{"minute", ""} {
			res := c.ok(api.PathTimeseries, url.Values{"site_id": {rtSite}, "period": {"30m"}, "interval": {iv}, "metrics": {"visitors,pageviews"}})
			pts := res["results"].([]any)
			if len(pts) != 30 {
				t.Fatalf("interval %q: %d points, want 30", iv, len(pts))
			}
			for i, p := range pts {
				p := p.(map[string]any)
				want := minutes[labels[i]]
				if p["date"] != labels[i] || p["visitors"] != float64(len(want.who)) || p["pageviews"] != float64(want.views) {
					t.Errorf("point %d: %v, want %s with %d visitors, %d page views", i, p, labels[i], len(want.who), want.views)
				}
			}
		}
		agg := c.ok(api.PathAggregate, url.Values{"site_id": {rtSite}, "period": {"30m"}, "metrics": {"visitors,pageviews"}})
		if v := agg["results"].(map[string]any)["visitors"].(map[string]any)["value"]; v != float64(len(all)) {
			t.Errorf("30m visitors %v, want %d", v, len(all))
		}
	})

	t.Run("exact: a filtered minute under k is withheld", func(t *testing.T) {
		res := c.ok(api.PathTimeseries, url.Values{"site_id": {rtSite}, "period": {"30m"}, "interval": {"minute"}, "metrics": {"visitors"}, "filters": {"event:page==/rare"}})
		withheld, shown := 0, 0
		for i, p := range res["results"].([]any) {
			p := p.(map[string]any)
			n := len(rare[labels[i]])
			switch {
			case n > 0 && n < 3:
				withheld++
				if p["visitors"] != nil || p["withheld"] == nil {
					t.Errorf("minute %s has %d /rare visitors (under k=3) but answers %v", labels[i], n, p)
				}
			default:
				if n >= 3 {
					shown++
				}
				if p["visitors"] != float64(n) {
					t.Errorf("minute %s: %v, want %d", labels[i], p, n)
				}
			}
		}
		if withheld < 3 || shown != 1 {
			t.Fatalf("the data must have minutes under k (%d) and one over it (%d)", withheld, shown)
		}
	})

	t.Run("exact: breakdowns fold rows under k", func(t *testing.T) {
		res := c.ok(api.PathBreakdown, url.Values{"site_id": {rtSite}, "period": {"30m"}, "property": {"event:page"}, "metrics": {"visitors"}})
		got := map[string]float64{}
		for _, r := range res["results"].([]any) {
			r := r.(map[string]any)
			got[r["page"].(string)] = r["visitors"].(float64)
		}
		for p, who := range byPage {
			if len(who) >= 3 && got[p] != float64(len(who)) {
				t.Errorf("page %s: %v, want %d", p, got[p], len(who))
			}
		}
		res = c.ok(api.PathBreakdown, url.Values{"site_id": {rtSite}, "period": {"30m"}, "property": {"visit:country"}, "metrics": {"visitors"}})
		var countries []string
		for _, r := range res["results"].([]any) {
			countries = append(countries, r.(map[string]any)["country"].(string))
		}
		if slices.Contains(countries, "JP") || res["meta"].(map[string]any)["folded_rows"] != 1.0 {
			t.Errorf("countries %v, meta %v: JP (one visitor) must be folded", countries, res["meta"])
		}
	})

	t.Run("noisy: polls within a minute answer the same and charge once", func(t *testing.T) {
		qs := []struct {
			path string
			v    url.Values
		}{
			{api.PathTimeseries, url.Values{"site_id": {rtNoisy}, "period": {"30m"}, "interval": {"minute"}, "metrics": {"visitors,pageviews"}}},
			{api.PathAggregate, url.Values{"site_id": {rtNoisy}, "period": {"30m"}, "metrics": {"visitors,pageviews"}}},
			{api.PathBreakdown, url.Values{"site_id": {rtNoisy}, "period": {"30m"}, "property": {"event:page"}, "metrics": {"visitors"}}},
			{api.PathTimeseries, url.Values{"site_id": {rtNoisy}, "period": {"30m"}, "metrics": {"visitors"}, "filters": {"event:page==/rare"}}},
		}
		poll := func() ([]string, float64) {
			var out []string
			left := 0.0
			for _, q := range qs {
				res := c.ok(q.path, q.v)
				m := res["meta"].(map[string]any)
				left = m["budget_remaining"].(float64)
				delete(m, "budget_remaining")
				b, _ := json.Marshal(res)
				out = append(out, string(b))
			}
			return out, left
		}
		now = rtNow
		first, left1 := poll()
		now = rtNow.Add(15 * time.Second)
		second, left2 := poll()
		if !slices.Equal(first, second) {
			t.Errorf("two polls in one minute differ:\n%s\n%s", first, second)
		}
		if left1 != left2 || left1 >= 10000 {
			t.Errorf("budget left %v after the first poll, %v after the second: want one charge", left1, left2)
		}
		var ts struct {
			Results []map[string]any `json:"results"`
			Meta    aggregator.Meta  `json:"meta"`
		}
		if err := json.Unmarshal([]byte(first[0]), &ts); err != nil {
			t.Fatal(err)
		}
		if u := ts.Meta.ReleasedUntil; u == nil || !u.Equal(rtNow.Truncate(time.Minute)) {
			t.Errorf("released_until %v, want %v (the last full minute)", u, rtNow.Truncate(time.Minute))
		}
		// The current minute is not released: it reads nothing.
		if last := ts.Results[29]; last["visitors"] != 0.0 || last["pageviews"] != 0.0 {
			t.Errorf("the current minute answers %v, want nothing released", last)
		}
		exact := 0
		for i, p := range ts.Results[:29] {
			if p["visitors"] == float64(len(minutes[labels[i]].who)) {
				exact++
			}
		}
		if exact == 29 {
			t.Error("every noisy minute is exact: no noise")
		}
		var filtered struct {
			Results []map[string]any `json:"results"`
		}
		_ = json.Unmarshal([]byte(first[3]), &filtered)
		for i, p := range filtered.Results[:29] {
			if n := len(rare[labels[i]]); n > 0 && n < 3 && p["withheld"] == nil && p["visitors"].(float64) < 3 {
				t.Errorf("minute %s: a noisy /rare count under k released: %v", labels[i], p)
			}
		}
		// The next minute releases one more minute: new cells, new cost.
		now = rtNow.Add(30 * time.Second)
		_, left3 := poll()
		if left3 >= left2 {
			t.Errorf("budget %v then %v: a new minute must cost", left2, left3)
		}
	})

	t.Run("bad input is a 400", func(t *testing.T) {
		for _, v := range []url.Values{
			{"site_id": {rtSite}, "period": {"30d"}, "interval": {"minute"}, "metrics": {"visitors"}},
			{"site_id": {rtSite}, "period": {"30m"}, "interval": {"second"}, "metrics": {"visitors"}},
		} {
			if out, code := c.get(api.PathTimeseries, v); code != 400 {
				t.Errorf("%v: %d %v, want 400", v, code, out)
			}
		}
		_ = fmt.Sprint
	})
}
