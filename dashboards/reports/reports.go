// Package reports e-mails scheduled reports and traffic alerts through the
// SMTP relay of the sites file (smtp:): per site, weekly and monthly
// reports (reports:) and an alert when current visitors exceed a
// threshold (alerts:). Every number comes from the Stats API's engine and
// is released to the recipient as a reader ("report:<site>:<hash>"), so
// the k threshold, noisy mode and the privacy budget apply as they do to
// the API. Each message carries a signed unsubscribe link; recipients are
// stored only as a keyed hash.
package reports

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/VictoriaMetrics/metrics"
	"github.com/valyala/fasthttp"

	"crypto/tls"

	"github.com/glimpse-analytics/glimpse/aggregator"
	"github.com/glimpse-analytics/glimpse/aggregator/period"
	"github.com/glimpse-analytics/glimpse/internal/config"
)

// UnsubscribePrefix is the path of unsubscribe links:
// /reports/unsubscribe/{token}.
const UnsubscribePrefix = "/reports/unsubscribe/"

// DefaultSendDelay is how long after a period ends its report is sent:
// late sessions have closed and a noisy site has released the last hour.
const DefaultSendDelay = time.Hour

// CheckInterval is how often the scheduler checks what is due and
// whether an alert's threshold is crossed.
const CheckInterval = time.Minute

// Options configure a Service.
type Options struct {
	Sites  *config.File // with SMTP set
	Engine *aggregator.Engine
	Conn   driver.Conn
	// Cluster is the cluster the database was migrated for (--cluster);
	// empty: one server.
	Cluster   string
	PublicURL string // base of unsubscribe links (--public-url)
	Log       *slog.Logger
	Now       func() time.Time // default time.Now
	// SendDelay: DefaultSendDelay when zero.
	SendDelay time.Duration
	// TLS verifies the relay's certificate; nil: the system roots.
	TLS *tls.Config
	// QueryTimeout bounds each ClickHouse statement (default 30 s).
	QueryTimeout time.Duration
	// Metrics gets glimpse_reports_sent_total{kind} and
	// glimpse_reports_send_errors_total{kind}; nil: a private set.
	Metrics *metrics.Set
}

// Service sends reports and alerts and answers unsubscribe links.
type Service struct {
	o      Options
	log    *slog.Logger
	keys   keys
	mail   *mailer
	store  *store
	base   string
	sent   map[string]bool // "site kind recipient period" known sent, to spare queries
	failed map[string]time.Time
	// alertWarned is when a site's failed realtime read was last logged.
	alertWarned map[string]time.Time
}

// New returns a Service; the sites file must configure smtp.
func New(o Options) (*Service, error) {
	if o.Sites == nil || o.Sites.SMTP == nil {
		return nil, errors.New("reports need a top-level smtp: block in the sites file")
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.SendDelay == 0 {
		o.SendDelay = DefaultSendDelay
	}
	if o.Metrics == nil {
		o.Metrics = metrics.NewSet()
	}
	if o.QueryTimeout <= 0 {
		o.QueryTimeout = 30 * time.Second
	}
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Service{
		o: o, log: log.With("component", "reports"),
		keys:  keys{secret: o.Sites.SMTP.SigningKey},
		mail:  &mailer{cfg: o.Sites.SMTP, tls: o.TLS, timeout: DefaultSMTPTimeout},
		store: &store{conn: o.Conn, cluster: o.Cluster, timeout: o.QueryTimeout},
		base:  strings.TrimRight(o.PublicURL, "/"),
		sent:  map[string]bool{}, failed: map[string]time.Time{}, alertWarned: map[string]time.Time{},
	}, nil
}

// count counts a message of kind sent, or failed.
func (s *Service) count(kind string, err error) {
	name := "glimpse_reports_sent_total"
	if err != nil {
		name = "glimpse_reports_send_errors_total"
	}
	s.o.Metrics.GetOrCreateCounter(name + `{kind="` + kind + `"}`).Inc()
}

// Recipient is the keyed hash under which addr is stored and logged.
func (s *Service) Recipient(addr string) string { return s.keys.recipient(addr) }

// UnsubscribeURL is the link that unsubscribes addr from kind on site.
func (s *Service) UnsubscribeURL(site, kind, addr string) string {
	return s.base + UnsubscribePrefix + s.keys.sign(site, kind, s.keys.recipient(addr))
}

// Prefixes routes the unsubscribe links.
func (s *Service) Prefixes() map[string]fasthttp.RequestHandler {
	return map[string]fasthttp.RequestHandler{UnsubscribePrefix: s.ServeUnsubscribe}
}

// Run checks every CheckInterval, the first time at once (so a report
// missed while stopped goes out on start-up), until ctx ends.
func (s *Service) Run(ctx context.Context) {
	t := time.NewTicker(CheckInterval)
	defer t.Stop()
	for {
		s.Tick(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Tick sends what is due now: every report whose last full period has
// not been sent to a recipient (once the period is SendDelay old), and
// every alert whose threshold is crossed and whose cooldown has passed.
func (s *Service) Tick(ctx context.Context) {
	now := s.o.Now()
	for i := range s.o.Sites.Sites {
		site := &s.o.Sites.Sites[i]
		for j := range site.Reports {
			s.due(ctx, site, &site.Reports[j], now)
		}
		if len(site.Alerts) > 0 {
			s.alerts(ctx, site, now)
		}
	}
}

func reportKind(r *config.Report) string {
	if r.Every == config.EveryMonth {
		return KindMonth
	}
	return KindWeek
}

// retryAfter is how long a failed send waits before it is tried again.
const retryAfter = 10 * time.Minute

// due sends r's last full period to each recipient that has not had it.
func (s *Service) due(ctx context.Context, site *config.Site, r *config.Report, now time.Time) {
	p, _, _ := LastFull(r.Every, now, r.Location)
	if now.Before(p.To.Add(s.o.SendDelay)) {
		return
	}
	kind, key := reportKind(r), p.From.In(r.Location).Format(time.DateOnly)
	for _, addr := range r.Recipients {
		rec := s.keys.recipient(addr)
		id := site.Domain + " " + kind + " " + rec + " " + key
		if s.sent[id] || now.Before(s.failed[id].Add(retryAfter)) {
			continue
		}
		log := s.log.With("site", site.Domain, "kind", kind, "period", key, "recipient", rec)
		at, err := s.store.lastSent(ctx, site.Domain, kind, rec, key)
		if err != nil {
			log.Warn("cannot check whether the report was sent; trying later", "err", err)
			return
		}
		if !at.IsZero() {
			s.sent[id] = true
			continue
		}
		err = s.sendReport(ctx, site, r, addr, now, nil)
		if errors.Is(err, errUnsubscribed) {
			s.sent[id] = true // nothing to send this period
			continue
		}
		if err != nil {
			s.failed[id] = now
			log.Warn("report not sent; retrying in "+retryAfter.String(), "err", scrub(err, addr))
			continue
		}
		s.sent[id] = true
		delete(s.failed, id)
	}
}

// scrub replaces an address in an error's text (a relay may quote it)
// with its place, so that logs never hold a recipient's address.
func scrub(err error, addr string) string {
	msg := err.Error()
	for _, a := range []string{addr, strings.ToLower(addr)} {
		msg = strings.ReplaceAll(msg, a, "<recipient>")
	}
	return msg
}

// errUnsubscribed: the recipient unsubscribed; nothing was sent.
var errUnsubscribed = errors.New("recipient unsubscribed")

// sendReport builds r's report for addr and sends it (or, with dry, writes
// it there); a send is recorded. An unsubscribed recipient is skipped.
func (s *Service) sendReport(ctx context.Context, site *config.Site, r *config.Report, addr string, now time.Time, dry io.Writer) error {
	kind, rec := reportKind(r), s.keys.recipient(addr)
	log := s.log.With("site", site.Domain, "kind", kind, "recipient", rec)
	if out, err := s.store.unsubscribed(ctx, site.Domain, kind, rec); err != nil {
		return err
	} else if out {
		log.Info("recipient unsubscribed; not sending")
		return errUnsubscribed
	}
	c, err := build(ctx, s.o.Engine, site, r, "report:"+site.Domain+":"+rec, now)
	if err != nil {
		return err
	}
	unsub := s.UnsubscribeURL(site.Domain, kind, addr)
	text, html, err := c.render(unsub)
	if err != nil {
		return fmt.Errorf("cannot render the report: %w", err)
	}
	m := &message{From: s.o.Sites.SMTP.From, To: addr, Subject: c.subject(), Unsubscribe: unsub, Date: now, Text: text, HTML: html}
	if dry != nil {
		_, err := dry.Write(m.bytes())
		return err
	}
	err = s.mail.send(addr, m.bytes())
	s.count(kind, err)
	if err != nil {
		return err
	}
	key := c.Period.From.In(c.Period.Loc).Format(time.DateOnly)
	log.Info("report sent", "period", key)
	if err := s.store.recordSent(ctx, site.Domain, kind, rec, key, now); err != nil {
		// Sent but not recorded: a restart may send it again.
		log.Error("report sent but not recorded", "err", err)
	}
	return nil
}

// alerts checks site's current visitors against each alert.
func (s *Service) alerts(ctx context.Context, site *config.Site, now time.Time) {
	p, err := period.Parse("realtime", "", site.Location, now)
	if err != nil {
		return
	}
	n, err := s.o.Engine.RealtimeVisitors(ctx, &aggregator.Query{Site: site, Period: p, Reader: "alert:" + site.Domain})
	if err != nil {
		// Once an hour at most: a noisy site's exhausted budget, or a
		// ClickHouse outage, would otherwise log every minute.
		if now.Sub(s.alertWarned[site.Domain]) >= time.Hour {
			s.alertWarned[site.Domain] = now
			s.log.Warn("cannot read current visitors for alerts (logged at most hourly)", "site", site.Domain, "err", err)
		}
		return
	}
	for i := range site.Alerts {
		a := &site.Alerts[i]
		if n <= int64(a.CurrentVisitorsAbove) {
			continue
		}
		for _, addr := range a.Recipients {
			rec := s.keys.recipient(addr)
			log := s.log.With("site", site.Domain, "kind", KindAlert, "recipient", rec)
			last, err := s.store.lastSent(ctx, site.Domain, KindAlert, rec, "")
			if err != nil {
				log.Warn("cannot read the last alert sent; not alerting now", "err", err)
				continue
			}
			if !last.IsZero() && now.Before(last.Add(a.Cooldown)) {
				continue
			}
			if err := s.sendAlert(ctx, site, a, addr, n, now); err != nil && !errors.Is(err, errUnsubscribed) {
				log.Warn("alert not sent", "err", scrub(err, addr))
			}
		}
	}
}

func (s *Service) sendAlert(ctx context.Context, site *config.Site, a *config.Alert, addr string, visitors int64, now time.Time) error {
	rec := s.keys.recipient(addr)
	if out, err := s.store.unsubscribed(ctx, site.Domain, KindAlert, rec); err != nil {
		return err
	} else if out {
		return errUnsubscribed
	}
	unsub := s.UnsubscribeURL(site.Domain, KindAlert, addr)
	v := &alertView{Site: site.Domain, Unsubscribe: unsub, Visitors: visitors, Above: int64(a.CurrentVisitorsAbove),
		At: now.In(site.Location).Format("Jan 2, 2006 15:04 MST")}
	text, html, err := v.render()
	if err != nil {
		return err
	}
	m := &message{From: s.o.Sites.SMTP.From, To: addr, Unsubscribe: unsub, Date: now, Text: text, HTML: html,
		Subject: fmt.Sprintf("Glimpse alert for %s: %d current visitors (above %d)", site.Domain, visitors, a.CurrentVisitorsAbove)}
	err = s.mail.send(addr, m.bytes())
	s.count(KindAlert, err)
	if err != nil {
		return err
	}
	s.log.Info("alert sent", "site", site.Domain, "recipient", rec, "visitors", visitors)
	return s.store.recordSent(ctx, site.Domain, KindAlert, rec, now.UTC().Format("2006-01-02T15:04"), now)
}

// Send sends site's report of every (week or month) for the last full
// period now, to the report's recipients or, when to is not empty, to to
// alone, whether or not it was sent before (an operator's send); with dry
// the messages are written there instead and nothing is recorded. It
// returns how many were sent (or written).
func (s *Service) Send(ctx context.Context, domain, every string, to []string, dry io.Writer) (int, error) {
	if every != config.EveryWeek && every != config.EveryMonth {
		return 0, fmt.Errorf("--every %q: want week or month", every)
	}
	site := s.o.Sites.Site(domain)
	if site == nil {
		return 0, fmt.Errorf("--site %q is not a configured site domain", domain)
	}
	var r *config.Report
	for i := range site.Reports {
		if site.Reports[i].Every == every {
			r = &site.Reports[i]
		}
	}
	if r == nil {
		if len(to) == 0 {
			return 0, fmt.Errorf("site %s has no %s report in the sites file; add one or give --to", domain, every)
		}
		r = &config.Report{Every: every, Location: site.Location, TimeZone: site.Timezone}
	}
	if len(to) == 0 {
		to = r.Recipients
	}
	n := 0
	now := s.o.Now()
	for _, addr := range to {
		if _, err := config.CanonicalEmail(addr); err != nil {
			return n, fmt.Errorf("--to: %w", err)
		}
		err := s.sendReport(ctx, site, r, addr, now, dry)
		switch {
		case errors.Is(err, errUnsubscribed):
			continue
		case err != nil:
			return n, fmt.Errorf("cannot send to %s: %s", s.keys.recipient(addr), scrub(err, addr))
		}
		n++
	}
	return n, nil
}
