// Package api serves Glimpse's Stats API, compatible with Plausible's
// Stats API v1: GET /api/v1/stats/{realtime/visitors, aggregate,
// timeseries, breakdown} with Authorization: Bearer <key>.
//
// Keys are checked against the SHA-256 hashes in the sites file in
// constant time (config.Keys); a key reads only its sites, and only if it
// holds the stats scope. Every handler goes through
// one wrapper that authenticates, rate-limits per key, maps errors to
// status codes and writes JSON; errors are {"error": "..."}.
package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/glimpse-analytics/glimpse/aggregator"
	"github.com/glimpse-analytics/glimpse/aggregator/period"
	"github.com/glimpse-analytics/glimpse/internal/config"
	"github.com/glimpse-analytics/glimpse/internal/ratelimit"
	"github.com/glimpse-analytics/glimpse/internal/storage/notes"
)

// Paths of the Stats API.
const (
	PathRealtime   = "/api/v1/stats/realtime/visitors"
	PathAggregate  = "/api/v1/stats/aggregate"
	PathTimeseries = "/api/v1/stats/timeseries"
	PathBreakdown  = "/api/v1/stats/breakdown"
	// PathFunnel is Glimpse's: a funnel's steps (aggregator/funnel.go).
	PathFunnel = "/api/v1/stats/funnel"
	// PathAnnotations lists the site's chart annotations in a period
	// (annotations.go); not Plausible's.
	PathAnnotations = "/api/v1/stats/annotations"
	// PathQuery is Plausible's Stats API v2: POST a JSON query.
	PathQuery = "/api/v2/query"
)

// Options configure the API.
type Options struct {
	Engine *aggregator.Engine
	Sites  *config.File
	// RateLimit is each key's budget of requests per hour (default 600,
	// Plausible's), refilled continuously; a key may spend it in a burst.
	RateLimit int
	// Timeout bounds one request's queries (default 60 s).
	Timeout time.Duration
	// Notes stores the sites' annotations (annotations endpoint); nil:
	// the endpoint answers 503.
	Notes *notes.Store
	Now   func() time.Time // default time.Now
	Log   *slog.Logger
}

// API is the Stats API.
type API struct {
	opts Options
	keys *config.Keys
	// limits are the keys' rate-limit token buckets, by key index.
	limits *ratelimit.Buckets[int]
}

// New validates the keys and returns the API.
func New(o Options) (*API, error) {
	if o.Engine == nil || o.Sites == nil {
		return nil, errors.New("api: Engine and Sites are required")
	}
	if o.RateLimit <= 0 {
		o.RateLimit = 600
	}
	if o.Timeout <= 0 {
		o.Timeout = time.Minute
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	a := &API{opts: o}
	a.keys = o.Sites.Keys()
	a.limits = ratelimit.New[int](ratelimit.Limit{PerHour: o.RateLimit}, a.keys.Len())
	return a, nil
}

// Routes returns the API's handlers by exact path, for the mux of
// glimpse serve.
func (a *API) Routes() map[string]fasthttp.RequestHandler {
	return map[string]fasthttp.RequestHandler{
		PathRealtime:    a.wrap(a.realtime),
		PathAggregate:   a.wrap(a.query(aggregator.KindAggregate)),
		PathTimeseries:  a.wrap(a.query(aggregator.KindTimeseries)),
		PathBreakdown:   a.wrap(a.query(aggregator.KindBreakdown)),
		PathFunnel:      a.wrap(a.funnel),
		PathQuery:       a.wrapWith(a.serveV2),
		PathAnnotations: a.wrap(a.annotations),
	}
}

// request is what a handler gets: the site and parameters, copied out of
// the fasthttp request.
type request struct {
	site   *config.Site
	params map[string]string
	now    time.Time
	reader string // who the answer is released to: its privacy budget pays
}

func (r *request) get(k string) string { return r.params[k] }

type handler func(ctx context.Context, r *request) (any, error)

// httpError is an error with a status code.
type httpError struct {
	status int
	msg    string
}

func (e *httpError) Error() string { return e.msg }

// wrap is the one wrapper every endpoint goes through.
func (a *API) wrap(h handler) fasthttp.RequestHandler {
	return a.wrapWith(func(c *fasthttp.RequestCtx) (any, error) { return a.serve(c, h) })
}

// wrapWith encodes what serve answers as JSON, errors included.
func (a *API) wrapWith(serve func(c *fasthttp.RequestCtx) (any, error)) fasthttp.RequestHandler {
	return func(c *fasthttp.RequestCtx) {
		res, err := serve(c)
		c.Response.Header.Set("Cache-Control", "no-store")
		c.SetContentType("application/json")
		if err != nil {
			status, msg := a.classify(c, err)
			var qe *aggregator.Error
			switch {
			case errors.As(err, &qe) && !qe.RetryAt.IsZero():
				// A privacy budget spent: it is refilled at the next UTC day.
				c.Response.Header.Set("Retry-After", strconv.Itoa(int(math.Ceil(qe.RetryAt.Sub(a.opts.Now()).Seconds()))))
				c.Response.Header.Set(HeaderBudget, "0")
			case status == fasthttp.StatusTooManyRequests:
				c.Response.Header.Set("Retry-After", strconv.Itoa(a.retryAfter()))
			}
			c.SetStatusCode(status)
			b, _ := json.Marshal(map[string]string{"error": msg})
			c.SetBody(b)
			return
		}
		b, err := json.Marshal(res)
		if err != nil {
			a.opts.Log.Error("cannot encode a Stats API answer", "err", err)
			c.SetStatusCode(fasthttp.StatusInternalServerError)
			c.SetBodyString(`{"error":"internal error"}`)
			return
		}
		if r, ok := res.(*aggregator.Response); ok && r.Meta.BudgetRemaining != nil {
			c.Response.Header.Set(HeaderBudget, strconv.FormatFloat(*r.Meta.BudgetRemaining, 'f', -1, 64))
		}
		if r, ok := res.(*aggregator.ResponseV2); ok && r.Meta.BudgetRemaining != nil {
			c.Response.Header.Set(HeaderBudget, strconv.FormatFloat(*r.Meta.BudgetRemaining, 'f', -1, 64))
		}
		c.SetStatusCode(fasthttp.StatusOK)
		c.SetBody(b)
	}
}

// HeaderBudget carries what is left of the reader's daily privacy budget
// for the site (noisy sites): 0 with a 429 when it is spent.
const HeaderBudget = "X-Glimpse-Privacy-Budget"

func (a *API) classify(c *fasthttp.RequestCtx, err error) (int, string) {
	var he *httpError
	var qe *aggregator.Error
	switch {
	case errors.As(err, &he):
		return he.status, he.msg
	case errors.As(err, &qe):
		return qe.Status, qe.Message
	case errors.Is(err, context.DeadlineExceeded):
		a.opts.Log.Warn("Stats API query timed out", "path", string(c.Path()), "err", err)
		return fasthttp.StatusServiceUnavailable, "the query took too long; narrow the period or the filters"
	}
	a.opts.Log.Error("Stats API query failed", "path", string(c.Path()), "err", err)
	return fasthttp.StatusInternalServerError, "internal error"
}

func (a *API) serve(c *fasthttp.RequestCtx, h handler) (any, error) {
	if !c.IsGet() && !c.IsHead() {
		c.Response.Header.Set("Allow", "GET, HEAD")
		return nil, &httpError{fasthttp.StatusMethodNotAllowed, "method not allowed: use GET"}
	}
	now, may, err := a.authorize(c)
	if err != nil {
		return nil, err
	}
	return a.answer(c, h, now, may)
}

// authorize checks the request's Bearer key, its scope and rate limit,
// and returns the time of the request and who may read which site: the
// key's sites, each read by "key:<name>".
func (a *API) authorize(c *fasthttp.RequestCtx) (time.Time, func(domain string) (string, error), error) {
	ki, key, err := a.keys.Match(c.Request.Header.Peek("Authorization"))
	if err != nil {
		return time.Time{}, nil, &httpError{fasthttp.StatusUnauthorized, err.Error()}
	}
	if !key.Can(config.ScopeStats) {
		return time.Time{}, nil, &httpError{fasthttp.StatusForbidden, "this API key may not read stats: list stats in its scopes (api_keys)"}
	}
	now := a.opts.Now()
	if !a.allow(ki, now) {
		return time.Time{}, nil, &httpError{fasthttp.StatusTooManyRequests, fmt.Sprintf("too many requests: this key may make %d requests per hour", a.opts.RateLimit)}
	}
	return now, func(domain string) (string, error) {
		if !key.Covers(domain) {
			return "", &httpError{fasthttp.StatusForbidden, fmt.Sprintf("this API key cannot read site %q", domain)}
		}
		return "key:" + key.Name, nil
	}, nil
}

// answer reads the parameters and the site, checks that the caller may
// read it, and runs h under the request timeout.
func (a *API) answer(c *fasthttp.RequestCtx, h handler, now time.Time, may func(domain string) (string, error)) (any, error) {
	r := &request{params: map[string]string{}, now: now}
	c.QueryArgs().VisitAll(func(k, v []byte) { r.params[string(k)] = string(v) })
	domain := r.get("site_id")
	if domain == "" {
		return nil, &httpError{fasthttp.StatusBadRequest, "missing site_id: the site's domain, e.g. site_id=example.com"}
	}
	reader, err := may(domain)
	if err != nil {
		return nil, err
	}
	r.reader = reader
	if r.site = a.opts.Sites.Site(domain); r.site == nil {
		return nil, &httpError{fasthttp.StatusForbidden, fmt.Sprintf("cannot read site %q", domain)}
	}
	ctx, cancel := context.WithTimeout(context.Background(), a.opts.Timeout)
	defer cancel()
	return h(ctx, r)
}

// Authorizer decides whether the request c may read the site domain, and
// who reads it (the privacy budget of noisy sites is theirs): a nil error
// allows it; an error from StatusError is answered with its status, any
// other error with 403.
type Authorizer func(c *fasthttp.RequestCtx, domain string) (reader string, err error)

// StatusError returns an error the API answers with status and
// {"error": msg}.
func StatusError(status int, msg string) error { return &httpError{status, msg} }

// Endpoints of the Stats API, for HandlersWith.
const (
	EndpointRealtime    = "realtime/visitors"
	EndpointAggregate   = "aggregate"
	EndpointTimeseries  = "timeseries"
	EndpointBreakdown   = "breakdown"
	EndpointFunnel      = "funnel"
	EndpointAnnotations = "annotations"
)

// HandlersWith returns the Stats API's handlers by endpoint name, with
// auth deciding who may read a site instead of Bearer keys (and no per-key
// rate limit): the dashboard serves them under its own paths to signed-in
// users and shared links. Parameters, answers and errors are the Stats
// API's.
func (a *API) HandlersWith(auth Authorizer) map[string]fasthttp.RequestHandler {
	with := func(h handler) fasthttp.RequestHandler {
		return a.wrapWith(func(c *fasthttp.RequestCtx) (any, error) {
			if !c.IsGet() && !c.IsHead() {
				c.Response.Header.Set("Allow", "GET, HEAD")
				return nil, &httpError{fasthttp.StatusMethodNotAllowed, "method not allowed: use GET"}
			}
			return a.answer(c, h, a.opts.Now(), func(domain string) (string, error) {
				reader, err := auth(c, domain)
				var he *httpError
				if err != nil && !errors.As(err, &he) {
					return "", &httpError{fasthttp.StatusForbidden, err.Error()}
				}
				return reader, err
			})
		})
	}
	return map[string]fasthttp.RequestHandler{
		EndpointRealtime:    with(a.realtime),
		EndpointAggregate:   with(a.query(aggregator.KindAggregate)),
		EndpointTimeseries:  with(a.query(aggregator.KindTimeseries)),
		EndpointBreakdown:   with(a.query(aggregator.KindBreakdown)),
		EndpointFunnel:      with(a.funnel),
		EndpointAnnotations: with(a.annotations),
	}
}

// Run answers one Stats API request for a site already authorized by the
// caller, returning what the endpoint would encode (a *aggregator.Response,
// or an int64 for realtime) or an error (see StatusOf). The dashboard's
// CSV export uses it.
func (a *API) Run(c *fasthttp.RequestCtx, endpoint string, auth Authorizer) (any, error) {
	h := map[string]handler{
		EndpointRealtime: a.realtime, EndpointAggregate: a.query(aggregator.KindAggregate),
		EndpointTimeseries: a.query(aggregator.KindTimeseries), EndpointBreakdown: a.query(aggregator.KindBreakdown),
		EndpointFunnel: a.funnel,
	}[endpoint]
	if h == nil {
		return nil, &httpError{fasthttp.StatusNotFound, "unknown endpoint " + endpoint}
	}
	return a.answer(c, h, a.opts.Now(), func(domain string) (string, error) { return auth(c, domain) })
}

// StatusOf maps an error of Run to the status and message the Stats API
// would answer (logging internal errors).
func (a *API) StatusOf(c *fasthttp.RequestCtx, err error) (int, string) { return a.classify(c, err) }

// allow takes one token from the key's bucket.
func (a *API) allow(ki int, now time.Time) bool {
	return a.limits.Take(ki, now) == 0
}

// retryAfter is the seconds until a token is back.
func (a *API) retryAfter() int {
	return int(math.Ceil(3600 / float64(a.opts.RateLimit)))
}

func (a *API) query(kind aggregator.Kind) handler {
	return func(ctx context.Context, r *request) (any, error) {
		q, err := aggregator.ParseQuery(kind, r.site, r.get, r.now)
		if err != nil {
			return nil, err
		}
		q.Reader = r.reader
		switch kind {
		case aggregator.KindAggregate:
			return a.opts.Engine.Aggregate(ctx, q)
		case aggregator.KindTimeseries:
			return a.opts.Engine.Timeseries(ctx, q)
		}
		return a.opts.Engine.Breakdown(ctx, q)
	}
}

// funnel answers a funnel's steps: funnel=<name> or steps=...&window=.
func (a *API) funnel(ctx context.Context, r *request) (any, error) {
	q, err := aggregator.ParseFunnelQuery(r.site, r.get, r.now)
	if err != nil {
		return nil, err
	}
	q.Reader = r.reader
	return a.opts.Engine.Funnel(ctx, q)
}

// realtime answers a bare number, as Plausible does.
func (a *API) realtime(ctx context.Context, r *request) (any, error) {
	p, err := period.Parse("realtime", "", r.site.Location, r.now)
	if err != nil {
		return nil, err
	}
	return a.opts.Engine.RealtimeVisitors(ctx, &aggregator.Query{Site: r.site, Period: p, Reader: r.reader})
}

// maxBodyV2 bounds a v2 query body.
const maxBodyV2 = 64 << 10

// serveV2 answers POST /api/v2/query: the key authorizes the body's
// site_id, which is read before the rest of the body is validated.
func (a *API) serveV2(c *fasthttp.RequestCtx) (any, error) {
	if !c.IsPost() {
		c.Response.Header.Set("Allow", "POST")
		return nil, &httpError{fasthttp.StatusMethodNotAllowed, "method not allowed: POST a JSON query"}
	}
	now, may, err := a.authorize(c)
	if err != nil {
		return nil, err
	}
	return a.answerV2(c, now, may)
}

// answerV2 reads a v2 body, checks that the caller may read its site, and
// runs it under the request timeout.
func (a *API) answerV2(c *fasthttp.RequestCtx, now time.Time, may func(domain string) (string, error)) (any, error) {
	body := c.PostBody()
	if len(body) > maxBodyV2 {
		return nil, &httpError{fasthttp.StatusRequestEntityTooLarge, fmt.Sprintf("the query is larger than %d bytes", maxBodyV2)}
	}
	domain := aggregator.SiteOfV2(body)
	if domain == "" {
		if _, err := aggregator.ParseQueryV2(&config.Site{}, body, now); err != nil {
			return nil, err // the body's own error: not JSON, site_id missing, ...
		}
		return nil, &httpError{fasthttp.StatusBadRequest, "#/site_id: Type mismatch. Expected String but got a value that is not a site's domain."}
	}
	reader, err := may(domain)
	if err != nil {
		return nil, err
	}
	site := a.opts.Sites.Site(domain)
	if site == nil {
		return nil, &httpError{fasthttp.StatusForbidden, fmt.Sprintf("cannot read site %q", domain)}
	}
	q, err := aggregator.ParseQueryV2(site, body, now)
	if err != nil {
		return nil, err
	}
	q.Reader = reader
	ctx, cancel := context.WithTimeout(context.Background(), a.opts.Timeout)
	defer cancel()
	return a.opts.Engine.QueryV2(ctx, q)
}
