package beacon

import (
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"fmt"
	"html/template"
	"net/url"
	"slices"
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
	// Sites supply the per-site frame ancestors and privacy settings.
	Sites *config.File
	// Geo says that a GeoIP database is set (--geoip), so that locations
	// are stored: the page lists them only then.
	Geo bool
}

// OptOut serves GET and POST /optout: a page that tells visitors whether
// this browser is counted (its opt-out cookie, collector.OptOutCookie, and
// the Sec-GPC and DNT signals, as each site's privacy settings take them),
// what that means in the sites' privacy modes and what is collected, and
// lets them change it with the cookie, which the collector's gate honours.
type OptOut struct {
	origin string // scheme://host[:port] of PublicURL, as browsers send it in Origin
	action string // the page's path under PublicURL
	secure bool
	sites  *config.File
	geo    bool
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
		geo:    o.Geo,
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
	h.Set("Vary", "Accept, Cookie, Sec-GPC, DNT")
	if wantsJSON(ctx) {
		h.SetContentType("application/json")
		ctx.SetBodyString(fmt.Sprintf(`{"opted_out":%t}`, out))
		return
	}
	sc := scope{sites: p.sites.Sites, geo: p.geo, email: len(p.sites.Email.SigningKeys) > 0}
	if site != nil {
		sc.sites = []config.Site{*site}
	}
	var ancestors []string
	for i := range sc.sites {
		ancestors = append(ancestors, sc.sites[i].OptOutFrameAncestors...)
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
	d := describe(&sc, out, ctx.Request.Header.Peek("Sec-GPC"), ctx.Request.Header.Peek("DNT"))
	d.Style, d.Action, d.Collected = template.CSS(optOutCSS), action, sc.list()
	var b bytes.Buffer
	if err := p.page.Execute(&b, d); err != nil {
		ctx.Error("cannot render the opt-out page", fasthttp.StatusInternalServerError)
		return
	}
	h.SetContentType("text/html; charset=utf-8")
	ctx.SetBody(b.Bytes())
}

type pageData struct {
	Style     template.CSS
	Action    string
	OptedOut  bool     // the opt-out cookie is set: the button counts again
	State     string   // this browser's state, in a sentence or two
	Detail    string   // what that state means for its visits
	Collected []string // what is collected, one line each
	Note      string   // the opt-out signals the sites honour
}

// describe words the page for a browser with (out) or without the opt-out
// cookie that sends these Sec-GPC and DNT values, on the sites of sc. Each
// site's verdict is the privacy gate's own (collector.OptedOut); where
// the sites differ, the page says what holds on which kind of site and
// never claims for all what holds for some.
func describe(sc *scope, out bool, gpc, dnt []byte) pageData {
	// What the signals alone do on each site, and what the browser's
	// opt-out, however it comes, does on the sites it reaches.
	var signalOut, counted []config.Site
	var honoured []string // the signals that opt the browser out somewhere
	for _, s := range sc.sites {
		r := collector.OptedOut(nil, gpc, dnt, &s.Privacy)
		if r == "" {
			counted = append(counted, s)
			continue
		}
		signalOut = append(signalOut, s)
		if n := signalName[r]; !slices.Contains(honoured, n) {
			honoured = append(honoured, n)
		}
	}
	where := "the sites this collector measures"
	if len(sc.sites) == 1 {
		where = "this site"
	}
	d := pageData{OptedOut: out}
	switch {
	case out:
		d.State = "You are opted out of Glimpse analytics."
		d.Detail = upper(optOutEffect(sc, sc.sites)) + "."
	case len(counted) == 0:
		d.State = "Your browser sends " + joinAnd(honoured) + ", which " + plural(honoured, "opts", "opt") + " you out of Glimpse analytics."
		d.Detail = upper(optOutEffect(sc, sc.sites)) + "."
		d.Note = "The button also keeps you opted out when your browser does not send " + plural(honoured, "it", "them") + "."
	case len(signalOut) > 0:
		d.State = "Your browser sends " + joinAnd(honoured) + ". Some of the sites this collector measures treat " +
			plural(honoured, "it as an opt-out", "them as opt-outs") + "; the others count your visits, without cookies."
		d.Detail = "Where " + plural(honoured, "it is", "they are") + " respected, " + optOutEffect(sc, signalOut) + ". Elsewhere, " +
			countedText(counted) + " If you opt out there, " + optOutEffect(sc, counted) + "."
	default:
		d.State = "Your visits are counted, without cookies."
		var ignored []string
		if sent(gpc) {
			ignored = append(ignored, signalName[collector.OptOutGPCReason])
		}
		if sent(dnt) {
			ignored = append(ignored, signalName[collector.OptOutDNTReason])
		}
		if len(ignored) > 0 {
			d.State += " Your browser sends " + joinAnd(ignored) + ", but " + where + doesNot(len(sc.sites)) + " treat " + plural(ignored, "it as an opt-out", "them as opt-outs") + "."
		}
		d.Detail = countedText(counted) + " If you opt out, " + optOutEffect(sc, counted) + "."
	}
	if out && len(signalOut) > 0 {
		d.Note = "Without the cookie, your browser’s " + joinAnd(honoured) + " still " +
			plural(honoured, "opts", "opt") + " you out"
		if len(counted) > 0 {
			d.Note += " on some of these sites"
		}
		d.Note += "."
	}
	var all, some []string // the signals every site, or some, honours
	for _, sig := range []struct {
		reason  string
		honours func(*config.Site) bool
	}{
		{collector.OptOutGPCReason, func(s *config.Site) bool { return s.Privacy.GPC() }},
		{collector.OptOutDNTReason, func(s *config.Site) bool { return s.Privacy.DNT() }},
	} {
		n := 0
		for i := range sc.sites {
			if sig.honours(&sc.sites[i]) {
				n++
			}
		}
		switch {
		case n == len(sc.sites):
			all = append(all, signalName[sig.reason])
		case n > 0:
			some = append(some, signalName[sig.reason])
		}
	}
	if len(all) > 0 {
		d.Note = join(d.Note, "A browser that sends "+strings.Join(all, " or ")+" is opted out in the same way.")
	}
	if len(some) > 0 {
		d.Note = join(d.Note, "Some of these sites also opt out a browser that sends "+strings.Join(some, " or ")+".")
	}
	return d
}

var signalName = map[string]string{
	collector.OptOutGPCReason: "Global Privacy Control",
	collector.OptOutDNTReason: "Do Not Track",
}

func sent(v []byte) bool { return string(bytes.TrimSpace(v)) == "1" }

func doesNot(sites int) string {
	if sites == 1 {
		return " does not"
	}
	return " do not"
}

// countedText says how the visits of a counted browser are told apart on
// sites.
func countedText(sites []config.Site) string {
	s := "Glimpse tells your visits apart for one day at most, by a hash of your IP address and browser under a key that is replaced every day and then destroyed."
	for i := range sites {
		if consented(&sites[i]) {
			return s + " A site may also link your visits to your account there, if you agreed to that on the site."
		}
	}
	return s
}

// optOutEffect says what becomes of an opted-out browser's visits on
// sites, per privacy mode: strict and consented store nothing (the gate
// drops the event), aggregate stores each event with only the columns
// collected marks anonymous (the ingest path's anonymous branch).
func optOutEffect(sc *scope, sites []config.Site) string {
	agg := 0
	for i := range sites {
		if aggregate(&sites[i]) {
			agg++
		}
	}
	kept := "only " + sc.anonKept() + " and nothing else: no identifier, no part of your IP address, no region, browser or device"
	switch {
	case agg == 0:
		return "nothing about your visits is stored"
	case agg == len(sites) && len(sites) == 1:
		return "your page views and events still count in the site’s totals, but each is stored with " + kept
	case agg == len(sites):
		return "your page views and events still count in the sites’ totals, but each is stored with " + kept
	default:
		return "sites in privacy mode strict or consented store nothing about your visits, and sites in mode aggregate still count your page views and events in their totals, but store each with " + kept
	}
}

func plural(s []string, one, many string) string {
	if len(s) > 1 {
		return many
	}
	return one
}

func upper(s string) string { return strings.ToUpper(s[:1]) + s[1:] }

func join(a, b string) string {
	if a == "" {
		return b
	}
	return a + " " + b
}
