// Package modeltest makes events for tests and benchmarks.
package modeltest

import (
	"time"

	"github.com/glimpse-analytics/glimpse/internal/model"
)

// Event returns the i-th of a series of page views that vary as real
// ones do (regions, browsers, some with properties and revenue), with a
// fresh id.
func Event(i int) *model.Event {
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
	e.ReferrerSource, e.Channel = "Google", model.ChannelOrganicSearch
	e.UTMCampaign = append(e.UTMCampaign, "nov"...)
	e.CountryCode, e.Region = "DE", []string{"DE-BE", "DE-BY", ""}[i%3]
	e.IPPrefix = append(e.IPPrefix, "203.0.113.0/24"...)
	e.Browser, e.BrowserVersion = []string{"Firefox", "Chrome"}[i%2], "125"
	e.OS, e.Device, e.Screen = "Linux", model.DeviceDesktop, model.ScreenLaptop
	e.Downlink, e.RTT, e.EngagementMS = 9.5, 50, uint32(i)
	if i%4 == 0 {
		e.AddProp([]byte("plan"), []byte("pro"))
		e.RevenueMicros = 12_500_000
		e.RevenueCurrency = append(e.RevenueCurrency, "EUR"...)
	}
	return e
}
