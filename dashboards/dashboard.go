package dashboards

import (
	"bytes"
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"html/template"
	"io/fs"
	"log/slog"
	"mime"
	"net/netip"
	"net/url"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/valyala/fasthttp"

	"github.com/glimpse-analytics/glimpse/aggregator/api"
	"github.com/glimpse-analytics/glimpse/internal/config"
	"github.com/glimpse-analytics/glimpse/internal/model"
	"github.com/glimpse-analytics/glimpse/internal/ratelimit"
	"github.com/glimpse-analytics/glimpse/internal/storage/notes"
)

// Paths. The dashboard lives under Prefix, on the main listener or on its
// own (serve --dashboard-listen).
const (
	Prefix      = "/dashboard"
	PathHome    = Prefix + "/"
	PathLogin   = Prefix + "/login"
	PathLogout  = Prefix + "/logout"
	PathSite    = Prefix + "/site"
	PathAssets  = Prefix + "/assets/"
	PathAPI     = Prefix + "/api/"
	PathCSV     = Prefix + "/api/csv"
	cookieName  = "glimpse_session"
	csrfCookie  = "glimpse_csrf"
	cookiePath  = Prefix + "/"
	maxEmailLen = 254
)

// HSTS is the Strict-Transport-Security of a dashboard reached over
// HTTPS (Options.HTTPS): browsers use only HTTPS for this host for a
// year. Not includeSubDomains: other hosts under the domain are not ours
// to decide for.
const HSTS = "max-age=31536000"

// ContentSecurityPolicy is sent with every dashboard response: everything
// from this origin only, no inline script or style, no plugins, no
// framing, forms post only here.
const ContentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; " +
	"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

//go:embed assets templates
var files embed.FS

// Options configure the dashboard.
type Options struct {
	Sites *config.File
	Stats *api.API // the Stats API whose handlers the page's JSON endpoints reuse
	// SessionTTL is how long a sign-in lasts (default 12 h).
	SessionTTL time.Duration
	// HTTPS says browsers reach the dashboard over HTTPS, as behind a
	// TLS-terminating proxy (glimpse serve sets it when --dashboard-url,
	// by default --public-url, is https): its cookies are Secure and every
	// answer carries Strict-Transport-Security. Over a TLS connection of
	// its own the cookies are Secure either way.
	HTTPS bool
	// ClientNet returns the network of a request's client, which the
	// sign-in throttle counts per. glimpse serve passes the collector's:
	// the client behind --trusted-proxies, truncated to the /24 or /48
	// that is stored of it. Default: the TCP peer's address alone.
	ClientNet func(c *fasthttp.RequestCtx) netip.Prefix
	// LoginWindow and the limits throttle failed sign-ins: after
	// LoginLimitEmail failures for one address, or LoginLimitIP from one
	// client network (ClientNet), within the window, sign-ins are refused
	// until it ends (defaults 15 min, 5, 20).
	LoginWindow     time.Duration
	LoginLimitEmail int
	LoginLimitIP    int
	// ReaderLimit and ClientLimit bound the requests of the JSON and CSV
	// endpoints (which run queries) per reader, a signed-in user or a
	// shared link, and per client network (ClientNet); beyond them the
	// answer is 429 with Retry-After (defaults 3600 an hour in bursts of
	// up to 300, and 7200 an hour in bursts of up to 600: a page load
	// costs about 9, an open page 4 a minute).
	ReaderLimit ratelimit.Limit
	ClientLimit ratelimit.Limit
	Now         func() time.Time
	// PublicURL is the collector's public base URL, which the install
	// snippet of a site without events points at.
	PublicURL string
	// HasEvents reports whether a site has stored any event. A site
	// without one shows the install snippet and waits for its first page
	// view instead of zeroes. nil: every site has events.
	HasEvents func(ctx context.Context, site string) (bool, error)
	// Notes stores the sites' saved segments and annotations
	// (segments.go, annotations.go); nil: they are not available.
	Notes *notes.Store
	// Metrics is where the dashboard counts sign-ins and limited requests
	// (default: a set of its own, which nothing serves).
	Metrics *metrics.Set
	Log     *slog.Logger
}

// Dashboard is the web dashboard.
type Dashboard struct {
	opts     Options
	tmpl     *template.Template
	sessions *sessions
	throttle *throttle
	metrics  *dashMetrics
	limits   *limits
	assets   map[string]asset
	api      map[string]fasthttp.RequestHandler
	routes   map[string]fasthttp.RequestHandler

	dummyOnce sync.Once
	dummy     string // a hash to verify against when the user is unknown
}

type asset struct {
	body []byte
	typ  string
	etag string
}

// New prepares the dashboard.
func New(o Options) (*Dashboard, error) {
	if o.Sites == nil || o.Stats == nil {
		return nil, errors.New("dashboards: Sites and Stats are required")
	}
	if o.SessionTTL <= 0 {
		o.SessionTTL = 12 * time.Hour
	}
	if o.LoginWindow <= 0 {
		o.LoginWindow = 15 * time.Minute
	}
	if o.LoginLimitEmail <= 0 {
		o.LoginLimitEmail = 5
	}
	if o.LoginLimitIP <= 0 {
		o.LoginLimitIP = 20
	}
	if o.ReaderLimit.PerHour <= 0 {
		o.ReaderLimit = defaultReaderLimit
	}
	if o.ClientLimit.PerHour <= 0 {
		o.ClientLimit = defaultClientLimit
	}
	if o.ClientNet == nil {
		o.ClientNet = peerNet
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Metrics == nil {
		o.Metrics = metrics.NewSet()
	}
	tmpl, err := template.New("").Funcs(template.FuncMap{"prefix": func() string { return Prefix }}).ParseFS(files, "templates/*.html")
	if err != nil {
		return nil, err
	}
	d := &Dashboard{opts: o, tmpl: tmpl, sessions: newSessions(o.SessionTTL), throttle: newThrottle(o.LoginWindow), metrics: newDashMetrics(o.Metrics), limits: newLimits(o), assets: map[string]asset{}}
	err = fs.WalkDir(files, "assets", func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		b, err := files.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		typ := mime.TypeByExtension(path.Ext(p))
		if strings.HasSuffix(p, ".js") {
			typ = "text/javascript; charset=utf-8"
		}
		d.assets[PathAssets+strings.TrimPrefix(p, "assets/")] = asset{body: b, typ: typ, etag: `"` + hex.EncodeToString(sum[:8]) + `"`}
		return nil
	})
	if err != nil {
		return nil, err
	}
	d.api = o.Stats.HandlersWith(d.authorize)
	d.routes = map[string]fasthttp.RequestHandler{
		Prefix:         func(c *fasthttp.RequestCtx) { c.Redirect(PathHome, fasthttp.StatusFound) },
		PathHome:       d.home,
		PathLogin:      d.login,
		PathLogout:     d.logout,
		PathSite:       d.site,
		PathCSV:        d.limited(d.csv),
		"/favicon.ico": func(c *fasthttp.RequestCtx) { c.Redirect(PathAssets+"favicon.svg", fasthttp.StatusMovedPermanently) },
	}
	for name, h := range d.api {
		d.routes[PathAPI+name] = d.limited(h)
	}
	for p, h := range d.notesRoutes() {
		d.routes[p] = h
	}
	for p := range d.assets {
		d.routes[p] = d.asset
	}
	for p, h := range d.routes {
		d.routes[p] = d.secure(h)
	}
	return d, nil
}

// Routes returns the dashboard's handlers by exact path, for the mux of
// glimpse serve's main listener.
func (d *Dashboard) Routes() map[string]fasthttp.RequestHandler {
	out := make(map[string]fasthttp.RequestHandler, len(d.routes))
	for p, h := range d.routes {
		if p != "/favicon.ico" { // the main listener's root belongs to the collector
			out[p] = h
		}
	}
	return out
}

// Handler serves the dashboard alone (serve --dashboard-listen): its
// routes, "/" redirecting to the site list, 404 otherwise.
func (d *Dashboard) Handler(c *fasthttp.RequestCtx) {
	p := string(c.Path())
	if h := d.routes[p]; h != nil {
		h(c)
		return
	}
	d.secure(func(c *fasthttp.RequestCtx) {
		if p == "/" {
			c.Redirect(PathHome, fasthttp.StatusFound)
			return
		}
		plain(c, fasthttp.StatusNotFound, "404 page not found")
	})(c)
}

// peerNet is the TCP peer's address as a single-host network.
func peerNet(c *fasthttp.RequestCtx) netip.Prefix {
	a, _ := netip.AddrFromSlice(c.RemoteIP())
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen())
}

// secure adds the security headers every dashboard response carries.
func (d *Dashboard) secure(h fasthttp.RequestHandler) fasthttp.RequestHandler {
	return func(c *fasthttp.RequestCtx) {
		hd := &c.Response.Header
		if d.opts.HTTPS {
			hd.Set("Strict-Transport-Security", HSTS)
		}
		hd.Set("Content-Security-Policy", ContentSecurityPolicy)
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("Referrer-Policy", "no-referrer")
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Cross-Origin-Opener-Policy", "same-origin")
		hd.Set("Cross-Origin-Resource-Policy", "same-origin")
		hd.Set("Permissions-Policy", "interest-cohort=(), browsing-topics=()")
		h(c)
	}
}

// plain answers a short text; unlike RequestCtx.Error it keeps the
// security headers already set.
func plain(c *fasthttp.RequestCtx, status int, msg string) {
	c.SetStatusCode(status)
	c.SetContentType("text/plain; charset=utf-8")
	c.SetBodyString(msg)
}

func (d *Dashboard) asset(c *fasthttp.RequestCtx) {
	a := d.assets[string(c.Path())]
	c.Response.Header.Set("ETag", a.etag)
	c.Response.Header.Set("Cache-Control", "no-cache")
	c.SetContentType(a.typ)
	if string(c.Request.Header.Peek("If-None-Match")) == a.etag {
		c.SetStatusCode(fasthttp.StatusNotModified)
		return
	}
	c.SetBody(a.body)
}

// render writes a template as an uncacheable HTML page.
func (d *Dashboard) render(c *fasthttp.RequestCtx, status int, name string, data any) {
	var b bytes.Buffer
	if err := d.tmpl.ExecuteTemplate(&b, name, data); err != nil {
		d.opts.Log.Error("cannot render a dashboard page", "page", name, "err", err)
		plain(c, fasthttp.StatusInternalServerError, "internal error")
		return
	}
	c.Response.Header.Set("Cache-Control", "no-store")
	c.SetContentType("text/html; charset=utf-8")
	c.SetStatusCode(status)
	c.SetBody(b.Bytes())
}

// current returns the request's session and its id, or nil.
func (d *Dashboard) current(c *fasthttp.RequestCtx) (string, *session) {
	id := string(c.Request.Header.Cookie(cookieName))
	return id, d.sessions.get(id, d.opts.Now())
}

func (d *Dashboard) setCookie(c *fasthttp.RequestCtx, name, value string, maxAge time.Duration) {
	var ck fasthttp.Cookie
	ck.SetKey(name)
	ck.SetValue(value)
	ck.SetPath(cookiePath)
	ck.SetHTTPOnly(true)
	ck.SetSameSite(fasthttp.CookieSameSiteStrictMode)
	ck.SetSecure(c.IsTLS() || d.opts.HTTPS)
	if maxAge > 0 {
		ck.SetMaxAge(int(maxAge / time.Second))
	} else if maxAge < 0 {
		ck.SetExpire(fasthttp.CookieExpireDelete)
	}
	c.Response.Header.SetCookie(&ck)
}

// sameOrigin refuses requests a browser marks as cross-site, and an
// Origin header naming another host.
func sameOrigin(c *fasthttp.RequestCtx) bool {
	switch string(c.Request.Header.Peek("Sec-Fetch-Site")) {
	case "cross-site", "same-site":
		return false
	}
	o := c.Request.Header.Peek("Origin")
	if len(o) == 0 || string(o) == "null" {
		// Referrer-Policy: no-referrer makes browsers send "Origin: null"
		// with form posts; Sec-Fetch-Site and the CSRF token decide then.
		return true
	}
	u, err := url.Parse(string(o))
	return err == nil && strings.EqualFold(u.Host, string(c.Host()))
}

// authorize lets a signed-in user read the sites they may, and a shared
// link's token read its own site.
//
// The reader whose privacy budget pays for what it reads is the shared
// link, or the signed-in user (all their sessions: signing in again does
// not refill it).
func (d *Dashboard) authorize(c *fasthttp.RequestCtx, domain string) (string, error) {
	if tok := string(c.QueryArgs().Peek("auth")); tok != "" {
		if link, ok := d.shareOK(domain, tok); ok {
			return "link:" + link, nil
		}
		return "", api.StatusError(fasthttp.StatusForbidden, "this shared link is not valid (any more)")
	}
	_, s := d.current(c)
	if s == nil {
		return "", api.StatusError(fasthttp.StatusUnauthorized, "not signed in")
	}
	if u := d.opts.Sites.User(s.email); u == nil || !u.CanRead(domain) {
		return "", api.StatusError(fasthttp.StatusForbidden, "you cannot read site "+strconv.Quote(domain))
	}
	return "user:" + s.email, nil
}

// shareOK reports whether tok is a shared link of site domain, and its
// name.
func (d *Dashboard) shareOK(domain, tok string) (string, bool) {
	s := d.opts.Sites.Site(domain)
	if s == nil {
		return "", false
	}
	name, ok := "", false
	for _, l := range s.SharedLinks {
		if equalTokens(tok, l.Token) {
			name, ok = l.Name, true
		}
	}
	return name, ok
}

// readable lists the sites the signed-in user may read.
func (d *Dashboard) readable(s *session) []*config.Site {
	u := d.opts.Sites.User(s.email)
	if u == nil {
		return nil
	}
	var out []*config.Site
	for i := range d.opts.Sites.Sites {
		if u.CanRead(d.opts.Sites.Sites[i].Domain) {
			out = append(out, &d.opts.Sites.Sites[i])
		}
	}
	return out
}

func (d *Dashboard) toLogin(c *fasthttp.RequestCtx) {
	next := string(c.RequestURI())
	c.Redirect(PathLogin+"?next="+url.QueryEscape(next), fasthttp.StatusFound)
}

type homePage struct {
	Email string
	CSRF  string
	Sites []*config.Site
}

func (d *Dashboard) home(c *fasthttp.RequestCtx) {
	_, s := d.current(c)
	if s == nil {
		d.toLogin(c)
		return
	}
	d.render(c, fasthttp.StatusOK, "home.html", homePage{Email: s.email, CSRF: s.csrf, Sites: d.readable(s)})
}

type sitePage struct {
	Site   *config.Site
	Email  string // signed in; "" for a shared link
	CSRF   string
	Shared bool
	// Labels name each dimension as the page shows it (model.Dimensions).
	Labels map[string]string
	// Snippet is the script tag to install, set while the site has no
	// event yet (Options.HasEvents).
	Snippet string
}

// dimensionLabels are the labels the site page shows for dimensions.
var dimensionLabels = func() map[string]string {
	m := make(map[string]string, len(model.Dimensions))
	for _, d := range model.Dimensions {
		m[d.Name] = d.Label
	}
	return m
}()

func (d *Dashboard) site(c *fasthttp.RequestCtx) {
	domain := string(c.QueryArgs().Peek("site"))
	page := sitePage{Site: d.opts.Sites.Site(domain), Labels: dimensionLabels}
	if tok := string(c.QueryArgs().Peek("auth")); tok != "" {
		if _, ok := d.shareOK(domain, tok); page.Site == nil || !ok {
			d.render(c, fasthttp.StatusForbidden, "error.html", "This shared link is not valid (any more). Ask its owner for a new one.")
			return
		}
		page.Shared = true
	} else {
		_, s := d.current(c)
		if s == nil {
			d.toLogin(c)
			return
		}
		if _, err := d.authorize(c, domain); page.Site == nil || err != nil {
			d.render(c, fasthttp.StatusNotFound, "error.html", "No such site, or you cannot read it.")
			return
		}
		page.Email, page.CSRF = s.email, s.csrf
	}
	if d.opts.HasEvents != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		has, err := d.opts.HasEvents(ctx, domain)
		cancel()
		if err != nil {
			// The dashboard itself says what fails; no snippet on a guess.
			d.opts.Log.Warn("cannot tell whether the site has events", "site", domain, "err", err)
		} else if !has {
			page.Snippet = `<script defer data-domain="` + page.Site.Domain + `" src="` +
				strings.TrimRight(d.opts.PublicURL, "/") + `/js/glimpse.js"></script>`
		}
	}
	d.render(c, fasthttp.StatusOK, "site.html", page)
}

type loginPage struct {
	CSRF, Next, Email, Error string
}

// safeNext keeps a post-sign-in redirect on the dashboard.
func safeNext(n string) string {
	if !strings.HasPrefix(n, PathHome) || strings.ContainsAny(n, "\\\r\n") || strings.Contains(n, "//") {
		return PathHome
	}
	return n
}

func (d *Dashboard) login(c *fasthttp.RequestCtx) {
	if !c.IsPost() {
		if !c.IsGet() && !c.IsHead() {
			d.metrics.signin(fasthttp.StatusMethodNotAllowed)
			plain(c, fasthttp.StatusMethodNotAllowed, "method not allowed")
			return
		}
		// The CSRF token of the sign-in form is double-submitted: the
		// same random value in an HttpOnly cookie and in the form.
		tok := randomToken()
		d.setCookie(c, csrfCookie, tok, time.Hour)
		d.render(c, fasthttp.StatusOK, "login.html", loginPage{CSRF: tok, Next: safeNext(string(c.QueryArgs().Peek("next")))})
		return
	}
	args := c.PostArgs()
	email := strings.TrimSpace(string(args.Peek("email")))
	pw := string(args.Peek("password"))
	next := safeNext(string(args.Peek("next")))
	again := func(status int, msg string) {
		d.metrics.signin(status)
		tok := randomToken()
		d.setCookie(c, csrfCookie, tok, time.Hour)
		d.render(c, status, "login.html", loginPage{CSRF: tok, Next: next, Email: email, Error: msg})
	}
	if !sameOrigin(c) || !equalTokens(string(args.Peek("csrf")), string(c.Request.Header.Cookie(csrfCookie))) {
		again(fasthttp.StatusForbidden, "The form expired or came from another site. Please sign in again.")
		return
	}
	if len(email) > maxEmailLen || len(pw) > 1024 {
		again(fasthttp.StatusBadRequest, "E-mail address or password too long.")
		return
	}
	// The throttle and the lookup both use the one canonical form: an
	// address no user can have (not ASCII, say) is refused here.
	canon, err := config.CanonicalEmail(email)
	if err != nil {
		again(fasthttp.StatusBadRequest, "Not an e-mail address a user can have: use ASCII only (an international domain in its xn-- form).")
		return
	}
	now := d.opts.Now()
	emailKey, netKey := "e:"+canon, "n:"+d.opts.ClientNet(c).String()
	if wait := d.throttle.take(now, limit{emailKey, d.opts.LoginLimitEmail}, limit{netKey, d.opts.LoginLimitIP}); wait > 0 {
		mins := int((wait + time.Minute - 1) / time.Minute)
		c.Response.Header.Set("Retry-After", strconv.Itoa(int(wait.Seconds())+1))
		d.opts.Log.Warn("dashboard sign-in throttled", "email", canon)
		again(fasthttp.StatusTooManyRequests, "Too many failed sign-ins. Try again in "+strconv.Itoa(mins)+" minutes.")
		return
	}
	u := d.opts.Sites.User(canon)
	hash := ""
	if u != nil {
		hash = u.PasswordHash
	} else {
		// Take as long as a real check, so timing does not tell which
		// addresses exist.
		d.dummyOnce.Do(func() { d.dummy = dummyHash(d.opts.Sites.Users) })
		hash = d.dummy
	}
	if !VerifyPassword(hash, pw) || u == nil {
		// The attempt stays counted as a failure for both keys.
		d.opts.Log.Info("dashboard sign-in failed", "email", canon)
		again(fasthttp.StatusUnauthorized, "Wrong e-mail address or password.")
		return
	}
	d.throttle.reset(emailKey)
	d.throttle.release(netKey, now)
	id, _ := d.sessions.create(u.Email, now)
	d.setCookie(c, cookieName, id, d.opts.SessionTTL)
	d.setCookie(c, csrfCookie, "", -1)
	d.opts.Log.Info("dashboard sign-in", "email", u.Email)
	d.metrics.signin(fasthttp.StatusSeeOther)
	c.Redirect(next, fasthttp.StatusSeeOther)
}

func (d *Dashboard) logout(c *fasthttp.RequestCtx) {
	if !c.IsPost() {
		c.Response.Header.Set("Allow", "POST")
		plain(c, fasthttp.StatusMethodNotAllowed, "method not allowed: sign out with the form")
		return
	}
	id, s := d.current(c)
	if s != nil {
		if !sameOrigin(c) || !equalTokens(string(c.PostArgs().Peek("csrf")), s.csrf) {
			d.render(c, fasthttp.StatusForbidden, "error.html", "The sign-out form expired or came from another site.")
			return
		}
		d.sessions.remove(id)
	}
	d.setCookie(c, cookieName, "", -1)
	c.Redirect(PathLogin, fasthttp.StatusSeeOther)
}
