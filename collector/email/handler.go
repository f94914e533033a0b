package email

import (
	"context"
	"encoding/json"
	"errors"
	"html"
	"log/slog"
	"net/netip"
	"strings"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/cespare/xxhash/v2"
	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/valyala/fasthttp"

	"github.com/glimpse-analytics/glimpse/collector/agent"
	"github.com/glimpse-analytics/glimpse/collector/enrich"
	"github.com/glimpse-analytics/glimpse/collector/ledger"
	"github.com/glimpse-analytics/glimpse/collector/locate"
	"github.com/glimpse-analytics/glimpse/collector/redact"
	"github.com/glimpse-analytics/glimpse/collector/sink"
	"github.com/glimpse-analytics/glimpse/internal/config"
	"github.com/glimpse-analytics/glimpse/internal/model"
)

// Options configure the email Handlers. Sites, Signer, Writer and OptOuts
// are required.
type Options struct {
	Sites   *config.File
	Signer  *Signer
	Writer  *sink.Writer
	OptOuts *OptOuts
	// Rules classify opens and clicks (default: the embedded rules.txt).
	Rules *Classifier
	// Proxies whose X-Forwarded-For is believed, as for the collector.
	Proxies locate.TrustedProxies
	// PublicURL is the collector's public base URL, for minting through
	// POST /api/email/sign.
	PublicURL string
	// RecentOpens bounds the opens remembered for the click-after-open
	// rule (default 100,000, about 6 MiB), and sizes the ledger of
	// recipient-days on noisy sites (recipients.go) alike.
	RecentOpens int
	Metrics     *metrics.Set
	Log         *slog.Logger
	Now         func() time.Time
}

// Handlers serve the email endpoints.
type Handlers struct {
	sites    *config.File
	signer   *Signer
	writer   *sink.Writer
	optOuts  *OptOuts
	rules    *Classifier
	proxies  locate.TrustedProxies
	ua       *agent.Parser
	policies map[string]*enrich.URLPolicy
	redact   *redact.Redactor
	opens    *lru.Cache[uint64, int64]
	minter   *Minter
	apiKeys  *config.Keys
	log      *slog.Logger
	now      func() time.Time
	m        handlerMetrics
	// recipients counts the opens and clicks stored per recipient and UTC
	// day on noisy sites (recipients.go); nil when no site is noisy.
	recipients *ledger.Table[recipientDay]
}

type handlerMetrics struct {
	set *metrics.Set
}

// count increments glimpse_email_requests_total{kind,outcome}; the label
// values come from small fixed sets.
func (m handlerMetrics) count(kind, outcome string) {
	m.set.GetOrCreateCounter(`glimpse_email_requests_total{kind="` + kind + `",outcome="` + outcome + `"}`).Inc()
}

// New returns the email handlers.
func New(o Options) (*Handlers, error) {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Metrics == nil {
		o.Metrics = metrics.NewSet()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Rules == nil {
		o.Rules = DefaultRules()
	}
	if o.RecentOpens <= 0 {
		o.RecentOpens = 100_000
	}
	opens, err := lru.New[uint64, int64](o.RecentOpens)
	if err != nil {
		return nil, err
	}
	rd := redact.New(o.Metrics)
	h := &Handlers{
		sites: o.Sites, signer: o.Signer, writer: o.Writer, optOuts: o.OptOuts, rules: o.Rules,
		proxies: o.Proxies, ua: agent.NewParser(0), policies: map[string]*enrich.URLPolicy{}, redact: rd,
		opens: opens, apiKeys: o.Sites.Keys(), log: o.Log.With("component", "email"), now: o.Now, m: handlerMetrics{o.Metrics},
		minter: &Minter{Signer: o.Signer, Sites: o.Sites, Base: strings.TrimRight(o.PublicURL, "/"), Now: o.Now, Redactor: rd},
	}
	for i := range o.Sites.Sites {
		s := &o.Sites.Sites[i]
		h.policies[s.Domain] = &enrich.URLPolicy{Allow: s.QueryAllow, Redactor: rd}
		if s.Privacy.Noisy() && h.recipients == nil {
			h.recipients = ledger.New[recipientDay](o.RecentOpens)
		}
	}
	return h, nil
}

// Prefixes returns the token endpoints by path prefix, for the mux of
// glimpse serve.
func (h *Handlers) Prefixes() map[string]fasthttp.RequestHandler {
	return map[string]fasthttp.RequestHandler{
		OpenPrefix:   h.ServeOpen,
		ClickPrefix:  h.ServeClick,
		OptOutPrefix: h.ServeOptOut,
	}
}

// Routes returns the exact-path endpoints, for the mux of glimpse serve.
func (h *Handlers) Routes() map[string]fasthttp.RequestHandler {
	return map[string]fasthttp.RequestHandler{SignPath: h.ServeSign}
}

// decode reads the token after prefix (and before suffix) in the path and
// checks it is valid, of kind k, for a configured site.
func (h *Handlers) decode(ctx *fasthttp.RequestCtx, prefix, suffix string, k Kind, now time.Time) (Token, string) {
	p := ctx.Path()
	if len(p) < len(prefix)+len(suffix) || string(p[len(p)-len(suffix):]) != suffix {
		return Token{}, "malformed"
	}
	t, err := h.signer.Decode(p[len(prefix):len(p)-len(suffix)], now)
	switch err {
	case nil:
	case ErrExpired:
		return t, "expired"
	case ErrSignature:
		return t, "bad_signature"
	default:
		return t, "malformed"
	}
	if t.Kind != k {
		return Token{}, "wrong_kind"
	}
	if h.sites.Site(t.Site) == nil {
		return Token{}, "unknown_site"
	}
	return t, ""
}

func (h *Handlers) method(ctx *fasthttp.RequestCtx, allow string) bool {
	if ctx.IsGet() || ctx.IsHead() || (allow != "GET, HEAD" && ctx.IsPost()) {
		return true
	}
	ctx.Response.Header.Set("Allow", allow)
	ctx.Error("method not allowed", fasthttp.StatusMethodNotAllowed)
	return false
}

// gif is a transparent 1×1 GIF, 43 bytes.
var gif = [...]byte{
	0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 0x01, 0x00, 0x01, 0x00, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00,
	0xff, 0xff, 0xff, 0x21, 0xf9, 0x04, 0x01, 0x00, 0x00, 0x00, 0x00, 0x2c, 0x00, 0x00, 0x00, 0x00,
	0x01, 0x00, 0x01, 0x00, 0x00, 0x02, 0x02, 0x44, 0x01, 0x00, 0x3b,
}

// ServeOpen answers GET|HEAD /e/o/{token}.gif: always the GIF (status
// 200, so no mail client shows a broken image), and records an email_open
// unless the token is bad (X-Glimpse-Dropped says why) or the recipient
// opted out.
func (h *Handlers) ServeOpen(ctx *fasthttp.RequestCtx) {
	if !h.method(ctx, "GET, HEAD") {
		return
	}
	hd := &ctx.Response.Header
	hd.SetContentType("image/gif")
	hd.Set("Cache-Control", "no-store")
	hd.Set("Pragma", "no-cache")
	hd.Set("Expires", "0")
	ctx.Response.SetBodyRaw(gif[:])
	now := h.now()
	t, bad := h.decode(ctx, OpenPrefix, ".gif", KindOpen, now)
	if bad != "" {
		h.m.count("open", bad)
		hd.Set("X-Glimpse-Dropped", bad)
		return
	}
	if h.optOuts.Has(t.Site, t.Recipient) {
		h.m.count("open", "opted_out")
		hd.Set("X-Glimpse-Dropped", "opted_out")
		return
	}
	if t.Recipient != "" {
		h.opens.Add(openKey(&t), now.UnixNano())
	}
	verdict, reason := h.classify(ctx, &t, false, now)
	if out := h.record(&t, model.TypeEmailOpen, verdict, reason, now); out != "" {
		hd.Set("X-Glimpse-Dropped", out)
	}
}

// ServeClick answers GET|HEAD /e/c/{token}: 302 to the signed destination
// and an email_click row; a bad token gets 400 and a short page, never a
// Location. An opted-out recipient is still redirected, not recorded.
func (h *Handlers) ServeClick(ctx *fasthttp.RequestCtx) {
	if !h.method(ctx, "GET, HEAD") {
		return
	}
	now := h.now()
	t, bad := h.decode(ctx, ClickPrefix, "", KindClick, now)
	if bad == "" && CheckDestination(t.URL) != nil {
		bad = "bad_destination" // cannot happen for tokens Sign made
	}
	if bad != "" {
		h.m.count("click", bad)
		ctx.Response.Header.Set("X-Glimpse-Dropped", bad)
		page(ctx, fasthttp.StatusBadRequest, "Link not valid",
			"This link is not valid or has expired. Please use the latest email you received, or visit the sender's site directly.")
		return
	}
	hd := &ctx.Response.Header
	hd.Set("Cache-Control", "no-store")
	hd.Set("Referrer-Policy", "no-referrer")
	hd.Set("Location", t.URL)
	ctx.SetStatusCode(fasthttp.StatusFound)
	if h.optOuts.Has(t.Site, t.Recipient) {
		h.m.count("click", "opted_out")
		return
	}
	verdict, reason := h.classify(ctx, &t, true, now)
	h.record(&t, model.TypeEmailClick, verdict, reason, now)
}

func openKey(t *Token) uint64 {
	var d xxhash.Digest
	d.Reset()
	_, _ = d.WriteString(t.Site)
	_, _ = d.Write([]byte{0})
	_, _ = d.WriteString(t.Campaign)
	_, _ = d.Write([]byte{0})
	_, _ = d.WriteString(t.Recipient)
	return d.Sum64()
}

// classify runs the rules on the request; the IP and User-Agent do not
// leave this function.
func (h *Handlers) classify(ctx *fasthttp.RequestCtx, t *Token, click bool, now time.Time) (string, string) {
	req := &ctx.Request.Header
	peer, _ := netip.AddrFromSlice(ctx.RemoteIP())
	r := Request{
		Method: string(req.Method()),
		UA:     req.UserAgent(),
		IP:     h.proxies.ClientIP(peer.Unmap(), req),
		Click:  click,
		Now:    now,
		Sent:   t.Sent,
	}
	r.Bot = h.ua.Parse(r.UA, agent.ClientHints{}).Bot
	if click && t.Recipient != "" {
		if ns, ok := h.opens.Get(openKey(t)); ok {
			r.LastOpen = time.Unix(0, ns)
		}
	}
	return h.rules.Classify(&r)
}

// record enqueues one email row; it returns the drop reason or "".
func (h *Handlers) record(t *Token, typ int8, verdict, reason string, now time.Time) string {
	kind := "open"
	if typ == model.TypeEmailClick {
		kind = "click"
	}
	// On a noisy site a recipient's opens and clicks of a day are bounded
	// (recipients.go); those without a recipient are each their own unit.
	site := h.sites.Site(t.Site)
	bounded := site.Privacy.Noisy() && t.Recipient != ""
	if bounded && !h.admit(t, now) {
		h.m.count(kind, "contribution_cap")
		return "contribution_cap"
	}
	e := h.writer.NewEvent()
	e.SiteID = site.Domain // the config's string, not the token's copy
	e.NewID()
	e.TS = now.UTC().Truncate(time.Second)
	e.Type = typ
	// Tokens minted before campaign names were redacted may carry one raw.
	e.EmailCampaign = h.redact.AppendText(e.EmailCampaign, []byte(t.Campaign))
	e.EmailRecipient = append(e.EmailRecipient, t.Recipient...)
	e.EmailVerdict, e.EmailReason = verdict, reason
	if typ == model.TypeEmailClick {
		// The destination as a page URL is stored: host and path, query
		// parameters only as the site's URL policy keeps them.
		var u enrich.PageURL
		if err := h.policies[t.Site].Clean(&u, []byte(t.URL)); err == nil {
			e.TargetURL = append(append(e.TargetURL, u.Host...), u.Path...)
			e.UTMSource = append(e.UTMSource, u.UTMSource...)
			e.UTMMedium = append(e.UTMMedium, u.UTMMedium...)
			e.UTMCampaign = append(e.UTMCampaign, u.UTMCampaign...)
			e.UTMContent = append(e.UTMContent, u.UTMContent...)
			e.UTMTerm = append(e.UTMTerm, u.UTMTerm...)
		}
	}
	err := h.writer.Enqueue(e)
	if err != nil && bounded {
		h.refund(t, now)
	}
	switch err {
	case nil:
		h.m.count(kind, "recorded_"+verdict)
		return ""
	case sink.ErrClosed:
		h.m.count(kind, "shutdown")
		return "shutdown"
	default:
		h.m.count(kind, "queue_full")
		return "queue_full"
	}
}

// ServeOptOut answers /e/optout/{token}. GET shows the recipient's state
// with a button that changes it; POST records the change: opt=in tracks
// the recipient again, anything else without opt (the button of the
// opt-out form, an RFC 8058 one-click List-Unsubscribe-Post, a bare
// POST) or opt=out opts out. A GET alone never changes anything: link
// scanners fetch every link in a message.
func (h *Handlers) ServeOptOut(ctx *fasthttp.RequestCtx) {
	if !h.method(ctx, "GET, HEAD, POST") {
		return
	}
	now := h.now()
	t, bad := h.decode(ctx, OptOutPrefix, "", KindOptOut, now)
	if bad == "expired" {
		// Opting out must keep working for old emails: the signature is
		// what matters, the expiry of an opt-out link is ignored.
		t, bad = h.decodeIgnoringExpiry(ctx)
	}
	if bad != "" {
		h.m.count("optout", bad)
		page(ctx, fasthttp.StatusBadRequest, "Link not valid", "This opt-out link is not valid. Please use the link from the latest email you received.")
		return
	}
	ctx.Response.Header.Set("Cache-Control", "no-store")
	if !ctx.IsPost() {
		if h.optOuts.Has(t.Site, t.Recipient) {
			optedOutPage(ctx, t.Site, "Opens and clicks of emails from "+t.Site+" are not tracked for you.")
			return
		}
		optOutForm(ctx, t.Site, "")
		return
	}
	var out bool
	switch opt := string(ctx.FormValue("opt")); opt {
	case "", "out":
		out = true
	case "in":
	default:
		h.m.count("optout", "bad_request")
		page(ctx, fasthttp.StatusBadRequest, "Not understood", `This request is not understood: opt must be "out" or "in".`)
		return
	}
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.optOuts.Set(c, t.Site, t.Recipient, out, now); err != nil {
		h.log.Error("cannot record an email opt-out change", "site", t.Site, "opted_out", out, "err", err)
		h.m.count("optout", "error")
		ctx.Response.Header.Set("Retry-After", "60")
		page(ctx, fasthttp.StatusServiceUnavailable, "Please try again", "Your choice could not be saved just now. Please try again in a minute.")
		return
	}
	if !out {
		h.m.count("optout", "opted_in")
		optOutForm(ctx, t.Site, "Done: opens and clicks of emails from "+t.Site+" are tracked for you again. ")
		return
	}
	h.m.count("optout", "recorded")
	optedOutPage(ctx, t.Site, "Done: opens and clicks of emails from "+t.Site+" will no longer be tracked for you. Links keep working.")
}

func (h *Handlers) decodeIgnoringExpiry(ctx *fasthttp.RequestCtx) (Token, string) {
	t, err := h.signer.Decode(ctx.Path()[len(OptOutPrefix):], time.Unix(1, 0))
	if err != nil || t.Kind != KindOptOut || h.sites.Site(t.Site) == nil {
		return Token{}, "malformed"
	}
	return t, ""
}

const pageCSS = `body{font:16px/1.5 system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem;color:#222}button{font:inherit;padding:.5rem 1rem}`

// page answers a short self-contained HTML page (no external resources).
func page(ctx *fasthttp.RequestCtx, status int, title, msg string) {
	pageWith(ctx, status, title, msg, "")
}

// pageWith is page with extra trusted markup after the message.
func pageWith(ctx *fasthttp.RequestCtx, status int, title, msg, extra string) {
	ctx.SetStatusCode(status)
	ctx.SetContentType("text/html; charset=utf-8")
	hd := &ctx.Response.Header
	hd.Set("Cache-Control", "no-store")
	hd.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'")
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Referrer-Policy", "no-referrer")
	ctx.SetBodyString(`<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1"><meta name="robots" content="noindex"><title>` +
		html.EscapeString(title) + `</title><style>` + pageCSS + `</style></head><body><h1>` + html.EscapeString(title) + `</h1><p>` + html.EscapeString(msg) + `</p>` + extra + `</body></html>`)
}

// optOutForm shows the state of a tracked recipient, after done (a
// sentence or ""), and the button that opts out.
func optOutForm(ctx *fasthttp.RequestCtx, site, done string) {
	pageWith(ctx, fasthttp.StatusOK, "Stop email tracking",
		done+"Emails from "+site+" count opens and link clicks per recipient pseudonym (never your address). Press the button to stop that for you; links keep working.",
		`<form method="post"><input type="hidden" name="opt" value="out"><button type="submit">Stop tracking my opens and clicks</button></form>`)
}

// optedOutPage shows the state of an opted-out recipient, msg, and the
// button that tracks the recipient again.
func optedOutPage(ctx *fasthttp.RequestCtx, site, msg string) {
	pageWith(ctx, fasthttp.StatusOK, "Opted out", msg,
		`<p>Changed your mind? Emails from `+html.EscapeString(site)+` may count your opens and link clicks again.</p>`+
			`<form method="post"><input type="hidden" name="opt" value="in"><button type="submit">Track my opens and clicks again</button></form>`)
}

// signRequest is the body of POST /api/email/sign.
type signRequest struct {
	Kind      string `json:"kind"` // link | pixel | optout | rewrite
	Site      string `json:"site"`
	Campaign  string `json:"campaign"`
	URL       string `json:"url"`
	Recipient string `json:"recipient"`
	TTL       string `json:"ttl"` // "90d", "36h", "never"; default 90d
	HTML      string `json:"html"`
}

type signResponse struct {
	URL     string   `json:"url,omitempty"`
	Img     string   `json:"img,omitempty"`
	HTML    string   `json:"html,omitempty"`
	Links   int      `json:"links,omitempty"`
	Skipped []string `json:"skipped,omitempty"`
}

// ServeSign answers POST /api/email/sign for ESP integrations, with an
// API key (Authorization: Bearer) that lists the site and the email scope.
func (h *Handlers) ServeSign(ctx *fasthttp.RequestCtx) {
	if !ctx.IsPost() {
		ctx.Response.Header.Set("Allow", "POST")
		jsonError(ctx, fasthttp.StatusMethodNotAllowed, "use POST")
		return
	}
	_, key, err := h.apiKeys.Match(ctx.Request.Header.Peek("Authorization"))
	if err != nil {
		h.m.count("sign", "unauthorized")
		ctx.Response.Header.Set("WWW-Authenticate", `Bearer realm="glimpse"`)
		jsonError(ctx, fasthttp.StatusUnauthorized, "missing or unknown API key: send Authorization: Bearer <key>")
		return
	}
	if !key.Can(config.ScopeEmail) {
		h.m.count("sign", "forbidden")
		jsonError(ctx, fasthttp.StatusForbidden, "this API key may not sign email links: list email in its scopes (api_keys; a key without scopes only reads stats)")
		return
	}
	var req signRequest
	dec := json.NewDecoder(strings.NewReader(string(ctx.PostBody())))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		h.m.count("sign", "bad_request")
		jsonError(ctx, fasthttp.StatusBadRequest, "cannot parse the JSON body: "+err.Error())
		return
	}
	if !key.Covers(req.Site) {
		h.m.count("sign", "forbidden")
		jsonError(ctx, fasthttp.StatusForbidden, "this API key may not sign for site "+strconvQuote(req.Site))
		return
	}
	ttl, err := ParseTTL(req.TTL)
	if err != nil {
		jsonError(ctx, fasthttp.StatusBadRequest, err.Error())
		return
	}
	p := Mint{Site: req.Site, Campaign: req.Campaign, Recipient: req.Recipient, TTL: ttl}
	var res signResponse
	switch req.Kind {
	case "link":
		res.URL, err = h.minter.Link(p, req.URL)
	case "pixel":
		if res.URL, err = h.minter.PixelURL(p); err == nil {
			res.Img = ImgTag(res.URL)
		}
	case "optout":
		res.URL, err = h.minter.OptOutURL(p)
	case "rewrite":
		var b strings.Builder
		var rr RewriteResult
		rr, err = h.minter.Rewrite(&b, strings.NewReader(req.HTML), p)
		res.HTML, res.Links, res.Skipped = b.String(), rr.Links, rr.Skipped
	default:
		err = errKind
	}
	if err != nil {
		h.m.count("sign", "bad_request")
		jsonError(ctx, fasthttp.StatusBadRequest, err.Error())
		return
	}
	h.m.count("sign", "signed")
	h.log.Debug("signed", "key", key.Name, "kind", req.Kind, "site", req.Site)
	ctx.SetContentType("application/json")
	ctx.Response.Header.Set("Cache-Control", "no-store")
	b, _ := json.Marshal(res)
	ctx.SetBody(b)
}

var errKind = errors.New(`kind: want "link", "pixel", "optout" or "rewrite"`)

func jsonError(ctx *fasthttp.RequestCtx, status int, msg string) {
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/json")
	b, _ := json.Marshal(map[string]string{"error": msg})
	ctx.SetBody(b)
}

func strconvQuote(s string) string { b, _ := json.Marshal(s); return string(b) }
