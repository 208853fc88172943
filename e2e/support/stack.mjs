// `fleet local` for the browser tests: a free loopback port, the stack started on given
// ports (so a test can kill it and bring it back on the same ones), and its refusal
// counters from /metrics.
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import path from 'node:path';
import { ROOT } from './dist.mjs';

/** The `fleet` binary under test (`FLEET_BIN`, else the workspace's debug build). */
export const FLEET = process.env.FLEET_BIN ?? path.join(ROOT, 'target', 'debug', 'fleet');

/** A free loopback port: the OS's choice, released for the caller to bind. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/**
 * Starts `fleet local` with its data in `data`, WebSocket and HTTP on `ports` (`{ ws, http }`),
 * serving `dist`, without the TCP and TLS listeners; `extra` are more flags, `fleet` another
 * binary than `FLEET`. Resolves with
 * the child once it prints its banner (`child.output()`: what it printed so far, log
 * included); rejects with its output if it exits or takes 30 s.
 */
export function startStack({ data, ports, dist, extra = [], fleet = FLEET }) {
  const child = spawn(fleet, ['local', '--data', data, '--mqtt', 'off', '--mqtts', 'off',
    '--ws', `127.0.0.1:${ports.ws}`, '--http', `127.0.0.1:${ports.http}`, '--dist', dist,
    ...extra],
  { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d) => { out += d; });
  child.stderr.on('data', (d) => { out += d; });
  child.output = () => out;
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`fleet local did not start: ${out}`)), 30_000);
    child.stdout.on('data', () => {
      if (out.includes('Stop with Ctrl-C')) {
        clearTimeout(timer);
        resolve(child);
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`fleet local exited (${code}): ${out}`));
    });
  });
}

/** The stack's refusal counters: `{ "connect/origin_not_allowed": n, … }`. */
export async function refusals(httpPort) {
  const text = await (await fetch(`http://127.0.0.1:${httpPort}/metrics`)).text();
  const counts = {};
  for (const m of text.matchAll(/^fleet_mqtt_refusals_total\{action="(\w+)",reason="(\w+)"\} (\d+)/gm)) {
    counts[`${m[1]}/${m[2]}`] = Number(m[3]);
  }
  return counts;
}
