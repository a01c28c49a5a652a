// Browser test of the live dashboard: a real `shopflow demo` on a free loopback
// port, the page in headless Debian Chromium driven by playwright-core.
//
//   scripts/browser-setup.sh                       # chromium + node_modules, once
//   SHOPFLOW_BIN=$CARGO_TARGET_DIR/release/shopflow node tests/browser/dashboard.test.mjs
//
// It checks, in order: the page goes live; numbers change as events flow;
// a dropped socket is shown as lost and the page reconnects by itself; the
// funnel is nested (active >= carted >= purchased, on the page and in
// /api/snapshot) once the first 5-minute window completes, which is as soon as
// the demo has caught up with its history (--history 6m); no console errors, warnings
// or page errors. It saves a full-page screenshot (1440x900 viewport) to
// $ARTIFACTS_DIR/dashboard.png (default tests/browser/artifacts/).
//
// Environment:
//   SHOPFLOW_BIN        the shopflow binary (required unless DASHBOARD_URL is set)
//   DASHBOARD_URL       test a server that is already running instead (e.g. a mock)
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
  const child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
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
    await page.goto(base);

    await step('the page goes live within 30 s', async () => {
      await until(30_000, 'body[data-status] never became "live"', async () => (await readPage(page)).status === 'live');
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
        const apiFunnel = await fetch(new URL('api/snapshot', base)).then((r) => r.json()).then((s) => s.entries && s.entries.funnel, () => null);
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
