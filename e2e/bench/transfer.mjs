// Transfer size of the web app as `fleet local` serves it, in headless Chromium: the bytes
// on the wire (headers and bodies as sent, so compressed), summed from CDP's
// `Network.loadingFinished` `encodedDataLength`, for
//  - a first visit (a fresh browser context: empty cache), and
//  - a repeat visit (a new tab in the same context, after the first tab closed): the
//    content-hashed assets come from the cache (`immutable`), `index.html` is revalidated
//    (`304`), `config.json` is fetched again (a fresh credential, `no-store`);
//  - a first visit asking for gzip only, as Chromium does from plain-HTTP origins other than
//    loopback (a stack started with --allow-remote, reached from another machine).
// A visit ends when the page has read its config.json and started its fleet (the `target`
// line says `local · ws://…`) and every request it made has finished; WebSocket traffic is
// not counted (it is the fleet's work, not the page's transfer).
//
// Budgets: 250 KB for the first visit, 5 KB for a repeat visit (1 KB = 1000 bytes). The e2e
// test e2e/serving.test.mjs asserts them; this script prints what it measured.
// Usage (from the repo root, after scripts/build-web.sh):
//   node e2e/bench/transfer.mjs [--dist dist] [--fleet target/release/fleet]
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { launchChromium } from '../support/browser.mjs';
import { freePort, startStack } from '../support/stack.mjs';

export const FIRST_VISIT_BUDGET = 250_000;
export const REPEAT_VISIT_BUDGET = 5_000;

/**
 * Loads `url` in a new tab of `context` and returns what went over the wire:
 * `{ bytes, requests: [{ url, status, encoding, bytes, cached }] }`. `acceptEncoding`
 * replaces the browser's `Accept-Encoding`.
 */
export async function visit(context, url, { acceptEncoding } = {}) {
  const page = await context.newPage();
  const cdp = await context.newCDPSession(page);
  const requests = new Map();
  const wireStatus = new Map();
  let resolveDone;
  const done = new Promise((r) => { resolveDone = r; });
  const settle = () => {
    if ([...requests.values()].every((r) => r.finished)) resolveDone();
  };
  cdp.on('Network.requestWillBeSent', (e) => {
    requests.set(e.requestId, { url: e.request.url, status: 0, encoding: '', bytes: 0,
      cached: false, finished: false });
  });
  cdp.on('Network.responseReceived', (e) => {
    const r = requests.get(e.requestId);
    if (!r) return;
    r.status = e.response.status;
    const headers = Object.fromEntries(Object.entries(e.response.headers)
      .map(([k, v]) => [k.toLowerCase(), v]));
    r.encoding = headers['content-encoding'] ?? '';
    r.cached = e.response.fromDiskCache || e.response.fromPrefetchCache
      || e.response.fromServiceWorker || false;
  });
  // The status on the wire (a revalidated response is reported above as the cached 200).
  cdp.on('Network.responseReceivedExtraInfo', (e) => {
    wireStatus.set(e.requestId, e.statusCode);
  });
  cdp.on('Network.requestServedFromCache', (e) => {
    const r = requests.get(e.requestId);
    if (r) r.cached = true;
  });
  cdp.on('Network.loadingFinished', (e) => {
    const r = requests.get(e.requestId);
    if (!r) return;
    r.bytes = e.encodedDataLength;
    r.finished = true;
  });
  cdp.on('Network.loadingFailed', (e) => {
    const r = requests.get(e.requestId);
    if (r) r.finished = true;
  });
  await cdp.send('Network.enable');
  if (acceptEncoding) {
    await cdp.send('Network.setExtraHTTPHeaders', { headers: { 'Accept-Encoding': acceptEncoding } });
  }
  await page.goto(url);
  await page.waitForFunction(
    () => document.querySelector('[data-testid=target]')?.textContent?.startsWith('local · ws://'),
    null, { timeout: 60_000, polling: 100 });
  settle();
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`requests still open: ${JSON.stringify([...requests.values()])}`)),
      30_000);
  });
  const poll = setInterval(settle, 50);
  try {
    await Promise.race([done, timeout]);
  } finally {
    clearInterval(poll);
    clearTimeout(timer);
  }
  await page.close();
  const list = [...requests.entries()].map(([id, { finished, ...r }]) => (
    { ...r, status: wireStatus.get(id) ?? r.status }));
  return { bytes: list.reduce((sum, r) => sum + r.bytes, 0), requests: list };
}

/**
 * A first visit to `url` in a fresh context, then a repeat visit in the same context; and a
 * first visit asking for gzip only, in another fresh context.
 */
export async function firstAndRepeatVisit(browser, url) {
  const inContext = async (visits) => {
    const context = await browser.newContext();
    try {
      return await visits(context);
    } finally {
      await context.close();
    }
  };
  const [first, repeat] = await inContext(async (c) => [await visit(c, url), await visit(c, url)]);
  const gzipOnly = await inContext((c) => visit(c, url, { acceptEncoding: 'gzip, deflate' }));
  return { first, repeat, gzipOnly };
}

/** One line per request, and the total, for a visit. */
export function describe(name, { bytes, requests }, budget) {
  const lines = requests.map((r) => `  ${String(r.status).padStart(3)} ${(r.encoding || '-').padEnd(4)} `
    + `${String(r.bytes).padStart(8)} B${r.cached ? ' (cache)' : ''}  ${new URL(r.url).pathname}`);
  const kb = (b) => `${(b / 1000).toFixed(1)} KB`;
  return [`${name}: ${kb(bytes)} (${bytes} bytes; budget ${kb(budget)})`, ...lines].join('\n');
}

async function main() {
  const { values: opt } = parseArgs({
    options: {
      dist: { type: 'string', default: 'dist' },
      fleet: { type: 'string', default: 'target/release/fleet' },
    },
  });
  const data = mkdtempSync(join(tmpdir(), 'fleet-bench-transfer-'));
  const ports = { ws: await freePort(), http: await freePort() };
  const stack = await startStack({ data, ports, dist: resolve(opt.dist), fleet: resolve(opt.fleet) });
  const origin = `http://127.0.0.1:${ports.http}`;
  const browser = await launchChromium();
  try {
    console.log(`Chromium ${browser.version()}, fleet local serving ${resolve(opt.dist)}`);
    const { first, repeat, gzipOnly } = await firstAndRepeatVisit(browser, `${origin}/`);
    console.log(describe('first visit', first, FIRST_VISIT_BUDGET));
    console.log(describe('repeat visit', repeat, REPEAT_VISIT_BUDGET));
    console.log(describe('first visit, gzip only', gzipOnly, FIRST_VISIT_BUDGET));
    if (first.bytes > FIRST_VISIT_BUDGET || repeat.bytes > REPEAT_VISIT_BUDGET
      || gzipOnly.bytes > FIRST_VISIT_BUDGET) {
      console.error('over budget');
      process.exitCode = 1;
    }
  } finally {
    await browser.close();
    const exited = new Promise((r) => stack.once('exit', r));
    stack.kill('SIGTERM');
    await exited;
    rmSync(data, { recursive: true, force: true });
  }
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  await main();
}
