package reports

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"mime/multipart"
	"net"
	"net/http"
	"net/mail"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/glimpse-analytics/glimpse/internal/smtptest"

	"github.com/VictoriaMetrics/metrics"
	"github.com/valyala/fasthttp"

	"github.com/glimpse-analytics/glimpse/aggregator"
	"github.com/glimpse-analytics/glimpse/aggregator/api"
	"github.com/glimpse-analytics/glimpse/collector/sink"
	"github.com/glimpse-analytics/glimpse/internal/apptest"
	"github.com/glimpse-analytics/glimpse/internal/chtest"
	"github.com/glimpse-analytics/glimpse/internal/config"
	"github.com/glimpse-analytics/glimpse/internal/model/modeltest"
	"github.com/glimpse-analytics/glimpse/internal/storage/seed"
)

const signingKey = "test-report-signing-key-0123456789abcdef"

// testSites is a sites file with the relay at addr and the given site
// entries.
func testSites(t *testing.T, addr, sites string) *config.File {
	t.Helper()
	t.Setenv("TEST_SMTP_PASSWORD", smtptest.Password)
	t.Setenv("TEST_REPORT_KEY", signingKey)
	host, port, _ := net.SplitHostPort(addr)
	y := `smtp:
  host: ` + host + `
  port: ` + port + `
  from: "Glimpse Reports <reports@glimpse.test>"
  username: ` + smtptest.User + `
  password_env: TEST_SMTP_PASSWORD
  signing_key_env: TEST_REPORT_KEY
sites:
` + sites + `
api_keys:
  - name: test
    sha256: "` + apptest.KeyHash("test-key") + `"
    sites: [example.com]
`
	f, err := config.Parse("test.yaml", []byte(y))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// clock is a settable time source.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

// mail is a received message, parsed.
type parsed struct {
	Header     mail.Header
	Subject    string
	Text, HTML string
}

func parse(t *testing.T, r smtptest.Received) parsed {
	t.Helper()
	m, err := mail.ReadMessage(strings.NewReader(string(r.Data)))
	if err != nil {
		t.Fatalf("unreadable message: %v", err)
	}
	var p parsed
	p.Header = m.Header
	dec := new(mime.WordDecoder)
	if p.Subject, err = dec.DecodeHeader(m.Header.Get("Subject")); err != nil {
		t.Fatal(err)
	}
	mt, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/alternative" {
		t.Fatalf("Content-Type %q", m.Header.Get("Content-Type"))
	}
	mr := multipart.NewReader(m.Body, params["boundary"])
	var types []string
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(part) // quoted-printable is decoded by the reader
		b = []byte(strings.ReplaceAll(string(b), "\r\n", "\n"))
		ct := part.Header.Get("Content-Type")
		types = append(types, ct)
		switch ct {
		case "text/plain; charset=utf-8":
			p.Text = string(b)
		case "text/html; charset=utf-8":
			p.HTML = string(b)
		}
	}
	if len(types) != 2 || p.Text == "" || p.HTML == "" {
		t.Fatalf("parts %q", types)
	}
	return p
}

// unsubscribeServer serves the service's unsubscribe links on a real
// listener and returns its base URL.
func unsubscribeListener(t *testing.T) (net.Listener, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln, "http://" + ln.Addr().String()
}

func serveUnsubscribe(t *testing.T, ln net.Listener, s *Service) {
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		if strings.HasPrefix(string(ctx.Path()), UnsubscribePrefix) {
			s.ServeUnsubscribe(ctx)
			return
		}
		ctx.Error("not found", 404)
	}}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Shutdown() })
}

// statsAPI answers v1 requests as the Stats API does at now.
func statsAPI(t *testing.T, e *aggregator.Engine, sites *config.File, now time.Time, path string, kv ...string) map[string]any {
	t.Helper()
	a, err := api.New(api.Options{Engine: e, Sites: sites, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	v := url.Values{"site_id": {"example.com"}}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Set(kv[i], kv[i+1])
	}
	var rc fasthttp.RequestCtx
	rc.Request.SetRequestURI(path + "?" + v.Encode())
	rc.Request.Header.Set("Authorization", "Bearer test-key")
	a.Routes()[path](&rc)
	if rc.Response.StatusCode() != 200 {
		t.Fatalf("%s: %d %s", path, rc.Response.StatusCode(), rc.Response.Body())
	}
	var out map[string]any
	if err := json.Unmarshal(rc.Response.Body(), &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// jsonValue turns a decoded JSON number back into what the engine gives.
func jsonValue(v any) any {
	if f, ok := v.(float64); ok && f == float64(int64(f)) {
		return int64(f)
	}
	return v
}

var seedEnd = time.Date(2025, 3, 31, 0, 0, 0, 0, time.UTC)

// seeded is a database with 40 days of example.com up to seedEnd.
func seeded(t *testing.T) *chtest.DB {
	t.Helper()
	db := chtest.Migrated(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := seed.Write(ctx, sink.New(sink.Options{Conn: db.Conn, BatchSize: 5000, Interval: 50 * time.Millisecond, SessionInterval: seed.SessionInterval}),
		seed.Options{Site: "example.com", Events: 20000, Days: 40, End: seedEnd, Seed: 42, Visitors: 2500}); err != nil {
		t.Fatalf("seed: %v", err)
	}
	return db
}

func TestScheduledReports(t *testing.T) {
	db := seeded(t)
	ctx := context.Background()
	relay := smtptest.Start(t, true)
	sites := testSites(t, relay.Addr, `  - domain: example.com
    timezone: Europe/Berlin
    privacy:
      k_anonymity: 5
      aggregates: exact
    reports:
      - every: week
        recipients: [ana@example.com, Bo@Example.com]
      - every: month
        recipients: [ana@example.com]`)
	var logs smtptest.LogBuffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	engine := aggregator.New(aggregator.Options{Conn: db.Conn})
	ln, base := unsubscribeListener(t)
	// Monday 00:30 in Berlin: the week has ended but is not due for
	// another half hour.
	clk := &clock{t: time.Date(2025, 3, 30, 22, 30, 0, 0, time.UTC)}
	newService := func() *Service {
		s, err := New(Options{Sites: sites, Engine: engine, Conn: db.Conn, PublicURL: base, Log: log, Now: clk.now,
			TLS: &tls.Config{RootCAs: relay.Roots}})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	svc := newService()
	serveUnsubscribe(t, ln, svc)

	svc.Tick(ctx)
	if got := relay.Take(); len(got) != 1 || !strings.Contains(string(got[0].Data), "monthly report") {
		// The month (February) is long due; the week is not yet.
		t.Fatalf("before the week is due: %d messages, want the monthly one only", len(got))
	}

	clk.t = time.Date(2025, 3, 31, 10, 0, 0, 0, time.UTC)
	svc.Tick(ctx)
	msgs := relay.Take()
	if len(msgs) != 2 {
		t.Fatalf("got %d messages, want 2 weekly reports", len(msgs))
	}
	agg := statsAPI(t, engine, sites, clk.t, api.PathAggregate, "period", "7d", "date", "2025-03-30", "compare", "previous_period",
		"metrics", "visitors,visits,pageviews,bounce_rate,visit_duration")["results"].(map[string]any)
	links := map[string]string{}
	for _, r := range msgs {
		if !r.TLS {
			t.Errorf("message to %s was sent without TLS", r.To)
		}
		if r.From != "reports@glimpse.test" {
			t.Errorf("MAIL FROM %q", r.From)
		}
		m := parse(t, r)
		h := m.Header
		if h.Get("To") != r.To || h.Get("From") != `"Glimpse Reports" <reports@glimpse.test>` {
			t.Errorf("To %q (RCPT %q), From %q", h.Get("To"), r.To, h.Get("From"))
		}
		if want := "Glimpse weekly report for example.com: Mar 24–30, 2025"; m.Subject != want {
			t.Errorf("Subject %q, want %q", m.Subject, want)
		}
		if d, err := h.Date(); err != nil || !d.Equal(clk.t) {
			t.Errorf("Date %q: %v", h.Get("Date"), err)
		}
		if !regexp.MustCompile(`^<[0-9a-f]{24}\.\d+@glimpse\.test>$`).MatchString(h.Get("Message-ID")) {
			t.Errorf("Message-ID %q", h.Get("Message-ID"))
		}
		lu := h.Get("List-Unsubscribe")
		link := strings.Trim(lu, "<>")
		if !strings.HasPrefix(lu, "<"+base+UnsubscribePrefix) || !strings.Contains(m.Text, link) || !strings.Contains(m.HTML, `href="`+link+`"`) {
			t.Errorf("List-Unsubscribe %q not in both parts", lu)
		}
		if h.Get("List-Unsubscribe-Post") != "List-Unsubscribe=One-Click" {
			t.Errorf("List-Unsubscribe-Post %q", h.Get("List-Unsubscribe-Post"))
		}
		links[r.To] = link
		// Every headline number is the Stats API's for the same range.
		for _, hl := range headline {
			o := agg[hl.name].(map[string]any)
			mt := Metric{Name: hl.name, Change: jsonValue(o["change"]), Diff: hl.name == "bounce_rate"}
			line := fmt.Sprintf("%-16s %s  (%s)", hl.label, formatValue(hl.name, jsonValue(o["value"])), formatChange(mt))
			if !strings.Contains(m.Text, line) {
				t.Errorf("text part lacks %q:\n%s", line, m.Text)
			}
			if !strings.Contains(m.HTML, ">"+formatValue(hl.name, jsonValue(o["value"]))+"<") {
				t.Errorf("HTML part lacks %s %v", hl.name, o["value"])
			}
		}
		for _, b := range []struct{ property, key string }{{"event:page", "page"}, {"visit:source", "source"}, {"visit:country", "country"}} {
			rows := statsAPI(t, engine, sites, clk.t, api.PathBreakdown, "period", "7d", "date", "2025-03-30", "property", b.property,
				"metrics", "visitors", "limit", "5")["results"].([]any)
			if len(rows) == 0 {
				t.Errorf("%s: no rows to compare", b.property)
			}
			for _, row := range rows {
				o := row.(map[string]any)
				if o[b.key] == aggregator.Other {
					if strings.Contains(m.Text, aggregator.Other) {
						t.Errorf("the report lists the folded rows as a top %s", b.key)
					}
					continue
				}
				line := fmt.Sprintf("  %s  %s", formatValue("visitors", jsonValue(o["visitors"])), o[b.key])
				if !strings.Contains(m.Text, line+"\n") {
					t.Errorf("text part lacks %s row %q", b.property, line)
				}
			}
		}
		if strings.Contains(m.Text, "approximate") {
			t.Error("an exact site's report says its numbers are approximate")
		}
	}

	// A restart sends nothing again.
	svc2 := newService()
	svc2.Tick(ctx)
	if got := relay.Take(); len(got) != 0 {
		t.Fatalf("after a restart: %d messages sent again", len(got))
	}

	// Bo unsubscribes through the link, over HTTP.
	bo := links["Bo@Example.com"]
	if bo == "" {
		t.Fatalf("no message to Bo: %v", links)
	}
	resp, err := http.Get(bo[:len(bo)-3] + "AAA") // tampered
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Errorf("tampered link: %d, want 400", resp.StatusCode)
	}
	unsubscribes := func() uint64 {
		var n uint64
		if err := db.Conn.QueryRow(ctx, "SELECT count() FROM report_unsubscribes").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	// GET (a link scanner, a preview) shows the button and changes nothing.
	resp, err = http.Get(bo)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `<form method="post"><button type="submit">Unsubscribe</button></form>`) || unsubscribes() != 0 {
		t.Fatalf("GET unsubscribe: %d %s", resp.StatusCode, body)
	}
	// POST: the button, or the mail client's one-click.
	resp, err = http.Post(bo, "application/x-www-form-urlencoded", strings.NewReader("List-Unsubscribe=One-Click"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "no longer receive Glimpse weekly reports for example.com") {
		t.Fatalf("unsubscribe: %d %s", resp.StatusCode, body)
	}
	var stored string
	if err := db.Conn.QueryRow(ctx, "SELECT recipient FROM report_unsubscribes WHERE site_id = 'example.com' AND kind = 'week'").Scan(&stored); err != nil {
		t.Fatal(err)
	}
	if stored != svc.Recipient("bo@example.com") || strings.Contains(stored, "@") {
		t.Errorf("stored recipient %q, want the keyed hash", stored)
	}

	// The next week: Ana gets hers (and March's monthly), Bo nothing.
	clk.t = clk.t.AddDate(0, 0, 7)
	newService().Tick(ctx)
	got := relay.Take()
	if len(got) != 2 || got[0].To != "ana@example.com" || got[1].To != "ana@example.com" {
		var to []string
		for _, g := range got {
			to = append(to, g.To)
		}
		t.Fatalf("the week after Bo unsubscribed went to %q, want ana@example.com alone", to)
	}

	// Neither the password nor an address is in the logs, and Bo's
	// unsubscription is no failure.
	l := logs.String()
	if strings.Contains(l, "report not sent") {
		t.Errorf("a send failed:\n%s", l)
	}
	for _, secret := range []string{smtptest.Password, "ana@example.com", "Bo@Example.com", "bo@example.com", signingKey} {
		if strings.Contains(l, secret) {
			t.Errorf("the log holds %q:\n%s", secret, l)
		}
	}
	if !strings.Contains(l, "report sent") {
		t.Errorf("nothing logged? %s", l)
	}
}

func TestAlert(t *testing.T) {
	db := chtest.Migrated(t)
	ctx := context.Background()
	relay := smtptest.Start(t, true)
	sites := testSites(t, relay.Addr, `  - domain: example.com
    privacy:
      aggregates: exact
    alerts:
      - current_visitors_above: 10
        recipients: [ops@example.com, oncall@example.com]
        cooldown: 1h
      - current_visitors_above: 1000
        recipients: [never@example.com]`)
	var logs smtptest.LogBuffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	engine := aggregator.New(aggregator.Options{Conn: db.Conn})
	t0 := time.Date(2026, 11, 28, 12, 1, 0, 0, time.UTC)
	clk := &clock{t: t0}
	newService := func() *Service {
		s, err := New(Options{Sites: sites, Engine: engine, Conn: db.Conn, PublicURL: "http://glimpse.test", Log: log, Now: clk.now,
			TLS: &tls.Config{RootCAs: relay.Roots}})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	visitors := func(n int, at time.Time) {
		w := sink.New(sink.Options{Conn: db.Conn, BatchSize: 1000, Interval: 20 * time.Millisecond})
		for i := range n {
			e := modeltest.Event(i)
			e.VisitorID = uint64(at.Unix())*1000 + uint64(i)
			e.TS = at.Add(time.Duration(i) * time.Second)
			if err := w.EnqueueWait(ctx, e); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := w.Close(ctx); err != nil {
			t.Fatal(err)
		}
	}
	set := metrics.NewSet()
	svc := newService()
	svc.o.Metrics = set
	visitors(10, t0.Add(-2*time.Minute)) // at the threshold: no alert
	svc.Tick(ctx)
	if got := relay.Take(); len(got) != 0 {
		t.Fatalf("10 visitors, threshold 10: %d alerts", len(got))
	}
	visitors(3, t0.Add(-90*time.Second))
	svc.Tick(ctx)
	got := relay.Take()
	if len(got) != 2 {
		t.Fatalf("13 visitors: %d alerts, want 2 (one per recipient)", len(got))
	}
	for _, r := range got {
		m := parse(t, r)
		if want := "Glimpse alert for example.com: 13 current visitors (above 10)"; m.Subject != want {
			t.Errorf("Subject %q, want %q", m.Subject, want)
		}
		if !strings.Contains(m.Text, "13 current visitors") || !strings.Contains(m.HTML, "<strong>13</strong>") ||
			!strings.Contains(m.Text, m.Header.Get("List-Unsubscribe")[1:len(m.Header.Get("List-Unsubscribe"))-1]) {
			t.Errorf("alert body:\n%s\n%s", m.Text, m.HTML)
		}
		if r.To == "never@example.com" {
			t.Error("the alert above 1000 fired")
		}
	}
	if n := apptest.SetMetric(t, set, `glimpse_reports_sent_total{kind="alert"}`); n != 2 {
		t.Errorf("glimpse_reports_sent_total{kind=\"alert\"} = %g, want 2", n)
	}
	// Within the cooldown, even across a restart: nothing.
	clk.t = t0.Add(time.Minute)
	svc.Tick(ctx)
	clk.t = t0.Add(30 * time.Minute)
	visitors(13, clk.t.Add(-time.Minute))
	newService().Tick(ctx)
	if got := relay.Take(); len(got) != 0 {
		t.Fatalf("within the cooldown: %d alerts", len(got))
	}
	// After it: again.
	clk.t = t0.Add(61 * time.Minute)
	visitors(13, clk.t.Add(-time.Minute))
	newService().Tick(ctx)
	if got := relay.Take(); len(got) != 2 {
		t.Fatalf("after the cooldown: %d alerts, want 2", len(got))
	}
	if l := logs.String(); strings.Contains(l, "ops@example.com") || strings.Contains(l, smtptest.Password) {
		t.Errorf("the log holds an address or the password:\n%s", l)
	}
}

// TestNoisyReport: a noisy site's report says its numbers are
// approximate, releases the numbers the Stats API releases (the noise is
// keyed by cell, not by reader), and is charged to its own reader: a
// budget too small for a report refuses it while an API key still reads.
func TestNoisyReport(t *testing.T) {
	db := seeded(t)
	ctx := context.Background()
	relay := smtptest.Start(t, true)
	site := func(budget, to string) *config.File {
		return testSites(t, relay.Addr, `  - domain: example.com
    timezone: Europe/Berlin
    privacy:
      aggregates: noisy
      noise_key: "0123456789abcdef0123456789abcdef-noise"
      epsilon: 1
      budget: `+budget+`
    reports:
      - every: week
        recipients: [`+to+`]`)
	}
	now := time.Date(2025, 3, 31, 10, 0, 0, 0, time.UTC)
	run := func(sites *config.File) (*aggregator.Engine, *smtptest.LogBuffer) {
		var logs smtptest.LogBuffer
		engine := aggregator.New(aggregator.Options{Conn: db.Conn, Budget: aggregator.NewBudget(func() time.Time { return now }, nil, nil)})
		s, err := New(Options{Sites: sites, Engine: engine, Conn: db.Conn, PublicURL: "http://glimpse.test", Now: func() time.Time { return now },
			Log: slog.New(slog.NewTextHandler(&logs, nil)), TLS: &tls.Config{RootCAs: relay.Roots}})
		if err != nil {
			t.Fatal(err)
		}
		s.Tick(ctx)
		return engine, &logs
	}

	sites := site("1000", "ana@example.com")
	engine, _ := run(sites)
	got := relay.Take()
	if len(got) != 1 {
		t.Fatalf("%d messages, want 1", len(got))
	}
	m := parse(t, got[0])
	if !strings.Contains(m.Text, "Numbers are approximate") || !strings.Contains(m.HTML, "Numbers are approximate") {
		t.Errorf("a noisy site's report does not say its numbers are approximate:\n%s", m.Text)
	}
	agg := statsAPI(t, engine, sites, now, api.PathAggregate, "period", "7d", "date", "2025-03-30", "compare", "previous_period",
		"metrics", "visitors,visits,pageviews,bounce_rate,visit_duration")["results"].(map[string]any)
	for _, hl := range headline {
		v := formatValue(hl.name, jsonValue(agg[hl.name].(map[string]any)["value"]))
		if !strings.Contains(m.Text, fmt.Sprintf("%-16s %s  (", hl.label, v)) {
			t.Errorf("%s: the report lacks the API's %s:\n%s", hl.name, v, m.Text)
		}
	}

	// A budget of 12 numbers: less than a report releases (to another
	// recipient: Ana has had this week's).
	sites = site("12", "bo@example.com")
	engine, logs := run(sites)
	if got := relay.Take(); len(got) != 0 {
		t.Fatalf("over its budget, the report was sent")
	}
	if !strings.Contains(logs.String(), "privacy budget of example.com spent") {
		t.Errorf("log: %s", logs)
	}
	statsAPI(t, engine, sites, now, api.PathAggregate, "period", "7d", "date", "2025-03-30", "metrics", "visitors")
}
