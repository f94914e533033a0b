package reports

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	htmltemplate "html/template"
	"math"
	"mime"
	"mime/quotedprintable"
	"net/mail"
	"strings"
	"text/template"
	"time"
)

// message is one e-mail: headers and its two bodies.
type message struct {
	From, To, Subject, Unsubscribe string
	Date                           time.Time
	Text, HTML                     string
}

// bytes renders m as an RFC 5322 multipart/alternative message: the plain
// text part first, the HTML part last (the one clients prefer), both
// quoted-printable UTF-8. List-Unsubscribe carries the recipient's link,
// with RFC 8058 one-click.
func (m *message) bytes() []byte {
	var rnd [12]byte
	_, _ = rand.Read(rnd[:])
	domain, from := "glimpse.invalid", m.From
	if a, err := mail.ParseAddress(m.From); err == nil {
		from = a.String() // a display name RFC 2047-encoded
		if _, d, ok := strings.Cut(a.Address, "@"); ok {
			domain = d
		}
	}
	boundary := "glimpse-" + hex.EncodeToString(rnd[:8])
	var b bytes.Buffer
	h := func(k, v string) { b.WriteString(k + ": " + v + "\r\n") }
	h("From", from)
	h("To", m.To)
	h("Subject", mime.QEncoding.Encode("utf-8", m.Subject))
	h("Date", m.Date.Format(time.RFC1123Z))
	h("Message-ID", "<"+hex.EncodeToString(rnd[:])+"."+fmt.Sprint(m.Date.Unix())+"@"+domain+">")
	h("MIME-Version", "1.0")
	h("Auto-Submitted", "auto-generated")
	h("List-Unsubscribe", "<"+m.Unsubscribe+">")
	h("List-Unsubscribe-Post", "List-Unsubscribe=One-Click")
	h("Content-Type", `multipart/alternative; boundary="`+boundary+`"`)
	b.WriteString("\r\n")
	part := func(ctype, body string) {
		b.WriteString("--" + boundary + "\r\n")
		b.WriteString("Content-Type: " + ctype + "; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n")
		w := quotedprintable.NewWriter(&b)
		_, _ = w.Write([]byte(strings.ReplaceAll(strings.ReplaceAll(body, "\r\n", "\n"), "\n", "\r\n")))
		_ = w.Close()
		b.WriteString("\r\n")
	}
	part("text/plain", m.Text)
	part("text/html", m.HTML)
	b.WriteString("--" + boundary + "--\r\n")
	return b.Bytes()
}

// Range names a period for people: "Nov 24–30, 2026", "Nov 30 – Dec 6,
// 2026", "Dec 29, 2025 – Jan 4, 2026", or "November 2026" for a month.
func Range(every string, from, to time.Time) string {
	last := to.AddDate(0, 0, -1)
	switch {
	case every == KindMonth:
		return from.Format("January 2006")
	case from.Year() != last.Year():
		return from.Format("Jan 2, 2006") + " – " + last.Format("Jan 2, 2006")
	case from.Month() != last.Month():
		return from.Format("Jan 2") + " – " + last.Format("Jan 2, 2006")
	}
	return from.Format("Jan 2") + "–" + last.Format("2, 2006")
}

// subject of a report.
func (c *Content) subject() string {
	word := "weekly"
	if c.Every == KindMonth {
		word = "monthly"
	}
	return fmt.Sprintf("Glimpse %s report for %s: %s", word, c.Site, Range(c.Every, c.Period.From.In(c.Period.Loc), c.Period.To.In(c.Period.Loc)))
}

// formatted numbers, as both parts show them.
type view struct {
	*Content
	Title, RangeText, PrevText, Unsubscribe string
	Lines                                   []line
	Lists                                   []list
}

type line struct{ Label, Value, Change string }

type list struct {
	Title string
	Rows  []Row
	Empty string
}

func (c *Content) view(unsubscribe string) *view {
	v := &view{Content: c, Title: c.subject(), Unsubscribe: unsubscribe,
		RangeText: Range(c.Every, c.Period.From.In(c.Period.Loc), c.Period.To.In(c.Period.Loc)),
		PrevText:  Range(c.Every, c.Previous.From.In(c.Period.Loc), c.Previous.To.In(c.Period.Loc))}
	for _, m := range c.Metrics {
		l := line{Label: m.Label, Value: formatValue(m.Name, m.Value), Change: formatChange(m)}
		if m.Value == nil {
			l.Value = fmt.Sprintf("withheld (fewer than %d visitors)", c.K)
		}
		v.Lines = append(v.Lines, l)
	}
	empty := fmt.Sprintf("No rows of %d or more visitors.", c.K)
	v.Lists = []list{{"Top pages", c.Pages, empty}, {"Top sources", c.Sources, empty}, {"Top countries", c.Countries, empty}}
	return v
}

func toFloat(v any) (float64, bool) {
	switch v := v.(type) {
	case int64:
		return float64(v), true
	case int:
		return float64(v), true
	case uint64:
		return float64(v), true
	case float64:
		return v, true
	}
	return 0, false
}

// formatValue renders a metric's value: counts with thousands separators,
// the bounce rate in percent, the visit duration in minutes and seconds.
func formatValue(name string, v any) string {
	f, ok := toFloat(v)
	if !ok {
		return "–"
	}
	switch name {
	case "bounce_rate":
		return fmt.Sprintf("%.0f%%", f)
	case "visit_duration":
		s := int64(math.Round(f))
		if s < 60 {
			return fmt.Sprintf("%ds", s)
		}
		return fmt.Sprintf("%dm %02ds", s/60, s%60)
	}
	return thousands(int64(math.Round(f)))
}

func thousands(n int64) string {
	s := fmt.Sprint(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// formatChange renders the change against the period before: a percent,
// or for the bounce rate a difference in percentage points.
func formatChange(m Metric) string {
	f, ok := toFloat(m.Change)
	if !ok {
		return "no comparison"
	}
	sign := "+"
	if f < 0 {
		sign = "−"
		f = -f
	}
	if m.Diff {
		return fmt.Sprintf("%s%s pts", sign, strings.TrimSuffix(fmt.Sprintf("%.1f", f), ".0"))
	}
	return fmt.Sprintf("%s%.0f%%", sign, f)
}

// funcs shared by both templates.
var funcs = map[string]any{"visitors": func(v any) string { return formatValue("visitors", v) }}

var textReport = template.Must(template.New("text").Funcs(funcs).Parse(`{{.Title}}

{{.Site}}, {{.RangeText}} (compared with {{.PrevText}})
{{range .Lines}}
{{printf "%-16s" .Label}} {{.Value}}  ({{.Change}})
{{- end}}
{{range .Lists}}
{{.Title}}
{{- range .Rows}}
  {{visitors .Visitors}}  {{.Key}}
{{- else}}
  {{.Empty}}
{{- end}}
{{end}}
{{if .Noisy}}Numbers are approximate: this site releases every number with calibrated noise (privacy.aggregates: noisy), so that no combination of them isolates a visitor.
{{end}}Rows with fewer than {{.K}} visitors are not shown.

Unsubscribe from these reports: {{.Unsubscribe}}
`))

var htmlReport = htmltemplate.Must(htmltemplate.New("html").Funcs(funcs).Parse(`<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{{.Title}}</title></head>
<body style="margin:0;padding:24px;background:#f6f7f9;font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;color:#1f2328">
<div style="max-width:560px;margin:0 auto;background:#ffffff;border:1px solid #d8dee4;border-radius:6px;padding:24px">
<h1 style="font-size:18px;margin:0 0 4px">{{.Site}}</h1>
<p style="margin:0 0 16px;color:#57606a">{{.RangeText}}, compared with {{.PrevText}}</p>
<table style="width:100%;border-collapse:collapse;margin-bottom:16px">
{{range .Lines}}<tr><td style="padding:4px 0;color:#57606a">{{.Label}}</td><td style="padding:4px 0;text-align:right;font-weight:600">{{.Value}}</td><td style="padding:4px 0 4px 12px;text-align:right;color:#57606a">{{.Change}}</td></tr>
{{end}}</table>
{{range .Lists}}<h2 style="font-size:15px;margin:16px 0 4px">{{.Title}}</h2>
<table style="width:100%;border-collapse:collapse">
{{range .Rows}}<tr><td style="padding:2px 0;word-break:break-all">{{.Key}}</td><td style="padding:2px 0;text-align:right">{{visitors .Visitors}}</td></tr>
{{else}}<tr><td style="padding:2px 0;color:#57606a">{{.Empty}}</td></tr>
{{end}}</table>
{{end}}
{{if .Noisy}}<p style="margin:16px 0 0;color:#57606a;font-size:13px">Numbers are approximate: this site releases every number with calibrated noise (privacy.aggregates: noisy), so that no combination of them isolates a visitor.</p>
{{end}}<p style="margin:8px 0 0;color:#57606a;font-size:13px">Rows with fewer than {{.K}} visitors are not shown.</p>
<p style="margin:16px 0 0;font-size:13px"><a href="{{.Unsubscribe}}" style="color:#0969da">Unsubscribe from these reports</a></p>
</div></body></html>
`))

// render returns the report's two bodies.
func (c *Content) render(unsubscribe string) (text, html string, err error) {
	v := c.view(unsubscribe)
	var t, h bytes.Buffer
	if err := textReport.Execute(&t, v); err != nil {
		return "", "", err
	}
	if err := htmlReport.Execute(&h, v); err != nil {
		return "", "", err
	}
	return t.String(), h.String(), nil
}

// alertView is what an alert says.
type alertView struct {
	Site, Unsubscribe string
	Visitors, Above   int64
	At                string
}

var textAlert = template.Must(template.New("alert").Parse(`{{.Site}} has {{.Visitors}} current visitors, above the alert threshold of {{.Above}} ({{.At}}).

Unsubscribe from these alerts: {{.Unsubscribe}}
`))

var htmlAlert = htmltemplate.Must(htmltemplate.New("alert").Parse(`<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Glimpse alert for {{.Site}}</title></head>
<body style="margin:0;padding:24px;font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;color:#1f2328">
<p style="font-size:16px"><strong>{{.Site}}</strong> has <strong>{{.Visitors}}</strong> current visitors, above the alert threshold of {{.Above}} ({{.At}}).</p>
<p style="font-size:13px"><a href="{{.Unsubscribe}}" style="color:#0969da">Unsubscribe from these alerts</a></p>
</body></html>
`))

func (a *alertView) render() (text, html string, err error) {
	var t, h bytes.Buffer
	if err := textAlert.Execute(&t, a); err != nil {
		return "", "", err
	}
	if err := htmlAlert.Execute(&h, a); err != nil {
		return "", "", err
	}
	return t.String(), h.String(), nil
}
