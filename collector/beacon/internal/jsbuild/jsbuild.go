// Package jsbuild minifies the beacon script with esbuild. It is used by
// `go generate` (../gen) and by the test that checks the committed build;
// the glimpse binary does not link it.
package jsbuild

import (
	"errors"
	"fmt"

	"github.com/evanw/esbuild/pkg/api"
)

// Minify returns src minified. The target is ES2017: every browser with
// sendBeacon and IntersectionObserver parses it, and esbuild introduces
// no newer syntax (such as ?? or ?.) than the source has.
func Minify(name string, src []byte) ([]byte, error) {
	res := api.Transform(string(src), api.TransformOptions{
		Sourcefile:        name,
		Loader:            api.LoaderJS,
		Target:            api.ES2017,
		MinifyWhitespace:  true,
		MinifyIdentifiers: true,
		MinifySyntax:      true,
		LegalComments:     api.LegalCommentsNone,
		Charset:           api.CharsetASCII,
		LogLevel:          api.LogLevelSilent,
	})
	if len(res.Errors) > 0 {
		var errs []error
		for _, m := range res.Errors {
			at := name
			if m.Location != nil {
				at = fmt.Sprintf("%s:%d:%d", m.Location.File, m.Location.Line, m.Location.Column)
			}
			errs = append(errs, fmt.Errorf("%s: %s", at, m.Text))
		}
		return nil, errors.Join(errs...)
	}
	return res.Code, nil
}
