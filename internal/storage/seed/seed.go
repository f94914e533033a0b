// Package seed writes realistic synthetic traffic for one site through the
// collector's batch writer (Writer: collector/sink's, which the caller
// passes): power-law pages and sources, browser, OS, device, geo and UTM
// mixes, visits with bounces, engagement events, custom goals with
// properties, file downloads and outbound clicks, up to now and never
// later. The same seed and end date always
// produce the same rows.
package seed

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/glimpse-analytics/glimpse/internal/model"
)

// Options say what to generate.
type Options struct {
	Site   string
	Events int // events to write (page views, engagement, goals, downloads, outbound clicks)
	// Days is how many days the events cover, ending at End: the last of
	// them is End's day up to End (the day before a midnight End).
	Days int
	// End is the exclusive end of the range. It defaults to now, and a
	// later End is taken as now: the seed never writes a future event.
	End  time.Time
	Seed uint64
	// Visitors is the pool of distinct visitors (default Events/6, at least 20).
	Visitors int
	// Revenue: a signup to a paid plan is followed by a "Purchase" goal
	// carrying its price (29 or 99; in USD for visitors from the US, EUR
	// otherwise). Off by default, so that the tests' seeded data stays.
	Revenue bool
}

// Stats count what was written.
type Stats struct {
	Events, Sessions, Visitors int
}

type weighted[T any] struct {
	w int
	v T
}

func pick[T any](r *rand.Rand, ws []weighted[T]) T {
	total := 0
	for _, x := range ws {
		total += x.w
	}
	n := r.IntN(total)
	for _, x := range ws {
		if n < x.w {
			return x.v
		}
		n -= x.w
	}
	return ws[len(ws)-1].v
}

type src struct {
	source, referrer, channel string
	utmSource, utmMedium      string
	campaigns                 []string
}

var sources = []weighted[src]{
	{40, src{channel: model.ChannelDirect}},
	{25, src{"Google", "https://www.google.com/", model.ChannelOrganicSearch, "", "", nil}},
	{6, src{"Bing", "https://www.bing.com/", model.ChannelOrganicSearch, "", "", nil}},
	{3, src{"DuckDuckGo", "https://duckduckgo.com/", model.ChannelOrganicSearch, "", "", nil}},
	{6, src{"Twitter", "https://t.co/x1", model.ChannelOrganicSocial, "", "", nil}},
	{4, src{"Reddit", "https://www.reddit.com/r/webdev/", model.ChannelOrganicSocial, "", "", nil}},
	{4, src{"Hacker News", "https://news.ycombinator.com/", model.ChannelReferral, "", "", nil}},
	{3, src{"GitHub", "https://github.com/", model.ChannelReferral, "", "", nil}},
	{5, src{"Newsletter", "", model.ChannelEmail, "newsletter", "email", []string{"spring-launch", "weekly-42", "weekly-43"}}},
	{3, src{"Google", "https://www.google.com/", model.ChannelPaidSearch, "google", "cpc", []string{"brand", "competitors"}}},
	{1, src{"LinkedIn", "https://www.linkedin.com/", model.ChannelOrganicSocial, "", "", nil}},
}

type geo struct{ country, region, city string }

var geos = []weighted[geo]{
	{22, geo{"US", "US-CA", "San Francisco"}}, {10, geo{"US", "US-NY", "New York"}}, {5, geo{"US", "US-TX", "Austin"}},
	{14, geo{"DE", "DE-BE", "Berlin"}}, {6, geo{"DE", "DE-BY", "Munich"}}, {9, geo{"GB", "GB-ENG", "London"}},
	{7, geo{"FR", "FR-IDF", "Paris"}}, {5, geo{"IN", "IN-KA", "Bengaluru"}}, {4, geo{"BR", "BR-SP", "São Paulo"}},
	{4, geo{"NL", "NL-NH", "Amsterdam"}}, {3, geo{"JP", "JP-13", "Tokyo"}}, {3, geo{"CA", "CA-ON", "Toronto"}},
	{2, geo{"EE", "EE-37", "Tallinn"}}, {1, geo{"IS", "IS-1", "Reykjavík"}}, {1, geo{"NZ", "NZ-WGN", "Wellington"}},
}

type agent struct{ browser, bver, os, osver, device, screen string }

var agents = []weighted[agent]{
	{30, agent{"Chrome", "124.0", "Windows", "10", model.DeviceDesktop, model.ScreenDesktop}},
	{12, agent{"Chrome", "123.0", "Mac", "14.4", model.DeviceDesktop, model.ScreenDesktop}},
	{18, agent{"Safari", "17.4", "iOS", "17.4", model.DeviceMobile, model.ScreenMobile}},
	{12, agent{"Chrome", "124.0", "Android", "14", model.DeviceMobile, model.ScreenMobile}},
	{8, agent{"Firefox", "125.0", "Windows", "10", model.DeviceDesktop, model.ScreenDesktop}},
	{5, agent{"Firefox", "125.0", "GNU/Linux", "", model.DeviceDesktop, model.ScreenDesktop}},
	{6, agent{"Safari", "17.4", "Mac", "14.4", model.DeviceDesktop, model.ScreenDesktop}},
	{5, agent{"Edge", "124.0", "Windows", "11", model.DeviceDesktop, model.ScreenLaptop}},
	{3, agent{"Safari", "17.3", "iPadOS", "17.3", model.DeviceTablet, model.ScreenTablet}},
	{1, agent{"Samsung Internet", "24.0", "Android", "13", model.DeviceMobile, model.ScreenMobile}},
}

var connections = []weighted[string]{{70, model.Connection4G}, {12, model.Connection3G}, {3, model.Connection2G}, {15, ""}}

// pages: a power law over a site map.
var pages = func() []string {
	p := []string{"/", "/pricing", "/features", "/docs", "/blog", "/about", "/signup", "/login", "/docs/install", "/docs/api"}
	for i := 1; i <= 60; i++ {
		p = append(p, "/blog/post-"+strconv.Itoa(i))
	}
	for i := 1; i <= 40; i++ {
		p = append(p, "/docs/guide-"+strconv.Itoa(i))
	}
	return p
}()

// hourWeights shapes traffic over the UTC day.
var hourWeights = []weighted[int]{
	{2, 0}, {1, 1}, {1, 2}, {1, 3}, {1, 4}, {2, 5}, {3, 6}, {5, 7}, {7, 8}, {8, 9}, {9, 10}, {9, 11},
	{8, 12}, {9, 13}, {10, 14}, {10, 15}, {9, 16}, {8, 17}, {7, 18}, {6, 19}, {5, 20}, {4, 21}, {3, 22}, {2, 23},
}

type event struct {
	ts        time.Time
	typ       int8
	name      string
	path      string
	target    string
	engMS     uint32
	scroll    uint8
	propKey   string
	propValue string
	currency  string
	micros    int64
}

// purchase is the Purchase goal of a paid plan, priced in the visitor's
// currency.
func purchase(ts time.Time, path, plan, country string) event {
	cur := "EUR"
	if country == "US" {
		cur = "USD"
	}
	price := int64(29)
	if plan == "team" {
		price = 99
	}
	return event{ts: ts, typ: model.TypeCustom, name: "Purchase", path: path, propKey: "plan", propValue: plan,
		currency: cur, micros: price * 1_000_000}
}

// Writer takes the generated rows: the collector's writer
// (collector/sink), so that they are stored as collected ones are.
type Writer interface {
	NewEvent() *model.Event
	// EnqueueWait takes an event from NewEvent, waiting while the writer's
	// queue is full.
	EnqueueWait(ctx context.Context, e *model.Event) error
	// WriteSessions makes the writer drain src for session rows.
	WriteSessions(src model.SessionSource)
	// Close flushes and reports how many rows could not be stored.
	Close(ctx context.Context) (lost int64, err error)
}

// SessionInterval is the session flush interval to give a writer that
// takes generated data: short, so that sessions keep pace with events.
const SessionInterval = 100 * time.Millisecond

// Generate writes o.Events events and their sessions through w, which it
// makes write sessions from the generated data (Writer.WriteSessions; w's
// session interval paces them, see SessionInterval). It does not close w;
// the caller flushes with w.Close.
func Generate(ctx context.Context, w Writer, o Options) (Stats, error) {
	if o.Site == "" || o.Events <= 0 || o.Days <= 0 {
		return Stats{}, fmt.Errorf("seed needs a site, a positive number of events and of days")
	}
	sessions := new(SessionBuffer)
	w.WriteSessions(sessions)
	if now := time.Now().UTC().Truncate(time.Second); o.End.IsZero() || o.End.After(now) {
		o.End = now
	}
	if o.Visitors <= 0 {
		o.Visitors = max(o.Events/6, 20)
	}
	r := rand.New(rand.NewPCG(o.Seed, 0x9e3779b97f4a7c15))
	zipfPage := rand.NewZipf(r, 1.2, 1, uint64(len(pages)-1))
	zipfVisitor := rand.NewZipf(r, 1.05, 50, uint64(o.Visitors-1))
	// Days are calendar days (UTC): the first starts at 00:00, the last
	// is End's own day, cut at End.
	lastDay := o.End.Truncate(24 * time.Hour)
	if lastDay.Equal(o.End) {
		lastDay = lastDay.AddDate(0, 0, -1)
	}
	start := lastDay.AddDate(0, 0, 1-o.Days)
	var st Stats
	seen := map[uint64]bool{}
	evs := make([]event, 0, 64)
	for st.Events < o.Events {
		if err := ctx.Err(); err != nil {
			return st, err
		}
		vi := zipfVisitor.Uint64()
		if !seen[vi] {
			seen[vi] = true
			st.Visitors++
		}
		// A visitor's device and place are stable: derive them from the index.
		vr := rand.New(rand.NewPCG(o.Seed^0x5bd1e995, vi))
		visitorID := vr.Uint64() | 1
		g, a, conn := pick(vr, geos), pick(vr, agents), pick(vr, connections)
		s := pick(r, sources)
		campaign := ""
		if len(s.campaigns) > 0 {
			campaign = s.campaigns[r.IntN(len(s.campaigns))]
		}
		t := start.AddDate(0, 0, r.IntN(o.Days)).Add(time.Duration(pick(r, hourWeights))*time.Hour +
			time.Duration(r.IntN(3600))*time.Second)
		for !t.Before(o.End) { // later today: an earlier hour of a day before
			t = t.AddDate(0, 0, -1-r.IntN(max(o.Days-1, 1)))
		}
		n := 1
		if r.Float64() > 0.45 {
			n = 2 + int(r.ExpFloat64()*2.5)
		}
		evs = evs[:0]
		path := pages[zipfPage.Uint64()]
		if s.channel == model.ChannelEmail || s.channel == model.ChannelPaidSearch {
			path = "/pricing"
		}
		for i := 0; i < n; i++ {
			evs = append(evs, event{ts: t, typ: model.TypePageview, path: path})
			if r.Float64() < 0.6 {
				dwell := 5000 + r.IntN(180000)
				evs = append(evs, event{ts: t.Add(time.Duration(dwell) * time.Millisecond), typ: model.TypeEngagement,
					path: path, engMS: uint32(dwell), scroll: uint8(10 + r.IntN(91))})
			}
			if r.Float64() < 0.03 {
				plan := []string{"free", "free", "pro", "team"}[r.IntN(4)]
				evs = append(evs, event{ts: t.Add(2 * time.Second), typ: model.TypeCustom, name: "Signup", path: path,
					propKey: "plan", propValue: plan})
				if o.Revenue && plan != "free" {
					evs = append(evs, purchase(t.Add(5*time.Second), path, plan, g.country))
				}
			}
			if r.Float64() < 0.02 {
				evs = append(evs, event{ts: t.Add(3 * time.Second), typ: model.TypeDownload, path: path,
					target: "https://" + o.Site + "/files/" + []string{"glimpse.tar.gz", "glimpse.zip"}[r.IntN(2)]})
			}
			if r.Float64() < 0.04 {
				evs = append(evs, event{ts: t.Add(4 * time.Second), typ: model.TypeOutbound, path: path,
					target: []string{"https://github.com/glimpse", "https://twitter.com/glimpse"}[r.IntN(2)]})
			}
			t = t.Add(time.Duration(10+r.IntN(240)) * time.Second)
			path = pages[zipfPage.Uint64()]
		}
		if left := o.Events - st.Events; len(evs) > left {
			evs = evs[:left]
		}
		// A visit that would run past End ends just before it instead.
		last := evs[0].ts
		for i := range evs {
			if evs[i].ts.After(last) {
				last = evs[i].ts
			}
		}
		if !last.Before(o.End) {
			shift := last.Sub(o.End) + time.Duration(1+last.Unix()%600)*time.Second
			for i := range evs {
				evs[i].ts = evs[i].ts.Add(-shift)
			}
		}
		sessionID := r.Uint64()
		row := model.Session{
			ID: sessionID, VisitorID: visitorID, Site: o.Site, Version: 1, Start: evs[0].ts,
			EntryPage: evs[0].path, ExitPage: evs[0].path,
			Attrs: &model.Attrs{
				Referrer: s.referrer, Source: s.source, Channel: s.channel,
				UTMSource: s.utmSource, UTMMedium: s.utmMedium, UTMCampaign: campaign,
				Country: g.country, Region: g.region, City: g.city, Browser: a.browser,
				OS: a.os, Device: a.device, Screen: a.screen, ConnectionType: conn,
			},
		}
		var prev model.Session
		hasPrev := false
		for i, ev := range evs {
			if err := enqueue(ctx, w, o.Site, visitorID, sessionID, &ev, s, campaign, g, a, conn, r); err != nil {
				return st, err
			}
			st.Events++
			switch ev.typ {
			case model.TypePageview:
				row.Pageviews++
				row.Events++
				row.ExitPage = ev.path
			case model.TypeEngagement:
				row.EngagementMS += uint64(ev.engMS)
			default:
				row.Events++
			}
			if ev.ts.After(row.LastSeen) {
				row.LastSeen = ev.ts
			}
			row.DurationSec = uint32(row.LastSeen.Sub(row.Start) / time.Second)
			row.Bounce = row.Pageviews <= 1 && row.Events <= 1
			// The collector writes a session state after its first event and
			// replaces it at the end; do the same so readers see -1/+1 pairs.
			if i == 0 || i == len(evs)-1 {
				if err := sessions.Add(ctx, prev, row, hasPrev); err != nil {
					return st, err
				}
				prev, hasPrev = row, true
				row.Version++
			}
		}
		st.Sessions++
	}
	return st, nil
}

func enqueue(ctx context.Context, w Writer, site string, visitorID, session uint64, ev *event,
	s src, campaign string, g geo, a agent, conn string, r *rand.Rand) error {
	var id [16]byte
	hi, lo := r.Uint64(), r.Uint64()
	for i := 0; i < 8; i++ {
		id[i], id[8+i] = byte(hi>>(8*i)), byte(lo>>(8*i))
	}
	id[6] = id[6]&0x0f | 0x40
	id[8] = id[8]&0x3f | 0x80
	e := w.NewEvent()
	e.SiteID, e.EventID, e.TS, e.Type = site, id, ev.ts, ev.typ
	e.Name = append(e.Name, ev.name...)
	e.VisitorID, e.SessionID = visitorID, session
	e.Hostname = append(e.Hostname, site...)
	e.Pathname = append(e.Pathname, ev.path...)
	e.Referrer = append(e.Referrer, s.referrer...)
	e.ReferrerSource, e.Channel = s.source, s.channel
	e.UTMSource = append(e.UTMSource, s.utmSource...)
	e.UTMMedium = append(e.UTMMedium, s.utmMedium...)
	e.UTMCampaign = append(e.UTMCampaign, campaign...)
	e.TargetURL = append(e.TargetURL, ev.target...)
	e.CountryCode, e.Region, e.City = g.country, g.region, g.city
	e.Browser, e.BrowserVersion, e.OS, e.OSVersion, e.Device, e.Screen = a.browser, a.bver, a.os, a.osver, a.device, a.screen
	e.ConnectionType = conn
	e.EngagementMS, e.ScrollDepth = ev.engMS, ev.scroll
	e.Interactive = 1
	if ev.typ == model.TypeEngagement {
		e.Interactive = 0
	}
	e.IPPrefix = append(e.IPPrefix, "192.0.2.0/24"...)
	if ev.propKey != "" {
		e.AddProp([]byte(ev.propKey), []byte(ev.propValue))
	}
	if ev.currency != "" {
		e.RevenueMicros = ev.micros
		e.RevenueCurrency = append(e.RevenueCurrency, ev.currency...)
	}
	return w.EnqueueWait(ctx, e)
}

// Write generates o through w, flushes it with w.Close, and fails if any
// row was not stored: what the seed command, the Stats API benchmark and
// the tests share. Give w a short session interval (SessionInterval).
func Write(ctx context.Context, w Writer, o Options) (Stats, error) {
	st, genErr := Generate(ctx, w, o)
	// The final flush gets a fresh deadline even when ctx has ended.
	fctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	lost, err := w.Close(fctx)
	switch {
	case genErr != nil:
		return st, genErr
	case err != nil:
		return st, fmt.Errorf("cannot flush the seeded rows: %w", err)
	case lost > 0:
		return st, fmt.Errorf("%d seeded rows were not stored", lost)
	}
	return st, nil
}
