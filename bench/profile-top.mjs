// Self and total time per function of a V8 .cpuprofile (CDP Profiler.stop), as written by
// `node bench/driver.mjs --profile DIR`. Usage: node bench/profile-top.mjs FILE [--top 25]
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

const { values: opt, positionals } = parseArgs({
  allowPositionals: true,
  options: { top: { type: 'string', default: '25' } },
});
const profile = JSON.parse(readFileSync(positionals[0], 'utf8'));

const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const parent = new Map();
for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);

// Sample counts per node, weighted by the time between samples.
const selfUs = new Map();
for (let i = 0; i < profile.samples.length; i++) {
  const dt = profile.timeDeltas[i + 1] ?? 0;
  selfUs.set(profile.samples[i], (selfUs.get(profile.samples[i]) ?? 0) + dt);
}
const total = [...selfUs.values()].reduce((a, b) => a + b, 0);

const key = (n) => {
  const f = n.callFrame;
  const file = f.url ? f.url.split('/').pop() : '';
  return `${f.functionName || '(anonymous)'} ${file}${f.url ? `:${f.lineNumber + 1}` : ''}`;
};
const self = new Map();
const inclusive = new Map();
for (const [id, us] of selfUs) {
  const n = byId.get(id);
  self.set(key(n), (self.get(key(n)) ?? 0) + us);
  // Each function counted once per stack, however deep it recurses.
  const seen = new Set();
  for (let cur = id; cur !== undefined; cur = parent.get(cur)) {
    const k = key(byId.get(cur));
    if (seen.has(k)) continue;
    seen.add(k);
    inclusive.set(k, (inclusive.get(k) ?? 0) + us);
  }
}
const pct = (us) => `${((100 * us) / total).toFixed(1).padStart(5)}%`;
const top = Number(opt.top);
console.log(`${positionals[0]}: ${(total / 1000).toFixed(0)} ms sampled\n\nself:`);
for (const [k, us] of [...self].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`${pct(us)}  ${k}`);
console.log('\ntotal (self + callees):');
for (const [k, us] of [...inclusive].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`${pct(us)}  ${k}`);
