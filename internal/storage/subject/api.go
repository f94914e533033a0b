package subject

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/glimpse-analytics/glimpse/internal/config"
)

// API paths. Both take POST with site_id and uid as form fields (so the
// id stays out of access logs), and Authorization: Bearer <key> of an
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

func (s *Service) handle(log *slog.Logger, h func(ctx context.Context, c *fasthttp.RequestCtx, site, subject string) error) fasthttp.RequestHandler {
	return func(c *fasthttp.RequestCtx) {
		c.Response.Header.Set("Cache-Control", "no-store")
		err := func() error {
			if !c.IsPost() {
				return &httpError{fasthttp.StatusMethodNotAllowed, "use POST"}
			}
			site := string(c.PostArgs().Peek("site_id"))
			if err := s.authorize(c.Request.Header.Peek("Authorization"), site); err != nil {
				return err
			}
			subject, err := s.SubjectID(site, string(c.PostArgs().Peek("uid")))
			if err != nil {
				return &httpError{fasthttp.StatusBadRequest, err.Error()}
			}
			ctx, cancel := context.WithTimeout(context.Background(), s.o.MutationTimeout+time.Minute)
			defer cancel()
			return h(ctx, c, site, subject)
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

// authorize checks the Bearer key: a configured key (config.Keys) that
// lists the site and holds the subjects scope.
func (s *Service) authorize(h []byte, site string) error {
	_, k, err := s.o.Sites.Keys().Match(h)
	switch {
	case err != nil:
		return &httpError{fasthttp.StatusUnauthorized, err.Error()}
	case !k.Covers(site):
		return &httpError{fasthttp.StatusForbidden, "this API key may not access site " + site}
	case !k.Can(config.ScopeSubjects):
		return &httpError{fasthttp.StatusForbidden, "this API key may not export or erase subjects: list subjects in its scopes (api_keys)"}
	}
	return nil
}

func (s *Service) exportHTTP(ctx context.Context, c *fasthttp.RequestCtx, site, subject string) error {
	format := string(c.PostArgs().Peek("format"))
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
func (s *Service) eraseHTTP(ctx context.Context, c *fasthttp.RequestCtx, site, subject string) error {
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
