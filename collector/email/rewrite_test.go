package email

import (
	"bytes"
	"os"
	"strings"
	"testing"
	"time"

	nethtml "golang.org/x/net/html"

	"github.com/glimpse-analytics/glimpse/internal/config"
)

func testMinter(t *testing.T) *Minter {
	t.Helper()
	sites, err := config.Parse("t.yaml", []byte(testSites))
	if err != nil {
		t.Fatal(err)
	}
	return &Minter{Signer: mustSigner(t, key1), Sites: sites, Base: "https://t.example", Now: func() time.Time { return t0 }}
}

// hrefs lists every href in doc (also inside conditional comments), in order.
func hrefs(t *testing.T, doc []byte) []string {
	var out []string
	z := nethtml.NewTokenizer(bytes.NewReader(doc))
	for {
		switch z.Next() {
		case nethtml.ErrorToken:
			return out
		case nethtml.StartTagToken, nethtml.SelfClosingTagToken:
			for {
				k, v, more := z.TagAttr()
				if string(k) == "href" {
					out = append(out, string(v))
				}
				if !more {
					break
				}
			}
		case nethtml.CommentToken:
			if c := string(z.Raw()); strings.HasPrefix(c, "<!--[if") {
				out = append(out, hrefs(t, []byte(c[strings.IndexByte(c, '>')+1:]))...)
			}
		}
	}
}

func TestRewrite(t *testing.T) {
	m := testMinter(t)
	tests := []struct {
		file      string
		want      []string // destinations of the tracked links, in order
		kept      []string // substrings that must survive byte for byte
		skipped   int
		pixelNext string // what follows the pixel
	}{
		{
			file: "newsletter.html",
			want: []string{
				"https://example.com/?utm_source=newsletter&utm_campaign=june",
				"https://example.com/sale", "https://example.com/sale",
				"http://Example.com/blog", "https://example.com/map",
			},
			kept: []string{
				`<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Transitional//EN"`,
				`<!--[if gte mso 9]><xml><o:OfficeDocumentSettings><o:AllowPNG/>`,
				`/* <a href="https://not.a.link/"> */`,
				`<!--[if !mso]><!-- -->`, `<!--<![endif]-->`, "<![endif]-->",
				`<a href="mailto:help@example.com">`, `<a href="tel:+4930123456">`, `<a href="#top">`, `<a href="/relative/path">`,
				`<a href="https://example.com/account?id={{subscriber.id}}">`, `<a href="https://example.com/prefs?e=*|EMAIL|*">`,
				`<a href="https://t.example/e/c/already-tracked">`, `<a href="javascript:alert(1)">`, `<a name="anchor-only">`,
				`<a href="{{unsubscribe}}">`, `<a href="*|UNSUB|*">`, `<a href="%%unsub_center_url%%">`, `<a href="[[UNSUB_LINK_EN]]">`,
				`Musterstraße 1, 10115 Berlin &copy; 2025`, `our June sale starts now &nbsp;&zwnj;`,
				`<img src="https://example.com/logo.png" alt="Example" width="120">`,
			},
			skipped:   2,
			pixelNext: "</body>",
		},
		{
			file:      "no_body.html",
			want:      []string{"https://example.com/x?a=1&b=2", "https://example.com/outlook"},
			kept:      []string{"<!--[if mso]><table><tr><td>", "</td></tr></table><![endif]-->"},
			pixelNext: "",
		},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			in, err := os.ReadFile("testdata/" + tt.file)
			if err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			res, err := m.Rewrite(&out, bytes.NewReader(in), Mint{Site: "example.com", Campaign: "june"})
			if err != nil {
				t.Fatal(err)
			}
			if res.Links != len(tt.want) || len(res.Skipped) != tt.skipped || !res.Pixel {
				t.Errorf("result %+v", res)
			}
			var got []string
			for _, h := range hrefs(t, out.Bytes()) {
				tok, ok := strings.CutPrefix(h, "https://t.example/e/c/")
				if !ok || tok == "already-tracked" {
					continue
				}
				d, err := m.Signer.Decode([]byte(tok), t0)
				if err != nil {
					t.Fatalf("tracked link %q: %v", h, err)
				}
				if d.Site != "example.com" || d.Campaign != "june" {
					t.Errorf("token %+v", d)
				}
				got = append(got, d.URL)
			}
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("tracked destinations:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
			for _, k := range tt.kept {
				if !strings.Contains(out.String(), k) {
					t.Errorf("output lost %q", k)
				}
			}
			if n := strings.Count(out.String(), "/e/o/"); n != 1 {
				t.Fatalf("%d pixels", n)
			}
			i := strings.Index(out.String(), "/e/o/")
			rest := out.String()[i:]
			rest = rest[strings.IndexByte(rest, '>')+1:]
			if !strings.HasPrefix(rest, tt.pixelNext) || (tt.pixelNext == "" && strings.TrimSpace(rest) != "") {
				t.Errorf("pixel followed by %.30q, want %q", rest, tt.pixelNext)
			}
		})
	}
}

func TestRewriteIdempotentOnPlainText(t *testing.T) {
	m := testMinter(t)
	in := "Hello <b>world</b> &amp; friends\n"
	var out bytes.Buffer
	if _, err := m.Rewrite(&out, strings.NewReader(in), Mint{Site: "example.com", Campaign: "c"}); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out.String(), in) {
		t.Errorf("changed text: %q", out.String())
	}
	if _, err := m.Rewrite(&out, strings.NewReader(in), Mint{Site: "nope.example", Campaign: "c"}); err == nil {
		t.Error("unknown site accepted")
	}
}

func TestParseTTL(t *testing.T) {
	for in, want := range map[string]time.Duration{"90d": 90 * 24 * time.Hour, "36h": 36 * time.Hour, "never": -1, "0": -1, "": DefaultTTL} {
		if got, err := ParseTTL(in); err != nil || got != want {
			t.Errorf("ParseTTL(%q) = %v, %v", in, got, err)
		}
	}
	for _, in := range []string{"d", "-1d", "1ms", "forever", "99999999d"} {
		if _, err := ParseTTL(in); err == nil {
			t.Errorf("ParseTTL(%q) accepted", in)
		}
	}
}
