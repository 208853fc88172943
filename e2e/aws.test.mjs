// AWS mode in a real browser, in the app as the static hosts get it (the Pages artefact,
// FLEET_E2E_SITE, see support/dist.mjs; the AWS mode is part of it): the user enters an endpoint, a region and
// an Identity Pool id; the page calls a local stand-in for Cognito's two JSON calls, presigns
// the IoT Core WebSocket URL (checked here against an independent SigV4 computation in
// Node), and says in plain words what went wrong: an endpoint it cannot reach, or
// credentials Cognito refuses. Secrets never reach the page's storage, URL or text.
// A guest speaks only for itself (ARCHITECTURE §4.8): against a stand-in for IoT Core's
// WebSocket endpoint (support/iot-core-stand-in.mjs) it connects with client ids
// `{identity id}.…` and reports devices `g{uuid hex}-0001`… in the template's browser
// building, read from the template's config.json.
// The signing clock: a page whose clock is hours off (playwright's page.clock) signs a
// guest's URLs with AWS's time, read from the Cognito stand-in's `Date` header (or, when
// the header is hidden, from the credentials' Expiration), which the IoT Core stand-in
// checks as IoT Core does; pasted keys sign with the page's clock, and the refusal names
// the skew.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, createHmac } from 'node:crypto';
import { cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { createServer as createTcpServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { amzDateOf, standInIotCore } from './support/iot-core-stand-in.mjs';
import { serveStatic } from './support/static-server.mjs';
import { launchChromium, watchErrors } from './support/browser.mjs';
import { PUBLIC_URL, builtSite } from './support/dist.mjs';

let DIST;
const SECRET = 'stand-in-secret/key+1';
const TOKEN = 'stand/in+token=';
const ACCESS_KEY = 'ASIASTANDIN000000001';
// A bad endpoint: a free loopback port, nothing listens there (set in `before`).
let ENDPOINT;

let site;
let cognito;
let browser;

/**
 * The identity id the stand-in gives a pool's guest: REGION:UUID, as Cognito's, derived from
 * the pool id so a test knows it.
 */
function identityOf(pool) {
  const hex = createHash('sha256').update(pool).digest('hex');
  const uuid = [hex.slice(0, 8), hex.slice(8, 12), hex.slice(12, 16), hex.slice(16, 20),
    hex.slice(20, 32)].join('-');
  return `${pool.split(':')[0]}:${uuid}`;
}

/** The devices' namespace of a guest: `g` and its identity's 32 hex digits. */
const namespaceOf = (identity) => `g${identity.split(':')[1].replace(/-/g, '')}`;

/**
 * A stand-in for Cognito Identity's JSON API: GetId and GetCredentialsForIdentity. Like
 * Cognito it answers with CORS headers that expose `Date` (Node's http server sends the
 * header itself, from this process's clock); `exposeDate: false` hides it from pages.
 */
function startCognito({ exposeDate = true } = {}) {
  const calls = [];
  const server = createServer((req, res) => {
    const cors = {
      'access-control-allow-origin': '*',
      'access-control-allow-headers': 'content-type, x-amz-target',
      'access-control-allow-methods': 'POST',
      ...(exposeDate
        ? { 'access-control-expose-headers': 'x-amzn-RequestId,x-amzn-ErrorType,x-amzn-ErrorMessage,Date' }
        : {}),
    };
    if (req.method === 'OPTIONS') {
      res.writeHead(204, cors);
      return res.end();
    }
    let body = '';
    req.on('data', (d) => { body += d; });
    req.on('end', () => {
      const target = req.headers['x-amz-target'] ?? '';
      calls.push({ target, type: req.headers['content-type'], body: JSON.parse(body || '{}') });
      const send = (status, json) => {
        res.writeHead(status, { ...cors, 'content-type': 'application/x-amz-json-1.1' });
        res.end(JSON.stringify(json));
      };
      const { IdentityPoolId: pool, IdentityId: id } = JSON.parse(body || '{}');
      if (target === 'AWSCognitoIdentityService.GetId') {
        if (pool === undefined) {
          return send(400, {
            __type: 'ValidationException',
            message: "1 validation error detected: Value null at 'identityPoolId' failed to satisfy constraint: Member must not be null",
          });
        }
        if (pool === 'us-east-1:refused') {
          return send(400, {
            __type: 'NotAuthorizedException',
            message: 'Unauthenticated access is not supported for this identity pool.',
          });
        }
        return send(200, { IdentityId: identityOf(pool) });
      }
      if (target === 'AWSCognitoIdentityService.GetCredentialsForIdentity') {
        return send(200, {
          IdentityId: id,
          Credentials: {
            AccessKeyId: ACCESS_KEY,
            SecretKey: SECRET,
            SessionToken: TOKEN,
            Expiration: Math.floor(Date.now() / 1000) + 3600,
          },
        });
      }
      return send(400, { __type: 'UnknownOperationException', message: target });
    });
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      resolve({ url: `http://127.0.0.1:${port}/`, calls, close: () => server.close() });
    });
  });
}

/** SigV4 of a presigned IoT Core URL, computed independently of the page's Rust signer. */
function expectedSignature(url, secret, region) {
  const u = new URL(url.replace('wss://', 'https://'));
  const params = [...u.searchParams.entries()]
    .filter(([k]) => k !== 'X-Amz-Signature' && k !== 'X-Amz-Security-Token');
  const enc = (s) => encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
  const query = params.map(([k, v]) => `${enc(k)}=${enc(v)}`).sort().join('&');
  const sha = (s) => createHash('sha256').update(s).digest('hex');
  const canonical = ['GET', '/mqtt', query, `host:${u.host}`, '', 'host', sha('')].join('\n');
  const date = u.searchParams.get('X-Amz-Date');
  const scope = `${date.slice(0, 8)}/${region}/iotdevicegateway/aws4_request`;
  const toSign = ['AWS4-HMAC-SHA256', date, scope, sha(canonical)].join('\n');
  let key = `AWS4${secret}`;
  for (const part of [date.slice(0, 8), region, 'iotdevicegateway', 'aws4_request']) {
    key = createHmac('sha256', key).update(part).digest();
  }
  return createHmac('sha256', key).update(toSign).digest('hex');
}

/** A free loopback port (listened on, then closed). */
function freePort() {
  return new Promise((resolve, reject) => {
    const s = createTcpServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

before(async () => {
  ENDPOINT = `127.0.0.1:${await freePort()}`;
  DIST = builtSite();
  site = await serveStatic(DIST, { prefix: PUBLIC_URL });
  cognito = await startCognito();
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  await site?.close();
  cognito?.close();
});

const text = (page, id) => page.locator(`[data-testid=${id}]`).first().textContent();

test('aws mode: pool id → Cognito → presigned URL, and a bad endpoint said in plain words', async () => {
  const page = await browser.newPage();
  const watch = watchErrors(page);
  const sockets = [];
  page.on('websocket', (ws) => sockets.push({ url: ws.url(), at: Date.now() }));
  await page.goto(`${site.url}?autostart=0&devices=3&ramp=0&cognito=${encodeURIComponent(cognito.url)}`);

  // The user's flow: choose aws, enter the endpoint, region and pool id, start.
  await page.getByTestId('mode').selectOption('aws');
  await page.getByTestId('aws-endpoint').fill(ENDPOINT);
  await page.getByTestId('aws-endpoint').dispatchEvent('change');
  await page.getByTestId('aws-region').fill('us-east-1');
  await page.getByTestId('aws-region').dispatchEvent('change');
  await page.getByTestId('aws-pool').fill('us-east-1:good');
  await page.getByTestId('aws-pool').dispatchEvent('change');
  await page.getByTestId('start').click();

  await page.waitForFunction(
    () => /unreachable or refused/.test(document.querySelector('[data-testid=error]')?.textContent ?? ''),
    null, { timeout: 20_000, polling: 200 });
  assert.equal(await text(page, 'target'), `aws · ${ENDPOINT}`);

  // Cognito's two calls, as the JSON protocol wants them; the identity id is remembered.
  assert.deepEqual(cognito.calls.slice(0, 2).map((c) => [c.target, c.type]), [
    ['AWSCognitoIdentityService.GetId', 'application/x-amz-json-1.1'],
    ['AWSCognitoIdentityService.GetCredentialsForIdentity', 'application/x-amz-json-1.1'],
  ]);
  assert.deepEqual(cognito.calls[0].body, { IdentityPoolId: 'us-east-1:good' });
  assert.deepEqual(cognito.calls[1].body, { IdentityId: identityOf('us-east-1:good') });

  // The presigned URL: host-only signature for iotdevicegateway, the token after it.
  // 3 devices and the alarm watcher try to connect (the error shows at the first failure).
  for (let i = 0; i < 100 && sockets.length < 4; i++) await page.waitForTimeout(100);
  assert.ok(sockets.length >= 4, `${sockets.length} WebSocket attempts`);
  const first = sockets[0].url;
  assert.match(first, new RegExp(
    `^wss://${ENDPOINT.replace(/\./g, '\\.')}/mqtt\\?X-Amz-Algorithm=AWS4-HMAC-SHA256`
    + `&X-Amz-Credential=${ACCESS_KEY}%2F\\d{8}%2Fus-east-1%2Fiotdevicegateway%2Faws4_request`
    + '&X-Amz-Date=\\d{8}T\\d{6}Z&X-Amz-Expires=3600&X-Amz-SignedHeaders=host'
    + '&X-Amz-Signature=[0-9a-f]{64}&X-Amz-Security-Token=stand%2Fin%2Btoken%3D$'));
  const signature = new URL(first.replace('wss:', 'https:')).searchParams.get('X-Amz-Signature');
  assert.equal(signature, expectedSignature(first, SECRET, 'us-east-1'));

  // Reconnects re-sign: attempts in a later second carry a new date and signature.
  await page.waitForFunction(() => true, null, { timeout: 100 });
  const dateOf = (u) => new URL(u.replace('wss:', 'https:')).searchParams.get('X-Amz-Date');
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline && !sockets.some((s) => dateOf(s.url) !== dateOf(first))) {
    await page.waitForTimeout(250);
  }
  const later = sockets.find((s) => dateOf(s.url) !== dateOf(first));
  assert.ok(later, 'a reconnect at a later second');
  assert.notEqual(later.url.split('X-Amz-Signature=')[1], first.split('X-Amz-Signature=')[1]);
  assert.equal(new URL(later.url.replace('wss:', 'https:')).searchParams.get('X-Amz-Signature'),
    expectedSignature(later.url, SECRET, 'us-east-1'));

  // No secret in the page's text, storage or shareable link.
  const exposed = await page.evaluate(() => [
    document.body.innerText, JSON.stringify({ ...localStorage }), location.href,
    document.querySelector('[data-testid=share]')?.getAttribute('href') ?? '',
  ].join('\n'));
  for (const secret of [SECRET, TOKEN, encodeURIComponent(TOKEN)]) {
    assert.ok(!exposed.includes(secret), `the page exposes ${secret}`);
  }
  assert.ok(exposed.includes(identityOf('us-east-1:good')), 'the identity id is remembered');
  // The guest's devices are named after its identity.
  assert.equal(await text(page, 'device-id'), `${namespaceOf(identityOf('us-east-1:good'))}-0001`);

  await page.getByTestId('stop').click();
  const unexpected = watch.unexpected([
    /WebSocket connection to 'wss:\/\/127\.0\.0\.1:\d+\/mqtt\?.*' failed/,
  ]);
  assert.deepEqual(unexpected, []);
  await page.close();
});

test('aws mode: refused credentials are said in plain words and nothing connects', async () => {
  const page = await browser.newPage();
  const sockets = [];
  page.on('websocket', (ws) => sockets.push(ws.url()));
  await page.goto(`${site.url}?mode=aws&endpoint=${ENDPOINT}&region=us-east-1`
    + `&pool=us-east-1:refused&devices=2&cognito=${encodeURIComponent(cognito.url)}`);
  await page.waitForFunction(
    () => (document.querySelector('[data-testid=error]')?.textContent ?? '').includes('Cognito refused'),
    null, { timeout: 20_000, polling: 200 });
  const shown = await text(page, 'error');
  // A guest's devices are named after its identity: without one, no fleet starts.
  assert.match(shown, /could not start the fleet: Cognito refused: Unauthenticated access is not supported for this identity pool\. \(NotAuthorizedException\)/);
  assert.equal(await text(page, 'status'), 'stopped');
  assert.deepEqual(sockets, [], 'no connection without credentials');
  await page.close();
});

test('aws mode: a guest connects as its identity and reports its own devices in the browser building', async () => {
  // The template's config.json next to the app, naming its browser building.
  const root = mkdtempSync(path.join(tmpdir(), 'fleet-e2e-aws-site-'));
  cpSync(DIST, root, { recursive: true });
  const endpoint = 'abc123-ats.iot.us-east-1.amazonaws.com';
  writeFileSync(path.join(root, 'config.json'), JSON.stringify({
    mode: 'aws', region: 'us-east-1',
    mqtt: { url: `wss://${endpoint}/mqtt`, endpoint },
    cognito: { identity_pool_id: 'us-east-1:guests' },
    topics: { telemetry: 'dt/monitoring/+/+/telemetry' },
    browser_building: 'lobby',
    band: { min: 26, max: 28 },
  }));
  const withConfig = await serveStatic(root, { prefix: PUBLIC_URL });
  const page = await browser.newPage();
  const watch = watchErrors(page);
  const iot = await standInIotCore(page, /^wss:\/\/abc123-ats\.iot\.us-east-1\.amazonaws\.com\/mqtt\?/);
  try {
    // Mode auto: config.json says aws; 5 buildings asked for, which a guest cannot have.
    await page.goto(`${withConfig.url}?devices=3&buildings=5&ramp=0&frequency=0.5`
      + `&cognito=${encodeURIComponent(cognito.url)}`);
    await page.waitForFunction(
      () => document.querySelector('[data-testid=stats-links]')?.textContent === '3/3',
      null, { timeout: 20_000, polling: 200 });
    const identity = identityOf('us-east-1:guests');
    const ns = namespaceOf(identity);
    const devices = [1, 2, 3].map((n) => `${ns}-000${n}`);
    assert.equal(await text(page, 'target'), `aws · ${endpoint}`);
    assert.match(await page.getByTestId('aws-building-note').textContent(),
      /Buildings setting applies only with pasted credentials/);

    // Client ids `{identity id}.{suffix}`, no user name (the URL is signed), every URL presigned.
    const byId = Object.fromEntries(iot.connections.map((c) => [c.clientId, c]));
    assert.deepEqual(Object.keys(byId).sort(),
      [`${identity}.alarms`, ...devices.map((d) => `${identity}.${d}`)].sort());
    for (const c of iot.connections) {
      assert.equal(c.username, null);
      assert.match(c.url, /X-Amz-Signature=[0-9a-f]{64}&X-Amz-Security-Token=/);
    }
    // Each device subscribes to its own command topic in the browser building.
    for (const d of devices) {
      assert.deepEqual(byId[`${identity}.${d}`].filters, [`cmd/monitoring/lobby/${d}/remediation`]);
    }
    assert.deepEqual(byId[`${identity}.alarms`].filters, ['dt/monitoring/alarms']);

    // Its readings: its own devices, in the browser building, each from its own connection.
    await page.waitForFunction(
      () => Number(document.querySelector('[data-testid=stats-acked]')?.textContent) >= 6,
      null, { timeout: 20_000, polling: 200 });
    assert.ok(iot.publishes.length >= 6);
    for (const p of iot.publishes) {
      const [, , building, device, kind] = p.topic.split('/');
      assert.deepEqual([building, kind], ['lobby', 'telemetry'], p.topic);
      assert.ok(devices.includes(device), p.topic);
      assert.equal(p.clientId, `${identity}.${device}`);
      const reading = JSON.parse(p.payload);
      assert.equal(reading.device, device);
      assert.equal(reading.building, 'lobby');
    }

    // A command on a device's topic reaches that device.
    const command = { id: 'c-1', device: devices[1], action: 'cool', reference_temperature: 27.4,
      hold_s: 60, issued_at: Date.now(), reading_seq: null };
    assert.equal(iot.command(`cmd/monitoring/lobby/${devices[1]}/remediation`, JSON.stringify(command)), 1);
    await page.waitForFunction(
      () => Number(document.querySelector('[data-testid=stats-commands]')?.textContent) === 1,
      null, { timeout: 10_000, polling: 200 });

    await page.getByTestId('stop').click();
    assert.deepEqual(watch.unexpected(), []);
  } finally {
    await page.close();
    await withConfig.close();
    rmSync(root, { recursive: true, force: true });
  }
});

test('aws mode: pasted credentials sign without Cognito and stay in memory', async () => {
  const page = await browser.newPage();
  const sockets = [];
  page.on('websocket', (ws) => sockets.push(ws.url()));
  const callsBefore = cognito.calls.length;
  await page.goto(`${site.url}?autostart=0&mode=aws&endpoint=${ENDPOINT}&region=eu-west-1&devices=1`
    + `&cognito=${encodeURIComponent(cognito.url)}`);
  await page.locator('details.creds summary').click();
  await page.getByTestId('aws-key').fill('AKIAIOSFODNN7EXAMPLE');
  await page.getByTestId('aws-key').dispatchEvent('change');
  await page.getByTestId('aws-secret').fill('pasted/secret+key');
  await page.getByTestId('aws-secret').dispatchEvent('change');
  await page.getByTestId('start').click();
  await page.waitForFunction(() => true, null, { timeout: 100 });
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline && sockets.length === 0) await page.waitForTimeout(100);
  assert.ok(sockets.length > 0);
  assert.match(sockets[0], /X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F\d{8}%2Feu-west-1%2Fiotdevicegateway/);
  assert.ok(!sockets[0].includes('X-Amz-Security-Token'), 'no token: long-term keys');
  assert.equal(new URL(sockets[0].replace('wss:', 'https:')).searchParams.get('X-Amz-Signature'),
    expectedSignature(sockets[0], 'pasted/secret+key', 'eu-west-1'));
  // Cognito is asked for no identity or credentials; at most, after a refused connection,
  // for the time (a GetId with no pool).
  assert.deepEqual(cognito.calls.slice(callsBefore).filter((c) => Object.keys(c.body).length > 0), [],
    'Cognito is not asked for credentials');
  const stored = await page.evaluate(() => JSON.stringify({ ...localStorage }) + location.href);
  assert.ok(!stored.includes('pasted/secret'), 'the secret is not stored');
  await page.close();
});

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const IOT_ENDPOINT = 'abc123-ats.iot.us-east-1.amazonaws.com';
const IOT_URL = /^wss:\/\/abc123-ats\.iot\.us-east-1\.amazonaws\.com\/mqtt\?/;

for (const [source, exposeDate] of [
  ["Cognito's Date header", true],
  ["the credentials' Expiration when the Date header is hidden", false],
]) {
  test(`aws mode: a page whose clock is 2 hours slow signs a guest's URLs with AWS's time, from ${source}`, async () => {
    const standIn = exposeDate ? cognito : await startCognito({ exposeDate: false });
    const page = await browser.newPage();
    const watch = watchErrors(page);
    // The page's clock runs 2 hours behind this process's, which is the stand-ins' (AWS's).
    await page.clock.install({ time: Date.now() - 2 * HOUR });
    const iot = await standInIotCore(page, IOT_URL);
    try {
      await page.goto(`${site.url}?mode=aws&endpoint=${IOT_ENDPOINT}&region=us-east-1`
        + `&pool=us-east-1:skewed&devices=2&ramp=0&cognito=${encodeURIComponent(standIn.url)}`);
      // Connected: the stand-in, like IoT Core, refuses a URL more than 5 minutes off.
      await page.waitForFunction(
        () => document.querySelector('[data-testid=stats-links]')?.textContent === '2/2',
        null, { timeout: 20_000, polling: 200 });
      const pageBehind = Date.now() - await page.evaluate(() => Date.now());
      assert.ok(Math.abs(pageBehind - 2 * HOUR) < MINUTE, `the page's clock is ${pageBehind} ms behind`);
      assert.deepEqual(iot.refused, []);
      assert.ok(iot.connections.length >= 3, `${iot.connections.length} connections`);
      for (const c of iot.connections) {
        // X-Amz-Date is AWS's time (the header has whole seconds), not the page's.
        const off = amzDateOf(c.url) - c.at;
        assert.ok(Math.abs(off) < 5_000, `X-Amz-Date is ${off} ms from the stand-in's time`);
        assert.equal(new URL(c.url.replace('wss:', 'https:')).searchParams.get('X-Amz-Signature'),
          expectedSignature(c.url, SECRET, 'us-east-1'));
      }
      await page.getByTestId('stop').click();
      assert.deepEqual(watch.unexpected(), []);
    } finally {
      await page.close();
      if (standIn !== cognito) standIn.close();
    }
  });
}

test('aws mode: pasted keys sign with the page\'s clock; 20 minutes fast, IoT Core refuses and the page says by how much', async () => {
  const page = await browser.newPage();
  await page.clock.install({ time: Date.now() + 20 * MINUTE });
  const iot = await standInIotCore(page, IOT_URL);
  const callsBefore = cognito.calls.length;
  try {
    await page.goto(`${site.url}?autostart=0&mode=aws&endpoint=${IOT_ENDPOINT}&region=us-east-1`
      + `&devices=1&cognito=${encodeURIComponent(cognito.url)}`);
    await page.locator('details.creds summary').click();
    assert.match(await page.getByTestId('aws-clock-note').textContent(),
      /Pasted credentials are signed with this computer's clock/);
    await page.getByTestId('aws-key').fill('AKIAIOSFODNN7EXAMPLE');
    await page.getByTestId('aws-key').dispatchEvent('change');
    await page.getByTestId('aws-secret').fill('pasted/secret+key');
    await page.getByTestId('aws-secret').dispatchEvent('change');
    await page.getByTestId('start').click();

    // The first refusal makes the page ask AWS for the time; the next one names the skew.
    await page.waitForFunction(
      () => /clock is \d+ minutes fast/.test(document.querySelector('[data-testid=error]')?.textContent ?? ''),
      null, { timeout: 30_000, polling: 200 });
    const shown = await text(page, 'error');
    assert.match(shown, new RegExp(`IoT Core at ${IOT_ENDPOINT.replace(/\./g, '\\.')} refused the `
      + 'connection: this computer\'s clock is 20 minutes fast by AWS\'s time, and IoT Core refuses '
      + 'a signature more than 5 minutes off\\. Pasted credentials are signed with it: set it right'));
    assert.ok(!shown.includes('pasted/secret') && !shown.includes('X-Amz-Signature'), shown);

    // The URLs were signed with the page's clock, and the stand-in refused each one.
    assert.equal(iot.connections.length, 0);
    assert.ok(iot.refused.length >= 2, `${iot.refused.length} refused`);
    for (const r of iot.refused) {
      const ahead = amzDateOf(r.url) - r.at;
      assert.ok(Math.abs(ahead - 20 * MINUTE) < MINUTE, `X-Amz-Date is ${ahead} ms ahead`);
    }
    // Cognito was asked for the time only: a GetId with no pool, which it refuses.
    const asked = cognito.calls.slice(callsBefore);
    assert.ok(asked.length >= 1);
    for (const c of asked) {
      assert.deepEqual([c.target, c.body], ['AWSCognitoIdentityService.GetId', {}]);
    }
    await page.getByTestId('stop').click();
  } finally {
    await page.close();
  }
});
