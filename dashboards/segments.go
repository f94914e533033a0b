package dashboards

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/valyala/fasthttp"

	"github.com/glimpse-analytics/glimpse/aggregator"
	"github.com/glimpse-analytics/glimpse/internal/config"
	"github.com/glimpse-analytics/glimpse/internal/storage/notes"
)

// Saved segments: a named filter set per site, shared by everyone who
// may read the site. Signed-in users create, edit and delete them; a
// shared link lists and applies them only.
const (
	PathSegments      = PathAPI + "segments"
	PathSegmentSave   = PathAPI + "segments/save"
	PathSegmentDelete = PathAPI + "segments/delete"
	maxSegmentName    = 60
	maxFiltersLen     = 2000
)

// notesRoutes are the routes of segments and annotations (the GET of
// annotations is the Stats API's, through HandlersWith).
func (d *Dashboard) notesRoutes() map[string]fasthttp.RequestHandler {
	return map[string]fasthttp.RequestHandler{
		PathSegments:         d.limited(d.listSegments),
		PathSegmentSave:      d.limited(d.change(d.saveSegment)),
		PathSegmentDelete:    d.limited(d.change(d.deleteSegment)),
		PathAnnotationSave:   d.limited(d.change(d.saveAnnotation)),
		PathAnnotationDelete: d.limited(d.change(d.deleteAnnotation)),
	}
}

// jsonAnswer writes v, or {"error": msg} with status.
func jsonAnswer(c *fasthttp.RequestCtx, status int, v any) {
	c.Response.Header.Set("Cache-Control", "no-store")
	c.SetContentType("application/json")
	c.SetStatusCode(status)
	b, err := json.Marshal(v)
	if err != nil {
		c.SetStatusCode(fasthttp.StatusServiceUnavailable)
		b = []byte(`{"error":"cannot encode the answer"}`)
	}
	c.SetBody(b)
}

func jsonError(c *fasthttp.RequestCtx, status int, msg string) {
	jsonAnswer(c, status, map[string]string{"error": msg})
}

// badInput is a 400 that says why.
type badInput string

func (e badInput) Error() string { return string(e) }

// change wraps a state-changing request: a POST by a signed-in user who
// may read the site, from this origin, with the session's CSRF token in
// the form (csrf). A shared link, a signed-out request, a missing or
// wrong token and a cross-site request get 403 and change nothing.
func (d *Dashboard) change(h func(ctx context.Context, args *fasthttp.Args, site *config.Site, email string) (any, error)) fasthttp.RequestHandler {
	return func(c *fasthttp.RequestCtx) {
		if !c.IsPost() {
			c.Response.Header.Set("Allow", "POST")
			jsonError(c, fasthttp.StatusMethodNotAllowed, "method not allowed: use POST")
			return
		}
		args := c.PostArgs()
		if len(c.QueryArgs().Peek("auth")) > 0 || len(args.Peek("auth")) > 0 {
			jsonError(c, fasthttp.StatusForbidden, "a shared link may read only: sign in to change segments and annotations")
			return
		}
		_, s := d.current(c)
		if s == nil {
			jsonError(c, fasthttp.StatusForbidden, "not signed in")
			return
		}
		if !sameOrigin(c) || !equalTokens(string(args.Peek("csrf")), s.csrf) {
			jsonError(c, fasthttp.StatusForbidden, "the page expired or the request came from another site: reload the page")
			return
		}
		domain := string(args.Peek("site_id"))
		site := d.opts.Sites.Site(domain)
		if u := d.opts.Sites.User(s.email); site == nil || u == nil || !u.CanRead(domain) {
			jsonError(c, fasthttp.StatusForbidden, "you cannot read site "+strconv.Quote(domain))
			return
		}
		if d.opts.Notes == nil {
			jsonError(c, fasthttp.StatusServiceUnavailable, "segments and annotations are not available: glimpse serve stores them in ClickHouse")
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		res, err := h(ctx, args, site, s.email)
		if err != nil {
			d.notesError(c, domain, err)
			return
		}
		jsonAnswer(c, fasthttp.StatusOK, res)
	}
}

// notesError answers a failed read or change: what the user can fix is
// a 4xx that says why, a storage failure a 503.
func (d *Dashboard) notesError(c *fasthttp.RequestCtx, site string, err error) {
	var bad badInput
	var limit *notes.LimitError
	switch {
	case errors.As(err, &bad):
		jsonError(c, fasthttp.StatusBadRequest, bad.Error())
	case errors.As(err, &limit):
		jsonError(c, fasthttp.StatusConflict, limit.Error())
	case errors.Is(err, notes.ErrNotFound):
		jsonError(c, fasthttp.StatusNotFound, "no such segment or annotation: someone may have deleted it; reload the page")
	default:
		d.opts.Log.Error("cannot read or write segments or annotations", "site", site, "err", err)
		jsonError(c, fasthttp.StatusServiceUnavailable, "cannot reach the store now; try again")
	}
}

// SegmentsAnswer is the answer of GET segments.
type SegmentsAnswer struct {
	Results []notes.Segment `json:"results"`
	// CanEdit: the reader is signed in and may create, edit and delete.
	CanEdit bool `json:"can_edit"`
}

// listSegments answers GET segments?site_id=: whoever may read the site,
// a shared link too (without who created them).
func (d *Dashboard) listSegments(c *fasthttp.RequestCtx) {
	if !c.IsGet() && !c.IsHead() {
		c.Response.Header.Set("Allow", "GET, HEAD")
		jsonError(c, fasthttp.StatusMethodNotAllowed, "method not allowed: use GET")
		return
	}
	domain := string(c.QueryArgs().Peek("site_id"))
	if domain == "" {
		jsonError(c, fasthttp.StatusBadRequest, "missing site_id")
		return
	}
	reader, err := d.authorize(c, domain)
	if err != nil {
		status, msg := d.opts.Stats.StatusOf(c, err)
		jsonError(c, status, msg)
		return
	}
	if d.opts.Sites.Site(domain) == nil {
		jsonError(c, fasthttp.StatusForbidden, "cannot read site "+strconv.Quote(domain))
		return
	}
	if d.opts.Notes == nil {
		jsonError(c, fasthttp.StatusServiceUnavailable, "segments are not available: glimpse serve stores them in ClickHouse")
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	gs, err := d.opts.Notes.Segments(ctx, domain)
	if err != nil {
		d.notesError(c, domain, err)
		return
	}
	user := strings.HasPrefix(reader, "user:")
	if !user {
		for i := range gs {
			gs[i].CreatedBy = ""
		}
	}
	jsonAnswer(c, fasthttp.StatusOK, SegmentsAnswer{Results: gs, CanEdit: user})
}

// checkText validates a user's short text: 1 to max characters after
// trimming, no control characters.
func checkText(what, s string, max int) (string, error) {
	s = strings.TrimSpace(s)
	if !utf8.ValidString(s) {
		return "", badInput(what + " is not valid UTF-8")
	}
	if s == "" {
		return "", badInput(what + " is empty")
	}
	if n := utf8.RuneCountInString(s); n > max {
		return "", badInput(what + " is " + strconv.Itoa(n) + " characters long; at most " + strconv.Itoa(max) + " fit")
	}
	if strings.IndexFunc(s, unicode.IsControl) >= 0 {
		return "", badInput(what + " contains a control character (a line break, a tab)")
	}
	return s, nil
}

// checkID validates an id of the form the store makes, if given.
func checkID(args *fasthttp.Args, required bool) (string, error) {
	id := string(args.Peek("id"))
	if id == "" && !required {
		return "", nil
	}
	if !notes.ValidID(id) {
		return "", badInput("invalid id " + strconv.Quote(id) + ": 16 hex digits")
	}
	return id, nil
}

// saveSegment creates a segment (no id) or edits one: name (1 to 60
// characters) and filters (the page's filter string; it must parse).
func (d *Dashboard) saveSegment(ctx context.Context, args *fasthttp.Args, site *config.Site, email string) (any, error) {
	id, err := checkID(args, false)
	if err != nil {
		return nil, err
	}
	name, err := checkText("the name", string(args.Peek("name")), maxSegmentName)
	if err != nil {
		return nil, err
	}
	filters := strings.TrimSpace(string(args.Peek("filters")))
	if filters == "" {
		return nil, badInput("no filters: a segment saves the page's filters; add some first")
	}
	if len(filters) > maxFiltersLen {
		return nil, badInput("the filters are too long (at most " + strconv.Itoa(maxFiltersLen) + " bytes)")
	}
	if _, err := aggregator.ParseFilters(filters); err != nil {
		return nil, badInput("invalid filters: " + err.Error())
	}
	if id == "" {
		return d.opts.Notes.CreateSegment(ctx, site.Domain, name, filters, email)
	}
	return d.opts.Notes.UpdateSegment(ctx, site.Domain, id, name, filters)
}

func (d *Dashboard) deleteSegment(ctx context.Context, args *fasthttp.Args, site *config.Site, _ string) (any, error) {
	id, err := checkID(args, true)
	if err != nil {
		return nil, err
	}
	if err := d.opts.Notes.DeleteSegment(ctx, site.Domain, id); err != nil {
		return nil, err
	}
	return map[string]string{"deleted": id}, nil
}
