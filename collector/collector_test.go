package collector_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/valyala/fasthttp"

	"github.com/glimpse-analytics/glimpse/collector"
	"github.com/glimpse-analytics/glimpse/collector/locate"
	"github.com/glimpse-analytics/glimpse/collector/locate/geotest"
	"github.com/glimpse-analytics/glimpse/collector/session"
	"github.com/glimpse-analytics/glimpse/collector/sink"
	"github.com/glimpse-analytics/glimpse/internal/chtest"
	"github.com/glimpse-analytics/glimpse/internal/config"
)

const sitesYAML = `sites:
  - domain: example.com
    aliases: [www.example.com]
  - domain: dnt.example
    privacy: {honor_dnt: true}
  - domain: nogpc.example
    privacy: {honor_gpc: false}
  - domain: agg.example
    privacy: {mode: aggregate}
  - domain: city.example
    privacy: {geo: city}
  - domain: consent.example
    privacy: {mode: consented, subject_key: 0123456789abcdef0123456789abcdef}
  - domain: exact.example
    privacy: {aggregates: exact}
  - domain: aggnoisy.example
    privacy: {mode: aggregate, aggregates: noisy}
`

const (
	firefox = "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0"
	iphone  = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1"
)

// testServer is a collector on a real loopback listener writing to a fresh
// database on the real ClickHouse.
type testServer struct {
	db      *chtest.DB
	url     string
	writer  *sink.Writer
	metrics *metrics.Set
	logs    *syncBuffer
	stopped bool
	hs      *fasthttp.Server
	// keepSpool: stop abandons the writer's flush after a moment, leaving
	// the rows in its spool (for tests whose ClickHouse is unreachable).
	keepSpool bool
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func start(t *testing.T, trusted ...string) *testServer {
	t.Helper()
	return startWith(t, collector.Options{}, trusted...)
}

// startWith starts a test server; o's Sites, Writer, Conn, Geo, Proxies,
// Metrics and Log are filled in, the rest is taken as given.
func startWith(t *testing.T, o collector.Options, trusted ...string) *testServer {
	t.Helper()
	return startWithWriter(t, o, nil, trusted...)
}

// startWithWriter is startWith with the writer made by mk (nil: an
// in-memory writer on the test database).
func startWithWriter(t *testing.T, o collector.Options, mk func(sink.Options) *sink.Writer, trusted ...string) *testServer {
	t.Helper()
	db := chtest.Migrated(t)
	sites, err := config.Parse("test.yaml", []byte(sitesYAML))
	if err != nil {
		t.Fatal(err)
	}
	geoPath := geotest.Write(t, "GeoIP2-City", 6, []geotest.Network{
		{CIDR: "203.0.113.0/24", Country: "DE", Subdivision: "BE", City: "Berlin"},
		{CIDR: "2001:db8:1::/48", Country: "JP", Subdivision: "13", City: "Tokyo"},
	})
	geo, err := locate.Open(geoPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { geo.Close() })
	proxies, err := locate.ParseTrustedProxies(trusted)
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{db: db, metrics: metrics.NewSet(), logs: &syncBuffer{}}
	log := slog.New(slog.NewTextHandler(ts.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	wo := sink.Options{Conn: db.Conn, BatchSize: 1000, Interval: 50 * time.Millisecond, Metrics: ts.metrics, Log: log}
	if mk == nil {
		ts.writer = sink.New(wo)
	} else {
		ts.writer = mk(wo)
	}
	o.Sites, o.Writer, o.Geo, o.Proxies, o.Metrics, o.Log = sites, ts.writer, geo, proxies, ts.metrics, log
	o.Sessions = session.NewCache(session.CacheConfig{})
	ts.writer.WriteSessions(o.Sessions)
	srv, err := collector.New(o)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ts.url = "http://" + ln.Addr().String()
	// The collector's endpoints and /readyz, as serve's mux routes them.
	routes := srv.Routes()
	routes["/readyz"] = collector.NewHealth(db.Conn, ts.writer).Readyz
	handler := func(ctx *fasthttp.RequestCtx) {
		if h := routes[string(ctx.Path())]; h != nil {
			h(ctx)
			return
		}
		srv.NotFound(ctx)
	}
	ts.hs = &fasthttp.Server{Handler: handler, MaxRequestBodySize: 64 << 10}
	srv.HTTPErrors().Install(ts.hs)
	go ts.hs.Serve(ln)
	t.Cleanup(func() { ts.stop(t) })
	return ts
}

// stop shuts the listener down and flushes the writer, so every accepted
// event is in ClickHouse afterwards.
func (ts *testServer) stop(t *testing.T) {
	t.Helper()
	if ts.stopped {
		return
	}
	ts.stopped = true
	_ = ts.hs.Shutdown()
	if ts.keepSpool {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		_, _ = ts.writer.Close(ctx) // ClickHouse unreachable: the rows stay in the spool
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if lost, err := ts.writer.Close(ctx); err != nil || lost != 0 {
		t.Fatalf("writer close: lost %d, %v", lost, err)
	}
}

type req struct {
	method, path, body, ua, ctype string
	header                        map[string]string
}

type resp struct {
	status  int
	header  http.Header
	body    string
	dropped string
}

func (ts *testServer) do(t *testing.T, r req) resp {
	t.Helper()
	if r.method == "" {
		r.method = "POST"
	}
	if r.path == "" {
		r.path = "/api/event"
	}
	hr, err := http.NewRequest(r.method, ts.url+r.path, strings.NewReader(r.body))
	if err != nil {
		t.Fatal(err)
	}
	if r.ctype == "" {
		r.ctype = "text/plain"
	}
	hr.Header.Set("Content-Type", r.ctype)
	if r.ua == "" {
		r.ua = firefox
	}
	hr.Header.Set("User-Agent", r.ua)
	for k, v := range r.header {
		hr.Header.Set(k, v)
	}
	res, err := http.DefaultClient.Do(hr)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return resp{status: res.StatusCode, header: res.Header, body: string(b), dropped: res.Header.Get("X-Glimpse-Dropped")}
}

func (ts *testServer) count(t *testing.T, q string) uint64 {
	t.Helper()
	var n uint64
	if err := ts.db.Conn.QueryRow(context.Background(), q).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

func pageview(domain, url string) string {
	return fmt.Sprintf(`{"n":"pageview","u":%q,"d":%q}`, url, domain)
}

func TestManyEventsManyRows(t *testing.T) {
	ts := start(t, "127.0.0.1/32")
	const n = 300
	for i := range n {
		r := ts.do(t, req{body: pageview("example.com", fmt.Sprintf("https://example.com/p/%d", i%17)),
			header: map[string]string{"X-Forwarded-For": fmt.Sprintf("198.51.100.%d", i%200+1)}})
		if r.status != 202 || r.dropped != "" {
			t.Fatalf("event %d: %d %q %q", i, r.status, r.dropped, r.body)
		}
	}
	ts.stop(t)
	if got := ts.count(t, "SELECT count() FROM events"); got != n {
		t.Fatalf("%d rows, want %d", got, n)
	}
	if got := ts.count(t, "SELECT uniqExact(visitor_id) FROM events"); got != 200 {
		t.Errorf("%d distinct visitors, want 200 (one per client address)", got)
	}
	if got := ts.count(t, "SELECT toUInt64(sum(sign)) FROM sessions"); got != 200 {
		t.Errorf("%d sessions, want 200", got)
	}
}

func TestEnrichedColumns(t *testing.T) {
	ts := start(t, "127.0.0.1/32")
	type want map[string]string
	tests := []struct {
		name string
		r    req
		want want
	}{
		{"pageview", req{
			body:   `{"n":"pageview","u":"https://www.example.com:443/Blog/x?utm_source=HN&utm_medium=social&secret=1","d":"example.com","r":"https://news.ycombinator.com/item?id=5","w":1280}`,
			header: map[string]string{"X-Forwarded-For": "203.0.113.77"},
		}, want{
			"type": "pageview", "name": "pageview", "hostname": "www.example.com", "pathname": "/Blog/x",
			"referrer": "news.ycombinator.com/item", "referrer_source": "Hacker News", "channel": "Organic Social",
			"utm_source": "HN", "utm_medium": "social", "country_code": "DE", "region": "DE-BE", "city": "",
			"ip_prefix": "203.0.113.0/24", "browser": "Firefox", "os": "Linux", "device": "Desktop", "screen": "Laptop",
		}},
		{"custom with props and revenue over IPv6", req{
			body:   `{"n":"Signup","u":"https://example.com/pricing","d":"example.com","p":"{\"plan\":\"pro\",\"seats\":3}","$":{"amount":"12.5","currency":"EUR"},"ct":"3g","dl":1.5,"rtt":300}`,
			header: map[string]string{"X-Forwarded-For": "2001:db8:1::abcd"},
			ua:     iphone,
		}, want{
			"type": "custom", "name": "Signup", "pathname": "/pricing", "country_code": "JP", "region": "JP-13",
			"ip_prefix": "2001:db8:1::/48", "os": "iOS", "device": "Mobile", "connection_type": "3g", "rtt": "300",
			"prop_keys": "[plan seats]", "prop_values": "[pro 3]", "revenue_micros": "12500000", "revenue_currency": "EUR",
		}},
		{"outbound link", req{
			body:   `{"n":"Outbound Link: Click","u":"https://example.com/links","d":"example.com","p":{"url":"https://other.org/path?token=x"}}`,
			header: map[string]string{"X-Forwarded-For": "203.0.113.5"},
		}, want{"type": "outbound", "target_url": "other.org/path", "pathname": "/links", "prop_keys": "[]"}},
		{"click id", req{
			body:   pageview("example.com", "https://example.com/ad?gclid=abc123"),
			header: map[string]string{"X-Forwarded-For": "203.0.113.12"},
		}, want{"pathname": "/ad", "referrer_source": "Google Ads", "channel": "Paid Search"}},
		{"city precision", req{
			body:   pageview("city.example", "https://city.example/"),
			header: map[string]string{"X-Forwarded-For": "203.0.113.9"},
		}, want{"country_code": "DE", "region": "DE-BE", "city": "Berlin"}},
		{"pixel", req{
			method: "GET", path: "/p.gif?n=pageview&u=https%3A%2F%2Fexample.com%2Fnoscript&d=example.com",
			header: map[string]string{"X-Forwarded-For": "203.0.113.10"},
		}, want{"type": "pageview", "pathname": "/noscript"}},
		{"email redacted", req{
			body:   pageview("example.com", "https://example.com/u/jane.doe@mail.example/settings"),
			header: map[string]string{"X-Forwarded-For": "203.0.113.11"},
		}, want{"pathname": "/u/[email]/settings"}},
	}
	for _, tt := range tests {
		r := ts.do(t, tt.r)
		if (r.status != 202 && r.status != 200) || r.dropped != "" {
			t.Fatalf("%s: %d %q %q", tt.name, r.status, r.dropped, r.body)
		}
	}
	ts.stop(t)
	rows, err := ts.db.Conn.Query(context.Background(), `SELECT type, name, hostname, pathname, referrer, referrer_source, channel,
		utm_source, utm_medium, country_code, region, city, ip_prefix, browser, os, device, screen, connection_type, toString(rtt),
		toString(prop_keys), toString(prop_values), toString(revenue_micros), revenue_currency, target_url, visitor_id, session_id
		FROM events ORDER BY ts, pathname`)
	if err != nil {
		t.Fatal(err)
	}
	cols := []string{"type", "name", "hostname", "pathname", "referrer", "referrer_source", "channel", "utm_source", "utm_medium",
		"country_code", "region", "city", "ip_prefix", "browser", "os", "device", "screen", "connection_type", "rtt",
		"prop_keys", "prop_values", "revenue_micros", "revenue_currency", "target_url"}
	var got []map[string]string
	for rows.Next() {
		vals := make([]string, len(cols))
		ptrs := make([]any, 0, len(cols)+2)
		for i := range vals {
			ptrs = append(ptrs, &vals[i])
		}
		var vid, sid uint64
		ptrs = append(ptrs, &vid, &sid)
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		if vid == 0 || sid == 0 {
			t.Errorf("row %v has visitor %d session %d", vals, vid, sid)
		}
		m := map[string]string{}
		for i, c := range cols {
			m[c] = vals[i]
			m[c] = strings.ReplaceAll(strings.ReplaceAll(strings.Trim(m[c], "[]"), "'", ""), ",", " ")
			if strings.HasPrefix(vals[i], "[") {
				m[c] = "[" + m[c] + "]"
			}
		}
		got = append(got, m)
	}
	if len(got) != len(tests) {
		t.Fatalf("%d rows, want %d", len(got), len(tests))
	}
	for _, tt := range tests {
		found := false
		for _, row := range got {
			match := true
			for k, v := range tt.want {
				if row[k] != v {
					match = false
				}
			}
			if match {
				found = true
			}
		}
		if !found {
			t.Errorf("%s: no row has %v;\nrows: %v", tt.name, tt.want, got)
		}
	}
}

func TestOptOutsAndDrops(t *testing.T) {
	ts := start(t, "127.0.0.1/32")
	tests := []struct {
		name    string
		r       req
		dropped string
	}{
		{"opt-out cookie", req{body: pageview("example.com", "https://example.com/"), header: map[string]string{"Cookie": "glimpse_optout=1"}}, "opt-out"},
		{"gpc", req{body: pageview("example.com", "https://example.com/"), header: map[string]string{"Sec-GPC": "1"}}, "gpc"},
		{"dnt where honoured", req{body: pageview("dnt.example", "https://dnt.example/"), header: map[string]string{"DNT": "1"}}, "dnt"},
		{"unknown site", req{body: pageview("evil.example", "https://evil.example/")}, "unknown-site"},
		{"bot", req{body: pageview("example.com", "https://example.com/"), ua: "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"}, "bot"},
		{"headless", req{body: pageview("example.com", "https://example.com/"), ua: "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/124.0.0.0 Safari/537.36"}, "bot"},
		{"curl", req{body: pageview("example.com", "https://example.com/"), ua: "curl/8.5.0"}, "bot"},
	}
	for _, tt := range tests {
		r := ts.do(t, tt.r)
		if r.status != 202 || r.dropped != tt.dropped || r.body != "" {
			t.Errorf("%s: status %d dropped %q body %q; want 202, %q, empty body", tt.name, r.status, r.dropped, r.body, tt.dropped)
		}
	}
	// Not opted out: DNT where the site does not ask, GPC where the site does not honour it.
	for _, r := range []req{
		{body: pageview("example.com", "https://example.com/dnt-ignored"), header: map[string]string{"DNT": "1"}},
		{body: pageview("nogpc.example", "https://nogpc.example/gpc-ignored"), header: map[string]string{"Sec-GPC": "1"}},
	} {
		if res := ts.do(t, r); res.status != 202 || res.dropped != "" {
			t.Errorf("%s: %d %q", r.body, res.status, res.dropped)
		}
	}
	// Aggregate mode counts an opted-out view with no identifier at all.
	if res := ts.do(t, req{body: pageview("agg.example", "https://agg.example/a"), header: map[string]string{"Sec-GPC": "1", "X-Forwarded-For": "203.0.113.50"}}); res.status != 202 || res.dropped != "" {
		t.Errorf("aggregate: %d %q", res.status, res.dropped)
	}
	ts.stop(t)
	if got := ts.count(t, "SELECT count() FROM events WHERE site_id IN ('example.com', 'dnt.example') AND pathname != '/dnt-ignored'"); got != 0 {
		t.Errorf("%d rows stored for opted-out or dropped events", got)
	}
	if got := ts.count(t, "SELECT count() FROM events WHERE pathname IN ('/dnt-ignored', '/gpc-ignored')"); got != 2 {
		t.Errorf("%d rows for events that were not opted out, want 2", got)
	}
	if got := ts.count(t, "SELECT count() FROM events WHERE site_id = 'agg.example' AND visitor_id = 0 AND session_id = 0 AND ip_prefix = '' AND region = '' AND browser = '' AND country_code = 'DE'"); got != 1 {
		t.Errorf("aggregate mode: %d anonymous rows, want 1", got)
	}
	if got := ts.count(t, "SELECT count() FROM sessions WHERE site_id = 'agg.example'"); got != 0 {
		t.Errorf("aggregate mode opened %d sessions for an opted-out visitor", got)
	}
	var b strings.Builder
	ts.metrics.WritePrometheus(&b)
	for _, want := range []string{`glimpse_events_dropped_total{reason="gpc"} 1`, `glimpse_events_dropped_total{reason="bot"} 3`, `glimpse_events_dropped_total{reason="unknown-site"} 1`} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

func TestSpoofedForwardedForIsIgnored(t *testing.T) {
	ts := start(t) // no trusted proxies: the TCP peer is the client
	if r := ts.do(t, req{body: pageview("example.com", "https://example.com/"), header: map[string]string{"X-Forwarded-For": "203.0.113.77"}}); r.status != 202 {
		t.Fatal(r.status)
	}
	ts.stop(t)
	if got := ts.count(t, "SELECT count() FROM events WHERE ip_prefix = '127.0.0.0/24' AND country_code = ''"); got != 1 {
		t.Fatalf("the spoofed X-Forwarded-For was believed")
	}
}

// TestEveryForwardedForLineCounts sends events whose X-Forwarded-For
// comes in several header lines, as a proxy that adds its own line
// (rather than appending to the client's) sends it: the lines are one list
// in order (RFC 9110 5.3), walked from the right past trusted proxies, so
// the line a client wrote first cannot choose its address. A field in the
// trailer of a chunked body is refused.
func TestEveryForwardedForLineCounts(t *testing.T) {
	ts := start(t, "127.0.0.1/32", "10.0.0.0/8")
	tests := []struct {
		path  string
		lines []string
		want  string
	}{
		{"/two-lines", []string{"198.51.100.66", "203.0.113.9"}, "203.0.113.0/24"},
		{"/three-lines", []string{"198.51.100.66", "203.0.113.9", "10.1.1.1"}, "203.0.113.0/24"},
		{"/lists-in-lines", []string{"198.51.100.66, 192.0.2.1", "2001:db8:1::abcd, 10.0.0.5", "10.1.1.1"}, "2001:db8:1::/48"},
		{"/garbage-line", []string{"203.0.113.9", "unknown", "10.1.1.1"}, "10.1.1.0/24"},
		{"/all-trusted", []string{"10.0.0.9", "10.0.0.8"}, "10.0.0.0/24"},
	}
	for _, tt := range tests {
		hr, err := http.NewRequest("POST", ts.url+"/api/event", strings.NewReader(pageview("example.com", "https://example.com"+tt.path)))
		if err != nil {
			t.Fatal(err)
		}
		hr.Header.Set("User-Agent", firefox)
		hr.Header["X-Forwarded-For"] = tt.lines // one header line each
		res, err := http.DefaultClient.Do(hr)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != 202 || res.Header.Get("X-Glimpse-Dropped") != "" {
			t.Fatalf("%s: %d %q", tt.path, res.StatusCode, res.Header.Get("X-Glimpse-Dropped"))
		}
	}
	// A field in the trailer of a chunked body arrives after any proxy's
	// header lines; fasthttp refuses X-Forwarded-For there (400), and
	// ClientIP reads the header section only.
	conn, err := net.Dial("tcp", strings.TrimPrefix(ts.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	body := pageview("example.com", "https://example.com/trailer")
	fmt.Fprintf(conn, "POST /api/event HTTP/1.1\r\nHost: x\r\nUser-Agent: %s\r\nX-Forwarded-For: 203.0.113.9\r\n"+
		"Transfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\nX-Forwarded-For: 198.51.100.66\r\n\r\n",
		firefox, len(body), body)
	status, _ := io.ReadAll(io.LimitReader(conn, 12))
	conn.Close()
	if string(status) != "HTTP/1.1 400" {
		t.Errorf("X-Forwarded-For in a trailer: %q, want HTTP/1.1 400", status)
	}
	ts.stop(t)
	for _, tt := range tests {
		var got string
		if err := ts.db.Conn.QueryRow(context.Background(), "SELECT ip_prefix FROM events WHERE pathname = ?", tt.path).Scan(&got); err != nil {
			t.Fatalf("%s: %v", tt.path, err)
		}
		if got != tt.want {
			t.Errorf("%s (X-Forwarded-For lines %q): stored %s, want %s", tt.path, tt.lines, got, tt.want)
		}
	}
	if n := ts.count(t, "SELECT count() FROM events WHERE pathname = '/trailer'"); n != 0 {
		t.Errorf("the event with an X-Forwarded-For trailer was stored")
	}
}

// TestRawIPAppearsNowhere sends events whose client addresses arrive
// through a trusted proxy, then dumps every table of the database in
// ClickHouse's Native format and searches the bytes for the addresses as
// text and as raw bytes; the server's log and metrics are searched too.
func TestRawIPAppearsNowhere(t *testing.T) {
	ts := start(t, "127.0.0.1/32")
	ips := []string{"203.0.113.77", "2001:db8:1::abcd", "198.51.100.23"}
	for i, ip := range ips {
		for _, body := range []string{
			pageview("example.com", "https://example.com/a"),
			`{"n":"Signup","u":"https://example.com/b","d":"example.com"}`,
			`{"n":"engagement","u":"https://example.com/b","d":"example.com","e":5000,"sd":50}`,
		} {
			if r := ts.do(t, req{body: body, header: map[string]string{"X-Forwarded-For": ip}}); r.status != 202 || r.dropped != "" {
				t.Fatalf("%s: %d %q %s", ip, r.status, r.dropped, r.body)
			}
		}
		// The same address also through the pixel and with a bad body.
		ts.do(t, req{method: "GET", path: fmt.Sprintf("/p.gif?n=pageview&u=https%%3A%%2F%%2Fexample.com%%2F%d&d=example.com", i), header: map[string]string{"X-Forwarded-For": ip}})
		ts.do(t, req{body: "{", header: map[string]string{"X-Forwarded-For": ip}})
	}
	ts.stop(t)
	needles := addrNeedles(ips)
	tables := []string{}
	rows, err := ts.db.Conn.Query(context.Background(), "SELECT name FROM system.tables WHERE database = currentDatabase() AND engine NOT LIKE '%View'")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var n string
		_ = rows.Scan(&n)
		tables = append(tables, n)
	}
	if len(tables) < 5 {
		t.Fatalf("only %d tables: %v", len(tables), tables)
	}
	total := 0
	for _, tbl := range tables {
		out, err := exec.Command("clickhouse-client", "--host", "127.0.0.1", "--port", strings.Split(ts.db.Addr, ":")[1],
			"--query", fmt.Sprintf("SELECT * FROM %s.%s FORMAT Native", ts.db.Database, tbl)).Output()
		if err != nil {
			t.Fatalf("dump %s: %v", tbl, err)
		}
		total += len(out)
		for _, n := range needles {
			if bytes.Contains(out, n) {
				t.Errorf("table %s holds the client address bytes %q", tbl, n)
			}
		}
	}
	if total < 1000 {
		t.Fatalf("dumped only %d bytes; the events did not arrive?", total)
	}
	var m bytes.Buffer
	ts.metrics.WritePrometheus(&m)
	for _, hay := range [][]byte{[]byte(ts.logs.String()), m.Bytes()} {
		for _, n := range needles[:2] {
			if bytes.Contains(hay, n) {
				t.Errorf("logs or metrics hold the client address %q", n)
			}
		}
	}
}

// addrNeedles are the forms in which a client address could leak: text,
// expanded text, and its bytes in both orders.
func addrNeedles(ips []string) [][]byte {
	var needles [][]byte
	for _, s := range ips {
		a := netip.MustParseAddr(s)
		needles = append(needles, []byte(s), []byte(a.StringExpanded()), a.AsSlice())
		b := a.AsSlice()
		rev := make([]byte, len(b))
		for i := range b {
			rev[i] = b[len(b)-1-i]
		}
		needles = append(needles, rev)
	}
	return needles
}

func TestBadInputIsRejectedAndCostsNothing(t *testing.T) {
	ts := start(t, "127.0.0.1/32")
	tests := []struct {
		name   string
		r      req
		status int
		body   string // substring
	}{
		{"malformed json", req{body: `{"n":"pageview",`}, 400, `{"error":"request body is not valid JSON"}`},
		{"not an object", req{body: `[1,2]`}, 400, `"error"`},
		{"missing url", req{body: `{"n":"pageview","d":"example.com"}`}, 400, `url (u) is required`},
		{"bad url", req{body: pageview("example.com", "ftp://example.com/")}, 400, `"error"`},
		{"wrong method", req{method: "GET"}, 405, `use POST`},
		{"content type", req{body: pageview("example.com", "https://example.com/"), ctype: "application/x-www-form-urlencoded"}, 415, `"error"`},
		{"too large", req{body: `{"n":"pageview","u":"https://example.com/","d":"example.com","p":{"k":"` + strings.Repeat("x", 20000) + `"}}`}, 413, `too large`},
		{"scroll over 100", req{body: `{"n":"engagement","u":"https://example.com/","d":"example.com","sd":101}`}, 400, `scroll`},
		{"pixel without url", req{method: "GET", path: "/p.gif?n=pageview&d=example.com"}, 400, "GIF89a"},
		{"unknown path", req{method: "GET", path: "/wp-login.php"}, 404, ``},
		{"binary garbage", req{body: "\x00\xff\xfe{{{"}, 400, `"error"`},
	}
	for _, tt := range tests {
		r := ts.do(t, tt.r)
		if r.status != tt.status || !strings.Contains(r.body, tt.body) {
			t.Errorf("%s: %d %q; want %d with %q", tt.name, r.status, r.body, tt.status, tt.body)
		}
	}
	// Over the listener's limit fasthttp answers 413 from Content-Length
	// alone, before reading the body, and closes the connection.
	conn, err := net.Dial("tcp", strings.TrimPrefix(ts.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(conn, "POST /api/event HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n", 100<<10)
	status, _ := io.ReadAll(io.LimitReader(conn, 12))
	conn.Close()
	if string(status) != "HTTP/1.1 413" {
		t.Errorf("100 KiB body: got %q, want HTTP/1.1 413", status)
	}
	if r := ts.do(t, req{method: "OPTIONS"}); r.status != 204 || r.header.Get("Access-Control-Allow-Origin") != "*" || r.header.Get("Access-Control-Allow-Credentials") != "" {
		t.Errorf("preflight: %d %v", r.status, r.header)
	}
	if r := ts.do(t, req{body: pageview("example.com", "https://example.com/after")}); r.status != 202 || r.dropped != "" {
		t.Fatalf("good event after bad ones: %d %q", r.status, r.dropped)
	}
	ts.stop(t)
	if got := ts.count(t, "SELECT count() FROM events"); got != 1 {
		t.Fatalf("%d rows, want only the good event", got)
	}
	var b strings.Builder
	ts.metrics.WritePrometheus(&b)
	for _, want := range []string{`glimpse_requests_rejected_total{reason="malformed_json"} 2`, `glimpse_requests_rejected_total{reason="too_large"} 2`,
		`glimpse_requests_rejected_total{reason="content_type"} 1`, `glimpse_requests_rejected_total{reason="method"} 1`} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

func TestSessionAcrossPageviews(t *testing.T) {
	ts := start(t, "127.0.0.1/32")
	h := map[string]string{"X-Forwarded-For": "203.0.113.20"}
	for _, body := range []string{
		`{"n":"pageview","u":"https://example.com/landing","d":"example.com","r":"https://www.google.com/"}`,
		`{"n":"engagement","u":"https://example.com/landing","d":"example.com","e":4000,"sd":70}`,
		`{"n":"pageview","u":"https://example.com/pricing","d":"example.com"}`,
	} {
		if r := ts.do(t, req{body: body, header: h}); r.status != 202 {
			t.Fatal(r.status, r.body)
		}
	}
	ts.stop(t)
	var visits, pageviews, bounces int64
	var entry, exit, source string
	err := ts.db.Conn.QueryRow(context.Background(), `SELECT sum(sign), sum(sign*pageviews), sum(sign*is_bounce),
		argMax(entry_page, version), argMax(exit_page, version), argMax(referrer_source, version) FROM sessions`).
		Scan(&visits, &pageviews, &bounces, &entry, &exit, &source)
	if err != nil {
		t.Fatal(err)
	}
	if visits != 1 || pageviews != 2 || bounces != 0 || entry != "/landing" || exit != "/pricing" || source != "Google" {
		t.Fatalf("session: visits %d pageviews %d bounces %d entry %q exit %q source %q", visits, pageviews, bounces, entry, exit, source)
	}
	if got := ts.count(t, "SELECT uniqExact(session_id) FROM events"); got != 1 {
		t.Fatalf("events carry %d session ids, want 1", got)
	}
}

// TestSessionEndsAtMidnight: a visitor browsing across 00:00 UTC gets a
// second session, under the new day's visitor id, and no session id is
// stored with two visitor ids, in events or in sessions: nothing joins
// one day's id to the next.
func TestSessionEndsAtMidnight(t *testing.T) {
	var mu sync.Mutex
	now := time.Date(2026, 5, 6, 23, 50, 0, 0, time.UTC)
	clock := func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		return now
	}
	ts := startWith(t, collector.Options{Now: clock}, "127.0.0.1/32")
	h := map[string]string{"X-Forwarded-For": "203.0.113.20"}
	for i, at := range []string{"23:50", "23:58", "00:01", "00:04"} {
		mu.Lock()
		now, _ = time.Parse(time.DateTime, fmt.Sprintf("2026-05-0%d %s:00", 6+i/2, at))
		mu.Unlock()
		if r := ts.do(t, req{body: pageview("example.com", fmt.Sprintf("https://example.com/%d", i)), header: h}); r.status != 202 || r.dropped != "" {
			t.Fatalf("event at %s: %d %q %q", at, r.status, r.dropped, r.body)
		}
	}
	ts.stop(t)
	var sessions, visitors uint64
	if err := ts.db.Conn.QueryRow(context.Background(), "SELECT uniqExact(session_id), uniqExact(visitor_id) FROM events").Scan(&sessions, &visitors); err != nil {
		t.Fatal(err)
	}
	if sessions != 2 || visitors != 2 {
		t.Errorf("events: %d sessions of %d visitor ids across midnight, want 2 of 2", sessions, visitors)
	}
	if got := ts.count(t, "SELECT toUInt64(sum(sign)) FROM sessions"); got != 2 {
		t.Errorf("sessions: %d visits, want 2", got)
	}
	// One session id with two visitor ids anywhere would join the days.
	if got := ts.count(t, `SELECT count() FROM (
		SELECT session_id FROM (SELECT session_id, visitor_id FROM events UNION ALL SELECT session_id, visitor_id FROM sessions)
		GROUP BY session_id HAVING uniqExact(visitor_id) > 1)`); got != 0 {
		t.Errorf("%d session ids are stored with two visitor ids", got)
	}
	if got := ts.count(t, "SELECT count() FROM (SELECT session_id FROM events GROUP BY session_id HAVING uniqExact(toDate(ts)) > 1)"); got != 0 {
		t.Errorf("%d sessions hold events of two UTC days", got)
	}
}

func TestRateLimitPerVisitor(t *testing.T) {
	now := time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC)
	ts := startWith(t, collector.Options{RateLimit: 5, Now: func() time.Time { return now }}, "127.0.0.1/32")
	limited := 0
	for i := range 8 {
		r := ts.do(t, req{body: pageview("example.com", fmt.Sprintf("https://example.com/%d", i)), header: map[string]string{"X-Forwarded-For": "203.0.113.1"}})
		if r.dropped == "rate-limit" {
			limited++
		}
	}
	// Another visitor in the same second is not limited.
	if r := ts.do(t, req{body: pageview("example.com", "https://example.com/other"), header: map[string]string{"X-Forwarded-For": "203.0.113.2"}}); r.dropped != "" {
		t.Fatalf("second visitor dropped: %q", r.dropped)
	}
	// Engagement reports that find no session start none, and are limited
	// all the same.
	reports := 0
	for range 8 {
		r := ts.do(t, req{body: `{"n":"engagement","u":"https://example.com/","d":"example.com","e":100}`, header: map[string]string{"X-Forwarded-For": "203.0.113.3"}})
		if r.dropped == "rate-limit" {
			reports++
		}
	}
	ts.stop(t)
	if limited != 3 || reports != 3 {
		t.Fatalf("%d of 8 events and %d of 8 reports without a session in one second rate-limited, want 3 over the limit of 5", limited, reports)
	}
	if got := ts.count(t, "SELECT count() FROM events"); got != 11 {
		t.Fatalf("%d rows, want 11", got)
	}
}

// TestMalformedRequestIsCounted sends a request line fasthttp cannot
// parse: a 400, counted under its own reason, and the listener keeps serving.
func TestMalformedRequestIsCounted(t *testing.T) {
	ts := start(t)
	conn, err := net.Dial("tcp", strings.TrimPrefix(ts.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprint(conn, "POST /api/event HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n")
	status, _ := io.ReadAll(io.LimitReader(conn, 12))
	conn.Close()
	if string(status) != "HTTP/1.1 400" {
		t.Fatalf("got %q, want HTTP/1.1 400", status)
	}
	if r := ts.do(t, req{body: pageview("example.com", "https://example.com/")}); r.status != 202 {
		t.Fatalf("listener after a malformed request: %d", r.status)
	}
	var b strings.Builder
	ts.metrics.WritePrometheus(&b)
	if !strings.Contains(b.String(), `glimpse_requests_rejected_total{reason="malformed_request"} 1`) {
		t.Errorf("malformed request not counted:\n%s", b.String())
	}
}

// TestRevenueOutOfRangeIsRejected: an amount whose micros do not fit the
// revenue_micros column (1e300 was stored as -9223372036854775808) is a
// 400, counted, storing nothing; the largest amount accepted is stored
// exactly.
func TestRevenueOutOfRangeIsRejected(t *testing.T) {
	ts := start(t)
	custom := func(amount string) string {
		return `{"n":"Purchase","u":"https://example.com/checkout","d":"example.com","$":{"amount":` + amount + `,"currency":"EUR"}}`
	}
	pixel := func(amount string) string {
		return "/p.gif?n=Purchase&u=https%3A%2F%2Fexample.com%2Fcheckout&d=example.com&%24=" +
			url.QueryEscape(`{"amount":`+amount+`,"currency":"EUR"}`)
	}
	for _, amount := range []string{"1e300", `"1e300"`, "9223372036854.775807", "1000000000000.01", "1e13", "-1e300"} {
		if r := ts.do(t, req{body: custom(amount)}); r.status != 400 || !strings.Contains(r.body, "revenue amount") {
			t.Errorf("POST amount %s: %d %q, want 400 naming the revenue amount", amount, r.status, r.body)
		}
		if r := ts.do(t, req{method: "GET", path: pixel(amount)}); r.status != 400 {
			t.Errorf("GET /p.gif amount %s: %d, want 400", amount, r.status)
		}
	}
	if r := ts.do(t, req{body: custom("1e12")}); r.status != 202 || r.dropped != "" {
		t.Fatalf("amount 1e12: %d %q %q", r.status, r.dropped, r.body)
	}
	ts.stop(t)
	if got := ts.count(t, "SELECT count() FROM events"); got != 1 {
		t.Fatalf("%d rows, want only the amount in range", got)
	}
	if got := ts.count(t, "SELECT toUInt64(revenue_micros) FROM events"); got != 1e18 {
		t.Errorf("revenue_micros %d, want 1e18", got)
	}
	var b strings.Builder
	ts.metrics.WritePrometheus(&b)
	if want := `glimpse_requests_rejected_total{reason="bad_revenue_amount"} 12`; !strings.Contains(b.String(), want) {
		t.Errorf("metrics lack %s", want)
	}
}
