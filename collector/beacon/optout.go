package beacon

import (
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"fmt"
	"html/template"
	"net/url"
	"strings"

	"github.com/valyala/fasthttp"

	"github.com/glimpse-analytics/glimpse/collector"
	"github.com/glimpse-analytics/glimpse/internal/config"
)

// OptOutPath is where the collector serves the opt-out page.
const OptOutPath = "/optout"

// optOutMaxAge is the opt-out cookie's lifetime: 13 months (396 days, under
// the 400 days browsers allow).
const optOutMaxAge = 396 * 24 * 60 * 60

var (
	//go:embed optout.html
	optOutHTML string
	//go:embed optout.css
	optOutCSS string
)

// OptOutOptions configure the opt-out page.
type OptOutOptions struct {
	// PublicURL is the collector's public base URL (--public-url). Its
	// origin is the only one whose pages may POST the form, its path prefix
	// is kept in the form's action, and an https URL makes the cookie
	// Secure.
	PublicURL string
	// Sites supply the per-site frame ancestors and privacy modes.
	Sites *config.File
}

// OptOut serves GET and POST /optout: a page that tells visitors whether
// this browser is counted and lets them change it with the opt-out cookie
// (collector.OptOutCookie), which the collector's gate honours.
type OptOut struct {
	origin string // scheme://host[:port] of PublicURL, as browsers send it in Origin
	action string // the page's path under PublicURL
	secure bool
	sites  *config.File
	page   *template.Template
	csp    string // the policy without frame-ancestors
}

// NewOptOut prepares the opt-out page.
func NewOptOut(o OptOutOptions) (*OptOut, error) {
	u, err := url.Parse(o.PublicURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("public URL %q is not an http(s) URL; set --public-url to the collector's public base URL", o.PublicURL)
	}
	if o.Sites == nil {
		return nil, fmt.Errorf("opt-out page: no sites")
	}
	page, err := template.New("optout").Parse(optOutHTML)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256([]byte(optOutCSS))
	return &OptOut{
		origin: webOrigin(u.Scheme, u.Host),
		action: strings.TrimRight(u.EscapedPath(), "/") + OptOutPath,
		secure: u.Scheme == "https",
		sites:  o.Sites,
		page:   page,
		// No script at all; the one inline style is allowed by its hash.
		csp: "default-src 'none'; style-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'; " +
			"form-action 'self'; base-uri 'none'; frame-ancestors ",
	}, nil
}

// webOrigin serializes an origin as browsers do: lower-case, no default port.
func webOrigin(scheme, host string) string {
	scheme, host = strings.ToLower(scheme), strings.ToLower(host)
	if p := ":" + map[string]string{"http": "80", "https": "443"}[scheme]; strings.HasSuffix(host, p) && !strings.HasSuffix(host, "]") {
		host = strings.TrimSuffix(host, p)
	}
	return scheme + "://" + host
}

// Routes returns the page's handler by exact path, for the mux.
func (p *OptOut) Routes() map[string]fasthttp.RequestHandler {
	return map[string]fasthttp.RequestHandler{OptOutPath: p.Handler}
}

// Handler answers /optout.
func (p *OptOut) Handler(ctx *fasthttp.RequestCtx) {
	site := p.sites.Lookup(ctx.QueryArgs().Peek("site"))
	h := &ctx.Response.Header
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	// same-origin keeps the Origin header on the form's POST (no-referrer
	// would turn it into "null") and tells no other site anything.
	h.Set("Referrer-Policy", "same-origin")
	switch {
	case ctx.IsGet() || ctx.IsHead():
		p.answer(ctx, site, optedOut(ctx))
	case ctx.IsPost():
		if why := p.crossSite(ctx); why != "" {
			ctx.Error("cross-site request refused: "+why, fasthttp.StatusForbidden)
			return
		}
		out := !optedOut(ctx) // a bare POST toggles
		opt := ctx.PostArgs().Peek("opt")
		if len(opt) == 0 {
			opt = ctx.QueryArgs().Peek("opt")
		}
		switch string(opt) {
		case "":
		case "out":
			out = true
		case "in":
			out = false
		default:
			ctx.Error(`opt must be "out" or "in"`, fasthttp.StatusBadRequest)
			return
		}
		p.setCookie(ctx, out)
		if wantsJSON(ctx) {
			p.answer(ctx, site, out)
			return
		}
		// Post/Redirect/Get: reloading the page does not post again.
		loc := p.action
		if site != nil {
			loc += "?site=" + url.QueryEscape(site.Domain)
		}
		h.Set("Location", loc)
		ctx.SetStatusCode(fasthttp.StatusSeeOther)
	default:
		ctx.Error("use GET or POST", fasthttp.StatusMethodNotAllowed) // resets the headers
		h.Set("Allow", "GET, HEAD, POST")
	}
}

func optedOut(ctx *fasthttp.RequestCtx) bool {
	return string(ctx.Request.Header.Cookie(collector.OptOutCookie)) == "1"
}

func wantsJSON(ctx *fasthttp.RequestCtx) bool {
	return bytes.Contains(ctx.Request.Header.Peek("Accept"), []byte("application/json"))
}

// crossSite returns why a POST is not from the collector's own page, or ""
// when it is: the browser's Sec-Fetch-Site must not say otherwise, and the
// Origin (or, lacking it, the Referer) must be the public origin.
func (p *OptOut) crossSite(ctx *fasthttp.RequestCtx) string {
	req := &ctx.Request.Header
	if s := req.Peek("Sec-Fetch-Site"); len(s) > 0 && string(s) != "same-origin" {
		return "Sec-Fetch-Site is " + string(s)
	}
	origin, from := string(req.Peek("Origin")), "Origin"
	if origin == "" {
		from = "Referer"
		if u, err := url.Parse(string(req.Referer())); err == nil && u.Host != "" {
			origin = webOrigin(u.Scheme, u.Host)
		}
	}
	switch {
	case origin == "":
		return "the request names no Origin or Referer"
	case origin != p.origin:
		return fmt.Sprintf("%s %q is not this collector's public origin %q (set --public-url to the URL visitors use)", from, origin, p.origin)
	}
	return ""
}

// setCookie sets or removes the opt-out cookie.
func (p *OptOut) setCookie(ctx *fasthttp.RequestCtx, out bool) {
	c := collector.OptOutCookie + "=1; Path=/; Max-Age=" + fmt.Sprint(optOutMaxAge)
	if !out {
		c = collector.OptOutCookie + "=; Path=/; Max-Age=0"
	}
	c += "; HttpOnly; SameSite=Lax"
	if p.secure || ctx.IsTLS() {
		c += "; Secure"
	}
	ctx.Response.Header.Add("Set-Cookie", c)
}

// answer writes the state as JSON or as the page.
func (p *OptOut) answer(ctx *fasthttp.RequestCtx, site *config.Site, out bool) {
	h := &ctx.Response.Header
	h.Set("Vary", "Accept, Cookie")
	if wantsJSON(ctx) {
		h.SetContentType("application/json")
		ctx.SetBodyString(fmt.Sprintf(`{"opted_out":%t}`, out))
		return
	}
	sites := p.sites.Sites
	if site != nil {
		sites = []config.Site{*site}
	}
	var ancestors []string
	aggregate, consented, gpc := false, false, true
	for i := range sites {
		ancestors = append(ancestors, sites[i].OptOutFrameAncestors...)
		aggregate = aggregate || sites[i].Privacy.Mode == config.ModeAggregate
		consented = consented || sites[i].Privacy.Mode == config.ModeConsented
		gpc = gpc && sites[i].Privacy.GPC()
	}
	if len(ancestors) == 0 {
		h.Set("X-Frame-Options", "DENY") // for browsers without CSP 2
		h.Set("Content-Security-Policy", p.csp+"'none'")
	} else {
		h.Set("Content-Security-Policy", p.csp+strings.Join(ancestors, " "))
	}
	action := p.action
	if site != nil {
		action += "?site=" + url.QueryEscape(site.Domain)
	}
	var b bytes.Buffer
	err := p.page.Execute(&b, pageData{
		Style:    template.CSS(optOutCSS),
		OptedOut: out,
		Detail:   detail(out, aggregate, consented),
		Action:   action,
		GPC:      gpc,
	})
	if err != nil {
		ctx.Error("cannot render the opt-out page", fasthttp.StatusInternalServerError)
		return
	}
	h.SetContentType("text/html; charset=utf-8")
	ctx.SetBody(b.Bytes())
}

type pageData struct {
	Style    template.CSS
	OptedOut bool
	Detail   string
	Action   string
	GPC      bool
}

// detail explains the state in one or two sentences that hold for every
// privacy mode of the sites the page speaks for.
func detail(out, aggregate, consented bool) string {
	switch {
	case out && aggregate:
		return "Your page views may still add to a site's totals, but with no identifier, no network address and no region: only the page and your country."
	case out:
		return "Nothing about your visits is stored."
	}
	s := "Glimpse tells your visits apart for one day at most, by a hash of your IP address and browser under a key that is replaced every day and then destroyed."
	if consented {
		s += " A site may also link your visits to your account there, if you agreed to that on the site."
	}
	return s
}
