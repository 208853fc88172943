// How `fleet local` serves the release build (FLEET_E2E_DIST, with the .br/.gz files that
// scripts/build-web.sh writes), checked from outside with curl and Chromium:
//  - `curl --compressed`: every asset comes with a content-encoding, decodes to the built
//    file, carries its cache policy (content-hashed: a year, immutable; index.html:
//    no-cache), and all of them together are at most 250 KB on the wire;
//  - a conditional request (If-None-Match, If-Modified-Since) of an unchanged file gets 304;
//  - a client that accepts only gzip gets gzip, also within 250 KB;
//  - `/config.json` is the stack's own answer (a page credential, never stored), even when
//    the build shipped its default config.json;
//  - Chromium's first visit is at most 250 KB on the wire (also asking for gzip only, as it
//    does from other machines over plain HTTP) and a repeat visit at most 5 KB
//    (e2e/bench/transfer.mjs measures; BENCHMARKS.md has the numbers).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { launchChromium } from './support/browser.mjs';
import { builtDist } from './support/dist.mjs';
import { freePort, startStack } from './support/stack.mjs';
import { firstAndRepeatVisit, describe, FIRST_VISIT_BUDGET, REPEAT_VISIT_BUDGET }
  from './bench/transfer.mjs';

const IMMUTABLE = 'public, max-age=31536000, immutable';

let dist;
let stack;
let origin;
let scratch;

/** The app's files as the build wrote them (not the precompressed copies), by URL path. */
function assets() {
  return readdirSync(dist)
    .filter((f) => !/\.(br|gz)$/.test(f) && f !== 'config.json')
    .map((f) => ({ file: path.join(dist, f), url: f === 'index.html' ? '/' : `/${f}` }));
}

/**
 * `curl ARGS URL` (no retries, loopback): `{ status, headers, body, sizeDownload,
 * sizeHeader }`, where `body` is what curl wrote (decoded with `--compressed`) and the sizes
 * are the bytes on the wire.
 */
function curl(url, args = []) {
  const bodyFile = path.join(scratch, 'body');
  rmSync(bodyFile, { force: true }); // curl writes no file for an empty body
  const out = execFileSync('curl', ['-sS', '--output', bodyFile, '--dump-header', '-',
    '--write-out', '\n%{json}', ...args, url], { encoding: 'utf8' });
  const lines = out.trimEnd().split('\n');
  const info = JSON.parse(lines.pop());
  const headers = {};
  for (const line of lines) {
    const m = line.match(/^([\w-]+):\s*(.*?)\s*$/);
    if (m) headers[m[1].toLowerCase()] = m[2];
  }
  return {
    status: info.http_code,
    headers,
    body: existsSync(bodyFile) ? readFileSync(bodyFile) : Buffer.alloc(0),
    sizeDownload: info.size_download,
    sizeHeader: info.size_header,
  };
}

before(async () => {
  dist = builtDist();
  scratch = mkdtempSync(path.join(tmpdir(), 'fleet-e2e-serving-'));
  const ports = { ws: await freePort(), http: await freePort() };
  stack = await startStack({ data: path.join(scratch, 'data'), ports, dist });
  origin = `http://127.0.0.1:${ports.http}`;
});

after(async () => {
  if (stack && stack.exitCode === null) {
    const exited = new Promise((r) => stack.once('exit', r));
    stack.kill('SIGTERM');
    await exited;
  }
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

test('curl --compressed: every asset compressed, cached by its name, 250 KB at most on the wire', () => {
  const list = assets();
  assert.ok(list.some((a) => a.url.endsWith('.wasm')), `the build: ${list.map((a) => a.url)}`);
  let wire = 0;
  const lines = [];
  for (const { file, url } of list) {
    const r = curl(`${origin}${url}`, ['--compressed']);
    assert.equal(r.status, 200, url);
    assert.match(r.headers['content-encoding'] ?? '', /^(br|gzip)$/, `${url} is compressed`);
    assert.equal(r.headers.vary, 'accept-encoding', url);
    assert.deepEqual(r.body, readFileSync(file), `${url} decodes to the built file`);
    const hashed = /-[0-9a-f]{8,16}(_bg)?\.\w+$/.test(url);
    assert.equal(r.headers['cache-control'], hashed ? IMMUTABLE : 'no-cache', url);
    assert.ok(r.headers.etag && r.headers['last-modified'], `${url} has validators`);
    wire += r.sizeDownload + r.sizeHeader;
    lines.push(`${url} ${r.headers['content-encoding']} ${r.sizeDownload}+${r.sizeHeader}`);
  }
  assert.ok(wire <= 250_000, `${wire} bytes on the wire:\n${lines.join('\n')}`);
});

test('a conditional request of an unchanged file gets 304', () => {
  for (const { url } of assets()) {
    const first = curl(`${origin}${url}`, ['--compressed']);
    const byTag = curl(`${origin}${url}`, ['--compressed',
      '-H', `If-None-Match: ${first.headers.etag}`]);
    assert.equal(byTag.status, 304, `${url} If-None-Match`);
    assert.equal(byTag.body.length, 0);
    assert.equal(byTag.headers['cache-control'], first.headers['cache-control'], url);
    const byDate = curl(`${origin}${url}`, ['--compressed',
      '-H', `If-Modified-Since: ${first.headers['last-modified']}`]);
    assert.equal(byDate.status, 304, `${url} If-Modified-Since`);
    const stale = curl(`${origin}${url}`, ['--compressed', '-H', 'If-None-Match: "older"']);
    assert.equal(stale.status, 200, `${url} with another ETag`);
  }
});

test('a client without brotli gets gzip, one without either the file as it is', () => {
  let wire = 0;
  for (const { file, url } of assets()) {
    const gz = curl(`${origin}${url}`, ['-H', 'Accept-Encoding: gzip']);
    assert.equal(gz.headers['content-encoding'], 'gzip', url);
    assert.deepEqual(gunzipSync(gz.body), readFileSync(file), url);
    wire += gz.sizeDownload + gz.sizeHeader;
    const plain = curl(`${origin}${url}`);
    assert.equal(plain.headers['content-encoding'], undefined, url);
    assert.deepEqual(plain.body, readFileSync(file), url);
  }
  assert.ok(wire <= 250_000, `${wire} bytes on the wire in gzip`);
});

test("config.json is the stack's own answer, never stored", () => {
  const r = curl(`${origin}/config.json`, ['--compressed']);
  assert.equal(r.status, 200);
  const config = JSON.parse(r.body.toString('utf8'));
  assert.equal(config.mode, 'local');
  assert.match(config.mqtt.username, /^page:w[0-9a-f]{10}$/);
  assert.equal(r.headers['cache-control'], 'no-cache, no-store');
  if (existsSync(path.join(dist, 'config.json'))) {
    assert.equal(JSON.parse(readFileSync(path.join(dist, 'config.json'), 'utf8')).written_by, 'build-web.sh',
      'the build ships only its default');
    assert.match(stack.output(), /the build's default config\.json is replaced/);
  }
});

test('Chromium: a first visit is 250 KB at most on the wire, a repeat visit 5 KB', async () => {
  const browser = await launchChromium();
  try {
    const { first, repeat, gzipOnly } = await firstAndRepeatVisit(browser, `${origin}/`);
    const report = `${describe('first visit', first, FIRST_VISIT_BUDGET)}\n`
      + `${describe('repeat visit', repeat, REPEAT_VISIT_BUDGET)}\n`
      + describe('first visit, gzip only', gzipOnly, FIRST_VISIT_BUDGET);
    assert.ok(first.bytes <= FIRST_VISIT_BUDGET, report);
    assert.ok(gzipOnly.bytes <= FIRST_VISIT_BUDGET, report);
    assert.ok(gzipOnly.requests.some((r) => r.encoding === 'gzip'), report);
    assert.ok(repeat.bytes <= REPEAT_VISIT_BUDGET, report);
    const wasm = first.requests.find((r) => r.url.endsWith('.wasm'));
    assert.ok(wasm && wasm.encoding, `the wasm came compressed: ${report}`);
    const again = repeat.requests.find((r) => r.url.endsWith('.wasm'));
    assert.equal(again?.bytes, 0, `the wasm came from the cache: ${report}`);
    const index = repeat.requests.find((r) => new URL(r.url).pathname === '/');
    assert.equal(index?.status, 304, `index.html was revalidated: ${report}`);
  } finally {
    await browser.close();
  }
});
