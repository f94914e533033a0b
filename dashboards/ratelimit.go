package dashboards

import (
	"math"
	"net/netip"
	"strconv"

	"github.com/valyala/fasthttp"

	"github.com/glimpse-analytics/glimpse/internal/ratelimit"
)

// Default request limits of the JSON and CSV endpoints (Options).
var (
	defaultReaderLimit = ratelimit.Limit{PerHour: 3600, Burst: 300}
	defaultClientLimit = ratelimit.Limit{PerHour: 7200, Burst: 600}
)

// limits are the token buckets of the endpoints that run queries.
type limits struct {
	readers *ratelimit.Buckets[string]
	clients *ratelimit.Buckets[netip.Prefix]
}

func newLimits(o Options) *limits {
	return &limits{
		readers: ratelimit.New[string](o.ReaderLimit, 0),
		clients: ratelimit.New[netip.Prefix](o.ClientLimit, 0),
	}
}

// limited answers h's requests while the client's network and then the
// reader have requests left, and 429 with Retry-After otherwise. It runs
// before h authorizes anything, so a request with no reader (no session,
// a wrong token) is limited per network too.
func (d *Dashboard) limited(h fasthttp.RequestHandler) fasthttp.RequestHandler {
	return func(c *fasthttp.RequestCtx) {
		now := d.opts.Now()
		by, msg := "client", "too many requests from your network"
		wait := d.limits.clients.Take(d.opts.ClientNet(c), now)
		if r := d.reader(c); wait == 0 && r != "" {
			by, msg = "reader", "too many requests for this sign-in or shared link"
			wait = d.limits.readers.Take(r, now)
		}
		if wait == 0 {
			h(c)
			return
		}
		d.metrics.limited[by].Inc()
		secs := strconv.Itoa(int(math.Ceil(wait.Seconds())))
		c.Response.Header.Set("Retry-After", secs)
		c.Response.Header.Set("Cache-Control", "no-store")
		c.SetContentType("application/json")
		c.SetStatusCode(fasthttp.StatusTooManyRequests)
		c.SetBodyString(`{"error":"` + msg + `; try again in ` + secs + ` s"}`)
	}
}

// reader names whom a request reads as, for its limit: a shared link by
// its token, a session by its user (all of the user's sessions share
// one limit), or "" for neither. Whether it may read the site is
// authorize's to decide, afterwards.
func (d *Dashboard) reader(c *fasthttp.RequestCtx) string {
	if tok := c.QueryArgs().Peek("auth"); len(tok) > 0 {
		return "link:" + string(tok)
	}
	if _, s := d.current(c); s != nil {
		return "user:" + s.email
	}
	return ""
}
