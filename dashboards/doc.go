// Package dashboards serves Glimpse's web dashboard: server-rendered
// sign-in and site-list pages, and a per-site page whose script (embedded,
// written in this project, no third-party code) reads the Stats API's
// answers through the dashboard's own JSON endpoints, which call the same
// aggregator.Engine (aggregator/api.HandlersWith) but authorize by a
// session cookie or a shared link's token instead of a Bearer key.
//
// Security:
//   - every response carries a strict Content-Security-Policy (scripts,
//     styles and images from this origin only, no inline script, no
//     framing), X-Frame-Options: DENY and Referrer-Policy: no-referrer;
//   - users come from the sites file (users:, bcrypt or argon2id hashes);
//     a sign-in sets an HttpOnly, SameSite=Strict session cookie (Secure
//     over TLS or with Options.HTTPS) whose id lives in memory;
//   - with Options.HTTPS every response carries Strict-Transport-Security;
//   - failed sign-ins are throttled per e-mail address and per client
//     network (Options.ClientNet: serve counts the client behind trusted
//     proxies, by the /24 or /48 the collector stores), each attempt
//     counted before its password check;
//   - every form (sign-in, sign-out) carries a CSRF token checked against
//     a cookie (sign-in) or the session (sign-out), and a cross-site
//     Origin or Sec-Fetch-Site is refused;
//   - a shared link (sites[].shared_links) reads one site with its token
//     in the URL; the page passes it on to the JSON endpoints as auth=;
//   - the JSON and CSV endpoints are rate-limited per reader (a user, a
//     shared link) and per client network, with 429 and Retry-After
//     (internal/ratelimit, the Stats API's buckets).
//
// Grafana dashboards for the ClickHouse data source live in grafana/.
package dashboards
