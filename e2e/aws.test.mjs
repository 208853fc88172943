// AWS mode in a real browser, in the app as shipped (FLEET_E2E_DIST, see support/dist.mjs;
// the AWS mode is part of it): the user enters an endpoint, a region and
// an Identity Pool id; the page calls a local stand-in for Cognito's two JSON calls, presigns
// the IoT Core WebSocket URL (checked here against an independent SigV4 computation in
// Node), and says in plain words what went wrong: an endpoint it cannot reach, or
// credentials Cognito refuses. Secrets never reach the page's storage, URL or text.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, createHmac } from 'node:crypto';
import { createServer } from 'node:http';
import { createServer as createTcpServer } from 'node:net';
import { serveStatic } from './support/static-server.mjs';
import { launchChromium, watchErrors } from './support/browser.mjs';
import { PUBLIC_URL, builtDist } from './support/dist.mjs';

let DIST;
const SECRET = 'stand-in-secret/key+1';
const TOKEN = 'stand/in+token=';
const ACCESS_KEY = 'ASIASTANDIN000000001';
// A bad endpoint: a free loopback port, nothing listens there (set in `before`).
let ENDPOINT;

let site;
let cognito;
let browser;

/** A stand-in for Cognito Identity's JSON API: GetId and GetCredentialsForIdentity. */
function startCognito() {
  const calls = [];
  const server = createServer((req, res) => {
    const cors = {
      'access-control-allow-origin': '*',
      'access-control-allow-headers': 'content-type, x-amz-target',
      'access-control-allow-methods': 'POST',
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
        if (pool === 'us-east-1:refused') {
          return send(400, {
            __type: 'NotAuthorizedException',
            message: 'Unauthenticated access is not supported for this identity pool.',
          });
        }
        return send(200, { IdentityId: `us-east-1:id-for-${pool.split(':')[1]}` });
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
  DIST = builtDist();
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
  assert.deepEqual(cognito.calls[1].body, { IdentityId: 'us-east-1:id-for-good' });

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
  assert.ok(exposed.includes('us-east-1:id-for-good'), 'the identity id is remembered');

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
  assert.match(shown, /Cognito refused: Unauthenticated access is not supported for this identity pool\. \(NotAuthorizedException\)/);
  assert.match(shown, /waiting for AWS credentials/);
  assert.deepEqual(sockets, [], 'no connection without credentials');
  await page.close();
});

test('aws mode: pasted credentials sign without Cognito and stay in memory', async () => {
  const page = await browser.newPage();
  const sockets = [];
  page.on('websocket', (ws) => sockets.push(ws.url()));
  const callsBefore = cognito.calls.length;
  await page.goto(`${site.url}?autostart=0&mode=aws&endpoint=${ENDPOINT}&region=eu-west-1&devices=1`);
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
  assert.equal(cognito.calls.length, callsBefore, 'Cognito is not called');
  const stored = await page.evaluate(() => JSON.stringify({ ...localStorage }) + location.href);
  assert.ok(!stored.includes('pasted/secret'), 'the secret is not stored');
  await page.close();
});
