package decode

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/glimpse-analytics/glimpse/internal/model"
)

// dump renders every field of e canonically, so that two events compare
// equal exactly when their dumps do (nil and empty slices alike).
func dump(e *Event) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "type=%v name=%q url=%q domain=%q referrer=%q\n",
		e.Type, e.Name, e.URL, e.Domain, e.Referrer)
	fmt.Fprintf(&sb, "props(%d/%d):", len(e.PropKeys), len(e.PropValues))
	for i := range e.PropKeys {
		if i < len(e.PropValues) {
			fmt.Fprintf(&sb, " %q=%q", e.PropKeys[i], e.PropValues[i])
		}
	}
	fmt.Fprintf(&sb, "\nhash=%v interactive=%v revenue=%v/%v/%q w=%d e=%d sd=%v/%d\n",
		e.HashMode, e.Interactive, e.HasRevenue, e.RevenueAmount, e.RevenueCurrency,
		e.ScreenWidth, e.EngagementMS, e.HasScrollDepth, e.ScrollDepth)
	fmt.Fprintf(&sb, "ct=%q dl=%v rtt=%d sv=%v consent=%v uid=%q target=%q",
		e.ConnType, e.Downlink, e.RTT, e.SaveData, e.Consent, e.UID, e.TargetURL)
	return sb.String()
}

// event returns the event that page() decodes to, changed by mod.
func event(mod func(e *Event)) *Event {
	e := &Event{
		Type:        TypePageview,
		Name:        []byte("pageview"),
		URL:         []byte("https://example.com/"),
		Domain:      []byte("example.com"),
		Interactive: true,
	}
	if mod != nil {
		mod(e)
	}
	return e
}

// props sets e's props from key, value pairs.
func props(e *Event, kv ...string) {
	e.PropKeys, e.PropValues = nil, nil
	for i := 0; i < len(kv); i += 2 {
		e.PropKeys = append(e.PropKeys, []byte(kv[i]))
		e.PropValues = append(e.PropValues, []byte(kv[i+1]))
	}
}

// page returns a JSON body with a valid url and domain plus the given
// members ("" adds nothing).
func page(members string) string {
	if members != "" {
		members = "," + members
	}
	return `{"u":"https://example.com/","d":"example.com"` + members + `}`
}

// pageQ is page for query strings.
func pageQ(args string) string {
	if args != "" {
		args = "&" + args
	}
	return "u=https%3A%2F%2Fexample.com%2F&d=example.com" + args
}

// propsJSON returns a JSON object with n props k0..k(n-1).
func propsJSON(n int) string {
	parts := make([]string, n)
	for i := range parts {
		parts[i] = fmt.Sprintf(`"k%d":"v"`, i)
	}
	return "{" + strings.Join(parts, ",") + "}"
}

func TestDecodeJSON(t *testing.T) {
	long := func(n int) string { return strings.Repeat("a", n) }
	url2048 := "https://example.com/" + long(MaxURLLen-len("https://example.com/"))
	tests := []struct {
		name string
		body string
		want *Event
	}{
		// Plausible, exactly as its tracker and API clients send it.
		{
			name: "plausible pageview",
			body: `{"n":"pageview","u":"https://example.com/a?b=1","d":"example.com","r":null,"w":1280}`,
			want: event(func(e *Event) {
				e.URL = []byte("https://example.com/a?b=1")
				e.ScreenWidth = 1280
			}),
		},
		{
			name: "plausible tracker v2 fields",
			body: `{"n":"pageview","v":29,"u":"https://example.com/","d":"example.com","r":"https://www.google.com/","h":1}`,
			want: event(func(e *Event) {
				e.Referrer = []byte("https://www.google.com/")
				e.HashMode = true
			}),
		},
		{
			name: "plausible long keys",
			body: `{"name":"pageview","url":"https://example.com/","domain":"example.com","referrer":"https://x.org/","hashMode":true,"interactive":false}`,
			want: event(func(e *Event) {
				e.Referrer = []byte("https://x.org/")
				e.HashMode = true
				e.Interactive = false
			}),
		},
		{
			name: "plausible props as JSON string",
			body: page(`"n":"Signup","p":"{\"plan\":\"pro\",\"seats\":3,\"trial\":false}","i":false`),
			want: event(func(e *Event) {
				e.Type, e.Name = TypeCustom, []byte("Signup")
				e.Interactive = false
				props(e, "plan", "pro", "seats", "3", "trial", "false")
			}),
		},
		{
			name: "plausible props object filtered",
			body: page(`"n":"Signup","p":{"a":"x","num":12.50,"t":true,"nil":null,"obj":{"x":1},"arr":[1],"blank":"  ","":"nokey"," ":"blankkey"}`),
			want: event(func(e *Event) {
				e.Type, e.Name = TypeCustom, []byte("Signup")
				props(e, "a", "x", "num", "12.50", "t", "true")
			}),
		},
		{
			name: "plausible legacy meta string",
			body: page(`"n":"Signup","m":"{\"k\":\"v\"}"`),
			want: event(func(e *Event) {
				e.Type, e.Name = TypeCustom, []byte("Signup")
				props(e, "k", "v")
			}),
		},
		{
			name: "props null and JSON string null",
			body: page(`"n":"pageview","p":null,"props":"null"`),
			want: event(nil),
		},
		{
			name: "props empty JSON string",
			body: page(`"n":"pageview","p":""`),
			want: event(nil),
		},
		{
			name: "revenue object with string amount",
			body: page(`"n":"Purchase","$":{"amount":"12.5","currency":"EUR"}`),
			want: event(func(e *Event) {
				e.Type, e.Name = TypeCustom, []byte("Purchase")
				e.HasRevenue, e.RevenueAmount, e.RevenueCurrency = true, 12.5, []byte("EUR")
			}),
		},
		{
			name: "revenue object with number amount",
			body: page(`"n":"Purchase","revenue":{"amount":1999,"currency":"USD"}`),
			want: event(func(e *Event) {
				e.Type, e.Name = TypeCustom, []byte("Purchase")
				e.HasRevenue, e.RevenueAmount, e.RevenueCurrency = true, 1999, []byte("USD")
			}),
		},
		{
			name: "revenue as JSON string",
			body: page(`"n":"Purchase","$":"{\"amount\":0.99,\"currency\":\"JPY\"}"`),
			want: event(func(e *Event) {
				e.Type, e.Name = TypeCustom, []byte("Purchase")
				e.HasRevenue, e.RevenueAmount, e.RevenueCurrency = true, 0.99, []byte("JPY")
			}),
		},
		{
			name: "empty revenue object of a tagged event",
			body: page(`"n":"Click","$":{},"p":{}`),
			want: event(func(e *Event) { e.Type, e.Name = TypeCustom, []byte("Click") }),
		},
		{
			name: "revenue with null members",
			body: page(`"n":"Click","$":{"amount":null,"currency":null}`),
			want: event(func(e *Event) { e.Type, e.Name = TypeCustom, []byte("Click") }),
		},
		{
			name: "outbound link click takes target from props.url",
			body: page(`"n":"Outbound Link: Click","p":{"url":"https://other.org/x"}`),
			want: event(func(e *Event) {
				e.Type, e.Name = TypeOutbound, []byte(NameOutbound)
				e.TargetURL = []byte("https://other.org/x")
				props(e, "url", "https://other.org/x")
			}),
		},
		{
			name: "file download",
			body: page(`"n":"File Download","p":"{\"url\":\"https://example.com/a.pdf\"}"`),
			want: event(func(e *Event) {
				e.Type, e.Name = TypeDownload, []byte(NameDownload)
				e.TargetURL = []byte("https://example.com/a.pdf")
				props(e, "url", "https://example.com/a.pdf")
			}),
		},
		{
			name: "plausible engagement",
			body: `{"n":"engagement","sd":80,"d":"example.com","u":"https://example.com/","p":{"author":"x"},"e":5300,"v":29}`,
			want: event(func(e *Event) {
				e.Type, e.Name = TypeEngagement, []byte("engagement")
				e.HasScrollDepth, e.ScrollDepth, e.EngagementMS = true, 80, 5300
				props(e, "author", "x")
			}),
		},
		{
			name: "engagement with zero scroll depth only",
			body: page(`"n":"engagement","sd":0`),
			want: event(func(e *Event) {
				e.Type, e.Name = TypeEngagement, []byte("engagement")
				e.HasScrollDepth = true
			}),
		},
		{
			name: "scroll depth just under the bound is truncated to it",
			body: page(`"n":"engagement","sd":100.9`),
			want: event(func(e *Event) {
				e.Type, e.Name = TypeEngagement, []byte("engagement")
				e.HasScrollDepth, e.ScrollDepth = true, model.MaxScrollDepth
			}),
		},
		{
			name: "404 goal with integer name",
			body: page(`"n":404`),
			want: event(func(e *Event) { e.Type, e.Name = TypeCustom, []byte("404") }),
		},
		{
			name: "several domains kept raw",
			body: `{"n":"pageview","u":"https://example.com/","d":"example.com, rollup.example.net"}`,
			want: event(func(e *Event) { e.Domain = []byte("example.com, rollup.example.net") }),
		},
		{
			name: "escaped strings",
			body: `{"n":"pageview","u":"https:\/\/example.com\/caf\u00e9?q=\"x\"","d":"example.com"}`,
			want: event(func(e *Event) { e.URL = []byte(`https://example.com/café?q="x"`) }),
		},
		{
			name: "escaped key",
			body: `{"\u006e":"pageview","u":"https://example.com/","d":"example.com"}`,
			want: event(nil),
		},
		{
			name: "short key wins whatever the order",
			body: `{"name":"Long","url":"https://long.example/","n":"pageview","u":"https://example.com/","d":"example.com","domain":"long.example"}`,
			want: event(nil),
		},
		{
			name: "null short key falls back to long key",
			body: page(`"n":null,"name":"pageview"`),
			want: event(nil),
		},
		{
			name: "repeated key: last wins",
			body: page(`"n":"Signup","n":"pageview"`),
			want: event(nil),
		},
		{
			name: "m wins over p",
			body: page(`"n":"x","p":{"from":"p"},"m":{"from":"m"}`),
			want: event(func(e *Event) {
				e.Type, e.Name = TypeCustom, []byte("x")
				props(e, "from", "m")
			}),
		},
		{
			name: "repeated prop key: last value wins, first position kept",
			body: page(`"n":"x","p":{"a":"1","b":"2","a":"3"}`),
			want: event(func(e *Event) {
				e.Type, e.Name = TypeCustom, []byte("x")
				props(e, "a", "3", "b", "2")
			}),
		},
		{
			name: "unknown keys ignored",
			body: page(`"n":"pageview","future":{"deep":[1,2,{"x":null}]},"t":"x","v":"1.2"`),
			want: event(nil),
		},
		{
			name: "limits are inclusive",
			body: `{"n":"` + long(MaxNameLen) + `","u":"` + url2048 + `","d":"example.com","r":"` + long(MaxReferrerLen) +
				`","p":{"` + long(MaxPropKeyLen) + `":"` + long(MaxPropValueLen) + `"},"uid":"` + long(MaxUIDLen) + `"}`,
			want: event(func(e *Event) {
				e.Type, e.Name = TypeCustom, []byte(long(MaxNameLen))
				e.URL, e.Referrer, e.UID = []byte(url2048), []byte(long(MaxReferrerLen)), []byte(long(MaxUIDLen))
				props(e, long(MaxPropKeyLen), long(MaxPropValueLen))
			}),
		},
		{
			name: "30 props",
			body: page(`"n":"x","p":` + propsJSON(MaxProps)),
			want: event(func(e *Event) {
				e.Type, e.Name = TypeCustom, []byte("x")
				var kv []string
				for i := range MaxProps {
					kv = append(kv, fmt.Sprintf("k%d", i), "v")
				}
				props(e, kv...)
			}),
		},
		{
			name: "30 props after dropping empty ones",
			body: page(`"n":"x","p":` + strings.TrimSuffix(propsJSON(MaxProps), "}") + `,"z":"","y":null}`),
			want: event(func(e *Event) {
				e.Type, e.Name = TypeCustom, []byte("x")
				var kv []string
				for i := range MaxProps {
					kv = append(kv, fmt.Sprintf("k%d", i), "v")
				}
				props(e, kv...)
			}),
		},

		// Glimpse's own fields.
		{
			name: "glimpse engagement with connection",
			body: page(`"k":"engagement","e":5300,"sd":100,"ct":"4g","dl":1.45,"rtt":50,"sv":0,"c":1,"uid":"user-42"`),
			want: event(func(e *Event) {
				e.Type, e.Name = TypeEngagement, []byte("engagement")
				e.EngagementMS, e.HasScrollDepth, e.ScrollDepth = 5300, true, 100
				e.ConnType, e.Downlink, e.RTT = []byte("4g"), 1.45, 50
				e.Consent, e.UID = true, []byte("user-42")
			}),
		},
		{
			name: "glimpse long keys",
			body: page(`"type":"engagement","engagement_time":"10","scroll_depth":"5","connection_type":"slow-2g","downlink":"0.05","save_data":true,"consent":"true","user_id":42`),
			want: event(func(e *Event) {
				e.Type, e.Name = TypeEngagement, []byte("engagement")
				e.EngagementMS, e.HasScrollDepth, e.ScrollDepth = 10, true, 5
				e.ConnType, e.Downlink, e.SaveData = []byte("slow-2g"), 0.05, true
				e.Consent, e.UID = true, []byte("42")
			}),
		},
		{
			name: "explicit type wins over name",
			body: page(`"k":"outbound","n":"Partner click","tu":"https://partner.example/"`),
			want: event(func(e *Event) {
				e.Type, e.Name = TypeOutbound, []byte("Partner click")
				e.TargetURL = []byte("https://partner.example/")
			}),
		},
		{
			name: "tu wins over props.url",
			body: page(`"n":"Outbound Link: Click","target":"https://a.example/","p":{"url":"https://b.example/"}`),
			want: event(func(e *Event) {
				e.Type, e.Name = TypeOutbound, []byte(NameOutbound)
				e.TargetURL = []byte("https://a.example/")
				props(e, "url", "https://b.example/")
			}),
		},
		{
			name: "impression gets a default name",
			body: page(`"k":"impression"`),
			want: event(func(e *Event) { e.Type, e.Name = TypeImpression, []byte("impression") }),
		},
		{
			name: "pageview type without name",
			body: page(`"type":"pageview","w":"1280.7"`),
			want: event(func(e *Event) { e.ScreenWidth = 1280 }),
		},
		{
			name: "custom type with a reserved name",
			body: page(`"k":"custom","n":"pageview"`),
			want: event(func(e *Event) { e.Type = TypeCustom }),
		},
		{
			name: "numbers: exponent, negative zero, bounds",
			body: page(`"n":"pageview","w":65535,"e":4294967295,"rtt":"6.5e1","dl":-0`),
			want: event(func(e *Event) { e.ScreenWidth, e.EngagementMS, e.RTT = 65535, math.MaxUint32, 65 }),
		},
		{
			name: "white space everywhere",
			body: " \n{ \"n\" : \"pageview\" ,\t\"u\":\"https://example.com/\", \"d\":\"example.com\" }\r\n",
			want: event(nil),
		},
	}
	var d Decoder
	var got Event
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := d.DecodeJSON(&got, []byte(tt.body)); err != nil {
				t.Fatalf("DecodeJSON(%s) = %v, want nil", tt.body, err)
			}
			if g, w := dump(&got), dump(tt.want); g != w {
				t.Errorf("DecodeJSON(%s):\ngot  %s\nwant %s", tt.body, g, w)
			}
		})
	}
}

// errorTests lists inputs each rejected with a given error; TestErrorsCovered
// checks that together they produce every error in Errors().
var errorTests = []struct {
	name  string
	body  string // JSON; "" when only query is set
	query string // query string; "" when only body is set
	want  *Error
}{
	{"empty body", "", "", ErrMalformedJSON},
	{"truncated", `{"u":"x"`, "", ErrMalformedJSON},
	{"trailing garbage", page(``) + `x`, "", ErrMalformedJSON},
	{"NaN", page(`"w":NaN`), "", ErrMalformedJSON},
	{"Infinity", page(`"w":-Inf`), "", ErrMalformedJSON},
	{"sloppy number", page(`"w":1-2`), "", ErrMalformedJSON},
	{"leading zero", page(`"w":01`), "", ErrMalformedJSON},
	{"control char in string", "{\"u\":\"a\x01b\",\"d\":\"example.com\"}", "", ErrMalformedJSON},
	{"bad escape", page(`"n":"\x"`), "", ErrMalformedJSON},
	{"single quotes", `{'u':'x'}`, "", ErrMalformedJSON},
	{"deep nesting", `{"x":` + strings.Repeat("[", 100000) + strings.Repeat("]", 100000) + `}`, "", ErrMalformedJSON},
	{"array", `[]`, "", ErrNotObject},
	{"string", `"x"`, "", ErrNotObject},
	{"null", `null`, "", ErrNotObject},
	{"number", `1`, "", ErrNotObject},

	{"url number", `{"n":"pageview","u":5,"d":"example.com"}`, "", ErrFieldType},
	{"domain bool", `{"n":"pageview","u":"https://example.com/","d":true}`, "", ErrFieldType},
	{"referrer object", page(`"n":"pageview","r":{}`), "", ErrFieldType},
	{"name object", page(`"n":{"a":1}`), "", ErrFieldType},
	{"type number", page(`"k":1`), "", ErrFieldType},
	{"target array", page(`"n":"pageview","tu":["x"]`), "", ErrFieldType},
	{"conn type number", page(`"n":"pageview","ct":4`), "", ErrFieldType},
	{"uid bool", page(`"n":"pageview","uid":true`), "", ErrFieldType},

	{"no url", `{"n":"pageview","d":"example.com"}`, "n=pageview&d=example.com", ErrMissingURL},
	{"empty url", `{"n":"pageview","u":"","d":"example.com"}`, "n=pageview&u=&d=example.com", ErrMissingURL},
	{"null url", `{"n":"pageview","u":null,"d":"example.com"}`, "", ErrMissingURL},
	{"long url", `{"n":"pageview","u":"` + strings.Repeat("a", MaxURLLen+1) + `","d":"example.com"}`, "", ErrURLTooLong},
	{"no domain", `{"n":"pageview","u":"https://example.com/"}`, "n=pageview&u=x", ErrMissingDomain},
	{"empty domain", `{"n":"pageview","u":"https://example.com/","d":""}`, "n=pageview&u=x&d=", ErrMissingDomain},
	{"blank domain list", `{"n":"pageview","u":"https://example.com/","d":" , ,"}`, "n=pageview&u=x&d=+%2C+", ErrMissingDomain},
	{"long domain", `{"n":"pageview","u":"https://example.com/","d":"` + strings.Repeat("a", MaxDomainLen+1) + `"}`, "", ErrDomainTooLong},
	{"no name", page(``), pageQ(""), ErrMissingName},
	{"empty name", page(`"n":""`), pageQ("n="), ErrMissingName},
	{"custom type without name", page(`"k":"custom"`), pageQ("k=custom"), ErrMissingName},
	{"long name", page(`"n":"` + strings.Repeat("a", MaxNameLen+1) + `"`), pageQ("n=" + strings.Repeat("a", MaxNameLen+1)), ErrNameTooLong},
	{"long referrer", page(`"n":"pageview","r":"` + strings.Repeat("a", MaxReferrerLen+1) + `"`), "", ErrReferrerTooLong},
	{"unknown type", page(`"k":"click"`), pageQ("k=click"), ErrUnknownType},
	{"type is case sensitive", page(`"type":"Pageview"`), "", ErrUnknownType},

	{"props number", page(`"n":"x","p":5`), "", ErrBadProps},
	{"props array", page(`"n":"x","p":[{"a":"b"}]`), "", ErrBadProps},
	{"props bad JSON string", page(`"n":"x","p":"{a:1}"`), pageQ("n=x&p=%7Ba"), ErrBadProps},
	{"props JSON string of array", page(`"n":"x","p":"[1]"`), pageQ("n=x&p=%5B1%5D"), ErrBadProps},
	{"props JSON string with NaN", page(`"n":"x","p":"{\"a\":NaN}"`), "", ErrBadProps},
	{"props JSON string too deep", page(`"n":"x","p":"` + strings.Repeat("[", 1000) + `"`), "", ErrBadProps},
	{"31 props", page(`"n":"x","p":` + propsJSON(MaxProps+1)), "", ErrTooManyProps},
	{"long prop key", page(`"n":"x","p":{"` + strings.Repeat("k", MaxPropKeyLen+1) + `":"v"}`), "", ErrPropKeyTooLong},
	{"long prop value", page(`"n":"x","p":{"k":"` + strings.Repeat("v", MaxPropValueLen+1) + `"}`), "", ErrPropValueTooLong},
	{"revenue number", page(`"n":"x","$":5`), pageQ("n=x&%24=5"), ErrBadRevenue},
	{"revenue bad JSON string", page(`"n":"x","$":"EUR 5"`), "", ErrBadRevenue},
	{"revenue without currency", page(`"n":"x","$":{"amount":5}`), "", ErrBadRevenue},
	{"revenue without amount", page(`"n":"x","revenue":{"currency":"EUR"}`), "", ErrBadRevenue},
	{"revenue amount text", page(`"n":"x","$":{"amount":"five","currency":"EUR"}`), "", ErrBadRevenueAmount},
	{"revenue amount with suffix", page(`"n":"x","$":{"amount":"5 EUR","currency":"EUR"}`), "", ErrBadRevenueAmount},
	{"revenue amount negative", page(`"n":"x","$":{"amount":-1,"currency":"EUR"}`), "", ErrBadRevenueAmount},
	{"revenue amount overflows", page(`"n":"x","$":{"amount":"1e999","currency":"EUR"}`), "", ErrBadRevenueAmount},
	{"revenue micros overflow int64", page(`"n":"x","$":{"amount":1e300,"currency":"EUR"}`), pageQ("n=x&%24=%7B%22amount%22%3A1e300%2C%22currency%22%3A%22EUR%22%7D"), ErrBadRevenueAmount},
	{"revenue amount over 1e12", page(`"n":"x","$":{"amount":"1000000000000.5","currency":"EUR"}`), "", ErrBadRevenueAmount},
	{"revenue amount bool", page(`"n":"x","$":{"amount":true,"currency":"EUR"}`), "", ErrBadRevenueAmount},
	{"currency lower case", page(`"n":"x","$":{"amount":1,"currency":"eur"}`), "", ErrBadCurrency},
	{"currency too long", page(`"n":"x","$":{"amount":1,"currency":"EURO"}`), "", ErrBadCurrency},
	{"currency number", page(`"n":"x","$":{"amount":1,"currency":978}`), "", ErrBadCurrency},

	{"width text", page(`"n":"pageview","w":"wide"`), pageQ("n=pageview&w=wide"), ErrBadNumber},
	{"width too big", page(`"n":"pageview","w":65536`), pageQ("n=pageview&w=65536"), ErrBadNumber},
	{"width bool", page(`"n":"pageview","w":true`), "", ErrBadNumber},
	{"width hex", page(`"n":"pageview","w":"0x10"`), pageQ("n=pageview&w=0x10"), ErrBadNumber},
	{"width with space", page(`"n":"pageview","w":" 1"`), pageQ("n=pageview&w=+1"), ErrBadNumber},
	{"engagement too big", page(`"n":"engagement","e":4294967296`), "", ErrBadNumber},
	{"downlink text", page(`"n":"pageview","dl":"fast"`), "", ErrBadNumber},
	{"downlink over float32", page(`"n":"pageview","dl":1e39`), "", ErrBadNumber},
	{"rtt too big", page(`"n":"pageview","rtt":65536`), "", ErrBadNumber},
	{"width negative", page(`"n":"pageview","w":-1`), pageQ("n=pageview&w=-1"), ErrNegativeNumber},
	{"engagement negative", page(`"n":"engagement","e":-5`), "", ErrNegativeNumber},
	{"scroll negative", page(`"n":"engagement","sd":-0.5`), "", ErrNegativeNumber},
	{"downlink negative", page(`"n":"pageview","dl":-1.5`), "", ErrNegativeNumber},
	{"hash mode 2", page(`"n":"pageview","h":2`), pageQ("n=pageview&h=2"), ErrBadBool},
	{"interactive yes", page(`"n":"pageview","i":"yes"`), pageQ("n=pageview&i=yes"), ErrBadBool},
	{"consent object", page(`"n":"pageview","c":{}`), "", ErrBadBool},
	{"save data 1.0", page(`"n":"pageview","sv":1.0`), "", ErrBadBool},
	{"scroll over 100", page(`"n":"engagement","sd":101`), pageQ("n=engagement&sd=101"), ErrBadScrollDepth},
	{"scroll huge", page(`"n":"engagement","sd":1e300`), "", ErrBadScrollDepth},
	{"engagement without e or sd", page(`"n":"engagement"`), pageQ("n=engagement"), ErrEmptyEngagement},
	{"engagement with e 0 only", page(`"k":"engagement","e":0`), "", ErrEmptyEngagement},
	{"5g", page(`"n":"pageview","ct":"5g"`), pageQ("n=pageview&ct=5g"), ErrBadConnectionType},
	{"conn type upper case", page(`"n":"pageview","ct":"4G"`), "", ErrBadConnectionType},
	{"long uid", page(`"n":"pageview","uid":"` + strings.Repeat("u", MaxUIDLen+1) + `"`), "", ErrUIDTooLong},
	{"long target", page(`"n":"pageview","tu":"` + strings.Repeat("t", MaxTargetLen+1) + `"`), "", ErrTargetTooLong},
}

func TestDecodeErrors(t *testing.T) {
	var d Decoder
	var e Event
	var args fasthttp.Args
	for _, tt := range errorTests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.body != "" || tt.query == "" {
				err := d.DecodeJSON(&e, []byte(tt.body))
				if err != tt.want {
					t.Errorf("DecodeJSON(%.200s) = %v, want %v", tt.body, err, tt.want)
				}
				var reset Event
				reset.Reset()
				if got := dump(&e); got != dump(&reset) {
					t.Errorf("event after error not reset:\n%s", got)
				}
			}
			if tt.query != "" {
				args.Parse(tt.query)
				if err := d.DecodeQuery(&e, &args); err != tt.want {
					t.Errorf("DecodeQuery(%.200s) = %v, want %v", tt.query, err, tt.want)
				}
			}
		})
	}
}

func TestErrorsCovered(t *testing.T) {
	seen := map[*Error]bool{}
	for _, tt := range errorTests {
		seen[tt.want] = true
	}
	codes := map[string]bool{}
	for _, err := range Errors() {
		if !seen[err] {
			t.Errorf("no test returns %s", err.Code)
		}
		if codes[err.Code] {
			t.Errorf("code %s used twice", err.Code)
		}
		codes[err.Code] = true
		if err.Code == "" || strings.Trim(err.Code, "abcdefghijklmnopqrstuvwxyz_") != "" {
			t.Errorf("code %q is not snake_case", err.Code)
		}
		if err.Msg == "" || err.Error() != err.Msg {
			t.Errorf("%s: bad message %q", err.Code, err.Msg)
		}
	}
	if len(seen) != len(Errors()) {
		t.Errorf("tests expect %d distinct errors, Errors() lists %d", len(seen), len(Errors()))
	}
}

func TestErrorMessagesMatchLimits(t *testing.T) {
	for err, limit := range map[*Error]int{
		ErrURLTooLong: MaxURLLen, ErrDomainTooLong: MaxDomainLen, ErrNameTooLong: MaxNameLen,
		ErrReferrerTooLong: MaxReferrerLen, ErrTooManyProps: MaxProps, ErrPropKeyTooLong: MaxPropKeyLen,
		ErrPropValueTooLong: MaxPropValueLen, ErrUIDTooLong: MaxUIDLen, ErrTargetTooLong: MaxTargetLen,
	} {
		if !strings.Contains(err.Msg, " "+strconv.Itoa(limit)+" ") {
			t.Errorf("%s: message %q does not name the limit %d", err.Code, err.Msg, limit)
		}
	}
}

func TestDecodeQuery(t *testing.T) {
	tests := []struct {
		name  string
		query string
		want  *Event
	}{
		{
			name:  "plausible-style pageview, percent-encoded",
			query: "n=pageview&u=https%3A%2F%2Fexample.com%2Fa%3Fb%3D1%26c%3D%C3%A9&d=example.com&r=https%3A%2F%2Fgoogle.com%2F&w=1280",
			want: event(func(e *Event) {
				e.URL = []byte("https://example.com/a?b=1&c=é")
				e.Referrer = []byte("https://google.com/")
				e.ScreenWidth = 1280
			}),
		},
		{
			name:  "plus is a space, props and revenue as JSON",
			query: pageQ("n=Sign+up&p=%7B%22plan%22%3A%22pro%22%2C%22n%22%3A3%7D&%24=%7B%22amount%22%3A%229.99%22%2C%22currency%22%3A%22EUR%22%7D&h=1&i=false"),
			want: event(func(e *Event) {
				e.Type, e.Name = TypeCustom, []byte("Sign up")
				props(e, "plan", "pro", "n", "3")
				e.HasRevenue, e.RevenueAmount, e.RevenueCurrency = true, 9.99, []byte("EUR")
				e.HashMode, e.Interactive = true, false
			}),
		},
		{
			name:  "glimpse engagement",
			query: pageQ("k=engagement&e=5300&sd=42&ct=3g&dl=1.5&rtt=300&sv=1&c=true&uid=abc%20def&i=0"),
			want: event(func(e *Event) {
				e.Type, e.Name = TypeEngagement, []byte("engagement")
				e.EngagementMS, e.HasScrollDepth, e.ScrollDepth = 5300, true, 42
				e.ConnType, e.Downlink, e.RTT, e.SaveData = []byte("3g"), 1.5, 300, true
				e.Consent, e.UID, e.Interactive = true, []byte("abc def"), false
			}),
		},
		{
			name:  "email open pixel",
			query: "type=impression&url=https%3A%2F%2Fexample.com%2Femail%2Fspring&domain=example.com",
			want: event(func(e *Event) {
				e.Type, e.Name = TypeImpression, []byte("impression")
				e.URL = []byte("https://example.com/email/spring")
			}),
		},
		{
			name:  "empty values are absent",
			query: pageQ("n=pageview&r=&w=&p=&h&k="),
			want:  event(nil),
		},
		{
			name:  "short key wins, repeated key last wins",
			query: "name=Long&n=Signup&n=pageview&u=https%3A%2F%2Fexample.com%2F&url=x&d=example.com",
			want:  event(nil),
		},
		{
			name:  "numeric name stays text",
			query: pageQ("n=404"),
			want:  event(func(e *Event) { e.Type, e.Name = TypeCustom, []byte("404") }),
		},
		{
			name:  "download with target",
			query: pageQ("n=File+Download&tu=https%3A%2F%2Fexample.com%2Fa.pdf"),
			want: event(func(e *Event) {
				e.Type, e.Name = TypeDownload, []byte(NameDownload)
				e.TargetURL = []byte("https://example.com/a.pdf")
			}),
		},
	}
	var d Decoder
	var got Event
	var args fasthttp.Args
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args.Parse(tt.query)
			if err := d.DecodeQuery(&got, &args); err != nil {
				t.Fatalf("DecodeQuery(%s) = %v, want nil", tt.query, err)
			}
			if g, w := dump(&got), dump(tt.want); g != w {
				t.Errorf("DecodeQuery(%s):\ngot  %s\nwant %s", tt.query, g, w)
			}
		})
	}
}

// rich and sparse fill or leave out every field, to catch state that leaks
// from one decode into the next.
const (
	rich = `{"n":"Outbound Link: Click","u":"https://example.com/long/path?q=1","d":"example.com,b.example",` +
		`"r":"https://ref.example/","p":{"url":"https://out.example/","a":"1","b":2,"c":true},"h":1,"i":false,` +
		`"$":{"amount":"12.5","currency":"EUR"},"w":1920,"e":99,"sd":50,"ct":"2g","dl":0.5,"rtt":900,"sv":1,` +
		`"c":1,"uid":"u-123"}`
	sparse   = `{"n":"pageview","u":"https://e.io/","d":"e.io"}`
	richQ    = "n=Outbound+Link%3A+Click&u=https%3A%2F%2Fexample.com%2Flong&d=example.com&r=https%3A%2F%2Fref.example%2F&p=%7B%22url%22%3A%22https%3A%2F%2Fout.example%2F%22%2C%22a%22%3A%221%22%7D&h=1&i=0&%24=%7B%22amount%22%3A1%2C%22currency%22%3A%22USD%22%7D&w=1920&sd=50&ct=2g&dl=0.5&rtt=900&sv=1&c=1&uid=u-123&tu=https%3A%2F%2Ft.example%2F"
	sparseQ  = "n=pageview&u=https%3A%2F%2Fe.io%2F&d=e.io"
	badLater = `{"n":"Signup","u":"https://e.io/","d":"e.io","p":{"a":"b"},"ct":"9g"}`
)

func TestReuseLeavesNoState(t *testing.T) {
	var d Decoder
	var e Event
	decode := func(body string) string {
		t.Helper()
		if err := d.DecodeJSON(&e, []byte(body)); err != nil {
			t.Fatalf("DecodeJSON(%s) = %v", body, err)
		}
		return dump(&e)
	}
	fresh := func(body string) string {
		var d Decoder
		var e Event
		if err := d.DecodeJSON(&e, []byte(body)); err != nil {
			t.Fatalf("DecodeJSON(%s) = %v", body, err)
		}
		return dump(&e)
	}
	a, b := fresh(rich), fresh(sparse)
	for i, step := range []struct{ body, want string }{{rich, a}, {sparse, b}, {rich, a}, {sparse, b}} {
		if got := decode(step.body); got != step.want {
			t.Errorf("step %d: got\n%s\nwant\n%s", i, got, step.want)
		}
		if err := d.DecodeJSON(&e, []byte(badLater)); err != ErrBadConnectionType {
			t.Fatalf("DecodeJSON(badLater) = %v", err)
		}
	}

	var args fasthttp.Args
	decodeQ := func(q string, d *Decoder, e *Event) string {
		args.Parse(q)
		if err := d.DecodeQuery(e, &args); err != nil {
			t.Fatalf("DecodeQuery(%s) = %v", q, err)
		}
		return dump(e)
	}
	aq, bq := decodeQ(richQ, new(Decoder), new(Event)), decodeQ(sparseQ, new(Decoder), new(Event))
	for i, step := range []struct{ q, want string }{{richQ, aq}, {sparseQ, bq}, {richQ, aq}} {
		if got := decodeQ(step.q, &d, &e); got != step.want {
			t.Errorf("query step %d: got\n%s\nwant\n%s", i, got, step.want)
		}
	}
	// JSON and query decodes share the Event.
	if got := decode(sparse); got != b {
		t.Errorf("JSON after query: got\n%s\nwant\n%s", got, b)
	}
}

func TestDecodeQueryKeepsNoReference(t *testing.T) {
	var d Decoder
	var e Event
	var args fasthttp.Args
	args.Parse(richQ)
	if err := d.DecodeQuery(&e, &args); err != nil {
		t.Fatal(err)
	}
	want := dump(&e)
	args.Parse(strings.Repeat("x", len(richQ)))
	if got := dump(&e); got != want {
		t.Errorf("event changed with its args:\n%s\nwant\n%s", got, want)
	}
	for i, s := range d.slots {
		if s.rank != 0 || s.v != nil || s.b != nil {
			t.Errorf("slot %d still set after decode: %+v", i, s)
		}
	}
}

func TestDomains(t *testing.T) {
	tests := []struct {
		domain string
		want   []string
	}{
		{"example.com", []string{"example.com"}},
		{"a.com,b.com", []string{"a.com", "b.com"}},
		{" a.com , ,b.com,", []string{"a.com", "b.com"}},
		{",,", nil},
		{"", nil},
	}
	for _, tt := range tests {
		e := Event{Domain: []byte(tt.domain)}
		var got []string
		for d := range e.Domains() {
			got = append(got, string(d))
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("Domains(%q) = %q, want %q", tt.domain, got, tt.want)
		}
		if hasDomain(e.Domain) != (len(tt.want) > 0) {
			t.Errorf("hasDomain(%q) = %v", tt.domain, !(len(tt.want) > 0))
		}
	}
	e := Event{Domain: []byte("a,b,c")}
	n := 0
	for range e.Domains() {
		n++
		break
	}
	if n != 1 {
		t.Errorf("break in Domains loop: %d iterations", n)
	}
}

func TestType(t *testing.T) {
	for typ := TypePageview; typ <= TypeImpression; typ++ {
		got, ok := ParseType([]byte(typ.String()))
		if !ok || got != typ {
			t.Errorf("ParseType(%q) = %v, %v", typ.String(), got, ok)
		}
		if defaultName(typ) == "" && typ != TypeCustom {
			t.Errorf("%v has no default name", typ)
		}
	}
	for _, s := range []string{"", "unknown", "Pageview", "click"} {
		if got, ok := ParseType([]byte(s)); ok {
			t.Errorf("ParseType(%q) = %v, true", s, got)
		}
	}
	if s := Type(200).String(); s != "unknown" {
		t.Errorf("Type(200).String() = %q", s)
	}
}

func TestIsNumber(t *testing.T) {
	for s, want := range map[string]bool{
		"0": true, "12": true, "-1": true, "1.5": true, "1e3": true, "1E+3": true, "2.5e-3": true, "007": true,
		"": false, "-": false, "1.": false, ".5": false, "1e": false, "1e+": false, "+1": false,
		"0x10": false, "1_000": false, "Inf": false, "NaN": false, " 1": false, "1 ": false,
	} {
		if got := isNumber([]byte(s)); got != want {
			t.Errorf("isNumber(%q) = %v, want %v", s, got, want)
		}
	}
}

func TestParseFloat(t *testing.T) {
	for s, want := range map[string]float64{
		"0": 0, "007": 7, "123456789012345": 123456789012345, "1234567890123456": 1234567890123456,
		"18446744073709551616": 18446744073709551616, "1.5": 1.5, "-0": 0, "-2": -2, "1e2": 100,
	} {
		if got, ok := parseFloat([]byte(s)); !ok || got != want || math.Signbit(got) != math.Signbit(want) {
			t.Errorf("parseFloat(%q) = %v, %v; want %v", s, got, ok, want)
		}
	}
	for _, s := range []string{"", "1e999", "-1e999", "x", "1.2.3"} {
		if got, ok := parseFloat([]byte(s)); ok {
			t.Errorf("parseFloat(%q) = %v, true", s, got)
		}
	}
}
