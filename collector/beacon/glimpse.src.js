// Glimpse beacon script: the readable source.
//
// The collector serves glimpse.min.js, which `go generate` builds from this
// file (see script.go); a test fails when the two drift apart or when the
// gzipped build passes 1.5 KB. Embedding is one tag:
//
//   <script defer data-domain="example.com" src="https://collector.example/js/glimpse.js"></script>
//
// Attributes of the tag:
//   data-domain               the site as configured in the collector (default: the page's host)
//   data-api                  the event endpoint (default: /api/event on the script's own origin)
//   data-hash                 hash routing: "#/route" is part of the page path
//   data-download-extensions  comma-separated file extensions counted as downloads
//   data-respect-dnt          stay silent when the browser sends Do-Not-Track
//   data-allow-local          also count on localhost, file: and automated browsers
//
// The script sets no cookie and writes no storage. It only reads
// localStorage.glimpse_ignore, the visitor's own opt-out flag.
((win, doc) => {
  var script = doc.currentScript;
  if (!script) return; // not loaded by a classic <script src> tag

  var loc = win.location;
  var nav = win.navigator;
  var hist = win.history;
  var on = (target, type, fn, opts) => target.addEventListener(type, fn, opts);
  var data = script.dataset;

  var domain = data.domain || loc.hostname;
  var endpoint = data.api || new URL('/api/event', script.src);
  var hashMode = 'hash' in data;
  var downloads = new RegExp(
    '\\.(' +
      (
        data.downloadExtensions ||
        'pdf,docx?,xlsx?,pptx?,csv,txt,zip,t?gz,rar,7z,dmg,exe,msi,pkg,apk,iso,mp[34],mov'
      )
        .split(/[\s,.]+/)
        .join('|') +
      ')$',
    'i'
  );

  // silent reports an opt-out, checked before every event: the visitor may
  // set the flag while the page is open.
  function silent() {
    var ignored;
    try {
      ignored = win.localStorage.glimpse_ignore === 'true';
    } catch (e) {
      // Storage blocked: no flag can have been set.
    }
    return (
      ignored ||
      nav.globalPrivacyControl ||
      ('respectDnt' in data && nav.doNotTrack == '1') ||
      (!('allowLocal' in data) &&
        (/^(localhost|127(\.\d+){3}|\[::1\])$|\.localhost$/.test(loc.hostname) ||
          loc.protocol == 'file:' ||
          nav.webdriver))
    );
  }

  // send posts one event. sendBeacon survives the page going away and sends
  // text/plain, which needs no CORS preflight; a full beacon queue falls
  // back to a keepalive fetch.
  function send(type, fields) {
    if (silent()) return;
    var conn = nav.connection || {};
    var event = Object.assign({
      k: type,
      d: domain,
      u: loc.href,
      r: doc.referrer,
      w: screen.width,
      h: hashMode,
      ct: conn.effectiveType,
      dl: conn.downlink,
      rtt: conn.rtt,
      sv: conn.saveData,
    }, fields);
    var body = JSON.stringify(event);
    nav.sendBeacon(endpoint, body) ||
      fetch(endpoint, { method: 'POST', body: body, keepalive: true, credentials: 'include' }).catch(() => {});
  }

  // The current page: its path (the key that tells a new view from a
  // repeat), its URL, visible time and deepest scroll.
  var path, pageURL, visibleMs, visibleSince, maxScroll, engagementSent;

  var visible = () => doc.visibilityState == 'visible';

  function measureScroll() {
    var height = doc.documentElement.scrollHeight;
    var depth = Math.min(100, Math.round(((win.scrollY + win.innerHeight) / height) * 100));
    if (depth > maxScroll) maxScroll = depth;
  }

  function stopClock() {
    if (visibleSince) visibleMs += Date.now() - visibleSince;
    visibleSince = 0;
  }

  // sendEngagement reports the current page once: when it is hidden, left,
  // or replaced by a client-side navigation.
  function sendEngagement() {
    if (engagementSent || !pageURL) return;
    engagementSent = 1;
    stopClock();
    measureScroll();
    send('engagement', { u: pageURL, e: visibleMs, sd: maxScroll });
  }

  function pageview() {
    var next = loc.pathname + (hashMode ? loc.hash : '');
    if (next === path) return;
    sendEngagement();
    path = next;
    pageURL = loc.href;
    visibleMs = maxScroll = engagementSent = 0;
    visibleSince = visible() ? Date.now() : 0;
    measureScroll();
    send('pageview');
  }

  var custom = (name, opts = {}) => send('custom', { n: name, p: opts.props, $: opts.revenue, i: opts.interactive });

  // Calls made before the script ran wait in glimpse.q (see the snippet in
  // README.md); calls made before start() wait in the same queue.
  var queue = (win.glimpse && win.glimpse.q) || [];
  win.glimpse = (...args) => (queue ? queue.push(args) : custom(...args));

  function onClick(e) {
    if (e.button > 1) return; // auxclick: the middle button only
    var link = e.target.closest && e.target.closest('a[href]');
    if (!link || !/^https?:$/.test(link.protocol)) return;
    var download = link.hasAttribute('download') || downloads.test(link.pathname);
    if (download || link.host != loc.host) send(download ? 'download' : 'outbound', { tu: link.href });
  }

  // start runs once the page is shown: at once, or when a prerendered page
  // is activated.
  function start() {
    pageview();
    queue.forEach((args) => custom(...args));
    queue = 0;

    ['pushState', 'replaceState'].forEach((name) => {
      var original = hist[name];
      hist[name] = function () {
        original.apply(this, arguments); // returns undefined
        pageview();
      };
    });
    on(win, 'popstate', pageview);
    if (hashMode) on(win, 'hashchange', pageview);
    // A page restored from the back/forward cache is viewed again.
    on(win, 'pageshow', (e) => {
      if (e.persisted) {
        path = 0;
        pageview();
      }
    });

    on(doc, 'visibilitychange', () => {
      if (!visible()) {
        stopClock();
        sendEngagement();
      } else if (!visibleSince) {
        visibleSince = Date.now();
      }
    });
    on(win, 'pagehide', sendEngagement);
    on(win, 'scroll', measureScroll, { passive: true });
    on(doc, 'click', onClick, true);
    on(doc, 'auxclick', onClick, true);

    // Impressions: an element with data-glimpse-impression="name" counts
    // once, when at least half of it is visible; elements added later are
    // picked up too.
    if (win.IntersectionObserver) {
      var observer = new IntersectionObserver(
        (entries) => {
          entries.forEach((entry) => {
            if (entry.intersectionRatio >= 0.5) {
              observer.unobserve(entry.target);
              send('impression', { n: entry.target.dataset.glimpseImpression, i: false });
            }
          });
        },
        { threshold: 0.5 }
      );
      var scan = () => {
        doc.querySelectorAll('[data-glimpse-impression]').forEach((el) => {
          if (!el.glimpseSeen) {
            el.glimpseSeen = 1;
            observer.observe(el);
          }
        });
      };
      scan();
      new MutationObserver(scan).observe(doc.documentElement, { childList: true, subtree: true });
    }
  }

  if (doc.prerendering) on(doc, 'prerenderingchange', start, { once: true });
  else start();
})(window, document);
