// Package collector is Glimpse's ingest side: the fasthttp handlers that
// take page views and events, the privacy gate, enrichment, sessions, and
// the hand-off to the batch writer (collector/sink).
//
// A Server exposes its endpoints (POST /api/event, GET /p.gif) with
// Routes and answers unknown paths with NotFound; it routes nothing else.
// cmd/glimpse owns the HTTP mux: it routes the Server's endpoints beside
// those of the other components (beacon, email, Stats API, subject API,
// dashboard) and the process's /metrics, /healthz and /readyz (Health).
package collector

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/valyala/fasthttp"

	"github.com/glimpse-analytics/glimpse/collector/agent"
	"github.com/glimpse-analytics/glimpse/collector/enrich"
	"github.com/glimpse-analytics/glimpse/collector/ledger"
	"github.com/glimpse-analytics/glimpse/collector/locate"
	"github.com/glimpse-analytics/glimpse/collector/redact"
	"github.com/glimpse-analytics/glimpse/collector/session"
	"github.com/glimpse-analytics/glimpse/collector/sink"
	"github.com/glimpse-analytics/glimpse/internal/config"
	"github.com/glimpse-analytics/glimpse/internal/identity"
)

// Options configure a Server. Sites, Writer and Sessions are required.
type Options struct {
	Sites  *config.File
	Writer *sink.Writer
	// Geo may be nil: no geo is stored.
	Geo *locate.Geo
	// Proxies whose X-Forwarded-For is believed; the zero value trusts none.
	Proxies locate.TrustedProxies
	// Salts default to in-memory ones of this Server's own.
	Salts *identity.Salts
	// Sessions is the session cache the ingest path touches. The caller
	// gives the same cache to the writer (sink.Writer.WriteSessions), which
	// stores what changes in it: the collector only feeds it.
	Sessions *session.Cache
	// UACacheSize bounds the parsed User-Agent cache (default 8192).
	UACacheSize int
	// MaxBody bounds an event body (default 8 KiB): larger is 413.
	MaxBody int
	// RateLimit caps the events one visitor may send per second (default
	// DefaultRateLimit; negative: no limit).
	RateLimit int
	Metrics   *metrics.Set
	Log       *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Server serves the collector's HTTP endpoints.
type Server struct {
	sites      *config.File
	siteStates map[*config.Site]*siteState
	writer     *sink.Writer
	geo        *locate.Geo
	proxies    locate.TrustedProxies
	salts      *identity.Salts
	sessions   *session.Cache
	ua         *agent.Parser
	redact     *redact.Redactor
	maxBody    int
	metrics    *collectorMetrics
	httpErrors *HTTPErrors
	log        *slog.Logger
	now        func() time.Time
	hits       chan *hit // free list of request state
	limiter    *rateLimiter
	// ledger counts what each visitor-day stores on noisy sites
	// (contrib.go); nil when no site is noisy.
	ledger *ledger.Table[dayCounts]
}

// maxFreeHits bounds the request states kept for reuse: enough for every
// request in flight on a busy collector.
const maxFreeHits = 1024

// New returns a Server.
func New(o Options) (*Server, error) {
	if o.Sites == nil || o.Writer == nil || o.Sessions == nil {
		return nil, errors.New("collector: Sites, Writer and Sessions are required")
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Metrics == nil {
		o.Metrics = metrics.NewSet()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.MaxBody <= 0 {
		o.MaxBody = 8 << 10
	}
	switch {
	case o.RateLimit == 0:
		o.RateLimit = DefaultRateLimit
	case o.RateLimit < 0:
		o.RateLimit = 0
	}
	if o.UACacheSize <= 0 {
		o.UACacheSize = agent.DefaultCacheSize
	}
	if o.Salts == nil {
		salts, err := identity.NewSalts(context.Background(), identity.SaltsConfig{Now: o.Now})
		if err != nil {
			return nil, err
		}
		o.Salts = salts
	}
	s := &Server{
		sites:      o.Sites,
		siteStates: map[*config.Site]*siteState{},
		writer:     o.Writer,
		geo:        o.Geo,
		proxies:    o.Proxies,
		salts:      o.Salts,
		sessions:   o.Sessions,
		ua:         agent.NewParser(o.UACacheSize),
		redact:     redact.New(o.Metrics),
		maxBody:    o.MaxBody,
		metrics:    newCollectorMetrics(o.Metrics),
		log:        o.Log.With("component", "collector"),
		now:        o.Now,
		limiter:    &rateLimiter{limit: uint32(o.RateLimit)},
	}
	s.httpErrors = NewHTTPErrors(o.Metrics, o.Log)
	o.Metrics.NewGauge("glimpse_sessions_evicted_total", func() float64 { return float64(s.sessions.Evictions()) })
	o.Metrics.NewGauge("glimpse_session_changes_dropped_total", func() float64 { return float64(s.sessions.DroppedChanges()) })
	o.Metrics.NewGauge("glimpse_contribution_evictions_total", func() float64 {
		if s.ledger == nil {
			return 0
		}
		return float64(s.ledger.Evictions())
	})
	s.hits = make(chan *hit, maxFreeHits)
	for i := range o.Sites.Sites {
		site := &o.Sites.Sites[i]
		prec, err := locate.ParsePrecision(site.Privacy.Geo)
		if err != nil {
			return nil, err
		}
		s.siteStates[site] = &siteState{
			cfg:       site,
			policy:    enrich.URLPolicy{Allow: site.QueryAllow, Redactor: s.redact},
			precision: prec,
			hosts:     append([]string{site.Domain}, site.Aliases...),
			aggregate: site.Privacy.Mode == config.ModeAggregate,
			noisy:     site.Privacy.Noisy(),
			index:     uint32(i),
		}
		if site.Privacy.Noisy() && s.ledger == nil {
			s.ledger = newLedger()
		}
		if site.Privacy.Mode == config.ModeConsented && site.Privacy.SubjectKey != "" {
			s.siteStates[site].subject = identity.NewSubjectKey([]byte(site.Privacy.SubjectKey))
		}
	}
	return s, nil
}

// Run does the background work until ctx ends: salt rotation and session
// sweeping.
func (s *Server) Run(ctx context.Context) {
	go func() {
		if err := s.salts.Run(ctx); err != nil && ctx.Err() == nil {
			s.log.Error("salt rotation stopped", "err", err)
		}
	}()
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.sessions.Sweep(s.now())
		}
	}
}

// Paths of the collector's endpoints.
const (
	PathEvent = "/api/event"
	PathPixel = "/p.gif"
)

// Routes returns the collector's handlers by exact path, for the mux.
func (s *Server) Routes() map[string]fasthttp.RequestHandler {
	return map[string]fasthttp.RequestHandler{
		PathEvent: s.serveEvent,
		PathPixel: s.servePixel,
	}
}

// NotFound answers a path no component serves with 404, counted as a
// rejected request (reason not_found).
func (s *Server) NotFound(ctx *fasthttp.RequestCtx) {
	s.metrics.reject(rejectNotFound)
	ctx.Error("not found", fasthttp.StatusNotFound)
}

// HTTPErrors answers, counts and logs the requests a listener could not
// read; serve installs it on every listener (HTTPErrors.Install).
func (s *Server) HTTPErrors() *HTTPErrors { return s.httpErrors }

func cors(ctx *fasthttp.RequestCtx) {
	h := &ctx.Response.Header
	h.Set("Access-Control-Allow-Origin", "*")
}

// serveEvent answers POST /api/event.
func (s *Server) serveEvent(ctx *fasthttp.RequestCtx) {
	cors(ctx)
	switch {
	case ctx.IsPost():
	case ctx.IsOptions():
		h := &ctx.Response.Header
		h.Set("Access-Control-Allow-Methods", "POST, OPTIONS")
		h.Set("Access-Control-Allow-Headers", "Content-Type")
		h.Set("Access-Control-Max-Age", "86400")
		ctx.SetStatusCode(fasthttp.StatusNoContent)
		return
	default:
		s.metrics.reject(rejectMethod)
		ctx.Response.Header.Set("Allow", "POST, OPTIONS")
		s.jsonError(ctx, fasthttp.StatusMethodNotAllowed, "use POST")
		return
	}
	body := ctx.PostBody()
	if len(body) > s.maxBody {
		s.metrics.reject(rejectTooLarge)
		s.jsonError(ctx, fasthttp.StatusRequestEntityTooLarge, "event body too large")
		return
	}
	if !jsonContentType(ctx.Request.Header.ContentType()) {
		s.metrics.reject(rejectContentType)
		s.jsonError(ctx, fasthttp.StatusUnsupportedMediaType, "send application/json or text/plain")
		return
	}
	h := s.getHit()
	defer s.putHit(h)
	if err := h.dec.DecodeJSON(&h.ev, body); err != nil {
		s.rejectDecode(ctx, err)
		return
	}
	o := s.ingest(ctx, h)
	s.answer(ctx, o)
}

// servePixel answers GET /p.gif: the event in query parameters, and always
// the 1×1 GIF (with 400 for a malformed event).
func (s *Server) servePixel(ctx *fasthttp.RequestCtx) {
	if !ctx.IsGet() && !ctx.IsHead() {
		s.metrics.reject(rejectMethod)
		ctx.Response.Header.Set("Allow", "GET, HEAD")
		ctx.Error("use GET", fasthttp.StatusMethodNotAllowed)
		return
	}
	writeGIF(ctx)
	h := s.getHit()
	defer s.putHit(h)
	if err := h.dec.DecodeQuery(&h.ev, ctx.QueryArgs()); err != nil {
		code := "bad_request"
		if de, ok := err.(*decodeError); ok {
			code = de.Code
		}
		s.metrics.reject(code)
		ctx.SetStatusCode(fasthttp.StatusBadRequest)
		ctx.Response.Header.Set("X-Glimpse-Error", err.Error())
		return
	}
	o := s.ingest(ctx, h)
	switch {
	case o.status == fasthttp.StatusBadRequest:
		s.metrics.reject(o.reason)
		ctx.SetStatusCode(fasthttp.StatusBadRequest)
		ctx.Response.Header.Set("X-Glimpse-Error", o.msg)
	case o.reason != "":
		s.metrics.drop(o.reason)
		ctx.Response.Header.Set("X-Glimpse-Dropped", o.reason)
		if o.status == fasthttp.StatusServiceUnavailable {
			ctx.SetStatusCode(o.status)
		}
	}
}

// answer writes the response to an ingested JSON event.
func (s *Server) answer(ctx *fasthttp.RequestCtx, o outcome) {
	switch {
	case o.status == fasthttp.StatusBadRequest:
		s.metrics.reject(o.reason)
		s.jsonError(ctx, o.status, o.msg)
	case o.reason != "":
		s.metrics.drop(o.reason)
		ctx.Response.Header.Set("X-Glimpse-Dropped", o.reason)
		if o.status == fasthttp.StatusServiceUnavailable {
			ctx.Response.Header.Set("Retry-After", "1")
		}
		ctx.SetStatusCode(o.status)
	default:
		ctx.SetStatusCode(fasthttp.StatusAccepted)
	}
}

func (s *Server) rejectDecode(ctx *fasthttp.RequestCtx, err error) {
	code, msg := "bad_request", "bad request"
	if de, ok := err.(*decodeError); ok {
		code, msg = de.Code, de.Msg
	}
	s.metrics.reject(code)
	s.jsonError(ctx, fasthttp.StatusBadRequest, msg)
}

func (s *Server) jsonError(ctx *fasthttp.RequestCtx, status int, msg string) {
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/json")
	ctx.Response.SetBodyRaw(appendJSONError(ctx.Response.Body()[:0], msg))
}

// jsonContentType accepts application/json and text/plain (what
// sendBeacon sends), with any parameters, and an absent header.
func jsonContentType(ct []byte) bool {
	if len(ct) == 0 {
		return true
	}
	for _, p := range [...]string{"application/json", "text/plain"} {
		if len(ct) >= len(p) && string(ct[:len(p)]) == p && (len(ct) == len(p) || ct[len(p)] == ';' || ct[len(p)] == ' ') {
			return true
		}
	}
	return false
}

// gif is a transparent 1×1 GIF, 43 bytes.
var gif = [...]byte{
	0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 0x01, 0x00, 0x01, 0x00, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00,
	0xff, 0xff, 0xff, 0x21, 0xf9, 0x04, 0x01, 0x00, 0x00, 0x00, 0x00, 0x2c, 0x00, 0x00, 0x00, 0x00,
	0x01, 0x00, 0x01, 0x00, 0x00, 0x02, 0x02, 0x44, 0x01, 0x00, 0x3b,
}

func writeGIF(ctx *fasthttp.RequestCtx) {
	h := &ctx.Response.Header
	h.SetContentType("image/gif")
	h.Set("Cache-Control", "no-cache, no-store, must-revalidate")
	h.Set("Pragma", "no-cache")
	h.Set("Expires", "0")
	ctx.Response.SetBodyRaw(gif[:])
}

// HTTPServer returns the fasthttp server settings glimpse serves its main
// listener with: timeouts against slow clients, a body cap and no default
// headers. serve adds its mux and installs the Server's HTTPErrors; the
// benchmark's bare handler uses the same settings, so that comparing the
// two measures what the collector adds, not a different server
// configuration.
func HTTPServer(name string, h fasthttp.RequestHandler) *fasthttp.Server {
	return &fasthttp.Server{
		Handler:                      h,
		Name:                         name,
		ReadTimeout:                  10 * time.Second,
		WriteTimeout:                 10 * time.Second,
		IdleTimeout:                  60 * time.Second,
		MaxRequestBodySize:           64 << 10,
		NoDefaultDate:                true,
		NoDefaultContentType:         true,
		DisablePreParseMultipartForm: true,
	}
}
