// Records every backward step of this machine's CLOCK_REALTIME, for the lab's tests.
// Usage: node clock-monitor.mjs OUT.json [intervalMs]
//
// A slew or a frequency change moves CLOCK_REALTIME and CLOCK_MONOTONIC alike; only a step moves
// REALTIME alone. So every interval the monitor reads MONOTONIC, REALTIME, MONOTONIC (clock_gettime,
// ns) and follows gap = REALTIME - mid(MONOTONIC), known to within half the time between the two
// MONOTONIC reads (a guest's system call can take milliseconds when the host is busy). A backward
// step is the gap falling by more than both readings' uncertainty plus NOISE_NS, or REALTIME
// itself reading less than before. It rewrites OUT.json (atomically) every second.
import { renameSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';

const out = process.argv[2];
const intervalMs = Number(process.argv[3] ?? 20);
if (!out || !(intervalMs > 0)) {
  console.error('usage: node clock-monitor.mjs OUT.json [intervalMs]');
  process.exit(2);
}
// koffi comes with the installed agent (it binds adjtimex there).
const require = createRequire('/usr/local/lib/node_modules/berkeley-agent/package.json');
const koffi = require('koffi');
const libc = koffi.load('libc.so.6');
const Timespec = koffi.struct('lab_timespec', { tv_sec: 'int64', tv_nsec: 'int64' });
const clockGettime = libc.func('int clock_gettime(int, _Out_ lab_timespec *)');
const CLOCK_REALTIME = 0;
const CLOCK_MONOTONIC = 1;
/** A fall of the gap this much beyond the readings' own uncertainty is a step. */
const NOISE_NS = 20_000n;
const STEPS_KEPT_MAX = 100;

function read(clock) {
  const ts = {};
  if (clockGettime(clock, ts) !== 0) throw new Error(`clock_gettime(${clock}) failed`);
  return BigInt(ts.tv_sec) * 1_000_000_000n + BigInt(ts.tv_nsec);
}

const startedNs = read(CLOCK_REALTIME);
let samples = 0;
let stepsBackward = 0;
const steps = [];

/** REALTIME - MONOTONIC, and how far off that can be from reading the clocks at two moments. */
function gapNow() {
  const before = read(CLOCK_MONOTONIC);
  const realNs = read(CLOCK_REALTIME);
  const after = read(CLOCK_MONOTONIC);
  return { realNs, gapNs: realNs - (before + after) / 2n, uncertaintyNs: (after - before) / 2n + 1n };
}

let previous = gapNow();
let worstFallBeyondMarginNs = 0n;

function sample() {
  const now = gapNow();
  const fallNs = previous.gapNs - now.gapNs;
  const marginNs = previous.uncertaintyNs + now.uncertaintyNs + NOISE_NS;
  if (fallNs - marginNs > worstFallBeyondMarginNs) worstFallBeyondMarginNs = fallNs - marginNs;
  if (fallNs > marginNs || now.realNs < previous.realNs) {
    stepsBackward += 1;
    if (steps.length < STEPS_KEPT_MAX) steps.push({ atRealNs: String(now.realNs), stepNs: String(-fallNs), marginNs: String(marginNs), realWentBack: now.realNs < previous.realNs });
  }
  previous = now;
  samples += 1;
}

function save() {
  const report = { startedNs: String(startedNs), savedNs: String(read(CLOCK_REALTIME)), intervalMs, samples, stepsBackward, worstFallBeyondMarginNs: String(worstFallBeyondMarginNs), steps };
  writeFileSync(`${out}.tmp`, `${JSON.stringify(report)}\n`);
  renameSync(`${out}.tmp`, out);
}

setInterval(sample, intervalMs);
setInterval(save, 1000);
save();
