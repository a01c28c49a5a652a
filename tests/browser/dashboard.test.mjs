// Browser test of the live dashboard: a real `shopflow demo` on a free loopback
// port, the page in headless Debian Chromium driven by playwright-core.
//
//   scripts/browser-setup.sh                       # chromium + node_modules, once
//   SHOPFLOW_BIN=$CARGO_TARGET_DIR/release/shopflow node tests/browser/dashboard.test.mjs
//
// The demo runs with SHOPFLOW_DASHBOARD_TOKEN set to a random token and the
// page is opened at /#token=TOKEN. It checks, in order: /api/snapshot answers
// 401 (JSON with "error") without the token and 200 with "Authorization:
// Bearer TOKEN"; the page goes live and takes the token out of its address;
// numbers change as events flow; a dropped socket is shown as lost and the
// page reconnects by itself; the funnel is nested (active >= carted >=
// purchased, on the page and in /api/snapshot) once the first 5-minute window
// completes, which is as soon as the demo has caught up with its history
// (--history 6m); the 60-minute KPIs equal the chart's bars and the currency
// panel on every rendered state, and the minutes of /api/snapshot at the same
// seq; a late-data correction is shown (the demo sends 2 % late events);
// no console errors, warnings or page errors. It saves a full-page screenshot
// (1440x900 viewport) to $ARTIFACTS_DIR/dashboard.png (default tests/browser/artifacts/).
//
// Environment:
//   SHOPFLOW_BIN        the shopflow binary (required unless DASHBOARD_URL is set)
//   DASHBOARD_URL       test a server that is already running instead (e.g. a mock)
//   DASHBOARD_TOKEN     with DASHBOARD_URL: the token that server requires (none: the
//                       401 check is skipped); with SHOPFLOW_BIN a random one is used
//   SHOPFLOW_DEMO_RATE  events/s for the demo (default 2000)
//   SHOPFLOW_DEMO_HISTORY event time played before now (default 6m: the funnel
//                       is complete once it is caught up)
//   FUNNEL_TIMEOUT_S    how long to wait for the first funnel (default 180)
//   DASHBOARD_ASSETS    serve index.html, app.js and style.css from this folder
//                       (e.g. web/assets) instead of the binary's embedded copies,
//                       to try page changes without a rebuild
//   CHROMIUM            browser executable (default /usr/bin/chromium)
//   ARTIFACTS_DIR       where screenshots go
// Prints one line per check and ends with "N passed, N failed"; exit code 1 on failure.
import { chromium } from 'playwright-core';
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ARTIFACTS = process.env.ARTIFACTS_DIR || path.join(HERE, 'artifacts');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const RATE = process.env.SHOPFLOW_DEMO_RATE || '2000';
// Event time the demo plays before now: with more than 5 minutes, a complete
// 5-minute funnel window exists as soon as the history is caught up.
const HISTORY = process.env.SHOPFLOW_DEMO_HISTORY || '6m';
const FUNNEL_TIMEOUT_MS = Number(process.env.FUNNEL_TIMEOUT_S || 180) * 1000;
const CORRECTION_TIMEOUT_MS = 120_000;
// The dashboard token: random for our own demo, as given for an external server.
const TOKEN = process.env.DASHBOARD_URL ? process.env.DASHBOARD_TOKEN || '' : crypto.randomBytes(16).toString('hex');
const AUTH = TOKEN ? { authorization: `Bearer ${TOKEN}` } : {};
const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  // --user-data-dir: playwright passes the fresh directory given to launchPersistentContext
];

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const log = (...a) => console.log(`[${new Date().toISOString().slice(11, 19)}]`, ...a);
class Failure extends Error {}
function check(cond, msg) { if (!cond) throw new Failure(msg); }

/** Polls fn (sync or async) until it returns a truthy value; Failure with msg after ms. */
async function until(ms, msg, fn, every = 250) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Failure(`${msg} (waited ${ms / 1000} s)`);
    await sleep(every);
  }
}

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => { const { port } = srv.address(); srv.close(() => resolve(port)); });
  });
}

/** The demo process, with the tail of its output kept for error reports. */
function startDemo(bin, port) {
  const args = ['demo', '--listen', `127.0.0.1:${port}`, '--rate', RATE, '--history', HISTORY];
  log(`starting ${bin} ${args.join(' ')}`);
  const child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, SHOPFLOW_DASHBOARD_TOKEN: TOKEN } });
  const tail = [];
  const keep = (buf) => { tail.push(...buf.toString().split('\n').filter(Boolean)); tail.splice(0, Math.max(0, tail.length - 80)); };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  child.exited = new Promise((r) => child.on('exit', (code, sig) => r(sig || code)));
  child.output = () => tail.join('\n');
  return child;
}

async function stopDemo(child) {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  const how = await Promise.race([child.exited, sleep(10_000).then(() => null)]);
  if (how === null) { log('demo did not stop within 10 s of SIGTERM; killing it'); child.kill('SIGKILL'); await child.exited; }
}

async function httpOk(url) {
  try { return (await fetch(url, { signal: AbortSignal.timeout(2000) })).ok; } catch { return false; }
}

/** GET /api/snapshot with the token (header form); the parsed snapshot message, or null. */
async function apiSnapshot(base) {
  try {
    const r = await fetch(new URL('api/snapshot', base), { headers: AUTH, signal: AbortSignal.timeout(5000) });
    return r.ok ? await r.json() : null;
  } catch { return null; }
}

/** "1234.5" | "1234.50" -> 123450n (exact); throws on anything else. */
function cents(s) {
  const m = /^(-?)(\d+)(?:\.(\d{1,2}))?$/.exec(String(s));
  check(m, `not a decimal money string: ${JSON.stringify(s)}`);
  const c = BigInt(m[2]) * 100n + BigInt((m[3] || '0').padEnd(2, '0'));
  return m[1] ? -c : c;
}
const sumCents = (list) => list.reduce((a, v) => a + cents(v), 0n);

/** Minute revenue over the 60 slots the page charts (the minute holding upto - 1 and the 59 before). */
function minuteSum(entries) {
  const last = Math.floor((entries.meta.upto - 1) / 60_000) * 60_000;
  let chart = 0n, all = 0n, orders = 0;
  for (const [k, m] of Object.entries(entries)) {
    if (!k.startsWith('minute/')) continue;
    all += cents(m.revenue_usd);
    if (m.start > last - 60 * 60_000 && m.start <= last) { chart += cents(m.revenue_usd); orders += m.orders; }
  }
  const currency = Object.entries(entries).filter(([k]) => k.startsWith('currency/')).map(([, c]) => c.revenue_usd);
  return { chart, all, orders, currency: sumCents(currency) };
}

/** The values of the elements the page exposes for tests. */
function readPage(page) {
  return page.evaluate(() => {
    const v = (id) => document.getElementById(id).dataset.value;
    const t = (id) => document.getElementById(id).textContent;
    const w = (sel) => document.querySelector(sel).getBoundingClientRect().width;
    return {
      status: document.body.dataset.status, seq: Number(document.body.dataset.seq),
      revenue: v('kpi-revenue'), orders: v('kpi-orders'), ordersText: t('kpi-orders'), upto: Number(v('upto')),
      active: v('funnel-active'), carted: v('funnel-carted'), purchased: v('funnel-purchased'),
      widths: [w('#funnel > .nest'), w('#nest-carted'), w('#nest-purchased')],
    };
  });
}

/** Answers the page's own three files from dir; everything else still goes to the server. */
async function serveAssetsFrom(page, base, dir) {
  const files = { '/': ['index.html', 'text/html'], '/app.js': ['app.js', 'text/javascript'], '/style.css': ['style.css', 'text/css'] };
  const csp = "default-src 'self'; connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'"; // as web/src/server.rs
  log(`serving the page's files from ${dir}`);
  await page.route((url) => url.origin === new URL(base).origin && url.pathname in files, (route) => {
    const [file, type] = files[new URL(route.request().url()).pathname];
    route.fulfill({ path: path.join(dir, file), contentType: `${type}; charset=utf-8`, headers: { 'content-security-policy': csp } });
  });
}

function assertNested(f, where) {
  const [a, c, p] = [Number(f.active), Number(f.carted), Number(f.purchased)];
  check([a, c, p].every(Number.isInteger), `${where}: funnel values are not integers: ${JSON.stringify(f)}`);
  check(a >= c && c >= p, `${where}: funnel not nested: active ${a}, carted ${c}, purchased ${p}`);
}

async function main() {
  const results = [];
  let demo = null, context = null, profile = null, page = null;
  const problems = []; // console errors and warnings, page errors, failed requests
  const step = async (name, fn) => {
    log(`… ${name}`);
    await fn();
    results.push(name);
    log(`ok ${results.length} - ${name}`);
  };
  try {
    let base = process.env.DASHBOARD_URL;
    if (!base) {
      const bin = process.env.SHOPFLOW_BIN;
      check(bin && fs.existsSync(bin), 'set SHOPFLOW_BIN to the shopflow binary (cargo build --release --bin shopflow), or DASHBOARD_URL to a running server');
      const port = await freePort();
      demo = startDemo(bin, port);
      process.once('SIGINT', () => { demo.kill('SIGKILL'); process.exit(130); });
      base = `http://127.0.0.1:${port}/`;
      const up = await Promise.race([
        until(60_000, 'GET /healthz did not return 200', () => httpOk(new URL('healthz', base))),
        demo.exited.then((how) => { throw new Failure(`demo exited (${how}) before serving /healthz`); }),
      ]);
      check(up, 'healthz');
      demo.exited.then((how) => problems.push(`demo exited (${how}) during the test`));
    }

    await step('/api/snapshot: 401 with a JSON "error" without (or with a wrong) token, 200 with Authorization: Bearer', async () => {
      if (!TOKEN) { log('   DASHBOARD_URL without DASHBOARD_TOKEN: token checks skipped'); return; }
      const url = new URL('api/snapshot', base);
      for (const headers of [{}, { authorization: `Bearer ${'0'.repeat(TOKEN.length)}` }]) {
        const r = await fetch(url, { headers, signal: AbortSignal.timeout(5000) });
        const body = await r.text();
        let json = null;
        try { json = JSON.parse(body); } catch { /* checked below */ }
        check(r.status === 401, `GET /api/snapshot ${headers.authorization ? 'with a wrong token' : 'without a token'}: HTTP ${r.status}, expected 401`);
        check(json && typeof json.error === 'string' && json.error.length > 0, `the 401 body is no JSON with "error": ${body.slice(0, 200)}`);
      }
      const ok = await fetch(url, { headers: AUTH, signal: AbortSignal.timeout(5000) });
      check(ok.status === 200, `GET /api/snapshot with Authorization: Bearer TOKEN: HTTP ${ok.status}, expected 200`);
      const snap = await ok.json();
      check(snap.type === 'snapshot' && Number.isInteger(snap.seq) && snap.entries, `unexpected snapshot: ${JSON.stringify(snap).slice(0, 200)}`);
    });

    check(fs.existsSync(CHROMIUM), `no browser at ${CHROMIUM}: run scripts/browser-setup.sh (installs Debian's chromium)`);
    profile = fs.mkdtempSync(path.join(os.tmpdir(), 'shopflow-chromium-'));
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM, headless: true, viewport: { width: 1440, height: 900 },
      // A page answered by page.route() counts as public to Chromium's Local Network Access
      // checks, which then block its websocket to 127.0.0.1; the server's own page does not.
      args: process.env.DASHBOARD_ASSETS ? [...CHROMIUM_ARGS, '--disable-features=LocalNetworkAccessChecks'] : CHROMIUM_ARGS,
    });
    page = context.pages()[0] || (await context.newPage());
    page.on('console', (m) => { if (m.type() === 'error' || m.type() === 'warning') problems.push(`console ${m.type()}: ${m.text()}`); });
    page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
    page.on('requestfailed', (r) => problems.push(`request failed: ${r.url()} ${r.failure()?.errorText}`));
    page.on('response', (r) => { if (r.status() >= 400) problems.push(`HTTP ${r.status()} for ${r.url()}`); });
    if (process.env.DASHBOARD_ASSETS) await serveAssetsFrom(page, base, process.env.DASHBOARD_ASSETS);
    await page.goto(TOKEN ? `${base}#token=${TOKEN}` : base);

    await step('the page goes live within 30 s', async () => {
      await until(30_000, 'body[data-status] never became "live"', async () => (await readPage(page)).status === 'live');
    });

    await step('the token is gone from the address bar (kept in sessionStorage); a reload without it goes live', async () => {
      if (!TOKEN) return;
      const at = () => page.evaluate(() => ({ hash: location.hash, href: location.href, stored: sessionStorage.getItem('shopflow.token') }));
      const where = await at();
      check(!where.hash.includes(TOKEN) && !where.href.includes(TOKEN) && !page.url().includes(TOKEN),
        `the token is still in the address: ${where.href}`);
      check(where.stored === TOKEN, 'the token is not in sessionStorage["shopflow.token"]');
      await page.reload();
      check(!(await at()).href.includes(TOKEN), 'the reloaded address holds the token');
      await until(30_000, 'after a reload (token from sessionStorage) the page did not go live', async () => (await readPage(page)).status === 'live');
      // a token put into the hash later is taken (and removed) too, on a fresh socket
      const old = await page.evaluate((t) => { window.__tokenSocket = window.__shopflow.socket; location.hash = `token=${t}`; return location.href; }, TOKEN);
      await until(10_000, `a #token=... set later stayed in the address or gave no new live socket (${old})`, () => page.evaluate((t) =>
        !location.href.includes(t) && window.__shopflow.socket !== window.__tokenSocket && document.body.dataset.status === 'live'
        && window.__shopflow.socket.readyState === WebSocket.OPEN, TOKEN));
    });

    // From here on, every rendered state's 60-minute KPIs, chart bars and currency cells are recorded by seq.
    await page.evaluate(() => {
      const rendered = window.__rendered = new Map();
      const v = (id) => document.getElementById(id).dataset.value;
      const all = (sel) => [...document.querySelectorAll(sel)].map((n) => n.dataset.value);
      const record = () => {
        const seq = Number(document.body.dataset.seq);
        if (!v('upto')) return; // no event time complete yet: no chart
        rendered.set(seq, { seq, revenue: v('kpi-revenue'), orders: v('kpi-orders'), aov: v('kpi-aov'),
          bars: all('#chart-revenue rect.bar'), currency: all('#currency td.v') });
        if (rendered.size > 2000) rendered.delete(rendered.keys().next().value);
      };
      record();
      new MutationObserver(record).observe(document.body, { attributes: true, attributeFilter: ['data-seq'] });
    });

    await step('numbers change as events flow (seq and revenue/orders, within 60 s)', async () => {
      const first = await readPage(page);
      const later = await until(60_000, `seq/revenue/orders stayed at ${JSON.stringify(first)}`, async () => {
        const now = await readPage(page);
        return now.seq > first.seq && (now.orders !== first.orders || now.revenue !== first.revenue) && now;
      });
      check(later.orders !== '' && later.ordersText === Number(later.orders).toLocaleString('en-US'),
        `#kpi-orders text "${later.ordersText}" does not show data-value "${later.orders}"`);
      log(`   seq ${first.seq} -> ${later.seq}, orders ${first.orders} -> ${later.orders}, revenue ${first.revenue} -> ${later.revenue}`);
    });

    await step('a dropped socket shows "lost", then the page reconnects and seq continues', async () => {
      await page.evaluate(() => {
        window.__statusLog = [];
        new MutationObserver(() => window.__statusLog.push(document.body.dataset.status))
          .observe(document.body, { attributes: true, attributeFilter: ['data-status'] });
        window.__oldSocket = window.__shopflow.socket;
        window.__shopflow.socket.close();
      });
      const before = await readPage(page);
      await until(20_000, 'status did not go lost -> live', () => page.evaluate(() => {
        const l = window.__statusLog, i = l.indexOf('lost');
        return i >= 0 && l.indexOf('live', i) > i && window.__shopflow.socket !== window.__oldSocket;
      }));
      const after = await until(30_000, 'seq did not advance after the reconnect', async () => {
        const now = await readPage(page);
        return now.status === 'live' && now.seq > before.seq && now;
      });
      log(`   status log ${JSON.stringify(await page.evaluate(() => window.__statusLog))}, seq ${before.seq} -> ${after.seq}`);
    });

    await step('the funnel is nested (page and /api/snapshot), active > 0', async () => {
      const started = Date.now();
      let lastNote = started, seen = 0, apiSeen = 0;
      const found = await until(FUNNEL_TIMEOUT_MS, 'no funnel appeared (no 5-minute window completed)', async () => {
        const now = await readPage(page);
        const apiFunnel = await apiSnapshot(base).then((s) => s && s.entries && s.entries.funnel);
        if (apiFunnel) { assertNested(apiFunnel, '/api/snapshot entries.funnel'); apiSeen++; }
        if (now.active !== '') { assertNested(now, 'page'); seen++; }
        if (Date.now() - lastNote > 30_000) {
          lastNote = Date.now();
          const next = Math.ceil(now.upto / 300_000) * 300_000;
          log(`   waiting for the first complete 5-minute window: event time ${new Date(now.upto).toISOString().slice(11, 19)}, `
            + `window ends ${new Date(next).toISOString().slice(11, 19)} UTC (${Math.round((Date.now() - started) / 1000)} s so far)`);
        }
        return now.active !== '' && apiSeen > 0 && now;
      }, 1000);
      check(Number(found.active) > 0, `funnel active is ${found.active}`);
      // the bars are drawn nested: each no wider than the one it sits in
      const [wa, wc, wp] = found.widths;
      check(wa >= wc && wc >= wp, `funnel bars not nested on screen: widths ${found.widths}`);
      // a few more states, each nested
      for (let i = 0; i < 5; i++) { await sleep(1000); assertNested(await readPage(page), 'page'); }
      log(`   funnel active ${found.active} >= carted ${found.carted} >= purchased ${found.purchased} (${seen} page reads, ${apiSeen} snapshots)`);
    });

    await step('60-min KPIs = chart bars = currency panel on every rendered state, = /api/snapshot minutes at the same seq', async () => {
      const halfEven = (n, d) => { const q = n / d, t = 2n * (n % d); return t > d || (t === d && q % 2n === 1n) ? q + 1n : q; };
      let matched = 0, tries = 0;
      const deadline = Date.now() + 30_000;
      while (matched < 3 && Date.now() < deadline) {
        tries++;
        const snap = await apiSnapshot(base);
        check(snap && snap.entries && snap.entries.meta, 'GET /api/snapshot (with the token) failed');
        const api = minuteSum(snap.entries);
        check(api.chart === api.all && api.chart === api.currency,
          `/api/snapshot #${snap.seq}: minutes in the window ${api.chart}, all minutes ${api.all}, currencies ${api.currency} (cents) differ`);
        // the page renders at most one state per frame, so it may skip this seq: then try another
        const seen = await until(3000, 'no page state', () => page.evaluate((seq) => {
          const r = window.__rendered, last = [...r.keys()].pop();
          return last >= seq ? { at: r.get(seq) || null } : null;
        }, snap.seq), 50).catch(() => ({ at: null }));
        if (!seen.at) { await sleep(100); continue; }
        matched++;
        check(cents(seen.at.revenue) === api.chart && Number(seen.at.orders) === api.orders,
          `seq ${snap.seq}: page KPI revenue ${seen.at.revenue} / orders ${seen.at.orders}, /api/snapshot minutes ${api.chart} cents / ${api.orders} orders`);
      }
      check(matched > 0, `no rendered page state matched an /api/snapshot seq in ${tries} tries`);
      const states = await page.evaluate(() => [...window.__rendered.values()]);
      check(states.length > 0, 'no rendered states recorded');
      for (const st of states) {
        const rev = cents(st.revenue), bars = sumCents(st.bars), cur = sumCents(st.currency), orders = BigInt(st.orders);
        check(st.bars.length === 60, `seq ${st.seq}: ${st.bars.length} bars, expected 60`);
        check(rev === bars && rev === cur, `seq ${st.seq}: KPI revenue ${st.revenue}, sum of bars ${bars}, sum of currencies ${cur} (cents) differ`);
        check(orders === 0n ? st.aov === '' : cents(st.aov) === halfEven(rev, orders), `seq ${st.seq}: AOV ${st.aov} is not ${st.revenue} / ${st.orders}`);
      }
      const last = states[states.length - 1];
      log(`   ${states.length} rendered states consistent (last #${last.seq}: $${last.revenue}, ${last.orders} orders, AOV $${last.aov}); `
        + `${matched} matched /api/snapshot by seq in ${tries} tries`);
    });

    await step(`a late-data correction is shown (within ${CORRECTION_TIMEOUT_MS / 1000} s)`, async () => {
      const first = await until(CORRECTION_TIMEOUT_MS, 'no li.correction appeared in #corrections', () => page.evaluate(() => {
        const li = document.querySelector('#corrections li.correction');
        return li && li.textContent;
      }), 500);
      log(`   ${first}`);
    });

    await step('no console errors or warnings, no page errors', async () => {
      check(problems.length === 0, `the page reported:\n  ${problems.join('\n  ')}`);
    });

    await step('full-page screenshot saved', async () => {
      fs.mkdirSync(ARTIFACTS, { recursive: true });
      const file = path.join(ARTIFACTS, 'dashboard.png');
      await page.screenshot({ path: file, fullPage: true });
      log(`   ${file}`);
    });
    console.log(`${results.length} passed, 0 failed`);
    return 0;
  } catch (e) {
    console.error(`\nFAILED after ${results.length} passing checks: ${e instanceof Failure ? e.message : e.stack}`);
    if (problems.length) console.error(`page problems so far:\n  ${problems.join('\n  ')}`);
    if (page) {
      fs.mkdirSync(ARTIFACTS, { recursive: true });
      await page.screenshot({ path: path.join(ARTIFACTS, 'dashboard-failure.png'), fullPage: true }).catch(() => {});
      console.error(`screenshot: ${path.join(ARTIFACTS, 'dashboard-failure.png')}`);
    }
    if (demo) console.error(`--- demo output (last lines) ---\n${demo.output()}`);
    console.log(`${results.length} passed, 1 failed`);
    return 1;
  } finally {
    if (context) await context.close().catch(() => {});
    if (profile) fs.rmSync(profile, { recursive: true, force: true });
    await stopDemo(demo);
  }
}

// A last guard: every wait above is bounded, but a hung browser call is not.
setTimeout(() => { console.error('test exceeded 15 minutes; giving up'); process.exit(1); }, 15 * 60_000).unref();
process.exitCode = await main();
