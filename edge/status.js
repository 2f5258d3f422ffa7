// The Shoal edge status page: polls status.json every 2 s and draws it.
// No libraries, no other origin: the page's Content-Security-Policy allows
// this file, status.css and status.json only.
//
// The admin token, when the listener has one, comes from the URL fragment
// (#token=...), which browsers never send to the server; it is kept in
// sessionStorage for this tab, removed from the address bar, and sent as
// "Authorization: Bearer <token>".
'use strict';

(function () {
  const POLL_MS = 2000;
  const WINDOW_S = 15 * 60;
  const SLOT_S = 5;
  const SOURCES = ['memory', 'disk', 'peer', 'origin'];
  const SVG = 'http://www.w3.org/2000/svg';
  const $ = (id) => document.getElementById(id);

  let token = '';
  try { token = sessionStorage.getItem('shoal-admin-token') || ''; } catch (e) { /* storage off */ }
  const m = location.hash.match(/(?:^#|&)token=([^&]*)/);
  if (m) {
    token = decodeURIComponent(m[1]);
    try { sessionStorage.setItem('shoal-admin-token', token); } catch (e) { /* storage off */ }
    history.replaceState(null, '', location.pathname + location.search);
  }

  function fmtBytes(n) {
    if (n === null || n === undefined || isNaN(n)) return '—';
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
    let i = 0;
    let v = Number(n);
    while (Math.abs(v) >= 1024 && i < units.length - 1) { v /= 1024; i++; }
    const digits = i === 0 ? 0 : Math.abs(v) < 10 ? 2 : Math.abs(v) < 100 ? 1 : 0;
    return v.toFixed(digits) + ' ' + units[i];
  }
  function fmtCount(n) { return Number(n || 0).toLocaleString('en-US'); }
  function fmtPct(r) { return (r * 100).toFixed(1) + '%'; }
  function fmtDuration(s) {
    s = Math.max(0, Math.round(s));
    const d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600), m = Math.floor(s % 3600 / 60);
    if (d) return d + 'd ' + h + 'h';
    if (h) return h + 'h ' + m + 'm';
    if (m) return m + 'm ' + (s % 60) + 's';
    return s + 's';
  }
  function text(id, v) { $(id).textContent = v; }
  function el(tag, attrs, content) {
    const e = document.createElement(tag);
    for (const k in attrs || {}) {
      if (k === 'class') e.className = attrs[k]; else e.setAttribute(k, attrs[k]);
    }
    if (content !== undefined) e.textContent = content;
    return e;
  }
  function svg(tag, attrs, content) {
    const e = document.createElementNS(SVG, tag);
    for (const k in attrs || {}) e.setAttribute(k, attrs[k]);
    if (content !== undefined) e.textContent = content;
    return e;
  }
  function meter(id, used, limit) {
    const bar = $(id);
    const r = limit > 0 ? Math.min(1, used / limit) : 0;
    bar.style.width = (r * 100).toFixed(1) + '%';
    bar.classList.toggle('full', r > 0.95);
  }

  function renderNode(n) {
    text('self', n.self);
    const st = $('state');
    st.textContent = n.state;
    st.className = 'badge ' + n.state;
    const parts = [];
    if (n.version) parts.push(n.version);
    parts.push('up ' + fmtDuration(n.uptime_seconds));
    parts.push(n.members + (n.members === 1 ? ' member' : ' members'));
    parts.push(fmtBytes(n.segment_size) + ' segments, ' + n.k + '+' + n.m + ' shards');
    text('meta', parts.join(' · '));

    text('memory', fmtBytes(n.memory.bytes));
    meter('memory-bar', n.memory.bytes, n.memory.limit);
    text('memory-sub', 'of ' + fmtBytes(n.memory.limit) + ' · ' + fmtCount(n.memory.segments) + ' segments');

    const s = n.store;
    text('store', fmtBytes(s.bytes));
    meter('store-bar', s.bytes, s.limit);
    text('store-sub', 'of ' + fmtBytes(s.limit) + ' · ' + fmtCount(s.shards) + ' shards · ' +
      (s.writable ? 'writable' : 'not storing: ' + (s.reason || 'unknown')));
    $('store').dataset.writable = s.writable ? '1' : '0';
  }

  function renderTotals(t) {
    const off = $('offload');
    if (t.offload === null || t.offload === undefined) {
      off.textContent = '—';
      off.dataset.value = '';
      text('offload-sub', 'nothing served yet');
    } else {
      off.textContent = fmtPct(t.offload);
      off.dataset.value = String(t.offload);
      text('offload-sub', fmtBytes(t.origin_bytes) + ' fetched for ' + fmtBytes(t.served_total) + ' served');
    }
    const served = $('served-total');
    served.textContent = fmtBytes(t.served_total);
    served.dataset.value = String(t.served_total);
    text('requests', fmtCount(t.requests) + ' client requests');
    text('origin-bytes', fmtBytes(t.origin_bytes));
    text('origin-requests', fmtCount(t.origin_requests) + ' origin requests');
  }

  function renderPeers(peers) {
    const body = $('peers').tBodies[0];
    body.replaceChildren();
    const now = Date.now() / 1000;
    for (const p of peers || []) {
      let state = 'idle', label = 'no connection';
      if (p.self) { state = 'self'; label = 'this edge'; }
      else if (p.incompatible) { state = 'down'; label = 'incompatible layout'; }
      else if (p.down) { state = 'down'; label = 'down, retry in ' + fmtDuration(p.down_until - now); }
      else if (p.connected) { state = 'connected'; label = 'connected'; }
      const tr = el('tr', { 'data-addr': p.addr, 'data-state': state, class: p.self ? 'self' : '' });
      tr.append(el('td', { class: 'mono' }, p.addr));
      tr.append(el('td', {}, p.zone || '—'));
      const td = el('td');
      td.append(el('span', { class: 'dot ' + state }), document.createTextNode(label));
      tr.append(td);
      tr.append(el('td', { class: 'num', 'data-rtt-ms': String(p.rtt_ms) }, p.connected ? p.rtt_ms.toFixed(2) + ' ms' : '—'));
      tr.append(el('td', { class: 'num' }, p.self ? '—' : fmtBytes(p.bytes_sent)));
      tr.append(el('td', { class: 'num' }, p.self ? '—' : fmtBytes(p.bytes_received)));
      const errText = p.last_error ? (p.last_error_at ? fmtDuration(now - p.last_error_at) + ' ago: ' : '') + p.last_error : '—';
      tr.append(el('td', { class: 'error', title: p.last_error || '' }, errText));
      body.append(tr);
    }
  }

  function renderHot(hot) {
    const body = $('hot').tBodies[0];
    body.replaceChildren();
    if (!hot || hot.length === 0) {
      const tr = el('tr');
      tr.append(el('td', { class: 'empty', colspan: '4' }, 'nothing served in the last minutes'));
      body.append(tr);
      return;
    }
    const top = hot[0].bytes || 1;
    hot.forEach((h, i) => {
      const tr = el('tr', { 'data-key': h.key, 'data-bytes': String(Math.round(h.bytes)) });
      tr.append(el('td', { class: 'num' }, String(i + 1)));
      tr.append(el('td', { class: 'key', title: h.key }, h.key));
      tr.append(el('td', { class: 'num' }, fmtBytes(h.bytes)));
      const td = el('td', { class: 'share' });
      const bar = el('div');
      bar.style.width = Math.max(1, h.bytes / top * 100).toFixed(1) + '%';
      td.append(bar);
      tr.append(td);
      body.append(tr);
    });
  }

  // renderChart draws the intervals as stacked bars, one group per source
  // (memory at the bottom, origin on top), with the offload of each
  // interval as a line on the right-hand 0-100% axis.
  function renderChart(series) {
    const W = 960, H = 240, L = 62, R = 44, T = 10, B = 24;
    const PW = W - L - R, PH = H - T - B;
    const chart = $('chart');
    chart.replaceChildren();

    // Each interval's slot: [t-seconds, t]; the running one takes a whole
    // slot so that it is visible from its first second.
    const pts = (series || []).map((p) => {
      const start = p.t - p.seconds;
      return Object.assign({}, p, { start: start, end: p.partial ? start + SLOT_S : p.t });
    });
    const end = pts.length ? Math.max(...pts.map((p) => p.end)) : Date.now() / 1000;
    const begin = end - WINDOW_S;
    const x = (t) => L + (Math.max(begin, Math.min(end, t)) - begin) / WINDOW_S * PW;
    const shown = pts.filter((p) => p.end > begin);
    const total = (p) => SOURCES.reduce((s, k) => s + p[k], 0);
    const maxY = Math.max(0, ...shown.map(total));
    const y = (v) => T + PH - (maxY > 0 ? v / maxY * PH : 0);

    // Grid and axes.
    for (let i = 0; i <= 4; i++) {
      const gy = T + PH * i / 4;
      chart.append(svg('line', { class: 'grid', x1: L, x2: L + PW, y1: gy, y2: gy }));
      chart.append(svg('text', { x: L - 6, y: gy + 4, 'text-anchor': 'end' }, maxY > 0 ? fmtBytes(maxY * (4 - i) / 4) : ''));
      chart.append(svg('text', { x: L + PW + 6, y: gy + 4 }, (100 - 25 * i) + '%'));
    }
    for (let m = 15; m >= 0; m -= 3) {
      const gx = L + (WINDOW_S - m * 60) / WINDOW_S * PW;
      chart.append(svg('text', { x: gx, y: H - 6, 'text-anchor': m === 0 ? 'end' : m === 15 ? 'start' : 'middle' }, m === 0 ? 'now' : '−' + m + ' min'));
    }

    const sums = {};
    const base = shown.map(() => 0);
    for (const src of SOURCES) {
      const g = svg('g', { class: 'src ' + src, 'data-source': src });
      let sum = 0;
      shown.forEach((p, i) => {
        const v = p[src];
        if (v <= 0) return;
        sum += v;
        const x0 = x(p.start), x1 = x(p.end);
        const r = svg('rect', {
          x: x0.toFixed(2), width: Math.max(1.5, x1 - x0 - 0.6).toFixed(2),
          y: y(base[i] + v).toFixed(2), height: Math.max(0.5, y(base[i]) - y(base[i] + v)).toFixed(2),
          'data-bytes': String(v),
        });
        r.append(svg('title', {}, src + ': ' + fmtBytes(v) + ' in ' + p.seconds.toFixed(0) + ' s to ' + new Date(p.t * 1000).toLocaleTimeString()));
        g.append(r);
        base[i] += v;
      });
      g.setAttribute('data-total', String(sum));
      sums[src] = sum;
      chart.append(g);
    }

    // Offload per interval, clamped to the axis.
    const line = [];
    for (const p of shown) {
      const served = total(p);
      if (served <= 0) continue;
      const r = Math.max(0, Math.min(1, 1 - p.origin_bytes / served));
      line.push([(x(p.start) + x(p.end)) / 2, T + PH - r * PH]);
    }
    const og = svg('g', { id: 'offload-line', 'data-points': String(line.length) });
    if (line.length > 1) og.append(svg('polyline', { class: 'offload', points: line.map((q) => q[0].toFixed(1) + ',' + q[1].toFixed(1)).join(' ') }));
    for (const q of line) og.append(svg('circle', { class: 'offload-dot', cx: q[0].toFixed(1), cy: q[1].toFixed(1), r: 2.5 }));
    chart.append(og);

    if (maxY === 0) {
      chart.append(svg('text', { class: 'empty', x: L + PW / 2, y: T + PH / 2, 'text-anchor': 'middle' }, 'no client bytes in the last 15 minutes'));
    }

    // Legend: bytes per source over the window, and their share.
    const all = SOURCES.reduce((s, k) => s + sums[k], 0);
    const legend = $('legend');
    legend.replaceChildren();
    for (const src of SOURCES) {
      const item = el('span', { 'data-source': src, 'data-bytes': String(sums[src]) });
      item.append(el('span', { class: 'sw ' + src }), document.createTextNode(src + ' ' + fmtBytes(sums[src])));
      if (all > 0) item.append(el('span', { class: 'muted' }, ' (' + fmtPct(sums[src] / all) + ')'));
      legend.append(item);
    }
    const li = el('span', { class: 'muted' });
    li.append(el('span', { class: 'sw offload' }), document.createTextNode('offload'));
    legend.append(li);
  }

  function render(doc) {
    renderNode(doc.node);
    renderTotals(doc.totals);
    renderChart(doc.series);
    renderPeers(doc.peers);
    renderHot(doc.hot);
    document.title = 'Shoal · ' + doc.node.self + (doc.totals.offload !== null ? ' · offload ' + fmtPct(doc.totals.offload) : '');
    text('updated', 'updated ' + new Date(doc.node.now * 1000).toLocaleTimeString());
    $('error').hidden = true;
    $('auth').hidden = true;
    document.body.dataset.ready = '1';
  }

  let timer = 0;
  async function poll() {
    clearTimeout(timer);
    const headers = { Accept: 'application/json' };
    if (token) headers.Authorization = 'Bearer ' + token;
    try {
      const resp = await fetch('status.json', { headers: headers, cache: 'no-store', credentials: 'same-origin' });
      if (resp.status === 401) {
        $('auth').hidden = false;
        $('state').textContent = 'token needed';
        $('state').className = 'badge stale';
        return; // until a token is given
      }
      if (!resp.ok) throw new Error('status.json: ' + resp.status + ' ' + resp.statusText);
      render(await resp.json());
    } catch (err) {
      const e = $('error');
      e.textContent = 'Cannot refresh: ' + err.message + '. The figures below are from the last successful refresh.';
      e.hidden = false;
      $('state').className = 'badge stale';
    }
    timer = setTimeout(poll, POLL_MS);
  }

  $('auth-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    token = $('token-input').value.trim();
    try { sessionStorage.setItem('shoal-admin-token', token); } catch (e) { /* storage off */ }
    poll();
  });
  poll();
})();
