// Where the tests find the built web app: FLEET_E2E_DIST (scripts/e2e.sh builds it once, with
// relative asset URLs), or else a fresh release build into a temporary folder. PUBLIC_URL is
// the sub-path the static-host tests serve it from.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, existsSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const PUBLIC_URL = '/fleet/';

export function builtDist() {
  const given = process.env.FLEET_E2E_DIST;
  if (given) {
    const dist = path.resolve(ROOT, given);
    if (!existsSync(path.join(dist, 'index.html'))) {
      throw new Error(`FLEET_E2E_DIST=${given}: no index.html there`);
    }
    return dist;
  }
  const dist = mkdtempSync(path.join(tmpdir(), 'fleet-e2e-dist-'));
  process.on('exit', () => rmSync(dist, { recursive: true, force: true }));
  const build = spawnSync(
    path.join(ROOT, 'scripts', 'build-web.sh'),
    ['--dist', dist],
    { cwd: ROOT, stdio: ['ignore', 'inherit', 'inherit'], timeout: 20 * 60 * 1000 },
  );
  if (build.status !== 0) throw new Error(`scripts/build-web.sh failed (${build.status ?? build.signal})`);
  return dist;
}
