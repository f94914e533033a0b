package email

import (
	"strings"
	"testing"

	"github.com/VictoriaMetrics/metrics"

	"github.com/glimpse-analytics/glimpse/collector/redact"
	"github.com/glimpse-analytics/glimpse/internal/apptest"
)

// TestMintRedactsCampaign checks that a campaign name holding personal
// data is redacted before it is signed: the minted URL does not carry it.
func TestMintRedactsCampaign(t *testing.T) {
	m := testMinter(t)
	set := metrics.NewSet()
	m.Redactor = redact.New(set)
	tests := []struct{ campaign, want string }{
		{"june-news", "june-news"},
		{"Sommer 2025 — News", "Sommer 2025 — News"},
		{"promo for eve@example.com", "promo for [email]"},
		{"call +49 30 1234567", "call [phone]"},
		{strings.Repeat("a@b.co ", 14), strings.TrimSuffix(strings.Repeat("[email] ", 13), " ")[:100]},
	}
	for _, tt := range tests {
		p := Mint{Site: "example.com", Campaign: tt.campaign}
		for name, mint := range map[string]func() (string, error){
			"link":  func() (string, error) { return m.Link(p, "https://example.com/x") },
			"pixel": func() (string, error) { return m.PixelURL(p) },
			"optout": func() (string, error) {
				return m.OptOutURL(Mint{Site: p.Site, Campaign: p.Campaign, Recipient: "deadbeef"})
			},
		} {
			u, err := mint()
			if err != nil {
				t.Fatalf("%s %q: %v", name, tt.campaign, err)
			}
			tok := strings.TrimSuffix(u[strings.LastIndexByte(u, '/')+1:], ".gif")
			got, err := m.Signer.Decode([]byte(tok), t0)
			if err != nil {
				t.Fatalf("%s %q: decode: %v", name, tt.campaign, err)
			}
			if got.Campaign != tt.want {
				t.Errorf("%s %q: signed campaign %q, want %q", name, tt.campaign, got.Campaign, tt.want)
			}
		}
	}
	if n := apptest.SetMetric(t, set, redact.Email.MetricName()); n != 3*15 {
		t.Errorf("email redactions = %v, want 45", n)
	}
	if _, err := m.Link(Mint{Site: "example.com", Campaign: "a\nb"}, "https://example.com/"); err == nil {
		t.Error("a campaign with a control character was minted")
	}
}
