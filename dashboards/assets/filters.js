// Glimpse dashboard: the filter editor. "Add filter" (and a filter chip's
// label) opens a small form: a dimension, an operator (is ==, is not !=,
// contains ~) and a value, with suggestions read from the data: the top 20
// rows of a breakdown by that dimension over the current period, so a
// value under k (withheld by the Stats API) is never suggested. The
// filters live in the URL's filters parameter, as app.js keeps them; a
// change is pushed to the history and app.js redraws on popstate.
'use strict';
(function () {
  const app = document.getElementById('app');
  const addBtn = document.getElementById('add-filter');
  const box = document.getElementById('filter-editor');
  const chips = document.getElementById('filters');
  if (!app || !addBtn || !box || !chips) return;
  const SITE = app.dataset.site;
  const API = '/dashboard/api/';
  const AUTH = new URL(location.href).searchParams.get('auth') || '';
  const LABELS = JSON.parse(document.getElementById('labels').textContent);
  // The dimensions offered, the most asked for first; any other the
  // dimensions table (internal/model) knows follows in its label order.
  const FIRST = ['event:page', 'visit:source', 'visit:channel', 'visit:referrer', 'visit:country', 'visit:region', 'visit:city',
    'visit:browser', 'visit:os', 'visit:device', 'visit:screen', 'visit:entry_page', 'visit:exit_page', 'event:goal',
    'visit:utm_source', 'visit:utm_medium', 'visit:utm_campaign', 'visit:utm_content', 'visit:utm_term', 'event:hostname'];
  const DIMS = [...FIRST.filter((d) => LABELS[d]), ...Object.keys(LABELS).filter((d) => !FIRST.includes(d)).sort((a, b) => LABELS[a].localeCompare(LABELS[b]))];
  const OPS = [['==', 'is'], ['!=', 'is not'], ['~', 'contains'], ['!~', 'does not contain']];

  const { el, clear } = window.GlimpseDOM; // dom.js

  // v1 filter syntax: clauses joined by ";", alternatives by "|", both
  // escaped with "\" inside values (as app.js writes them).
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
  function parse(c) {
    const i = c.search(/[=!~]/);
    if (i < 0) return { prop: c, op: '==', value: '' };
    const op = ['==~', '!=~', '==', '!=', '!~', '~'].find((o) => c.startsWith(o, i)) || '==';
    const rawValue = c.slice(i + op.length);
    return { prop: c.slice(0, i), op: op === '==~' ? '~' : op === '!=~' ? '!~' : op, value: splitEsc(rawValue, '|').map(unesc).join(' | '), rawValue };
  }
  const clauses = () => splitEsc(new URL(location.href).searchParams.get('filters') || '', ';').filter(Boolean);
  function setFilters(list) {
    const u = new URL(location.href);
    if (list.length) u.searchParams.set('filters', list.join(';')); else u.searchParams.delete('filters');
    if (u.href === location.href) return;
    history.pushState(null, '', u.pathname + u.search);
    window.dispatchEvent(new PopStateEvent('popstate'));
  }

  // ---- the form --------------------------------------------------------------------
  const propSel = el('select', { id: 'fe-prop', 'aria-label': 'Dimension' }, ...DIMS.map((d) => el('option', { value: d, text: LABELS[d] })));
  const opSel = el('select', { id: 'fe-op', 'aria-label': 'Operator' }, ...OPS.map(([v, t]) => el('option', { value: v, text: t })));
  const valueIn = el('input', { type: 'text', id: 'fe-value', 'aria-label': 'Value', maxlength: '500', autocomplete: 'off', placeholder: 'Value', 'aria-describedby': 'fe-hint' });
  const hint = el('p', { class: 'muted fe-hint', id: 'fe-hint', 'aria-live': 'polite' });
  const suggest = el('ul', { class: 'fe-suggest', id: 'fe-suggest', 'aria-label': 'Suggested values' });
  const error = el('p', { class: 'error fe-error', id: 'fe-error', role: 'alert' });
  const apply = el('button', { type: 'submit', id: 'fe-apply', class: 'fe-apply', text: 'Apply' });
  const cancel = el('button', { type: 'button', id: 'fe-cancel', class: 'link', text: 'Cancel' });
  const form = el('form', { class: 'fe-form', 'aria-label': 'Filter' },
    el('div', { class: 'fe-row' }, propSel, opSel, valueIn), hint, suggest, error,
    el('div', { class: 'fe-row' }, apply, cancel));
  box.append(form);
  let editing = null; // the raw clause being edited, or null for a new filter
  let kept = null; // its value as shown and as written: a value of several alternatives is kept unless retyped
  let suggestions = [];
  let asked = 0;

  function open(raw) {
    editing = raw;
    const f = raw ? parse(raw) : { prop: 'event:page', op: '==', value: '' };
    if (!LABELS[f.prop]) propSel.append(el('option', { value: f.prop, text: f.prop }));
    propSel.value = f.prop;
    opSel.value = f.op;
    valueIn.value = f.value;
    kept = raw ? { shown: f.value, raw: f.rawValue } : null;
    error.textContent = '';
    apply.textContent = raw ? 'Update' : 'Add';
    box.hidden = false;
    addBtn.setAttribute('aria-expanded', 'true');
    syncOps();
    loadSuggestions();
    propSel.focus();
  }
  function close() {
    box.hidden = true;
    editing = null;
    addBtn.setAttribute('aria-expanded', 'false');
    addBtn.focus();
  }
  // Goals take == and ~ only (the Stats API's v1 rule).
  function syncOps() {
    const goal = propSel.value === 'event:goal';
    for (const o of ['!=', '!~']) opSel.querySelector('option[value="' + o + '"]').disabled = goal;
    if (goal && opSel.value.startsWith('!')) opSel.value = opSel.value === '!~' ? '~' : '==';
  }

  async function loadSuggestions() {
    const n = ++asked;
    const prop = propSel.value;
    const u = new URL(location.href).searchParams;
    // Over the current period, under the other filters.
    const others = clauses().filter((c) => c !== editing);
    const p = new URLSearchParams({ site_id: SITE, period: u.get('period') || '30d', property: prop, metrics: 'visitors', limit: '20' });
    if (u.get('date')) p.set('date', u.get('date'));
    if (others.length) p.set('filters', others.join(';'));
    if (AUTH) p.set('auth', AUTH);
    suggestions = [];
    clear(suggest);
    hint.textContent = 'Loading suggestions…';
    try {
      const res = await fetch(API + 'breakdown?' + p.toString(), { credentials: 'same-origin', headers: { Accept: 'application/json' } });
      const body = await res.json();
      if (n !== asked) return;
      if (!res.ok) throw new Error(body.error || 'HTTP ' + res.status);
      for (const r of body.results || []) {
        const key = Object.keys(r).find((k) => k !== 'visitors');
        const v = String(r[key]);
        if (v === '(other)') continue; // the rows under k: not a value
        suggestions.push({ value: v, visitors: r.visitors });
      }
    } catch (e) {
      if (n !== asked) return;
      hint.textContent = 'No suggestions: ' + e.message;
      return;
    }
    drawSuggestions();
  }
  function drawSuggestions() {
    clear(suggest);
    const needle = valueIn.value.trim().toLowerCase();
    const shown = suggestions.filter((s) => !needle || s.value.toLowerCase().includes(needle));
    for (const s of shown) {
      suggest.append(el('li', {}, el('button', { type: 'button', class: 'fe-option', 'data-value': s.value,
        onclick: () => { valueIn.value = s.value; drawSuggestions(); valueIn.focus(); } },
      el('span', { class: 'fe-option-text', text: s.value === '' ? '(none)' : s.value }),
      el('span', { class: 'muted', text: s.visitors === null || s.visitors === undefined ? '' : String(s.visitors) }))));
    }
    hint.textContent = suggestions.length ? shown.length + ' of the top ' + suggestions.length + ' values in this period' : 'No values with enough visitors to suggest in this period.';
  }

  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const value = valueIn.value;
    if (value.trim() === '' && opSel.value.endsWith('~')) { error.textContent = 'Type the text to look for.'; valueIn.focus(); return; }
    const clause = propSel.value + opSel.value + (kept && value === kept.shown ? kept.raw : esc(value));
    const list = clauses();
    const i = editing === null ? -1 : list.indexOf(editing);
    if (i >= 0) list[i] = clause; else if (!list.includes(clause)) list.push(clause);
    box.hidden = true;
    editing = null;
    addBtn.setAttribute('aria-expanded', 'false');
    setFilters(list);
    addBtn.focus();
  });
  cancel.addEventListener('click', close);
  form.addEventListener('keydown', (e) => { if (e.key === 'Escape') { e.preventDefault(); close(); } });
  propSel.addEventListener('change', () => { syncOps(); valueIn.value = ''; loadSuggestions(); });
  valueIn.addEventListener('input', drawSuggestions);
  addBtn.addEventListener('click', () => (box.hidden ? open(null) : close()));
  // A chip's label (drawn by app.js) edits its filter.
  chips.addEventListener('click', (e) => {
    const b = e.target.closest('.chip-edit');
    if (b) open(b.dataset.raw);
  });
})();
