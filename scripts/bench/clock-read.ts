// What a reading of the virtual clock costs (issue 17, "Beside chrony"): the virtual clock counts
// from CLOCK_MONOTONIC_RAW through one koffi clock_gettime call per reading, where it used to count
// from the host clock (hrtime plus an anchor). Times, in ns per call (best of --rounds rounds of
// --reads calls each, after a warm-up): the raw sources, the host clock, and the virtual-clock
// driver's nowNs(), atHostNs() (an arrival stamp onto the clock) and state() over each base; over
// RAW the last two pair RAW with the host clock (the tightest of VIRTUAL_BASE_PAIR_READS brackets). Reads clocks only; never sets one.
//
//   npx tsx scripts/bench/clock-read.ts [--reads 1000000] [--rounds 5] [--out bench-results/clock-read.json]
//
// A benchmark reports; it never fails on a number.
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { HostClock } from '../../src/clock/host.ts';
import { openMonotonicRaw } from '../../src/clock/raw.ts';
import { VirtualClockDriver } from '../../src/clock/virtual-driver.ts';

function fail(message: string): never {
  console.error(`clock-read bench: ${message}`);
  process.exit(2);
}

let parsed;
try {
  parsed = parseArgs({ options: {
    reads: { type: 'string', default: '1000000' },
    rounds: { type: 'string', default: '5' },
    out: { type: 'string', default: 'bench-results/clock-read.json' },
  } });
} catch (error) {
  fail((error as Error).message);
}
const reads = Number(parsed.values.reads);
const rounds = Number(parsed.values.rounds);
if (!Number.isInteger(reads) || reads < 1000) fail(`--reads must be an integer >= 1000, got ${parsed.values.reads}`);
if (!Number.isInteger(rounds) || rounds < 1) fail(`--rounds must be a positive integer, got ${parsed.values.rounds}`);

const raw = openMonotonicRaw();
if ('error' in raw) fail(`cannot read CLOCK_MONOTONIC_RAW: ${raw.error}`);
const host = new HostClock();
const overRaw = new VirtualClockDriver(host, { initialOffsetNs: 0, driftPpm: 10, rawNs: raw.nowNs });
const overHost = new VirtualClockDriver(host, { initialOffsetNs: 0, driftPpm: 10, rawNs: null });

/** Best ns per call over the rounds (the least disturbed by the rest of the machine). */
function timeIt(read: () => unknown): number {
  let sink = 0;
  for (let i = 0; i < Math.min(reads, 100_000); i += 1) sink ^= read() === null ? 1 : 0;
  let bestNs = Infinity;
  for (let round = 0; round < rounds; round += 1) {
    const startNs = process.hrtime.bigint();
    for (let i = 0; i < reads; i += 1) sink ^= read() === null ? 1 : 0;
    bestNs = Math.min(bestNs, Number(process.hrtime.bigint() - startNs) / reads);
  }
  if (sink === 42) console.log(''); // keep the reads from being optimized away
  return Math.round(bestNs * 10) / 10;
}

const stampNs = host.nowNs() - 50_000n; // an arrival stamp 50 us old
const results: Record<string, number> = {
  'process.hrtime.bigint()': timeIt(() => process.hrtime.bigint()),
  'clock_gettime(CLOCK_MONOTONIC_RAW) via koffi': timeIt(raw.nowNs),
  'HostClock.nowNs()': timeIt(() => host.nowNs()),
  'virtual nowNs(), base host (before)': timeIt(() => overHost.nowNs()),
  'virtual nowNs(), base monotonic-raw (after)': timeIt(() => overRaw.nowNs()),
  'virtual atHostNs(stamp), base host (before)': timeIt(() => overHost.atHostNs(stampNs)),
  'virtual atHostNs(stamp), base monotonic-raw (after)': timeIt(() => overRaw.atHostNs(stampNs)),
  'virtual state(), base host (before)': timeIt(() => overHost.state()),
  'virtual state(), base monotonic-raw (after)': timeIt(() => overRaw.state()),
};

console.log(`ns per call, best of ${rounds} rounds of ${reads} calls (node ${process.version}, ${process.arch})`);
const width = Math.max(...Object.keys(results).map((name) => name.length));
for (const [name, ns] of Object.entries(results)) console.log(`  ${name.padEnd(width)}  ${ns.toFixed(1).padStart(7)}`);
mkdirSync(path.dirname(parsed.values.out), { recursive: true });
writeFileSync(parsed.values.out, `${JSON.stringify({ reads, rounds, node: process.version, arch: process.arch, nsPerCall: results }, null, 2)}\n`);
console.log(`written to ${parsed.values.out}`);
