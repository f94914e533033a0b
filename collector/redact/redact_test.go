package redact

import (
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/VictoriaMetrics/metrics"

	"github.com/glimpse-analytics/glimpse/internal/apptest"
)

// textCases are matches every text rule must find and look-alikes it
// must keep. want is the redacted text.
var textCases = []struct{ name, in, want string }{
	// email
	{"email", "eve@example.com", "[email]"},
	{"email in text", "contact: Eve.Smith+news@mail.example.co.uk, thanks", "contact: [email], thanks"},
	{"email still encoded", "jane%40example.com", "[email]"},
	{"idn email", "jörg@bücher.example", "[email]"},
	{"handle kept", "@alice", "@alice"},
	{"at without domain kept", "meet@noon", "meet@noon"},

	// card
	{"visa", "4111111111111111", "[card]"},
	{"visa spaced", "card 4111 1111 1111 1111 exp", "card [card] exp"},
	{"visa dashed", "4111-1111-1111-1111", "[card]"},
	{"amex", "3782 822463 10005", "[card]"},
	{"mastercard 2-series", "2221000000000009", "[card]"},
	{"card then cvc group kept", "4111 1111 1111 1111 123", "[card] 123"},
	{"luhn fails kept", "4111111111111112", "4111111111111112"},
	{"ms timestamp kept", "1700000000000", "1700000000000"},
	{"snowflake id kept", "1790264526351339837", "1790264526351339837"},
	{"long number kept", "123456789012345678901234", "123456789012345678901234"},
	{"card glued to letters kept", "x4111111111111111", "x4111111111111111"},

	// phone
	{"e164", "+4915112345678", "[phone]"},
	{"e164 spaced", "+49 30 1234567", "[phone]"},
	{"e164 us", "+1 (555) 123-4567", "[phone]"},
	{"e164 uk trunk", "+44 (0)20 7946 0958", "[phone]"},
	{"e164 dotted", "+33.6.12.34.56.78", "[phone]"},
	{"intl 00", "0049 30 1234567", "[phone]"},
	{"nanp parens", "call (555) 123-4567 now", "call [phone] now"},
	{"nanp dashes", "555-123-4567", "[phone]"},
	{"nanp dots", "555.123.4567", "[phone]"},
	{"nanp with 1", "1-800-555-1234", "[phone]"},
	{"de", "030 1234567", "[phone]"},
	{"de slash", "Tel. 030/1234567", "Tel. [phone]"},
	{"uk mobile", "07700 900123", "[phone]"},
	{"uk london", "020 7946 0958", "[phone]"},
	{"fr", "06 12 34 56 78", "[phone]"},
	{"fr dotted", "06.12.34.56.78", "[phone]"},
	{"too few digits for e164 kept", "+1 234", "+1 234"},
	{"plus in math kept", "2+2=4", "2+2=4"},
	{"bare national kept", "07700900123", "07700900123"},
	{"year kept", "2024", "2024"},
	{"date kept", "2024-10-05", "2024-10-05"},
	{"dotted date and time kept", "05.10.2024 10:30", "05.10.2024 10:30"},
	{"dashed date kept", "05-10-2024", "05-10-2024"},
	{"price kept", "$1,299.99", "$1,299.99"},
	{"spaced thousands kept", "1 234 567", "1 234 567"},
	{"three spaced numbers kept", "300 500 1000", "300 500 1000"},
	{"order count kept", "order 123456", "order 123456"},
	{"isbn kept", "978-3-16-148410-0", "978-3-16-148410-0"},
	{"zip+4 kept", "12345-6789", "12345-6789"},

	// iban
	{"iban", "GB82WEST12345698765432", "[iban]"},
	{"iban grouped", "IBAN: DE89 3704 0044 0532 0130 00.", "IBAN: [iban]."},
	{"iban lower case", "de89370400440532013000", "[iban]"},
	{"iban check fails kept", "GB82WEST12345698765433", "GB82WEST12345698765433"},
	{"iban wrong length kept", "GB82WEST1234569876543", "GB82WEST1234569876543"},

	// jwt
	{"jwt", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.dBjftJeZ4CVPmB92K27uhbUJU1p1r_wW1gFWFOEjXk", "[jwt]"},
	{"unsecured jwt", "t=eyJhbGciOiJub25lIn0.eyJzdWIiOiIxIn0.", "t=[jwt]"},

	// token
	{"uuid", "550e8400-e29b-41d4-a716-446655440000", "[token]"},
	{"sha256", "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", "[token]"},
	{"mongo id", "507f1f77bcf86cd799439011", "[token]"},
	{"base62", "Xq3ZbT9kLm2PwR7vN4sY8dFh", "[token]"},
	{"prefixed key", "sk_live_4eC39HqLyjWDarjtT1zdp7dc", "[token]"},
	{"github token", "ghp_16C7e42F292c6912E7710c838347Ae178B4a", "[token]"},
	{"ulid", "01ARZ3NDEKTSV4RRFFQ69G5FAV", "[token]"},
	{"base32 secret", "JBSWY3DPEHPK3PXP", "[token]"},
	{"slug kept", "how-to-install-go-1-22-on-ubuntu-24-04", "how-to-install-go-1-22-on-ubuntu-24-04"},
	{"camel case with year kept", "the2024AnnualReportFinal", "the2024AnnualReportFinal"},
	{"product name kept", "MacBookPro16M3Max2024", "MacBookPro16M3Max2024"},
	{"product with size kept", "iPhone15ProMax256gb", "iPhone15ProMax256gb"},
	{"distro kept", "ubuntu2404desktopamd64", "ubuntu2404desktopamd64"},
	{"order number kept", "ORD20241005000123", "ORD20241005000123"},
	{"short hex kept", "9f86d08", "9f86d08"},
	{"hex colour kept", "#ff00aa", "#ff00aa"},
	{"version kept", "v1.2.3-beta.4", "v1.2.3-beta.4"},
	{"sku kept", "SKU-12345-XL", "SKU-12345-XL"},
	{"words kept", "Spring Sale 2024", "Spring Sale 2024"},
	{"escape kept whole", "a%20b%2Fc", "a%20b%2Fc"},
	{"non-ascii kept", "café 2024 €5", "café 2024 €5"},
}

func TestAppendText(t *testing.T) {
	for _, tt := range textCases {
		t.Run(tt.name, func(t *testing.T) {
			got := string((*Redactor)(nil).AppendText([]byte("x"), []byte(tt.in)))
			if got != "x"+tt.want {
				t.Errorf("AppendText(%q) = %q, want %q", tt.in, got[1:], tt.want)
			}
			if again := string((*Redactor)(nil).AppendText(nil, []byte(tt.want))); again != tt.want {
				t.Errorf("not idempotent: %q → %q", tt.want, again)
			}
		})
	}
}

func TestAppendPath(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"issue example", "/users/eve.smith/orders/4111111111111111/reset/ab12CD34ef", "/users/[user]/orders/[card]/reset/[token]"},
		{"email segment", "/users/john@example.co.uk/x", "/users/[user]/x"},
		{"email elsewhere", "/invite/john@example.co.uk/x", "/invite/[email]/x"},
		{"uuid", "/o/550e8400-e29b-41d4-a716-446655440000/items", "/o/[token]/items"},
		{"uuid with extension", "/o/550E8400-E29B-41D4-A716-446655440000.json", "/o/[token].json"},
		{"token after slug text", "/confirm/invoice-a8F3kL9mQ2xZ7pW4bNc1", "/confirm/[token]"},
		{"phone with escaped spaces", "/call/+49%2030%201234567", "/call/[phone]"},
		{"card with escaped spaces", "/pay/4111%201111%201111%201111", "/pay/[card]"},
		{"short video id", "/watch/dQw4w9WgXcQ", "/watch/[token]"},
		{"member id", "/members/1234/edit", "/members/[user]/edit"},
		{"drupal user", "/user/1", "/user/[user]"},
		{"people handle", "/people/eve-smith", "/people/[user]"},
		{"placeholder kept", "/users/[user]/orders", "/users/[user]/orders"},

		{"slug kept", "/blog/2024/10/my-post-title", "/blog/2024/10/my-post-title"},
		{"date kept", "/archive/2024-10-05", "/archive/2024-10-05"},
		{"version kept", "/docs/v1.2.3/api", "/docs/v1.2.3/api"},
		{"small id kept", "/products/12345", "/products/12345"},
		{"sku kept", "/p/SKU-12345-XL", "/p/SKU-12345-XL"},
		{"asin kept", "/dp/B08N5WRWNW", "/dp/B08N5WRWNW"},
		{"product kept", "/shop/iPhone15", "/shop/iPhone15"},
		{"html5 kept", "/demos/HTML5Canvas", "/demos/HTML5Canvas"},
		{"words with numbers kept", "/downloads/Win10Pro64bit", "/downloads/Win10Pro64bit"},
		{"report kept", "/reports/FY24Q3Results", "/reports/FY24Q3Results"},
		{"short hex kept", "/commit/9f86d08", "/commit/9f86d08"},
		{"colour kept", "/swatch/ff00aa", "/swatch/ff00aa"},
		{"devise sign in kept", "/users/sign_in", "/users/sign_in"},
		{"new user kept", "/users/new", "/users/new"},
		{"drupal login kept", "/user/login", "/user/login"},
		{"collection kept", "/users", "/users"},
		{"collection with slash kept", "/users/", "/users/"},
		{"own account kept", "/account/orders", "/account/orders"},
		{"allauth kept", "/accounts/google/login/callback", "/accounts/google/login/callback"},
		{"devise cancel kept", "/users/cancel", "/users/cancel"},
		{"author page kept", "/authors/jane-doe", "/authors/jane-doe"},
		{"handle kept", "/@alice", "/@alice"},
		{"gmail account index kept", "/mail/u/0/", "/mail/u/0/"},
		{"root", "/", "/"},
		{"double slash", "//a//b", "//a//b"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := string((*Redactor)(nil).AppendPath(nil, []byte(tt.in)))
			if got != tt.want {
				t.Errorf("AppendPath(%q) = %q, want %q", tt.in, got, tt.want)
			}
			if again := string((*Redactor)(nil).AppendPath(nil, []byte(got))); again != got {
				t.Errorf("not idempotent: %q → %q", got, again)
			}
		})
	}
}

// TestRandomIDsAreFound measures the token rules on random ids of the
// common alphabets and lengths: the heuristics must find most of them.
// The rates are for a fixed seed; a change of rule that lowers one below
// its floor must say why.
func TestRandomIDsAreFound(t *testing.T) {
	alphabets := []struct{ name, chars string }{
		{"base62", "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"},
		{"base36", "abcdefghijklmnopqrstuvwxyz0123456789"},
		{"base32", "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"},
		{"hex", "0123456789abcdef"},
	}
	tests := []struct {
		alphabet string
		n        int
		path     bool    // as a whole path segment
		min      float64 // share found
	}{
		{"base62", 10, true, 0.55},
		{"base62", 12, true, 0.65},
		{"base62", 16, false, 0.75},
		{"base62", 20, false, 0.85},
		{"base62", 32, false, 0.90},
		{"base36", 16, false, 0.75},
		{"base36", 24, false, 0.90},
		{"base32", 16, false, 0.65},
		{"base32", 32, false, 0.85},
		{"hex", 16, false, 0.99},
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, tt := range tests {
		var chars string
		for _, a := range alphabets {
			if a.name == tt.alphabet {
				chars = a.chars
			}
		}
		const runs = 2000
		found := 0
		b := make([]byte, tt.n)
		for range runs {
			for i := range b {
				b[i] = chars[rng.IntN(len(chars))]
			}
			var out []byte
			if tt.path {
				out = (*Redactor)(nil).AppendPath(nil, b)
			} else {
				out = (*Redactor)(nil).AppendText(nil, b)
			}
			if string(out) != string(b) {
				found++
			}
		}
		if share := float64(found) / runs; share < tt.min {
			t.Errorf("%s, %d long: %.0f%% found, want at least %.0f%%", tt.alphabet, tt.n, 100*share, 100*tt.min)
		} else {
			t.Logf("%s, %d long: %.0f%% found", tt.alphabet, tt.n, 100*share)
		}
	}
}

func TestLooksRandom(t *testing.T) {
	for s, want := range map[string]bool{
		"9f86d081884c7d659a2feaa0c55ad015":     true,
		"Xq3ZbT9kLm2PwR7vN4sY8dFh":             true,
		"k3j5h2g8f7d6s5a4q3w2e1r":              true,
		"dBjftJeZ4CVPmB92K27uhbUJU1p1r_wW1gFW": true,
		"how-to-install-go-1-22-on-ubuntu":     false,
		"the2024AnnualReportFinal":             false,
		"internationalization-guide":           false,
		"12345678901234567890":                 false,
		"short1a":                              false,
		"product_v2_release_notes_2024":        false,
		"SamsungGalaxyS24Ultra512GB":           false,
		"Pixel8ProObsidian128GB":               false,
		"ThinkPadX1Carbon2024":                 false,
	} {
		if got := looksRandom([]byte(s)); got != want {
			t.Errorf("looksRandom(%q) = %v, want %v", s, got, want)
		}
	}
}

func TestCounters(t *testing.T) {
	set := metrics.NewSet()
	r := New(set)
	New(set) // a second Redactor on the same set shares the counters
	r.AppendPath(nil, []byte("/users/eve/x/4111111111111111/ab12CD34ef"))
	r.AppendText(nil, []byte("a@b.co c@d.io +4915112345678 DE89370400440532013000"))
	want := map[Rule]float64{User: 1, Card: 1, Token: 1, Email: 2, Phone: 1, IBAN: 1, JWT: 0}
	for _, rule := range Rules() {
		if got := apptest.SetMetric(t, set, rule.MetricName()); got != want[rule] {
			t.Errorf("%s = %v, want %v", rule.MetricName(), got, want[rule])
		}
	}
	var b strings.Builder
	set.WritePrometheus(&b)
	if strings.Contains(b.String(), "eve") || strings.Contains(b.String(), "4111") {
		t.Errorf("metrics carry a redacted value:\n%s", b.String())
	}
}

func TestText(t *testing.T) {
	if got := (*Redactor)(nil).Text("spring-sale"); got != "spring-sale" {
		t.Errorf("Text kept = %q", got)
	}
	if got := (*Redactor)(nil).Text("promo for eve@example.com"); got != "promo for [email]" {
		t.Errorf("Text redacted = %q", got)
	}
}
