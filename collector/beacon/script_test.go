package beacon

import (
	"bytes"
	"compress/gzip"
	"io"
	"net"
	"os"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"

	"github.com/glimpse-analytics/glimpse/collector/beacon/internal/jsbuild"
)

// maxGzipped is the size budget of the served script, gzipped.
const maxGzipped = 1536

func TestScriptSize(t *testing.T) {
	n := len(Gzip(MinifiedScript()))
	t.Logf("glimpse.min.js: %d bytes, %d gzipped (budget %d)", len(MinifiedScript()), n, maxGzipped)
	if n > maxGzipped {
		t.Fatalf("the gzipped script is %d bytes, over the %d-byte budget", n, maxGzipped)
	}
}

// TestScriptInSync rebuilds the script with esbuild, as `go generate`
// does, and compares it with the committed, embedded build.
func TestScriptInSync(t *testing.T) {
	src, err := os.ReadFile("glimpse.src.js")
	if err != nil {
		t.Fatal(err)
	}
	want, err := jsbuild.Minify("glimpse.src.js", src)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(MinifiedScript(), want) {
		t.Fatal("glimpse.min.js is not the build of glimpse.src.js: run `go generate ./collector/beacon`")
	}
}

// serve runs h on an in-memory listener and returns a client for it.
func serve(t *testing.T, h fasthttp.RequestHandler) *fasthttp.Client {
	t.Helper()
	ln := fasthttputil.NewInmemoryListener()
	s := &fasthttp.Server{Handler: h, NoDefaultContentType: true, NoDefaultDate: true}
	go s.Serve(ln) //nolint:errcheck // ends with the listener
	t.Cleanup(func() { ln.Close() })
	return &fasthttp.Client{Dial: func(string) (net.Conn, error) { return ln.Dial() }}
}

func do(t *testing.T, c *fasthttp.Client, method, uri string, headers ...string) *fasthttp.Response {
	t.Helper()
	req := fasthttp.AcquireRequest()
	defer fasthttp.ReleaseRequest(req)
	req.Header.SetMethod(method)
	req.SetRequestURI("http://collector.test" + uri)
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp := new(fasthttp.Response)
	resp.SkipBody = method == fasthttp.MethodHead
	if err := c.Do(req, resp); err != nil {
		t.Fatal(err)
	}
	return resp
}

func TestScriptHandler(t *testing.T) {
	s := NewScript()
	c := serve(t, s.Handler)
	plain := MinifiedScript()
	tests := []struct {
		name    string
		method  string
		headers []string
		status  int
		gzipped bool
		body    bool
	}{
		{"plain", "GET", nil, 200, false, true},
		{"gzip", "GET", []string{"Accept-Encoding", "gzip, deflate, br"}, 200, true, true},
		{"gzip q", "GET", []string{"Accept-Encoding", "br;q=1.0, gzip;q=0.8"}, 200, true, true},
		{"gzip refused", "GET", []string{"Accept-Encoding", "gzip;q=0, *"}, 200, false, true},
		{"gzip refused q=0.000", "GET", []string{"Accept-Encoding", "gzip; q=0.000"}, 200, false, true},
		{"star", "GET", []string{"Accept-Encoding", "*"}, 200, true, true},
		{"identity only", "GET", []string{"Accept-Encoding", "identity"}, 200, false, true},
		{"head", "HEAD", []string{"Accept-Encoding", "gzip"}, 200, true, false},
		{"not modified", "GET", []string{"If-None-Match", s.plainTag}, 304, false, false},
		{"not modified gzip", "GET", []string{"Accept-Encoding", "gzip", "If-None-Match", `"x", ` + s.gzipTag}, 304, true, false},
		{"not modified weak", "GET", []string{"If-None-Match", "W/" + s.plainTag}, 304, false, false},
		{"not modified star", "GET", []string{"If-None-Match", "*"}, 304, false, false},
		{"other version", "GET", []string{"If-None-Match", `"old"`}, 200, false, true},
		{"post", "POST", nil, 405, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := do(t, c, tt.method, ScriptPath, tt.headers...)
			if resp.StatusCode() != tt.status {
				t.Fatalf("status %d, want %d", resp.StatusCode(), tt.status)
			}
			h := &resp.Header
			if tt.status == 405 {
				if string(h.Peek("Allow")) != "GET, HEAD" {
					t.Fatalf("Allow %q", h.Peek("Allow"))
				}
				return
			}
			wantTag := s.plainTag
			if tt.gzipped {
				wantTag = s.gzipTag
			}
			if got := string(h.Peek("ETag")); got != wantTag {
				t.Errorf("ETag %q, want %q", got, wantTag)
			}
			if got := string(h.Peek("Cache-Control")); got != ScriptMaxAge {
				t.Errorf("Cache-Control %q", got)
			}
			if got := string(h.Peek("Vary")); got != "Accept-Encoding" {
				t.Errorf("Vary %q", got)
			}
			if tt.status == 304 {
				if len(resp.Body()) != 0 {
					t.Errorf("304 with a body")
				}
				return
			}
			if got := string(h.ContentType()); got != "text/javascript; charset=utf-8" {
				t.Errorf("Content-Type %q", got)
			}
			if got := string(h.Peek("Content-Encoding")); (got == "gzip") != tt.gzipped {
				t.Errorf("Content-Encoding %q, gzipped %v", got, tt.gzipped)
			}
			wantLen := len(plain)
			if tt.gzipped {
				wantLen = len(s.gz)
			}
			if h.ContentLength() != wantLen {
				t.Errorf("Content-Length %d, want %d", h.ContentLength(), wantLen)
			}
			if !tt.body {
				if len(resp.Body()) != 0 {
					t.Errorf("HEAD answered with a body")
				}
				return
			}
			body := resp.Body()
			if tt.gzipped {
				zr, err := gzip.NewReader(bytes.NewReader(body))
				if err != nil {
					t.Fatal(err)
				}
				if body, err = io.ReadAll(zr); err != nil {
					t.Fatal(err)
				}
			}
			if !bytes.Equal(body, plain) {
				t.Errorf("body is not the minified script")
			}
		})
	}
}

func TestScriptPrecompressedOnce(t *testing.T) {
	s := NewScript()
	c := serve(t, s.Handler)
	a := do(t, c, "GET", ScriptPath, "Accept-Encoding", "gzip")
	b := do(t, c, "GET", ScriptPath, "Accept-Encoding", "gzip")
	if !bytes.Equal(a.Body(), s.gz) || !bytes.Equal(b.Body(), s.gz) {
		t.Fatal("the gzip answer is not the start-up compression")
	}
	// In process, the answer's body is the very slice made at start-up.
	var ctx fasthttp.RequestCtx
	ctx.Request.Header.Set("Accept-Encoding", "gzip")
	s.Handler(&ctx)
	if body := ctx.Response.Body(); len(body) == 0 || &body[0] != &s.gz[0] {
		t.Fatal("the gzip body was made for the request")
	}
}

func TestScriptStoresNothing(t *testing.T) {
	// No cookie, no storage writes, no other host: the built script may
	// only read localStorage.glimpse_ignore.
	min := string(MinifiedScript())
	for _, banned := range []string{"cookie", "setItem", "sessionStorage", "indexedDB", "caches", "http:", "https:", "//"} {
		if strings.Contains(min, banned) {
			t.Errorf("glimpse.min.js contains %q", banned)
		}
	}
	if n := strings.Count(min, "localStorage"); n != 1 || !strings.Contains(min, `localStorage.glimpse_ignore==="true"`) {
		t.Errorf("glimpse.min.js uses localStorage other than to read glimpse_ignore")
	}
}
