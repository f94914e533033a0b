package decode

// Error is a rejected event. Every error that DecodeJSON and DecodeQuery
// return is one of the *Error values below, never wrapped, so a caller can
// type-assert it and compare it by identity; returning one allocates nothing.
type Error struct {
	// Code is a short, stable snake_case reason, fit for a metrics label
	// (glimpse_events_dropped_total{reason=...}).
	Code string
	// Msg is a short human explanation, fit for a 400 response body.
	Msg string
}

// Error returns e.Msg.
func (e *Error) Error() string { return e.Msg }

// The reasons an event is rejected.
var (
	ErrMalformedJSON     = &Error{"malformed_json", "request body is not valid JSON"}
	ErrNotObject         = &Error{"not_object", "request body must be a JSON object"}
	ErrFieldType         = &Error{"bad_field_type", "a field has the wrong JSON type"}
	ErrMissingURL        = &Error{"missing_url", "url (u) is required"}
	ErrURLTooLong        = &Error{"url_too_long", "url (u) is longer than 2048 bytes"}
	ErrMissingDomain     = &Error{"missing_domain", "domain (d) is required"}
	ErrDomainTooLong     = &Error{"domain_too_long", "domain (d) is longer than 1024 bytes"}
	ErrMissingName       = &Error{"missing_name", "custom events need a name (n)"}
	ErrNameTooLong       = &Error{"name_too_long", "event name (n) is longer than 120 bytes"}
	ErrReferrerTooLong   = &Error{"referrer_too_long", "referrer (r) is longer than 2048 bytes"}
	ErrUnknownType       = &Error{"unknown_type", "unknown event type (k)"}
	ErrBadProps          = &Error{"bad_props", "props (p) must be an object or a JSON string holding one"}
	ErrTooManyProps      = &Error{"too_many_props", "more than 30 props"}
	ErrPropKeyTooLong    = &Error{"prop_key_too_long", "a prop key is longer than 300 bytes"}
	ErrPropValueTooLong  = &Error{"prop_value_too_long", "a prop value is longer than 2000 bytes"}
	ErrBadRevenue        = &Error{"bad_revenue", "revenue ($) must be an object with amount and currency"}
	ErrBadRevenueAmount  = &Error{"bad_revenue_amount", "revenue amount must be a number from 0 to 1e12"}
	ErrBadCurrency       = &Error{"bad_currency", "revenue currency must be a 3-letter upper-case ISO 4217 code"}
	ErrBadNumber         = &Error{"bad_number", "a numeric field is not a number or is out of range"}
	ErrNegativeNumber    = &Error{"negative_number", "a numeric field is negative"}
	ErrBadBool           = &Error{"bad_bool", "a boolean field is not true, false, 1 or 0"}
	ErrBadScrollDepth    = &Error{"bad_scroll_depth", "scroll depth (sd) is over 100"}
	ErrEmptyEngagement   = &Error{"empty_engagement", "engagement events need engagement time (e) or scroll depth (sd)"}
	ErrBadConnectionType = &Error{"bad_connection_type", "connection type (ct) must be slow-2g, 2g, 3g or 4g"}
	ErrUIDTooLong        = &Error{"uid_too_long", "user id (uid) is longer than 256 bytes"}
	ErrTargetTooLong     = &Error{"target_too_long", "target url (tu) is longer than 2048 bytes"}
)

// Errors returns every error the decoders can return, for example to create
// a metric series per reason up front. The slice is new on every call.
func Errors() []*Error {
	return []*Error{
		ErrMalformedJSON, ErrNotObject, ErrFieldType,
		ErrMissingURL, ErrURLTooLong, ErrMissingDomain, ErrDomainTooLong,
		ErrMissingName, ErrNameTooLong, ErrReferrerTooLong, ErrUnknownType,
		ErrBadProps, ErrTooManyProps, ErrPropKeyTooLong, ErrPropValueTooLong,
		ErrBadRevenue, ErrBadRevenueAmount, ErrBadCurrency,
		ErrBadNumber, ErrNegativeNumber, ErrBadBool, ErrBadScrollDepth,
		ErrEmptyEngagement, ErrBadConnectionType, ErrUIDTooLong, ErrTargetTooLong,
	}
}
