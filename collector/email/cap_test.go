package email

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/glimpse-analytics/glimpse/collector/sink"
	"github.com/glimpse-analytics/glimpse/internal/apptest"
	"github.com/glimpse-analytics/glimpse/internal/chtest"
	"github.com/glimpse-analytics/glimpse/internal/config"
	"github.com/glimpse-analytics/glimpse/internal/model"
)

// TestRecipientCap: on a site with noisy aggregates (example.com, the
// default in mode strict) at most MaxEmailPerRecipientDay opens and
// clicks of a recipient are stored in a UTC day, the pixel and the
// redirect served all the same; the next day counts afresh; events
// without a recipient and a site with exact aggregates are not capped.
// Through the real handlers and ClickHouse.
func TestRecipientCap(t *testing.T) {
	db := chtest.Migrated(t)
	sites, err := config.Parse("t.yaml", []byte(`sites:
  - domain: example.com
  - domain: exact.example
    privacy: {aggregates: exact}
`))
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	now := t0.Add(time.Hour)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	set := metrics.NewSet()
	w := sink.New(sink.Options{Conn: db.Conn, BatchSize: 1000, Interval: 50 * time.Millisecond, Metrics: set})
	s := mustSigner(t, key1)
	h, err := New(Options{Sites: sites, Signer: s, Writer: w, OptOuts: NewOptOuts(nil, nil), Metrics: set, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	sign := func(k Kind, site, recipient string) string {
		tok := Token{Kind: k, Site: site, Campaign: "june", Recipient: recipient, Sent: t0}
		if k == KindClick {
			tok.URL = "https://" + site + "/sale"
		}
		enc, err := s.Sign(tok)
		if err != nil {
			t.Fatal(err)
		}
		return enc
	}
	const (
		alice    = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
		chromeUA = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/125.0.0.0 Safari/537.36"
	)
	// opens then clicks of one recipient (or none) on site; every answer
	// is the GIF or the redirect. It returns the opens and clicks capped.
	send := func(site, recipient string, opens, clicks int) (capped int) {
		t.Helper()
		open, click := "/e/o/"+sign(KindOpen, site, recipient)+".gif", "/e/c/"+sign(KindClick, site, recipient)
		for i := range opens + clicks {
			if i < opens {
				r := serve(h.ServeOpen, "GET", open, "User-Agent", chromeUA)
				if r.StatusCode() != 200 || len(r.Body()) != 43 {
					t.Fatalf("open %d: %d, %d bytes", i, r.StatusCode(), len(r.Body()))
				}
				if string(r.Header.Peek("X-Glimpse-Dropped")) == "contribution_cap" {
					capped++
				}
				continue
			}
			r := serve(h.ServeClick, "GET", click, "User-Agent", chromeUA)
			if r.StatusCode() != 302 || string(r.Header.Peek("Location")) != "https://"+site+"/sale" {
				t.Fatalf("click %d: %d %q", i, r.StatusCode(), r.Header.Peek("Location"))
			}
		}
		return capped
	}
	if capped := send("example.com", alice, 8, 5); capped != 0 {
		t.Errorf("%d of 8 opens capped, want none (the clicks after them are)", capped)
	}
	if capped := send("example.com", alice, 2, 0); capped != 2 {
		t.Errorf("%d of 2 opens beyond the cap capped, want 2", capped)
	}
	send("example.com", "", 15, 15) // no recipient: each its own unit
	send("exact.example", alice, 15, 15)
	mu.Lock()
	now = now.Add(24 * time.Hour)
	mu.Unlock()
	send("example.com", alice, 15, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if lost, err := w.Close(ctx); err != nil || lost != 0 {
		t.Fatalf("writer close: lost %d, %v", lost, err)
	}
	day1, day2 := t0.Format(time.DateOnly), t0.Add(24*time.Hour).Format(time.DateOnly)
	for q, want := range map[string]uint64{
		fmt.Sprintf("SELECT count() FROM events WHERE site_id = 'example.com' AND email_recipient = '%s' AND toDate(ts) = '%s'", alice, day1):                          model.MaxEmailPerRecipientDay,
		fmt.Sprintf("SELECT count() FROM events WHERE site_id = 'example.com' AND email_recipient = '%s' AND toDate(ts) = '%s' AND type = 'email_click'", alice, day1): 2,
		fmt.Sprintf("SELECT count() FROM events WHERE site_id = 'example.com' AND email_recipient = '%s' AND toDate(ts) = '%s'", alice, day2):                          model.MaxEmailPerRecipientDay,
		"SELECT count() FROM events WHERE site_id = 'example.com' AND email_recipient = ''":                                                                            30,
		"SELECT count() FROM events WHERE site_id = 'exact.example'":                                                                                                   30,
	} {
		if got := apptest.Count(t, db.Conn, q); got != want {
			t.Errorf("%s: %d, want %d", q, got, want)
		}
	}
	var b strings.Builder
	set.WritePrometheus(&b)
	for _, want := range []string{
		`glimpse_email_requests_total{kind="click",outcome="contribution_cap"} 3`,
		`glimpse_email_requests_total{kind="open",outcome="contribution_cap"} 7`,
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}
