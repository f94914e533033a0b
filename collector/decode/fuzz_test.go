package decode

import (
	"bytes"
	"math"
	"slices"
	"testing"

	"github.com/valyala/fasthttp"
)

// checkDecoded fails t unless err is one of the package's errors and, on
// success, e holds the invariants that the rest of the pipeline relies on.
func checkDecoded(t *testing.T, e *Event, err error) {
	t.Helper()
	if err != nil {
		de, ok := err.(*Error)
		if !ok || !slices.Contains(Errors(), de) {
			t.Fatalf("error %#v is not one of Errors()", err)
		}
		return
	}
	switch {
	case e.Type == TypeUnknown || e.Type > TypeImpression:
		t.Errorf("type %d", e.Type)
	case len(e.Name) == 0 || len(e.Name) > MaxNameLen:
		t.Errorf("name %q", e.Name)
	case len(e.URL) == 0 || len(e.URL) > MaxURLLen:
		t.Errorf("url %q", e.URL)
	case !hasDomain(e.Domain) || len(e.Domain) > MaxDomainLen:
		t.Errorf("domain %q", e.Domain)
	case len(e.Referrer) > MaxReferrerLen:
		t.Errorf("referrer of %d bytes", len(e.Referrer))
	case len(e.PropKeys) != len(e.PropValues) || len(e.PropKeys) > MaxProps:
		t.Errorf("%d prop keys, %d values", len(e.PropKeys), len(e.PropValues))
	case e.ScrollDepth > 100 || (!e.HasScrollDepth && e.ScrollDepth != 0):
		t.Errorf("scroll depth %v/%d", e.HasScrollDepth, e.ScrollDepth)
	case e.Type == TypeEngagement && !e.HasScrollDepth && e.EngagementMS == 0:
		t.Errorf("empty engagement")
	case e.HasRevenue && (!isCurrency(e.RevenueCurrency) || !(e.RevenueAmount >= 0 && e.RevenueAmount <= MaxRevenueAmount) ||
		math.Round(e.RevenueAmount*1e6) >= math.MaxInt64):
		t.Errorf("revenue %v %q", e.RevenueAmount, e.RevenueCurrency)
	case !e.HasRevenue && (e.RevenueAmount != 0 || len(e.RevenueCurrency) != 0):
		t.Errorf("revenue without HasRevenue")
	case e.Downlink < 0 || math.IsNaN(float64(e.Downlink)) || math.IsInf(float64(e.Downlink), 0):
		t.Errorf("downlink %v", e.Downlink)
	case len(e.UID) > MaxUIDLen || len(e.TargetURL) > MaxTargetLen:
		t.Errorf("uid %d bytes, target %d bytes", len(e.UID), len(e.TargetURL))
	}
	switch string(e.ConnType) {
	case "", "slow-2g", "2g", "3g", "4g":
	default:
		t.Errorf("connection type %q", e.ConnType)
	}
	for i, k := range e.PropKeys {
		v := e.PropValues[i]
		if isBlank(k) || isBlank(v) || len(k) > MaxPropKeyLen || len(v) > MaxPropValueLen {
			t.Errorf("prop %q=%q", k, v)
		}
		for _, k2 := range e.PropKeys[:i] {
			if bytes.Equal(k, k2) {
				t.Errorf("prop key %q repeated", k)
			}
		}
	}
}

func FuzzDecodeJSON(f *testing.F) {
	for _, s := range []string{rich, sparse, badLater, `{}`, `{"n":"pageview","u":"x","d":"y","p":"{\"a\":\"b\"}"}`} {
		f.Add([]byte(s))
	}
	for _, tt := range errorTests {
		if len(tt.body) < 4096 {
			f.Add([]byte(tt.body))
		}
	}
	var other Decoder // shared across inputs to catch state kept between decodes
	var otherEvent Event
	f.Fuzz(func(t *testing.T, body []byte) {
		orig := bytes.Clone(body)
		var d Decoder
		var e Event
		err := d.DecodeJSON(&e, body)
		checkDecoded(t, &e, err)
		want := dump(&e)
		if !bytes.Equal(body, orig) {
			t.Fatalf("DecodeJSON changed its input")
		}

		// The same input into reused decoders and events gives the same
		// result, whatever they decoded before.
		for _, prev := range []string{rich, sparse} {
			_ = d.DecodeJSON(&e, []byte(prev))
			if err2 := d.DecodeJSON(&e, body); err2 != err {
				t.Fatalf("after %.20s: error %v, first time %v", prev, err2, err)
			}
			if got := dump(&e); got != want {
				t.Fatalf("after %.20s: got\n%s\nfirst time\n%s", prev, got, want)
			}
		}
		if err2 := other.DecodeJSON(&otherEvent, body); err2 != err || dump(&otherEvent) != want {
			t.Fatalf("shared decoder: error %v, event\n%s\nwant %v\n%s", err2, dump(&otherEvent), err, want)
		}
	})
}

func FuzzDecodeQuery(f *testing.F) {
	for _, s := range []string{richQ, sparseQ, pageQ("n=x&p=%7B%22a%22%3A1%7D"), "n=%zz&u=%&d=+"} {
		f.Add(s)
	}
	for _, tt := range errorTests {
		if tt.query != "" {
			f.Add(tt.query)
		}
	}
	var prevArgs [2]fasthttp.Args
	prevArgs[0].Parse(richQ)
	prevArgs[1].Parse(sparseQ)
	f.Fuzz(func(t *testing.T, query string) {
		var args fasthttp.Args
		args.Parse(query)
		var d Decoder
		var e Event
		err := d.DecodeQuery(&e, &args)
		checkDecoded(t, &e, err)
		want := dump(&e)
		for i := range prevArgs {
			_ = d.DecodeQuery(&e, &prevArgs[i])
			if err2 := d.DecodeQuery(&e, &args); err2 != err {
				t.Fatalf("after args %d: error %v, first time %v", i, err2, err)
			}
			if got := dump(&e); got != want {
				t.Fatalf("after args %d: got\n%s\nfirst time\n%s", i, got, want)
			}
		}
	})
}
