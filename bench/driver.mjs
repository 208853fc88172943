// Fleet's MQTT transport as the web app ships it (bench/pages/fleet.html), MQTT.js's browser
// bundle (bench/pages/mqttjs.html) and the floor, pre-encoded bytes handed to WebSocket.send
// (fleet.html?kind=raw): publish throughput and renderer CPU per message, in the same
// headless Chromium, against the same broker, alternating run by run. Chromium is driven over
// CDP directly (no Playwright: it would copy every WebSocket frame to its driver).
//
// The broker is mosquitto (Debian's), started here on free loopback ports with a WebSocket
// listener for the pages and a TCP listener for a native subscriber (fleet-client's `count`
// example) that counts what the broker delivered, per run's topic: throughput is what the
// broker received, (count - 1) / (last arrival - first arrival), not what a client believes
// it sent. mosquitto stores nothing, so the clients, not a database, are measured.
//
// Usage (bench/mqttjs-vs-fleet.sh builds everything first):
//   node bench/driver.mjs [--reps 5] [--qos0 1000000] [--qos1 200000] [--batch 100]
//     [--hwm 262144] [--topic dt/monitoring/1/{device}/telemetry] [--payload 0]
//     [--clients fleet,mqttjs,raw] [--qos 0,1] [--fleet-pkg URL-PATH] [--mqttjs-options JSON]
//     [--json FILE] [--profile DIR]
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { createServer } from 'node:http';
import { createServer as createTcpServer } from 'node:net';
import { readFile } from 'node:fs/promises';
import { tmpdir, loadavg, cpus } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import WebSocket from 'ws';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '..');

const { values: opt } = parseArgs({
  options: {
    reps: { type: 'string', default: '5' },
    qos0: { type: 'string', default: '1000000' },
    qos1: { type: 'string', default: '200000' },
    batch: { type: 'string', default: '100' },
    hwm: { type: 'string', default: String(256 * 1024) },
    topic: { type: 'string', default: 'dt/monitoring/1/{device}/telemetry' },
    payload: { type: 'string', default: '0' },
    clients: { type: 'string', default: 'fleet,mqttjs,raw' },
    qos: { type: 'string', default: '0,1' },
    'fleet-pkg': { type: 'string' },
    'mqttjs-options': { type: 'string', default: '{}' },
    counter: { type: 'string', default: path.join(ROOT, 'target/release/examples/count') },
    mosquitto: { type: 'string', default: '/usr/sbin/mosquitto' },
    chromium: { type: 'string', default: '/usr/bin/chromium' },
    json: { type: 'string' },
    profile: { type: 'string' },
  },
});
const REPS = Number(opt.reps);
const COUNTS = { 0: Number(opt.qos0), 1: Number(opt.qos1) };
const CLIENTS = opt.clients.split(',');
const QOS = opt.qos.split(',').map(Number);
const CLK_TCK = 100; // Linux USER_HZ: /proc/<pid>/stat counts CPU time in 1/100 s.

// ---------------------------------------------------------------------------------------
// Payload: fleet-core's current telemetry shape, split around a 10-digit `seq`.

const SEQ0 = 1_000_000_000;
function telemetryTemplate(device, len, ts) {
  const prefix = `{"device":"${device}","building":"1","seq":`;
  let suffix = `,"ts":${ts},"temperature":27.1,"humidity":60.2`;
  const natural = prefix.length + String(SEQ0).length + suffix.length + 1;
  suffix += '0'.repeat(Math.max(0, len - natural)) + '}';
  return { prefix, suffix, bytes: prefix.length + String(SEQ0).length + suffix.length };
}

// ---------------------------------------------------------------------------------------
// Static files (bench/ itself: pages, the wasm pkg, node_modules/mqtt/dist).

const TYPES = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8',
  '.wasm': 'application/wasm', '.json': 'application/json' };

async function serveStatic(root) {
  const base = path.resolve(root);
  const server = createServer(async (req, res) => {
    const pathname = decodeURIComponent(new URL(req.url, 'http://x').pathname);
    const file = path.resolve(base, '.' + path.posix.normalize(pathname));
    const body = file.startsWith(base + path.sep) ? await readFile(file).catch(() => null) : null;
    if (body === null) {
      res.writeHead(404).end('not found');
      return;
    }
    res.writeHead(200, { 'content-type': TYPES[path.extname(file)] ?? 'application/octet-stream',
      'cache-control': 'no-store' }).end(body);
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  return { origin: `http://127.0.0.1:${server.address().port}`, close: () => server.close() };
}

// ---------------------------------------------------------------------------------------
// Processes.

/** Waits for a line of `stream` matching `re`; resolves with the match. */
function waitForLine(stream, re, what, ms = 30_000) {
  return new Promise((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}:\n${buf}`)), ms);
    const onData = (chunk) => {
      buf += chunk;
      const m = buf.match(re);
      if (m) {
        clearTimeout(timer);
        stream.off('data', onData);
        stream.resume(); // keep draining, so the child never blocks on a full pipe
        resolve(m);
      }
    };
    stream.setEncoding('utf8');
    stream.on('data', onData);
  });
}

/** A free TCP port on 127.0.0.1 (bound, read, released). */
function freePort() {
  return new Promise((resolve, reject) => {
    const server = createTcpServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/** Starts mosquitto with a WebSocket listener (the pages) and a TCP one (the counter). */
async function startBroker(dir) {
  const [ws, tcp] = [await freePort(), await freePort()];
  const conf = path.join(dir, 'mosquitto.conf');
  // No limits on what is queued or in flight towards the counter: a slow moment of the
  // counter must delay messages, never drop them. `socket_domain ipv4`: without it the
  // WebSocket listener fails to start on this machine ("Unable to start any listening
  // sockets").
  writeFileSync(conf, [
    'per_listener_settings false', 'allow_anonymous true', 'persistence false',
    'max_queued_messages 0', 'max_inflight_messages 0', 'max_queued_bytes 0',
    `listener ${ws} 127.0.0.1`, 'protocol websockets', 'socket_domain ipv4',
    `listener ${tcp} 127.0.0.1`, 'protocol mqtt', '',
  ].join('\n'));
  const child = spawn(opt.mosquitto, ['-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
  const exited = new Promise((_, reject) => child.once('exit', (code) =>
    reject(new Error(`mosquitto exited (${code}) at start`))));
  await Promise.race([exited, waitForLine(child.stderr, /mosquitto version \S+ running/, 'mosquitto running')]);
  return { child, wsUrl: `ws://127.0.0.1:${ws}/mqtt`, tcpUrl: `mqtt://127.0.0.1:${tcp}` };
}

/** Starts the native subscriber on `filter`; `ask(topic, expected)` resolves with what it
 * counted on that topic: `{ count, first_ms, last_ms }` (arrival times, epoch ms). */
async function startCounter(brokerUrl, filter) {
  const child = spawn(opt.counter, [brokerUrl, filter], { stdio: ['pipe', 'pipe', 'inherit'] });
  const exited = new Promise((_, reject) => child.once('exit', (code) =>
    reject(new Error(`the counter exited (${code})`))));
  child.stdout.setEncoding('utf8');
  const lines = [];
  let waiter = null;
  let buf = '';
  child.stdout.on('data', (chunk) => {
    buf += chunk;
    let nl;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      if (waiter) { const w = waiter; waiter = null; w(line); } else lines.push(line);
    }
  });
  const nextLine = () => (lines.length ? Promise.resolve(lines.shift())
    : Promise.race([exited, new Promise((resolve) => { waiter = resolve; })]));
  const ready = await nextLine();
  if (ready !== 'ready') throw new Error(`the counter said ${ready}`);
  return {
    child,
    async ask(topic, expected) {
      child.stdin.write(`${topic} ${expected}\n`);
      return JSON.parse(await nextLine());
    },
  };
}

async function startChromium(profileDir) {
  const args = ['--headless=new', '--remote-debugging-port=0', '--no-sandbox', '--disable-gpu',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
    '--no-first-run',
    // Tabs made over CDP must not count as background tabs (timer and task throttling).
    '--disable-background-timer-throttling', '--disable-renderer-backgrounding',
    '--disable-backgrounding-occluded-windows',
    `--user-data-dir=${profileDir}`, 'about:blank'];
  const child = spawn(opt.chromium, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  const exited = new Promise((_, reject) => child.once('exit', (code) =>
    reject(new Error(`chromium exited (${code}) before printing its DevTools URL`))));
  const m = await Promise.race([exited,
    waitForLine(child.stderr, /DevTools listening on (ws:\/\/\S+)/, 'the DevTools URL')]);
  return { child, wsUrl: m[1] };
}

function readStat(pid) {
  try {
    const line = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const rest = line.slice(line.lastIndexOf(')') + 2).split(' ');
    return { ppid: Number(rest[1]), ticks: Number(rest[11]) + Number(rest[12]) };
  } catch {
    return null;
  }
}

function processKind(pid) {
  try {
    const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    const type = cmd.match(/--type=([a-z-]+)/)?.[1];
    if (!type) return 'browser';
    if (type === 'utility' && cmd.includes('NetworkService')) return 'network';
    return type;
  } catch {
    return 'gone';
  }
}

/** CPU ticks of every process under `rootPid` (Chromium: browser, zygotes, renderers, …). */
function treeTicks(rootPid) {
  const stats = new Map();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const s = readStat(name);
    if (s) stats.set(Number(name), s);
  }
  const inTree = new Set([rootPid]);
  let grew = true;
  while (grew) {
    grew = false;
    for (const [pid, s] of stats) {
      if (!inTree.has(pid) && inTree.has(s.ppid)) {
        inTree.add(pid);
        grew = true;
      }
    }
  }
  const out = new Map();
  for (const pid of inTree) {
    if (stats.has(pid)) out.set(pid, { kind: processKind(pid), ticks: stats.get(pid).ticks });
  }
  return out;
}

/** CPU seconds spent between two `treeTicks` snapshots, by process kind and in total. */
function cpuDelta(before, after) {
  const byKind = {};
  let total = 0;
  for (const [pid, a] of after) {
    const d = (a.ticks - (before.get(pid)?.ticks ?? 0)) / CLK_TCK;
    byKind[a.kind] = (byKind[a.kind] ?? 0) + d;
    total += d;
  }
  return { byKind, total };
}

// ---------------------------------------------------------------------------------------
// CDP over a WebSocket (flat sessions).

class Cdp {
  static async connect(url) {
    const ws = new WebSocket(url, { perMessageDeflate: false, maxPayload: 256 * 1024 * 1024 });
    await new Promise((resolve, reject) => {
      ws.once('open', resolve);
      ws.once('error', reject);
    });
    return new Cdp(ws);
  }

  constructor(ws) {
    this.ws = ws;
    this.nextId = 1;
    this.pending = new Map();
    this.listeners = [];
    ws.on('message', (data) => {
      const msg = JSON.parse(data.toString());
      if (msg.id !== undefined) {
        const p = this.pending.get(msg.id);
        this.pending.delete(msg.id);
        if (msg.error) p?.reject(new Error(`${p.method}: ${msg.error.message} ${msg.error.data ?? ''}`));
        else p?.resolve(msg.result);
      } else {
        for (const l of this.listeners) l(msg);
      }
    });
    ws.on('close', () => {
      for (const p of this.pending.values()) p.reject(new Error('CDP connection closed'));
      this.pending.clear();
    });
  }

  send(method, params = {}, sessionId = undefined, timeoutMs = 180_000) {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`${method}: no answer in ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, {
        method,
        resolve: (v) => { clearTimeout(timer); resolve(v); },
        reject: (e) => { clearTimeout(timer); reject(e); },
      });
      this.ws.send(JSON.stringify({ id, method, params, ...(sessionId ? { sessionId } : {}) }));
    });
  }

  /** Evaluates `expression` in the page, awaiting a promise; returns its value. */
  async eval(sessionId, expression, timeoutMs) {
    const r = await this.send('Runtime.evaluate', { expression, awaitPromise: true,
      returnByValue: true }, sessionId, timeoutMs);
    if (r.exceptionDetails) {
      const d = r.exceptionDetails;
      throw new Error(`page: ${d.exception?.description ?? d.text}`);
    }
    return r.result.value;
  }

  close() {
    this.ws.close();
  }
}

async function openPage(cdp, url) {
  const { targetId } = await cdp.send('Target.createTarget', { url });
  const { sessionId } = await cdp.send('Target.attachToTarget', { targetId, flatten: true });
  await cdp.send('Runtime.enable', {}, sessionId);
  const deadline = Date.now() + 30_000;
  for (;;) {
    const ok = await cdp.eval(sessionId,
      'window.bench ? window.bench.ready : (window.benchError ?? false)', 10_000).catch(() => false);
    if (ok === true) break;
    if (Date.now() > deadline) throw new Error(`${url}: window.bench never became ready`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return { targetId, sessionId };
}

// ---------------------------------------------------------------------------------------
// One run: fresh tab, connect, collect garbage, CPU before, run, CPU after, close, then what
// the counter saw on the run's topic.

const PAGES = { fleet: 'pages/fleet.html', raw: 'pages/fleet.html?kind=raw', mqttjs: 'pages/mqttjs.html' };

async function runOnce(ctx, client, qos, rep) {
  let page = `${ctx.origin}/${PAGES[client]}`;
  if (client !== 'mqttjs' && opt['fleet-pkg']) {
    page += `${page.includes('?') ? '&' : '?'}pkg=${encodeURIComponent(opt['fleet-pkg'])}`;
  }
  const { targetId, sessionId } = await openPage(ctx.cdp, page);
  try {
    // A topic of its own per run, so the counter's tally is this run's alone.
    const device = `${ctx.tag}-${client}-q${qos}r${rep}`;
    const clientId = `bench-${device}`;
    const options = client === 'mqttjs' ? `{}, ${opt['mqttjs-options']}` : JSON.stringify({ qos, device });
    await ctx.cdp.eval(sessionId, `bench.connect(${JSON.stringify(ctx.brokerUrl)}, ${JSON.stringify(clientId)}, ${options})`, 30_000);
    await ctx.cdp.send('HeapProfiler.collectGarbage', {}, sessionId);
    await new Promise((r) => setTimeout(r, 300));
    const payload = telemetryTemplate(device, ctx.payloadLen, ctx.ts);
    const topic = ctx.topic.replaceAll('{device}', device);
    const spec = { qos, count: COUNTS[qos], topic, prefix: payload.prefix, suffix: payload.suffix,
      seq0: SEQ0, batch: Number(opt.batch), hwm: Number(opt.hwm) };
    if (opt.profile) await ctx.cdp.send('Profiler.enable', {}, sessionId);
    if (opt.profile) await ctx.cdp.send('Profiler.start', {}, sessionId);
    const chromeBefore = treeTicks(ctx.chromiumPid);
    const brokerBefore = readStat(ctx.brokerPid).ticks;
    const r = await ctx.cdp.eval(sessionId, `bench.run(${JSON.stringify(spec)})`, 300_000);
    const chromeAfter = treeTicks(ctx.chromiumPid);
    if (opt.profile) {
      const { profile } = await ctx.cdp.send('Profiler.stop', {}, sessionId);
      mkdirSync(opt.profile, { recursive: true });
      const file = path.join(opt.profile, `${client}-qos${qos}-rep${rep}.cpuprofile`);
      writeFileSync(file, JSON.stringify(profile));
    }
    // What the broker delivered (it may still be delivering the last of a QoS 0 run).
    const seen = await ctx.counter.ask(topic, spec.count);
    const brokerAfter = readStat(ctx.brokerPid).ticks;
    await ctx.cdp.eval(sessionId, 'bench.close()', 10_000);
    const cpu = cpuDelta(chromeBefore, chromeAfter);
    const n = spec.count;
    const us = (s) => (s * 1e6) / n;
    return {
      client, qos, rep, count: n, received: seen.count,
      broker_ms: seen.last_ms - seen.first_ms,
      msgs_per_s: seen.count > 1 ? (seen.count - 1) / ((seen.last_ms - seen.first_ms) / 1000) : 0,
      client_ms: r.elapsed_ms,
      renderer_us: us(cpu.byKind.renderer ?? 0),
      network_us: us(cpu.byKind.network ?? 0),
      browser_us: us(cpu.byKind.browser ?? 0),
      chromium_us: us(cpu.total),
      broker_us: us((brokerAfter - brokerBefore) / CLK_TCK),
      frames_out: r.frames_out,
    };
  } finally {
    await ctx.cdp.send('Target.closeTarget', { targetId }).catch(() => {});
  }
}

// ---------------------------------------------------------------------------------------

const sorted = (xs) => [...xs].sort((a, b) => a - b);
const median = (xs) => {
  const s = sorted(xs);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const fmt = (x, d = 0) => x.toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d });
/** "min / median / max". */
const spread = (xs, d) => `${fmt(Math.min(...xs), d)} / **${fmt(median(xs), d)}** / ${fmt(Math.max(...xs), d)}`;
const NAMES = { fleet: 'Fleet transport (wasm)', mqttjs: 'MQTT.js', raw: 'WebSocket.send (floor)' };

async function main() {
  const scratch = mkdtempSync(path.join(tmpdir(), 'fleet-mqttjs-bench-'));
  const cleanups = [() => rmSync(scratch, { recursive: true, force: true })];
  const cleanup = async () => {
    for (const f of cleanups.reverse()) {
      try { await f(); } catch { /* best effort */ }
    }
    cleanups.length = 0;
  };
  process.on('SIGINT', () => { cleanup().finally(() => process.exit(130)); });
  try {
    const server = await serveStatic(HERE);
    cleanups.push(() => server.close());
    const broker = await startBroker(scratch);
    cleanups.push(() => stop(broker.child));
    const filter = opt.topic.split('/')[0] + '/#';
    const counter = await startCounter(broker.tcpUrl, filter);
    cleanups.push(() => stop(counter.child));
    const chromium = await startChromium(path.join(scratch, 'chromium'));
    cleanups.push(() => stop(chromium.child));
    const cdp = await Cdp.connect(chromium.wsUrl);
    cleanups.push(() => cdp.close());
    const version = (await cdp.send('Browser.getVersion')).product;
    const tag = `b${randomBytes(4).toString('hex')}`;
    // As the runs will send it: each run's device is as long as this one.
    const example = `${tag}-fleet-q0r1`;
    const payload = telemetryTemplate(example, Number(opt.payload), Date.now());
    const ctx = { cdp, origin: server.origin, brokerUrl: broker.wsUrl, payloadLen: Number(opt.payload),
      ts: Date.now(), tag, topic: opt.topic, counter,
      chromiumPid: chromium.child.pid, brokerPid: broker.child.pid };
    const mqttjsVersion = JSON.parse(readFileSync(path.join(HERE, 'node_modules/mqtt/package.json'), 'utf8')).version;

    console.log(`${version}, MQTT.js ${mqttjsVersion}, broker ${broker.wsUrl} (mosquitto), counter on ${broker.tcpUrl} ${filter}, ` +
      `${cpus().length} CPUs, load ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
    console.log(`topic ${opt.topic.replaceAll('{device}', example)}, payload ${payload.bytes} B, batch ${opt.batch}, ` +
      `${opt['fleet-pkg'] ? `fleet pkg ${opt['fleet-pkg']}, ` : ''}` +
      `${opt['mqttjs-options'] !== '{}' ? `MQTT.js options ${opt['mqttjs-options']}, ` : ''}` +
      `hwm ${opt.hwm} B, QoS 0 × ${fmt(COUNTS[0])}, QoS 1 × ${fmt(COUNTS[1])}, ${REPS} reps\n`);

    const results = [];
    for (let rep = 1; rep <= REPS; rep++) {
      for (const qos of QOS) {
        for (const client of CLIENTS) {
          const r = await runOnce(ctx, client, qos, rep);
          results.push(r);
          console.log(`rep ${rep} QoS ${qos} ${NAMES[client].padEnd(24)} ${fmt(r.msgs_per_s).padStart(8)} msg/s at the broker` +
            ` (${fmt(r.received)} of ${fmt(r.count)} in ${fmt(r.broker_ms)} ms; client done in ${fmt(r.client_ms)} ms)` +
            `  renderer ${r.renderer_us.toFixed(2).padStart(6)} µs/msg` +
            `  network ${r.network_us.toFixed(2).padStart(5)}  browser ${r.browser_us.toFixed(2).padStart(5)}` +
            `  chromium ${r.chromium_us.toFixed(2).padStart(6)}  broker ${r.broker_us.toFixed(2).padStart(5)}` +
            `  WebSocket messages out ${fmt(r.frames_out)}`);
          if (r.received !== r.count) {
            console.log(`  the broker delivered ${fmt(r.received)} of ${fmt(r.count)} messages`);
          }
        }
      }
    }

    const summary = [];
    console.log(`\nmin / **median** / max of ${REPS} (CPU in µs per message; "Chromium" is every Chromium process: renderer, network service, browser):\n`);
    console.log('| QoS | client | msg/s at the broker | renderer µs/msg | Chromium µs/msg | broker µs/msg | WebSocket messages out (median) | delivered |');
    console.log('|---|---|---|---|---|---|---|---|');
    for (const qos of QOS) {
      for (const client of CLIENTS) {
        const rs = results.filter((r) => r.qos === qos && r.client === client);
        const s = { qos, client };
        for (const k of ['msgs_per_s', 'renderer_us', 'chromium_us', 'network_us', 'broker_us', 'frames_out']) {
          s[k] = median(rs.map((r) => r[k]));
        }
        summary.push(s);
        const delivered = rs.every((r) => r.received === r.count) ? 'all' : rs.map((r) => fmt(r.received)).join(', ');
        console.log(`| ${qos} | ${NAMES[client]} | ${spread(rs.map((r) => r.msgs_per_s))} | ${spread(rs.map((r) => r.renderer_us), 2)} | ` +
          `${spread(rs.map((r) => r.chromium_us), 2)} | ${spread(rs.map((r) => r.broker_us), 2)} | ${fmt(s.frames_out)} | ${delivered} |`);
      }
    }
    const pair = (qos, a, b) => [summary.find((s) => s.qos === qos && s.client === a),
      summary.find((s) => s.qos === qos && s.client === b)];
    if (CLIENTS.includes('fleet') && CLIENTS.includes('mqttjs')) {
      console.log('\n| QoS | throughput Fleet / MQTT.js | renderer CPU per msg Fleet / MQTT.js | target |');
      console.log('|---|---|---|---|');
      for (const qos of QOS) {
        const [f, m] = pair(qos, 'fleet', 'mqttjs');
        const tp = f.msgs_per_s / m.msgs_per_s;
        const cpu = f.renderer_us / m.renderer_us;
        const met = tp >= 1 && cpu <= 0.5 ? 'met' : 'MISSED';
        console.log(`| ${qos} | ${tp.toFixed(2)}× | ${cpu.toFixed(2)} | ≥ 1× and ≤ 0.5: ${met} |`);
      }
    }
    if (CLIENTS.includes('fleet') && CLIENTS.includes('raw')) {
      console.log('\n| QoS | renderer CPU per msg, Fleet / WebSocket.send (overhead) | throughput Fleet / WebSocket.send |');
      console.log('|---|---|---|');
      for (const qos of QOS) {
        const [f, w] = pair(qos, 'fleet', 'raw');
        console.log(`| ${qos} | ${(f.renderer_us / w.renderer_us).toFixed(2)}× | ${(f.msgs_per_s / w.msgs_per_s).toFixed(2)}× |`);
      }
    }
    console.log(`\nload ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
    if (opt.json) {
      writeFileSync(opt.json, JSON.stringify({ version, mqttjs: mqttjsVersion, payload_bytes: payload.bytes,
        options: opt, results, summary }, null, 2));
    }
  } finally {
    await cleanup();
  }
}

/** SIGTERM, then SIGKILL after 5 s; resolves when the child has exited. */
function stop(child) {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
    child.once('exit', () => { clearTimeout(timer); resolve(); });
    child.kill('SIGTERM');
  });
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
