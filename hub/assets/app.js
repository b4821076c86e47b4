// sgd-hub dashboard: plain JavaScript, no build step, no third-party code.
//
// Every value from the API reaches the page through text nodes or setAttribute on a fixed
// attribute name (never parsed as markup), so an event id like <script>alert(1)</script> shows as text.
// The token lives in sessionStorage (this tab only) and goes out as `Authorization: Bearer …`.
'use strict';

(function () {
  const TOKEN_KEY = 'sgd-hub-token';
  const SVG_NS = 'http://www.w3.org/2000/svg';

  // Swedish names of the areas (insatsområden), as analysts know them.
  const AREA_NAMES = {
    npo: 'NPÖ',
    sdk: 'SDK',
    plans: 'Mina Planer',
    decision: 'Beslutsstöd',
    deviation: 'Avvikelser',
    video: 'Säkra videomöten',
    hub: 'Hubben (adapters)',
  };
  const AREA_COLORS = {
    npo: '#1f77b4',
    sdk: '#2ca02c',
    plans: '#9467bd',
    decision: '#d62728',
    deviation: '#e67e22',
    video: '#17a2b8',
    hub: '#7f8c8d',
  };
  const VIEWS = [
    { id: 'goals', label: 'Goals', who: 'analysts and operators' },
    { id: 'adoption', label: 'Adoption', who: 'analysts and operators' },
    { id: 'usage', label: 'Usage', who: 'analysts and operators' },
    { id: 'followup', label: 'Follow-up', who: 'analysts, operators and coordinators' },
    { id: 'live', label: 'Live events', who: 'analysts and operators' },
    { id: 'dlq', label: 'Dead letters', who: 'operators; integrators see their own' },
    { id: 'deliveries', label: 'Deliveries', who: 'operators; integrators see their own' },
  ];
  // The follow-up rules in the words of the processes; limits come from the API's answer.
  const RULE_LABELS = {
    late_notice: (l) => `Inskrivningsmeddelande later than ${l.admission_notice_hours} h`,
    ready_days_over_threshold: (l) =>
      `Utskrivningsklar more than ${l.payment_threshold_days} days (betalningsansvar)`,
    svu_without_sip: () => 'SVU discharged without a SIP before utskrivning',
    open_warning: (l) => `NEWS2 warning with no plan event within ${l.warning_follow_up_hours} h`,
    overdue_risk_flag: (l) => `Riskflagga not acknowledged in ${l.risk_acknowledge_days} days`,
    undelivered_message: (l) => `SDK message without receipt after ${l.receipt_hours} h`,
    rejected_message: () => 'SDK message rejected by the recipient',
    overdue_deviation: (l) => `Avvikelse not answered in ${l.deviation_answer_days} days`,
    overdue_analysis: (l) => `Händelseanalys missing after ${l.deviation_analysis_days} days`,
    not_strongly_identified: () => 'Videomöte with a participant not strongly identified',
  };
  const REASONS = {
    pii: 'personal identity number',
    too_large: 'too large',
    malformed: 'not JSON',
    unknown_type: 'unknown type',
    unknown_version: 'unknown schema version',
    principal_mismatch: 'wrong huvudman',
    area_mismatch: 'wrong area',
    envelope: 'envelope',
    schema: 'schema',
  };
  const MAX_TAIL_ROWS = 200;
  const MAX_CASE_ROWS = 200;

  const number = new Intl.NumberFormat('sv-SE');
  const moment = new Intl.DateTimeFormat('sv-SE', {
    timeZone: 'Europe/Stockholm',
    year: 'numeric',
    month: '2-digit',
    day: '2-digit',
    hour: '2-digit',
    minute: '2-digit',
    second: '2-digit',
  });

  const state = {
    token: null,
    me: null,
    catalogue: { principals: [], areas: [], rules: [] },
    loaded: {},
    usage: null,
    usageRequest: 0,
    followupAsOf: null,
    live: { controller: null, paused: false, lastSeq: 0, received: 0, generation: 0, retry: null, connectedAt: 0 },
  };

  // ---------------------------------------------------------------- DOM helpers

  const $ = (id) => document.getElementById(id);

  /** An element with attributes (`class`, or any fixed name) and children (nodes or text). */
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    setAttrs(node, attrs);
    appendAll(node, children);
    return node;
  }

  function svg(tag, attrs, ...children) {
    const node = document.createElementNS(SVG_NS, tag);
    setAttrs(node, attrs);
    appendAll(node, children);
    return node;
  }

  function setAttrs(node, attrs) {
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name.startsWith('on')) throw new Error('no inline handlers');
      node.setAttribute(name, String(value));
    }
  }

  function appendAll(node, children) {
    for (const child of children) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
  }

  function clear(node) {
    node.replaceChildren();
    return node;
  }

  function show(node, visible) {
    node.hidden = !visible;
  }

  const fmt = (n) => number.format(n);
  const pct = (v) => `${Math.round(v * 100)} %`;
  const areaName = (a) => AREA_NAMES[a] || String(a);
  const principalName = (code) => {
    const p = state.catalogue.principals.find((x) => x.code === code);
    return p ? p.name : String(code);
  };
  function when(text) {
    const d = new Date(text);
    return Number.isNaN(d.getTime()) ? String(text) : moment.format(d);
  }

  /** A count the API hid to protect persons: shown as such, never as a number. */
  function hiddenCount() {
    const threshold = state.me ? state.me.privacy_threshold : 5;
    return el(
      'span',
      {
        class: 'hidden-count',
        title:
          `Hidden to protect persons: a count below ${threshold}, or a second count hidden ` +
          'so that the first cannot be computed back from the total.',
      },
      'hidden',
    );
  }

  function setViewState(id, value) {
    const view = $(`view-${id}`);
    if (view) view.dataset.state = value;
  }

  function showError(message) {
    const box = $('error');
    box.textContent = message;
    show(box, Boolean(message));
  }

  // ---------------------------------------------------------------- API

  class AuthError extends Error {}

  async function request(path, options) {
    const headers = { Authorization: `Bearer ${state.token}` };
    const response = await fetch(path, Object.assign({ headers, cache: 'no-store' }, options || {}));
    if (response.status === 401) throw new AuthError('the token was not accepted');
    return response;
  }

  async function getJson(path) {
    const response = await request(path);
    let body = null;
    try {
      body = await response.json();
    } catch (_) {
      body = null;
    }
    if (!response.ok) {
      const message = body && typeof body.message === 'string' ? body.message : `HTTP ${response.status}`;
      throw new Error(`${path}: ${message}`);
    }
    return body;
  }

  function failed(view, error) {
    if (error instanceof AuthError) {
      signOut('Your token is no longer accepted (revoked or unknown). Sign in again.');
      return;
    }
    setViewState(view, 'error');
    showError(`Could not load ${view}: ${error.message}`);
  }

  // ---------------------------------------------------------------- sign-in and routing

  async function start() {
    $('sign-in-form').addEventListener('submit', (event) => {
      event.preventDefault();
      const token = $('token').value.trim();
      if (token) signIn(token);
    });
    $('sign-out').addEventListener('click', () => signOut(''));
    for (const button of document.querySelectorAll('[data-refresh]')) {
      button.addEventListener('click', () => load(button.dataset.refresh));
    }
    for (const id of ['usage-principal', 'usage-area', 'usage-bucket']) {
      $(id).addEventListener('change', () => load('usage'));
    }
    for (const id of ['live-principal', 'live-area']) {
      $(id).addEventListener('change', () => restartLive(true));
    }
    $('live-pause').addEventListener('click', togglePause);
    window.addEventListener('hashchange', route);
    let resizing = null;
    window.addEventListener('resize', () => {
      clearTimeout(resizing);
      resizing = setTimeout(() => state.usage && renderUsage(state.usage), 150);
    });
    try {
      const response = await fetch('/assets/catalogue.json', { cache: 'no-store' });
      state.catalogue = await response.json();
    } catch (error) {
      showError(`Could not load the catalogue: ${error.message}`);
    }
    fillSelects();
    const saved = sessionStorage.getItem(TOKEN_KEY);
    if (saved) signIn(saved);
    else signOut('');
  }

  async function signIn(token) {
    state.token = token;
    $('sign-in-button').disabled = true;
    try {
      state.me = await getJson('/api/v1/me');
    } catch (error) {
      $('sign-in-button').disabled = false;
      state.token = null;
      sessionStorage.removeItem(TOKEN_KEY);
      const message =
        error instanceof AuthError
          ? 'That token was not accepted: it is unknown or revoked.'
          : `Could not sign in: ${error.message}`;
      signOut(message);
      return;
    }
    $('sign-in-button').disabled = false;
    sessionStorage.setItem(TOKEN_KEY, token);
    $('token').value = '';
    const me = state.me;
    $('who-role').textContent = me.principal_name ? `${me.role} · ${me.principal_name}` : me.role;
    show($('who'), true);
    show($('sign-in'), false);
    show($('app'), true);
    buildNav();
    route();
  }

  function signOut(message) {
    stopLive();
    state.token = null;
    state.me = null;
    state.loaded = {};
    state.usage = null;
    sessionStorage.removeItem(TOKEN_KEY);
    show($('app'), false);
    show($('who'), false);
    show($('sign-in'), true);
    const box = $('sign-in-error');
    box.textContent = message;
    show(box, Boolean(message));
    $('token').focus();
  }

  function buildNav() {
    const nav = clear($('nav'));
    const allowed = state.me.views;
    for (const view of VIEWS) {
      if (!allowed.includes(view.id)) continue;
      nav.append(el('a', { href: `#/${view.id}`, 'data-view': view.id }, view.label));
    }
    const missing = VIEWS.filter((v) => !allowed.includes(v.id));
    const note = $('role-note');
    if (allowed.length === 0) {
      note.textContent =
        `This ${state.me.role} token may not read statistics: nothing to show here. ` +
        'Sign in with an analyst or operator token.';
    } else if (missing.length) {
      const article = /^[aeiou]/.test(state.me.role) ? 'an' : 'a';
      note.textContent =
        `Not shown for ${article} ${state.me.role} token: ` +
        missing.map((v) => `${v.label} (${v.who})`).join('; ') +
        '.';
    }
    show(note, missing.length > 0);
  }

  function route() {
    if (!state.me) return;
    const allowed = state.me.views;
    const wanted = location.hash.replace(/^#\/?/, '');
    const id = allowed.includes(wanted) ? wanted : allowed[0];
    for (const view of VIEWS) show($(`view-${view.id}`), view.id === id);
    for (const link of $('nav').querySelectorAll('a')) {
      if (link.dataset.view === id) link.setAttribute('aria-current', 'page');
      else link.removeAttribute('aria-current');
    }
    showError('');
    if (id === 'live') startLive();
    else stopLive();
    if (id && id !== 'live' && !state.loaded[id]) load(id);
  }

  function load(id) {
    state.loaded[id] = true;
    setViewState(id, 'loading');
    showError('');
    const loaders = {
      goals: loadGoals,
      adoption: loadAdoption,
      usage: loadUsage,
      followup: loadFollowup,
      dlq: loadDlq,
      deliveries: loadDeliveries,
    };
    const loader = loaders[id];
    if (loader) loader().catch((error) => failed(id, error));
  }

  function fillSelects() {
    const principals = state.catalogue.principals || [];
    for (const id of ['usage-principal', 'live-principal']) {
      const select = clear($(id));
      select.append(el('option', { value: '' }, `All ${principals.length} huvudmän`));
      for (const p of principals) select.append(el('option', { value: p.code }, `${p.name} (${p.code})`));
    }
    for (const id of ['usage-area', 'live-area']) {
      const select = clear($(id));
      select.append(el('option', { value: '' }, 'All areas'));
      for (const a of [...(state.catalogue.areas || []), 'hub']) select.append(el('option', { value: a }, areaName(a)));
    }
  }

  // ---------------------------------------------------------------- goals

  async function loadGoals() {
    const answer = await getJson('/api/v1/goals');
    const box = clear($('goals'));
    let hidden = false;
    for (const goal of answer.goals) {
      hidden = hidden || Boolean(goal.suppressed);
      box.append(goalCard(goal));
    }
    $('goals-as-of').textContent = `as of ${when(answer.as_of)}`;
    $('view-goals').dataset.asOf = answer.as_of;
    $('goals-note').textContent = hidden
      ? `"hidden": a share about persons whose count (or its complement) is below ${state.me.privacy_threshold} is ` +
        'not published, so that no one can be singled out.'
      : '';
    setViewState('goals', 'ready');
  }

  function goalCard(goal) {
    const value = typeof goal.value === 'number' ? goal.value : null;
    const target = typeof goal.target === 'number' ? goal.target : 1;
    let level = 'none';
    if (value !== null) level = value >= target ? 'met' : value >= target * 0.75 ? 'near' : 'far';
    const count = el('div', { class: 'count' });
    if (goal.numerator === null || goal.numerator === undefined) count.append(hiddenCount());
    else count.append(fmt(goal.numerator));
    count.append(' / ');
    if (goal.denominator === null || goal.denominator === undefined) count.append(hiddenCount());
    else count.append(fmt(goal.denominator));
    let valueText = value === null ? '–' : pct(value);
    let label = value === null ? 'no value' : pct(value);
    if (value === null && goal.denominator === 0) label = valueText = 'nothing due yet';
    return el(
      'article',
      { class: `gauge ${level}`, 'data-goal': goal.id },
      el('div', { class: 'area' }, areaName(goal.area)),
      el('div', { class: 'title' }, goal.title),
      gauge(value, target, `${goal.title}: ${label}, target ${pct(target)}`),
      el('div', { class: 'value' }, valueText),
      count,
      el('div', { class: 'target' }, `target ${pct(target)}`),
    );
  }

  /** A half-circle gauge: the arc is the value (0–1), the mark is the target. */
  function gauge(value, target, label) {
    const cx = 100;
    const cy = 100;
    const r = 80;
    const at = (fraction, radius) => {
      const angle = Math.PI * (1 - Math.min(Math.max(fraction, 0), 1));
      return [cx + radius * Math.cos(angle), cy - radius * Math.sin(angle)];
    };
    const arc = (fraction) => {
      const [x, y] = at(fraction, r);
      return `M ${cx - r} ${cy} A ${r} ${r} 0 0 1 ${x.toFixed(2)} ${y.toFixed(2)}`;
    };
    const node = svg('svg', { viewBox: '0 0 200 112', role: 'img', 'aria-label': label });
    node.append(svg('path', { class: 'arc-bg', d: arc(1) }));
    if (value !== null && value > 0) node.append(svg('path', { class: 'arc', d: arc(value) }));
    const [x1, y1] = at(target, r - 12);
    const [x2, y2] = at(target, r + 12);
    node.append(svg('line', { class: 'target-mark', x1, y1, x2, y2 }));
    return node;
  }

  // ---------------------------------------------------------------- adoption heatmap

  async function loadAdoption() {
    const answer = await getJson('/api/v1/adoption');
    const areas = state.catalogue.areas || [];
    const table = clear($('heatmap'));
    const head = el('tr', {}, el('th', { class: 'row' }, 'Huvudman'));
    for (const a of areas) head.append(el('th', { class: 'col', scope: 'col' }, areaName(a)));
    table.append(el('thead', {}, head));
    let max = 0;
    for (const p of answer.principals) for (const a of areas) max = Math.max(max, (p.areas[a] || {}).events || 0);
    const body = el('tbody');
    for (const p of answer.principals) {
      const row = el('tr', {}, el('th', { class: 'row', scope: 'row' }, p.name));
      for (const a of areas) {
        const cell = p.areas[a] || { events: 0 };
        const events = cell.events || 0;
        const td = el('td', { 'data-principal': p.principal, 'data-area': a }, fmt(events));
        const units = Array.isArray(cell.units) ? cell.units.length : 0;
        td.setAttribute(
          'title',
          `${p.name} · ${areaName(a)}: ${fmt(events)} events` +
            (cell.first_activity ? `, first ${cell.first_activity}, last ${cell.last_activity}` : '') +
            (units ? `, ${units} active units` : ''),
        );
        if (events === 0) td.className = 'zero';
        else {
          const t = Math.log1p(events) / Math.log1p(max);
          td.style.backgroundColor = heat(t);
          if (t > 0.55) td.className = 'dark';
        }
        row.append(td);
      }
      body.append(row);
    }
    table.append(body);
    const legend = clear($('heatmap-legend'));
    legend.append('Events: ');
    for (const [t, text] of [
      [0, '0'],
      [0.3, ''],
      [0.6, ''],
      [1, fmt(max)],
    ]) {
      const swatch = el('span', { class: 'swatch' });
      swatch.style.backgroundColor = t === 0 ? '#f2f5f7' : heat(t);
      legend.append(el('span', {}, swatch, text));
    }
    legend.append(el('span', {}, '(log scale)'));
    setViewState('adoption', 'ready');
  }

  /** Light blue to the brand's dark blue. */
  function heat(t) {
    const from = [226, 238, 246];
    const to = [11, 79, 108];
    const mix = from.map((f, i) => Math.round(f + (to[i] - f) * Math.min(Math.max(t, 0), 1)));
    return `rgb(${mix[0]}, ${mix[1]}, ${mix[2]})`;
  }

  // ---------------------------------------------------------------- usage

  async function loadUsage() {
    const params = new URLSearchParams();
    const principal = $('usage-principal').value;
    const area = $('usage-area').value;
    const bucket = $('usage-bucket').value || 'day';
    params.set('bucket', bucket);
    if (principal) params.set('principal', principal);
    if (area) params.set('area', area);
    const query = params.toString();
    const ticket = ++state.usageRequest;
    const answer = await getJson(`/api/v1/usage?${query}`);
    if (ticket !== state.usageRequest) return; // a newer filter was chosen meanwhile
    state.usage = { answer, principal, area, bucket, query };
    renderUsage(state.usage);
    $('view-usage').dataset.query = query;
    setViewState('usage', 'ready');
  }

  /** Every bucket from the first to the last, with none missing. */
  function bucketsBetween(first, last, bucket) {
    const out = [];
    if (!first) return out;
    if (bucket === 'month') {
      let [y, m] = first.split('-').map(Number);
      const [ly, lm] = last.split('-').map(Number);
      while ((y < ly || (y === ly && m <= lm)) && out.length < 1200) {
        out.push(`${y}-${String(m).padStart(2, '0')}`);
        m += 1;
        if (m > 12) {
          m = 1;
          y += 1;
        }
      }
      return out;
    }
    const day = new Date(`${first}T00:00:00Z`);
    const end = new Date(`${last}T00:00:00Z`);
    while (day <= end && out.length < 20000) {
      out.push(day.toISOString().slice(0, 10));
      day.setUTCDate(day.getUTCDate() + 1);
    }
    return out;
  }

  function renderUsage(usage) {
    const { answer, principal, area, bucket } = usage;
    // bucket → area → { shown, hidden }
    const cells = new Map();
    const areasSeen = new Set();
    for (const row of answer.rows) {
      if (!cells.has(row.bucket)) cells.set(row.bucket, new Map());
      const byArea = cells.get(row.bucket);
      if (!byArea.has(row.area)) byArea.set(row.area, { shown: 0, hidden: 0 });
      const cell = byArea.get(row.area);
      if (typeof row.count === 'number') cell.shown += row.count;
      else cell.hidden += 1;
      areasSeen.add(row.area);
    }
    const order = [...(state.catalogue.areas || []), 'hub'];
    const areas = order.filter((a) => areasSeen.has(a)).concat([...areasSeen].filter((a) => !order.includes(a)));
    const sorted = [...cells.keys()].sort();
    const buckets = bucketsBetween(sorted[0], sorted[sorted.length - 1], bucket);

    $('usage-total').textContent = fmt(answer.total);
    $('usage-scope').textContent =
      `${principal ? principalName(principal) : 'all huvudmän'} · ${area ? areaName(area) : 'all areas'} · per ${bucket}`;

    drawUsageChart(buckets, areas, cells);

    const legend = clear($('usage-legend'));
    for (const a of areas) {
      const swatch = el('span', { class: 'swatch' });
      swatch.style.backgroundColor = AREA_COLORS[a] || '#555';
      legend.append(el('span', {}, swatch, areaName(a)));
    }

    const table = clear($('usage-table'));
    const head = el('tr', {}, el('th', {}, bucket === 'month' ? 'Month' : 'Day'));
    for (const a of areas) head.append(el('th', { class: 'num' }, areaName(a)));
    head.append(el('th', { class: 'num' }, 'All'));
    table.append(el('thead', {}, head));
    const body = el('tbody');
    let anyHidden = false;
    for (const b of buckets) {
      const byArea = cells.get(b) || new Map();
      const row = el('tr', { 'data-bucket': b }, el('td', {}, b));
      let shown = 0;
      let hidden = 0;
      for (const a of areas) {
        const cell = byArea.get(a) || { shown: 0, hidden: 0 };
        shown += cell.shown;
        hidden += cell.hidden;
        row.append(countCell(cell, { 'data-area': a }));
      }
      row.append(countCell({ shown, hidden }, { 'data-area': 'all' }));
      anyHidden = anyHidden || hidden > 0;
      body.append(row);
    }
    table.append(body);
    $('usage-note').textContent = anyHidden
      ? `"+ hidden": the bucket also holds counts about persons below ${state.me.privacy_threshold} (or counts ` +
        'hidden with them), which are not published; the chart shows the published part. The total above is exact.'
      : '';
  }

  function countCell(cell, attrs) {
    const td = el('td', Object.assign({ class: 'num' }, attrs), fmt(cell.shown));
    if (cell.hidden > 0) td.append(' + ', hiddenCount());
    return td;
  }

  function drawUsageChart(buckets, areas, cells) {
    const box = clear($('usage-chart'));
    if (buckets.length === 0) {
      box.append(el('p', { class: 'muted' }, 'No events for this choice.'));
      return;
    }
    const width = Math.max(300, Math.min(1240, (box.clientWidth || 900) - 16));
    const height = Math.round(Math.min(340, Math.max(220, width * 0.36)));
    const pad = { left: 48, right: 12, top: 12, bottom: 28 };
    const plotW = width - pad.left - pad.right;
    const plotH = height - pad.top - pad.bottom;
    let max = 0;
    for (const b of buckets) {
      const byArea = cells.get(b);
      if (!byArea) continue;
      for (const a of areas) max = Math.max(max, (byArea.get(a) || { shown: 0 }).shown);
    }
    const top = niceCeiling(max);
    const x = (i) => pad.left + (buckets.length === 1 ? plotW / 2 : (i * plotW) / (buckets.length - 1));
    const y = (v) => pad.top + plotH - (v / top) * plotH;
    const chart = svg('svg', {
      width,
      height,
      viewBox: `0 0 ${width} ${height}`,
      role: 'img',
      'aria-label': `Events per ${buckets[0].length === 7 ? 'month' : 'day'} and area`,
    });
    for (let i = 0; i <= 4; i += 1) {
      const v = (top * i) / 4;
      chart.append(svg('line', { class: 'grid', x1: pad.left, x2: width - pad.right, y1: y(v), y2: y(v) }));
      chart.append(svg('text', { class: 'tick', x: pad.left - 6, y: y(v) + 4, 'text-anchor': 'end' }, fmt(v)));
    }
    chart.append(svg('line', { class: 'axis', x1: pad.left, x2: width - pad.right, y1: y(0), y2: y(0) }));
    const labels = Math.max(2, Math.min(8, Math.floor(plotW / 90)));
    const step = Math.max(1, Math.ceil(buckets.length / labels));
    for (let i = 0; i < buckets.length; i += step) {
      chart.append(
        svg('text', { class: 'tick', x: x(i), y: height - 8, 'text-anchor': 'middle' }, tickLabel(buckets[i])),
      );
    }
    for (const a of areas) {
      const points = buckets.map((b, i) => {
        const cell = (cells.get(b) || new Map()).get(a);
        return `${x(i).toFixed(1)},${y(cell ? cell.shown : 0).toFixed(1)}`;
      });
      const series = svg('polyline', {
        class: 'series',
        points: points.join(' '),
        stroke: AREA_COLORS[a] || '#555',
        'data-area': a,
      });
      series.append(svg('title', {}, areaName(a)));
      chart.append(series);
      if (buckets.length <= 31) {
        buckets.forEach((b, i) => {
          const cell = (cells.get(b) || new Map()).get(a);
          const v = cell ? cell.shown : 0;
          const dot = svg('circle', { cx: x(i), cy: y(v), r: 3, fill: AREA_COLORS[a] || '#555' });
          dot.append(svg('title', {}, `${areaName(a)} ${b}: ${fmt(v)}${cell && cell.hidden ? ' + hidden' : ''}`));
          chart.append(dot);
        });
      }
    }
    box.append(chart);
  }

  /** `2026-03-05` → `5 mars`, `2026-03` → `mars 2026` (Swedish, as analysts read dates). */
  function tickLabel(bucket) {
    const month = bucket.length === 7;
    const date = new Date(`${month ? `${bucket}-01` : bucket}T12:00:00Z`);
    if (Number.isNaN(date.getTime())) return bucket;
    const options = month ? { month: 'short', year: 'numeric' } : { day: 'numeric', month: 'short' };
    return new Intl.DateTimeFormat('sv-SE', Object.assign({ timeZone: 'UTC' }, options)).format(date);
  }

  function niceCeiling(v) {
    if (v <= 4) return 4;
    const magnitude = 10 ** Math.floor(Math.log10(v));
    for (const m of [1, 2, 2.5, 5, 10]) if (m * magnitude >= v) return m * magnitude;
    return 10 * magnitude;
  }

  // ---------------------------------------------------------------- follow-up

  async function loadFollowup() {
    const summary = await getJson('/api/v1/followup/summary');
    const asOf = summary.as_of;
    const open = await getJson(`/api/v1/followup/open?${new URLSearchParams({ as_of: asOf })}`);
    state.followupAsOf = asOf;
    const counts = new Map();
    for (const c of open.cases) counts.set(c.rule, (counts.get(c.rule) || 0) + 1);
    const rules = state.catalogue.rules && state.catalogue.rules.length ? state.catalogue.rules : [...counts.keys()];
    const max = Math.max(1, ...counts.values());
    const box = clear($('rules'));
    for (const rule of rules) {
      const n = counts.get(rule) || 0;
      const label = RULE_LABELS[rule] ? RULE_LABELS[rule](summary.limits || {}) : rule;
      const bar = el('span');
      bar.style.width = `${Math.round((100 * n) / max)}%`;
      const button = el(
        'button',
        { type: 'button', class: n === 0 ? 'rule zero' : 'rule', 'data-rule': rule, 'aria-pressed': 'false' },
        el('span', { class: 'rule-name' }, label),
        el('span', { class: 'rule-count' }, fmt(n)),
        el('span', { class: 'rule-code' }, rule),
        el('span', { class: 'bar' }, bar),
      );
      button.addEventListener('click', () => showRule(rule, label, button));
      box.append(button);
    }
    $('followup-as-of').textContent = `as of ${when(asOf)}`;
    $('view-followup').dataset.asOf = asOf;
    show($('rule-cases'), false);
    setViewState('followup', 'ready');
  }

  async function showRule(rule, label, button) {
    for (const b of $('rules').querySelectorAll('.rule')) b.setAttribute('aria-pressed', String(b === button));
    const panel = $('rule-cases');
    panel.dataset.state = 'loading';
    show(panel, true);
    $('rule-cases-title').textContent = label;
    try {
      const params = new URLSearchParams({ rule, as_of: state.followupAsOf || '' });
      const answer = await getJson(`/api/v1/followup/open?${params}`);
      const table = clear($('rule-cases-table'));
      table.append(
        el('thead', {}, el('tr', {}, el('th', {}, 'Huvudman'), el('th', {}, 'Case id'), el('th', {}, 'Since'))),
      );
      const body = el('tbody');
      for (const c of answer.cases.slice(0, MAX_CASE_ROWS)) {
        body.append(
          el(
            'tr',
            {},
            el('td', {}, principalName(c.principal)),
            el('td', { class: 'mono' }, c.case_id),
            el('td', {}, when(c.since)),
          ),
        );
      }
      table.append(body);
      $('rule-cases-more').textContent =
        answer.total > MAX_CASE_ROWS
          ? `${fmt(answer.total)} cases; the first ${MAX_CASE_ROWS} are shown (the API lists them all).`
          : `${fmt(answer.total)} cases.`;
      panel.dataset.state = 'ready';
      panel.dataset.rule = rule;
    } catch (error) {
      failed('followup', error);
    }
  }

  // ---------------------------------------------------------------- live tail (SSE over fetch)

  function setLiveStatus(kind, text) {
    const status = $('live-status');
    status.className = `status ${kind}`;
    status.textContent = text;
  }

  function togglePause() {
    const live = state.live;
    live.paused = !live.paused;
    $('live-pause').textContent = live.paused ? 'Resume' : 'Pause';
    if (live.paused) {
      stopLive();
      setLiveStatus('', 'paused');
    } else startLive();
  }

  function stopLive() {
    const live = state.live;
    live.generation += 1;
    clearTimeout(live.retry);
    if (live.controller) live.controller.abort();
    live.controller = null;
  }

  function restartLive(clearRows) {
    stopLive();
    if (clearRows) {
      state.live.lastSeq = 0;
      state.live.received = 0;
      clear($('live-rows'));
      $('live-count').textContent = '';
    }
    if (!$('view-live').hidden && !state.live.paused) startLive();
  }

  async function startLive() {
    const live = state.live;
    if (live.controller || live.paused || !state.token) return;
    const controller = new AbortController();
    live.controller = controller;
    const generation = ++live.generation;
    setLiveStatus('', 'connecting…');
    try {
      let from = live.lastSeq + 1;
      if (live.lastSeq === 0) {
        // Start with the last 50 events of the log, then every new one.
        const ready = await request('/readyz', { signal: controller.signal });
        const body = await ready.json();
        const last = Number(body && body.log_last_sequence) || 0;
        from = Math.max(1, last - 49);
      }
      const params = new URLSearchParams({ from_seq: String(from) });
      if ($('live-area').value) params.set('area', $('live-area').value);
      if ($('live-principal').value) params.set('principal', $('live-principal').value);
      const response = await request(`/api/v1/stream?${params}`, {
        signal: controller.signal,
        headers: { Authorization: `Bearer ${state.token}`, Accept: 'text/event-stream' },
      });
      if (!response.ok || !response.body) {
        let message = `HTTP ${response.status}`;
        try {
          message = (await response.json()).message || message;
        } catch (_) {
          /* not JSON */
        }
        throw new Error(message);
      }
      setLiveStatus('on', 'live');
      live.connectedAt = Date.now();
      $('view-live').dataset.state = 'ready';
      await readEvents(response.body, (message) => {
        if (generation === live.generation) onLiveMessage(message);
      });
      if (generation !== live.generation) return;
      throw new Error('the stream ended');
    } catch (error) {
      if (generation !== live.generation || controller.signal.aborted) return;
      if (error instanceof AuthError) {
        signOut('Your token is no longer accepted (revoked or unknown). Sign in again.');
        return;
      }
      live.controller = null;
      setLiveStatus('off', `reconnecting (${error.message})`);
      live.retry = setTimeout(startLive, 3000);
    }
  }

  /** Reads Server-Sent Events from a response body, calling `onMessage({event, id, data})`. */
  async function readEvents(body, onMessage) {
    const reader = body.getReader();
    const decoder = new TextDecoder();
    let buffer = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += decoder.decode(value, { stream: true });
      for (;;) {
        const match = /\r\n\r\n|\n\n|\r\r/.exec(buffer);
        if (!match) break;
        const block = buffer.slice(0, match.index);
        buffer = buffer.slice(match.index + match[0].length);
        const message = parseEvent(block);
        if (message) onMessage(message);
      }
      if (buffer.length > 1 << 20) buffer = ''; // a runaway message: drop it rather than grow
    }
  }

  function parseEvent(block) {
    let event = 'message';
    let id = null;
    const data = [];
    for (const line of block.split(/\r\n|\n|\r/)) {
      if (line === '' || line.startsWith(':')) continue; // keep-alive comments
      const colon = line.indexOf(':');
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? '' : line.slice(colon + 1);
      if (value.startsWith(' ')) value = value.slice(1);
      if (field === 'event') event = value;
      else if (field === 'data') data.push(value);
      else if (field === 'id') id = value;
    }
    return data.length ? { event, id, data: data.join('\n') } : null;
  }

  function onLiveMessage(message) {
    if (message.event === 'error') {
      setLiveStatus('off', `stream error: ${message.data}`);
      return;
    }
    if (message.event !== 'event') return;
    let e;
    try {
      e = JSON.parse(message.data);
    } catch (_) {
      return;
    }
    if (!e || typeof e !== 'object') return;
    const live = state.live;
    const seq = Number(e.seq) || 0;
    if (seq && seq <= live.lastSeq) return; // already shown (a reconnect overlaps)
    live.lastSeq = Math.max(live.lastSeq, seq);
    live.received += 1;
    const rows = $('live-rows');
    const row = el(
      'tr',
      { class: Date.now() - (live.connectedAt || 0) > 1500 ? 'new' : null, 'data-seq': seq },
      el('td', { class: 'num' }, String(seq)),
      el('td', {}, when(e.time)),
      el('td', {}, `${e.principal_name || principalName(e.principal)} (${e.principal})`),
      el('td', {}, areaName(e.area)),
      el('td', { class: 'mono' }, e.type),
      el('td', { class: 'id' }, e.id),
    );
    rows.prepend(row);
    while (rows.children.length > MAX_TAIL_ROWS) rows.lastElementChild.remove();
    $('live-count').textContent =
      `${fmt(live.received)} events received since the view opened; the newest ${fmt(rows.children.length)} shown.`;
  }

  // ---------------------------------------------------------------- dead letters

  async function loadDlq() {
    const answer = await getJson('/api/v1/dlq?limit=100');
    $('dlq-total').textContent = `${fmt(answer.total)} dead letters`;
    const counts = new Map();
    for (const item of answer.items) counts.set(item.reason, (counts.get(item.reason) || 0) + 1);
    const chips = clear($('dlq-reasons'));
    if (answer.items.length) chips.append(el('span', { class: 'muted' }, `In the newest ${answer.items.length}:`));
    for (const [reason, n] of [...counts.entries()].sort((a, b) => b[1] - a[1])) {
      chips.append(el('span', { class: 'chip', 'data-reason': reason }, `${reason}: ${fmt(n)}`));
    }
    const table = clear($('dlq-table'));
    table.append(
      el(
        'thead',
        {},
        el(
          'tr',
          {},
          el('th', {}, 'Received'),
          el('th', {}, 'Reason'),
          el('th', {}, 'Subject'),
          el('th', {}, 'Type'),
          el('th', {}, 'Id'),
          el('th', {}, 'Problems'),
          el('th', {}, 'Body'),
        ),
      ),
    );
    const body = el('tbody');
    for (const item of answer.items) {
      const problems = el('ul');
      for (const p of item.problems || []) {
        problems.append(el('li', {}, el('code', {}, p.path || '/'), ' ', p.message));
      }
      const details = el('details', {}, el('summary', {}, `${fmt((item.body || '').length)} characters`));
      details.append(el('pre', {}, item.body || ''));
      body.append(
        el(
          'tr',
          { 'data-seq': item.seq },
          el('td', {}, when(item.received_at)),
          el(
            'td',
            {},
            el('span', { class: 'reason' }, item.reason),
            el('br'),
            el('span', { class: 'muted' }, REASONS[item.reason] || ''),
          ),
          el('td', { class: 'mono' }, item.subject),
          el('td', { class: 'mono' }, item.event_type || '–'),
          el('td', { class: 'id' }, item.event_id || '–'),
          el('td', {}, problems),
          el('td', {}, details),
        ),
      );
    }
    table.append(body);
    setViewState('dlq', 'ready');
  }

  // ---------------------------------------------------------------- webhook deliveries

  async function loadDeliveries() {
    const answer = await getJson('/api/v1/subscriptions');
    const items = answer.items || [];
    $('deliveries-total').textContent = `${fmt(items.length)} subscriptions`;
    const table = clear($('deliveries-table'));
    const heads = ['Id', 'Huvudman', 'URL', 'Filter', 'State', 'Lag', 'Delivered', 'Failures', 'Parked', 'Last error'];
    table.append(el('thead', {}, el('tr', {}, ...heads.map((h) => el('th', {}, h)))));
    const body = el('tbody');
    for (const item of items) {
      const d = item.delivery || {};
      const filter = [(item.areas || []).join(', ') || 'all areas', (item.types || []).join(', ')].filter(Boolean);
      const stateText = item.paused ? 'paused' : d.running ? 'delivering' : 'delivered by another hub';
      body.append(
        el(
          'tr',
          { 'data-subscription': item.id },
          el('td', { class: 'mono' }, item.id),
          el('td', {}, item.principal),
          el('td', { class: 'mono' }, item.url),
          el('td', {}, filter.join('; ')),
          el('td', {}, stateText),
          el('td', { 'data-lag': d.lag_events || 0 }, `${fmt(d.lag_events || 0)} events, ${(d.lag_seconds || 0).toFixed(1)} s`),
          el('td', {}, fmt(d.delivered || 0)),
          el('td', {}, fmt(d.failures || 0)),
          el('td', { 'data-parked': d.parked || 0 }, fmt(d.parked || 0)),
          el('td', {}, d.last_error ? `${d.last_error} (${when(d.last_error_at)})` : '–'),
        ),
      );
    }
    table.append(body);
    setViewState('deliveries', 'ready');
  }

  document.addEventListener('DOMContentLoaded', start);
})();
