// Only the stack's own pages may drive its devices (issue 12, ARCHITECTURE §4.8): browsers
// apply no CORS to WebSockets, so any site the user visits could open one to a `fleet local`
// on their machine. Here a page served from a second origin (a static server on another
// port, as such a site would be) tries the stack's WebSocket and its config.json, and
// fails at both, and the app it serves (pointed at the stack) says why in plain words,
// while the app served by `fleet local` itself, in the same run, connects and runs its
// fleet. The stack counts the refused upgrades on /metrics.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { launchChromium, watchErrors, firstInt } from './support/browser.mjs';
import { PUBLIC_URL, builtDist } from './support/dist.mjs';
import { freePort, refusals as stackRefusals, startStack } from './support/stack.mjs';
import { serveStatic } from './support/static-server.mjs';

let data;
let stack;
let ports;
let other;
let browser;

const refusals = () => stackRefusals(ports.http);

before(async () => {
  data = mkdtempSync(path.join(tmpdir(), 'fleet-e2e-origin-'));
  ports = { ws: await freePort(), http: await freePort() };
  const dist = builtDist();
  stack = await startStack({ data, ports, dist });
  // The second origin: the same app, from a static server on another port.
  other = await serveStatic(dist, { prefix: PUBLIC_URL });
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  await other?.close();
  stack?.kill('SIGTERM');
  if (data) rmSync(data, { recursive: true, force: true });
});

test('a page of another origin can neither open the stack\'s WebSocket nor read its credential', async () => {
  assert.notEqual(other.origin, `http://127.0.0.1:${ports.http}`);
  const before = await refusals();
  const page = await browser.newPage();
  const watch = watchErrors(page);
  // The app's own in-page mode, so the page itself opens nothing.
  await page.goto(`${other.url}?mode=in-page&autostart=0`);
  const ws = `ws://127.0.0.1:${ports.ws}/mqtt`;
  const seen = await page.evaluate((url) => new Promise((resolve) => {
    const events = [];
    const socket = new WebSocket(url, 'mqtt');
    socket.onopen = () => events.push('open');
    socket.onerror = () => events.push('error');
    socket.onclose = (e) => { events.push(`close ${e.code}`); resolve(events); };
    setTimeout(() => resolve([...events, 'no close in 10 s']), 10_000);
  }), ws);
  assert.deepEqual(seen, ['error', 'close 1006'], 'the WebSocket never opens');
  // config.json has no CORS headers: another origin cannot read the credential in it.
  const read = await page.evaluate((url) => fetch(url).then((r) => r.text()).then(
    (t) => `read: ${t}`, (e) => `failed: ${e.name}`), `http://127.0.0.1:${ports.http}/config.json`);
  assert.equal(read, 'failed: TypeError');
  const after = await refusals();
  assert.equal(after['connect/origin_not_allowed'], (before['connect/origin_not_allowed'] ?? 0) + 1);

  // The app from that origin, pointed at the stack: refused, and said in plain words.
  await page.goto(`${other.url}?mode=local&broker=${encodeURIComponent(ws)}&devices=2&ramp=0`);
  await page.waitForFunction(
    () => /unreachable or refused this page/.test(document.querySelector('[data-testid=error]')?.textContent ?? ''),
    null, { timeout: 20_000, polling: 200 });
  assert.match(await page.getByTestId('error').textContent(), /--allow-origin/);
  assert.equal(await page.getByTestId('stats-links').textContent(), '0/2');
  assert.equal(await page.getByTestId('stats-acked').textContent(), '0');
  await page.getByTestId('stop').click();
  assert.ok((await refusals())['connect/origin_not_allowed'] > after['connect/origin_not_allowed']);

  // The errors are the ones provoked: refused upgrades and the blocked read.
  const unexpected = watch.unexpected([
    /WebSocket connection to 'ws:\/\/127\.0\.0\.1:\d+\/mqtt' failed/,
    /blocked by CORS policy/,
    /requestfailed: http:\/\/127\.0\.0\.1:\d+\/config\.json/,
    /Failed to load resource: net::ERR_FAILED/,
  ]);
  assert.deepEqual(unexpected, []);
  await page.close();
});

test('the app the stack serves connects with its credential and runs its fleet', async () => {
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  const watch = watchErrors(page);
  // An old link with the retired client id prefix still loads, and says it was ignored.
  await page.goto(`http://127.0.0.1:${ports.http}/?devices=4&ramp=0&frequency=0.5&velocity=3&prefix=fleet-web-`);
  await page.waitForFunction(
    () => document.querySelector('[data-testid=stats-links]')?.textContent === '4/4',
    null, { timeout: 20_000, polling: 250 });
  assert.match(await page.getByTestId('error').textContent(), /prefix="fleet-web-": no longer used/);
  // Its devices are the namespace config.json issued it.
  const ids = await page.getByTestId('device-id').allTextContents();
  assert.ok(ids.length > 0);
  const ns = ids[0].replace(/-0001$/, '');
  assert.match(ns, /^w[0-9a-f]{10}$/);
  for (const id of ids) assert.match(id, new RegExp(`^${ns}-\\d{4}$`));
  await page.waitForFunction(
    () => Number(document.querySelector('[data-testid=stats-acked]')?.textContent) > 0,
    null, { timeout: 20_000, polling: 250 });
  // The stack acknowledges a reading once stored.
  const acked = firstInt(await page.getByTestId('stats-acked').textContent());
  const stats = await (await fetch(`http://127.0.0.1:${ports.http}/api/stats`)).json();
  assert.ok(stats.readings >= acked, `${stats.readings} stored, ${acked} acknowledged`);
  await page.getByTestId('stop').click();
  // Nothing it did was refused: no publish or subscription outside its namespace.
  const counts = await refusals();
  for (const key of ['publish/other_device', 'publish/unknown_topic', 'subscribe/not_own_topic',
    'connect/no_credentials', 'connect/bad_credentials', 'connect/client_id_not_allowed']) {
    assert.equal(counts[key], 0, `${key}: ${JSON.stringify(counts)}`);
  }
  assert.deepEqual(watch.unexpected(), []);
  await page.close();
});
