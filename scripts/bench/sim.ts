// Simulated precision benchmark: how closely the agents' clocks agree, in the seeded simulator, at
// 8, 32 and 128 nodes. Scenario (from the issue): machine clocks within +-100 ppm with a slow
// random wander, one-way latency 100 us plus exponential jitter (mean 50 us), 1% loss, 1 s poll
// interval, clocks starting up to 2 s apart. Per node count and seed it measures
//   - the steady-state spread (max - min of every live node's clock read at the same simulated
//     instant, sampled every 100 ms over a window after convergence): p50/p99/max;
//   - the time from the start until the spread is first under 1 ms, and until it stays under 1 ms
//     (and under 100 us), and the largest spread on the way (the frequency loop's pull-in);
//   - the master crashing without a LEAVE at a steady instant: the spread over the 30 s after
//     (p50/p99/max, and exactly at +30 s) and the time to the new master's first correction;
//   - the range of machine drifts and of disciplined rates (drift plus the discipline's frequency):
//     the spread grows by about the latter, in us per second, between corrections;
//   - simulated seconds per wall second (the cost of the run).
// True time is known in the simulator, so the spread is exact; the numbers depend only on the seed,
// not on this machine's load (only the wall time does). Prints a table, writes JSON.
//
//   npx tsx scripts/bench/sim.ts [--nodes 8,32,128] [--seeds 3] [--out bench-results/sim.json] [--check] [--drift-ppm 100]
//
// --check turns the simulator's invariant checks on (about 1.7x slower, same numbers: the checker
// draws no random numbers). --drift-ppm 0 is the control run: the measurement floor without drift.
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { performance } from 'node:perf_hooks';
import { Simulation, type SimClockSpec, type SimNetworkSpec, type SimNodeSpec } from '../../src/sim/simulation.ts';
import { SeededRandom } from '../../src/sim/random.ts';
import { POLL_INTERVAL_MS_DEFAULT } from '../../src/core/limits.ts';

export interface SimBenchWindows {
  /** Steady-state spread is sampled over [steadyFromMs, steadyToMs); the master crashes just after steadyToMs. */
  steadyFromMs: number;
  steadyToMs: number;
  /** Spread samples after the master's crash cover this long. */
  afterLossMs: number;
}

export interface SimBenchOptions {
  nodeCounts: number[];
  /** Seeds per node count: seedBase, seedBase + 1, ... */
  seeds: number;
  seedBase?: number;
  /** Windows for every node count (default 60-180 s steady, 30 s after the loss). */
  windows?: Partial<SimBenchWindows>;
  /** Per node count overrides (e.g. shorter windows for 128 nodes when a run is too slow). */
  windowsByNodes?: Record<number, Partial<SimBenchWindows>>;
  /**
   * Initial machine drifts uniform in +-this (default 100; wander still applies). 0 gives the
   * measurement floor: the spread left when the clocks do not drift apart between rounds.
   */
  driftPpm?: number;
  /** Sampling period of the spread, simulated ms. */
  sampleEveryMs?: number;
  /** Invariant checking in the simulator ('off' is the default: measurement, not testing). */
  check?: 'off' | 'throw';
  /** Called with a line per finished run (progress on long benchmarks). */
  onProgress?: (line: string) => void;
}

export interface Percentiles {
  p50: number;
  p99: number;
  max: number;
}

/** One seed at one node count. Spreads in ns, times in simulated ms unless named otherwise. */
export interface SimBenchRun {
  nodes: number;
  seed: number;
  windows: SimBenchWindows;
  /** First sample with the spread under 1 ms (null: never). */
  firstUnder1msMs: number | null;
  /** First sample after which the spread never exceeded 1 ms again before the crash (null: never settled). */
  settledUnder1msMs: number | null;
  /** The same for 100 us: the initial steps reach 1 ms at once, this shows how fast the loop settles. */
  settledUnder100usMs: number | null;
  /**
   * Largest spread from the first sample under 1 ms to the start of the steady window: while the
   * frequency loop pulls in, a partial phase correction lets the clocks drift apart again.
   */
  pullInSpreadNsMax: number;
  steadySpreadNs: Percentiles;
  steadySamples: number;
  /** Fastest minus slowest machine clock at the crash: the spread grows by about this many us per second without corrections. */
  driftRangePpm: number;
  /**
   * Fastest minus slowest disciplined clock at the crash (machine drift plus the discipline's
   * frequency, slews left out): what is left for the rounds to correct. null when the simulator
   * does not report a frequency.
   */
  rateRangePpm: number | null;
  masterLost: string;
  crashAtMs: number;
  /** Spread at the instant of the crash (the last steady reading). */
  spreadAtCrashNs: number;
  afterLossSpreadNs: Percentiles;
  /** Spread exactly afterLossMs after the crash. */
  spreadAtAfterLossEndNs: number;
  newMaster: string | null;
  /** Crash to the first round completed by the new master (its own correction; members get theirs one latency later). */
  newMasterFirstCorrectionMs: number | null;
  simulatedSeconds: number;
  wallSeconds: number;
  simSecondsPerWallSecond: number;
}

/** One node count: spread percentiles pooled over its seeds' samples, times and the +30 s spread from the worst seed. */
export interface SimBenchRow {
  nodes: number;
  seeds: number[];
  windows: SimBenchWindows;
  /** Worst seed; null if some seed never got there. */
  firstUnder1msMsMax: number | null;
  settledUnder1msMsMax: number | null;
  settledUnder100usMsMax: number | null;
  pullInSpreadNsMax: number;
  steadySpreadNs: Percentiles;
  afterLossSpreadNs: Percentiles;
  spreadAtAfterLossEndNsMax: number;
  driftRangePpmMax: number;
  rateRangePpmMax: number | null;
  newMasterFirstCorrectionMsMax: number | null;
  simSecondsPerWallSecond: number;
  wallSecondsPerSeed: number;
}

export interface SimBenchResult {
  benchmark: 'sim';
  when: string;
  scenario: {
    network: Partial<SimNetworkSpec>;
    clock: Partial<SimClockSpec>;
    /** Initial machine clock offsets uniform in +-this, so any two clocks start up to twice this apart. */
    initialOffsetMsMax: number;
    /** Initial drifts uniform in +-this (the clock spec's driftPpmMax bounds the wander). */
    driftPpm: number;
    pollIntervalMs: number;
    sampleEveryMs: number;
    check: 'off' | 'throw';
    note: string;
  };
  rows: SimBenchRow[];
  runs: SimBenchRun[];
  wallSeconds: number;
}

const NETWORK: Partial<SimNetworkSpec> = { latencyMs: 0.1, jitterMeanMs: 0.05, lossRate: 0.01 };
// Wander: +-0.1 ppm every 4 s is a random walk of about 0.4 ppm over 3 minutes, a quartz in a
// slowly warming room.
const CLOCK: Partial<SimClockSpec> = { driftPpmMax: 100, wanderPpmPerStep: 0.1, wanderStepMs: 4000 };
const INITIAL_OFFSET_MS_MAX = 1000;
const SPREAD_NS_1MS = 1e6;
const SPREAD_NS_100US = 1e5;
const WINDOWS_DEFAULT: SimBenchWindows = { steadyFromMs: 60_000, steadyToMs: 180_000, afterLossMs: 30_000 };
const SAMPLE_EVERY_MS_DEFAULT = 100;

function percentiles(values: number[]): Percentiles {
  const sorted = Float64Array.from(values).sort();
  const at = (fraction: number) => sorted[Math.min(sorted.length - 1, Math.floor(fraction * sorted.length))] ?? Number.NaN;
  return { p50: at(0.5), p99: at(0.99), max: sorted.length === 0 ? Number.NaN : (sorted[sorted.length - 1] as number) };
}

function nodeSpecs(nodes: number, seed: number, driftPpm: number): SimNodeSpec[] {
  // Own stream for the scenario, so drawing it does not shift the simulation's random choices.
  const random = new SeededRandom((seed ^ 0x5eed_b0b5) >>> 0);
  return Array.from({ length: nodes }, (_, index) => ({
    nodeId: `n${String(index).padStart(3, '0')}`,
    initialOffsetNs: random.between(-INITIAL_OFFSET_MS_MAX, INITIAL_OFFSET_MS_MAX) * 1e6,
    driftPpm: random.between(-driftPpm, driftPpm),
  }));
}

/** A run's result and its raw spread samples (pooled over seeds, left out of the JSON). */
interface Measured {
  run: SimBenchRun;
  steadyNs: number[];
  afterLossNs: number[];
}

interface MeasureOptions {
  windows: SimBenchWindows;
  sampleEveryMs: number;
  driftPpm: number;
  check: 'off' | 'throw';
}

/**
 * Range of machine drift plus frequency correction over the live nodes. Read through an optional
 * field: the frequency discipline is new and the simulator before it reports no frequency.
 */
function disciplinedRateRangePpm(sim: Simulation): number | null {
  const ratesPpm: number[] = [];
  for (const id of sim.liveNodeIds()) {
    const frequencyPpm = (sim.clockReport(id) as { frequencyPpm?: number }).frequencyPpm;
    if (typeof frequencyPpm !== 'number') return null;
    ratesPpm.push(sim.driftPpm(id) + frequencyPpm);
  }
  return ratesPpm.length === 0 ? null : Math.max(...ratesPpm) - Math.min(...ratesPpm);
}

function measure(nodes: number, seed: number, { windows, sampleEveryMs, driftPpm, check }: MeasureOptions): Measured {
  const startedMs = performance.now();
  const sim = new Simulation({ seed, nodes: nodeSpecs(nodes, seed, driftPpm), discoverAll: true, network: NETWORK, clock: CLOCK, check, config: { pollIntervalMs: POLL_INTERVAL_MS_DEFAULT } });

  // Convergence and steady state, from the start.
  let firstUnder1msMs: number | null = null;
  let lastOver1msMs: number | null = null;
  let lastOver100usMs: number | null = null;
  let pullInSpreadNsMax = 0;
  const steady: number[] = [];
  for (let atMs = 0; atMs <= windows.steadyToMs; atMs += sampleEveryMs) {
    sim.runUntil(atMs);
    const spreadNs = sim.spreadNs();
    if (spreadNs < SPREAD_NS_1MS) firstUnder1msMs ??= atMs;
    else lastOver1msMs = atMs;
    if (spreadNs >= SPREAD_NS_100US) lastOver100usMs = atMs;
    if (firstUnder1msMs !== null && atMs < windows.steadyFromMs) pullInSpreadNsMax = Math.max(pullInSpreadNsMax, spreadNs);
    if (atMs >= windows.steadyFromMs && atMs < windows.steadyToMs) steady.push(spreadNs);
  }
  const lastSampleMs = Math.floor(windows.steadyToMs / sampleEveryMs) * sampleEveryMs;
  // The sample after the last one over the threshold; null when that was the last sample.
  const settledMs = (lastOverMs: number | null) => (lastOverMs === null ? 0 : lastOverMs + sampleEveryMs > lastSampleMs ? null : lastOverMs + sampleEveryMs);
  const settledUnder1msMs = settledMs(lastOver1msMs);
  const settledUnder100usMs = settledMs(lastOver100usMs);

  // Master loss at a seed-dependent phase of the poll cycle (kill -9: no LEAVE).
  sim.runUntil(windows.steadyToMs + sim.random.next() * POLL_INTERVAL_MS_DEFAULT);
  const masters = sim.masters();
  if (masters.length !== 1) throw new Error(`nodes ${nodes} seed ${seed}: ${masters.length} masters at the crash (${sim.liveNodeIds().length} live)`);
  const oldMaster = masters[0] as string;
  const oldTerm = sim.node(oldMaster)?.status().term ?? 0;
  const crashAtMs = sim.nowMs;
  const spreadAtCrashNs = sim.spreadNs();
  const driftsPpm = sim.liveNodeIds().map((id) => sim.driftPpm(id));
  const driftRangePpm = Math.max(...driftsPpm) - Math.min(...driftsPpm);
  const rateRangePpm = disciplinedRateRangePpm(sim);
  sim.crash(oldMaster);
  const afterLoss: number[] = [];
  let newMaster: string | null = null;
  let newMasterFirstCorrectionMs: number | null = null;
  let spreadAtAfterLossEndNs = Number.NaN;
  for (let sinceMs = sampleEveryMs; sinceMs <= windows.afterLossMs; sinceMs += sampleEveryMs) {
    sim.runUntil(crashAtMs + sinceMs);
    const spreadNs = sim.spreadNs();
    afterLoss.push(spreadNs);
    spreadAtAfterLossEndNs = spreadNs;
    if (newMasterFirstCorrectionMs === null) {
      // Rounds are a poll interval apart and we look every sample: the round seen first is the first.
      const current = sim.masters();
      const status = current.length === 1 ? sim.node(current[0] as string)?.status() : undefined;
      if (status && status.term > oldTerm && status.lastRound !== null && status.lastRound.term === status.term) {
        newMaster = status.nodeId;
        newMasterFirstCorrectionMs = status.lastRound.atMs - crashAtMs;
      }
    }
  }
  const wallSeconds = (performance.now() - startedMs) / 1000;
  const simulatedSeconds = sim.nowMs / 1000;
  const run: SimBenchRun = {
    nodes,
    seed,
    windows,
    firstUnder1msMs,
    settledUnder1msMs,
    settledUnder100usMs,
    pullInSpreadNsMax,
    steadySpreadNs: percentiles(steady),
    steadySamples: steady.length,
    driftRangePpm,
    rateRangePpm,
    masterLost: oldMaster,
    crashAtMs,
    spreadAtCrashNs,
    afterLossSpreadNs: percentiles(afterLoss),
    spreadAtAfterLossEndNs,
    newMaster,
    newMasterFirstCorrectionMs,
    simulatedSeconds,
    wallSeconds,
    simSecondsPerWallSecond: simulatedSeconds / wallSeconds,
  };
  return { run, steadyNs: steady, afterLossNs: afterLoss };
}

/** Largest value, or null when any is null (a seed that never got there). */
function worst(values: (number | null)[]): number | null {
  return values.some((value) => value === null) ? null : Math.max(...(values as number[]));
}

export function runSimBench(options: SimBenchOptions): SimBenchResult {
  const startedMs = performance.now();
  const seedBase = options.seedBase ?? 1000;
  const sampleEveryMs = options.sampleEveryMs ?? SAMPLE_EVERY_MS_DEFAULT;
  const check = options.check ?? 'off';
  const driftPpm = options.driftPpm ?? (CLOCK.driftPpmMax as number);
  if (!(driftPpm >= 0 && driftPpm <= (CLOCK.driftPpmMax as number))) throw new Error(`driftPpm ${driftPpm} outside 0..${CLOCK.driftPpmMax}`);
  const runs: SimBenchRun[] = [];
  const rows: SimBenchRow[] = [];
  for (const nodes of options.nodeCounts) {
    const windows: SimBenchWindows = { ...WINDOWS_DEFAULT, ...options.windows, ...options.windowsByNodes?.[nodes] };
    const steady: number[] = [];
    const afterLoss: number[] = [];
    const mine: SimBenchRun[] = [];
    for (let index = 0; index < options.seeds; index += 1) {
      const seed = seedBase + index;
      const { run, steadyNs, afterLossNs } = measure(nodes, seed, { windows, sampleEveryMs, driftPpm, check });
      mine.push(run);
      runs.push(run);
      // Every seed gives as many samples, so pooling weighs the seeds equally.
      steady.push(...steadyNs);
      afterLoss.push(...afterLossNs);
      options.onProgress?.(
        `nodes ${nodes} seed ${seed}: steady p50/p99/max ${us(run.steadySpreadNs.p50)}/${us(run.steadySpreadNs.p99)}/${us(run.steadySpreadNs.max)} us, ` +
          `settled <1 ms at ${seconds(run.settledUnder1msMs)} s, <100 us at ${seconds(run.settledUnder100usMs)} s, pull-in max ${us(run.pullInSpreadNsMax)} us, after loss max ${us(run.afterLossSpreadNs.max)} us, ` +
          `new master's first round +${run.newMasterFirstCorrectionMs?.toFixed(0) ?? '-'} ms, drift range ${run.driftRangePpm.toFixed(1)} ppm, disciplined ${run.rateRangePpm?.toFixed(2) ?? '-'} ppm; ` +
          `${run.wallSeconds.toFixed(1)} s wall, ${run.simSecondsPerWallSecond.toFixed(1)} sim s/wall s`,
      );
    }
    const simulatedSeconds = mine.reduce((sum, run) => sum + run.simulatedSeconds, 0);
    const wallSeconds = mine.reduce((sum, run) => sum + run.wallSeconds, 0);
    rows.push({
      nodes,
      seeds: mine.map((run) => run.seed),
      windows,
      firstUnder1msMsMax: worst(mine.map((run) => run.firstUnder1msMs)),
      settledUnder1msMsMax: worst(mine.map((run) => run.settledUnder1msMs)),
      settledUnder100usMsMax: worst(mine.map((run) => run.settledUnder100usMs)),
      pullInSpreadNsMax: Math.max(...mine.map((run) => run.pullInSpreadNsMax)),
      steadySpreadNs: percentiles(steady),
      afterLossSpreadNs: percentiles(afterLoss),
      spreadAtAfterLossEndNsMax: Math.max(...mine.map((run) => run.spreadAtAfterLossEndNs)),
      driftRangePpmMax: Math.max(...mine.map((run) => run.driftRangePpm)),
      rateRangePpmMax: worst(mine.map((run) => run.rateRangePpm)),
      newMasterFirstCorrectionMsMax: worst(mine.map((run) => run.newMasterFirstCorrectionMs)),
      simSecondsPerWallSecond: simulatedSeconds / wallSeconds,
      wallSecondsPerSeed: wallSeconds / mine.length,
    });
  }
  return {
    benchmark: 'sim',
    when: new Date().toISOString(),
    scenario: {
      network: NETWORK,
      clock: CLOCK,
      initialOffsetMsMax: INITIAL_OFFSET_MS_MAX,
      driftPpm,
      pollIntervalMs: POLL_INTERVAL_MS_DEFAULT,
      sampleEveryMs,
      check,
      note: 'spread = max - min of all live clocks at one simulated instant; row percentiles pool the samples of all seeds, row times and the +30 s spread are the worst seed',
    },
    rows,
    runs,
    wallSeconds: (performance.now() - startedMs) / 1000,
  };
}

function us(ns: number): string {
  return Number.isFinite(ns) ? (ns / 1000).toFixed(0) : '-';
}

function seconds(ms: number | null): string {
  return ms === null ? 'never' : (ms / 1000).toFixed(1);
}

export function formatSimBench(result: SimBenchResult): string {
  const afterLossS = (result.rows[0]?.windows.afterLossMs ?? WINDOWS_DEFAULT.afterLossMs) / 1000;
  const header = ['nodes', 'to <1ms first/stays (s)', 'stays <100us (s)', 'pull-in max (us)', 'steady p50/p99/max (us)', `${afterLossS} s after master loss p50/p99/max (us)`, `at +${afterLossS} s (us)`, 'new master corr (ms)', 'rate range raw/disciplined (ppm)', 'sim s/wall s'];
  const table = result.rows.map((row) => [
    String(row.nodes),
    `${seconds(row.firstUnder1msMsMax)}/${seconds(row.settledUnder1msMsMax)}`,
    seconds(row.settledUnder100usMsMax),
    us(row.pullInSpreadNsMax),
    `${us(row.steadySpreadNs.p50)}/${us(row.steadySpreadNs.p99)}/${us(row.steadySpreadNs.max)}`,
    `${us(row.afterLossSpreadNs.p50)}/${us(row.afterLossSpreadNs.p99)}/${us(row.afterLossSpreadNs.max)}`,
    us(row.spreadAtAfterLossEndNsMax),
    row.newMasterFirstCorrectionMsMax === null ? 'none' : row.newMasterFirstCorrectionMsMax.toFixed(0),
    `${row.driftRangePpmMax.toFixed(0)}/${row.rateRangePpmMax?.toFixed(1) ?? '-'}`,
    row.simSecondsPerWallSecond.toFixed(1),
  ]);
  const widths = header.map((title, index) => Math.max(title.length, ...table.map((cells) => (cells[index] ?? '').length)));
  const line = (cells: string[]) => cells.map((cell, index) => cell.padStart(widths[index] ?? 0)).join('  ');
  const scenario = result.scenario;
  const windowNotes = result.rows.map((row) => `${row.nodes}: steady ${row.windows.steadyFromMs / 1000}-${row.windows.steadyToMs / 1000} s, ${row.windows.afterLossMs / 1000} s after loss`);
  return [
    line(header),
    ...table.map(line),
    `(percentiles pooled over seeds ${result.rows[0]?.seeds.join(',') ?? '-'}, times and the end-of-window spread the worst seed; latency ${scenario.network.latencyMs} ms + exp jitter ${scenario.network.jitterMeanMs} ms, loss ${scenario.network.lossRate}, ` +
      `drift +-${scenario.driftPpm} ppm wander +-${scenario.clock.wanderPpmPerStep} ppm/${(scenario.clock.wanderStepMs ?? 0) / 1000} s, offsets +-${scenario.initialOffsetMsMax} ms (up to ${(2 * scenario.initialOffsetMsMax) / 1000} s apart), poll ${scenario.pollIntervalMs} ms, ` +
      `spread sampled every ${scenario.sampleEveryMs} ms, invariant checks ${scenario.check})`,
    `(windows ${windowNotes.join('; ')}; ${result.wallSeconds.toFixed(1)} s wall in all)`,
  ].join('\n');
}

// ---------------------------------------------------------------- command line

const here = dirname(fileURLToPath(import.meta.url));
const OUT_DEFAULT = resolve(here, '..', '..', 'bench-results', 'sim.json');

function main(): void {
  const { values } = parseArgs({
    options: {
      nodes: { type: 'string', default: '8,32,128' },
      seeds: { type: 'string', default: '3' },
      out: { type: 'string', default: OUT_DEFAULT },
      check: { type: 'boolean', default: false },
      'drift-ppm': { type: 'string', default: String(CLOCK.driftPpmMax) },
    },
  });
  const nodeCounts = String(values.nodes).split(',').map(Number);
  const seeds = Number(values.seeds);
  const driftPpm = Number(values['drift-ppm']);
  if (!(driftPpm >= 0 && driftPpm <= (CLOCK.driftPpmMax as number))) {
    process.stderr.write(`bench/sim: --drift-ppm must be within 0..${CLOCK.driftPpmMax}\n`);
    process.exit(2);
  }
  if (!Number.isInteger(seeds) || seeds < 1 || nodeCounts.some((nodes) => !Number.isInteger(nodes) || nodes < 2 || nodes > 1000)) {
    process.stderr.write('bench/sim: --seeds must be a positive whole number, --nodes a list of node counts (2..1000)\n');
    process.exit(2);
  }
  const result = runSimBench({ nodeCounts, seeds, driftPpm, check: values.check ? 'throw' : 'off', onProgress: (text) => process.stderr.write(`${text}\n`) });
  const out = resolve(String(values.out));
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, `${JSON.stringify(result, null, 2)}\n`);
  process.stdout.write(`${formatSimBench(result)}\nwritten to ${out}\n`);
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) main();
