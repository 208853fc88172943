// The app as the template's page hosting serves it: the Pages artefact (FLEET_E2E_SITE) from
// a static server that adds the response headers of the template's PageHeadersPolicy
// (scripts/page-headers.sh: HSTS, nosniff, DENY framing, no-referrer and the
// Content-Security-Policy), for region us-east-1 and a stack endpoint. Under that CSP the
// in-page fleet runs, and a Cognito guest reaches Cognito Identity (routed in the browser to a
// stand-in) and runs its fleet against an IoT Core stand-in (support/iot-core-stand-in.mjs)
// with no violation; the page's own WebSocket to the stack's endpoint passes the CSP, and one
// to any other endpoint is blocked, so the check can fail.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { standInIotCore } from './support/iot-core-stand-in.mjs';
import { serveStatic } from './support/static-server.mjs';
import { launchChromium, watchErrors } from './support/browser.mjs';
import { PUBLIC_URL, builtSite, pageHeaders } from './support/dist.mjs';

const REGION = 'us-east-1';
const ENDPOINT = 'abc123-ats.iot.us-east-1.amazonaws.com';
const POOL = 'us-east-1:guests';
const COGNITO = `https://cognito-identity.${REGION}.amazonaws.com/`;

let SITE;
let HEADERS;
let browser;
const roots = [];

before(async () => {
  SITE = builtSite();
  HEADERS = pageHeaders({ region: REGION, endpoint: ENDPOINT });
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  for (const root of roots) rmSync(root, { recursive: true, force: true });
});

/** The site with `config` as its config.json (the build's in-page default when null). */
function siteWith(config) {
  if (config === null) return SITE;
  const root = mkdtempSync(path.join(tmpdir(), 'fleet-e2e-hosted-'));
  roots.push(root);
  cpSync(SITE, root, { recursive: true });
  writeFileSync(path.join(root, 'config.json'), JSON.stringify(config));
  return root;
}

/** The template's WebConfig output for a stack whose endpoint is `endpoint`. */
const webConfig = (endpoint) => ({
  mode: 'aws', region: REGION, browser_building: 'browser',
  mqtt: { url: `wss://${endpoint}/mqtt`, endpoint },
  cognito: { identity_pool_id: POOL },
  topics: { telemetry: 'dt/monitoring/browser/+/telemetry', commands: 'cmd/monitoring/browser/+/remediation',
    alarms: 'dt/monitoring/alarms', basic_ingest_prefix: '$aws/rules/fleet_telemetry/' },
  band: { min: 26, max: 28 },
});

/** A page that records every CSP violation (`window.violations`) and every error. */
async function watchedPage() {
  const page = await browser.newPage();
  await page.addInitScript(() => {
    window.violations = [];
    document.addEventListener('securitypolicyviolation', (e) =>
      window.violations.push(`${e.effectiveDirective} ${e.blockedURI}`));
  });
  return { page, watch: watchErrors(page) };
}

/** Cognito Identity's GetId and GetCredentialsForIdentity, answered inside the browser. */
async function standInCognito(page) {
  const calls = [];
  const cors = {
    'access-control-allow-origin': '*',
    'access-control-allow-headers': 'content-type, x-amz-target, x-amz-user-agent',
    'access-control-allow-methods': 'POST',
  };
  await page.route(`${COGNITO}**`, async (route) => {
    const req = route.request();
    if (req.method() === 'OPTIONS') return route.fulfill({ status: 204, headers: cors });
    const target = req.headers()['x-amz-target'] ?? '';
    calls.push(target);
    const body = JSON.parse(req.postData() || '{}');
    const hex = createHash('sha256').update(POOL).digest('hex');
    const identity = `${REGION}:${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20, 32)}`;
    const json = target.endsWith('.GetId')
      ? { IdentityId: identity }
      : { IdentityId: body.IdentityId, Credentials: { AccessKeyId: 'ASIASTANDIN000000001',
        SecretKey: 'stand-in-secret', SessionToken: 'stand-in-token',
        Expiration: Math.floor(Date.now() / 1000) + 3600 } };
    return route.fulfill({ status: 200, headers: { ...cors, 'content-type': 'application/x-amz-json-1.1' },
      body: JSON.stringify(json) });
  });
  return calls;
}

test('the page hosting headers are the template\'s, with no inline script allowed', () => {
  assert.match(HEADERS['content-security-policy'], /script-src 'self' 'wasm-unsafe-eval';/);
  assert.match(HEADERS['content-security-policy'],
    new RegExp(`connect-src 'self' ${COGNITO.slice(0, -1).replace(/\./g, '\\.')} wss://${ENDPOINT.replace(/\./g, '\\.')};`));
  assert.equal(HEADERS['x-frame-options'], 'DENY');
  assert.equal(HEADERS['x-content-type-options'], 'nosniff');
  assert.match(HEADERS['strict-transport-security'], /^max-age=\d+; includeSubDomains$/);
});

test('in-page under the hosting headers: the fleet runs, no CSP violation, no error', { timeout: 90_000 }, async () => {
  const server = await serveStatic(siteWith(null), { prefix: PUBLIC_URL, headers: HEADERS });
  const { page, watch } = await watchedPage();
  try {
    const response = await page.goto(`${server.url}?devices=20&speed=20&warmup=0`);
    assert.equal(response?.headers()['content-security-policy'], HEADERS['content-security-policy']);
    await page.waitForFunction(
      () => Number(document.querySelector('[data-testid=stats-commands]')?.textContent?.replace(/\D/g, '')) > 0,
      null, { timeout: 60_000, polling: 250 });
    assert.equal(await page.getByTestId('target').textContent(), 'in-page');
    assert.deepEqual(await page.evaluate(() => window.violations), []);
    assert.deepEqual(watch.unexpected(), []);
    assert.deepEqual(server.requests.filter((r) => r.status >= 400), []);
  } finally {
    await page.close();
    await server.close();
  }
});

test('aws guest under the hosting headers: Cognito is reached and the fleet runs', { timeout: 60_000 }, async () => {
  const server = await serveStatic(siteWith(webConfig(ENDPOINT)), { prefix: PUBLIC_URL, headers: HEADERS });
  const { page, watch } = await watchedPage();
  try {
    const cognito = await standInCognito(page);
    const iot = await standInIotCore(page, new RegExp(`^wss://${ENDPOINT.replace(/\./g, '\\.')}/mqtt\\?`));
    await page.goto(`${server.url}?devices=3&ramp=0&frequency=0.5`);
    await page.waitForFunction(
      () => document.querySelector('[data-testid=stats-links]')?.textContent === '3/3',
      null, { timeout: 20_000, polling: 200 });
    await page.waitForFunction(
      () => Number(document.querySelector('[data-testid=stats-acked]')?.textContent) >= 3,
      null, { timeout: 20_000, polling: 200 });
    assert.deepEqual(cognito.slice(0, 2), ['AWSCognitoIdentityService.GetId',
      'AWSCognitoIdentityService.GetCredentialsForIdentity']);
    assert.equal(iot.connections.length, 4, 'three devices and the alarm watcher');
    await page.getByTestId('stop').click();
    assert.deepEqual(await page.evaluate(() => window.violations), []);
    assert.deepEqual(watch.unexpected(), []);
  } finally {
    await page.close();
    await server.close();
  }
});

// page.routeWebSocket (the IoT Core stand-in above) replaces the page's WebSocket with a
// script of Playwright's, which CSP never sees: here the page's own WebSockets, unrouted.
test('the hosting CSP lets the page open the stack\'s endpoint and blocks any other', { timeout: 60_000 }, async () => {
  for (const [endpoint, allowed] of [[ENDPOINT, true], ['other9-ats.iot.us-east-1.amazonaws.com', false]]) {
    const server = await serveStatic(siteWith(webConfig(endpoint)), { prefix: PUBLIC_URL, headers: HEADERS });
    const { page, watch } = await watchedPage();
    try {
      await standInCognito(page);
      const sockets = [];
      page.on('websocket', (ws) => sockets.push(ws.url()));
      await page.goto(`${server.url}?devices=2&ramp=0`);
      // The first attempt either leaves the browser (and fails: no such host here) or is
      // refused by the CSP.
      await page.waitForFunction(() => window.violations.length > 0
        || /unreachable|refused/.test(document.querySelector('[data-testid=error]')?.textContent ?? ''),
      null, { timeout: 30_000, polling: 200 });
      const violations = await page.evaluate(() => window.violations);
      const url = `wss://${endpoint}/mqtt?`;
      if (allowed) {
        assert.deepEqual(violations, [], endpoint);
        assert.ok(sockets.length > 0 && sockets.every((u) => u.startsWith(url)), sockets.join('\n'));
      } else {
        assert.ok(violations.length > 0 && violations.every((v) => v.startsWith(`connect-src ${url}`)),
          violations.join('\n'));
        assert.deepEqual(sockets, [], 'no WebSocket left the page');
        assert.ok(watch.errors.some((e) => /Content Security Policy/.test(e)), watch.errors.join('\n'));
      }
      assert.equal(await page.getByTestId('stats-links').textContent(), '0/2');
      await page.getByTestId('stop').click();
    } finally {
      await page.close();
      await server.close();
    }
  }
});
