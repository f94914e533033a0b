package main

import (
	"bytes"
	"embed"
	"html/template"

	"github.com/valyala/fasthttp"
)

// The demo site `make run` serves beside the collector, so a newcomer sees
// the beacon send page views, clicks, downloads, impressions and engagement.
//
//go:embed demo
var demoFiles embed.FS

type demoPage struct{ Title, Text, Domain string }

// demoRoutes renders the demo pages for domain once and returns their
// handlers by path.
func demoRoutes(domain string) (map[string]fasthttp.RequestHandler, error) {
	tmpl, err := template.ParseFS(demoFiles, "demo/page.html")
	if err != nil {
		return nil, err
	}
	pages := map[string]demoPage{
		"/demo/":        {"Welcome", "This is the Glimpse demo site.", domain},
		"/demo/pricing": {"Pricing", "Three plans, all of them imaginary.", domain},
		"/demo/blog":    {"Blog", "Nothing written here yet.", domain},
	}
	routes := map[string]fasthttp.RequestHandler{}
	for path, p := range pages {
		var b bytes.Buffer
		if err := tmpl.Execute(&b, p); err != nil {
			return nil, err
		}
		body := b.Bytes()
		routes[path] = func(ctx *fasthttp.RequestCtx) {
			ctx.SetContentType("text/html; charset=utf-8")
			ctx.SetBody(body)
		}
	}
	js, err := demoFiles.ReadFile("demo/demo.js")
	if err != nil {
		return nil, err
	}
	routes["/demo/demo.js"] = func(ctx *fasthttp.RequestCtx) {
		ctx.SetContentType("text/javascript; charset=utf-8")
		ctx.SetBody(js)
	}
	routes["/demo/files/brochure.pdf"] = func(ctx *fasthttp.RequestCtx) {
		ctx.SetContentType("application/pdf")
		ctx.SetBodyString("%PDF-1.4\n% a demo download\n")
	}
	return routes, nil
}
