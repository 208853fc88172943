// Local mode in a real browser: `fleet local` serves the release build; the page finds the
// broker in the stack's config.json (mode auto), with the namespace and credential it
// issues the page (ARCHITECTURE §4.8), and runs 20 devices of that namespace, each on its
// own WebSocket to it. Their readings land in the stack's
// database (checked through the stack's /api/stats, not the page), commands come back to the
// page, and when the stack is killed (-9) and restarted on the same ports the page shows the
// outage, reconnects by itself and resumes: the credential outlives the restart (the stack's
// secret is in its data directory). Screenshot: target/e2e/local.png.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { launchChromium, watchErrors, firstInt } from './support/browser.mjs';
import { builtDist, ROOT } from './support/dist.mjs';
import { freePort, refusals as stackRefusals, startStack as launchStack } from './support/stack.mjs';

const DEVICES = 20;
const SCREENSHOT = path.join(ROOT, 'target', 'e2e', 'local.png');

let dist;
let browser;
let data;
let stack;
let ports;

const startStack = () => launchStack({ data, ports, dist });
const refusals = () => stackRefusals(ports.http);

async function stored() {
  const res = await fetch(`http://127.0.0.1:${ports.http}/api/stats`);
  assert.equal(res.status, 200);
  return (await res.json()).readings;
}

/** Resolves once `[data-testid=ID]`'s text satisfies `pred` (given the text). */
function textWhere(page, testid, pred, timeout) {
  return page.waitForFunction(
    ([testid, src]) => {
      const text = document.querySelector(`[data-testid=${testid}]`)?.textContent ?? '';
      return new Function('t', `return (${src})(t)`)(text);
    },
    [testid, pred.toString()],
    { timeout, polling: 250 },
  );
}

before(async () => {
  data = mkdtempSync(path.join(tmpdir(), 'fleet-e2e-local-'));
  ports = { ws: await freePort(), http: await freePort() };
  dist = builtDist();
  stack = await startStack();
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  stack?.kill('SIGKILL');
  if (data) rmSync(data, { recursive: true, force: true });
});

test('config.json issues each page a fresh namespace and its credential', async () => {
  const issued = await Promise.all([1, 2].map(async () => {
    const res = await fetch(`http://127.0.0.1:${ports.http}/config.json`);
    assert.equal(res.status, 200);
    // No CORS header: only a page of the stack's own origin can read it.
    assert.equal(res.headers.get('access-control-allow-origin'), null);
    return res.json();
  }));
  for (const c of issued) {
    assert.equal(c.mode, 'local');
    assert.match(c.namespace, /^w[0-9a-f]{10}$/);
    assert.equal(c.mqtt.username, `page:${c.namespace}`);
    assert.ok(c.mqtt.password.length >= 32);
  }
  assert.notEqual(issued[0].namespace, issued[1].namespace);
});

test('devices publish over WebSocket, get commands, and ride out a stack restart', async () => {
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  const watch = watchErrors(page);
  // Fast readings with wide swings, so remediation happens within seconds.
  await page.goto(`http://127.0.0.1:${ports.http}/?devices=${DEVICES}&ramp=20&frequency=0.5&velocity=3`);

  await textWhere(page, 'target', (t) => t.startsWith('local · ws://127.0.0.1:'), 20_000);
  assert.equal(await page.getByTestId('target').textContent(),
    `local · ws://127.0.0.1:${ports.ws}/mqtt`);
  await textWhere(page, 'stats-links', (t) => t === '20/20', 20_000);
  // The page's devices are of the namespace its config.json issued.
  const ids = await page.getByTestId('device-id').allTextContents();
  assert.ok(ids.length > 0);
  assert.match(ids[0], /^w[0-9a-f]{10}-0001$/);
  const ns = ids[0].slice(0, -'-0001'.length);
  for (const id of ids) assert.ok(id.startsWith(`${ns}-`), id);
  await textWhere(page, 'stats-commands', (t) => Number(t) > 0, 60_000);
  // Readings are in the stack's database, and commands reached the page's devices.
  assert.ok((await stored()) > 0);
  const acked = firstInt(await page.getByTestId('stats-acked').textContent());
  assert.ok(acked > 0);
  assert.ok((await stored()) >= acked, 'every acknowledged reading is stored');
  assert.match(await page.getByTestId('stats-rtt').textContent(), /^\d+ \/ \d+ ms$/);
  assert.equal(await page.getByTestId('device-link').first().textContent(), 'up');

  // kill -9: the page says so, and the devices retry.
  stack.kill('SIGKILL');
  await new Promise((r) => stack.once('exit', r));
  await textWhere(page, 'error', (t) => /unreachable|closed|lost|stopped answering/.test(t), 20_000);
  await textWhere(page, 'stats-links', (t) => t.startsWith('0/'), 20_000);
  assert.notEqual(await page.getByTestId('device-link').first().textContent(), 'up');
  await page.waitForTimeout(2_000);
  assert.ok(firstInt(await page.getByTestId('stats-unacked').textContent()) > 0,
    'readings queue while the stack is down');

  // Back on the same ports: the page reconnects by itself, drains its queues and resumes.
  const before = await (async () => { stack = await startStack(); return stored(); })();
  await textWhere(page, 'stats-links', (t) => t === '20/20', 30_000);
  await textWhere(page, 'stats-unacked', (t) => t === '0', 30_000);
  await page.waitForFunction(() => !document.querySelector('[data-testid=error]'), null,
    { timeout: 10_000 });
  assert.ok(firstInt(await page.getByTestId('stats-reconnects').textContent()) >= DEVICES);
  const publishedThen = firstInt(await page.getByTestId('stats-published').textContent());
  await page.waitForTimeout(3_000);
  assert.ok(firstInt(await page.getByTestId('stats-published').textContent()) > publishedThen);
  assert.ok((await stored()) > before, 'readings land again after the restart');
  // The same credential was accepted again, and nothing the page did was refused.
  const counts = await refusals();
  assert.ok(Object.keys(counts).length > 0, 'the stack counts refusals');
  for (const [key, n] of Object.entries(counts)) assert.equal(n, 0, key);

  mkdirSync(path.dirname(SCREENSHOT), { recursive: true });
  await page.screenshot({ path: SCREENSHOT });

  // Stop: every connection closes at once and the stack has every acknowledged reading.
  await page.getByTestId('stop').click();
  await textWhere(page, 'stats-links', (t) => t === '0/20', 5_000);
  const finalAcked = firstInt(await page.getByTestId('stats-acked').textContent());
  assert.ok((await stored()) >= finalAcked, 'every acknowledged reading is stored');

  // The only errors are the failed WebSockets the kill provoked.
  const unexpected = watch.unexpected([/WebSocket connection to 'ws:\/\/127\.0\.0\.1:\d+\/mqtt' failed/,
    /config\.json/]);
  assert.deepEqual(unexpected, []);
  await page.close();
});
