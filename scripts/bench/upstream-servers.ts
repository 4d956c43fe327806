// A lone agent following several upstream servers polled together (issue 18): how steady its
// frequency and its time are. The scenario is the disagreement part of lab/netns/upstream.ts:
// agent dis-3 (virtual clock started 1 s off, oscillator not detuned, --upstream-poll 1) polls two
// chronyd -x serving the host clock and one server 3 s ahead (a falseticker). Namespaces share the
// host clock, so clock.hostOffsetNs is its distance to the upstream and its frequency should stay
// near 0. Before the master steered once per sample of its system peer, this agent's frequency
// swung between the +-500 ppm limits and its time wandered by ms.
//
// A benchmark, not a test: it reports; it fails only when the run cannot be made. Needs root for
// the namespaces and a chronyd binary. Agents run --clock virtual: nothing touches this machine's clock.
//
//   npm run bench:upstream-servers -- [--settle-s 20] [--window-s 120] [--out bench-results/upstream-servers.json]
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname } from 'node:path';
import { parseArgs } from 'node:util';
import { netnsAvailable } from '../../lab/netns/netns.ts';
import { findChronyd } from '../../lab/ntp/chrony-q.ts';
import { UpstreamScenario, distribution, type AgentSample } from '../../lab/netns/upstream.ts';

function fail(message: string): never {
  process.stderr.write(`bench:upstream-servers: ${message}\n`);
  process.exit(2);
}

let parsed;
try {
  parsed = parseArgs({ options: { 'settle-s': { type: 'string', default: '20' }, 'window-s': { type: 'string', default: '120' }, out: { type: 'string', default: 'bench-results/upstream-servers.json' } } });
} catch (error) {
  fail((error as Error).message);
}
const { values } = parsed;
const settleS = Number(values['settle-s']);
const windowS = Number(values['window-s']);
if (!Number.isFinite(settleS) || settleS < 0 || settleS > 3600) fail(`--settle-s: must be 0..3600, got ${values['settle-s']}`);
if (!Number.isFinite(windowS) || windowS < 5 || windowS > 3600) fail(`--window-s: must be 5..3600, got ${values['window-s']}`);
const availability = netnsAvailable();
if (!availability.ok) fail(`needs network namespaces: ${availability.reason}`);
const chronyd = findChronyd();
if (!('path' in chronyd)) fail(chronyd.skip);

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const loadBefore = os.loadavg()[0] as number;
const scenario = await UpstreamScenario.start({ prefix: 'bus', agents: 1, withUpstream: [], disagreement: true, chronydBinary: chronyd.path, log: (line) => process.stderr.write(`${line}\n`) });
const window: AgentSample[] = [];
let followingAfterS: number | null = null;
try {
  const startedMs = Date.now();
  // Following, within 1 ms of the host.
  for (;;) {
    const three = (await scenario.disagreementSamples())[1] ?? null;
    if (three !== null && three.upstream?.mode === 'following' && Math.abs(three.hostOffsetNs) < 1e6) break;
    if (Date.now() - startedMs > 120_000) fail('dis-3 did not follow its upstreams within 120 s');
    await sleep(500);
  }
  followingAfterS = (Date.now() - startedMs) / 1000;
  await sleep(settleS * 1000);
  const endMs = Date.now() + windowS * 1000;
  while (Date.now() < endMs) {
    const three = (await scenario.disagreementSamples())[1] ?? null;
    if (three !== null) window.push(three);
    await sleep(1000);
  }
} finally {
  await scenario.close();
}
const frequency = distribution(window.map((sample) => Math.abs(sample.frequencyPpm)));
const offset = distribution(window.map((sample) => Math.abs(sample.hostOffsetNs) / 1000));
const corrections = window.length < 2 ? null : ((window.at(-1)?.upstream?.corrections ?? 0) - (window[0]?.upstream?.corrections ?? 0)) / windowS;
const steps = window.length < 2 ? null : (window.at(-1)?.steps ?? 0) - (window[0]?.steps ?? 0);
const result = { startedAt: new Date().toISOString(), settleS, windowS, followingAfterS, samples: window.length, frequencyAbsPpm: frequency, hostOffsetAbsUs: offset, correctionsPerS: corrections, stepsInWindow: steps, loadBefore, loadAfter: os.loadavg()[0] };
mkdirSync(dirname(values.out as string), { recursive: true });
writeFileSync(values.out as string, `${JSON.stringify(result, null, 2)}\n`);
const f = (value: number, digits: number) => value.toFixed(digits);
process.stdout.write(
  `lone agent, 2 chronyd + 1 falseticker, --upstream-poll 1: following (within 1 ms) after ${f(followingAfterS ?? Number.NaN, 1)} s; then ${settleS} s to settle and a ${windowS} s window (${window.length} samples)\n`
    + `  |frequency| ppm: p50 ${f(frequency.p50, 2)}, p90 ${f(frequency.p90, 2)}, max ${f(frequency.max, 2)}\n`
    + `  |hostOffset| us: p50 ${f(offset.p50, 1)}, p90 ${f(offset.p90, 1)}, max ${f(offset.max, 1)}\n`
    + `  corrections per second ${corrections === null ? '-' : f(corrections, 2)}, steps ${steps ?? '-'}; load ${f(loadBefore, 1)} -> ${f(os.loadavg()[0] as number, 1)}\n`
    + `  written to ${values.out}\n`,
);
