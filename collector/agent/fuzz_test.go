package agent

import "testing"

// browserVocabulary lists every Browser value Parse may return.
func browserVocabulary() map[string]bool {
	v := map[string]bool{"": true, browserOther: true, browserChrome: true, browserIE: true, browserOpera: true,
		browserSafari: true, browserAndroid: true, browserWebView: true}
	for _, t := range browserTokens {
		v[t.name] = true
	}
	for _, b := range brandNames {
		v[b.name] = true
	}
	return v
}

func FuzzUAParse(f *testing.F) {
	for _, ua := range append(browserUAs, "", "curl/8.5.0", "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)") {
		f.Add([]byte(ua), []byte(`"Chromium";v="124", "Google Chrome";v="124", "Not-A.Brand";v="99"`), []byte("?0"), []byte(`"Windows"`), []byte(`"15.0.0"`))
		f.Add([]byte(ua), []byte(nil), []byte(nil), []byte(nil), []byte(nil))
	}
	browsers := browserVocabulary()
	oses := map[string]bool{"": true, osWindows: true, osWindowsPhone: true, osMacOS: true, osIOS: true, osAndroid: true,
		osLinux: true, osChromeOS: true, osHarmony: true, osFreeBSD: true, osOpenBSD: true, osKaiOS: true, osTizen: true, osFuchsia: true}
	devices := map[string]bool{"": true, DeviceDesktop: true, DeviceMobile: true, DeviceTablet: true}
	reasons := map[string]bool{BotReasonEmptyUA: true, BotReasonHeadless: true, BotReasonLibrary: true, BotReasonCrawlerList: true}
	isVersion := func(s string) bool {
		for i := 0; i < len(s); i++ {
			if !isDigit(s[i]) && s[i] != '.' {
				return s == "Vista" || s == "XP"
			}
		}
		return len(s) <= 32
	}
	p := NewParser(1024)
	f.Fuzz(func(t *testing.T, ua, chUA, chMobile, chPlatform, chPlatformVersion []byte) {
		hints := ClientHints{UA: chUA, Mobile: chMobile, Platform: chPlatform, PlatformVersion: chPlatformVersion}
		got := p.Parse(ua, hints)
		if !browsers[got.Browser] || !oses[got.OS] || !devices[got.Device] {
			t.Errorf("value outside the vocabulary: %+v", *got)
		}
		if !isVersion(got.BrowserVersion) || !isVersion(got.OSVersion) {
			t.Errorf("malformed version: %+v", *got)
		}
		if got.Bot != reasons[got.BotReason] {
			t.Errorf("bot %v with reason %q", got.Bot, got.BotReason)
		}
		if len(trimSpace(ua)) == 0 && !got.Bot {
			t.Errorf("empty UA is not a bot")
		}
		if again := p.Parse(ua, hints); *again != *got {
			t.Errorf("second parse differs: %+v vs %+v", *again, *got)
		}
	})
}
