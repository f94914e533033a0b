package email

import (
	"errors"
	"fmt"
	"html"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/glimpse-analytics/glimpse/collector/redact"
	"github.com/glimpse-analytics/glimpse/internal/config"
)

// Endpoint paths.
const (
	OpenPrefix   = "/e/o/"      // + token + ".gif"
	ClickPrefix  = "/e/c/"      // + token
	OptOutPrefix = "/e/optout/" // + token
	SignPath     = "/api/email/sign"
)

// DefaultTTL is the lifetime of minted links when none is given.
const DefaultTTL = 90 * 24 * time.Hour

// Minter builds signed email URLs under the collector's public URL.
type Minter struct {
	Signer *Signer
	Sites  *config.File
	// Base is the collector's public base URL (--public-url), without a
	// trailing slash.
	Base string
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Redactor redacts campaign names before they are signed, so that no
	// minted URL carries an address or a secret a sender put in one; nil
	// redacts the same and counts nothing.
	Redactor *redact.Redactor
}

// Mint describes one link, pixel or opt-out to mint.
type Mint struct {
	Site, Campaign string
	Recipient      string        // optional pseudonym (hex)
	TTL            time.Duration // 0: DefaultTTL; negative: no expiry
}

func (m *Minter) token(kind Kind, p Mint, dest string) (string, error) {
	if m.Sites == nil || m.Sites.Site(p.Site) == nil {
		return "", fmt.Errorf("site %q is not configured in the sites file", p.Site)
	}
	now := time.Now
	if m.Now != nil {
		now = m.Now
	}
	if err := ValidCampaign(p.Campaign); err != nil {
		return "", err
	}
	t := Token{Kind: kind, Site: p.Site, Campaign: CampaignName(m.Redactor, p.Campaign), Recipient: p.Recipient, URL: dest,
		Sent: now().UTC().Truncate(time.Second)}
	switch {
	case p.TTL == 0:
		t.Expires = t.Sent.Add(DefaultTTL)
	case p.TTL > 0:
		if p.TTL < time.Second {
			return "", errors.New("ttl: want at least 1s")
		}
		t.Expires = t.Sent.Add(p.TTL)
	}
	return m.Signer.Sign(t)
}

// CampaignName is the campaign c as it is signed and stored: redacted
// (collector/redact), and cut to 100 bytes at a character boundary should
// a placeholder have made it longer.
func CampaignName(rd *redact.Redactor, c string) string {
	c = rd.Text(c)
	if len(c) > maxCampaignLen {
		n := maxCampaignLen
		for n > 0 && !utf8.RuneStart(c[n]) {
			n--
		}
		c = c[:n]
	}
	return c
}

// Link returns a tracked link to dest.
func (m *Minter) Link(p Mint, dest string) (string, error) {
	d, err := NormalizeDestination(dest)
	if err != nil {
		return "", err
	}
	tok, err := m.token(KindClick, p, d)
	if err != nil {
		return "", err
	}
	return m.Base + ClickPrefix + tok, nil
}

// PixelURL returns the URL of an open pixel.
func (m *Minter) PixelURL(p Mint) (string, error) {
	tok, err := m.token(KindOpen, p, "")
	if err != nil {
		return "", err
	}
	return m.Base + OpenPrefix + tok + ".gif", nil
}

// PixelTag returns an <img> tag of the open pixel.
func (m *Minter) PixelTag(p Mint) (string, error) {
	u, err := m.PixelURL(p)
	if err != nil {
		return "", err
	}
	return ImgTag(u), nil
}

// ImgTag is the markup of an open pixel at u.
func ImgTag(u string) string {
	return `<img src="` + html.EscapeString(u) + `" width="1" height="1" alt="" border="0" style="display:block;width:1px;height:1px;border:0;">`
}

// OptOutURL returns the opt-out link of a recipient.
func (m *Minter) OptOutURL(p Mint) (string, error) {
	tok, err := m.token(KindOptOut, p, "")
	if err != nil {
		return "", err
	}
	return m.Base + OptOutPrefix + tok, nil
}

// ParseTTL parses a link lifetime: a Go duration ("36h"), a number of days
// ("90d"), or "0" / "never" for no expiry (returned as -1).
func ParseTTL(s string) (time.Duration, error) {
	switch s {
	case "":
		return DefaultTTL, nil
	case "0", "never":
		return -1, nil
	}
	if d, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(d)
		if err != nil || n <= 0 || n > 36500 {
			return 0, fmt.Errorf("ttl %q: want a number of days like 90d, a duration like 36h, or never", s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < time.Second {
		return 0, fmt.Errorf("ttl %q: want a number of days like 90d, a duration like 36h, or never", s)
	}
	return d, nil
}
