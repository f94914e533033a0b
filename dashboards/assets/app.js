// Glimpse dashboard: one site's page. Written for this project; no
// framework, no third-party code. Everything a visitor could have supplied
// (paths, referrers, UTM values, properties) reaches the DOM as text nodes
// or attribute values set through the DOM, never as markup.
'use strict';
(function () {
  const app = document.getElementById('app');
  if (!app) return;
  const SITE = app.dataset.site;
  const K = Number(app.dataset.k);
  const API = '/dashboard/api/';
  const page = new URL(location.href);
  const AUTH = page.searchParams.get('auth') || '';
  const TZ = app.dataset.tz || 'UTC';
  // NOISY: every number carries noise (disclosure control); the page says so.
  const NOISY = app.dataset.noisy === 'true';

  // A site without any event yet shows its install snippet; look for the
  // first visitor every 5 s, then show the dashboard.
  if (document.getElementById('install')) {
    const look = async () => {
      try {
        const q = new URLSearchParams(AUTH ? { site_id: SITE, auth: AUTH } : { site_id: SITE });
        const res = await fetch(API + 'realtime/visitors?' + q, { credentials: 'same-origin', headers: { Accept: 'application/json' } });
        if (res.ok && Number(await res.json()) > 0) { location.reload(); return; }
      } catch (e) { /* look again */ }
      setTimeout(look, 5000);
    };
    setTimeout(look, 5000);
    return;
  }

  // ---- DOM helpers: text only ------------------------------------------
  const { el, svg, clear } = window.GlimpseDOM; // dom.js

  // ---- formatting -------------------------------------------------------
  const nf = new Intl.NumberFormat('en-US');
  const regionNames = (() => { try { return new Intl.DisplayNames(['en'], { type: 'region' }); } catch (e) { return null; } })();
  function duration(s) {
    s = Math.round(s || 0);
    if (s < 60) return s + 's';
    const m = Math.floor(s / 60);
    if (m < 60) return m + 'm ' + (s % 60) + 's';
    return Math.floor(m / 60) + 'h ' + (m % 60) + 'm';
  }
  function compact(n) {
    if (n >= 1e6) return (n / 1e6).toFixed(n >= 1e7 ? 0 : 1) + 'M';
    if (n >= 1e4) return (n / 1e3).toFixed(n >= 1e5 ? 0 : 1) + 'k';
    return nf.format(n);
  }
  const METRICS = {
    visitors: { label: 'Unique visitors', short: 'Visitors', fmt: (v) => nf.format(v) },
    visits: { label: 'Visits', fmt: (v) => nf.format(v) },
    pageviews: { label: 'Pageviews', short: 'Views', fmt: (v) => nf.format(v) },
    views_per_visit: { label: 'Views per visit', fmt: (v) => String(v) },
    bounce_rate: { label: 'Bounce rate', fmt: (v) => v + '%', rate: true, lowerIsBetter: true },
    visit_duration: { label: 'Visit duration', fmt: duration },
    time_on_page: { label: 'Engaged time per page', fmt: duration },
    scroll_depth: { label: 'Scroll depth', fmt: (v) => v + '%' },
    events: { label: 'Events', fmt: (v) => nf.format(v) },
    email_opens: { label: 'Opens (human)', fmt: (v) => nf.format(v) },
    email_machine_opens: { label: 'Opens (machine)', fmt: (v) => nf.format(v) },
    email_clicks: { label: 'Clicks', fmt: (v) => nf.format(v) },
    click_through_rate: { label: 'Click-through', fmt: (v) => v + '%' },
    email_unique_opens: { label: 'Unique opens', fmt: (v) => nf.format(v) },
    click_to_open_rate: { label: 'Click-to-open', fmt: (v) => v + '%' },
    // Revenue is a money object per currency (never converted): one
    // line per currency.
    total_revenue: { label: 'Revenue', money: true, fmt: moneyText },
    average_revenue: { label: 'Average revenue', short: 'Average', money: true, fmt: moneyText },
  };
  // moneyEach lists a money object's currencies; moneyText is its short form.
  function moneyEach(v) { return v ? (v.by_currency || (v.currency ? [v] : [])) : []; }
  function moneyText(v) { const each = moneyEach(v); return each.length ? each.map((x) => x.short).join(' ') : '—'; }
  function moneyCell(v) {
    const each = moneyEach(v);
    if (!each.length) return el('td', { class: 'num money muted', text: '—', title: 'no revenue' });
    const td = el('td', { class: 'num money', title: each.map((x) => x.long).join(', ') });
    for (const x of each) td.append(el('span', { class: 'cur', 'data-currency': x.currency, 'data-value': String(x.value), text: x.short }));
    return td;
  }
  const KPIS = ['visitors', 'visits', 'pageviews', 'views_per_visit', 'bounce_rate', 'visit_duration', 'time_on_page', 'scroll_depth'];

  // ---- properties and panels ---------------------------------------------
  // The label of each dimension, from the dimensions table (internal/model).
  const PROPS = JSON.parse(document.getElementById('labels').textContent);
  function propLabel(p) {
    if (p.startsWith('event:props:')) return 'Property ' + p.slice(12);
    return PROPS[p] || p;
  }
  const PANELS = [
    { id: 'sources', title: 'Sources', tabs: [
      { label: 'Channels', prop: 'visit:channel' }, { label: 'Sources', prop: 'visit:source' },
      { label: 'Referrers', prop: 'visit:referrer' },
      { label: 'UTM source', prop: 'visit:utm_source' }, { label: 'UTM medium', prop: 'visit:utm_medium' },
      { label: 'UTM campaign', prop: 'visit:utm_campaign' }, { label: 'UTM content', prop: 'visit:utm_content' },
      { label: 'UTM term', prop: 'visit:utm_term' }] },
    { id: 'pages', title: 'Pages', tabs: [
      { label: 'Top pages', prop: 'event:page', metrics: ['visitors', 'pageviews'] },
      { label: 'Entry pages', prop: 'visit:entry_page', metrics: ['visitors', 'visits'] },
      { label: 'Exit pages', prop: 'visit:exit_page', metrics: ['visitors', 'visits'] }] },
    { id: 'locations', title: 'Locations', tabs: [
      { label: 'Countries', prop: 'visit:country' }, { label: 'Regions', prop: 'visit:region' },
      { label: 'Cities', prop: 'visit:city' }] },
    { id: 'devices', title: 'Devices', tabs: [
      { label: 'Browsers', prop: 'visit:browser' }, { label: 'Systems', prop: 'visit:os' },
      { label: 'Devices', prop: 'visit:device' }, { label: 'Screens', prop: 'visit:screen' },
      { label: 'Connections', prop: 'visit:connection' }] },
    { id: 'goals', title: 'Goals and events', tabs: [
      // Revenue columns show when a goal earned some in the period.
      { label: 'Goals', prop: 'event:goal', metrics: ['visitors', 'events', 'total_revenue', 'average_revenue'] },
      { label: 'Properties', prop: 'event:props:', metrics: ['visitors', 'events'], askKey: true },
      { label: 'Outbound links', prop: 'event:outbound_link', metrics: ['visitors', 'events'] },
      { label: 'Downloads', prop: 'event:download', metrics: ['visitors', 'events'] },
      { label: 'Impressions', prop: 'event:impression', metrics: ['visitors', 'events'] }] },
    { id: 'email', title: 'Email campaigns', wide: true, tabs: [
      { label: 'Campaigns', prop: 'email:campaign',
        metrics: ['email_opens', 'email_machine_opens', 'email_unique_opens', 'email_clicks', 'click_to_open_rate'],
        empty: 'No email opens or clicks in this period. Opens and clicks of tracked emails (glimpse email pixel | link) show here.' }] },
  ];

  // ---- state in the URL ----------------------------------------------------
  function state() {
    const q = new URL(location.href).searchParams;
    return {
      period: q.get('period') || '30d',
      date: q.get('date') || '',
      filters: q.get('filters') || '',
      metric: q.get('metric') || 'visitors',
      interval: q.get('interval') || '',
      prop: q.get('prop') || '',
      // compare: '' (off: the key figures still change against the
      // previous period), previous_period, year_over_year or custom with
      // compare_date "YYYY-MM-DD,YYYY-MM-DD".
      compare: COMPARE_MODES[q.get('compare')] ? q.get('compare') : '',
      compareDate: q.get('compare_date') || '',
    };
  }
  const COMPARE_MODES = { previous_period: 'the previous period', year_over_year: 'the same dates a year before', custom: 'the chosen dates' };
  // comparing reports whether the chart and panels show a comparison.
  const comparing = (st) => st.compare !== '' && (st.compare !== 'custom' || /^\d{4}-\d{2}-\d{2},\d{4}-\d{2}-\d{2}$/.test(st.compareDate));
  function navigate(change) {
    const u = new URL(location.href);
    for (const [k, v] of Object.entries(change)) {
      if (v === '' || v === null || v === undefined) u.searchParams.delete(k); else u.searchParams.set(k, v);
    }
    if (u.href === location.href) return;
    history.pushState(null, '', u.pathname + u.search);
    load();
  }
  window.addEventListener('popstate', load);

  // Plausible v1 filter syntax: clauses joined by ";", alternatives by "|",
  // both escaped with "\" inside values.
  function splitEsc(s, sep) {
    const out = []; let cur = '';
    for (let i = 0; i < s.length; i++) {
      if (s[i] === '\\' && i + 1 < s.length) { cur += s[i] + s[i + 1]; i++; continue; }
      if (s[i] === sep) { out.push(cur); cur = ''; continue; }
      cur += s[i];
    }
    out.push(cur);
    return out;
  }
  const esc = (v) => v.replace(/[\\|;]/g, (c) => '\\' + c);
  const unesc = (v) => v.replace(/\\(.)/g, '$1');
  // Operators: == is, != is not, ~ contains, !~ does not contain (also
  // written ==~ and !=~), as aggregator/filter.go reads them.
  const OPS = { '==': 'is', '!=': 'is not', '~': 'contains', '!~': 'does not contain' };
  function parseFilters(s) {
    if (!s) return [];
    return splitEsc(s, ';').filter(Boolean).map((c) => {
      const i = c.search(/[=!~]/);
      if (i < 0) return { prop: c, op: '==', values: [''], raw: c };
      const op = ['==~', '!=~', '==', '!=', '!~', '~'].find((o) => c.startsWith(o, i)) || '==';
      const norm = op === '==~' ? '~' : op === '!=~' ? '!~' : op;
      return { prop: c.slice(0, i), op: norm, values: splitEsc(c.slice(i + op.length), '|').map(unesc), raw: c };
    });
  }
  function addFilter(prop, value) {
    const st = state();
    const fs = parseFilters(st.filters).filter((f) => f.prop !== prop).map((f) => f.raw);
    fs.push(prop + '==' + esc(value));
    navigate({ filters: fs.join(';') });
  }
  function removeFilter(raw) {
    const st = state();
    navigate({ filters: parseFilters(st.filters).filter((f) => f.raw !== raw).map((f) => f.raw).join(';') });
  }

  // ---- dates -------------------------------------------------------------
  function today() {
    try { return new Intl.DateTimeFormat('en-CA', { timeZone: TZ, year: 'numeric', month: '2-digit', day: '2-digit' }).format(new Date()); } catch (e) { return new Date().toISOString().slice(0, 10); }
  }
  function shiftDay(d, n) {
    const t = new Date(d + 'T12:00:00Z'); t.setUTCDate(t.getUTCDate() + n); return t.toISOString().slice(0, 10);
  }
  function lastOfPrevMonth(d) { return shiftDay(d.slice(0, 8) + '01', -1); }
  function presetOf(st) {
    if (st.period === 'day' && st.date === shiftDay(today(), -1)) return 'yesterday';
    if (st.period === 'month' && st.date && st.date.slice(0, 7) === lastOfPrevMonth(today()).slice(0, 7)) return 'lastmonth';
    return st.period;
  }
  function periodDays(st) {
    switch (st.period) {
      case 'day': return 1;
      case '7d': return 7;
      case '30d': return 30;
      case 'month': return 31;
      case '6mo': return 184;
      case '12mo': return 366;
      case 'custom': {
        const [a, b] = st.date.split(',');
        return (Date.parse(b) - Date.parse(a)) / 864e5 + 1 || 30;
      }
    }
    return 30;
  }
  // rangeStart is the first day of the period (YYYY-MM-DD, the site's time zone).
  function rangeStart(st) {
    if (st.period === 'custom') return st.date.split(',')[0];
    const end = (st.date || today()).slice(0, 10);
    switch (st.period) {
      case '7d': return shiftDay(end, -6);
      case '30d': return shiftDay(end, -29);
      case 'month': return end.slice(0, 8) + '01';
      case '6mo': case '12mo': {
        const t = new Date(end.slice(0, 8) + '01T12:00:00Z');
        t.setUTCMonth(t.getUTCMonth() - (st.period === '6mo' ? 5 : 11));
        return t.toISOString().slice(0, 10);
      }
    }
    return end;
  }
  function defaultInterval(st) {
    if (st.period === 'day') return 'hour';
    if (st.period === '6mo' || st.period === '12mo') return 'month';
    return 'date';
  }

  // ---- API -----------------------------------------------------------------
  function params(st, extra) {
    const p = new URLSearchParams({ site_id: SITE, period: st.period });
    if (st.date) p.set('date', st.date);
    if (st.filters) p.set('filters', st.filters);
    if (comparing(st)) {
      p.set('compare', st.compare);
      if (st.compare === 'custom') p.set('compare_date', st.compareDate);
    }
    if (AUTH) p.set('auth', AUTH);
    for (const [k, v] of Object.entries(extra || {})) p.set(k, v);
    return p;
  }
  async function api(endpoint, p) {
    const res = await fetch(API + endpoint + '?' + p.toString(), { credentials: 'same-origin', headers: { Accept: 'application/json' } });
    let body = null;
    try { body = await res.json(); } catch (e) { /* not JSON */ }
    if (!res.ok) {
      if (res.status === 401) { location.href = '/dashboard/login?next=' + encodeURIComponent(location.pathname + location.search); }
      throw new Error((body && body.error) || ('HTTP ' + res.status));
    }
    return body;
  }

  // ---- controls --------------------------------------------------------------
  const periodSel = document.getElementById('period');
  const customBox = document.getElementById('custom');
  const fromIn = document.getElementById('from');
  const toIn = document.getElementById('to');
  const metricSel = document.getElementById('metric');
  const intervalSel = document.getElementById('interval');
  for (const m of KPIS) metricSel.append(el('option', { value: m, text: METRICS[m].label }));

  periodSel.addEventListener('change', () => {
    const v = periodSel.value;
    const t = today();
    if (v === 'custom') {
      customBox.hidden = false;
      if (!fromIn.value) { fromIn.value = shiftDay(t, -13); toIn.value = t; }
      return;
    }
    const change = { period: v, date: '', interval: '' };
    if (v === 'yesterday') { change.period = 'day'; change.date = shiftDay(t, -1); }
    if (v === 'lastmonth') { change.period = 'month'; change.date = lastOfPrevMonth(t); }
    navigate(change);
  });
  document.getElementById('apply').addEventListener('click', () => {
    if (!fromIn.value || !toIn.value) return;
    let a = fromIn.value, b = toIn.value;
    if (a > b) [a, b] = [b, a];
    navigate({ period: 'custom', date: a + ',' + b, interval: '' });
  });
  const compareSel = document.getElementById('compare');
  const compareBox = document.getElementById('compare-custom');
  const cFromIn = document.getElementById('compare-from');
  const cToIn = document.getElementById('compare-to');
  compareSel.addEventListener('change', () => {
    const v = compareSel.value;
    if (v === 'custom') {
      compareBox.hidden = false;
      if (!cFromIn.value) {
        // A first guess: the same length just before the period.
        const st = state(), first = rangeStart(st), days = Math.max(1, Math.round(periodDays(st)));
        cFromIn.value = shiftDay(first, -days); cToIn.value = shiftDay(first, -1);
      }
      return;
    }
    navigate({ compare: v, compare_date: '' });
  });
  document.getElementById('compare-apply').addEventListener('click', () => {
    if (!cFromIn.value || !cToIn.value) return;
    let a = cFromIn.value, b = cToIn.value;
    if (a > b) [a, b] = [b, a];
    navigate({ compare: 'custom', compare_date: a + ',' + b });
  });
  metricSel.addEventListener('change', () => navigate({ metric: metricSel.value }));
  intervalSel.addEventListener('change', () => navigate({ interval: intervalSel.value }));

  function syncControls(st) {
    const preset = presetOf(st);
    periodSel.value = preset;
    customBox.hidden = preset !== 'custom';
    if (preset === 'custom') { const [a, b] = st.date.split(','); fromIn.value = a || ''; toIn.value = b || ''; }
    compareSel.value = st.compare;
    compareBox.hidden = st.compare !== 'custom';
    if (st.compare === 'custom') { const [a, b] = st.compareDate.split(','); cFromIn.value = a || ''; cToIn.value = b || ''; }
    metricSel.value = METRICS[st.metric] && !METRICS[st.metric].money ? st.metric : 'visitors';
    intervalSel.value = st.interval || defaultInterval(st);
    intervalSel.querySelector('option[value=hour]').disabled = periodDays(st) > 93;
    const box = clear(document.getElementById('filters'));
    for (const f of parseFilters(st.filters)) {
      // An empty value is the "(none)" row's: `visit:utm_source==`.
      const label = propLabel(f.prop) + ' ' + (OPS[f.op] || 'is') + ' ' + f.values.map((v) => v === '' ? '(none)' : v).join(' or ');
      // The label edits the filter (filters.js), the × removes it.
      box.append(el('span', { class: 'chip', 'data-filter': f.prop, 'data-op': f.op },
        el('button', { type: 'button', class: 'chip-edit', 'data-raw': f.raw, title: 'Edit filter', 'aria-label': 'Edit filter ' + label }, el('span', { text: label })),
        el('button', { type: 'button', class: 'chip-x', 'aria-label': 'Remove filter ' + label, title: 'Remove filter', onclick: () => removeFilter(f.raw) }, '×')));
    }
    if (st.filters) box.append(el('button', { type: 'button', class: 'link', id: 'clear-filters', onclick: () => navigate({ filters: '' }) }, 'Clear filters'));
  }

  // ---- panels: each shows itself as it arrives, or its own error -------------
  let generation = 0;
  function status(node, text, cls) {
    clear(node);
    node.className = 'status' + (cls ? ' ' + cls : '');
    if (text) node.textContent = text;
  }

  // KPI cards
  const kpiBox = document.getElementById('kpis');
  async function loadKPIs(st, gen) {
    if (!kpiBox.firstChild) for (const m of KPIS) kpiBox.append(el('div', { class: 'kpi loading', 'data-metric': m }, el('span', { class: 'kpi-label', text: METRICS[m].label }), el('span', { class: 'kpi-value', text: '…' }), el('span', { class: 'kpi-change' })));
    let res;
    try {
      // Off, the key figures still change against the previous period.
      res = await api('aggregate', params(st, comparing(st) ? { metrics: KPIS.join(',') } : { metrics: KPIS.join(','), compare: 'previous_period' }));
    } catch (e) {
      if (gen !== generation) return;
      clear(kpiBox).append(el('p', { class: 'status error', id: 'kpi-error', text: 'Key figures could not load: ' + e.message }));
      return;
    }
    if (gen !== generation) return;
    clear(kpiBox);
    // With no visitors in the previous period there is nothing to compare
    // with: "—", not "↑ 100%" (and not a bounce rate "up" from zero).
    const before = res.results.visitors && res.results.visitors.comparison_value;
    const noPrevious = before === 0;
    const against = 'against ' + (comparing(st) ? COMPARE_MODES[st.compare] : COMPARE_MODES.previous_period) + rangeText(res.meta);
    for (const m of KPIS) {
      const r = res.results[m] || {};
      const d = METRICS[m];
      const card = el('button', { type: 'button', class: 'kpi' + (st.metric === m ? ' active' : ''), 'data-metric': m, 'aria-pressed': String(st.metric === m), onclick: () => navigate({ metric: m }) });
      card.append(el('span', { class: 'kpi-label', text: d.label }));
      if (r.value === null || r.value === undefined) {
        card.append(el('span', { class: 'kpi-value', 'data-value': '', title: r.withheld || '', text: '—' }));
        card.append(el('span', { class: 'kpi-change muted', text: r.withheld ? 'withheld: under ' + K + ' visitors' : '' }));
      } else {
        card.append(el('span', { class: 'kpi-value', 'data-value': String(r.value), text: d.fmt(r.value) }));
        const c = r.change;
        if (noPrevious) card.append(el('span', { class: 'kpi-change muted', 'data-change': 'none', title: 'no visitors ' + against.replace(/^against /, 'in '), text: '—' }));
        else if (c === null || c === undefined) card.append(el('span', { class: 'kpi-change muted', title: r.comparison_withheld || '', text: r.comparison_withheld ? 'compared: withheld' : '' }));
        else {
          const good = d.lowerIsBetter ? c < 0 : c > 0;
          const arrow = c > 0 ? '↑' : c < 0 ? '↓' : '→';
          const txt = arrow + ' ' + Math.abs(c) + (d.rate ? ' pts' : '%');
          card.append(el('span', { class: 'kpi-change ' + (c === 0 ? 'flat' : good ? 'up' : 'down'), 'data-change': String(c), title: against, text: txt }));
        }
      }
      kpiBox.append(card);
    }
  }

  // rangeText is " (first – last day)" of meta.comparison, or "".
  function rangeText(meta) {
    const c = meta && meta.comparison;
    if (!c || !c.date_range) return '';
    return ' (' + c.date_range[0] + (c.date_range[1] !== c.date_range[0] ? ' – ' + c.date_range[1] : '') + ')';
  }
  // changeText renders a change: ▲/▼ and a percentage, or points for rates.
  function changeText(c, rate) {
    return (c > 0 ? '▲ ' : c < 0 ? '▼ ' : '') + Math.abs(c) + (rate ? ' pts' : '%');
  }

  // The time-series chart: an SVG drawn here.
  const chartBox = document.getElementById('chart');
  const chartStatus = document.getElementById('chart-status');
  let lastSeries = null;
  async function loadChart(st, gen) {
    const metric = METRICS[st.metric] && !METRICS[st.metric].money ? st.metric : 'visitors';
    const interval = st.interval || defaultInterval(st);
    const p = params(st, { metrics: metric, interval: interval });
    const csv = new URLSearchParams(p); csv.set('endpoint', 'timeseries');
    document.getElementById('chart-csv').setAttribute('href', API + 'csv?' + csv.toString());
    status(chartStatus, 'Loading…', 'loading');
    let res;
    try {
      res = await api('timeseries', p);
    } catch (e) {
      if (gen !== generation) return;
      status(chartStatus, 'The chart could not load: ' + e.message, 'error');
      clear(chartBox);
      return;
    }
    if (gen !== generation) return;
    status(chartStatus, res.meta && res.meta.withheld ? res.meta.withheld + ' points withheld: fewer than ' + K + ' visitors matched the filters there.' : '', res.meta && res.meta.withheld ? 'folded' : '');
    lastSeries = { rows: res.results, metric: metric, interval: interval, from: rangeStart(st), compare: comparing(st) ? st.compare : '', range: rangeText(res.meta) };
    drawChart();
  }
  function label(d, interval, short) {
    if (interval === 'hour') return short ? d.slice(11, 16) : d.slice(0, 16);
    if (interval === 'month') {
      const t = new Date(d + 'T12:00:00Z');
      return t.toLocaleDateString('en-US', { month: 'short', year: short ? '2-digit' : 'numeric', timeZone: 'UTC' });
    }
    const t = new Date(d + 'T12:00:00Z');
    return (interval === 'week' && !short ? 'Week of ' : '') + t.toLocaleDateString('en-US', { month: 'short', day: 'numeric', timeZone: 'UTC' });
  }
  function drawChart() {
    if (!lastSeries) return;
    const { rows, metric, interval, from, compare } = lastSeries;
    // A week or month that began before the period is shown from the
    // period's first day, the part of it the point counts (Oct 1, not the
    // Monday Sep 28 of its week).
    const dateOf = (i) => (i === 0 && interval !== 'hour' && rows[0].date < from ? from : rows[i].date);
    const fmt = METRICS[metric].fmt;
    clear(chartBox);
    const W = Math.max(280, chartBox.clientWidth || 600), H = 240;
    const padL = 48, padR = 12, padT = 12, padB = 28;
    const vals = rows.map((r) => (r[metric] === null || r[metric] === undefined ? null : Number(r[metric])));
    // The comparison's i-th bucket beside the current i-th (null: none, or withheld).
    const cmps = rows.map((r) => (compare && r.comparison && r.comparison[metric] !== null && r.comparison[metric] !== undefined ? Number(r.comparison[metric]) : null));
    let maxV = Math.max(0, ...vals.filter((v) => v !== null), ...cmps.filter((v) => v !== null));
    const step = niceStep(maxV / 4 || 1);
    maxV = Math.max(step * 4, step);
    const n = rows.length;
    const x = (i) => padL + (n <= 1 ? (W - padL - padR) / 2 : (i * (W - padL - padR)) / (n - 1));
    const y = (v) => padT + (H - padT - padB) * (1 - v / maxV);
    const root = svg('svg', { viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: 'img', 'aria-label': METRICS[metric].label + ' over time', class: 'chart-svg' });
    for (let g = 0; g <= 4; g++) {
      const v = step * g;
      root.append(svg('line', { x1: padL, x2: W - padR, y1: y(v), y2: y(v), class: 'grid' }));
      const t = svg('text', { x: padL - 6, y: y(v) + 4, 'text-anchor': 'end', class: 'axis' });
      t.textContent = metric === 'bounce_rate' || metric === 'scroll_depth' ? v + '%' : compact(v);
      root.append(t);
    }
    const ticks = Math.min(n, Math.max(2, Math.floor((W - padL - padR) / 90)));
    for (let k = 0; k < ticks; k++) {
      const i = ticks === 1 ? 0 : Math.round((k * (n - 1)) / (ticks - 1));
      const t = svg('text', { x: x(i), y: H - 8, 'text-anchor': k === 0 ? 'start' : k === ticks - 1 ? 'end' : 'middle', class: 'axis' });
      t.textContent = label(dateOf(i), interval, true);
      root.append(t);
    }
    // The comparison: a dashed line under the current one, broken likewise.
    if (compare) {
      let cd = '', cseg = [];
      const cflush = () => {
        if (cseg.length) cd += cseg.map((p, j) => (j ? 'L' : 'M') + p[0].toFixed(1) + ' ' + p[1].toFixed(1)).join(' ') + ' ';
        cseg = [];
      };
      cmps.forEach((v, i) => { if (v === null) cflush(); else cseg.push([x(i), y(v)]); });
      cflush();
      if (cd) root.append(svg('path', { d: cd, class: 'line compare', 'data-series': 'comparison' }));
    }
    // line and area, broken where points are withheld
    let d = '', area = '', seg = [];
    const flush = () => {
      if (!seg.length) return;
      d += seg.map((p, j) => (j ? 'L' : 'M') + p[0].toFixed(1) + ' ' + p[1].toFixed(1)).join(' ') + ' ';
      area += 'M' + seg[0][0].toFixed(1) + ' ' + y(0).toFixed(1) + ' ' + seg.map((p) => 'L' + p[0].toFixed(1) + ' ' + p[1].toFixed(1)).join(' ') + ' L' + seg[seg.length - 1][0].toFixed(1) + ' ' + y(0).toFixed(1) + ' Z ';
      seg = [];
    };
    vals.forEach((v, i) => { if (v === null) flush(); else seg.push([x(i), y(v)]); });
    flush();
    if (area) root.append(svg('path', { d: area, class: 'area' }));
    if (d) root.append(svg('path', { d: d, class: 'line' }));
    if (n === 1 && vals[0] !== null) root.append(svg('circle', { cx: x(0), cy: y(vals[0]), r: 3, class: 'dot' }));
    const guide = svg('line', { y1: padT, y2: H - padB, class: 'guide', visibility: 'hidden' });
    const dot = svg('circle', { r: 4, class: 'dot', visibility: 'hidden' });
    root.append(guide, dot);
    const overlay = svg('rect', { x: padL, y: 0, width: W - padL - padR, height: H, class: 'overlay' });
    root.append(overlay);
    const tip = el('div', { class: 'tip', role: 'status', hidden: true });
    const show = (ev) => {
      const box = root.getBoundingClientRect();
      const px = ((ev.clientX - box.left) * W) / box.width;
      const i = Math.max(0, Math.min(n - 1, Math.round(n <= 1 ? 0 : ((px - padL) * (n - 1)) / (W - padL - padR))));
      const v = vals[i];
      guide.setAttribute('x1', x(i)); guide.setAttribute('x2', x(i)); guide.setAttribute('visibility', 'visible');
      if (v === null) dot.setAttribute('visibility', 'hidden');
      else { dot.setAttribute('cx', x(i)); dot.setAttribute('cy', y(v)); dot.setAttribute('visibility', 'visible'); }
      clear(tip);
      tip.append(el('strong', { text: label(dateOf(i), interval, false) }), el('br'),
        el('span', { text: v === null ? 'withheld (under ' + K + ' visitors)' : METRICS[metric].label + ': ' + fmt(v) }));
      if (compare) {
        const c = rows[i].comparison;
        const ch = rows[i].change && rows[i].change[metric];
        let t = 'no comparison bucket';
        if (c && c[metric] !== null && c[metric] !== undefined) t = label(c.date, interval, false) + ': ' + fmt(c[metric]) + (ch === null || ch === undefined ? '' : ' (' + changeText(ch, METRICS[metric].rate) + ')');
        else if (c) t = label(c.date, interval, false) + ': withheld (under ' + K + ' visitors)';
        tip.append(el('br'), el('span', { class: 'tip-compare', text: t }));
      }
      tip.hidden = false;
      const left = (x(i) / W) * box.width;
      tip.style.left = Math.min(Math.max(0, left - 70), box.width - 150) + 'px';
      tip.style.top = '4px';
    };
    overlay.addEventListener('pointermove', show);
    overlay.addEventListener('pointerdown', show);
    overlay.addEventListener('pointerleave', () => { tip.hidden = true; guide.setAttribute('visibility', 'hidden'); dot.setAttribute('visibility', 'hidden'); });
    chartBox.append(root, tip);
    drawLayers({ svg: root, rows: rows, interval: interval, x: x, top: padT, bottom: H - padB, left: padL, right: W - padR, width: W, height: H });
    if (compare) {
      const sw = (cls) => { const s = svg('svg', { width: 22, height: 8, 'aria-hidden': 'true', class: 'swatch' }); s.append(svg('line', { x1: 0, x2: 22, y1: 4, y2: 4, class: cls })); return s; };
      chartBox.append(el('p', { class: 'legend', id: 'chart-legend' },
        el('span', { class: 'legend-item', 'data-series': 'current' }, sw('line'), ' ' + METRICS[metric].label + ', this period'),
        el('span', { class: 'legend-item', 'data-series': 'comparison' }, sw('line compare'), ' Compared: ' + COMPARE_MODES[compare] + lastSeries.range)));
    }
  }
  function niceStep(raw) {
    const p = Math.pow(10, Math.floor(Math.log10(raw)));
    for (const m of [1, 2, 2.5, 5, 10]) if (raw <= m * p) return Math.max(1, m * p);
    return 10 * p;
  }
  // ---- hooks for the page's other scripts (segments.js) ---------------------
  // window.GlimpseDashboard.onChart(f) calls f({svg, rows, interval, x,
  // top, bottom, left, right, width, height}) each time the chart is drawn,
  // after its line: f adds a layer to the SVG. navigate(change) changes the
  // page's URL state and reloads the numbers; state() reads it.
  const chartLayers = [];
  function drawLayers(chart) {
    for (const f of chartLayers) {
      try { f(chart); } catch (e) { /* a layer that fails leaves the chart drawn */ }
    }
  }
  window.GlimpseDashboard = Object.freeze({
    site: SITE, auth: AUTH, api: API, state: state, navigate: navigate,
    onChart: (f) => { chartLayers.push(f); drawChart(); },
    redraw: () => drawChart(),
    onLoad: (f) => { loadHooks.push(f); },
  });
  let resizeTimer = 0;
  window.addEventListener('resize', () => { clearTimeout(resizeTimer); resizeTimer = setTimeout(drawChart, 100); });

  // Breakdown panels.
  const panelBox = document.getElementById('panels');
  const tabOf = {};
  const limitOf = {};
  function buildPanels() {
    for (const p of PANELS) {
      tabOf[p.id] = 0;
      limitOf[p.id] = 10;
      const tabs = el('div', { class: 'tabs', role: 'tablist' });
      p.tabs.forEach((t, i) => tabs.append(el('button', { type: 'button', role: 'tab', class: 'tab', 'data-tab': String(i), 'aria-selected': String(i === 0), onclick: () => { tabOf[p.id] = i; loadPanel(p, state(), generation); } }, t.label)));
      const node = el('section', { class: 'card panel' + (p.wide ? ' wide' : ''), id: 'panel-' + p.id, 'data-panel': p.id },
        el('div', { class: 'panel-head' }, el('h2', { text: p.title }), el('a', { class: 'csv', download: true, text: 'CSV', title: 'Download these rows as CSV' })),
        p.tabs.length > 1 ? tabs : null,
        el('div', { class: 'keybox', hidden: true },
          el('label', {}, 'Property key ', el('input', { type: 'text', class: 'propkey', maxlength: '300', placeholder: 'e.g. plan', onchange: (e) => navigate({ prop: e.target.value.trim() }) }))),
        panelSearch(p),
        el('div', { class: 'status' }),
        el('div', { class: 'rows' }),
        el('p', { class: 'note' }),
        el('button', { type: 'button', class: 'link more', hidden: true, onclick: () => { limitOf[p.id] = limitOf[p.id] === 10 ? 100 : 10; loadPanel(p, state(), generation); } }));
      panelBox.append(node);
    }
  }
  async function loadPanel(p, st, gen) {
    const node = document.getElementById('panel-' + p.id);
    const tab = p.tabs[tabOf[p.id]];
    node.querySelectorAll('.tab').forEach((b) => b.setAttribute('aria-selected', String(Number(b.dataset.tab) === tabOf[p.id])));
    const statusNode = node.querySelector('.status');
    const rowsNode = node.querySelector('.rows');
    const note = node.querySelector('.note');
    const more = node.querySelector('.more');
    const keybox = node.querySelector('.keybox');
    keybox.hidden = !tab.askKey;
    let prop = tab.prop;
    if (tab.askKey) {
      node.querySelector('.propkey').value = st.prop;
      if (!st.prop) {
        clear(rowsNode); note.textContent = ''; more.hidden = true;
        status(statusNode, 'Type the key of a custom event property (for example plan) to break events down by its values.', 'hint');
        return;
      }
      prop += st.prop;
    }
    const metrics = tab.metrics || ['visitors'];
    const limit = limitOf[p.id];
    const q = params(st, { property: prop, metrics: metrics.join(','), limit: String(limit) });
    const csv = new URLSearchParams(q); csv.set('endpoint', 'breakdown'); csv.set('limit', '1000');
    node.querySelector('.csv').setAttribute('href', API + 'csv?' + csv.toString());
    status(statusNode, 'Loading…', 'loading');
    let res;
    try {
      res = await api('breakdown', q);
    } catch (e) {
      if (gen !== generation || tab !== p.tabs[tabOf[p.id]]) return;
      status(statusNode, 'Could not load ' + tab.label.toLowerCase() + ': ' + e.message, 'error');
      clear(rowsNode); note.textContent = ''; more.hidden = true;
      return;
    }
    if (gen !== generation || tab !== p.tabs[tabOf[p.id]]) return;
    status(statusNode, '');
    clear(rowsNode);
    const key = prop.startsWith('event:props:') ? prop.slice(12) : null;
    const rows = res.results;
    if (!rows.length) {
      rowsNode.append(el('p', { class: 'empty muted', text: tab.empty || 'No data for this period.' }));
    } else {
      const fieldOf = (r) => {
        if (key !== null) return r[key];
        const ks = Object.keys(r).filter((k) => !(k in METRICS) && k !== 'comparison' && k !== 'change' && k !== 'withheld');
        return r[ks[0]];
      };
      const first = metrics[0];
      // Money columns only when some row holds revenue.
      const cols = metrics.filter((m) => !METRICS[m].money || rows.some((r) => moneyEach(r[m]).length > 0));
      const top = Math.max(1, ...rows.map((r) => Number(r[first]) || 0));
      const table = el('table', { class: 'breakdown' + (cols.some((m) => METRICS[m].money) ? ' with-money' : '') });
      const head = el('tr', {}, el('th', { scope: 'col', text: propLabel(prop) }));
      for (const m of cols) head.append(el('th', { scope: 'col', class: 'num', text: (tab.heads && tab.heads[m]) || METRICS[m].short || METRICS[m].label }));
      // Comparing: the change of the panel's first metric, one column.
      const cmp = comparing(st);
      if (cmp) head.append(el('th', { scope: 'col', class: 'num change', title: 'Change of ' + (METRICS[first].short || METRICS[first].label).toLowerCase() + ' against ' + COMPARE_MODES[st.compare] + rangeText(res.meta), text: 'Change' }));
      table.append(el('thead', {}, head));
      const body = el('tbody');
      for (const r of rows) {
        const value = String(fieldOf(r));
        const other = value === '(other)';
        let shown = value === '' ? '(none)' : value;
        if (prop === 'visit:country' && regionNames && /^[A-Z]{2}$/.test(value)) { try { shown = regionNames.of(value) + ' (' + value + ')'; } catch (e) { /* keep the code */ } }
        const bar = el('span', { class: 'bar' });
        bar.style.width = Math.round((100 * (Number(r[first]) || 0)) / top) + '%';
        const cellLabel = el('td', { class: 'label' }, bar, el('span', { class: 'text', text: shown, title: shown }));
        const tr = el('tr', { class: other ? 'other' : 'row', 'data-value': value });
        tr.append(cellLabel);
        for (const m of cols) {
          if (METRICS[m].money && r[m]) tr.append(moneyCell(r[m]));
          else tr.append(el('td', { class: 'num', text: r[m] === null || r[m] === undefined ? '—' : METRICS[m].fmt(r[m]) }));
        }
        if (cmp) {
          const c = r.change && r.change[first];
          const was = r.comparison && r.comparison[first];
          const d = METRICS[first];
          if (c === null || c === undefined) {
            tr.append(el('td', { class: 'num change muted', 'data-change': '', title: r.comparison && r.comparison.withheld ? 'Compared: withheld, under ' + K + ' visitors' : 'Nothing to compare', text: '—' }));
          } else {
            const good = d.lowerIsBetter ? c < 0 : c > 0;
            tr.append(el('td', { class: 'num change ' + (c === 0 ? 'flat' : good ? 'up' : 'down'), 'data-change': String(c), title: 'Was ' + d.fmt(was), text: changeText(c, d.rate) }));
          }
        }
        if (other) tr.title = 'Rows with fewer than ' + K + ' visitors each, folded together';
        else {
          tr.tabIndex = 0;
          tr.title = 'Filter the dashboard by ' + propLabel(prop).toLowerCase() + ' ' + shown;
          const go = () => addFilter(prop, value);
          tr.addEventListener('click', go);
          tr.addEventListener('keydown', (e) => { if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); go(); } });
        }
        body.append(tr);
      }
      table.append(body);
      rowsNode.append(table);
    }
    const m = res.meta || {};
    const folded = m.folded_rows || 0;
    note.className = 'note' + (folded ? ' folded' : '');
    note.textContent = folded
      ? (NOISY ? 'About ' : '') + folded + (folded === 1 ? ' row' : ' rows') + ' with fewer than ' + K + ' visitors ' + (m.other_shown ? 'folded into (other).' : 'folded away; together still under ' + K + ', so not shown.')
      : '';
    if (m.sample_factor > 1) note.textContent += ' Estimated from a 1-in-' + Math.round(m.sample_factor) + ' sample.';
    more.hidden = !(rows.length >= 10 || limit > 10);
    more.textContent = limit > 10 ? 'Show fewer' : 'Show more';
    searchRows(node);
  }

  // ---- search inside a panel ---------------------------------------------------
  // A search box per panel hides the rows shown that do not contain its
  // text (case-insensitive; the value or the label shown); Escape clears it.
  function panelSearch(p) {
    const input = el('input', { type: 'search', class: 'panel-search', placeholder: 'Search', 'aria-label': 'Search ' + p.title.toLowerCase(), 'aria-controls': 'panel-' + p.id, maxlength: '200' });
    input.addEventListener('input', () => searchRows(document.getElementById('panel-' + p.id)));
    input.addEventListener('keydown', (e) => {
      if (e.key === 'Escape' && input.value) { e.preventDefault(); input.value = ''; searchRows(document.getElementById('panel-' + p.id)); }
    });
    return el('div', { class: 'searchbox' }, input, el('span', { class: 'search-count muted', 'aria-live': 'polite' }));
  }
  function searchRows(node) {
    const input = node.querySelector('.panel-search');
    const count = node.querySelector('.search-count');
    const needle = input.value.trim().toLowerCase();
    const rows = [...node.querySelectorAll('tbody tr')];
    let shown = 0;
    for (const tr of rows) {
      const t = tr.querySelector('.text');
      const hit = !needle || (tr.dataset.value || '').toLowerCase().includes(needle) || (t && t.textContent.toLowerCase().includes(needle));
      tr.hidden = !hit;
      if (hit) shown++;
    }
    count.textContent = needle ? shown + ' of ' + rows.length : '';
  }

  // Realtime count, refreshing itself.
  const rtCount = document.getElementById('realtime-count');
  async function loadRealtime() {
    try {
      const n = await api('realtime/visitors', new URLSearchParams(AUTH ? { site_id: SITE, auth: AUTH } : { site_id: SITE }));
      rtCount.textContent = nf.format(n);
      rtCount.dataset.value = String(n);
      document.getElementById('realtime-label').textContent = n === 1 ? 'current visitor' : 'current visitors';
    } catch (e) {
      rtCount.textContent = '?';
      rtCount.title = 'Could not load: ' + e.message;
    }
  }
  setInterval(() => { if (document.visibilityState === 'visible') loadRealtime(); }, 15000);

  const loadHooks = [];
  function load() {
    // The realtime view (realtime.js) replaces the overview: nothing to ask.
    if (new URL(location.href).searchParams.get('view') === 'realtime') return;
    const st = state();
    const gen = ++generation;
    for (const f of loadHooks) { try { f(st); } catch (e) { /* the numbers load regardless */ } }
    syncControls(st);
    // Every call leaves at once; each panel draws itself when its answer arrives.
    loadKPIs(st, gen);
    loadChart(st, gen);
    for (const p of PANELS) loadPanel(p, st, gen);
    // Other panels (funnels.js) load themselves on this event.
    document.dispatchEvent(new CustomEvent('glimpse:load'));
  }
  buildPanels();
  load();
  loadRealtime();
})();
