package collector

import (
	"bufio"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
)

// TestHeadersRead checks the one-pass header lookup against a request as
// a browser or proxy sends it: names in any case, as received and
// normalised by fasthttp, and the first of repeated fields, as Peek gives.
func TestHeadersRead(t *testing.T) {
	raw := "POST /api/event HTTP/1.1\r\n" +
		"Host: collector.example\r\n" +
		"sec-ch-ua: \"Chromium\";v=\"124\"\r\n" +
		"SEC-CH-UA-MOBILE: ?1\r\n" +
		"Sec-CH-UA-Platform: \"Android\"\r\n" +
		"Sec-CH-UA-Platform-Version: \"14.0.0\"\r\n" +
		"X-Forwarded-For: 203.0.113.7, 10.0.0.1\r\n" +
		"x-forwarded-for: 198.51.100.9\r\n" +
		"Sec-GPC: 1\r\n" +
		"DNT: 1\r\n" +
		"Content-Type: text/plain\r\n" +
		"Content-Length: 2\r\n\r\n{}"
	var req fasthttp.Request
	if err := req.Read(bufio.NewReader(strings.NewReader(raw))); err != nil {
		t.Fatal(err)
	}
	var h headers
	h.read(&req.Header)
	for name, got := range map[string][]byte{
		"Sec-CH-UA": h.chUA, "Sec-CH-UA-Mobile": h.chMobile, "Sec-CH-UA-Platform": h.chPlatform,
		"Sec-CH-UA-Platform-Version": h.chPlatformVersion, "Sec-GPC": h.gpc, "DNT": h.dnt,
	} {
		if want := req.Header.Peek(name); string(got) != string(want) || len(want) == 0 {
			t.Errorf("%s = %q, Peek gives %q", name, got, want)
		}
	}
	req.Header.Del("DNT")
	h.read(&req.Header)
	if h.dnt != nil || h.gpc == nil {
		t.Errorf("after deleting DNT: dnt %q, gpc %q", h.dnt, h.gpc)
	}
}
