// `./scripts/run.sh` with ports other than the defaults: the stack comes up where its flags
// say, `fleet sim` publishes to that broker (not to 1883), readings reach the database
// (counted at the stack's /metrics on its own HTTP port), and SIGTERM stops both cleanly.
// Runs the debug `fleet` (FLEET_BIN) and the built app (FLEET_E2E_DIST), so it builds nothing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { builtDist, ROOT } from './support/dist.mjs';
import { FLEET, freePort } from './support/stack.mjs';

const DEVICES = 3;

/** Whether something accepts connections on 127.0.0.1:`port`. */
function listening(port) {
  return new Promise((resolve) => {
    const socket = new Socket();
    socket.once('connect', () => { socket.destroy(); resolve(true); });
    socket.once('error', () => resolve(false));
    socket.connect(port, '127.0.0.1');
  });
}

/** The stack's counter `name` (no labels), or NaN when /metrics is not answering. */
async function counter(http, name) {
  try {
    const text = await (await fetch(`http://127.0.0.1:${http}/metrics`)).text();
    const m = text.match(new RegExp(`^${name} (\\d+)`, 'm'));
    return m ? Number(m[1]) : NaN;
  } catch {
    return NaN;
  }
}

test('run.sh with non-default ports brings up the stack and a simulator on them', async () => {
  const dist = builtDist();
  const data = mkdtempSync(path.join(tmpdir(), 'fleet-e2e-run-'));
  const ports = { mqtt: await freePort(), ws: await freePort(), http: await freePort() };
  const run = spawn(path.join(ROOT, 'scripts', 'run.sh'), [
    '--data', data, '--dist', dist, '--mqtts', 'off',
    '--mqtt', `127.0.0.1:${ports.mqtt}`, '--ws', `127.0.0.1:${ports.ws}`,
    '--http', `127.0.0.1:${ports.http}`,
  ], {
    cwd: ROOT,
    env: { ...process.env, FLEET_BIN: FLEET, FLEET_SKIP_WEB: '1',
      FLEET_SIM_DEVICES: String(DEVICES) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  run.stdout.on('data', (d) => { out += d; });
  run.stderr.on('data', (d) => { out += d; });
  const exited = new Promise((resolve) => run.once('exit', (code, signal) => resolve({ code, signal })));
  try {
    // Readings from every simulated device, stored by the stack on the given ports.
    const deadline = Date.now() + 60_000;
    let stored = NaN;
    let connected = NaN;
    while (Date.now() < deadline && !(stored > 0 && connected >= DEVICES)) {
      if (run.exitCode !== null) assert.fail(`run.sh exited early: ${out}`);
      await new Promise((r) => setTimeout(r, 250));
      stored = await counter(ports.http, 'fleet_readings_stored_total');
      connected = await counter(ports.http, 'fleet_mqtt_connected');
    }
    assert.ok(stored > 0 && connected >= DEVICES,
      `stored ${stored}, connected ${connected}: ${out}`);
    assert.match(out, new RegExp(`fleet sim: ${DEVICES} devices publishing to `
      + `mqtt://127\\.0\\.0\\.1:${ports.mqtt} .*http://127\\.0\\.0\\.1:${ports.http}/metrics`));
  } finally {
    run.kill('SIGTERM');
  }
  const { code } = await exited;
  try {
    assert.equal(code, 0, `a clean stop: ${out}`);
    assert.match(out, /local stack stopped/);
    for (const [name, port] of Object.entries(ports)) {
      assert.equal(await listening(port), false, `${name} is closed after the stop`);
    }
  } finally {
    rmSync(data, { recursive: true, force: true });
  }
});
