package beacon

import (
	"context"
	"fmt"
	"html"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/glimpse-analytics/glimpse/collector"
	"github.com/glimpse-analytics/glimpse/collector/locate"
	"github.com/glimpse-analytics/glimpse/collector/locate/geotest"
	"github.com/glimpse-analytics/glimpse/collector/session"
	"github.com/glimpse-analytics/glimpse/collector/sink"
	"github.com/glimpse-analytics/glimpse/internal/chtest"
	"github.com/glimpse-analytics/glimpse/internal/config"
	"github.com/glimpse-analytics/glimpse/internal/model"
)

// signalSites differ in mode and in the signals they honour.
const signalSites = `sites:
  - domain: strict.example
  - domain: agg.example
    privacy: {mode: aggregate, honor_dnt: true}
  - domain: consent.example
    privacy: {mode: consented, subject_key: 0123456789abcdef0123456789abcdef, honor_gpc: false, honor_dnt: true}
email:
  signing_keys:
    - {name: k1, secret: "0123456789abcdef0123456789abcdef-test"}
`

const (
	gpcOut       = "Your browser sends Global Privacy Control, which opts you out of Glimpse analytics."
	dntOut       = "Your browser sends Do Not Track, which opts you out of Glimpse analytics."
	nothing      = "Nothing about your visits is stored."
	aggKept      = "still count in the site’s totals, but each is stored with only the page, the time, the event’s name and your country and nothing else: no identifier, no part of your IP address, no region, browser or device."
	aggOut       = "Your page views and events " + aggKept
	aggIfOut     = "If you opt out, your page views and events " + aggKept
	strictIfOut  = "If you opt out, nothing about your visits is stored."
	tellsApart   = "Glimpse tells your visits apart for one day at most"
	consentLink  = "A site may also link your visits to your account there"
	gpcSameWay   = "A browser that sends Global Privacy Control is opted out in the same way."
	dntSameWay   = "A browser that sends Do Not Track is opted out in the same way."
	bothSameWay  = "A browser that sends Global Privacy Control or Do Not Track is opted out in the same way."
	gpcIgnored   = "Your browser sends Global Privacy Control, but this site does not treat it as an opt-out."
	dntIgnored   = "Your browser sends Do Not Track, but this site does not treat it as an opt-out."
	notCounted   = "not counted"
	gpcStillOuts = "Without the cookie, your browser’s Global Privacy Control still opts you out."
)

// TestOptOutPageSignals asks the page, over HTTP, about a browser with and
// without the opt-out cookie, Sec-GPC: 1 and DNT: 1, on one site of each
// privacy mode and on all of them: its state must be what the privacy
// gate does with that browser on those sites, and what it says about an
// opted-out browser must hold in the site's mode.
func TestOptOutPageSignals(t *testing.T) {
	sites, err := config.Parse("glimpse.yaml", []byte(signalSites))
	if err != nil {
		t.Fatal(err)
	}
	p, err := NewOptOut(OptOutOptions{PublicURL: publicURL, Sites: sites, Geo: true})
	if err != nil {
		t.Fatal(err)
	}
	c := serve(t, p.Handler)
	tests := []struct {
		site          string
		cookie        bool
		gpc, dnt      bool
		want, notWant []string
	}{
		// strict: GPC honoured (the default), DNT not.
		{"strict.example", false, false, false, []string{stateCounted, tellsApart, strictIfOut, gpcSameWay}, []string{"Do Not Track", consentLink}},
		{"strict.example", false, true, false, []string{gpcOut, nothing, "The button also keeps you opted out when your browser does not send it."}, []string{stateCounted, tellsApart}},
		{"strict.example", false, false, true, []string{stateCounted, dntIgnored, strictIfOut}, []string{dntOut}},
		{"strict.example", false, true, true, []string{gpcOut, nothing}, []string{stateCounted, "Do Not Track, which"}},
		{"strict.example", true, false, false, []string{stateOut, nothing}, []string{stateCounted, "Without the cookie"}},
		{"strict.example", true, true, false, []string{stateOut, nothing, gpcStillOuts}, []string{stateCounted}},
		// aggregate: both signals honoured; an opted-out browser is still
		// counted, anonymously.
		{"agg.example", false, false, false, []string{stateCounted, tellsApart, aggIfOut, bothSameWay}, []string{notCounted}},
		{"agg.example", false, true, false, []string{gpcOut, aggOut}, []string{stateCounted, notCounted, nothing}},
		{"agg.example", false, false, true, []string{dntOut, aggOut}, []string{stateCounted, notCounted}},
		{"agg.example", false, true, true, []string{gpcOut, aggOut}, []string{stateCounted}},
		{"agg.example", true, false, false, []string{stateOut, aggOut}, []string{notCounted, nothing}},
		{"agg.example", true, false, true, []string{stateOut, aggOut, "Without the cookie, your browser’s Do Not Track still opts you out."}, nil},
		// consented: GPC not honoured here, DNT is.
		{"consent.example", false, false, false, []string{stateCounted, tellsApart, consentLink, strictIfOut, dntSameWay}, []string{"Global Privacy Control"}},
		{"consent.example", false, true, false, []string{stateCounted, gpcIgnored, consentLink, strictIfOut}, []string{gpcOut}},
		{"consent.example", false, false, true, []string{dntOut, nothing}, []string{stateCounted}},
		{"consent.example", false, true, true, []string{dntOut, nothing}, []string{stateCounted, "Global Privacy Control, which"}},
		{"consent.example", true, true, false, []string{stateOut, nothing}, []string{"still opts you out"}},
		// All three sites: what holds on which kind of site, never for all
		// what holds for some.
		{"", false, false, false, []string{stateCounted, tellsApart, consentLink,
			"If you opt out, sites in privacy mode strict or consented store nothing about your visits, and sites in mode aggregate still count your page views and events in their totals, but store each with only the page, the time, the event’s name and your country and nothing else",
			"Some of these sites also opt out a browser that sends Global Privacy Control or Do Not Track."},
			[]string{gpcSameWay, dntSameWay, notCounted}},
		{"", false, true, false, []string{
			"Your browser sends Global Privacy Control. Some of the sites this collector measures treat it as an opt-out; the others count your visits, without cookies.",
			"Where it is respected, sites in privacy mode strict or consented store nothing about your visits, and sites in mode aggregate still count",
			"store each with only the page, the time, the event’s name and your country and nothing else: no identifier, no part of your IP address, no region, browser or device. Elsewhere, " + tellsApart,
			"If you opt out there, nothing about your visits is stored.", consentLink},
			[]string{gpcOut, stateCounted}},
		{"", false, true, true, []string{"Your browser sends Global Privacy Control and Do Not Track, which opt you out of Glimpse analytics.",
			"Sites in privacy mode strict or consented store nothing about your visits, and sites in mode aggregate still count"},
			[]string{stateCounted, tellsApart}},
		{"", false, false, true, []string{"Your browser sends Do Not Track. Some of the sites this collector measures treat it as an opt-out"}, []string{dntOut}},
		{"", true, false, true, []string{stateOut, "Without the cookie, your browser’s Do Not Track still opts you out on some of these sites."}, nil},
	}
	for _, tt := range tests {
		name := fmt.Sprintf("%s cookie=%t gpc=%t dnt=%t", tt.site, tt.cookie, tt.gpc, tt.dnt)
		t.Run(name, func(t *testing.T) {
			body := getPage(t, c, tt.site, tt.cookie, tt.gpc, tt.dnt)
			for _, w := range tt.want {
				if !strings.Contains(body, w) {
					t.Errorf("page lacks %q", w)
				}
			}
			for _, w := range tt.notWant {
				if strings.Contains(body, w) {
					t.Errorf("page has %q", w)
				}
			}
			if t.Failed() {
				t.Logf("page text:\n%s", pageText(body))
			}
		})
	}
}

// getPage GETs /optout for site ("": all) as a browser with the given
// opt-out cookie and signals, and returns the page with its entities
// decoded.
func getPage(t *testing.T, c *fasthttp.Client, site string, cookie, gpc, dnt bool) string {
	t.Helper()
	uri := "/optout"
	if site != "" {
		uri += "?site=" + site
	}
	var hdr []string
	if cookie {
		hdr = append(hdr, "Cookie", cookieOut)
	}
	if gpc {
		hdr = append(hdr, "Sec-GPC", "1")
	}
	if dnt {
		hdr = append(hdr, "DNT", "1")
	}
	resp := do(t, c, "GET", uri, hdr...)
	if resp.StatusCode() != 200 {
		t.Fatalf("GET %s: %d", uri, resp.StatusCode())
	}
	if v := string(resp.Header.Peek("Vary")); !strings.Contains(v, "Sec-GPC") || !strings.Contains(v, "DNT") {
		t.Errorf("Vary %q: the page depends on Sec-GPC and DNT", v)
	}
	return html.UnescapeString(string(resp.Body()))
}

// pageText is the page's text between <main> and </main>, for failure logs.
func pageText(body string) string {
	if i, j := strings.Index(body, "<main>"), strings.Index(body, "</main>"); i >= 0 && j > i {
		return body[i:j]
	}
	return body
}

// TestOptOutPageListsEveryEventColumn: every column of an events row is
// named on the page, or says only which site and what kind of row.
func TestOptOutPageListsEveryEventColumn(t *testing.T) {
	covered := coveredColumns()
	for _, col := range model.EventColumns() {
		if !covered[col] {
			t.Errorf("events.%s is stored, but the opt-out page does not say so: add it to collected (collected.go)", col)
		}
	}
	body := allItemsPage(t)
	for i := range collected {
		if it := &collected[i]; it.text != "" && !strings.Contains(body, it.text) {
			t.Errorf("page lacks %q", it.text)
		}
	}
	for _, w := range []string{"connection type and speed", "size class of your screen", "how far you scrolled", "files you download",
		"outbound links", "custom events", "properties", "campaign tags", "your country, region and city", "opens and link clicks", "hash of your account id"} {
		if !strings.Contains(body, w) {
			t.Errorf("page lacks %q", w)
		}
	}
}

// allItemsPage is the page for sites on which every item of collected is
// stored: geo on, a consented site, email keys.
func allItemsPage(t *testing.T) string {
	t.Helper()
	yaml := strings.Replace(signalSites, "sites:\n", "sites:\n  - domain: city.example\n    privacy: {geo: city}\n", 1)
	sites, err := config.Parse("glimpse.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	p, err := NewOptOut(OptOutOptions{PublicURL: publicURL, Sites: sites, Geo: true})
	if err != nil {
		t.Fatal(err)
	}
	return getPage(t, serve(t, p.Handler), "consent.example", false, false, false) +
		getPage(t, serve(t, p.Handler), "city.example", false, false, false)
}

func coveredColumns() map[string]bool {
	covered := map[string]bool{}
	for _, c := range rowColumns {
		covered[c] = true
	}
	for i := range collected {
		for _, c := range collected[i].columns {
			covered[c] = true
		}
	}
	return covered
}

// rawTables hold rows about one visit, visitor or email recipient; every
// column of theirs must be on the page. derivedTables hold the rest.
var (
	rawTables     = []string{"events", "sessions", "email_optouts"}
	derivedTables = map[string]string{
		"events_hourly":        "hourly counts of the events",
		"pages_hourly":         "hourly counts per page",
		"sessions_hourly":      "hourly sums of the sessions",
		"sessions_dims_hourly": "hourly sums of the sessions per dimension value",
		"sessions_dims_input":  "engine Null: stores nothing",
		"sealed_salts":         "the daily keys of the visitor hash, sealed",
		"schema_migrations":    "applied migrations",
		"report_sends":         "reports sent to the site's staff (keyed hashes of their addresses)",
		"report_unsubscribes":  "staff who unsubscribed from reports (keyed hashes)",
		"segments":             "filter sets the site's staff saved",
		"annotations":          "chart notes the site's staff wrote",
	}
)

// TestOptOutPageListsEveryStoredColumn holds the page to the migrated
// schema on the real server: every column of a table that stores rows
// about a visitor is on the page, every column the page claims exists,
// and a new table must be classified here first.
func TestOptOutPageListsEveryStoredColumn(t *testing.T) {
	db := chtest.Migrated(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rows, err := db.Conn.Query(ctx, `SELECT c.table, c.name FROM system.columns AS c
		WHERE c.database = currentDatabase() AND c.table IN (
			SELECT name FROM system.tables WHERE database = currentDatabase() AND engine NOT LIKE '%View')`)
	if err != nil {
		t.Fatal(err)
	}
	covered := coveredColumns()
	stored := map[string]bool{}
	tables, unknown := map[string]bool{}, map[string]bool{}
	for rows.Next() {
		var table, col string
		if err := rows.Scan(&table, &col); err != nil {
			t.Fatal(err)
		}
		tables[table] = true
		switch {
		case slices.Contains(rawTables, table):
			stored[col] = true
			if !covered[col] {
				t.Errorf("%s.%s is stored, but the opt-out page does not say so: add it to collected (collected.go)", table, col)
			}
		case derivedTables[table] == "" && !unknown[table]:
			unknown[table] = true
			t.Errorf("table %s: is it about a visitor? list it in rawTables or derivedTables", table)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	rows.Close()
	for _, table := range rawTables {
		if !tables[table] {
			t.Errorf("no table %s: migrations did not run?", table)
		}
	}
	for c := range covered {
		if !stored[c] {
			t.Errorf("collected names column %s, which no raw table has", c)
		}
	}
}

// TestOptOutPageMatchesTheGate serves the page and the real collector on
// one listener over ClickHouse, asks the page about every combination of
// site mode, cookie, Sec-GPC and DNT, sends a full event and an outbound
// click with the same headers, and holds the stored rows to what the
// page said: nothing, the anonymous columns only, or a counted visit.
func TestOptOutPageMatchesTheGate(t *testing.T) {
	db := chtest.Migrated(t)
	sites, err := config.Parse("glimpse.yaml", []byte(signalSites))
	if err != nil {
		t.Fatal(err)
	}
	geoPath := geotest.Write(t, "GeoIP2-City", 6, []geotest.Network{{CIDR: "203.0.113.0/24", Country: "DE", Subdivision: "BE", City: "Berlin"}})
	geo, err := locate.Open(geoPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { geo.Close() })
	proxies, err := locate.ParseTrustedProxies([]string{"127.0.0.1/32"})
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	writer := sink.New(sink.Options{Conn: db.Conn, BatchSize: 1000, Interval: 50 * time.Millisecond, Log: log})
	sessions := session.NewCache(session.CacheConfig{})
	writer.WriteSessions(sessions)
	srv, err := collector.New(collector.Options{Sites: sites, Writer: writer, Geo: geo, Proxies: proxies, Sessions: sessions, RateLimit: -1, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	page, err := NewOptOut(OptOutOptions{PublicURL: publicURL, Sites: sites, Geo: true})
	if err != nil {
		t.Fatal(err)
	}
	routes := srv.Routes()
	routes[OptOutPath] = page.Handler
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		if h := routes[string(ctx.Path())]; h != nil {
			h(ctx)
			return
		}
		srv.NotFound(ctx)
	}}
	srv.HTTPErrors().Install(hs)
	go hs.Serve(ln) //nolint:errcheck // ends with Shutdown
	base := "http://" + ln.Addr().String()
	pages := &fasthttp.Client{Dial: func(string) (net.Conn, error) { return net.Dial("tcp", ln.Addr().String()) }}

	type class int
	const (
		none class = iota
		anonymous
		counted
	)
	want := map[string]class{}
	n := 0
	for _, site := range []string{"strict.example", "agg.example", "consent.example"} {
		for combo := range 8 {
			cookie, gpc, dnt := combo&1 != 0, combo&2 != 0, combo&4 != 0
			body := getPage(t, pages, site, cookie, gpc, dnt)
			var c class
			switch {
			case strings.Contains(body, nothing):
				c = none
			case strings.Contains(body, aggOut):
				c = anonymous
			case strings.Contains(body, stateCounted) && strings.Contains(body, tellsApart):
				c = counted
			default:
				t.Fatalf("%s cookie=%t gpc=%t dnt=%t: the page says neither that nothing is stored, nor what is kept, nor that visits are counted:\n%s",
					site, cookie, gpc, dnt, pageText(body))
			}
			n++
			path := fmt.Sprintf("/m%d", n)
			want[path] = c
			hdr := http.Header{"User-Agent": {fmt.Sprintf("Mozilla/5.0 (X11; Linux x86_64; rv:%d.0) Gecko/20100101 Firefox/%d.0", 100+n, 100+n)},
				"Content-Type": {"text/plain"}, "X-Forwarded-For": {"203.0.113.50"}}
			if cookie {
				hdr.Set("Cookie", cookieOut)
			}
			if gpc {
				hdr.Set("Sec-GPC", "1")
			}
			if dnt {
				hdr.Set("DNT", "1")
			}
			u := "https://" + site + path + "?utm_source=news&utm_medium=mail&utm_campaign=june&utm_content=a&utm_term=b"
			for _, ev := range []string{
				fmt.Sprintf(`{"n":"Signup","u":%q,"d":%q,"r":"https://www.google.com/","w":1280,"ct":"4g","dl":10,"rtt":50,"sv":1,"e":5000,"sd":50,"p":{"plan":"pro"},"$":{"amount":"12.5","currency":"EUR"},"c":1,"uid":"u%d"}`, u, site, n),
				fmt.Sprintf(`{"n":"Outbound Link: Click","u":%q,"d":%q,"tu":"https://other.example/x"}`, u, site),
			} {
				req, _ := http.NewRequest("POST", base+"/api/event", strings.NewReader(ev))
				req.Header = hdr.Clone()
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != 202 {
					t.Fatalf("%s: %d", ev, resp.StatusCode)
				}
			}
		}
	}
	_ = hs.Shutdown()
	cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if lost, err := writer.Close(cctx); err != nil || lost != 0 {
		t.Fatalf("writer close: lost %d, %v", lost, err)
	}

	// Which columns of each stored row hold a value.
	cols := model.EventColumns()
	var exprs []string
	typeRows, err := db.Conn.Query(cctx, "SELECT name, type FROM system.columns WHERE database = currentDatabase() AND table = 'events'")
	if err != nil {
		t.Fatal(err)
	}
	types := map[string]string{}
	for typeRows.Next() {
		var name, typ string
		if err := typeRows.Scan(&name, &typ); err != nil {
			t.Fatal(err)
		}
		types[name] = typ
	}
	typeRows.Close()
	for _, c := range cols {
		switch typ := types[c]; {
		case typ == "String" || strings.HasPrefix(typ, "Array"):
			exprs = append(exprs, "toUInt8(notEmpty("+c+"))")
		case strings.HasPrefix(typ, "UInt") || strings.HasPrefix(typ, "Int") || strings.HasPrefix(typ, "Float"):
			exprs = append(exprs, "toUInt8("+c+" != 0)")
		default: // UUID, DateTime, Enum8: always set
			exprs = append(exprs, "toUInt8(1)")
		}
	}
	rows, err := db.Conn.Query(cctx, "SELECT pathname, "+strings.Join(exprs, ", ")+" FROM events")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	allowed := map[string]bool{}
	var anonCols []string
	for i := range collected {
		anonCols = append(anonCols, collected[i].anonColumns...)
	}
	for _, c := range append(slices.Clone(rowColumns), anonCols...) {
		allowed[c] = true
	}
	for rows.Next() {
		var path string
		set := make([]uint8, len(cols))
		dest := []any{&path}
		for i := range set {
			dest = append(dest, &set[i])
		}
		if err := rows.Scan(dest...); err != nil {
			t.Fatal(err)
		}
		path, _, _ = strings.Cut(path, "?")
		got[path]++
		var filled []string
		for i, c := range cols {
			if set[i] == 1 {
				filled = append(filled, c)
			}
		}
		switch want[path] {
		case none:
			t.Errorf("%s: the page said nothing is stored, but a row has %v", path, filled)
		case anonymous:
			for _, c := range filled {
				if !allowed[c] {
					t.Errorf("%s: the page said an opted-out event keeps only %s, but the row has %s", path, strings.Join(anonCols, ", "), c)
				}
			}
			for _, c := range anonCols {
				if !slices.Contains(filled, c) {
					t.Errorf("%s: the page says an opted-out event keeps %s, but the row does not", path, c)
				}
			}
		case counted:
			if !slices.Contains(filled, "visitor_id") || !slices.Contains(filled, "ip_prefix") {
				t.Errorf("%s: the page said the visit is counted, but the row has only %v", path, filled)
			}
		}
	}
	rows.Close()
	classes := map[class]int{}
	for path, c := range want {
		classes[c]++
		if c != none && got[path] != 2 {
			t.Errorf("%s: %d rows, want the 2 events sent", path, got[path])
		}
	}
	if classes[none] == 0 || classes[anonymous] == 0 || classes[counted] == 0 {
		t.Errorf("the combinations cover %v; want every kind", classes)
	}
}
