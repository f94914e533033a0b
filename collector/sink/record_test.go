package sink

import (
	"reflect"
	"testing"
	"time"

	"github.com/glimpse-analytics/glimpse/internal/model"
)

func recordEvent(i int) *model.Event {
	e := new(model.Event)
	e.NewID()
	e.SiteID = "example.com"
	e.TS = time.Date(2026, 11, 28, 12, 0, i%60, 0, time.UTC)
	e.Type = model.TypePageview
	e.Name = append(e.Name, "pageview"...)
	e.VisitorID, e.SessionID = uint64(i)*7919, uint64(i)*104729
	e.Hostname = append(e.Hostname, "example.com"...)
	e.Pathname = append(e.Pathname, "/blog/post"...)
	e.Referrer = append(e.Referrer, "www.google.com/"...)
	e.ReferrerSource, e.Channel = "Google", "search"
	e.UTMCampaign = append(e.UTMCampaign, "nov"...)
	e.CountryCode, e.Region = "DE", []string{"DE-BE", "DE-BY", ""}[i%3]
	e.IPPrefix = append(e.IPPrefix, "203.0.113.0/24"...)
	e.Browser, e.BrowserVersion = []string{"Firefox", "Chrome"}[i%2], "125"
	e.OS, e.Device, e.Screen = "Linux", "desktop", "laptop"
	e.Downlink, e.RTT, e.EngagementMS = 9.5, 50, uint32(i)
	if i%4 == 0 {
		e.AddProp([]byte("plan"), []byte("pro"))
		e.RevenueMicros = 12_500_000
		e.RevenueCurrency = append(e.RevenueCurrency, "EUR"...)
	}
	return e
}

// TestRecordRoundTrip encodes varied events and decodes them with one
// interner, as the spool reader does: each comes back equal, whatever the
// previous record held in the same string fields.
func TestRecordRoundTrip(t *testing.T) {
	var in interner
	var buf []byte
	for i := range 50 {
		want := recordEvent(i)
		buf = appendRecord(buf[:0], want)
		got := new(model.Event)
		if err := decodeRecord(buf, got, &in); err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
		if !reflect.DeepEqual(norm(got), norm(want)) {
			t.Fatalf("event %d:\n got %+v\nwant %+v", i, got, want)
		}
	}
}

// norm makes empty and nil byte slices compare equal.
func norm(e *model.Event) model.Event {
	c := *e
	v := reflect.ValueOf(&c).Elem()
	for i := range v.NumField() {
		if f := v.Field(i); f.Kind() == reflect.Slice && f.Len() == 0 {
			f.Set(reflect.Zero(f.Type()))
		}
	}
	return c
}

// FuzzDecodeRecord feeds arbitrary payloads to the spool record decoder:
// it must never panic, and what it accepts must encode back to the same
// payload.
func FuzzDecodeRecord(f *testing.F) {
	for i := range 4 {
		f.Add(appendRecord(nil, recordEvent(i)))
	}
	f.Add([]byte{recordV1})
	f.Add([]byte{})
	var in interner
	f.Fuzz(func(t *testing.T, p []byte) {
		e := new(model.Event)
		if err := decodeRecord(p, e, &in); err != nil {
			return
		}
		again := appendRecord(nil, e)
		e2 := new(model.Event)
		if err := decodeRecord(again, e2, &in); err != nil {
			t.Fatalf("re-encoded record does not decode: %v", err)
		}
		if !reflect.DeepEqual(norm(e), norm(e2)) {
			t.Fatalf("decode(encode(decode(p))) differs:\n%+v\n%+v", e, e2)
		}
	})
}
