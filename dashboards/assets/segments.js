// Glimpse dashboard: saved segments and chart annotations of one site.
// Written for this project; no framework, no third-party code. It uses
// the hooks app.js exposes (window.GlimpseDashboard). What users wrote
// (names, texts) reaches the DOM as text nodes, never as markup.
'use strict';
(function () {
  const G = window.GlimpseDashboard;
  const segBox = document.getElementById('segments');
  const annBox = document.getElementById('annotations');
  if (!G || !segBox || !annBox) return;
  const CSRF = segBox.dataset.csrf || '';
  // Signed-in readers change segments and annotations; a shared link
  // applies and reads them only.
  const CAN_EDIT = !G.auth && CSRF !== '';

  const { el, svg, clear } = window.GlimpseDOM; // dom.js

  async function getJSON(endpoint, params) {
    const p = new URLSearchParams(params);
    p.set('site_id', G.site);
    if (G.auth) p.set('auth', G.auth);
    const res = await fetch(G.api + endpoint + '?' + p.toString(), { credentials: 'same-origin', headers: { Accept: 'application/json' } });
    let body = null;
    try { body = await res.json(); } catch (e) { /* not JSON */ }
    if (!res.ok) throw new Error((body && body.error) || ('HTTP ' + res.status));
    return body;
  }
  // post sends a state-changing request: a form with the session's CSRF
  // token, to this origin.
  async function post(endpoint, fields) {
    const body = new URLSearchParams(fields);
    body.set('site_id', G.site);
    body.set('csrf', CSRF);
    const res = await fetch(G.api + endpoint, {
      method: 'POST', credentials: 'same-origin', body: body,
      headers: { Accept: 'application/json', 'Content-Type': 'application/x-www-form-urlencoded' },
    });
    let out = null;
    try { out = await res.json(); } catch (e) { /* not JSON */ }
    if (!res.ok) throw new Error((out && out.error) || ('HTTP ' + res.status));
    return out;
  }

  // ---- segments ------------------------------------------------------------
  let segments = [];
  let segError = '';
  let editing = null; // the segment being renamed, or {} for a new one
  let confirming = ''; // the id of the segment whose deletion awaits a yes
  async function loadSegments() {
    try {
      const res = await getJSON('segments', {});
      segments = res.results || [];
      segError = '';
    } catch (e) {
      segError = 'Segments could not load: ' + e.message;
    }
    drawSegments();
  }
  function drawSegments() {
    const st = G.state();
    clear(segBox);
    const list = el('span', { class: 'segment-list', id: 'segment-list' });
    if (segments.length || CAN_EDIT) segBox.append(el('span', { class: 'segments-label', text: 'Segments' }));
    for (const s of segments) {
      const active = s.filters === st.filters;
      const item = el('span', { class: 'segment' + (active ? ' active' : ''), 'data-id': s.id });
      item.append(el('button', {
        type: 'button', class: 'segment-apply', 'aria-pressed': active ? 'true' : 'false',
        title: s.filters + (s.created_by ? ' · saved by ' + s.created_by : ''),
        onclick: () => G.navigate({ filters: s.filters }),
      }, s.name));
      if (CAN_EDIT && confirming === s.id) {
        item.append(el('span', { class: 'segment-confirm' }, 'Delete?',
          el('button', { type: 'button', class: 'link segment-delete-yes', onclick: () => removeSegment(s) }, 'Yes'),
          el('button', { type: 'button', class: 'link', onclick: () => { confirming = ''; drawSegments(); } }, 'No')));
      } else if (CAN_EDIT) {
        item.append(
          el('button', { type: 'button', class: 'segment-edit', 'aria-label': 'Rename or change segment ' + s.name, title: 'Rename or change', onclick: () => { editing = s; confirming = ''; drawSegments(); } }, '✎'),
          el('button', { type: 'button', class: 'segment-delete', 'aria-label': 'Delete segment ' + s.name, title: 'Delete', onclick: () => { confirming = s.id; editing = null; drawSegments(); } }, '×'));
      }
      list.append(item);
    }
    if (!segments.length && CAN_EDIT) list.append(el('span', { class: 'muted segment-none', text: st.filters ? 'None saved yet.' : 'None saved yet: filter the page (click a row), then save the filters here.' }));
    segBox.append(list);
    if (CAN_EDIT && !editing && st.filters) {
      segBox.append(el('button', { type: 'button', class: 'link', id: 'segment-new', onclick: () => { editing = {}; drawSegments(); } }, 'Save filters as segment'));
    }
    if (CAN_EDIT && editing) segBox.append(segmentForm(editing, st));
    if (segError) segBox.append(el('span', { class: 'error', role: 'alert', id: 'segment-error', text: segError }));
  }
  function segmentForm(s, st) {
    const isNew = !s.id;
    const name = el('input', { type: 'text', id: 'segment-name', maxlength: 60, required: true, value: s.name || '', 'aria-label': 'Segment name', placeholder: 'Segment name' });
    const useNow = el('input', { type: 'checkbox', id: 'segment-use-current' });
    const form = el('form', { class: 'segment-form', id: 'segment-form' }, name);
    if (!isNew && st.filters && st.filters !== s.filters) form.append(el('label', { class: 'segment-check' }, useNow, ' use the current filters'));
    form.append(
      el('button', { type: 'submit', id: 'segment-save' }, isNew ? 'Save' : 'Save changes'),
      el('button', { type: 'button', class: 'link', onclick: () => { editing = null; segError = ''; drawSegments(); } }, 'Cancel'));
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const fields = { name: name.value, filters: isNew || useNow.checked ? G.state().filters : s.filters };
      if (!isNew) fields.id = s.id;
      try {
        await post('segments/save', fields);
        editing = null;
        segError = '';
      } catch (e) {
        segError = (isNew ? 'Could not save the segment: ' : 'Could not change the segment: ') + e.message;
      }
      await loadSegments();
    });
    setTimeout(() => name.focus(), 0);
    return form;
  }
  async function removeSegment(s) {
    confirming = '';
    try {
      await post('segments/delete', { id: s.id });
      segError = '';
    } catch (e) {
      segError = 'Could not delete the segment: ' + e.message;
    }
    await loadSegments();
  }

  // ---- annotations ---------------------------------------------------------
  let annotations = [];
  let annError = '';
  let annGen = 0;
  async function loadAnnotations(st) {
    const gen = ++annGen;
    const p = { period: st.period };
    if (st.date) p.date = st.date;
    try {
      const res = await getJSON('annotations', p);
      if (gen !== annGen) return;
      annotations = res.results || [];
      annError = '';
    } catch (e) {
      if (gen !== annGen) return;
      annotations = [];
      annError = 'Annotations could not load: ' + e.message;
    }
    drawAnnotations();
    G.redraw();
  }
  function when(a) {
    const d = new Date(a.date + 'T12:00:00Z').toLocaleDateString('en-US', { month: 'short', day: 'numeric', year: 'numeric', timeZone: 'UTC' });
    return a.time ? d + ', ' + a.time : d;
  }
  function drawAnnotations() {
    clear(annBox);
    const head = el('div', { class: 'annotations-head' }, el('h3', { text: 'Annotations' }));
    annBox.append(head);
    const list = el('ul', { class: 'annotation-list', id: 'annotation-list' });
    for (const a of annotations) {
      const li = el('li', { 'data-id': a.id },
        el('span', { class: 'annotation-when', text: when(a) }), ' ',
        el('span', { class: 'annotation-text', text: a.text }));
      if (a.created_by) li.append(' ', el('span', { class: 'muted annotation-by', text: '· ' + a.created_by }));
      if (CAN_EDIT) li.append(' ', el('button', { type: 'button', class: 'link annotation-remove', 'aria-label': 'Remove annotation ' + a.text, onclick: () => removeAnnotation(a) }, 'Remove'));
      list.append(li);
    }
    if (!annotations.length) list.append(el('li', { class: 'muted', text: 'None in this period.' + (CAN_EDIT ? ' Add one to mark a launch, a campaign or an outage on the chart.' : '') }));
    annBox.append(list);
    if (CAN_EDIT) annBox.append(annotationForm());
    if (annError) annBox.append(el('p', { class: 'error', role: 'alert', id: 'annotation-error', text: annError }));
  }
  function annotationForm() {
    const date = el('input', { type: 'date', id: 'annotation-date', required: true, 'aria-label': 'Date' });
    const time = el('input', { type: 'time', id: 'annotation-time', 'aria-label': 'Time (optional)' });
    const text = el('input', { type: 'text', id: 'annotation-text', maxlength: 200, required: true, 'aria-label': 'Annotation text', placeholder: 'What happened' });
    const form = el('form', { class: 'annotation-form', id: 'annotation-form' }, date, time, text, el('button', { type: 'submit', id: 'annotation-add' }, 'Add'));
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      try {
        await post('annotations/save', { date: date.value, time: time.value, text: text.value });
        annError = '';
      } catch (e) {
        annError = 'Could not add the annotation: ' + e.message;
      }
      await loadAnnotations(G.state());
    });
    return form;
  }
  async function removeAnnotation(a) {
    try {
      await post('annotations/delete', { id: a.id });
      annError = '';
    } catch (e) {
      annError = 'Could not remove the annotation: ' + e.message;
    }
    await loadAnnotations(G.state());
  }

  // The chart layer: a marker per annotation at the bucket that holds it,
  // its text shown on hover and keyboard focus (CSS), and in its <title>.
  G.onChart((c) => {
    if (!annotations.length || !c.rows.length) return;
    const layer = svg('g', { class: 'annotations-layer' });
    for (const a of annotations) {
      const key = c.interval === 'hour' ? a.date + ' ' + (a.time ? a.time.slice(0, 2) : '00') + ':00:00' : a.date;
      let i = 0;
      for (let j = 0; j < c.rows.length; j++) if (c.rows[j].date <= key) i = j;
      const x = c.x(i);
      const g = svg('g', { class: 'annotation', tabindex: 0, 'data-id': a.id, 'aria-label': when(a) + ': ' + a.text });
      const title = svg('title', {});
      title.textContent = when(a) + ': ' + a.text;
      const right = x > c.width / 2;
      const label = svg('text', { x: right ? x - 8 : x + 8, y: c.top + 12, 'text-anchor': right ? 'end' : 'start', class: 'annotation-label' });
      label.textContent = a.text.length > 60 ? a.text.slice(0, 59) + '…' : a.text;
      g.append(title,
        svg('line', { x1: x, x2: x, y1: c.top, y2: c.bottom, class: 'annotation-line' }),
        svg('rect', { x: x - 6, y: c.top - 6, width: 12, height: c.bottom - c.top + 6, class: 'annotation-hit' }),
        svg('circle', { cx: x, cy: c.top + 2, r: 5, class: 'annotation-dot' }),
        label);
      layer.append(g);
    }
    c.svg.append(layer);
  });

  G.onLoad((st) => { drawSegments(); loadAnnotations(st); });
  drawSegments();
  loadSegments();
  loadAnnotations(G.state());
})();
