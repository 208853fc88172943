// What the long tasks of a V8 CPU profile spent their time on. The long tasks are those the
// page reported (FILE.long.json beside the profile, written by `longtasks.mjs --profile`:
// start in ms into the profile, within a CDP round trip, and length); without that file, a
// run of samples with no "(idle)" sample in it lasting over --over ms. For each one: its
// start, its length, and the functions with the most self time in it; then the same
// totalled over all of them.
// Usage: node e2e/bench/long-profile.mjs FILE.cpuprofile [--top 15] [--over 50]
import { existsSync, readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

const { values: opt, positionals } = parseArgs({
  allowPositionals: true,
  options: { top: { type: 'string', default: '15' }, over: { type: 'string', default: '50' } },
});
if (positionals.length !== 1) throw new Error('usage: long-profile.mjs FILE.cpuprofile [--top N] [--over MS]');
const profile = JSON.parse(readFileSync(positionals[0], 'utf8'));
const top = Number(opt.top);
const overMs = Number(opt.over);

const nodes = new Map(profile.nodes.map((n) => [n.id, n]));
const parent = new Map();
for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
const label = (n) => `${n.callFrame.functionName || '(anonymous)'} ${n.callFrame.url.split('/').pop()}:${n.callFrame.lineNumber}`;
const idle = (id) => nodes.get(id).callFrame.functionName === '(idle)';

// Sample i lasts until the next one.
const samples = profile.samples;
const deltas = profile.timeDeltas;
let t = 0;
const at = samples.map((_, i) => (t += deltas[i]) / 1000);
const runs = [];
const reported = positionals[0].replace(/\.cpuprofile$/, '.long.json');
if (existsSync(reported)) {
  // The samples from 5 ms before each reported task to 5 ms after it.
  for (const { at: from, ms } of JSON.parse(readFileSync(reported, 'utf8'))) {
    const a = at.findIndex((t) => t >= from - 5);
    const b = at.findIndex((t) => t > from + ms + 5);
    if (a >= 0) runs.push([a, b < 0 ? samples.length - 1 : b]);
  }
} else {
  let start = -1;
  for (let i = 0; i < samples.length; i++) {
    if (!idle(samples[i])) {
      if (start < 0) start = i;
    } else if (start >= 0) {
      if (at[i] - at[start] > overMs) runs.push([start, i]);
      start = -1;
    }
  }
}

const table = (self, total) => [...self.entries()].sort((a, b) => b[1] - a[1]).slice(0, top)
  .map(([k, ms]) => `  ${ms.toFixed(1).padStart(7)} ms ${(100 * ms / total).toFixed(0).padStart(3)}%  ${k}`).join('\n');
const all = new Map();
let allMs = 0;
for (const [a, b] of runs) {
  const self = new Map();
  const stacks = new Map();
  for (let i = a; i < b; i++) {
    const ms = at[i + 1] - at[i];
    const n = nodes.get(samples[i]);
    self.set(label(n), (self.get(label(n)) ?? 0) + ms);
    all.set(label(n), (all.get(label(n)) ?? 0) + ms);
    // The sample's top three JS frames below the root, for context.
    const chain = [];
    for (let id = samples[i]; id !== undefined && chain.length < 40; id = parent.get(id)) chain.push(nodes.get(id).callFrame.functionName || '(anon)');
    const key = chain.reverse().slice(1, 6).join(' > ');
    stacks.set(key, (stacks.get(key) ?? 0) + ms);
  }
  const ms = at[b] - at[a];
  allMs += ms;
  console.log(`long task at ${at[a].toFixed(0)} ms: ${ms.toFixed(1)} ms`);
  console.log(table(self, ms));
  console.log('  by outer stack:');
  console.log(table(stacks, ms));
}
console.log(`${runs.length} long tasks, ${allMs.toFixed(0)} ms; self time over all of them:`);
console.log(table(all, allMs));
