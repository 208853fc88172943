// Main-thread long tasks and frame rate of the web app in headless Chromium, 1 reading/s
// per device:
//  - 250 devices, each on its own WebSocket to `fleet local` (Chrome allows ~255 per profile);
//  - 5,000 / 10,000 / 25,000 devices in gateway mode against `fleet local`
//    (`connections=auto`: ~1,000 publishes/s per gateway against a local broker, so 5 / 10 /
//    25 gateways; 250 buildings, so every gateway serves some), and 25,000 on 250 gateways
//    (IoT Core's 100 publishes/s per connection);
//  - 1,000 and 25,000 devices in in-page mode (the steady window starts after the warm-up).
// Each scenario gets a fresh `fleet local` and a fresh browser. The stack serves the page, so
// its config.json gives the page a namespace and credential (ARCHITECTURE §4.8): same origin,
// nothing to allow or pass. Prints one line per scenario:
// long tasks (count, max, total ms), frames per second, what the page counted, and the
// stack's CPU over the window. Usage (from the repo root, after scripts/build-web.sh):
//   node e2e/bench/longtasks.mjs [--seconds 30] [--dist dist] [--fleet target/release/fleet]
//                                [--only SUBSTRING]
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { chromium } from 'playwright-core';

const { values: opt } = parseArgs({
  options: {
    seconds: { type: 'string', default: '30' },
    dist: { type: 'string', default: 'dist' },
    fleet: { type: 'string', default: 'target/release/fleet' },
    only: { type: 'string', default: '' },
  },
});
const seconds = Number(opt.seconds);

const CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--no-first-run'];

/** Starts `fleet local` on free ports; resolves with its HTTP base URL. */
function startStack(dataDir) {
  const child = spawn(resolve(opt.fleet), ['local', '--data', dataDir, '--mqtt', 'off',
    '--mqtts', 'off', '--ws', '127.0.0.1:0', '--http', '127.0.0.1:0', '--dist', resolve(opt.dist)],
  { stdio: ['ignore', 'pipe', 'ignore'] });
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

/** CPU seconds (user + system) a process has used so far. */
function cpuSeconds(pid) {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

async function scenario(name, query, ready) {
  if (opt.only && !name.includes(opt.only)) return null;
  const data = mkdtempSync(join(tmpdir(), 'fleet-bench-'));
  const { child, http } = await startStack(data);
  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', headless: true, args: CHROMIUM_ARGS });
  try {
    return await measure(browser, child, name, `${http}/?${query}`, ready);
  } finally {
    await browser.close();
    child.kill('SIGTERM');
    await new Promise((ok) => { child.on('exit', ok); setTimeout(ok, 5000); });
    rmSync(data, { recursive: true, force: true });
  }
}

async function measure(browser, stack, name, url, ready) {
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  await page.addInitScript(observe);
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  const t0 = Date.now();
  await page.goto(url);
  await page.waitForFunction(ready, null, { timeout: 300_000, polling: 200 });
  const startMs = Date.now() - t0;
  // Only the steady state counts: the start (ramp-up, warm-up) is reported on its own.
  const since = await page.evaluate(() => performance.now());
  const num = async (id) => Number((await page.evaluate(
    (id) => document.querySelector(`[data-testid=${id}]`)?.textContent, id))?.replace(/[^0-9]/g, ''));
  const before = { published: await num('stats-published'), acked: await num('stats-acked'), cpu: cpuSeconds(stack.pid) };
  await page.waitForTimeout(seconds * 1000);
  const stackCpu = (cpuSeconds(stack.pid) - before.cpu) / seconds;
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
      unacked: text('stats-unacked'),
      dropped: text('stats-dropped'),
      links: text('stats-links'),
      rate: text('stats-rate'),
      rtt: text('stats-rtt'),
      // The overview is drawn: its painted pixels (one cell per device).
      overview: (() => {
        const c = document.querySelector('[data-testid=overview-canvas]');
        const px = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let painted = 0;
        for (let i = 3; i < px.length; i += 4) painted += px[i] ? 1 : 0;
        return `${painted} px painted on ${c.width}×${c.height}`;
      })(),
    };
  }, since);
  await page.close();
  r.windowPublished = Number(r.published) - before.published;
  r.windowAcked = Number(r.acked) - before.acked;
  r.stackCpu = stackCpu;
  const line = `${name}: long tasks ${r.longCount} (max ${r.longMax.toFixed(0)} ms, total ${r.longTotal.toFixed(0)} ms) in ${seconds} s; `
    + `${r.fps.toFixed(1)} fps (p99 frame ${r.frameP99.toFixed(1)} ms); start ${startMs} ms (longest task then ${r.startLongMax.toFixed(0)} ms); `
    + `in the window published ${r.windowPublished}, acked ${r.windowAcked}; at the end published ${r.published}, acked ${r.acked}, `
    + `unacked ${r.unacked}, dropped ${r.dropped}, connected ${r.links}, rate ${r.rate}, round trip ${r.rtt}; `
    + `fleet local CPU ${(stackCpu * 100).toFixed(0)}%; overview ${r.overview}`
    + (errors.length ? `; page errors: ${errors.join(' | ')}` : '');
  console.log(line);
  return r;
}

const allUp = (n) => new Function(
  `return document.querySelector('[data-testid=stats-links]')?.textContent === '${n}/${n}';`);
// In page, the steady window starts once the warm-up's readings are through.
const publishedAtLeast = (n) => new Function(
  `return Number(document.querySelector('[data-testid=stats-published]')?.textContent) >= ${n};`);

await scenario('250 devices, own connections, fleet local',
  'mode=local&devices=250&connections=per-device&frequency=1&ramp=50', allUp(250));
for (const n of [5_000, 10_000, 25_000]) {
  await scenario(`${n} devices, gateways (auto), fleet local`,
    `mode=local&devices=${n}&buildings=250&connections=auto&frequency=1&ramp=0`, allUp(n));
}
// IoT Core's shape: 250 gateways of 100 publishes/s (what `auto` opens against AWS).
await scenario('25000 devices, 250 gateways, fleet local',
  'mode=local&devices=25000&buildings=250&connections=250&frequency=1&ramp=0', allUp(25_000));
await scenario('1000 devices, in-page',
  'mode=in-page&devices=1000&frequency=1&ramp=0', publishedAtLeast(300_000));
// 25,000 devices warm up for 12 s (300,000 readings, see engine::warmup_s).
await scenario('25000 devices, in-page',
  'mode=in-page&devices=25000&frequency=1&ramp=0', publishedAtLeast(300_000));
