// Package agent reads a request's User-Agent and client hints into the
// coarse fields Glimpse stores (browser and OS names and major versions,
// device class) and a bot verdict, with parsed answers cached: user
// agents repeat heavily, so a warm parser allocates nothing.
//
// The raw User-Agent is never returned, stored or logged. The crawler
// patterns are generated from maintained lists on npm (bots_gen.go, with
// versions and licences in its header; `make update-lists` refreshes it)
// plus the local overlay bots.local.txt; see bots.go.
package agent

import (
	_ "embed"
	"hash/maphash"
	"math/rand/v2"
	"strings"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/mssola/useragent"

	"github.com/glimpse-analytics/glimpse/internal/model"
)

// Device classes stored in UA.Device (model.Dimensions' visit:device).
const (
	DeviceDesktop = model.DeviceDesktop
	DeviceMobile  = model.DeviceMobile
	DeviceTablet  = model.DeviceTablet
)

// Bot verdict reasons stored in UA.BotReason.
const (
	BotReasonEmptyUA     = "empty-ua"     // no User-Agent at all
	BotReasonHeadless    = "headless"     // headless browser or automation marker
	BotReasonLibrary     = "library"      // github.com/mssola/useragent says bot
	BotReasonCrawlerList = "crawler-list" // matched a generated or local crawler pattern
)

const (
	// DefaultCacheSize is the cache size NewParser uses for size <= 0.
	// UA strings repeat heavily: a few thousand distinct values cover
	// almost all traffic of a busy site.
	DefaultCacheSize = 8192

	// MaxLength bounds the User-Agent bytes that are hashed, cached and
	// parsed; longer headers are cut there. Real browsers send < 512 bytes.
	MaxLength = 1024

	// maxHintLength bounds each client-hint header in the same way.
	maxHintLength = 256

	// uaShards is the number of independently locked LRU shards (a power
	// of two), so that parallel requests rarely contend on one mutex.
	uaShards = 16
	// minShardSize keeps small caches in one shard.
	minShardSize = 256
	// promoteEvery is how many cache hits, on average, share one LRU
	// recency update.
	promoteEvery = 8
)

// UA is a parsed User-Agent. Values returned by Parser.Parse are shared
// between requests through the cache and must not be modified.
type UA struct {
	// Browser is a name from a small stable vocabulary ("Chrome",
	// "Firefox", "Safari", "Edge", "Opera", "Samsung Internet", ...),
	// "Other" for an unrecognised browser, or "" for an empty User-Agent.
	Browser string
	// BrowserVersion is the major version, or major.minor where the minor
	// is not 0 ("124", "17.4").
	BrowserVersion string
	// OS is a name from a small vocabulary ("Windows", "macOS", "iOS",
	// "Android", "Linux", "ChromeOS", ...) or "" when unknown.
	OS string
	// OSVersion is major or major.minor ("10", "11", "17.4", "10.15"), or
	// "" when unknown.
	OSVersion string
	// Device is DeviceDesktop, DeviceMobile or DeviceTablet ("" for an
	// empty User-Agent).
	Device string
	// Bot reports a crawler, automation tool or HTTP library.
	Bot bool
	// BotReason is one of the BotReason* constants when Bot is true.
	BotReason string
}

// ClientHints carries the raw User-Agent client-hint request headers
// (https://wicg.github.io/ua-client-hints/). Empty slices mean the header
// was absent. When present they take precedence over the User-Agent string,
// which Chromium browsers freeze to a reduced form.
type ClientHints struct {
	UA              []byte // Sec-CH-UA, e.g. `"Chromium";v="124", "Google Chrome";v="124", "Not-A.Brand";v="99"`
	Mobile          []byte // Sec-CH-UA-Mobile, `?0` or `?1`
	Platform        []byte // Sec-CH-UA-Platform, e.g. `"Windows"`
	PlatformVersion []byte // Sec-CH-UA-Platform-Version, e.g. `"15.0.0"`
}

func (h *ClientHints) empty() bool {
	return len(h.UA) == 0 && len(h.Mobile) == 0 && len(h.Platform) == 0 && len(h.PlatformVersion) == 0
}

// Parser parses User-Agent strings and client hints into UA values behind
// a bounded LRU cache. It is safe for concurrent use. A cache hit allocates
// nothing.
type Parser struct {
	seed   maphash.Seed
	shards []*lru.Cache[uint64, *uaEntry]
	mask   uint64
	bots   *botSet
}

// uaEntry is one cache entry: the parsed value plus the exact key material,
// compared on every hit so that a 64-bit hash collision can never return
// another User-Agent's verdict.
type uaEntry struct {
	ua                                        UA
	rawUA, chUA, chMobile, chPlat, chPlatVers string
}

func (e *uaEntry) matches(ua []byte, h *ClientHints) bool {
	return string(ua) == e.rawUA && string(h.UA) == e.chUA && string(h.Mobile) == e.chMobile &&
		string(h.Platform) == e.chPlat && string(h.PlatformVersion) == e.chPlatVers
}

// NewParser returns a parser whose cache holds about size parsed
// User-Agents (DefaultCacheSize if size <= 0).
func NewParser(size int) *Parser {
	if size <= 0 {
		size = DefaultCacheSize
	}
	n := 1
	for n < uaShards && size/(n*2) >= minShardSize {
		n *= 2
	}
	p := &Parser{
		seed:   maphash.MakeSeed(),
		shards: make([]*lru.Cache[uint64, *uaEntry], n),
		mask:   uint64(n - 1),
		bots:   defaultBots,
	}
	per := (size + n - 1) / n
	for i := range p.shards {
		c, err := lru.New[uint64, *uaEntry](per)
		if err != nil {
			// lru.New fails only for a non-positive size, excluded above.
			panic("enrich: cannot create UA cache: " + err.Error())
		}
		p.shards[i] = c
	}
	return p
}

// Parse returns the parsed form of the User-Agent ua and the client hints.
// The result is shared and must not be modified. The inputs are not
// retained; on a cache miss they are copied into the cache entry.
func (p *Parser) Parse(ua []byte, hints ClientHints) *UA {
	ua = clip(trimSpace(ua), MaxLength)
	hints.UA = clip(trimSpace(hints.UA), maxHintLength)
	hints.Mobile = clip(trimSpace(hints.Mobile), maxHintLength)
	hints.Platform = clip(trimSpace(hints.Platform), maxHintLength)
	hints.PlatformVersion = clip(trimSpace(hints.PlatformVersion), maxHintLength)

	h := p.hash(ua, &hints)
	shard := p.shards[(h>>32)&p.mask]
	// Peek takes the shard's read lock; refreshing recency needs the
	// write lock, so do it on a random 1/promoteEvery of hits only. A UA
	// seen often is still promoted often and stays cached.
	if e, ok := shard.Peek(h); ok && e.matches(ua, &hints) {
		if rand.Uint32()%promoteEvery == 0 {
			shard.Get(h)
		}
		return &e.ua
	}
	e := &uaEntry{
		rawUA:      string(ua),
		chUA:       string(hints.UA),
		chMobile:   string(hints.Mobile),
		chPlat:     string(hints.Platform),
		chPlatVers: string(hints.PlatformVersion),
	}
	e.ua = parseUA(e.rawUA, e.chUA, e.chMobile, e.chPlat, e.chPlatVers, p.bots)
	shard.Add(h, e)
	return &e.ua
}

func (p *Parser) hash(ua []byte, hints *ClientHints) uint64 {
	var mh maphash.Hash
	mh.SetSeed(p.seed)
	_, _ = mh.Write(ua)
	if !hints.empty() {
		// 0xff never occurs in a valid header value's UTF-8 and separates
		// the parts unambiguously enough; matches() settles the rest.
		for _, part := range [...][]byte{hints.UA, hints.Mobile, hints.Platform, hints.PlatformVersion} {
			_ = mh.WriteByte(0xff)
			_, _ = mh.Write(part)
		}
	}
	return mh.Sum64()
}

func clip(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}

// parseUA does the uncached work. It may allocate.
func parseUA(raw, chUA, chMobile, chPlatform, chPlatformVersion string, bots *botSet) UA {
	if raw == "" && chUA == "" {
		return UA{Bot: true, BotReason: BotReasonEmptyUA}
	}
	var out UA
	lib := useragent.New(raw)
	lower := strings.ToLower(raw)

	out.Browser, out.BrowserVersion = detectBrowser(raw, lib)
	out.OS, out.OSVersion = detectOS(raw)
	out.Device = detectDevice(raw, out.OS, lib)

	// Client hints override the frozen User-Agent string.
	headless := false
	if chUA != "" {
		if name, version, hl := parseBrandList(chUA); name != "" {
			// A bare "Chromium" brand says less than a specific
			// Chromium-based browser recognised in the UA string.
			if name != browserChromium || out.Browser == browserChrome || out.Browser == browserOther || out.Browser == "" {
				out.Browser, out.BrowserVersion = name, version
			}
			headless = hl
		} else if hl {
			headless = true
		}
	}
	if chPlatform != "" {
		if osName := normalizePlatformHint(unquote(chPlatform)); osName != "" {
			if osName != out.OS {
				out.OSVersion = ""
			}
			out.OS = osName
			if chPlatformVersion != "" {
				out.OSVersion = platformVersion(osName, unquote(chPlatformVersion))
			}
		}
	}
	switch chMobile {
	case "?1":
		if out.Device != DeviceTablet {
			out.Device = DeviceMobile
		}
	case "?0":
		if out.OS == osAndroid {
			out.Device = DeviceTablet
		} else {
			out.Device = DeviceDesktop
		}
	}
	if out.Device == "" {
		out.Device = DeviceDesktop
	}

	switch {
	case strings.TrimSpace(raw) == "":
		out.Bot, out.BotReason = true, BotReasonEmptyUA
	case headless || headlessBots.match(lower):
		out.Bot, out.BotReason = true, BotReasonHeadless
	case lib.Bot():
		out.Bot, out.BotReason = true, BotReasonLibrary
	case bots.match(lower):
		out.Bot, out.BotReason = true, BotReasonCrawlerList
	}
	return out
}

// headlessMarkers are lower-case substrings of User-Agents sent by headless
// browsers and browser-automation tools. A real person's browser never
// carries them.
var headlessMarkers = []string{
	"headlesschrome",
	"headless chrome",
	"phantomjs",
	"puppeteer",
	"playwright",
	"selenium",
	"webdriver",
	"chrome-lighthouse",
	"slimerjs",
	"htmlunit",
	"cypress/",
	"jsdom/",
	"zombie.js",
	"nightmare/",
}

// Browser vocabulary.
const (
	browserChrome    = "Chrome"
	browserChromium  = "Chromium"
	browserFirefox   = "Firefox"
	browserSafari    = "Safari"
	browserEdge      = "Edge"
	browserOpera     = "Opera"
	browserSamsung   = "Samsung Internet"
	browserYandex    = "Yandex Browser"
	browserVivaldi   = "Vivaldi"
	browserBrave     = "Brave"
	browserUC        = "UC Browser"
	browserDDG       = "DuckDuckGo"
	browserIE        = "Internet Explorer"
	browserWebView   = "Android WebView"
	browserAndroid   = "Android Browser"
	browserMIUI      = "MIUI Browser"
	browserHuawei    = "Huawei Browser"
	browserSilk      = "Silk"
	browserFacebook  = "Facebook"
	browserInstagram = "Instagram"
	browserGoogleApp = "Google App"
	browserOther     = "Other"
)

// browserTokens maps product tokens ("Name/version") to the vocabulary,
// most specific first: Chromium derivatives also carry "Chrome/" and
// "Safari/", so they must be recognised before those.
var browserTokens = []struct{ token, name string }{
	{"HeadlessChrome/", browserChrome},
	{"SamsungBrowser/", browserSamsung},
	{"EdgA/", browserEdge},
	{"EdgiOS/", browserEdge},
	{"Edg/", browserEdge},
	{"Edge/", browserEdge},
	{"OPR/", browserOpera},
	{"OPT/", browserOpera},
	{"OPiOS/", browserOpera},
	{"OPX/", browserOpera},
	{"YaBrowser/", browserYandex},
	{"Vivaldi/", browserVivaldi},
	{"UCBrowser/", browserUC},
	{"DuckDuckGo/", browserDDG},
	{"Ddg/", browserDDG},
	{"MiuiBrowser/", browserMIUI},
	{"HuaweiBrowser/", browserHuawei},
	{"Silk/", browserSilk},
	{"FBAV/", browserFacebook},
	{"Instagram ", browserInstagram},
	{"GSA/", browserGoogleApp},
	{"FxiOS/", browserFirefox},
	{"Firefox/", browserFirefox},
	{"CriOS/", browserChrome},
	{"Chromium/", browserChromium},
}

// detectBrowser maps the User-Agent string to the browser vocabulary.
func detectBrowser(raw string, lib *useragent.UserAgent) (name, version string) {
	for _, t := range browserTokens {
		if v, ok := productVersion(raw, t.token); ok {
			return t.name, shortVersion(v)
		}
	}
	if v, ok := productVersion(raw, "Chrome/"); ok {
		if strings.Contains(raw, "; wv)") {
			return browserWebView, shortVersion(v)
		}
		return browserChrome, shortVersion(v)
	}
	if strings.Contains(raw, "Trident/") || strings.Contains(raw, "MSIE ") {
		_, v := lib.Browser()
		return browserIE, shortVersion(v)
	}
	if strings.HasPrefix(raw, "Opera/") {
		v, _ := productVersion(raw, "Version/")
		return browserOpera, shortVersion(v)
	}
	if strings.Contains(raw, "AppleWebKit/") {
		v, hasVersion := productVersion(raw, "Version/")
		switch {
		case strings.Contains(raw, "Android"):
			return browserAndroid, shortVersion(v)
		case hasVersion && strings.Contains(raw, "Safari/"):
			return browserSafari, shortVersion(v)
		case strings.Contains(raw, "iPhone") || strings.Contains(raw, "iPad") || strings.Contains(raw, "Macintosh"):
			// WebKit views inside apps: no version of their own.
			return browserSafari, ""
		}
	}
	if raw == "" {
		return "", ""
	}
	return browserOther, ""
}

// productVersion finds the product token (e.g. "Chrome/") at a token
// boundary in raw and returns the version that follows it.
func productVersion(raw, token string) (string, bool) {
	from := 0
	for {
		i := strings.Index(raw[from:], token)
		if i < 0 {
			return "", false
		}
		i += from
		if i == 0 || strings.IndexByte(" ;([,", raw[i-1]) >= 0 {
			v := raw[i+len(token):]
			end := 0
			for end < len(v) && (isAlnum(v[end]) || v[end] == '.' || v[end] == '_') {
				end++
			}
			return v[:end], true
		}
		from = i + len(token)
	}
}

// shortVersion reduces a dotted (or underscored) version to major or
// major.minor, dropping a zero minor: "124.0.6367.91" → "124",
// "17.4.1" → "17.4", "10_15_7" → "10.15".
func shortVersion(v string) string {
	end := 0
	for end < len(v) && isDigit(v[end]) {
		end++
	}
	if end == 0 {
		return ""
	}
	major := v[:end]
	if end+1 >= len(v) || (v[end] != '.' && v[end] != '_') {
		return major
	}
	m := end + 1
	for m < len(v) && isDigit(v[m]) {
		m++
	}
	minor := v[end+1 : m]
	if minor == "" || strings.Trim(minor, "0") == "" {
		return major
	}
	if v[end] == '.' {
		return v[:m]
	}
	return major + "." + minor
}

// OS vocabulary.
const (
	osWindows      = "Windows"
	osWindowsPhone = "Windows Phone"
	osMacOS        = "macOS"
	osIOS          = "iOS"
	osAndroid      = "Android"
	osLinux        = "Linux"
	osChromeOS     = "ChromeOS"
	osHarmony      = "HarmonyOS"
	osFreeBSD      = "FreeBSD"
	osOpenBSD      = "OpenBSD"
	osKaiOS        = "KaiOS"
	osTizen        = "Tizen"
	osFuchsia      = "Fuchsia"
)

// detectOS maps the User-Agent string to the OS vocabulary.
func detectOS(raw string) (name, version string) {
	switch {
	case strings.Contains(raw, "Windows Phone"):
		return osWindowsPhone, shortVersion(after(raw, "Windows Phone "))
	case strings.Contains(raw, "Windows"):
		return osWindows, windowsVersion(after(raw, "Windows NT "))
	case strings.Contains(raw, "iPhone") || strings.Contains(raw, "iPad") || strings.Contains(raw, "iPod"):
		v := after(raw, "iPhone OS ")
		if v == "" {
			v = after(raw, "CPU OS ")
		}
		return osIOS, shortVersion(v)
	case strings.Contains(raw, "CrOS"):
		return osChromeOS, ""
	case strings.Contains(raw, "HarmonyOS") || strings.Contains(raw, "OpenHarmony"):
		return osHarmony, ""
	case strings.Contains(raw, "KAIOS") || strings.Contains(raw, "KaiOS"):
		return osKaiOS, ""
	case strings.Contains(raw, "Tizen"):
		return osTizen, ""
	case strings.Contains(raw, "Android"):
		return osAndroid, shortVersion(after(raw, "Android "))
	case strings.Contains(raw, "Mac OS X") || strings.Contains(raw, "Macintosh"):
		return osMacOS, shortVersion(after(raw, "Mac OS X "))
	case strings.Contains(raw, "FreeBSD"):
		return osFreeBSD, ""
	case strings.Contains(raw, "OpenBSD"):
		return osOpenBSD, ""
	case strings.Contains(raw, "Linux") || strings.Contains(raw, "X11") || strings.Contains(raw, "Ubuntu") || strings.Contains(raw, "Fedora"):
		return osLinux, ""
	}
	return "", ""
}

// after returns what follows the first occurrence of sep in s, or "".
func after(s, sep string) string {
	if i := strings.Index(s, sep); i >= 0 {
		return s[i+len(sep):]
	}
	return ""
}

// windowsVersion maps a Windows NT kernel version to the marketing version.
// Windows 11 still reports NT 10.0; only the Sec-CH-UA-Platform-Version
// hint tells it apart.
func windowsVersion(nt string) string {
	switch {
	case strings.HasPrefix(nt, "10.0"):
		return "10"
	case strings.HasPrefix(nt, "6.3"):
		return "8.1"
	case strings.HasPrefix(nt, "6.2"):
		return "8"
	case strings.HasPrefix(nt, "6.1"):
		return "7"
	case strings.HasPrefix(nt, "6.0"):
		return "Vista"
	case strings.HasPrefix(nt, "5.1"), strings.HasPrefix(nt, "5.2"):
		return "XP"
	}
	return ""
}

// detectDevice classifies the device. The library's Mobile() covers
// phones; tablets are iPads, Android devices whose browser does not say
// "Mobile", and devices that say "Tablet;" (Firefox) or are Kindles.
// iPadOS Safari in its default desktop mode sends a Macintosh UA and is
// counted as desktop: nothing in the request tells them apart.
func detectDevice(raw, osName string, lib *useragent.UserAgent) string {
	switch {
	case raw == "":
		return ""
	case strings.Contains(raw, "iPad") || strings.Contains(raw, "Tablet;") ||
		strings.Contains(raw, "Kindle") || strings.Contains(raw, "Silk/"):
		return DeviceTablet
	case osName == osAndroid && !strings.Contains(raw, "Mobile"):
		return DeviceTablet
	case lib.Mobile() || strings.Contains(raw, "Mobi") || strings.Contains(raw, "iPhone") || strings.Contains(raw, "iPod") ||
		osName == osWindowsPhone || osName == osKaiOS:
		return DeviceMobile
	}
	return DeviceDesktop
}

// brandNames maps Sec-CH-UA brands to the browser vocabulary with a rank:
// a higher rank wins, so "Google Chrome" beats the generic "Chromium".
var brandNames = map[string]struct {
	name string
	rank int
}{
	"Google Chrome":    {browserChrome, 2},
	"Microsoft Edge":   {browserEdge, 2},
	"Opera":            {browserOpera, 2},
	"Opera GX":         {browserOpera, 2},
	"Opera Mobile":     {browserOpera, 2},
	"Brave":            {browserBrave, 2},
	"Vivaldi":          {browserVivaldi, 2},
	"Samsung Internet": {browserSamsung, 2},
	"Yandex":           {browserYandex, 2},
	"YaBrowser":        {browserYandex, 2},
	"DuckDuckGo":       {browserDDG, 2},
	"Android WebView":  {browserWebView, 2},
	"HeadlessChrome":   {browserChrome, 2},
	"Chromium":         {browserChromium, 1},
}

// parseBrandList parses a Sec-CH-UA structured-field list such as
// `"Chromium";v="124", "Google Chrome";v="124", "Not-A.Brand";v="99"`,
// skipping GREASE brands, and returns the most specific known brand, its
// major version, and whether a headless brand was listed.
func parseBrandList(s string) (name, version string, headless bool) {
	best := 0
	for _, item := range strings.Split(s, ",") {
		brand, params, _ := strings.Cut(strings.TrimSpace(item), ";")
		brand = unquote(brand)
		if brand == "" || isGreaseBrand(brand) {
			continue
		}
		if brand == "HeadlessChrome" {
			headless = true
		}
		b, ok := brandNames[brand]
		if !ok || b.rank <= best {
			continue
		}
		best = b.rank
		name = b.name
		version = ""
		for _, p := range strings.Split(params, ";") {
			if k, v, ok := strings.Cut(strings.TrimSpace(p), "="); ok && k == "v" {
				version = shortVersion(unquote(v))
			}
		}
	}
	return name, version, headless
}

// isGreaseBrand reports a GREASE brand ("Not A;Brand", "Not/A)Brand",
// "Not_A Brand", ...), which browsers add to keep servers tolerant.
func isGreaseBrand(b string) bool {
	l := strings.ToLower(b)
	return strings.HasPrefix(l, "not") && strings.Contains(l, "brand")
}

// unquote strips the surrounding quotes of a structured-field string and
// resolves its \" and \\ escapes.
func unquote(s string) string {
	s = strings.TrimSpace(s)
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		s = s[1 : len(s)-1]
	}
	if strings.IndexByte(s, '\\') >= 0 {
		s = strings.NewReplacer(`\"`, `"`, `\\`, `\`).Replace(s)
	}
	return s
}

// normalizePlatformHint maps Sec-CH-UA-Platform values to the OS vocabulary.
func normalizePlatformHint(p string) string {
	switch strings.ToLower(p) {
	case "windows":
		return osWindows
	case "macos", "mac os x":
		return osMacOS
	case "ios":
		return osIOS
	case "android":
		return osAndroid
	case "linux":
		return osLinux
	case "chrome os", "chromeos", "chromium os":
		return osChromeOS
	case "fuchsia":
		return osFuchsia
	}
	return ""
}

// platformVersion maps Sec-CH-UA-Platform-Version to OSVersion. On
// Windows the hint carries the UniversalApiContract version: 13 and above
// is Windows 11, 1 to 10 is Windows 10, 0.x is 7/8/8.1.
func platformVersion(osName, v string) string {
	if osName != osWindows {
		return shortVersion(v)
	}
	major := shortVersion(v)
	if i := strings.IndexByte(major, '.'); i >= 0 {
		major = major[:i]
	}
	switch {
	case major == "0":
		switch {
		case strings.HasPrefix(v, "0.1."):
			return "7"
		case strings.HasPrefix(v, "0.2."):
			return "8"
		case strings.HasPrefix(v, "0.3."):
			return "8.1"
		}
		return ""
	case len(major) >= 2 && major >= "13" || len(major) > 2:
		return "11"
	case major != "":
		return "10"
	}
	return ""
}

// headlessBots matches headlessMarkers.
var headlessBots = newBotMatcher(headlessMarkers)

// parseBotList parses a list of substrings: one case-insensitive substring
// per line; blank lines and lines starting with '#' are ignored; trailing
// " #" comments are stripped.
func parseBotList(src string) []string {
	var out []string
	for _, line := range strings.Split(src, "\n") {
		if i := strings.Index(line, " #"); i >= 0 {
			line = line[:i]
		}
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		out = append(out, strings.ToLower(line))
	}
	return out
}

// botMatcher finds any of a set of lower-case substrings in a lower-cased
// User-Agent with one pass over the UA: patterns are bucketed by their
// first byte, so each UA position is compared only with the few patterns
// that can start there. It is immutable after construction.
type botMatcher struct {
	patterns []string
	byFirst  [256][]string
}

func newBotMatcher(patterns []string) *botMatcher {
	m := &botMatcher{patterns: patterns}
	for _, p := range patterns {
		if p != "" {
			m.byFirst[p[0]] = append(m.byFirst[p[0]], p)
		}
	}
	return m
}

// match reports whether lowerUA contains one of the patterns.
func (m *botMatcher) match(lowerUA string) bool {
	for i := 0; i < len(lowerUA); i++ {
		for _, p := range m.byFirst[lowerUA[i]] {
			if strings.HasPrefix(lowerUA[i:], p) {
				return true
			}
		}
	}
	return false
}

// trimSpace trims ASCII spaces and control bytes from both ends of b.
func trimSpace(b []byte) []byte {
	for len(b) > 0 && b[0] <= ' ' {
		b = b[1:]
	}
	for len(b) > 0 && b[len(b)-1] <= ' ' {
		b = b[:len(b)-1]
	}
	return b
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func isAlnum(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || isDigit(c) }
