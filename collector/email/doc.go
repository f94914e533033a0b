// Package email is Glimpse's email tracking: signed open pixels
// (GET /e/o/{token}.gif), signed click redirects (GET /e/c/{token}),
// recipient opt-out and opt-in (/e/optout/{token}), minting (Minter, the glimpse
// email CLI, POST /api/email/sign) and the human/machine classifier whose
// rules live in rules.txt.
//
// Tokens are HMAC-SHA256 signed (see the layout beside Signer.Sign); a
// click redirects only to the http(s) URL inside a valid token, so there
// is no open redirect. Glimpse never sees an address: the recipient is a
// pseudonym the sender computes.
//
// What is stored, one events row per recorded open or click:
//
//	type             'email_open' | 'email_click'
//	site_id          the token's site
//	ts               request time (UTC, seconds)
//	email_campaign   the token's campaign id
//	email_recipient  the pseudonym (lower-case hex) or '' when not given
//	email_verdict    'human' | 'machine'
//	email_reason     human:   human, google_proxy, yahoo_proxy
//	                 machine: head, no_ua, scanner_ua, bot_ua, apple_mpp,
//	                          outlook_proxy, datacenter, click_after_send,
//	                          click_after_open
//	target_url       clicks: destination host + path (query dropped)
//	utm_*            clicks: the destination's utm_* parameters
//
// Everything else (visitor_id, session_id, ip_prefix, geo, browser, ...)
// stays empty: no IP address or User-Agent is stored. Opted-out
// recipients get no rows. Each opt-out and opt-in is a row of the
// email_optouts table; a recipient's latest row is its state.
package email
