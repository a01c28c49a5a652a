/* shopflow dashboard: the script of the page the web/ crate serves at `/`. Plain ES2020,
 * no build step, no libraries, no network but its own server. Client of docs/websocket.md:
 *  - holds the state map (entry name -> object) and its seq; a `snapshot`
 *    replaces it; a `delta` applies only at seq held + 1; a gap sends
 *    {"type":"resync"} once and waits; a delta at or below held is ignored;
 *  - 15 s of silence = lost; reconnects back off 0.5 s doubling to 10 s,
 *    jittered ±20 %, reset only after a connection stayed live for 10 s;
 *  - the token comes from #token=... (kept in sessionStorage, removed from
 *    the address bar and history) and goes out as /ws?token=...;
 *  - late-data corrections come from deltas only, never from comparing a
 *    fresh snapshot with the old state (a restarted server differs everywhere);
 *  - an absent entry (never sent, or removed by a delta) is zero or empty.
 * Money is summed and formatted exactly in integer cents; AOV rounds half to even. The
 * 60-minute KPIs sum the chart's 60 minute/* slots: they equal the chart and currency panel.
 *
 * Hooks for tests (tests/browser/dashboard.test.mjs): body[data-status]
 * ("connecting" | "live" | "lost") and body[data-seq] (the seq rendered);
 * #kpi-revenue #kpi-orders #kpi-aov #kpi-sessions #funnel-active
 * #funnel-carted #funnel-purchased #health-lag #health-eps #upto, the
 * currency cells #currency td.v and the bars #chart-revenue rect.bar carry
 * data-value = the raw value (integers without separators, money "1234.50",
 * lag ms, upto epoch ms; "" while unknown); their text is for people
 * ("1,234", "$1,234.50", HH:MM:SS UTC). Corrections shown: #corrections
 * li.correction. window.__shopflow = {socket, state(), reconnect(), corrections}.
 */
'use strict';
(() => {
  const MINUTE = 60_000;
  const SLOTS = 60; // minutes on the chart
  const SILENCE_MS = 15_000, BACKOFF_MIN_MS = 500, BACKOFF_MAX_MS = 10_000, STABLE_MS = 10_000, RESYNC_RETRY_MS = 5_000;
  const SVG = 'http://www.w3.org/2000/svg';
  const $ = (id) => document.getElementById(id);

  // ---------- formatting (exact money from decimal strings) ----------
  const intFmt = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });
  const isNum = (n) => n !== null && n !== undefined && n !== '' && Number.isFinite(Number(n));
  const fmtInt = (n) => (isNum(n) ? intFmt.format(Number(n)) : '—');
  const hhmm = (ms) => new Date(ms).toISOString().slice(11, 16);
  const hhmmss = (ms) => new Date(ms).toISOString().slice(11, 19);

  /** "1234.5" | "1234.50" -> 123450n; null when not a plain decimal. */
  function cents(s) {
    const m = /^(-?)(\d+)(?:\.(\d{1,2}))?$/.exec(String(s ?? '').trim());
    if (!m) return null;
    const c = BigInt(m[2]) * 100n + BigInt((m[3] || '0').padEnd(2, '0'));
    return m[1] ? -c : c;
  }
  /** 123450n -> "1234.50" */
  function centsStr(c) {
    const a = c < 0n ? -c : c;
    return `${c < 0n ? '-' : ''}${a / 100n}.${String(a % 100n).padStart(2, '0')}`;
  }
  /** "1234.5" or 123450n -> "$1,234.50" (the input as it is when it is no decimal). */
  function fmtUsd(v) {
    const c = typeof v === 'bigint' ? v : cents(v);
    if (c === null) return v === null || v === undefined ? '—' : String(v);
    return centsStr(c).replace(/^-?/, '$&$$').replace(/\B(?=(\d{3})+(?!\d))/g, ',');
  }
  /** n / d rounded half to even, for n >= 0, d > 0 (BigInt). */
  function divHalfEven(n, d) {
    const q = n / d, twice = 2n * (n % d);
    return twice > d || (twice === d && q % 2n === 1n) ? q + 1n : q;
  }
  const shortFmt = new Intl.NumberFormat('en-US',
    { style: 'currency', currency: 'USD', notation: 'compact', minimumFractionDigits: 0, maximumFractionDigits: 1 });
  const fmtShortUsd = (c) => shortFmt.format(Number(c) / 100); // axis labels only: "$1.2K"
  const pct = (a, b) => (b > 0 ? `${((100 * a) / b).toFixed(1)}%` : '—');

  /** Sets text and data-value; elements with data-flash flash when a known value changes.
   * With `small`, money shows its cents smaller ("$1,234" + ".50"); textContent stays whole. */
  function setVal(el, raw, text, small) {
    if (typeof el === 'string') el = $(el);
    const v = raw === null || raw === undefined ? '' : String(raw);
    if ('flash' in el.dataset && el.dataset.value && el.dataset.value !== v) flash(el, 'text');
    el.dataset.value = v;
    if (el.textContent === text) return;
    const cut = small ? text.lastIndexOf('.') : -1;
    if (cut < 0) { el.textContent = text; return; }
    el.textContent = text.slice(0, cut);
    el.appendChild(document.createElement('small')).textContent = text.slice(cut);
  }
  function flash(el, kind) {
    if (!el.animate || el.getAnimations().length) return; // one flash at a time
    if (kind === 'bar') el.animate([{ fill: '#ffb547' }, { fill: '#ffb547', offset: 0.6 }, {}], { duration: 2400 });
    else el.animate([{ color: '#9fdcff' }, {}], { duration: 900, easing: 'ease-out' });
  }

  // ---------- connection ----------
  const conn = { socket: null, synced: false, attempt: 0, retryAt: 0, retryTimer: 0, watchdog: 0, stable: 0, resyncAt: 0, lastReason: '' };
  let held = { seq: 0, entries: {}, at: 0, receivedAt: 0 };
  const corrections = []; // newest first: {start, from, to, ordersFrom, ordersTo, times, seenAt}
  const pendingFlashes = new Set(); // minutes corrected since the last render
  let renderQueued = false;

  const TOKEN_KEY = 'shopflow.token';
  let token = ''; // for /ws; see takeToken
  /** Takes #token=... out of the address (kept in sessionStorage, gone from the URL and history);
   * without one in the address, the token stored in this tab's session. */
  function takeToken() {
    const parts = location.hash.replace(/^#/, '').split('&'), i = parts.findIndex((p) => p.startsWith('token='));
    const store = (f) => { try { return f(window.sessionStorage); } catch { return null; } }; // storage may be off
    if (i < 0) { token = token || store((s) => s.getItem(TOKEN_KEY)) || ''; return; }
    const raw = parts.splice(i, 1)[0].slice(6);
    try { token = decodeURIComponent(raw); } catch { token = raw; }
    store((s) => (token ? s.setItem(TOKEN_KEY, token) : s.removeItem(TOKEN_KEY)));
    const rest = parts.filter(Boolean).join('&');
    history.replaceState(history.state, '', `${location.pathname}${location.search}${rest ? `#${rest}` : ''}`);
  }
  function wsUrl() {
    const url = new URL('ws', location.href); // same host (and path prefix) as the page
    url.protocol = location.protocol === 'https:' ? 'wss:' : 'ws:';
    url.hash = '';
    url.search = token ? `?token=${encodeURIComponent(token)}` : '';
    return url.href;
  }

  function connect() {
    clearTimeout(conn.retryTimer);
    let ws;
    try { ws = new WebSocket(wsUrl()); } catch { lost(); return; }
    conn.socket = ws;
    conn.synced = false; // until this socket's first snapshot
    window.__shopflow.socket = ws;
    renderStatus();
    armWatchdog(ws); // also bounds a connect that hangs
    ws.onmessage = (ev) => {
      if (ws !== conn.socket) return;
      armWatchdog(ws);
      onMessage(ws, ev.data);
    };
    ws.onclose = (ev) => { if (ws === conn.socket) lost(ev.reason); };
    ws.onerror = () => {}; // a close event always follows
  }
  function armWatchdog(ws) {
    clearTimeout(conn.watchdog);
    conn.watchdog = setTimeout(() => { if (ws === conn.socket) lost('no message for 15 s'); }, SILENCE_MS);
  }
  function dropSocket() {
    clearTimeout(conn.watchdog);
    clearTimeout(conn.stable);
    const ws = conn.socket;
    conn.socket = null;
    if (ws && ws.readyState <= WebSocket.OPEN) ws.close();
  }
  function lost(reason) {
    dropSocket();
    const base = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** conn.attempt);
    const delay = base * (0.8 + 0.4 * Math.random());
    conn.attempt += 1;
    conn.retryAt = Date.now() + delay;
    conn.retryTimer = setTimeout(connect, delay);
    conn.lastReason = reason || '';
    setStatus('lost');
  }
  function reconnect() { // now, without backoff (hash change, debugging)
    dropSocket();
    conn.attempt = 0;
    connect();
  }
  function resync(ws) {
    if (conn.resyncAt && Date.now() - conn.resyncAt < RESYNC_RETRY_MS) return; // one at a time
    if (ws.readyState !== WebSocket.OPEN) return;
    conn.resyncAt = Date.now();
    ws.send(JSON.stringify({ type: 'resync' }));
  }

  function onMessage(ws, data) {
    let msg;
    try { msg = JSON.parse(data); } catch { return; }
    if (msg.type === 'snapshot') {
      conn.resyncAt = 0;
      // the backoff resets once this socket stayed live a while, not on a snapshot then a drop
      if (!conn.synced) conn.stable = setTimeout(() => { if (ws === conn.socket) conn.attempt = 0; }, STABLE_MS);
      conn.synced = true;
      apply(msg, msg.entries || {}, null);
    } else if (msg.type === 'delta') {
      if (conn.synced && msg.seq === held.seq + 1) apply(msg, msg.set || {}, msg.del || []);
      else if (conn.synced && msg.seq > held.seq + 1) resync(ws);
    } else if (msg.type === 'heartbeat') {
      if (conn.synced && msg.seq > held.seq) resync(ws); // we missed the state it names
      renderFooter();
    }
  }

  function apply(msg, set, del) {
    const before = held.entries;
    const next = del === null ? {} : { ...before };
    for (const k of del || []) delete next[k];
    Object.assign(next, set);
    held = { seq: msg.seq, entries: next, at: msg.at, receivedAt: Date.now() };
    // corrections from deltas only: a snapshot may follow a server restart, where every minute differs
    if (del !== null) for (const start of findCorrections(before, next, [...Object.keys(set), ...del])) pendingFlashes.add(start);
    setStatus('live');
    if (renderQueued) return;
    renderQueued = true; // at most one render per frame, however fast states arrive
    requestAnimationFrame(() => {
      renderQueued = false;
      render();
      for (const start of pendingFlashes) if (chart.slotOf(start) >= 0) flash(chart.bars[chart.slotOf(start)], 'bar');
      pendingFlashes.clear();
    });
  }

  // ---------- status ----------
  let status = 'connecting';
  function setStatus(s) {
    status = s;
    document.body.dataset.status = s;
    renderStatus();
  }
  function renderStatus() {
    const el = $('status'), wait = Math.max(1, Math.ceil((conn.retryAt - Date.now()) / 1000));
    const text = status === 'live' ? 'live' : status === 'connecting' ? 'connecting…'
      : `connection lost — reconnecting${conn.socket ? '…' : ` in ${wait} s`}`;
    if (el.textContent !== text) el.textContent = text;
    el.title = status === 'live' ? '' : `${conn.lastReason ? `${conn.lastReason}. ` : ''}If the server needs a token, open the page as /#token=TOKEN`;
  }

  // ---------- late-data corrections ----------
  /** Minutes a delta changed (or removed inside the window) after they were complete.
   * A minute corrected again keeps one line: first value -> latest, with a count. */
  function findCorrections(before, next, keys) {
    if (!before.meta || !next.meta) return [];
    const windowStart = lastMinute(next) - (SLOTS - 1) * MINUTE;
    const found = [];
    for (const k of keys) {
      const old = before[k];
      if (!k.startsWith('minute/') || !old || !old.complete) continue;
      const now = next[k];
      if (now ? now.revenue_usd === old.revenue_usd && now.orders === old.orders : old.start < windowStart) continue;
      const i = corrections.findIndex((c) => c.start === old.start);
      const c = i >= 0 ? corrections.splice(i, 1)[0] : { start: old.start, from: old.revenue_usd, ordersFrom: old.orders, times: 0 };
      corrections.unshift({ ...c, to: now ? now.revenue_usd : '0.00', ordersTo: now ? now.orders : 0, times: c.times + 1, seenAt: Date.now() });
      found.push(old.start);
    }
    corrections.length = Math.min(corrections.length, 6);
    return found;
  }

  // ---------- rendering ----------
  const lastMinute = (entries) => Math.floor((entries.meta.upto - 1) / MINUTE) * MINUTE;
  /** The chart's 60 minute slots (the minute holding upto - 1 and the 59 before it); no entry: no orders. */
  function windowSlots(e) {
    const first = lastMinute(e) - (SLOTS - 1) * MINUTE;
    return Array.from({ length: SLOTS }, (_, i) => {
      const start = first + i * MINUTE, row = e[`minute/${start}`];
      return { start, row, c: (row && cents(row.revenue_usd)) || 0n, orders: row ? Number(row.orders) || 0 : 0 };
    });
  }

  function render() {
    const e = held.entries;
    document.body.dataset.seq = String(held.seq); // with the values it goes with
    if (!e.meta) return;
    $('title').textContent = e.meta.title || '';
    document.title = `shopflow · ${e.meta.title || ''}`;
    const started = e.meta.upto > 0; // 0 until the first event time completes
    setVal('upto', started ? e.meta.upto : '', started ? hhmmss(e.meta.upto) : '--:--:--');
    const slots = started ? windowSlots(e) : [];
    renderKpis(e, slots);
    if (started) chart.render(slots);
    renderFunnel(e.funnel);
    renderCurrencies(e);
    renderTop('top-revenue', e['top/revenue'], fmtUsd);
    renderTop('top-views', e['top/views'], fmtInt);
    renderHealth(e.health);
    renderCorrections();
    renderFooter();
  }

  function renderKpis(e, slots) {
    // 60 minutes: exactly the chart's slots (so chart, KPI and currency panel agree to the cent)
    const c = slots.reduce((a, s) => a + s.c, 0n), orders = slots.reduce((a, s) => a + s.orders, 0);
    setVal('kpi-revenue', centsStr(c), fmtUsd(c), true);
    setVal('kpi-orders', orders, fmtInt(orders));
    const aov = orders > 0 && c >= 0n ? divHalfEven(c, BigInt(orders)) : null;
    setVal('kpi-aov', aov === null ? '' : centsStr(aov), aov === null ? '—' : fmtUsd(aov), true);
    // sliding windows; an absent rolling entry is zero (the server drops it when it falls to zero)
    const zero = { orders: 0, revenue_usd: '0.00', sessions: 0 }, r5 = e['rolling/5'] || zero, r60 = e['rolling/60'] || zero;
    setVal('kpi-sessions', r5.sessions, fmtInt(r5.sessions));
    $('kpi-revenue-sub').textContent = `sliding 5 min: ${fmtUsd(r5.revenue_usd)}`;
    $('kpi-orders-sub').textContent = `sliding 5 min: ${fmtInt(r5.orders)}`;
    $('kpi-sessions-sub').textContent = `${fmtInt(r60.sessions)} over a sliding 60 min`;
    if (!(e.meta.upto > 0)) return;
    // The minute [m, m + 60 s) is complete once upto >= m + 60 s.
    const m = Math.floor(e.meta.upto / MINUTE) * MINUTE - MINUTE;
    const row = e[`minute/${m}`];
    $('kpi-minute-label').textContent = `· ${hhmm(m)} UTC`;
    setVal('kpi-minute-revenue', row ? row.revenue_usd : '0.00', fmtUsd(row ? row.revenue_usd : '0.00'), true);
    setVal('kpi-minute-orders', row ? row.orders : 0, `${fmtInt(row ? row.orders : 0)} orders`);
  }

  const svgSet = (n, attrs) => { for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, v); return n; };
  const el = (tag, attrs, parent) => parent.appendChild(svgSet(document.createElementNS(SVG, tag), attrs));

  /** Revenue bars and the orders line: SVG elements made once, then updated in place (no flicker). */
  const chart = {
    bars: [], info: [], first: 0, hover: -1, geo: null,
    init() {
      const rev = $('chart-revenue'), ord = $('chart-orders');
      this.grid = el('g', {}, rev);
      const barsG = el('g', {}, rev);
      this.xlabels = el('g', {}, rev);
      for (let i = 0; i < SLOTS; i++) this.bars.push(el('rect', { class: 'bar', rx: 2 }, barsG));
      this.oarea = el('path', { class: 'oarea' }, ord);
      this.oline = el('polyline', { class: 'oline' }, ord);
      this.omax = el('text', { y: 10, 'text-anchor': 'end' }, ord);
      rev.addEventListener('mousemove', (ev) => this.hoverAt(ev));
      rev.addEventListener('mouseleave', () => this.hoverAt(null));
    },
    slotOf(start) {
      const i = (start - this.first) / MINUTE;
      return Number.isInteger(i) && i >= 0 && i < SLOTS ? i : -1;
    },
    render(slots) {
      const rev = $('chart-revenue'), ord = $('chart-orders');
      const W = rev.clientWidth || 900, H = 250, L = 56, R = 8, T = 8, B = 24, plotH = H - T - B;
      const slotW = (W - L - R) / SLOTS, gap = Math.min(3, slotW * 0.2);
      rev.setAttribute('viewBox', `0 0 ${W} ${H}`);
      this.geo = { L, slotW };
      this.info = slots;
      this.first = slots[0].start;
      const max = this.info.reduce((m, s) => (s.c > m ? s.c : m), 0n);
      const omax = Math.max(...this.info.map((s) => s.orders));
      const { step, top } = niceScale(max);
      this.grid.replaceChildren();
      for (let v = 0n; v <= top; v += step) {
        const y = T + plotH - (Number(v) / Number(top)) * plotH;
        el('line', { class: 'gridline', x1: L, x2: W - R, y1: y, y2: y }, this.grid);
        el('text', { x: L - 8, y: y + 4, 'text-anchor': 'end' }, this.grid).textContent = fmtShortUsd(v);
      }
      this.xlabels.replaceChildren();
      this.info.forEach((s, i) => {
        const x = L + i * slotW, h = (Number(s.c) / Number(top)) * plotH;
        svgSet(this.bars[i], { x: x + gap / 2, width: Math.max(1, slotW - gap), y: T + plotH - h, height: h, 'data-value': centsStr(s.c) });
        this.bars[i].classList.toggle('open', !!s.row && !s.row.complete);
        if ((new Date(s.start).getUTCMinutes() % 10 === 0 && i < SLOTS - 4) || i === SLOTS - 1) {
          const anchor = i === SLOTS - 1 ? 'end' : 'middle';
          el('text', { x: x + slotW / 2, y: H - 6, 'text-anchor': anchor }, this.xlabels).textContent = hhmm(s.start);
        }
      });
      // orders per minute: a line over the same 60 slots, on its own scale
      const OH = 80, oTop = Math.max(1, omax);
      ord.setAttribute('viewBox', `0 0 ${ord.clientWidth || W} ${OH}`);
      const pts = this.info.map((s, i) => `${L + (i + 0.5) * slotW},${14 + (OH - 18) * (1 - s.orders / oTop)}`);
      this.oline.setAttribute('points', pts.join(' '));
      this.oarea.setAttribute('d', `M${L + slotW / 2},${OH - 4} L${pts.join(' L')} L${L + (SLOTS - 0.5) * slotW},${OH - 4} Z`);
      this.omax.setAttribute('x', L - 8);
      this.omax.textContent = `${fmtInt(omax)}/min`;
      if (this.hover >= 0) this.fillTip(this.hover);
    },
    hoverAt(ev) {
      const x = ev && this.geo ? ev.clientX - ev.currentTarget.getBoundingClientRect().left - this.geo.L : -1;
      const i = x >= 0 && Math.floor(x / this.geo.slotW) < SLOTS ? Math.floor(x / this.geo.slotW) : -1;
      if (this.hover >= 0) this.bars[this.hover].classList.remove('hover');
      this.hover = i;
      const tip = $('tooltip');
      tip.hidden = i < 0;
      if (i < 0) return;
      this.bars[i].classList.add('hover');
      this.fillTip(i);
      tip.style.left = `${Math.min(ev.clientX + 14, window.innerWidth - tip.offsetWidth - 8)}px`;
      tip.style.top = `${ev.clientY + 14}px`;
    },
    fillTip(i) {
      const s = this.info[i], tip = $('tooltip'), r = s.row;
      tip.replaceChildren();
      add(tip, 'b', `${hhmm(s.start)}–${hhmm(s.start + MINUTE)} UTC`);
      add(tip, 'div', `revenue ${fmtUsd(r ? r.revenue_usd : '0.00')}`);
      add(tip, 'div', `orders ${fmtInt(s.orders)}`);
      add(tip, 'div', `AOV ${r ? fmtUsd(r.aov_usd) : '—'}`);
      add(tip, 'span', !r ? 'no orders' : r.complete ? 'complete' : 'open (still counting)');
    },
  };
  /** A round axis step (1, 2 or 5 × 10^k cents) giving about 4 grid lines over max. */
  function niceScale(max) {
    const m = max > 0n ? Number(max) : 100;
    const raw = m / 4, p = 10 ** Math.floor(Math.log10(raw));
    const mult = [1, 2, 5, 10].find((f) => f * p >= raw);
    const step = BigInt(Math.max(1, Math.round(mult * p)));
    let top = step;
    while (top < BigInt(Math.ceil(m))) top += step;
    return { step, top };
  }

  function renderFunnel(f) {
    $('funnel-empty').hidden = !!f;
    $('funnel').hidden = !f;
    $('funnel-window').textContent = f ? `${hhmm(f.window_start)}–${hhmm(f.window_end)} UTC` : '';
    // none yet, or removed by a delta: no stale figure stays behind (not even in data-value)
    if (!f) { for (const k of ['active', 'carted', 'purchased']) setVal(`funnel-${k}`, '', '—'); return; }
    const { active: a, carted: c, purchased: p } = f;
    setVal('funnel-active', a, fmtInt(a));
    setVal('funnel-carted', c, fmtInt(c));
    setVal('funnel-purchased', p, fmtInt(p));
    $('funnel-carted-pct').textContent = `${pct(c, a)} of active`;
    $('funnel-purchased-pct').textContent = `${pct(p, a)} of active`;
    // nested: carted inside active, purchased inside carted
    $('nest-carted').style.width = a > 0 ? `${(100 * c) / a}%` : '0';
    $('nest-purchased').style.width = c > 0 ? `${(100 * p) / c}%` : '0';
    $('funnel-conv').textContent = `carted → purchased ${pct(p, c)} · active → purchased ${pct(p, a)}`;
  }

  /** Appends an HTML element (text, class) to parent and returns it. */
  function add(parent, tag, text, cls) {
    const n = parent.appendChild(document.createElement(tag));
    if (text !== undefined) n.textContent = text;
    if (cls) n.className = cls;
    return n;
  }
  /** Fills a ranked table from rows {rank?, name, id?, title?, frac, cols: [[class, text], ...]}. */
  function rankTable(body, rows, empty) {
    body.replaceChildren();
    if (!rows.length) add(add(body, 'tr'), 'td', empty, 'muted');
    for (const r of rows) {
      const tr = add(body, 'tr');
      if (r.rank !== undefined) add(tr, 'td', String(r.rank), 'r');
      const name = add(tr, 'td', r.name, 'name');
      name.title = r.title || r.name;
      if (r.id) add(name, 'span', r.id, 'id');
      add(name, 'span', undefined, 'meter').style.width = `${Math.max(0, 100 * r.frac)}%`;
      for (const [cls, text, value] of r.cols) Object.assign(add(tr, 'td', text, cls).dataset, value === undefined ? {} : { value });
    }
  }

  function renderCurrencies(e) {
    const rows = Object.keys(e).filter((k) => k.startsWith('currency/'))
      .map((k) => ({ ...e[k], c: cents(e[k].revenue_usd) ?? 0n }))
      .sort((x, y) => (x.c === y.c ? (x.currency < y.currency ? -1 : 1) : x.c > y.c ? -1 : 1));
    const max = rows.length ? Number(rows[0].c) || 1 : 1, rest = rows.splice(6); // top 6, then the rest as one row
    if (rest.length) {
      const c = rest.reduce((a, r) => a + r.c, 0n);
      rows.push({ currency: `${rest.length} more`, title: rest.map((r) => r.currency).join(', '), c,
        orders: rest.reduce((a, r) => a + r.orders, 0), revenue_usd: centsStr(c) });
    }
    rankTable($('currency'), rows.map((r) => ({ name: r.currency, title: r.title, frac: Number(r.c) / max,
      cols: [['o', `${fmtInt(r.orders)} orders`], ['v', fmtUsd(r.c), centsStr(r.c)]] })), 'no orders in the last 60 minutes');
  }

  function renderTop(id, top, fmt) {
    $(`${id}-hour`).textContent = top ? `hour ${hhmm(top.hour_start)} UTC` : '';
    const items = ((top && top.items) || []).slice().sort((x, y) => x.rank - y.rank);
    const max = items.length ? Number(items[0].value) || 1 : 1;
    rankTable($(id), items.map((it) => ({ rank: it.rank, name: it.name || it.product_id, id: it.name && it.product_id,
      title: it.name ? `${it.name} (${it.product_id})` : it.product_id, frac: Number(it.value) / max, cols: [['v', fmt(it.value)]] })), 'not ranked yet');
  }

  function renderHealth(h) {
    h = h || {}; // absent: every figure unknown ("—"), none kept from before
    const lag = $('health-lag');
    setVal(lag, h.lag_ms, isNum(h.lag_ms) ? `${(h.lag_ms / 1000).toFixed(1)} s` : '—');
    lag.className = h.lag_ms > 30_000 ? 'bad' : h.lag_ms > 10_000 ? 'warn' : '';
    setVal('health-eps', h.events_per_s, fmtInt(isNum(h.events_per_s) ? Math.round(h.events_per_s) : null));
    const texts = { lines: fmtInt(h.lines), admission: `${fmtInt(h.on_time)} · ${fmtInt(h.late)} · ${fmtInt(h.too_late)}`,
      duplicates: fmtInt(h.duplicates), conflicts: fmtInt(h.conflicts), waiting: fmtInt(h.waiting_fx), invalid: fmtInt(h.invalid) };
    for (const [k, text] of Object.entries(texts)) $(`health-${k}`).textContent = text;
    const reasons = Object.entries(h.invalid_by_reason || {}).sort((x, y) => y[1] - x[1]);
    $('health-invalid').title = reasons.map(([r, n]) => `${r}: ${n}`).join('\n') || 'no invalid messages';
    const list = $('health-reasons');
    list.replaceChildren();
    $('health-reasons-h').hidden = !reasons.length;
    for (const [r, n] of reasons.slice(0, 10)) add(list, 'li', `${r} ${fmtInt(n)}`);
    if (reasons.length > 10) add(list, 'li', `+${reasons.length - 10} more`);
    const w = h.warehouse;
    $('health-warehouse').textContent = w === undefined ? '—' : !w ? 'no warehouse'
      : w.last_commit_at ? `${fmtInt(w.commits)} commits · last ${hhmmss(w.last_commit_at)}` : `${fmtInt(w.commits)} commits`;
    $('health-warehouse').title = w ? `last commit (wall clock, UTC); warehouse holds event time up to ${w.upto ? hhmmss(w.upto) : '—'} UTC` : '';
  }

  function renderCorrections() {
    const ul = $('corrections');
    ul.replaceChildren();
    if (!corrections.length) add(ul, 'li', 'none yet', 'muted');
    for (const c of corrections) {
      const li = add(ul, 'li', undefined, 'correction');
      add(li, 'b', `corrected ${hhmm(c.start)}${c.times > 1 ? ` (${c.times}×)` : ''}`);
      li.append(` revenue ${fmtUsd(c.from)} → ${fmtUsd(c.to)}, orders ${fmtInt(c.ordersFrom)} → ${fmtInt(c.ordersTo)}`);
      add(li, 'span', ` · seen ${hhmmss(c.seenAt)} UTC`, 'muted');
    }
  }

  function renderFooter() {
    if (!held.entries.meta) return;
    const push = held.receivedAt - held.at;
    $('footer').textContent = `state #${held.seq} · published ${hhmmss(held.at)} UTC · push latency ${fmtInt(Math.max(0, push))} ms`
      + ` · ${Object.keys(held.entries).length} entries`;
  }

  // ---------- start ----------
  window.__shopflow = { socket: null, state: () => held, reconnect, corrections };
  chart.init();
  setInterval(() => { if (status !== 'live') renderStatus(); }, 250);
  window.addEventListener('hashchange', () => { takeToken(); reconnect(); });
  window.addEventListener('resize', () => { if (held.entries.meta && held.entries.meta.upto > 0) chart.render(windowSlots(held.entries)); });
  document.body.dataset.status = 'connecting';
  takeToken();
  connect();
})();
