// Glimpse dashboard: the Funnels panel of a site's page. The site's
// funnels (from the sites file) are the options of #funnel-choice; the
// chosen one is asked of the funnel endpoint for the page's period and
// visit filters, and each step drawn as a bar with its visitors,
// conversion from the previous step and drop-off. Text only reaches the
// DOM as text nodes; widths are set through the CSSOM (the CSP allows no
// inline style attributes).
'use strict';
(function () {
  const app = document.getElementById('app');
  const panel = document.getElementById('funnel-panel');
  if (!app || !panel) return;
  const SITE = app.dataset.site;
  const API = '/dashboard/api/';
  const CSV = '/dashboard/api/csv';
  const AUTH = new URL(location.href).searchParams.get('auth') || '';
  const choice = document.getElementById('funnel-choice');
  const stepsNode = document.getElementById('funnel-steps');
  const statusNode = document.getElementById('funnel-status');
  const note = document.getElementById('funnel-note');
  const csv = document.getElementById('funnel-csv');
  const nf = new Intl.NumberFormat('en-US');

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = String(text);
    return e;
  }
  function clear(e) { while (e.firstChild) e.removeChild(e.firstChild); }

  // visitFilters keeps the page's visit filters: a funnel's steps say
  // which events count, so event filters do not apply to it.
  function visitFilters(s) {
    const parts = [];
    let cur = '';
    for (let i = 0; i < s.length; i++) {
      if (s[i] === '\\' && i + 1 < s.length) { cur += s[i] + s[i + 1]; i++; continue; }
      if (s[i] === ';') { parts.push(cur); cur = ''; continue; }
      cur += s[i];
    }
    if (cur) parts.push(cur);
    const kept = parts.filter((p) => p.trim().startsWith('visit:'));
    return { kept: kept.join(';'), dropped: parts.length - kept.length };
  }

  function params() {
    const q = new URL(location.href).searchParams;
    const p = new URLSearchParams({ site_id: SITE, period: q.get('period') || '30d', funnel: choice.value });
    if (q.get('date')) p.set('date', q.get('date'));
    const f = visitFilters(q.get('filters') || '');
    if (f.kept) p.set('filters', f.kept);
    if (AUTH) p.set('auth', AUTH);
    return { p, dropped: f.dropped };
  }

  function pct(v) { return v === null || v === undefined ? '–' : v.toFixed(v % 1 === 0 ? 0 : 1) + '%'; }

  let generation = 0;
  async function load() {
    const want = new URL(location.href).searchParams.get('funnel');
    if (want && [...choice.options].some((o) => o.value === want)) choice.value = want;
    const gen = ++generation;
    const { p, dropped } = params();
    const c = new URLSearchParams(p);
    c.set('endpoint', 'funnel');
    csv.href = CSV + '?' + c.toString();
    statusNode.className = 'status loading';
    statusNode.textContent = 'Loading…';
    let body;
    try {
      const res = await fetch(API + 'funnel?' + p.toString(), { credentials: 'same-origin', headers: { Accept: 'application/json' } });
      body = await res.json();
      if (!res.ok) throw new Error((body && body.error) || ('HTTP ' + res.status));
    } catch (e) {
      if (gen !== generation) return;
      clear(stepsNode);
      statusNode.className = 'status error';
      statusNode.textContent = 'Could not load the funnel: ' + e.message;
      return;
    }
    if (gen !== generation) return;
    statusNode.className = 'status';
    statusNode.textContent = '';
    draw(body.results);
    const notes = ['Steps within ' + body.results.window + ' of the first, in order; a visitor is followed within one UTC day.'];
    if (dropped) notes.push('Event filters do not apply to funnels: only the visit filters are.');
    if (body.meta && body.meta.aggregates === 'noisy') notes.push('Numbers are approximate.');
    note.textContent = notes.join(' ');
  }

  function draw(res) {
    clear(stepsNode);
    const first = res.steps.length && res.steps[0].visitors ? res.steps[0].visitors : 0;
    for (const s of res.steps) {
      const li = el('li', 'funnel-step');
      li.dataset.step = String(s.step);
      const head = el('div', 'funnel-head');
      head.append(el('span', 'funnel-num', s.step), el('span', 'funnel-name', s.name));
      const track = el('div', 'funnel-track');
      const bar = el('div', 'funnel-bar');
      bar.style.width = (first && s.visitors !== null ? Math.max(0.5, (100 * s.visitors) / first) : 0) + '%';
      track.append(bar);
      const nums = el('div', 'funnel-nums');
      if (s.visitors === null) {
        const w = el('span', 'funnel-withheld', 'Withheld');
        w.title = s.withheld || '';
        nums.append(w);
        li.classList.add('withheld');
      } else {
        const v = el('span', 'funnel-visitors', nf.format(s.visitors) + ' visitors');
        v.dataset.value = String(s.visitors);
        nums.append(v);
        if (s.step > 1) {
          const conv = el('span', 'funnel-conv', pct(s.step_conversion_rate) + ' from previous');
          conv.dataset.value = String(s.step_conversion_rate);
          const drop = el('span', 'funnel-drop', nf.format(s.dropoff) + ' dropped off');
          drop.dataset.value = String(s.dropoff);
          nums.append(conv, drop);
        } else {
          nums.append(el('span', 'funnel-conv', 'entered the funnel'));
        }
      }
      li.append(head, track, nums);
      stepsNode.append(li);
    }
  }

  choice.addEventListener('change', () => {
    const u = new URL(location.href);
    u.searchParams.set('funnel', choice.value);
    history.replaceState(null, '', u.pathname + u.search);
    load();
  });
  document.addEventListener('glimpse:load', load);
  load();
})();
