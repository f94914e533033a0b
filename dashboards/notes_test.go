package dashboards

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/glimpse-analytics/glimpse/aggregator"
	"github.com/glimpse-analytics/glimpse/aggregator/api"
	"github.com/glimpse-analytics/glimpse/internal/chtest"
	"github.com/glimpse-analytics/glimpse/internal/ratelimit"
	"github.com/glimpse-analytics/glimpse/internal/storage/notes"
)

// withNotes gives a fixture a fresh ClickHouse database with its store
// of segments and annotations, and returns the store.
func withNotes(t *testing.T) (func(*Options), *notes.Store) {
	db := chtest.Migrated(t)
	store := notes.New(db.Conn, nil)
	return func(o *Options) {
		stats, err := api.New(api.Options{Engine: aggregator.New(aggregator.Options{Conn: db.Conn}), Sites: o.Sites, Notes: store})
		if err != nil {
			t.Fatal(err)
		}
		o.Stats, o.Notes = stats, store
	}, store
}

// counts are the live segments and annotations of example.com.
func counts(t *testing.T, s *notes.Store) (int, int) {
	t.Helper()
	gs, err := s.Segments(context.Background(), "example.com")
	if err != nil {
		t.Fatal(err)
	}
	as, err := s.Annotations(context.Background(), "example.com", "", "")
	if err != nil {
		t.Fatal(err)
	}
	return len(gs), len(as)
}

func decode(t *testing.T, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%v: %s", err, b)
	}
}

// TestNotesCSRF: every state-changing request of segments and
// annotations is refused with 403, and changes nothing, without the
// session's CSRF token, with a wrong one, from another origin, from a
// shared link, signed out, or for a site the user cannot read.
func TestNotesCSRF(t *testing.T) {
	set, store := withNotes(t)
	f := newFixtureFor(t, testEmail, set)
	r := f.signIn(t, testEmail, testPass)
	id := cookie(r, cookieName)
	auth := "Cookie: " + cookieName + "=" + id
	tok := f.d.sessions.get(id, f.now).csrf

	// One of each, to edit and delete.
	seg, err := store.CreateSegment(context.Background(), "example.com", "Mobile", "visit:device==Mobile", testEmail)
	if err != nil {
		t.Fatal(err)
	}
	ann, err := store.CreateAnnotation(context.Background(), "example.com", "2025-02-20", "", "Launch", testEmail)
	if err != nil {
		t.Fatal(err)
	}
	requests := []struct {
		name, path string
		form       url.Values
	}{
		{"create segment", PathSegmentSave, url.Values{"name": {"New"}, "filters": {"visit:os==iOS"}}},
		{"edit segment", PathSegmentSave, url.Values{"id": {seg.ID}, "name": {"Renamed"}, "filters": {"visit:os==iOS"}}},
		{"delete segment", PathSegmentDelete, url.Values{"id": {seg.ID}}},
		{"create annotation", PathAnnotationSave, url.Values{"date": {"2025-02-21"}, "text": {"New"}}},
		{"edit annotation", PathAnnotationSave, url.Values{"id": {ann.ID}, "date": {"2025-02-21"}, "text": {"Changed"}}},
		{"delete annotation", PathAnnotationDelete, url.Values{"id": {ann.ID}}},
	}
	form := func(base url.Values, kv ...string) string {
		v := url.Values{"site_id": {"example.com"}}
		for k, vs := range base {
			v[k] = vs
		}
		for i := 0; i+1 < len(kv); i += 2 {
			v.Set(kv[i], kv[i+1])
		}
		return v.Encode()
	}
	unchanged := func(t *testing.T) {
		t.Helper()
		g, err := store.Segment(context.Background(), "example.com", seg.ID)
		if err != nil || g.Name != "Mobile" {
			t.Fatalf("segment changed: %+v %v", g, err)
		}
		a, err := store.Annotation(context.Background(), "example.com", ann.ID)
		if err != nil || a.Text != "Launch" || a.Date != "2025-02-20" {
			t.Fatalf("annotation changed: %+v %v", a, err)
		}
		if gs, as := counts(t, store); gs != 1 || as != 1 {
			t.Fatalf("%d segments, %d annotations; want 1 and 1", gs, as)
		}
	}
	for _, rq := range requests {
		t.Run(rq.name, func(t *testing.T) {
			for _, tt := range []struct {
				name, uri, body string
				headers         []string
			}{
				{"no token", rq.path, form(rq.form), []string{auth}},
				{"wrong token", rq.path, form(rq.form, "csrf", tok+"x"), []string{auth}},
				{"another session's token", rq.path, form(rq.form, "csrf", randomToken()), []string{auth}},
				{"cross-site Origin", rq.path, form(rq.form, "csrf", tok), []string{auth, "Origin: https://evil.example"}},
				{"cross-site fetch", rq.path, form(rq.form, "csrf", tok), []string{auth, "Sec-Fetch-Site: cross-site"}},
				{"same-site fetch", rq.path, form(rq.form, "csrf", tok), []string{auth, "Sec-Fetch-Site: same-site"}},
				{"signed out", rq.path, form(rq.form, "csrf", tok), nil},
				{"shared link", rq.path + "?auth=" + testToken, form(rq.form, "csrf", tok), []string{auth}},
				{"shared link, no session", rq.path + "?auth=" + testToken, form(rq.form), nil},
				{"site not readable", rq.path, form(rq.form, "csrf", tok, "site_id", "other.example"), []string{auth}},
				{"unknown site", rq.path, form(rq.form, "csrf", tok, "site_id", "nope.example"), []string{auth}},
			} {
				r := f.do("POST", tt.uri, tt.body, tt.headers...)
				if r.StatusCode() != 403 {
					t.Errorf("%s: %d %s, want 403", tt.name, r.StatusCode(), r.Body())
				}
				var e map[string]string
				decode(t, r.Body(), &e)
				if e["error"] == "" {
					t.Errorf("%s: no error message: %s", tt.name, r.Body())
				}
			}
			// GET never changes anything.
			if r := f.do("GET", rq.path+"?"+form(rq.form, "csrf", tok), "", auth); r.StatusCode() != 405 {
				t.Errorf("GET: %d", r.StatusCode())
			}
			unchanged(t)
		})
	}
	// With the token, from this origin, each goes through.
	for _, rq := range requests {
		r := f.do("POST", rq.path, form(rq.form, "csrf", tok), auth, "Origin: http://dash.example", "Sec-Fetch-Site: same-origin")
		if r.StatusCode() != 200 {
			t.Errorf("%s with the token: %d %s", rq.name, r.StatusCode(), r.Body())
		}
	}
	if gs, as := counts(t, store); gs != 1 || as != 1 { // one created, one deleted, each
		t.Fatalf("after the accepted requests: %d segments, %d annotations", gs, as)
	}
}

// TestNotesValidation: bad input is a 400 that says why, and stores
// nothing; a segment list is readable by a shared link, which cannot
// edit and does not learn who created them.
func TestNotesValidation(t *testing.T) {
	set, store := withNotes(t)
	f := newFixtureFor(t, testEmail, set)
	r := f.signIn(t, testEmail, testPass)
	id := cookie(r, cookieName)
	auth := "Cookie: " + cookieName + "=" + id
	tok := f.d.sessions.get(id, f.now).csrf
	post := func(path string, kv ...string) (int, map[string]any) {
		v := url.Values{"site_id": {"example.com"}, "csrf": {tok}}
		for i := 0; i+1 < len(kv); i += 2 {
			v.Set(kv[i], kv[i+1])
		}
		r := f.do("POST", path, v.Encode(), auth)
		var m map[string]any
		decode(t, r.Body(), &m)
		return r.StatusCode(), m
	}
	bad := []struct {
		path string
		kv   []string
		want string
	}{
		{PathSegmentSave, []string{"name", "", "filters", "visit:os==iOS"}, "the name is empty"},
		{PathSegmentSave, []string{"name", "   ", "filters", "visit:os==iOS"}, "the name is empty"},
		{PathSegmentSave, []string{"name", strings.Repeat("é", 61), "filters", "visit:os==iOS"}, "61 characters long; at most 60"},
		{PathSegmentSave, []string{"name", "a\nb", "filters", "visit:os==iOS"}, "control character"},
		{PathSegmentSave, []string{"name", "x", "filters", ""}, "no filters"},
		{PathSegmentSave, []string{"name", "x", "filters", "visit:nope==1"}, "invalid filters"},
		{PathSegmentSave, []string{"name", "x", "filters", "visit:os=iOS"}, "invalid filters"},
		{PathSegmentSave, []string{"id", "../x", "name", "x", "filters", "visit:os==iOS"}, "invalid id"},
		{PathSegmentDelete, []string{}, "invalid id"},
		{PathAnnotationSave, []string{"date", "2025-02-30", "text", "x"}, "invalid date"},
		{PathAnnotationSave, []string{"date", "1900-01-01", "text", "x"}, "between 1971 and 2100"},
		{PathAnnotationSave, []string{"date", "2025-02-20", "time", "25:00", "text", "x"}, "invalid time"},
		{PathAnnotationSave, []string{"date", "2025-02-20", "time", "9:00", "text", "x"}, "invalid time"},
		{PathAnnotationSave, []string{"date", "2025-02-20", "text", strings.Repeat("x", 201)}, "at most 200"},
		{PathAnnotationSave, []string{"date", "2025-02-20", "text", ""}, "the text is empty"},
		{PathAnnotationDelete, []string{"id", "zz"}, "invalid id"},
	}
	for _, tt := range bad {
		status, m := post(tt.path, tt.kv...)
		if msg, _ := m["error"].(string); status != 400 || !strings.Contains(msg, tt.want) {
			t.Errorf("%s %q: %d %v, want 400 saying %q", tt.path, tt.kv, status, m, tt.want)
		}
	}
	// A well-formed id no segment has: 404.
	if status, m := post(PathSegmentDelete, "id", "0123456789abcdef"); status != 404 {
		t.Errorf("delete of an unknown segment: %d %v", status, m)
	}
	if gs, as := counts(t, store); gs != 0 || as != 0 {
		t.Fatalf("bad input stored %d segments, %d annotations", gs, as)
	}
	// 200 characters fit; a time is kept.
	if status, m := post(PathAnnotationSave, "date", "2025-02-20", "time", "09:05", "text", strings.Repeat("ü", 200)); status != 200 || m["time"] != "09:05" {
		t.Errorf("200-character annotation: %d %v", status, m)
	}
	status, m := post(PathSegmentSave, "name", strings.Repeat("n", 60), "filters", "visit:device==Mobile;event:page==/blog/**")
	if status != 200 || m["id"] == "" {
		t.Fatalf("60-character name: %d %v", status, m)
	}

	var list SegmentsAnswer
	r = f.do("GET", PathSegments+"?site_id=example.com", "", auth)
	decode(t, r.Body(), &list)
	if r.StatusCode() != 200 || !list.CanEdit || len(list.Results) != 1 || list.Results[0].CreatedBy != testEmail {
		t.Fatalf("signed-in list: %d %s", r.StatusCode(), r.Body())
	}
	r = f.do("GET", PathSegments+"?site_id=example.com&auth="+testToken, "")
	list = SegmentsAnswer{}
	decode(t, r.Body(), &list)
	if r.StatusCode() != 200 || list.CanEdit || len(list.Results) != 1 || list.Results[0].CreatedBy != "" || list.Results[0].Filters == "" {
		t.Fatalf("shared-link list: %d %s", r.StatusCode(), r.Body())
	}
	for _, tt := range []struct {
		uri     string
		headers []string
		status  int
	}{
		{PathSegments + "?site_id=example.com", nil, 401},
		{PathSegments + "?site_id=other.example", []string{auth}, 403},
		{PathSegments + "?site_id=example.com&auth=wrong", nil, 403},
		{PathSegments, []string{auth}, 400},
	} {
		if r := f.do("GET", tt.uri, "", tt.headers...); r.StatusCode() != tt.status {
			t.Errorf("GET %s: %d %s, want %d", tt.uri, r.StatusCode(), r.Body(), tt.status)
		}
	}
	// The annotations reach the page through the Stats API's handler.
	r = f.do("GET", PathAnnotations+"?site_id=example.com&period=30d&date=2025-02-28&auth="+testToken, "")
	var ar api.AnnotationsResponse
	decode(t, r.Body(), &ar)
	if r.StatusCode() != 200 || len(ar.Results) != 1 || ar.Results[0].CreatedBy != "" || len([]rune(ar.Results[0].Text)) != 200 {
		t.Fatalf("annotations for a shared link: %d %s", r.StatusCode(), r.Body())
	}
}

// TestNotesRateLimited: the changes count against the reader's limit
// like the other JSON endpoints; beyond it they answer 429 and store
// nothing.
func TestNotesRateLimited(t *testing.T) {
	set, store := withNotes(t)
	f := newFixtureFor(t, testEmail, set, func(o *Options) { o.ReaderLimit = ratelimit.Limit{PerHour: 60, Burst: 3} })
	r := f.signIn(t, testEmail, testPass)
	id := cookie(r, cookieName)
	tok := f.d.sessions.get(id, f.now).csrf
	var statuses []int
	for i := range 4 {
		v := url.Values{"site_id": {"example.com"}, "csrf": {tok}, "date": {"2025-02-20"}, "text": {"note " + strconv.Itoa(i)}}
		r := f.do("POST", PathAnnotationSave, v.Encode(), "Cookie: "+cookieName+"="+id)
		statuses = append(statuses, r.StatusCode())
		if r.StatusCode() == 429 && r.Header.Peek("Retry-After") == nil {
			t.Error("429 without Retry-After")
		}
	}
	if fmt.Sprint(statuses) != "[200 200 200 429]" {
		t.Errorf("statuses %v, want three 200 then 429", statuses)
	}
	if _, as := counts(t, store); as != 3 {
		t.Errorf("%d annotations stored, want 3", as)
	}
}
