// Package decode turns one analytics event, sent as a JSON body to
// POST /api/event or as query args to GET /p.gif, into a reusable Event.
//
// It accepts Plausible's Events API as Plausible's own tracker sends it, so
// a site can point that tracker at Glimpse unchanged, and Glimpse's own
// fields. Decoding is bounded and validated, and once a Decoder and an
// Event are warm it allocates nothing:
//
//	var d decode.Decoder // pooled per request with its Event
//	var e decode.Event
//	if err := d.DecodeJSON(&e, ctx.PostBody()); err != nil {
//		reason := err.(*decode.Error).Code // stable metrics label
//		...
//	}
//
// # Wire format
//
// The same keys are read from a JSON object and from query args. Where a
// field has several keys, the first one listed that is present wins
// (Plausible's order); keys not listed are ignored, so clients may send
// more. JSON null, and in query args an empty value, count as absent.
//
//	Field            Plausible keys         Glimpse keys          Value
//	---------------  ---------------------  --------------------  ------------------------------------------
//	Name             n, name                                      string (or integer), <= 120 bytes
//	URL              u, url                                       string, required, <= 2048 bytes
//	Domain           d, domain                                    string, required, "a.com" or "a.com,b.com"
//	Referrer         r, referrer                                  string, <= 2048 bytes
//	PropKeys/Values  m, meta, p, props                            object, or JSON string holding an object
//	Revenue*         revenue, $                                   {"amount": 12.5|"12.5", "currency": "EUR"},
//	                                                              object or JSON string; amount 0..1e12
//	HashMode         h, hashMode, hash_mode                       bool, 1 or 0
//	Interactive      i, interactive                               bool, 1 or 0; true when absent
//	ScreenWidth      w                                            integer 0..65535
//	EngagementMS     e                      engagement_time       integer ms, 0..4294967295
//	ScrollDepth      sd                     scroll_depth          integer percent, 0..100
//	Type                                    k, type               pageview|custom|outbound|download|
//	                                                              engagement|impression
//	ConnType                                ct, connection_type   slow-2g|2g|3g|4g
//	Downlink                                dl, downlink          number, Mbit/s
//	RTT                                     rtt                   integer ms, 0..65535
//	SaveData                                sv, save_data         bool, 1 or 0
//	Consent                                 c, consent            bool, 1 or 0
//	UID                                     uid, user_id          string (or integer), <= 256 bytes
//	TargetURL                               tu, target            string, <= 2048 bytes
//
// Glimpse's keys avoid every key Plausible uses ("t" is deliberately not a
// key: it would read as either type or target). In a query string, props
// and revenue travel as percent-encoded JSON; booleans as 1/0/true/false.
// Numbers may also be sent as strings holding a JSON number; fractions of
// integer fields are truncated.
//
// A Plausible pageview and a Glimpse engagement event:
//
//	{"n":"pageview","u":"https://example.com/a?b=1","d":"example.com","r":null,"w":1280}
//	GET /p.gif?k=engagement&u=https%3A%2F%2Fexample.com%2Fa&d=example.com&e=5300&sd=80&ct=4g
//
// # Event type
//
// An explicit type (k) wins. Otherwise the name decides: "pageview" is a
// page view, "Outbound Link: Click" an outbound click, "File Download" a
// download, "engagement" an engagement event, and any other name a custom
// event. Custom events must have a name; other types sent without one get
// the default name above ("impression" for impressions). For outbound
// clicks and downloads without tu, TargetURL is taken from props.url, which
// is where Plausible's tracker puts the link; the prop is kept as well.
// Engagement events must carry e or sd, as in Plausible.
//
// # Props
//
// Props follow Plausible: a value that is null, blank, an object or an
// array is dropped (not rejected), as is a prop with a blank key; numbers
// and booleans are kept as their JSON text ("12.50", "true"). A repeated
// key keeps its last value. More than 30 remaining props, a key over 300
// bytes or a value over 2000 bytes reject the event.
//
// # Errors
//
// Every rejection is one of the package's *Error values: Code is a stable
// reason for metrics, Msg a short text for a 400 body. Input Glimpse
// rejects where Plausible would silently adjust it: a scroll depth over 100
// (Plausible clamps), a referrer over 2048 bytes (Plausible truncates it to
// 2000), more than 30 props (Plausible keeps 30), invalid or partial
// revenue (Plausible drops the revenue), a missing domain (Plausible takes
// the URL's host). An empty revenue object ("$":{}), which Plausible's
// tracker sends for tagged events, is accepted as no revenue.
//
// Body size is bounded by the HTTP layer; the decoder itself is safe on any
// input, and nesting depth is bounded by fastjson's parser.
package decode
