// Debian's Chromium driven by playwright-core (never `npx playwright install`: it downloads a
// browser build). Headless; --no-sandbox because the tests run as root.
import { chromium } from 'playwright-core';

export const CHROMIUM = process.env.FLEET_CHROMIUM ?? '/usr/bin/chromium';

export function launchChromium() {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
    ],
  });
}

/**
 * Records what a page reports as broken: console messages of type error, uncaught page
 * errors, and failed requests. `unexpected(allowed)` returns the ones no pattern in
 * `allowed` (RegExps, each for an error the test provokes on purpose) matches.
 */
export function watchErrors(page) {
  const errors = [];
  page.on('console', (msg) => {
    if (msg.type() === 'error') {
      const loc = msg.location();
      errors.push(`console.error: ${msg.text()}${loc?.url ? ` (${loc.url}:${loc.lineNumber})` : ''}`);
    }
  });
  page.on('pageerror', (err) => errors.push(`pageerror: ${err.stack ?? err}`));
  page.on('requestfailed', (req) =>
    errors.push(`requestfailed: ${req.url()} ${req.failure()?.errorText ?? ''}`),
  );
  return {
    errors,
    unexpected: (allowed = []) => errors.filter((e) => !allowed.some((re) => re.test(e))),
  };
}

/** The first integer in an element's text ("1,234 cmds" -> 1234), or NaN. */
export function firstInt(text) {
  const m = String(text ?? '').replace(/[,_\u00a0\u202f']/g, '').match(/\d+/);
  return m ? Number(m[0]) : NaN;
}
