//go:build !race

package collector

import (
	"context"
	"encoding/binary"
	"net"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/glimpse-analytics/glimpse/collector/locate"
	"github.com/glimpse-analytics/glimpse/collector/locate/geotest"
	"github.com/glimpse-analytics/glimpse/collector/session"
	"github.com/glimpse-analytics/glimpse/collector/sink"
	"github.com/glimpse-analytics/glimpse/internal/apptest"
	"github.com/glimpse-analytics/glimpse/internal/config"
	"github.com/glimpse-analytics/glimpse/internal/model"
)

// noisySitesYAML is example.com with every setting at its default, as
// serve has it: noisy aggregates, so contribution caps (apptest.SitesYAML
// has exact ones).
const noisySitesYAML = "sites:\n  - domain: example.com\n"

// newAllocServer is a collector on the sites of sitesYAML with a
// discarding writer and geo, as the hot path runs in production.
func newAllocServer(t testing.TB, sitesYAML string) *Server {
	sites, err := config.Parse("t.yaml", []byte(sitesYAML))
	if err != nil {
		t.Fatal(err)
	}
	geo, err := locate.Open(geotest.Write(t, "GeoIP2-City", 6, []geotest.Network{
		{CIDR: "203.0.113.0/24", Country: "DE", Subdivision: "BE", City: "Berlin"},
		{CIDR: "2001:db8:1::/48", Country: "JP", Subdivision: "13", City: "Tokyo"}, // visitorAddrs
	}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { geo.Close() })
	w := sink.New(sink.Options{Discard: true, BatchSize: 16, QueueSize: 100000, Interval: time.Hour})
	t.Cleanup(func() { w.Close(context.Background()) })
	sessions := session.NewCache(session.CacheConfig{})
	w.WriteSessions(sessions)
	s, err := New(Options{Sites: sites, Writer: w, Sessions: sessions, Geo: geo, RateLimit: -1})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func newEventCtx(body, ua string, peer string) *fasthttp.RequestCtx {
	var req fasthttp.Request
	req.Header.SetMethod("POST")
	req.SetRequestURI("/api/event")
	req.Header.SetContentType("text/plain")
	req.Header.SetUserAgent(ua)
	req.SetBodyString(body)
	var ctx fasthttp.RequestCtx
	ctx.Init(&req, &net.TCPAddr{IP: net.ParseIP(peer), Port: 40000}, nil)
	return &ctx
}

const allocUA = "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0"

// visitorAddrs returns n client addresses, one visitor each, in one /48
// (so that the geo cache, which keys networks, holds one entry for them).
func visitorAddrs(n int) []net.Addr {
	addrs := make([]net.Addr, n)
	for i := range addrs {
		ip := net.ParseIP("2001:db8:1::")
		binary.BigEndian.PutUint64(ip[8:], uint64(i)+1)
		addrs[i] = &net.TCPAddr{IP: ip, Port: 40000}
	}
	return addrs
}

// TestHandlerAllocs proves the handler path up to the queue allocates
// nothing per request once warm: decode, gate, UA (cached), geo (cached),
// truncation, hashing, URL and referrer cleaning, the contribution caps
// of a noisy site, the session update and the enqueue. It calls the
// handler serve's mux routes /api/event to (cmd/glimpse's TestMuxAllocs
// covers the routing).
func TestHandlerAllocs(t *testing.T) {
	exact, noisy := newAllocServer(t, apptest.SitesYAML), newAllocServer(t, noisySitesYAML)
	const (
		pageview   = `{"n":"pageview","u":"https://example.com/blog/post?utm_source=news&utm_medium=email","d":"example.com","r":"https://www.google.com/search","w":1280}`
		custom     = `{"n":"Signup","u":"https://example.com/pricing","d":"example.com","p":"{\"plan\":\"pro\"}","$":{"amount":"9.5","currency":"EUR"}}`
		engagement = `{"n":"engagement","u":"https://example.com/pricing","d":"example.com","e":5000,"sd":60,"ct":"4g","dl":10,"rtt":50}`
	)
	// On the noisy site, one visitor's events would soon be beyond its
	// caps: spread cases send each visitor ten, within every cap. The last
	// case is one visitor beyond the events cap, every event dropped.
	tests := []struct {
		name    string
		s       *Server
		body    string
		spread  bool
		dropped string
	}{
		{"pageview", exact, pageview, false, ""},
		{"custom with props", exact, custom, false, ""},
		{"engagement", exact, engagement, false, ""},
		{"redacted", exact, dirtyEvent, false, ""},
		{"noisy pageview", noisy, pageview, true, ""},
		{"noisy custom with props", noisy, custom, true, ""},
		{"noisy engagement", noisy, engagement, true, ""},
		{"noisy beyond the cap", noisy, pageview, false, dropContributionCap},
	}
	const runs, perVisitor = 2000 + 501, 10
	addrs := visitorAddrs(len(tests) * runs / perVisitor)
	for ti, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			event := tt.s.Routes()[PathEvent]
			ctx := newEventCtx(tt.body, allocUA, "203.0.113.7")
			i, check := ti*runs, true
			run := func() {
				if tt.spread {
					ctx.SetRemoteAddr(addrs[i/perVisitor])
					i++
				}
				ctx.Response.Reset()
				event(ctx)
				if dropped := ctx.Response.Header.Peek("X-Glimpse-Dropped"); check && (ctx.Response.StatusCode() != fasthttp.StatusAccepted || string(dropped) != tt.dropped) {
					t.Fatalf("status %d, dropped %q (want %q), body %q", ctx.Response.StatusCode(), dropped, tt.dropped, ctx.Response.Body())
				}
				// Let the writer goroutine take the event off the queue, as it
				// does between requests on a collector that keeps up; a
				// descheduled writer would otherwise make the free list run
				// dry and count new events against the handler.
				for tt.s.writer.QueueDepth() > 0 {
					runtime.Gosched()
				}
			}
			if tt.dropped != "" {
				check = false // the events up to the cap are stored
				for range model.MaxEventsPerDay {
					run()
				}
				check = true
			}
			for range 2000 { // warm the pools, caches and the session
				run()
			}
			if n := testing.AllocsPerRun(500, run); n != 0 {
				t.Fatalf("handler allocates %v times per request", n)
			}
		})
	}
}

const benchBody = `{"n":"pageview","u":"https://example.com/blog/post?utm_source=news","d":"example.com","r":"https://www.google.com/","w":1280}`

// dirtyEvent carries personal data in every field that is redacted: path,
// UTM value, referrer, property keys and values.
const dirtyEvent = `{"n":"Signup","u":"https://example.com/users/eve.smith/orders/4111111111111111/reset/ab12CD34ef?utm_content=eve%40example.com",` +
	`"d":"example.com","r":"https://shop.other.example/pay/4111-1111-1111-1111/confirm",` +
	`"p":{"contact":"eve@example.com","phone":"+49 30 1234567","token":"sk_live_4eC39HqLyjWDarjtT1zdp7dc","plan":"pro"}}`

// BenchmarkHandler sends one visitor's page view over and over.
func BenchmarkHandler(b *testing.B) {
	s := newAllocServer(b, apptest.SitesYAML)
	event := s.Routes()[PathEvent]
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		ctx := newEventCtx(benchBody, allocUA, "203.0.113.7")
		for pb.Next() {
			ctx.Response.Reset()
			event(ctx)
		}
	})
}

// BenchmarkHandlerDirty sends one visitor's dirtyEvent over and over: the
// worst case for redaction.
func BenchmarkHandlerDirty(b *testing.B) {
	s := newAllocServer(b, apptest.SitesYAML)
	event := s.Routes()[PathEvent]
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		ctx := newEventCtx(dirtyEvent, allocUA, "203.0.113.7")
		for pb.Next() {
			ctx.Response.Reset()
			event(ctx)
		}
	})
}

// BenchmarkHandlerVisitors sends page views of many visitors, twenty
// each (within every contribution cap), to a site with exact aggregates
// and to one with noisy ones: the ratio of the two is what the caps
// cost a page view.
func BenchmarkHandlerVisitors(b *testing.B) {
	const perVisitor = 20
	for _, bc := range []struct{ name, sites string }{{"exact", apptest.SitesYAML}, {"noisy", noisySitesYAML}} {
		b.Run(bc.name, func(b *testing.B) {
			s := newAllocServer(b, bc.sites)
			event := s.Routes()[PathEvent]
			addrs := visitorAddrs(b.N/perVisitor + 1)
			var next atomic.Int64
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				ctx := newEventCtx(benchBody, allocUA, "203.0.113.7")
				for pb.Next() {
					ctx.SetRemoteAddr(addrs[(next.Add(1)-1)/perVisitor])
					ctx.Response.Reset()
					event(ctx)
				}
			})
		})
	}
}
