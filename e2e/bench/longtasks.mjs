// Main-thread long tasks and frame rate of the web app in headless Chromium:
//  1. 200 devices on their own WebSocket connections to `fleet local`, 1 reading/s each;
//  2. 1,000 devices in in-page mode (1 reading/s each).
// Prints one line per scenario: long tasks (count, max, total ms), frames per second, and
// what the page counted. Usage (from the repo root, after scripts/build-web.sh into dist/):
//   node e2e/bench/longtasks.mjs [--seconds 30] [--dist dist] [--fleet target/release/fleet]
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { chromium } from 'playwright-core';

const { values: opt } = parseArgs({
  options: {
    seconds: { type: 'string', default: '30' },
    dist: { type: 'string', default: 'dist' },
    fleet: { type: 'string', default: 'target/release/fleet' },
  },
});
const seconds = Number(opt.seconds);

const CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--no-first-run'];

/** Starts `fleet local` on free ports; resolves with its HTTP base URL. */
function startStack(dataDir) {
  const child = spawn(resolve(opt.fleet), ['local', '--data', dataDir, '--mqtt', 'off',
    '--mqtts', 'off', '--ws', '127.0.0.1:0', '--http', '127.0.0.1:0', '--dist', resolve(opt.dist)],
  { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((ok, fail) => {
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
      const m = out.match(/Web app +(http:\/\/[^ /]+)\//);
      if (m) ok({ child, http: m[1] });
    });
    child.on('exit', (code) => fail(new Error(`fleet local exited (${code}): ${out}`)));
  });
}

/** Records long tasks and animation frames from the page's start. */
const observe = () => {
  window.__long = [];
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) window.__long.push({ at: e.startTime, ms: e.duration });
  }).observe({ type: 'longtask', buffered: true });
  window.__frames = [];
  const frame = (t) => { window.__frames.push(t); requestAnimationFrame(frame); };
  requestAnimationFrame(frame);
};

async function scenario(browser, name, url, ready) {
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  await page.addInitScript(observe);
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  const t0 = Date.now();
  await page.goto(url);
  await page.waitForFunction(ready, null, { timeout: 120_000, polling: 200 });
  const startMs = Date.now() - t0;
  // Only the steady state counts: the start (ramp-up, warm-up) is reported on its own.
  const since = await page.evaluate(() => performance.now());
  await page.waitForTimeout(seconds * 1000);
  const r = await page.evaluate((since) => {
    const long = window.__long.filter((l) => l.at >= since);
    const startLong = window.__long.filter((l) => l.at < since);
    const frames = window.__frames.filter((t) => t >= since);
    const gaps = frames.slice(1).map((t, i) => t - frames[i]).sort((a, b) => a - b);
    const text = (id) => document.querySelector(`[data-testid=${id}]`)?.textContent;
    return {
      longCount: long.length,
      longMax: Math.max(0, ...long.map((l) => l.ms)),
      longTotal: long.reduce((s, l) => s + l.ms, 0),
      startLongMax: Math.max(0, ...startLong.map((l) => l.ms)),
      fps: (frames.length - 1) / ((frames.at(-1) - frames[0]) / 1000),
      frameP99: gaps[Math.floor(gaps.length * 0.99)] ?? 0,
      published: text('stats-published'),
      acked: text('stats-acked'),
      links: text('stats-links'),
      rate: text('stats-rate'),
      rtt: text('stats-rtt'),
    };
  }, since);
  await page.close();
  const line = `${name}: long tasks ${r.longCount} (max ${r.longMax.toFixed(0)} ms, total ${r.longTotal.toFixed(0)} ms) in ${seconds} s; `
    + `${r.fps.toFixed(1)} fps (p99 frame ${r.frameP99.toFixed(1)} ms); start ${startMs} ms (longest task then ${r.startLongMax.toFixed(0)} ms); `
    + `published ${r.published}, acked ${r.acked}, connected ${r.links}, rate ${r.rate}, round trip ${r.rtt}`
    + (errors.length ? `; page errors: ${errors.join(' | ')}` : '');
  console.log(line);
  return r;
}

const data = mkdtempSync(join(tmpdir(), 'fleet-bench-'));
const { child, http } = await startStack(data);
const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', headless: true, args: CHROMIUM_ARGS });
try {
  await scenario(browser, '200 devices, own connections, fleet local',
    `${http}/?mode=local&devices=200&frequency=1&ramp=50&autostart=1`,
    () => document.querySelector('[data-testid=stats-links]')?.textContent === '200/200');
  await scenario(browser, '1000 devices, in-page',
    `${http}/?mode=in-page&devices=1000&frequency=1&ramp=0`,
    () => document.querySelector('[data-testid=status]')?.textContent === 'running');
} finally {
  await browser.close();
  child.kill('SIGTERM');
  rmSync(data, { recursive: true, force: true });
}
