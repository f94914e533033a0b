package reports

import (
	"context"
	"html/template"

	"github.com/valyala/fasthttp"
)

var page = template.Must(template.New("page").Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>{{.Title}}</title></head>
<body><h1>{{.Title}}</h1><p>{{.Text}}</p>
{{- if .Button}}<form method="post"><button type="submit">{{.Button}}</button></form>{{end}}</body></html>
`))

// ServeUnsubscribe answers /reports/unsubscribe/{token}. GET shows what
// the link does and one button, and changes nothing: link scanners and
// mail previews follow every link, and must not unsubscribe anyone. A
// POST (the button, or an RFC 8058 one-click List-Unsubscribe-Post from
// the mail client) records the unsubscription and confirms it. A bad or
// tampered link gets 400, another method 405; nothing is stored for them.
func (s *Service) ServeUnsubscribe(ctx *fasthttp.RequestCtx) {
	ctx.Response.Header.Set("Content-Security-Policy", "default-src 'none'; form-action 'self'; frame-ancestors 'none'")
	ctx.Response.Header.Set("Cache-Control", "no-store")
	ctx.Response.Header.Set("Referrer-Policy", "no-referrer")
	ctx.Response.Header.Set("X-Content-Type-Options", "nosniff")
	ctx.SetContentType("text/html; charset=utf-8")
	if !ctx.IsGet() && !ctx.IsPost() {
		ctx.Response.Header.Set("Allow", "GET, POST")
		s.page(ctx, fasthttp.StatusMethodNotAllowed, "Method not allowed", "Follow the link from the e-mail.", "")
		return
	}
	tok := string(ctx.Path()[len(UnsubscribePrefix):])
	site, kind, rec, err := s.keys.verify(tok)
	if err != nil || s.o.Sites.Site(site) == nil {
		s.page(ctx, fasthttp.StatusBadRequest, "Invalid link", "This unsubscribe link is invalid or incomplete. Copy the whole link from the e-mail.", "")
		return
	}
	what := map[string]string{KindWeek: "weekly reports", KindMonth: "monthly reports", KindAlert: "traffic alerts"}[kind]
	if ctx.IsGet() {
		s.page(ctx, fasthttp.StatusOK, "Unsubscribe", "Stop receiving Glimpse "+what+" for "+site+"?", "Unsubscribe")
		return
	}
	c, cancel := context.WithTimeout(context.Background(), s.o.QueryTimeout)
	defer cancel()
	if err := s.store.unsubscribe(c, site, kind, rec, s.o.Now()); err != nil {
		s.log.Error("cannot record an unsubscription", "site", site, "kind", kind, "recipient", rec, "err", err)
		s.page(ctx, fasthttp.StatusServiceUnavailable, "Try again later", "Your unsubscription could not be recorded just now; please try again in a few minutes.", "")
		return
	}
	s.log.Info("recipient unsubscribed", "site", site, "kind", kind, "recipient", rec)
	s.page(ctx, fasthttp.StatusOK, "Unsubscribed", "You will no longer receive Glimpse "+what+" for "+site+".", "")
}

func (s *Service) page(ctx *fasthttp.RequestCtx, status int, title, text, button string) {
	ctx.SetStatusCode(status)
	_ = page.Execute(ctx, struct{ Title, Text, Button string }{title, text, button})
}
