package reports

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/mail"
	"net/smtp"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/glimpse-analytics/glimpse/internal/config"
)

// DefaultSMTPTimeout bounds one message's whole SMTP conversation.
const DefaultSMTPTimeout = time.Minute

// mailer sends messages through the configured relay, one connection per
// message: reports are few, and a fresh connection needs no keep-alive.
type mailer struct {
	cfg     *config.SMTP
	tls     *tls.Config // nil: verify against the system roots
	timeout time.Duration
}

// send delivers msg from the configured sender to one address. STARTTLS
// follows cfg.StartTLS; AUTH PLAIN is only ever sent over TLS (a relay
// without STARTTLS under opportunistic with a username fails rather than
// send the password in clear).
func (m *mailer) send(to string, msg []byte) error {
	from, err := mail.ParseAddress(m.cfg.From)
	if err != nil {
		return fmt.Errorf("smtp.from: %w", err)
	}
	addr := net.JoinHostPort(m.cfg.Host, strconv.Itoa(m.cfg.Port))
	conn, err := net.DialTimeout("tcp", addr, m.timeout)
	if err != nil {
		return fmt.Errorf("cannot reach the SMTP relay %s: %w", addr, err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(m.timeout))
	c, err := smtp.NewClient(conn, m.cfg.Host)
	if err != nil {
		return fmt.Errorf("SMTP relay %s: %w", addr, err)
	}
	defer c.Close()
	// EHLO with this host's name: some relays refuse net/smtp's default
	// "localhost".
	if h, err := os.Hostname(); err == nil && h != "" && !strings.ContainsAny(h, " \r\n") {
		if err := c.Hello(h); err != nil {
			return fmt.Errorf("SMTP relay %s refused EHLO: %w", addr, err)
		}
	}
	secure := false
	if m.cfg.StartTLS != config.StartTLSNone {
		if ok, _ := c.Extension("STARTTLS"); ok {
			tc := &tls.Config{ServerName: m.cfg.Host, MinVersion: tls.VersionTLS12}
			if m.tls != nil {
				tc = m.tls.Clone()
				if tc.ServerName == "" {
					tc.ServerName = m.cfg.Host
				}
			}
			if err := c.StartTLS(tc); err != nil {
				return fmt.Errorf("STARTTLS with %s failed: %w", addr, err)
			}
			secure = true
		} else if m.cfg.StartTLS == config.StartTLSRequired {
			return fmt.Errorf("the SMTP relay %s does not offer STARTTLS (smtp.starttls is required)", addr)
		}
	}
	if m.cfg.Username != "" {
		if !secure {
			return errors.New("refusing to send the SMTP password over a connection without TLS: the relay " + addr + " did not offer STARTTLS")
		}
		if err := c.Auth(smtp.PlainAuth("", m.cfg.Username, m.cfg.Password, m.cfg.Host)); err != nil {
			return fmt.Errorf("SMTP authentication as %s failed: %w", m.cfg.Username, err)
		}
	}
	if err := c.Mail(from.Address); err != nil {
		return fmt.Errorf("SMTP MAIL FROM refused: %w", err)
	}
	if err := c.Rcpt(to); err != nil {
		return fmt.Errorf("SMTP RCPT TO refused: %w", err)
	}
	w, err := c.Data()
	if err != nil {
		return fmt.Errorf("SMTP DATA refused: %w", err)
	}
	if _, err := w.Write(msg); err != nil {
		return fmt.Errorf("cannot write the message: %w", err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("SMTP relay refused the message: %w", err)
	}
	return c.Quit()
}
