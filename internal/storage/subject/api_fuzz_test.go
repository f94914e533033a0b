package subject

import (
	"errors"
	"testing"

	"github.com/valyala/fasthttp"
)

// FuzzParseRequest: whatever the body and its Content-Type, parseRequest
// returns a request with a site, or a 400 that says what is wrong.
func FuzzParseRequest(f *testing.F) {
	for _, seed := range [][2]string{
		{"application/json", `{"site_id":"shop.example","uid":"alice","format":"csv"}`},
		{"application/json; charset=utf-8", `{"uid":"alice"}`},
		{"application/merge-patch+json", `{"site_id":"a",`},
		{"application/x-www-form-urlencoded", "site_id=shop.example&uid=alice"},
		{"application/x-www-form-urlencoded", `{"site_id":"shop.example"}`},
		{"", ""},
	} {
		f.Add(seed[0], seed[1])
	}
	f.Fuzz(func(t *testing.T, contentType, body string) {
		var c fasthttp.RequestCtx
		c.Request.Header.SetMethod(fasthttp.MethodPost)
		c.Request.Header.SetContentType(contentType)
		c.Request.SetBodyString(body)
		r, err := parseRequest(&c)
		var he *httpError
		switch {
		case err == nil && r.Site == "":
			t.Fatalf("no error and no site for %q %q", contentType, body)
		case err != nil && (!errors.As(err, &he) || he.status != fasthttp.StatusBadRequest || he.msg == ""):
			t.Fatalf("error %v for %q %q, want a 400 with a message", err, contentType, body)
		}
	})
}
