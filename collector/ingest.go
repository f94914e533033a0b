package collector

import (
	"bytes"
	"math"
	"net/netip"
	"strconv"
	"time"
	"unsafe"

	"github.com/valyala/fasthttp"

	"github.com/glimpse-analytics/glimpse/collector/agent"
	"github.com/glimpse-analytics/glimpse/collector/decode"
	"github.com/glimpse-analytics/glimpse/collector/enrich"
	"github.com/glimpse-analytics/glimpse/collector/locate"
	"github.com/glimpse-analytics/glimpse/collector/session"
	"github.com/glimpse-analytics/glimpse/collector/sink"
	"github.com/glimpse-analytics/glimpse/internal/config"
	"github.com/glimpse-analytics/glimpse/internal/identity"
	"github.com/glimpse-analytics/glimpse/internal/model"
)

// OptOutCookie is the cookie /optout sets; its presence with value "1"
// opts the browser out of every site this collector serves.
const OptOutCookie = "glimpse_optout"

// hit is the per-request state, pooled so that a request allocates nothing
// once the buffers have grown. Nothing in it outlives the request except
// what is copied into the model.Event.
type hit struct {
	ev     decode.Event
	dec    decode.Decoder
	page   enrich.PageURL
	target enrich.PageURL
	ref    enrich.Referrer
	attrs  model.Attrs
	hdr    headers
	// key and value hold a custom property redacted.
	key, value []byte
}

// headers are the request headers the pipeline reads, found in one pass
// over the request's headers (a Peek per name normalises the name and
// scans them all, and the pipeline reads six). Each is the first field
// of its name, as Peek would return; nil when absent. They are views of
// the request, valid until the handler returns. X-Forwarded-For is not
// among them: every line of it counts, and locate.ClientIP reads them.
type headers struct {
	chUA, chMobile, chPlatform, chPlatformVersion []byte
	gpc, dnt                                      []byte
}

// read fills h from req. The names are compared in the form fasthttp
// normalises received names to.
func (h *headers) read(req *fasthttp.RequestHeader) {
	*h = headers{}
	for k, v := range req.All() {
		var dst *[]byte
		switch string(k) {
		case "Sec-Ch-Ua":
			dst = &h.chUA
		case "Sec-Ch-Ua-Mobile":
			dst = &h.chMobile
		case "Sec-Ch-Ua-Platform":
			dst = &h.chPlatform
		case "Sec-Ch-Ua-Platform-Version":
			dst = &h.chPlatformVersion
		case "Sec-Gpc":
			dst = &h.gpc
		case "Dnt":
			dst = &h.dnt
		default:
			continue
		}
		if *dst == nil {
			*dst = v
		}
	}
}

// getHit takes request state from the free list. A channel rather than a
// sync.Pool: pooled state survives garbage collections, so a warm
// collector allocates nothing per request.
func (s *Server) getHit() *hit {
	select {
	case h := <-s.hits:
		return h
	default:
		return new(hit)
	}
}

func (s *Server) putHit(h *hit) {
	select {
	case s.hits <- h:
	default: // more requests in flight than the free list keeps
	}
}

// siteState is what the collector derives once from a configured site.
type siteState struct {
	cfg       *config.Site
	policy    enrich.URLPolicy
	precision locate.Precision
	hosts     []string // domain and aliases, for self-referrals
	aggregate bool     // privacy mode aggregate: opted-out events counted anonymously
	noisy     bool     // aggregates noisy: contribution caps apply (contrib.go)
	index     uint32   // the site's place in the sites file, its key in the ledger
	// subject hashes consented user ids (mode consented only; nil otherwise).
	subject *identity.SubjectKey
}

// outcome of one event through the pipeline.
type outcome struct {
	status int    // HTTP status to answer
	reason string // drop reason, or rejection code when status is 4xx
	msg    string // rejection message for the body
}

var accepted = outcome{status: fasthttp.StatusAccepted}

// Where a benchmark build stops the ingest path (benchfloor.go).
const (
	floorOff = iota
	floorGate
	floorHandoff
)

func dropped(reason string) outcome {
	return outcome{status: fasthttp.StatusAccepted, reason: reason}
}

// ingest runs a decoded event through the privacy gate and enrichment and
// hands it to the writer. Order matters: nothing about the visitor is
// computed before the site is known and opt-outs are checked, and the full
// client IP is dropped right after geo, truncation and hashing.
func (s *Server) ingest(ctx *fasthttp.RequestCtx, h *hit) outcome {
	ev := &h.ev
	st, anonymous, ua, o := s.gate(ctx, h)
	if st == nil {
		return o
	}
	if benchFloor != floorOff {
		if o, ok := s.floor(st, sinkType(ev.Type)); ok {
			return o
		}
	}
	// URL and referrer.
	policy := st.policy
	policy.HashMode = ev.HashMode
	if err := policy.Clean(&h.page, ev.URL); err != nil {
		return outcome{status: fasthttp.StatusBadRequest, reason: rejectBadURL, msg: err.Error()}
	}
	enrich.ClassifyReferrer(&h.ref, ev.Referrer, &h.page, st.hosts, s.redact)

	now := s.now().UTC().Truncate(time.Second)
	e := s.writer.NewEvent()
	e.SiteID = st.cfg.Domain
	e.NewID()
	e.TS = now
	e.Type = sinkType(ev.Type)
	e.Name = append(e.Name, ev.Name...)
	visitorID := s.locate(ctx, h, st, e, now, anonymous)
	e.Hostname = append(e.Hostname, h.page.Host...)
	e.Pathname = append(e.Pathname, h.page.Path...)
	if len(h.page.Query) > 0 {
		e.Pathname = append(append(e.Pathname, '?'), h.page.Query...)
	}
	if anonymous {
		// No visitor id, so no contribution cap: each is its own unit.
		s.metrics.anon.Inc()
		return s.enqueue(e)
	}
	var c contribution
	if st.noisy {
		var ok bool
		if c, ok = s.admit(st, ev, visitorID, now); !ok {
			s.writer.Release(e)
			return dropped(dropContributionCap)
		}
	}
	e.VisitorID = visitorID
	// A consented user id is stored only as its keyed hash, and only for a
	// site in mode consented and an event that carries the consent flag.
	if st.subject != nil && ev.Consent && len(ev.UID) > 0 {
		e.SubjectID = st.subject.Append(e.SubjectID, ev.UID)
	}
	fill(e, h, st, ua)
	return s.session(h, st, e, visitorID, now, &c)
}

// gate is the privacy gate: the site, the opt-outs and the bot verdict.
// It returns the site and the parsed User-Agent of an event that goes on
// (anonymous when an opted-out visit is counted without identifiers), or
// a nil site and the outcome of one that does not.
func (s *Server) gate(ctx *fasthttp.RequestCtx, h *hit) (st *siteState, anonymous bool, ua *agent.UA, o outcome) {
	for d := range h.ev.Domains() {
		if site := s.sites.Lookup(d); site != nil {
			st = s.siteStates[site]
			break
		}
	}
	if st == nil {
		return nil, false, nil, dropped(dropUnknownSite)
	}
	hdr := &h.hdr
	hdr.read(&ctx.Request.Header)
	if reason := OptedOut(ctx.Request.Header.Cookie(OptOutCookie), hdr.gpc, hdr.dnt, &st.cfg.Privacy); reason != "" {
		if !st.aggregate {
			return nil, false, nil, dropped(reason)
		}
		anonymous = true
	}
	ua = s.ua.Parse(ctx.Request.Header.UserAgent(), agent.ClientHints{
		UA:              hdr.chUA,
		Mobile:          hdr.chMobile,
		Platform:        hdr.chPlatform,
		PlatformVersion: hdr.chPlatformVersion,
	})
	if ua.Bot {
		return nil, false, nil, dropped(dropBot)
	}
	return st, anonymous, ua, accepted
}

// locate turns the client address into e's geo and address prefix and
// returns the visitor id (0 for an anonymous event). The full address
// lives only in this function's locals.
func (s *Server) locate(ctx *fasthttp.RequestCtx, h *hit, st *siteState, e *model.Event, now time.Time, anonymous bool) uint64 {
	peer, _ := netip.AddrFromSlice(ctx.RemoteIP())
	client := s.proxies.ClientIP(peer.Unmap(), &ctx.Request.Header)
	place := s.geo.Lookup(client, st.precision)
	e.CountryCode = place.CountryCode
	if anonymous {
		return 0
	}
	e.Region, e.City = place.Region, place.City
	e.IPPrefix = locate.AppendPrefix(e.IPPrefix, client)
	return s.salts.VisitorID(now, st.cfg.Domain, client, ctx.Request.Header.UserAgent())
}

// fill copies the enriched request into e: referrer and campaign, the
// link target, the User-Agent's fields, screen and connection classes,
// engagement, properties (redacted like URLs) and revenue.
func fill(e *model.Event, h *hit, st *siteState, ua *agent.UA) {
	ev := &h.ev
	e.Referrer = append(append(e.Referrer, h.ref.Host...), h.ref.Path...)
	e.ReferrerSource, e.Channel = h.ref.Source, string(h.ref.Channel)
	e.UTMSource = append(e.UTMSource, h.page.UTMSource...)
	e.UTMMedium = append(e.UTMMedium, h.page.UTMMedium...)
	e.UTMCampaign = append(e.UTMCampaign, h.page.UTMCampaign...)
	e.UTMContent = append(e.UTMContent, h.page.UTMContent...)
	e.UTMTerm = append(e.UTMTerm, h.page.UTMTerm...)
	if len(ev.TargetURL) > 0 && st.policy.Clean(&h.target, ev.TargetURL) == nil {
		e.TargetURL = append(append(e.TargetURL, h.target.Host...), h.target.Path...)
	}
	e.Browser, e.BrowserVersion, e.OS, e.OSVersion, e.Device = ua.Browser, ua.BrowserVersion, ua.OS, ua.OSVersion, ua.Device
	e.Screen = screenClass(ev.ScreenWidth)
	e.ConnectionType = connectionType(ev.ConnType)
	e.Downlink, e.RTT = ev.Downlink, ev.RTT
	e.SaveData = b2u8(ev.SaveData)
	e.EngagementMS, e.ScrollDepth = ev.EngagementMS, ev.ScrollDepth
	e.Interactive = b2u8(ev.Interactive)
	link := ev.Type == decode.TypeOutbound || ev.Type == decode.TypeDownload
	rd := st.policy.Redactor
	for i, k := range ev.PropKeys {
		if link && string(k) == "url" {
			continue // the link target is stored cleaned in target_url, not raw
		}
		h.key = rd.AppendText(h.key[:0], k)
		h.value = rd.AppendText(h.value[:0], ev.PropValues[i])
		e.AddProp(h.key, h.value)
	}
	if ev.HasRevenue {
		// The decoder bounds the amount (decode.MaxRevenueAmount), so the
		// micros fit int64.
		e.RevenueMicros = int64(math.Round(ev.RevenueAmount * 1e6))
		e.RevenueCurrency = append(e.RevenueCurrency, ev.RevenueCurrency...)
	}
}

// session touches the visitor's session with e and hands e to the writer,
// unless the visitor is over the rate limit. The writer drains the cache's
// changed sessions every session interval (sink.Writer.WriteSessions). The
// session counts the visitor's events per second; an event without one
// (engagement reported after its session ended) is counted in the
// limiter's table instead.
//
// On a noisy site, c is what admit counted for e: a visitor-day that may
// start no more visits continues its session but starts none (the event
// is dropped), every session is capped at MaxVisitSeconds, and an event
// not stored gives its counts back.
func (s *Server) session(h *hit, st *siteState, e *model.Event, visitorID uint64, now time.Time, c *contribution) outcome {
	ev := &h.ev
	h.attrs = model.AttrsView(e)
	touch := session.Touch{
		Pageview:     ev.Type == decode.TypePageview,
		Path:         view(h.page.Path),
		Interactive:  ev.Interactive && ev.Type != decode.TypeEngagement,
		EngagementMS: ev.EngagementMS,
		Attrs:        &h.attrs,
		Limit:        s.limiter.limit,
	}
	if st.noisy {
		touch.NoStart = c.noStart
		touch.MaxDurationSec = model.MaxVisitSeconds
	}
	id, limited := s.sessions.Touch(st.cfg.Domain, visitorID, now, &touch)
	var reason string
	switch {
	case limited:
		reason = dropRateLimit
	case id == 0 && touch.NoStart && !touch.Report():
		reason = dropContributionCap // it would start a visit too many
	case id == 0 && !s.limiter.allow(visitorID, now):
		reason = dropRateLimit
	}
	if reason != "" {
		s.writer.Release(e)
		if st.noisy {
			s.refund(c)
		}
		return dropped(reason)
	}
	e.SessionID = id
	if st.noisy && id != 0 {
		s.visit(c, id)
	}
	o := s.enqueue(e)
	if st.noisy && o.reason != "" {
		s.refund(c)
	}
	return o
}

// enqueue hands e to the writer; a full queue is answered 503 so the client
// knows the event was not taken (sendBeacon does not retry, but a server
// sender can).
func (s *Server) enqueue(e *model.Event) outcome {
	switch err := s.writer.Enqueue(e); err {
	case nil:
		s.metrics.accepted.Inc()
		return accepted
	case sink.ErrClosed:
		return outcome{status: fasthttp.StatusServiceUnavailable, reason: dropShutdown}
	case sink.ErrSpoolFull:
		return outcome{status: fasthttp.StatusServiceUnavailable, reason: dropSpoolFull}
	default:
		return outcome{status: fasthttp.StatusServiceUnavailable, reason: dropQueueFull}
	}
}

// The opt-outs OptedOut finds, in the order it looks for them; each is
// also the drop reason of the events it stops.
const (
	OptOutCookieReason = "opt-out" // the OptOutCookie, on every site
	OptOutGPCReason    = "gpc"     // Sec-GPC: 1, where the site honours GPC
	OptOutDNTReason    = "dnt"     // DNT: 1, where the site honours DNT
)

// OptedOut returns the opt-out that applies on a site with privacy p to a
// request with these values of the OptOutCookie and of the Sec-GPC and
// DNT headers, or "". The privacy gate and the opt-out page both ask it,
// so that the page describes what the gate does.
func OptedOut(cookie, gpc, dnt []byte, p *config.Privacy) string {
	switch {
	case string(cookie) == "1":
		return OptOutCookieReason
	case p.GPC() && string(bytes.TrimSpace(gpc)) == "1":
		return OptOutGPCReason
	case p.DNT() && string(bytes.TrimSpace(dnt)) == "1":
		return OptOutDNTReason
	}
	return ""
}

func sinkType(t decode.Type) int8 {
	switch t {
	case decode.TypePageview:
		return model.TypePageview
	case decode.TypeOutbound:
		return model.TypeOutbound
	case decode.TypeDownload:
		return model.TypeDownload
	case decode.TypeEngagement:
		return model.TypeEngagement
	case decode.TypeImpression:
		return model.TypeImpression
	default:
		return model.TypeCustom
	}
}

// screenClass buckets a screen width the way Plausible does; the width
// itself is not stored (it narrows down a device).
func screenClass(w uint16) string {
	switch {
	case w == 0:
		return ""
	case w < 576:
		return model.ScreenMobile
	case w < 992:
		return model.ScreenTablet
	case w < 1440:
		return model.ScreenLaptop
	default:
		return model.ScreenDesktop
	}
}

var connectionTypes = model.Lookup("visit:connection").Vocabulary

// connectionType maps the decoder's validated effective type to a constant.
func connectionType(b []byte) string {
	for _, v := range connectionTypes {
		if string(b) == v {
			return v
		}
	}
	return ""
}

func b2u8(b bool) uint8 {
	if b {
		return 1
	}
	return 0
}

// view is a string over b without copying. The session cache clones what
// it keeps, so views of request buffers are safe to pass to it.
func view(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// appendJSONError writes {"error":"msg"}.
func appendJSONError(dst []byte, msg string) []byte {
	dst = append(dst, `{"error":`...)
	dst = strconv.AppendQuote(dst, msg)
	return append(dst, '}')
}

type decodeError = decode.Error
