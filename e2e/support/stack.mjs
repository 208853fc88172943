// `fleet local` as a child process for the tests and benchmarks that need a real stack:
// loopback listeners on free ports (MQTT over TCP and TLS off unless asked), a scratch data
// directory, the built app from `dist`. Resolves once the banner says where it listens.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

/**
 * Starts `fleet` (`local`) serving `dist`; `args` are more `fleet local` flags. Returns
 * `{ child, http, ws, log(), stop() }`: `http` is the web app's origin
 * (`http://127.0.0.1:PORT`), `ws` the WebSocket URL, `log()` what it printed so far, and
 * `stop()` ends it and removes its data directory.
 */
export function startStack({ fleet, dist, args = [] }) {
  const data = mkdtempSync(path.join(tmpdir(), 'fleet-e2e-stack-'));
  const child = spawn(fleet, ['local', '--data', data, '--mqtt', 'off', '--mqtts', 'off',
    '--ws', '127.0.0.1:0', '--http', '127.0.0.1:0', '--dist', dist, '--log-format', 'text',
    ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d) => { out += d; });
  child.stderr.on('data', (d) => { out += d; });
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    }
    rmSync(data, { recursive: true, force: true });
  };
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      stop();
      reject(new Error(`fleet local did not start: ${out}`));
    }, 30_000);
    const started = () => {
      if (!out.includes('Stop with Ctrl-C')) return;
      clearTimeout(timer);
      child.stdout.off('data', started);
      resolve({
        child,
        http: out.match(/Web app +(http:\/\/[^ /]+)\//)?.[1],
        ws: out.match(/WebSocket +(ws:\/\/\S+)/)?.[1],
        log: () => out,
        stop,
      });
    };
    child.stdout.on('data', started);
    child.once('exit', (code) => {
      clearTimeout(timer);
      rmSync(data, { recursive: true, force: true });
      reject(new Error(`fleet local exited (${code}): ${out}`));
    });
  });
}
