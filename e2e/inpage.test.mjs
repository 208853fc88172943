// The in-page mode in a real browser, as the hosted demo runs it: the GitHub Pages artefact
// (the Pages workflow's build command, for the sub-path /fleet/) from a plain static server
// runs a fleet of 100 devices and its cloud in the tab. Commands come back, the cards and the
// overview fill, and the page logs no error: not even for its config.json probe, which finds
// the build's in-page default. Screenshot: target/e2e/inpage.png.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { serveStatic } from './support/static-server.mjs';
import { launchChromium, watchErrors, firstInt } from './support/browser.mjs';
import { builtSite, ROOT, PUBLIC_URL } from './support/dist.mjs';

const DEVICES = 100;
const SCREENSHOT = path.join(ROOT, 'target', 'e2e', 'inpage.png');
// In the default mode (auto) the page asks its host for config.json, next to index.html, to
// find a stack; the build ships one that says in-page, so that is answered too.
const CONFIG = `${PUBLIC_URL}config.json`;
const notServed = () => server.requests.filter((r) => r.status >= 400);

let server;
let browser;

before(async () => {
  server = await serveStatic(builtSite(), { prefix: PUBLIC_URL });
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  await server?.close();
});

/** Resolves once the first integer in `[data-testid=ID]`'s text is above `min`. */
function numberAbove(page, testid, min, timeout) {
  return page.waitForFunction(
    ([testid, min]) => {
      const text = document.querySelector(`[data-testid=${testid}]`)?.textContent ?? '';
      const m = text.replace(/[,_\u00a0\u202f']/g, '').match(/\d+/);
      return m !== null && Number(m[0]) > min;
    },
    [testid, min],
    { timeout, polling: 250 },
  );
}

/** Clicks `button` and returns the text of the file it downloads. */
async function downloaded(page, button) {
  const [download] = await Promise.all([page.waitForEvent('download'), button.click()]);
  const stream = await download.createReadStream();
  const chunks = [];
  for await (const chunk of stream) chunks.push(chunk);
  return Buffer.concat(chunks).toString('utf8');
}

async function inPage(page, watch) {
  const count = (testid) => page.locator(`[data-testid=${testid}]`).count();
  const number = async (testid) =>
    firstInt(await page.locator(`[data-testid=${testid}]`).first().textContent());

  const response = await page.goto(`${server.url}?devices=${DEVICES}&speed=20&warmup=0`);
  assert.equal(response?.status(), 200);

  // Within 60 s the policy has sent commands back to devices, and said so in the log.
  await numberAbove(page, 'stats-commands', 0, 60_000);
  assert.ok((await page.locator('[data-testid=log] li').count()) > 0, 'the log lists decisions');
  assert.ok((await count('device-card')) > 0, 'device cards are shown');
  // Every device is in the overview: one tile each, or (since the overview became one
  // canvas) its summary, "100 devices: … hot, … cold, …".
  const tiles = await count('device-tile');
  if (tiles > 0) {
    assert.equal(tiles, DEVICES, 'one overview tile per device');
  } else {
    assert.equal(await count('overview-canvas'), 1, 'the overview is drawn');
    const summary = await page.locator('[data-testid=overview-summary]').textContent();
    assert.match(summary ?? '', new RegExp(`^\\s*${DEVICES} devices\\b`), 'the overview counts every device');
  }

  // The fleet keeps publishing: at least one more reading per device.
  await numberAbove(page, 'stats-published', (await number('stats-published')) + DEVICES, 20_000);

  // The remediated curves diverge from the counterfactual ones (drawn on canvas): some device
  // shown on a card has received commands.
  // Let the episodes play out: about one command per device.
  await numberAbove(page, 'stats-commands', DEVICES, 60_000);
  const perCard = (await page.locator('[data-testid=device-commands]').allTextContents()).map(firstInt);
  assert.ok(perCard.some((n) => n > 0), `some card shows commands: ${perCard.join(', ')}`);

  // The card's series, exported as the user would: the remediated temperature departs from
  // the counterfactual, and the rows name the commands that came back.
  const card = page.locator('[data-testid=device-card]').nth(perCard.findIndex((n) => n > 0));
  const csv = await downloaded(page, card.getByTestId('export-csv'));
  const [header, ...rows] = csv.trim().split('\n');
  assert.equal(header, 'device,seq,time,ts,temperature,counterfactual,humidity,command');
  const cells = rows.map((r) => r.split(','));
  assert.ok(cells.every((c) => c[2] === new Date(Number(c[3])).toISOString()),
    'time is ts in ISO 8601 (UTC, ms)');
  assert.ok(cells.some((c) => Math.abs(Number(c[4]) - Number(c[5])) > 0.2),
    'the remediated curve diverges from the counterfactual');
  assert.ok(cells.some((c) => ['cool', 'heat', 'release'].includes(c[7])), 'commands are marked');
  const ndjson = await downloaded(page, card.getByTestId('export-ndjson'));
  const lines = ndjson.trim().split('\n').map((l) => JSON.parse(l));
  // The fleet runs on between the two downloads: a few more points, the same device.
  assert.ok(lines.length >= rows.length && lines.length <= rows.length + 5, `${lines.length} vs ${rows.length}`);
  assert.ok(lines.every((l) => l.device === cells[0][0] && Number.isFinite(l.temperature)));
  assert.ok(lines.every((l) => l.time === new Date(l.ts).toISOString()));

  // After Stop the fleet's readings can still be exported: a card's, and the whole fleet's
  // in one file (one header, every device), and the panel's rate says nothing is sent.
  await page.getByTestId('stop').click();
  await page.waitForFunction(() => document.querySelector('[data-testid=stats-rate]')?.textContent === '0.0/s',
    null, { timeout: 5_000 });
  const after = await downloaded(page, card.getByTestId('export-csv'));
  assert.ok(after.trim().split('\n').length >= rows.length + 1, 'the card exports after Stop');
  const fleetCsv = (await downloaded(page, page.getByTestId('export-all-csv'))).trim().split('\n');
  assert.equal(fleetCsv.filter((l) => l === header).length, 1, 'one header');
  const ids = new Set(fleetCsv.slice(1).map((l) => l.split(',')[0]));
  assert.equal(ids.size, DEVICES, 'every device is in the fleet file');
  const fleetJson = (await downloaded(page, page.getByTestId('export-all-ndjson'))).trim().split('\n')
    .map((l) => JSON.parse(l));
  assert.equal(fleetJson.length, fleetCsv.length - 1, 'the NDJSON file has the same rows');

  const shown = await page.locator('[data-testid=error]').allTextContents();
  assert.deepEqual(shown.map((t) => t.trim()).filter(Boolean), [], 'no error shown in the page');

  await page.screenshot({ path: SCREENSHOT, fullPage: true });
  assert.deepEqual(watch.unexpected(), [], 'no console errors, page errors or failed requests');
  assert.deepEqual(notServed(), [], 'every request the page made was served');
  assert.deepEqual(server.requests.filter((r) => r.path === CONFIG).map((r) => r.status), [200],
    'the page asked for config.json once and got the build\'s');
  // Every asset came from under the sub-path (absolute URLs for /fleet/, as on GitHub Pages).
  assert.deepEqual(server.requests.filter((r) => !r.path.startsWith(PUBLIC_URL)), []);
}

test('in-page fleet: commands come back, cards and tiles fill, no console errors', { timeout: 120_000 }, async () => {
  mkdirSync(path.dirname(SCREENSHOT), { recursive: true });
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const watch = watchErrors(page);
  try {
    await inPage(page, watch);
  } catch (err) {
    // Say what the page reported, and keep a screenshot of it.
    await page.screenshot({ path: SCREENSHOT, fullPage: true }).catch(() => {});
    const missing = notServed().map((r) => `${r.status} ${r.path}`);
    throw new Error(
      `${err.message}\npage reported: ${JSON.stringify(watch.errors, null, 2)}\nnot served: ${JSON.stringify(missing)}`,
      { cause: err },
    );
  } finally {
    await page.close();
  }
});
