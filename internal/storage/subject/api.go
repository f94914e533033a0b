package subject

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/glimpse-analytics/glimpse/internal/config"
)

// API paths. Both take POST with site_id and uid (and for export,
// format) as form fields or as a JSON object with the same names, so the
// id stays out of access logs, and Authorization: Bearer <key> of an
// api_keys entry that lists the site and the subjects scope.
const (
	PathExport = "/api/v1/subject/export" // format=jsonl (default) or csv
	PathErase  = "/api/v1/subject/erase"
)

// Routes returns the handlers by exact path, for the mux of glimpse serve.
func (s *Service) Routes(log *slog.Logger) map[string]fasthttp.RequestHandler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return map[string]fasthttp.RequestHandler{
		PathExport: s.handle(log, s.exportHTTP),
		PathErase:  s.handle(log, s.eraseHTTP),
	}
}

type httpError struct {
	status int
	msg    string
}

func (e *httpError) Error() string { return e.msg }

// request is the body of a subject request, as a form or as JSON.
type request struct {
	Site   string `json:"site_id"`
	UID    string `json:"uid"`
	Format string `json:"format"` // export only
}

// parseRequest reads the body by its Content-Type: application/json (or
// any +json type) as one JSON object, anything else as a form.
func parseRequest(c *fasthttp.RequestCtx) (request, error) {
	var r request
	body := c.PostBody()
	if isJSON(c.Request.Header.ContentType()) {
		d := json.NewDecoder(bytes.NewReader(body))
		d.DisallowUnknownFields()
		if err := d.Decode(&r); err != nil {
			return r, &httpError{fasthttp.StatusBadRequest, "cannot parse the JSON body: " + err.Error() + `; want {"site_id": "...", "uid": "..."}`}
		}
		if _, err := d.Token(); err != io.EOF {
			return r, &httpError{fasthttp.StatusBadRequest, "cannot parse the JSON body: want one object and nothing after it"}
		}
	} else {
		a := c.PostArgs()
		r = request{Site: string(a.Peek("site_id")), UID: string(a.Peek("uid")), Format: string(a.Peek("format"))}
	}
	if r.Site == "" {
		msg := "site_id is required"
		if b := bytes.TrimSpace(body); len(b) > 0 && b[0] == '{' {
			msg += "; the body looks like JSON: send it with Content-Type: application/json"
		}
		return r, &httpError{fasthttp.StatusBadRequest, msg}
	}
	return r, nil
}

func isJSON(ct []byte) bool {
	if i := bytes.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	ct = bytes.ToLower(bytes.TrimSpace(ct))
	return string(ct) == "application/json" || bytes.HasPrefix(ct, []byte("application/")) && bytes.HasSuffix(ct, []byte("+json"))
}

func (s *Service) handle(log *slog.Logger, h func(ctx context.Context, c *fasthttp.RequestCtx, r request, subject string) error) fasthttp.RequestHandler {
	return func(c *fasthttp.RequestCtx) {
		c.Response.Header.Set("Cache-Control", "no-store")
		err := func() error {
			if !c.IsPost() {
				return &httpError{fasthttp.StatusMethodNotAllowed, "use POST"}
			}
			// The key first: who may not call the API learns nothing
			// about what a well-formed request looks like.
			_, k, err := s.o.Sites.Keys().Match(c.Request.Header.Peek("Authorization"))
			if err != nil {
				return &httpError{fasthttp.StatusUnauthorized, err.Error()}
			}
			r, err := parseRequest(c)
			if err != nil {
				return err
			}
			switch {
			case !k.Covers(r.Site):
				return &httpError{fasthttp.StatusForbidden, "this API key may not access site " + r.Site}
			case !k.Can(config.ScopeSubjects):
				return &httpError{fasthttp.StatusForbidden, "this API key may not export or erase subjects: list subjects in its scopes (api_keys)"}
			}
			subject, err := s.SubjectID(r.Site, r.UID)
			if err != nil {
				return &httpError{fasthttp.StatusBadRequest, err.Error()}
			}
			ctx, cancel := context.WithTimeout(context.Background(), s.o.MutationTimeout+time.Minute)
			defer cancel()
			return h(ctx, c, r, subject)
		}()
		if err == nil {
			return
		}
		status := fasthttp.StatusInternalServerError
		var he *httpError
		if errors.As(err, &he) {
			status = he.status
		} else {
			log.Error("subject request failed", "path", string(c.Path()), "err", err)
		}
		c.Response.ResetBody()
		c.SetStatusCode(status)
		c.SetContentType("application/json")
		b, _ := json.Marshal(map[string]string{"error": err.Error()})
		c.SetBody(b)
	}
}

func (s *Service) exportHTTP(ctx context.Context, c *fasthttp.RequestCtx, r request, subject string) error {
	format, site := r.Format, r.Site
	switch format {
	case "", JSONLines:
		format = JSONLines
		c.SetContentType("application/x-ndjson")
	case CSV:
		c.SetContentType("text/csv; charset=utf-8")
	default:
		return &httpError{fasthttp.StatusBadRequest, "format: want jsonl or csv"}
	}
	var buf bytes.Buffer
	n, err := s.Export(ctx, site, subject, format, &buf)
	if err != nil {
		return err
	}
	c.Response.Header.Set("X-Glimpse-Rows", itoa(n))
	c.SetBody(buf.Bytes())
	return nil
}

// eraseHTTP answers 200 with what was erased, or 409 when rows of the
// subject accepted after the erasure began are left (erase again).
func (s *Service) eraseHTTP(ctx context.Context, c *fasthttp.RequestCtx, r request, subject string) error {
	site := r.Site
	res, err := s.Erase(ctx, site, subject)
	body := map[string]any{"site_id": site, "deleted": res.Deleted, "blanked": res.Blanked, "remaining": res.Remaining}
	switch {
	case errors.Is(err, ErrIncomplete):
		c.SetStatusCode(fasthttp.StatusConflict)
		body["error"] = err.Error()
	case err != nil:
		return err
	}
	c.SetContentType("application/json")
	b, _ := json.Marshal(body)
	c.SetBody(b)
	return nil
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }
