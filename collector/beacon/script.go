// Package beacon serves what a tracked site's visitors load from the
// collector: the beacon script (GET /js/glimpse.js) and the opt-out page
// (GET|POST /optout).
//
// The script's readable source is glimpse.src.js; glimpse.min.js is built
// from it by `go generate` with esbuild and committed, and the binary
// embeds the built file.
package beacon

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"strings"

	"github.com/valyala/fasthttp"
)

//go:generate go run ./internal/gen

//go:embed glimpse.min.js
var assets embed.FS

// ScriptPath is where the collector serves the script.
const ScriptPath = "/js/glimpse.js"

// ScriptMaxAge is how long browsers and CDNs may use the script without
// asking again: a day, because the URL carries no version; after that a
// conditional request costs a 304. A week more may be served stale while
// revalidating.
const ScriptMaxAge = "public, max-age=86400, stale-while-revalidate=604800"

// Script serves the minified beacon script. It is built once, with the
// gzip variant compressed at start-up; requests only pick a variant.
type Script struct {
	plain, gz         []byte
	plainTag, gzipTag string
}

// MinifiedScript returns the embedded minified script.
func MinifiedScript() []byte {
	b, err := assets.ReadFile("glimpse.min.js")
	if err != nil {
		panic("beacon: glimpse.min.js is not embedded: " + err.Error())
	}
	return b
}

// NewScript prepares the script handler.
func NewScript() *Script {
	plain := MinifiedScript()
	sum := sha256.Sum256(plain)
	tag := base64.RawURLEncoding.EncodeToString(sum[:12])
	return &Script{
		plain:    plain,
		gz:       Gzip(plain),
		plainTag: `"` + tag + `"`,
		gzipTag:  `"` + tag + `-gz"`, // a strong tag per representation
	}
}

// Gzip compresses b at the best level. It is how the served gzip variant
// is made, and what the size budget is measured on.
func Gzip(b []byte) []byte {
	var buf bytes.Buffer
	w, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression) // the level is valid
	_, _ = w.Write(b)                                       // a bytes.Buffer does not fail
	_ = w.Close()
	return buf.Bytes()
}

// Routes returns the script's handler by exact path, for the mux.
func (s *Script) Routes() map[string]fasthttp.RequestHandler {
	return map[string]fasthttp.RequestHandler{ScriptPath: s.Handler}
}

// Handler answers GET and HEAD /js/glimpse.js.
func (s *Script) Handler(ctx *fasthttp.RequestCtx) {
	if !ctx.IsGet() && !ctx.IsHead() {
		ctx.Error("use GET", fasthttp.StatusMethodNotAllowed) // resets the headers
		ctx.Response.Header.Set("Allow", "GET, HEAD")
		return
	}
	body, tag := s.plain, s.plainTag
	gz := acceptsGzip(ctx.Request.Header.Peek("Accept-Encoding"))
	if gz {
		body, tag = s.gz, s.gzipTag
	}
	h := &ctx.Response.Header
	h.Set("Cache-Control", ScriptMaxAge)
	h.Set("ETag", tag)
	h.Set("Vary", "Accept-Encoding")
	h.Set("X-Content-Type-Options", "nosniff")
	// Sites with Cross-Origin-Embedder-Policy may load it from another origin.
	h.Set("Cross-Origin-Resource-Policy", "cross-origin")
	if inm := ctx.Request.Header.Peek("If-None-Match"); len(inm) > 0 && s.matches(inm) {
		ctx.SetStatusCode(fasthttp.StatusNotModified)
		return
	}
	h.SetContentType("text/javascript; charset=utf-8")
	if gz {
		h.Set("Content-Encoding", "gzip")
	}
	ctx.Response.SetBodyRaw(body)
}

// matches reports whether an If-None-Match list names either variant of
// the current script (weak comparison, as RFC 9110 asks for this header).
func (s *Script) matches(list []byte) bool {
	for _, t := range strings.Split(string(list), ",") {
		t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
		if t == "*" || t == s.plainTag || t == s.gzipTag {
			return true
		}
	}
	return false
}

// acceptsGzip reports whether an Accept-Encoding value allows gzip: listed
// as gzip, x-gzip or *, without q=0.
func acceptsGzip(ae []byte) bool {
	gzip, star := -1, -1 // -1 unlisted, 0 refused, 1 accepted
	for _, part := range strings.Split(string(ae), ",") {
		name, params, _ := strings.Cut(part, ";")
		ok := 1
		for _, p := range strings.Split(params, ";") {
			k, v, _ := strings.Cut(strings.TrimSpace(p), "=")
			if strings.EqualFold(k, "q") && strings.Trim(strings.TrimSpace(v), "0.") == "" {
				ok = 0 // q=0, q=0.0, q=0.000
			}
		}
		switch strings.ToLower(strings.TrimSpace(name)) {
		case "gzip", "x-gzip":
			gzip = ok
		case "*":
			star = ok
		}
	}
	if gzip >= 0 {
		return gzip == 1
	}
	return star == 1
}
