package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/VictoriaMetrics/metrics"
	"github.com/valyala/fasthttp"

	"github.com/glimpse-analytics/glimpse/collector/email"
	"github.com/glimpse-analytics/glimpse/collector/locate"
	"github.com/glimpse-analytics/glimpse/collector/sink"
	"github.com/glimpse-analytics/glimpse/internal/config"
)

// emailCommand mints signed email links, open pixels and opt-out links,
// and rewrites HTML emails:
//
//	glimpse email link --site S --campaign C --url URL [--recipient HASH] [--ttl 90d]
//	glimpse email link --site S --campaign C --recipient HASH --optout
//	glimpse email pixel --site S --campaign C [--recipient HASH] [--ttl 90d]
//	glimpse email rewrite --site S --campaign C [--recipient HASH] < in.html > out.html
func emailCommand() *command {
	return &command{
		name:  "email",
		usage: "mint signed email links and pixels: email link|pixel|rewrite (see glimpse email -h)",
		run: func(_ context.Context, o *globalOptions, gfs *flag.FlagSet, args []string, stdout io.Writer, log *slog.Logger) error {
			return runEmail(o, gfs, args, os.Stdin, stdout, log)
		},
	}
}

var emailUsage = `usage: glimpse email <link|pixel|rewrite> [flags]
  link     print a tracked link to --url (with --optout: the recipient's opt-out link)
  pixel    print the <img> tag of an open pixel
  rewrite  read an HTML email on stdin, write it with tracked links and the pixel to stdout`

func runEmail(o *globalOptions, gfs *flag.FlagSet, args []string, stdin io.Reader, stdout io.Writer, log *slog.Logger) error {
	if len(args) == 0 {
		return errors.New(emailUsage)
	}
	sub := args[0]
	switch sub {
	case "link", "pixel", "rewrite":
	default:
		return fmt.Errorf("unknown email command %q\n%s", sub, emailUsage)
	}
	fs := newFlagSet("glimpse email "+sub, gfs.Output())
	var g globalOptions
	g.register(fs) // global flags may also follow the sub-command
	var site, campaign, dest, recipient, ttl string
	var optOut bool
	fs.StringVar(&site, "site", "", "site domain from the sites file (required)")
	fs.StringVar(&campaign, "campaign", "", "campaign id, 1 to 100 characters (required)")
	fs.StringVar(&recipient, "recipient", "", "recipient pseudonym: 8 to 64 lower-case hex digits the sender computes (e.g. a salted SHA-256); never an address")
	fs.StringVar(&ttl, "ttl", "90d", "lifetime of the link: days (90d), a duration (36h) or never")
	if sub == "link" {
		fs.StringVar(&dest, "url", "", "destination, an absolute http(s) URL (required unless --optout)")
		fs.BoolVar(&optOut, "optout", false, "print the recipient's opt-out link instead (needs --recipient)")
	}
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	var setErr error
	fs.Visit(func(f *flag.Flag) {
		if gf := gfs.Lookup(f.Name); gf != nil {
			if err := gfs.Set(f.Name, f.Value.String()); err != nil {
				setErr = err
			}
		}
	})
	if setErr != nil {
		return setErr
	}
	if site == "" || campaign == "" {
		return errors.New("--site and --campaign are required")
	}
	life, err := email.ParseTTL(ttl)
	if err != nil {
		return err
	}
	sites, err := config.Load(o.Config)
	if err != nil {
		return err
	}
	signer, err := email.NewSigner(sites.Email.Keys())
	if err != nil {
		return err
	}
	if o.PublicURL == "" {
		log.Warn("--public-url is not set; links point at " + o.publicURL())
	}
	if c := email.CampaignName(nil, campaign); c != campaign && email.ValidCampaign(campaign) == nil {
		log.Warn("the campaign name held personal data or a secret; links carry it redacted", "campaign", c)
	}
	m := &email.Minter{Signer: signer, Sites: sites, Base: o.publicURL()}
	p := email.Mint{Site: site, Campaign: campaign, Recipient: recipient, TTL: life}
	var out string
	switch {
	case sub == "link" && optOut:
		if dest != "" {
			return errors.New("--optout takes no --url")
		}
		out, err = m.OptOutURL(p)
	case sub == "link":
		if dest == "" {
			return errors.New("--url is required")
		}
		out, err = m.Link(p, dest)
	case sub == "pixel":
		out, err = m.PixelTag(p)
	case sub == "rewrite":
		res, err := m.Rewrite(stdout, stdin, p)
		if err != nil {
			return err
		}
		for _, s := range res.Skipped {
			log.Warn("link left untracked", "link", s)
		}
		log.Info("rewrote email", "links", res.Links, "untracked", len(res.Skipped), "pixel", res.Pixel)
		return nil
	}
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(stdout, out)
	return err
}

// emailEndpoints builds the email endpoints for serve: POST
// /api/email/sign by exact path, the token endpoints by prefix, and the
// opt-out refresh loop to run in the background. Without
// email.signing_keys in the sites file the endpoints are off: sign
// answers 404 and no prefix is served.
func emailEndpoints(ctx context.Context, o *globalOptions, sites *config.File, conn driver.Conn, writer *sink.Writer,
	proxies locate.TrustedProxies, set *metrics.Set, log *slog.Logger) (routes, prefixes map[string]fasthttp.RequestHandler, run func(context.Context), err error) {
	if len(sites.Email.SigningKeys) == 0 {
		log.Info("email tracking off: no email.signing_keys in the sites file")
		off := func(ctx *fasthttp.RequestCtx) { ctx.Error("email tracking is not configured", fasthttp.StatusNotFound) }
		return map[string]fasthttp.RequestHandler{email.SignPath: off}, nil, func(context.Context) {}, nil
	}
	signer, err := email.NewSigner(sites.Email.Keys())
	if err != nil {
		return nil, nil, nil, err
	}
	optOuts := email.NewOptOuts(conn, log)
	if err := optOuts.Load(ctx); err != nil {
		return nil, nil, nil, err
	}
	h, err := email.New(email.Options{
		Sites: sites, Signer: signer, Writer: writer, OptOuts: optOuts, Proxies: proxies,
		PublicURL: o.publicURL(), Metrics: set, Log: log,
	})
	if err != nil {
		return nil, nil, nil, err
	}
	return h.Routes(), h.Prefixes(), func(ctx context.Context) { optOuts.Run(ctx, 0) }, nil
}
