// Where the tests find the built web app, two builds of it:
// - builtDist(): FLEET_E2E_DIST, with relative asset URLs, as `fleet local` serves it at /;
// - builtSite(): FLEET_E2E_SITE, the GitHub Pages artefact: the same command the Pages
//   workflow runs (scripts/build-web.sh --public-url /<repo>/), here for PUBLIC_URL, which
//   the static-host tests serve it from.
// scripts/e2e.sh builds both once; without them a test builds its own into a temporary
// folder. pageHeaders() is what the template's page hosting adds to every response
// (scripts/page-headers.sh; FLEET_E2E_PAGE_HEADERS).
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, existsSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const PUBLIC_URL = '/fleet/';

export function builtDist() {
  return built('FLEET_E2E_DIST', []);
}

/** The Pages artefact: asset URLs under PUBLIC_URL, served there by a plain static server. */
export function builtSite() {
  return built('FLEET_E2E_SITE', ['--public-url', PUBLIC_URL]);
}

/**
 * The page hosting's response headers (header → value), with the template's `${AWS::Region}`
 * and `${IoTEndpoint}` filled in.
 */
export function pageHeaders({ region, endpoint }) {
  const json = process.env.FLEET_E2E_PAGE_HEADERS
    ?? execFileSync(path.join(ROOT, 'scripts', 'page-headers.sh'), { encoding: 'utf8' });
  const headers = JSON.parse(json);
  for (const [name, value] of Object.entries(headers)) {
    headers[name] = value.replaceAll('${AWS::Region}', region).replaceAll('${IoTEndpoint}', endpoint);
    if (headers[name].includes('${')) throw new Error(`${name}: a template variable is left: ${headers[name]}`);
  }
  return headers;
}

function built(variable, args) {
  const given = process.env[variable];
  if (given) {
    const dist = path.resolve(ROOT, given);
    if (!existsSync(path.join(dist, 'index.html'))) {
      throw new Error(`${variable}=${given}: no index.html there`);
    }
    return dist;
  }
  const dist = mkdtempSync(path.join(tmpdir(), 'fleet-e2e-dist-'));
  process.on('exit', () => rmSync(dist, { recursive: true, force: true }));
  const build = spawnSync(
    path.join(ROOT, 'scripts', 'build-web.sh'),
    [...args, '--dist', dist],
    { cwd: ROOT, stdio: ['ignore', 'inherit', 'inherit'], timeout: 20 * 60 * 1000 },
  );
  if (build.status !== 0) throw new Error(`scripts/build-web.sh failed (${build.status ?? build.signal})`);
  return dist;
}
