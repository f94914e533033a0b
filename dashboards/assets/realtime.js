// Glimpse dashboard: the realtime view (?view=realtime). The last 30
// minutes of one site: current visitors, visitors and page views per
// minute, top pages, sources and countries, polled every 20 s while the
// tab is visible. Every number comes from the Stats API (period=30m), so
// the k threshold and, on a noisy site, the noise and the release up to
// the last full minute apply as they do everywhere else. Text only: values
// reach the DOM as text nodes.
'use strict';
(function () {
  const app = document.getElementById('app');
  const view = document.getElementById('realtime-view');
  const tabs = document.getElementById('views');
  if (!app || !view || !tabs) return;
  const SITE = app.dataset.site;
  const K = Number(app.dataset.k);
  const NOISY = app.dataset.noisy === 'true';
  const API = '/dashboard/api/';
  const AUTH = new URL(location.href).searchParams.get('auth') || '';
  const POLL_MS = 20000;
  const nf = new Intl.NumberFormat('en-US');
  const regionNames = (() => { try { return new Intl.DisplayNames(['en'], { type: 'region' }); } catch (e) { return null; } })();

  const { el, svg, clear } = window.GlimpseDOM; // dom.js

  const isRealtime = () => new URL(location.href).searchParams.get('view') === 'realtime';
  // switchTo changes the view in the URL; app.js redraws the overview on
  // popstate, as it does for the back button.
  function switchTo(realtime) {
    const u = new URL(location.href);
    if (realtime) u.searchParams.set('view', 'realtime'); else u.searchParams.delete('view');
    if (u.href === location.href) return;
    history.pushState(null, '', u.pathname + u.search);
    window.dispatchEvent(new PopStateEvent('popstate'));
  }
  for (const b of tabs.querySelectorAll('[data-view]')) b.addEventListener('click', () => switchTo(b.dataset.view === 'realtime'));
  // Arrow keys move between the two tabs, as a tab list's should.
  tabs.addEventListener('keydown', (e) => {
    if (e.key !== 'ArrowLeft' && e.key !== 'ArrowRight') return;
    e.preventDefault();
    switchTo(!isRealtime());
    tabs.querySelector('[aria-selected=true]').focus();
  });

  function params(extra) {
    const q = new URL(location.href).searchParams;
    const p = new URLSearchParams({ site_id: SITE, period: '30m' });
    if (q.get('filters')) p.set('filters', q.get('filters'));
    if (AUTH) p.set('auth', AUTH);
    for (const [k, v] of Object.entries(extra || {})) p.set(k, v);
    return p;
  }
  async function api(endpoint, p) {
    const res = await fetch(API + endpoint + '?' + p.toString(), { credentials: 'same-origin', headers: { Accept: 'application/json' } });
    let body = null;
    try { body = await res.json(); } catch (e) { /* not JSON */ }
    if (!res.ok) {
      if (res.status === 401) location.href = '/dashboard/login?next=' + encodeURIComponent(location.pathname + location.search);
      throw new Error((body && body.error) || ('HTTP ' + res.status));
    }
    return body;
  }

  // ---- the view's parts ------------------------------------------------------
  const BOXES = [
    { id: 'pages', title: 'Top pages', col: 'Page', prop: 'event:page', key: 'page' },
    { id: 'sources', title: 'Sources', col: 'Source', prop: 'visit:source', key: 'source' },
    { id: 'countries', title: 'Countries', col: 'Country', prop: 'visit:country', key: 'country' },
  ];
  const current = el('span', { class: 'rt-value', id: 'rt-current', text: '–' });
  const visitors = el('span', { class: 'rt-value', id: 'rt-visitors', text: '–' });
  const pageviews = el('span', { class: 'rt-value', id: 'rt-pageviews', text: '–' });
  const updated = el('p', { class: 'rt-updated muted', id: 'rt-updated', 'aria-live': 'polite' });
  const chart = el('div', { class: 'rt-chart', id: 'rt-chart' });
  const chartNote = el('p', { class: 'note', id: 'rt-chart-note' });
  const filtered = el('p', { class: 'rt-filtered muted', id: 'rt-filtered' });
  view.append(
    el('div', { class: 'rt-head' },
      el('h2', { text: 'Realtime: the last 30 minutes' }), updated),
    filtered,
    el('div', { class: 'rt-kpis' },
      el('div', { class: 'rt-kpi' }, el('span', { class: 'kpi-label', text: 'Current visitors (5 min)' }), current),
      el('div', { class: 'rt-kpi' }, el('span', { class: 'kpi-label', text: 'Visitors (30 min)' }), visitors),
      el('div', { class: 'rt-kpi' }, el('span', { class: 'kpi-label', text: 'Pageviews (30 min)' }), pageviews)),
    el('section', { class: 'card rt-chart-card' },
      el('div', { class: 'panel-head' }, el('h2', { text: 'Per minute' }),
        el('p', { class: 'legend rt-legend' },
          el('span', { class: 'legend-item' }, el('span', { class: 'rt-swatch views', 'aria-hidden': 'true' }), ' Pageviews'),
          el('span', { class: 'legend-item' }, el('span', { class: 'rt-swatch visitors', 'aria-hidden': 'true' }), ' Visitors'))),
      el('div', { class: 'status', id: 'rt-chart-status' }), chart, chartNote),
    el('div', { class: 'panels rt-panels' }, ...BOXES.map((b) => el('section', { class: 'card rt-box', id: 'rt-' + b.id },
      el('div', { class: 'panel-head' }, el('h2', { text: b.title })),
      el('div', { class: 'status' }), el('div', { class: 'rows' }), el('p', { class: 'note' })))));

  function setValue(node, v, withheld) {
    if (v === null || v === undefined) {
      node.textContent = '—';
      node.dataset.value = '';
      node.title = withheld || '';
      return;
    }
    node.textContent = nf.format(v);
    node.dataset.value = String(v);
    node.title = '';
  }

  let lastRows = null;
  function drawChart(rows) {
    lastRows = rows;
    clear(chart);
    const W = Math.max(280, chart.clientWidth || 600), H = 180;
    const padL = 36, padR = 6, padT = 8, padB = 22;
    const n = rows.length;
    const num = (v) => (v === null || v === undefined ? null : Number(v));
    const maxV = Math.max(1, ...rows.map((r) => num(r.pageviews) || 0), ...rows.map((r) => num(r.visitors) || 0));
    const slot = (W - padL - padR) / Math.max(n, 1);
    const y = (v) => padT + (H - padT - padB) * (1 - v / maxV);
    const root = svg('svg', { viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: 'img', class: 'chart-svg', 'aria-label': 'Visitors and pageviews per minute, the last 30 minutes' });
    for (const v of [0, maxV / 2, maxV]) {
      root.append(svg('line', { x1: padL, x2: W - padR, y1: y(v), y2: y(v), class: 'grid' }));
      root.append(svg('text', { x: padL - 4, y: y(v) + 4, 'text-anchor': 'end', class: 'axis' }, nf.format(Math.round(v))));
    }
    rows.forEach((r, i) => {
      const x = padL + i * slot;
      const minute = String(r.date).slice(11, 16);
      const g = svg('g', { class: 'rt-minute', 'data-minute': minute, 'data-visitors': r.visitors === null ? '' : r.visitors, 'data-pageviews': r.pageviews === null ? '' : r.pageviews });
      const pv = num(r.pageviews), vi = num(r.visitors);
      g.append(svg('title', {}, minute + ': ' + (r.withheld ? 'withheld (under ' + K + ' visitors)' : nf.format(vi) + ' visitors, ' + nf.format(pv) + ' pageviews')));
      if (pv !== null) g.append(svg('rect', { x: x + slot * 0.1, y: y(pv), width: Math.max(1, slot * 0.8), height: Math.max(0, y(0) - y(pv)), class: 'rt-bar views' }));
      if (vi !== null) g.append(svg('rect', { x: x + slot * 0.3, y: y(vi), width: Math.max(1, slot * 0.4), height: Math.max(0, y(0) - y(vi)), class: 'rt-bar visitors' }));
      if (r.withheld) g.append(svg('rect', { x: x + slot * 0.1, y: y(0) - 3, width: Math.max(1, slot * 0.8), height: 3, class: 'rt-bar withheld' }));
      // The whole column takes the pointer, for the title.
      g.append(svg('rect', { x: x, y: padT, width: slot, height: H - padT - padB, class: 'overlay' }));
      root.append(g);
    });
    const ticks = Math.max(2, Math.min(6, Math.floor((W - padL - padR) / 70)));
    for (let k = 0; k < ticks && n > 0; k++) {
      const i = Math.round((k * (n - 1)) / (ticks - 1));
      root.append(svg('text', { x: padL + (i + 0.5) * slot, y: H - 6, 'text-anchor': k === 0 ? 'start' : k === ticks - 1 ? 'end' : 'middle', class: 'axis' }, String(rows[i].date).slice(11, 16)));
    }
    chart.append(root);
  }

  function drawBox(b, res) {
    const node = document.getElementById('rt-' + b.id);
    const rowsNode = clear(node.querySelector('.rows'));
    const note = node.querySelector('.note');
    const rows = res.results || [];
    if (!rows.length) {
      rowsNode.append(el('p', { class: 'empty muted', text: 'Nobody in the last 30 minutes.' }));
    } else {
      const top = Math.max(1, ...rows.map((r) => Number(r.visitors) || 0));
      const body = el('tbody');
      for (const r of rows) {
        const value = String(r[b.key]);
        let shown = value === '' ? '(none)' : value;
        if (b.key === 'country' && regionNames && /^[A-Z]{2}$/.test(value)) { try { shown = regionNames.of(value) + ' (' + value + ')'; } catch (e) { /* keep the code */ } }
        const bar = el('span', { class: 'bar' });
        bar.style.width = Math.round((100 * (Number(r.visitors) || 0)) / top) + '%';
        body.append(el('tr', { class: value === '(other)' ? 'other' : '', 'data-value': value },
          el('td', { class: 'label' }, bar, el('span', { class: 'text', text: shown, title: shown })),
          el('td', { class: 'num', text: r.visitors === null || r.visitors === undefined ? '—' : nf.format(r.visitors) })));
      }
      rowsNode.append(el('table', { class: 'breakdown' },
        el('thead', {}, el('tr', {}, el('th', { scope: 'col', text: b.col }), el('th', { scope: 'col', class: 'num', text: 'Visitors' }))),
        body));
    }
    const m = res.meta || {};
    const folded = m.folded_rows || 0;
    note.className = 'note' + (folded ? ' folded' : '');
    note.textContent = folded ? (NOISY ? 'About ' : '') + folded + (folded === 1 ? ' row' : ' rows') + ' with fewer than ' + K + ' visitors ' + (m.other_shown ? 'folded into (other).' : 'folded away.') : '';
  }

  function status(node, text, cls) { node.className = 'status' + (cls ? ' ' + cls : ''); node.textContent = text || ''; }

  // ---- polling ------------------------------------------------------------------
  let timer = 0, polls = 0, busy = false;
  async function poll() {
    clearTimeout(timer);
    timer = 0;
    if (!isRealtime() || busy) return;
    if (document.visibilityState !== 'visible') return; // resumed on visibilitychange
    busy = true;
    const q = new URL(location.href).searchParams.get('filters');
    filtered.textContent = q ? 'Filtered by the dashboard\'s filters (current visitors are the whole site).' : '';
    const jobs = [
      api('realtime/visitors', new URLSearchParams(AUTH ? { site_id: SITE, auth: AUTH } : { site_id: SITE })).then((n) => setValue(current, n)),
      api('aggregate', params({ metrics: 'visitors,pageviews' })).then((res) => {
        const r = res.results;
        setValue(visitors, r.visitors.value, r.visitors.withheld);
        setValue(pageviews, r.pageviews.value, r.pageviews.withheld);
      }),
      api('timeseries', params({ interval: 'minute', metrics: 'visitors,pageviews' })).then((res) => {
        let rows = res.results;
        const m = res.meta || {};
        // A noisy site releases whole minutes only: the current minute
        // (after released_until) read nothing and is left out.
        if (m.released_until && rows.length) rows = rows.slice(0, -1);
        drawChart(rows);
        const withheld = rows.filter((r) => r.withheld).length;
        chartNote.className = 'note' + (withheld ? ' folded' : '');
        chartNote.textContent = (withheld ? withheld + (withheld === 1 ? ' minute' : ' minutes') + ' withheld: fewer than ' + K + ' visitors matched the filters. ' : '') +
          (NOISY ? 'Approximate numbers, up to the last full minute.' : '');
        status(document.getElementById('rt-chart-status'), '');
      }).catch((e) => { status(document.getElementById('rt-chart-status'), 'The chart could not load: ' + e.message, 'error'); }),
      ...BOXES.map((b) => api('breakdown', params({ property: b.prop, metrics: 'visitors', limit: '10' })).then((res) => {
        status(document.querySelector('#rt-' + b.id + ' .status'), '');
        drawBox(b, res);
      }).catch((e) => status(document.querySelector('#rt-' + b.id + ' .status'), 'Could not load: ' + e.message, 'error'))),
    ];
    const results = await Promise.allSettled(jobs);
    busy = false;
    polls++;
    const failed = results.find((r) => r.status === 'rejected');
    updated.dataset.polls = String(polls);
    updated.textContent = failed ? 'Could not refresh: ' + failed.reason.message : 'Updated ' + new Date().toLocaleTimeString('en-GB') + ', every ' + POLL_MS / 1000 + ' s';
    if (isRealtime()) timer = setTimeout(poll, POLL_MS);
  }

  function show() {
    const on = isRealtime();
    document.body.classList.toggle('view-realtime', on);
    view.hidden = !on;
    for (const b of tabs.querySelectorAll('[data-view]')) {
      const sel = (b.dataset.view === 'realtime') === on;
      b.setAttribute('aria-selected', String(sel));
      b.tabIndex = sel ? 0 : -1;
    }
    if (on) poll(); else { clearTimeout(timer); timer = 0; }
  }
  document.addEventListener('visibilitychange', () => { if (document.visibilityState === 'visible' && isRealtime() && !busy) poll(); });
  window.addEventListener('popstate', show);
  let resizeTimer = 0;
  window.addEventListener('resize', () => { clearTimeout(resizeTimer); resizeTimer = setTimeout(() => { if (isRealtime() && lastRows) drawChart(lastRows); }, 150); });
  show();
})();
