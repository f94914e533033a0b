package agent

import (
	"fmt"
	"strings"
	"sync"
	"testing"
)

// Real User-Agent strings of browsers people use. TestBotListHygiene checks
// that no bot pattern or headless marker matches any of them.
const (
	uaChromeWin      = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"
	uaSafariIOS      = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4.1 Mobile/15E148 Safari/604.1"
	uaFirefoxLinux   = "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0"
	uaFirefoxUbuntu  = "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:109.0) Gecko/20100101 Firefox/115.0"
	uaSamsung        = "Mozilla/5.0 (Linux; Android 13; SAMSUNG SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/23.0 Chrome/115.0.0.0 Mobile Safari/537.36"
	uaEdgeWin        = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36 Edg/124.0.2478.80"
	uaIPad           = "Mozilla/5.0 (iPad; CPU OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1"
	uaAndroidTablet  = "Mozilla/5.0 (Linux; Android 13; SM-X700) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"
	uaChromeAndroid  = "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Mobile Safari/537.36"
	uaSafariMac      = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4.1 Safari/605.1.15"
	uaFirefoxAndroid = "Mozilla/5.0 (Android 14; Mobile; rv:125.0) Gecko/125.0 Firefox/125.0"
	uaFirefoxTablet  = "Mozilla/5.0 (Android 14; Tablet; rv:125.0) Gecko/125.0 Firefox/125.0"
	uaOperaWin       = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/123.0.0.0 Safari/537.36 OPR/109.0.0.0"
	uaChromeIOS      = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/124.0.6367.88 Mobile/15E148 Safari/604.1"
	uaChromeOS       = "Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"
	uaIE11           = "Mozilla/5.0 (Windows NT 6.1; WOW64; Trident/7.0; rv:11.0) like Gecko"
	uaWebView        = "Mozilla/5.0 (Linux; Android 13; Pixel 7 Build/TQ3A.230805.001; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/116.0.0.0 Mobile Safari/537.36"
	uaFacebookIOS    = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_3_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 [FBAN/FBIOS;FBAV/453.0.0.36.106;FBBV/574310435;FBDV/iPhone14,5;FBMD/iPhone;FBSN/iOS;FBSV/17.3.1;FBSS/3;FBID/phone;FBLC/en_US;FBOP/5]"
	uaYandex         = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/122.0.0.0 YaBrowser/24.4.0.0 Safari/537.36"
	uaFirefoxMac     = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14.4; rv:125.0) Gecko/20100101 Firefox/125.0"
	uaEdgeAndroid    = "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Mobile Safari/537.36 EdgA/124.0.2478.64"
	uaCubot          = "Mozilla/5.0 (Linux; Android 11; CUBOT P50) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Mobile Safari/537.36"
	uaInstagram      = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 Instagram 329.0.0.29.120 (iPhone14,5; iOS 17_4; en_US; en; scale=3.00; 1170x2532; 590711196)"
	uaKindle         = "Mozilla/5.0 (Linux; Android 9; KFTRWI) AppleWebKit/537.36 (KHTML, like Gecko) Silk/124.2.1 like Chrome/124.0.6367.118 Safari/537.36"
)

// browserUAs is the real-browser corpus used for false-positive checks.
var browserUAs = []string{
	uaChromeWin, uaSafariIOS, uaFirefoxLinux, uaFirefoxUbuntu, uaSamsung, uaEdgeWin, uaIPad,
	uaAndroidTablet, uaChromeAndroid, uaSafariMac, uaFirefoxAndroid, uaFirefoxTablet, uaOperaWin,
	uaChromeIOS, uaChromeOS, uaIE11, uaWebView, uaFacebookIOS, uaYandex, uaFirefoxMac, uaEdgeAndroid,
	uaCubot, uaInstagram, uaKindle,
}

func TestUAParse(t *testing.T) {
	tests := []struct {
		name string
		ua   string
		want UA
	}{
		{"chrome windows", uaChromeWin, UA{Browser: "Chrome", BrowserVersion: "124", OS: "Windows", OSVersion: "10", Device: "Desktop"}},
		{"safari ios", uaSafariIOS, UA{Browser: "Safari", BrowserVersion: "17.4", OS: "iOS", OSVersion: "17.4", Device: "Mobile"}},
		{"firefox linux", uaFirefoxLinux, UA{Browser: "Firefox", BrowserVersion: "125", OS: "Linux", Device: "Desktop"}},
		{"firefox ubuntu", uaFirefoxUbuntu, UA{Browser: "Firefox", BrowserVersion: "115", OS: "Linux", Device: "Desktop"}},
		{"samsung internet", uaSamsung, UA{Browser: "Samsung Internet", BrowserVersion: "23", OS: "Android", OSVersion: "13", Device: "Mobile"}},
		{"edge windows", uaEdgeWin, UA{Browser: "Edge", BrowserVersion: "124", OS: "Windows", OSVersion: "10", Device: "Desktop"}},
		{"ipad", uaIPad, UA{Browser: "Safari", BrowserVersion: "17.4", OS: "iOS", OSVersion: "17.4", Device: "Tablet"}},
		{"android tablet", uaAndroidTablet, UA{Browser: "Chrome", BrowserVersion: "124", OS: "Android", OSVersion: "13", Device: "Tablet"}},
		{"chrome android", uaChromeAndroid, UA{Browser: "Chrome", BrowserVersion: "124", OS: "Android", OSVersion: "10", Device: "Mobile"}},
		{"safari mac", uaSafariMac, UA{Browser: "Safari", BrowserVersion: "17.4", OS: "macOS", OSVersion: "10.15", Device: "Desktop"}},
		{"firefox mac", uaFirefoxMac, UA{Browser: "Firefox", BrowserVersion: "125", OS: "macOS", OSVersion: "14.4", Device: "Desktop"}},
		{"firefox android", uaFirefoxAndroid, UA{Browser: "Firefox", BrowserVersion: "125", OS: "Android", OSVersion: "14", Device: "Mobile"}},
		{"firefox android tablet", uaFirefoxTablet, UA{Browser: "Firefox", BrowserVersion: "125", OS: "Android", OSVersion: "14", Device: "Tablet"}},
		{"opera", uaOperaWin, UA{Browser: "Opera", BrowserVersion: "109", OS: "Windows", OSVersion: "10", Device: "Desktop"}},
		{"chrome ios", uaChromeIOS, UA{Browser: "Chrome", BrowserVersion: "124", OS: "iOS", OSVersion: "17.4", Device: "Mobile"}},
		{"chromeos", uaChromeOS, UA{Browser: "Chrome", BrowserVersion: "124", OS: "ChromeOS", Device: "Desktop"}},
		{"ie11", uaIE11, UA{Browser: "Internet Explorer", BrowserVersion: "11", OS: "Windows", OSVersion: "7", Device: "Desktop"}},
		{"android webview", uaWebView, UA{Browser: "Android WebView", BrowserVersion: "116", OS: "Android", OSVersion: "13", Device: "Mobile"}},
		{"facebook in-app", uaFacebookIOS, UA{Browser: "Facebook", BrowserVersion: "453", OS: "iOS", OSVersion: "17.3", Device: "Mobile"}},
		{"instagram in-app", uaInstagram, UA{Browser: "Instagram", BrowserVersion: "329", OS: "iOS", OSVersion: "17.4", Device: "Mobile"}},
		{"yandex", uaYandex, UA{Browser: "Yandex Browser", BrowserVersion: "24.4", OS: "Windows", OSVersion: "10", Device: "Desktop"}},
		{"edge android", uaEdgeAndroid, UA{Browser: "Edge", BrowserVersion: "124", OS: "Android", OSVersion: "10", Device: "Mobile"}},
		{"cubot phone is no bot", uaCubot, UA{Browser: "Chrome", BrowserVersion: "124", OS: "Android", OSVersion: "11", Device: "Mobile"}},
		{"kindle silk", uaKindle, UA{Browser: "Silk", BrowserVersion: "124.2", OS: "Android", OSVersion: "9", Device: "Tablet"}},

		{"googlebot", "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
			UA{Browser: "Other", Device: "Desktop", Bot: true, BotReason: "library"}},
		{"googlebot smartphone", "Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.6367.201 Mobile Safari/537.36 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
			UA{Browser: "Chrome", BrowserVersion: "124", OS: "Android", OSVersion: "6", Device: "Mobile", Bot: true, BotReason: "library"}},
		{"bingbot", "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
			UA{Browser: "Other", Device: "Desktop", Bot: true, BotReason: "library"}},
		{"bingbot chrome", "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm) Chrome/116.0.1938.76 Safari/537.36",
			UA{Browser: "Chrome", BrowserVersion: "116", Device: "Desktop", Bot: true, BotReason: "library"}},
		{"gptbot", "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; GPTBot/1.2; +https://openai.com/gptbot)",
			UA{Browser: "Other", Device: "Desktop", Bot: true, BotReason: "crawler-list"}},
		{"curl", "curl/8.5.0", UA{Browser: "Other", Device: "Desktop", Bot: true, BotReason: "crawler-list"}},
		{"wget", "Wget/1.21.4", UA{Browser: "Other", Device: "Desktop", Bot: true, BotReason: "crawler-list"}},
		{"python-requests", "python-requests/2.31.0", UA{Browser: "Other", Device: "Desktop", Bot: true, BotReason: "crawler-list"}},
		{"go-http-client", "Go-http-client/1.1", UA{Browser: "Other", Device: "Desktop", Bot: true, BotReason: "crawler-list"}},
		{"facebookexternalhit", "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
			UA{Browser: "Other", Device: "Desktop", Bot: true, BotReason: "library"}},
		{"uptimerobot", "Mozilla/5.0+(compatible; UptimeRobot/2.0; http://www.uptimerobot.com/)",
			UA{Browser: "Other", Device: "Desktop", Bot: true, BotReason: "crawler-list"}},
		{"ahrefs", "Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)",
			UA{Browser: "Other", Device: "Desktop", Bot: true, BotReason: "library"}},
		{"slackbot", "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
			UA{Browser: "Other", Device: "Desktop", Bot: true, BotReason: "library"}},
		{"headless chrome", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/124.0.6367.60 Safari/537.36",
			UA{Browser: "Chrome", BrowserVersion: "124", OS: "Linux", Device: "Desktop", Bot: true, BotReason: "headless"}},
		{"lighthouse", "Mozilla/5.0 (Linux; Android 11; moto g power (2022)) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/114.0.0.0 Mobile Safari/537.36 Chrome-Lighthouse",
			UA{Browser: "Chrome", BrowserVersion: "114", OS: "Android", OSVersion: "11", Device: "Mobile", Bot: true, BotReason: "headless"}},
		{"phantomjs", "Mozilla/5.0 (Unknown; Linux x86_64) AppleWebKit/538.1 (KHTML, like Gecko) PhantomJS/2.1.1 Safari/538.1",
			UA{Browser: "Other", OS: "Linux", Device: "Desktop", Bot: true, BotReason: "headless"}},
		{"empty", "", UA{Bot: true, BotReason: "empty-ua"}},
		{"blank", "   ", UA{Bot: true, BotReason: "empty-ua"}},
		// A bare "Product/version" is no browser: isbot's list flags it.
		{"unknown thing", "SomeApp/1.0", UA{Browser: "Other", Device: "Desktop", Bot: true, BotReason: "crawler-list"}},
		{"unknown app in a browser UA", "Mozilla/5.0 (X11; Linux x86_64) SomeApp/1.0", UA{Browser: "Other", OS: "Linux", Device: "Desktop"}},
		{"windows tablet pc is desktop", "Mozilla/4.0 (compatible; MSIE 8.0; Windows NT 6.1; Trident/4.0; Tablet PC 2.0)",
			UA{Browser: "Internet Explorer", BrowserVersion: "8", OS: "Windows", OSVersion: "7", Device: "Desktop"}},
	}
	p := NewParser(64)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := p.Parse([]byte(tt.ua), ClientHints{})
			if *got != tt.want {
				t.Errorf("Parse(%q)\n got %+v\nwant %+v", tt.ua, *got, tt.want)
			}
		})
	}
}

func TestUAClientHints(t *testing.T) {
	tests := []struct {
		name  string
		ua    string
		hints ClientHints
		want  UA
	}{
		{"edge brand beats chromium, windows 11",
			uaChromeWin,
			ClientHints{
				UA:              []byte(`"Chromium";v="124", "Microsoft Edge";v="124", "Not-A.Brand";v="99"`),
				Mobile:          []byte("?0"),
				Platform:        []byte(`"Windows"`),
				PlatformVersion: []byte(`"15.0.0"`),
			},
			UA{Browser: "Edge", BrowserVersion: "124", OS: "Windows", OSVersion: "11", Device: "Desktop"}},
		{"google chrome, windows 10 by platform version",
			uaChromeWin,
			ClientHints{
				UA:              []byte(`"Google Chrome";v="124", "Not:A-Brand";v="8", "Chromium";v="124"`),
				Platform:        []byte(`"Windows"`),
				PlatformVersion: []byte(`"10.0.0"`),
			},
			UA{Browser: "Chrome", BrowserVersion: "124", OS: "Windows", OSVersion: "10", Device: "Desktop"}},
		{"opera via hints", uaChromeWin,
			ClientHints{UA: []byte(`"Not A(Brand";v="99", "Opera";v="109", "Chromium";v="123"`)},
			UA{Browser: "Opera", BrowserVersion: "109", OS: "Windows", OSVersion: "10", Device: "Desktop"}},
		{"only chromium", uaChromeWin,
			ClientHints{UA: []byte(`"Chromium";v="124", "Not;A=Brand";v="24"`)},
			UA{Browser: "Chromium", BrowserVersion: "124", OS: "Windows", OSVersion: "10", Device: "Desktop"}},
		{"chromium brand keeps specific UA browser", uaSamsung,
			ClientHints{UA: []byte(`"Chromium";v="115", "Not/A)Brand";v="99"`), Mobile: []byte("?1"), Platform: []byte(`"Android"`)},
			UA{Browser: "Samsung Internet", BrowserVersion: "23", OS: "Android", OSVersion: "13", Device: "Mobile"}},
		{"mobile hint on android", uaChromeAndroid,
			ClientHints{UA: []byte(`"Google Chrome";v="124"`), Mobile: []byte("?1"), Platform: []byte(`"Android"`), PlatformVersion: []byte(`"14.0.0"`)},
			UA{Browser: "Chrome", BrowserVersion: "124", OS: "Android", OSVersion: "14", Device: "Mobile"}},
		{"non-mobile android hint is a tablet", uaAndroidTablet,
			ClientHints{Mobile: []byte("?0"), Platform: []byte(`"Android"`)},
			UA{Browser: "Chrome", BrowserVersion: "124", OS: "Android", OSVersion: "13", Device: "Tablet"}},
		{"platform hint overrides os", uaChromeWin,
			ClientHints{Platform: []byte(`"macOS"`), PlatformVersion: []byte(`"14.4.1"`)},
			UA{Browser: "Chrome", BrowserVersion: "124", OS: "macOS", OSVersion: "14.4", Device: "Desktop"}},
		{"headless brand", uaChromeWin,
			ClientHints{UA: []byte(`"HeadlessChrome";v="124", "Chromium";v="124"`)},
			UA{Browser: "Chrome", BrowserVersion: "124", OS: "Windows", OSVersion: "10", Device: "Desktop", Bot: true, BotReason: "headless"}},
		{"garbage hints are ignored", uaFirefoxLinux,
			ClientHints{UA: []byte(`;;;,"`), Mobile: []byte("maybe"), Platform: []byte(`"Plan 9"`)},
			UA{Browser: "Firefox", BrowserVersion: "125", OS: "Linux", Device: "Desktop"}},
	}
	p := NewParser(64)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := p.Parse([]byte(tt.ua), tt.hints)
			if *got != tt.want {
				t.Errorf("got  %+v\nwant %+v", *got, tt.want)
			}
		})
	}
}

func TestUACache(t *testing.T) {
	p := NewParser(16)
	a := p.Parse([]byte(uaChromeWin), ClientHints{})
	b := p.Parse([]byte(uaChromeWin), ClientHints{})
	if a != b {
		t.Error("second Parse of the same UA did not come from the cache")
	}
	edge := p.Parse([]byte(uaChromeWin), ClientHints{UA: []byte(`"Microsoft Edge";v="124"`)})
	if edge == a || edge.Browser != "Edge" {
		t.Errorf("hints are not part of the cache key: got %+v", *edge)
	}
	if again := p.Parse([]byte(uaChromeWin), ClientHints{}); again.Browser != "Chrome" {
		t.Errorf("entry with hints replaced the plain entry: %+v", *again)
	}
	// The cache is bounded: many distinct UAs evict old entries.
	for i := 0; i < 100; i++ {
		p.Parse([]byte(fmt.Sprintf("%s Extra/%d", uaFirefoxLinux, i)), ClientHints{})
	}
	n := 0
	for _, s := range p.shards {
		n += s.Len()
	}
	if n > 16 {
		t.Errorf("cache holds %d entries, want <= 16", n)
	}
	// The caller's buffer is not retained.
	buf := []byte(uaSafariIOS)
	got := p.Parse(buf, ClientHints{})
	copy(buf, strings.Repeat("x", len(buf)))
	if p.Parse([]byte(uaSafariIOS), ClientHints{}) != got || got.Browser != "Safari" {
		t.Error("cache entry depends on the caller's buffer")
	}
}

// TestUACollision forces two keys into one hash slot and checks that the
// stored key material keeps them apart.
func TestUACollision(t *testing.T) {
	p := NewParser(16)
	chrome := p.Parse([]byte(uaChromeWin), ClientHints{})
	h := p.hash([]byte(uaChromeWin), &ClientHints{})
	shard := p.shards[(h>>32)&p.mask]
	// Plant the Chrome entry under the hash of the Firefox UA.
	e, _ := shard.Get(h)
	hf := p.hash([]byte(uaFirefoxLinux), &ClientHints{})
	p.shards[(hf>>32)&p.mask].Add(hf, e)
	if got := p.Parse([]byte(uaFirefoxLinux), ClientHints{}); got == chrome || got.Browser != "Firefox" {
		t.Errorf("hash collision returned another UA's entry: %+v", *got)
	}
}

func TestUAConcurrent(t *testing.T) {
	p := NewParser(32)
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 500; i++ {
				ua := browserUAs[(g+i)%len(browserUAs)]
				if got := p.Parse([]byte(ua), ClientHints{}); got.Bot {
					t.Errorf("browser UA %q parsed as bot", ua)
					return
				}
			}
		}(g)
	}
	wg.Wait()
}

func TestShortVersion(t *testing.T) {
	for in, want := range map[string]string{
		"124.0.6367.91": "124",
		"17.4.1":        "17.4",
		"17.0":          "17",
		"10_15_7":       "10.15",
		"23.0":          "23",
		"7.2":           "7.2",
		"":              "",
		"abc":           "",
		"125.0b3":       "125",
		"11":            "11",
	} {
		if got := shortVersion(in); got != want {
			t.Errorf("shortVersion(%q) = %q, want %q", in, got, want)
		}
	}
}
