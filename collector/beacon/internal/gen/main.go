// Command gen builds glimpse.min.js from glimpse.src.js; `go generate` runs
// it in collector/beacon.
package main

import (
	"fmt"
	"os"

	"github.com/glimpse-analytics/glimpse/collector/beacon/internal/jsbuild"
)

func main() {
	const src, dst = "glimpse.src.js", "glimpse.min.js"
	b, err := os.ReadFile(src)
	if err == nil {
		b, err = jsbuild.Minify(src, b)
	}
	if err == nil {
		err = os.WriteFile(dst, b, 0o644)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "gen: %v\n", err)
		os.Exit(1)
	}
}
