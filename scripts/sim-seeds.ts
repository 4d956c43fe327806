// Runs many VOPR seeds of the deterministic simulator (src/sim/vopr.ts) and reports the failures
// with their seeds, how to reproduce each one, and the seeds per minute this machine does.
//
//   npx tsx scripts/sim-seeds.ts --seeds 2000 [--start 1] [--nodes 3..12] [--mix all] [--json]
//   npx tsx scripts/sim-seeds.ts --start 4711 --seeds 1 --trace 200     # one seed, last events
//
// Mixes (src/sim/vopr.ts FAULT_MIXES): all (partitions, crashes, restarts, loss bursts on a lossy,
// duplicating, reordering, corrupting network with asymmetric links), nopartition, network, crash,
// partition. --collect records safety violations and still runs the liveness phase.
// --mix coldstart runs cold starts instead (src/sim/cold-start.ts, issue 14): clocks never
// synchronized, random offsets and a minority of wild ones (seconds to decades, one at 1970 in some
// seeds, master or not); a seed fails unless every clock ends synchronized within 1 ms of the
// master, and the cluster within the threshold of an agreeing majority, or else inside the range
// of the middle clocks (and every invariant holds on the way).
// A seed fails on an invariant violation, a liveness failure or an exception; the exit code is 1
// if any seed failed. Results go to bench-results/sim-seeds.json.
import { fork } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus } from 'node:os';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { InvariantViolation } from '../src/sim/invariants.ts';
import { COLD_START_DEFAULTS, runColdStart } from '../src/sim/cold-start.ts';
import { FAULT_MIXES, LivenessFailure, run, type FaultMixName, type VoprOptions } from '../src/sim/vopr.ts';

const MIXES = [...Object.keys(FAULT_MIXES), 'coldstart'];

interface RunSpec {
  mix: FaultMixName | 'coldstart';
  nodesMin: number;
  nodesMax: number;
  safetyMs: number;
  trace: number;
  collect: boolean;
}

interface SeedResult {
  seed: number;
  ok: boolean;
  kind: string;
  message: string;
  atMs: number | null;
  /** Simulated ms (passes only). */
  simulatedMs: number;
  livenessMs: number | null;
  nodes: number;
  elections: number;
  /** --mix coldstart: what the seed drew. */
  coldStart?: { kind: 'majority' | 'middle'; wild: number; wildMaster: boolean; epoch: 'master' | 'member' | null; staggered: boolean };
}

const here = dirname(fileURLToPath(import.meta.url));
const OUT_DEFAULT = resolve(here, '..', 'bench-results', 'sim-seeds.json');

function reproduce(spec: RunSpec, seed: number): string {
  const nodes = spec.nodesMin === spec.nodesMax ? `${spec.nodesMin}` : `${spec.nodesMin}..${spec.nodesMax}`;
  return `npx tsx scripts/sim-seeds.ts --mix ${spec.mix} --nodes ${nodes} --safety-ms ${spec.safetyMs}${spec.collect ? ' --collect' : ''} --start ${seed} --seeds 1 --trace 200`;
}

function runColdStartSeed(spec: RunSpec, seed: number): SeedResult {
  const options = { ...COLD_START_DEFAULTS, nodes: { min: spec.nodesMin, max: spec.nodesMax } };
  const base = { seed, atMs: null, simulatedMs: options.settleMs, livenessMs: null, elections: 0 };
  try {
    const result = runColdStart(seed, options);
    const what = `${result.nodes} clocks, ${result.wild} wild${result.wildMaster ? ' (one the master)' : ''}, ${result.kind}${result.staggered ? ', two waves' : ''}`;
    const coldStart = { kind: result.kind, wild: result.wild, wildMaster: result.wildMaster, epoch: result.epoch, staggered: result.staggered };
    if (result.problem === null) return { ...base, ok: true, kind: 'pass', message: what, nodes: result.nodes, coldStart };
    return { ...base, ok: false, kind: 'cold-start', message: `seed ${seed}: ${what}: ${result.problem}`, nodes: result.nodes, coldStart };
  } catch (error) {
    const kind = error instanceof InvariantViolation ? error.code : 'exception';
    return { ...base, ok: false, kind, message: `seed ${seed}: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`, nodes: 0 };
  }
}

function runSeed(spec: RunSpec, seed: number): SeedResult {
  if (spec.mix === 'coldstart') return runColdStartSeed(spec, seed);
  const options: Partial<VoprOptions> = {
    ...FAULT_MIXES[spec.mix],
    nodes: { min: spec.nodesMin, max: spec.nodesMax },
    safetyMs: spec.safetyMs,
    traceLines: spec.trace,
    reproduce: reproduce(spec, seed),
    check: spec.collect ? 'collect' : 'throw',
  };
  try {
    const summary = run(seed, options);
    const first = summary.violations[0];
    if (first !== undefined) {
      // --collect: the run went on to the liveness phase; report the first violation and the count.
      return {
        seed,
        ok: false,
        kind: first.code,
        message: `${first.message.split('\n')[0]} [${summary.violations.length} violation(s) in this run; liveness after ${summary.livenessMs} ms]`,
        atMs: first.atMs,
        simulatedMs: summary.endMs,
        livenessMs: summary.livenessMs,
        nodes: summary.nodes,
        elections: summary.elections.mastersElected,
      };
    }
    return {
      seed,
      ok: true,
      kind: 'pass',
      message: '',
      atMs: null,
      simulatedMs: summary.endMs,
      livenessMs: summary.livenessMs,
      nodes: summary.nodes,
      elections: summary.elections.mastersElected,
    };
  } catch (error) {
    const base = { seed, ok: false, simulatedMs: 0, livenessMs: null, nodes: 0, elections: 0 };
    if (error instanceof InvariantViolation) return { ...base, kind: error.code, message: error.message, atMs: error.atMs };
    if (error instanceof LivenessFailure) {
      const trace = spec.trace > 0 ? `\nlast events:\n${error.trace.join('\n')}` : '';
      return { ...base, kind: 'liveness', message: error.message + trace, atMs: error.atMs };
    }
    // Anything else is a crash of the simulator or the core (an exception escaping a node).
    return { ...base, kind: 'exception', message: `seed ${seed}: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`, atMs: null };
  }
}

// ---------------------------------------------------------------- worker mode (a child process)

if (process.argv.includes('--worker')) {
  process.on('message', async (message: { spec: RunSpec; seeds: number[] }) => {
    for (const seed of message.seeds) {
      process.send?.(runSeed(message.spec, seed));
      // Let the result go out now, so the parent shows progress.
      await new Promise((resolveTurn) => setImmediate(resolveTurn));
    }
    process.send?.({ done: true });
  });
} else {
  try {
    await main();
  } catch (error) {
    // A bad option (ours, or parseArgs' ERR_PARSE_ARGS_*) is one line and exit 2, not a stack.
    const code = (error as { code?: string }).code ?? '';
    const message = error instanceof Error ? error.message : String(error);
    if (!message.startsWith('--') && !code.startsWith('ERR_PARSE_ARGS')) throw error;
    process.stderr.write(`sim-seeds: ${message}\n`);
    process.exit(2);
  }
}

function parseNodes(text: string): [number, number] {
  const match = /^(\d+)(?:\.\.(\d+))?$/.exec(text);
  if (!match) throw new Error(`--nodes: expected N or A..B, got ${text}`);
  const min = Number(match[1]);
  const max = Number(match[2] ?? match[1]);
  if (min < 1 || max < min || max > 200) throw new Error(`--nodes: ${text} out of range (1..200, A <= B)`);
  return [min, max];
}

function percentile(sorted: number[], fraction: number): number | null {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.floor(fraction * sorted.length))] as number;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      seeds: { type: 'string', default: '1000' },
      start: { type: 'string', default: '1' },
      nodes: { type: 'string', default: '3..12' },
      mix: { type: 'string', default: 'all' },
      'safety-ms': { type: 'string' },
      jobs: { type: 'string', default: String(availableParallelism()) },
      trace: { type: 'string', default: '0' },
      json: { type: 'boolean', default: false },
      collect: { type: 'boolean', default: false },
      out: { type: 'string', default: OUT_DEFAULT },
      help: { type: 'boolean', default: false },
    },
    strict: true,
  });
  if (values.help) {
    console.log(
      `usage: npx tsx scripts/sim-seeds.ts --seeds N [--start S] [--nodes A..B] [--mix ${MIXES.join('|')}] [--safety-ms MS] [--jobs J] [--collect] [--trace LINES] [--json] [--out FILE]`,
    );
    console.log('  --collect: record safety violations and go on to the liveness phase (default: stop at the first)');
    return;
  }
  const count = Number(values.seeds);
  const start = Number(values.start);
  // A mix may set its own (the upstream mix needs minutes for the health's hysteresis); else 20 s.
  const mixSafetyMs = values.mix in FAULT_MIXES ? (FAULT_MIXES[values.mix as FaultMixName] as Partial<VoprOptions>).safetyMs : undefined;
  const safetyMs = values['safety-ms'] === undefined ? (mixSafetyMs ?? 20_000) : Number(values['safety-ms']);
  const jobs = Math.max(1, Math.min(Number(values.jobs), count));
  const trace = Number(values.trace);
  if (!Number.isInteger(count) || count < 1) throw new Error(`--seeds: expected a positive integer, got ${values.seeds}`);
  if (!Number.isInteger(start) || start < 0 || start > 0xffffffff) throw new Error(`--start: expected a seed 0..2^32-1, got ${values.start}`);
  if (!(safetyMs >= 0)) throw new Error(`--safety-ms: expected a duration, got ${values['safety-ms']}`);
  if (!MIXES.includes(values.mix)) throw new Error(`--mix: expected one of ${MIXES.join(', ')}, got ${values.mix}`);
  const [nodesMin, nodesMax] = parseNodes(values.nodes);
  const spec: RunSpec = { mix: values.mix as RunSpec['mix'], nodesMin, nodesMax, safetyMs, trace, collect: values.collect };
  const log = values.json ? (line: string) => process.stderr.write(`${line}\n`) : (line: string) => console.log(line);

  log(`sim-seeds: ${count} seeds from ${start}, mix ${spec.mix}, ${nodesMin}..${nodesMax} nodes, ${safetyMs} ms of faults, ${jobs} job(s)`);
  const seeds = Array.from({ length: count }, (_, index) => start + index);
  const results: SeedResult[] = [];
  const startedMs = performance.now();
  let lastProgressMs = startedMs;
  const progressEvery = Math.max(1, Math.round(count / 20));

  const onResult = (result: SeedResult): void => {
    results.push(result);
    if (!result.ok) log(`FAIL seed ${result.seed} [${result.kind}]: ${result.message.split('\n')[0]}`);
    const nowMs = performance.now();
    if (results.length % progressEvery === 0 || nowMs - lastProgressMs > 5000 || results.length === count) {
      lastProgressMs = nowMs;
      const failed = results.filter((entry) => !entry.ok).length;
      const rate = (results.length / (nowMs - startedMs)) * 60_000;
      log(`  ${results.length}/${count} seeds, ${failed} failed, ${rate.toFixed(0)} seeds/min`);
    }
    if (!result.ok && trace > 0 && result.message.includes('\n')) log(result.message.slice(result.message.indexOf('\n') + 1));
  };

  if (jobs === 1) {
    for (const seed of seeds) onResult(runSeed(spec, seed));
  } else {
    await Promise.all(
      Array.from({ length: jobs }, (_, job) => {
        const share = seeds.filter((_, index) => index % jobs === job);
        return new Promise<void>((resolvePromise, reject) => {
          const child = fork(fileURLToPath(import.meta.url), ['--worker'], { execArgv: process.execArgv, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
          child.on('message', (message: SeedResult | { done: true }) => {
            if ('done' in message) child.disconnect();
            else onResult(message);
          });
          child.on('error', reject);
          child.on('exit', (code) => (code === 0 ? resolvePromise() : reject(new Error(`worker ${job} exited with ${code}`))));
          child.send({ spec, seeds: share });
        });
      }),
    );
  }

  const wallMs = performance.now() - startedMs;
  results.sort((a, b) => a.seed - b.seed);
  const failures = results.filter((result) => !result.ok);
  const passes = results.filter((result) => result.ok);
  const byKind: Record<string, number> = {};
  for (const failure of failures) byKind[failure.kind] = (byKind[failure.kind] ?? 0) + 1;
  // With --collect, seeds with safety violations reached liveness too: count them.
  const liveness = results.flatMap((result) => (result.livenessMs === null ? [] : [result.livenessMs])).sort((a, b) => a - b);
  const simulatedMs = passes.reduce((sum, result) => sum + result.simulatedMs, 0);
  const seedsPerMinute = (count / wallMs) * 60_000;
  const report = {
    generatedAt: new Date().toISOString(),
    machine: { cpus: cpus().length, model: cpus()[0]?.model ?? 'unknown', node: process.version },
    options: { mix: spec.mix, nodes: `${nodesMin}..${nodesMax}`, safetyMs, start, seeds: count, jobs, collect: spec.collect },
    passed: passes.length,
    failed: failures.length,
    failuresByKind: byKind,
    wallMs: Math.round(wallMs),
    seedsPerMinute: Math.round(seedsPerMinute),
    seedsPerMinutePerJob: Math.round(seedsPerMinute / jobs),
    simulatedSecondsPerWallSecond: Math.round(simulatedMs / wallMs),
    livenessMs: { p50: percentile(liveness, 0.5), p95: percentile(liveness, 0.95), max: liveness.at(-1) ?? null },
    coldStart:
      spec.mix === 'coldstart'
        ? {
            majority: results.filter((result) => result.coldStart?.kind === 'majority').length,
            middle: results.filter((result) => result.coldStart?.kind === 'middle').length,
            withWild: results.filter((result) => (result.coldStart?.wild ?? 0) > 0).length,
            wildMaster: results.filter((result) => result.coldStart?.wildMaster === true).length,
            epochMaster: results.filter((result) => result.coldStart?.epoch === 'master').length,
            epochMember: results.filter((result) => result.coldStart?.epoch === 'member').length,
            staggered: results.filter((result) => result.coldStart?.staggered === true).length,
            staggeredMajority: results.filter((result) => result.coldStart?.staggered === true && result.coldStart.kind === 'majority').length,
          }
        : null,
    mastersElectedPerSeed: passes.length > 0 ? Number((passes.reduce((sum, result) => sum + result.elections, 0) / passes.length).toFixed(2)) : null,
    failures: failures.map((failure) => ({
      seed: failure.seed,
      kind: failure.kind,
      atMs: failure.atMs,
      message: failure.message.split('\n')[0],
      reproduce: reproduce(spec, failure.seed),
    })),
  };
  mkdirSync(dirname(values.out), { recursive: true });
  writeFileSync(values.out, `${JSON.stringify(report, null, 2)}\n`);

  if (values.json) {
    console.log(JSON.stringify(report, null, 2));
  } else {
    log('');
    log(`${passes.length}/${count} seeds passed, ${failures.length} failed${failures.length > 0 ? ` (${Object.entries(byKind).map(([kind, n]) => `${kind}: ${n}`).join(', ')})` : ''}`);
    if (failures.length > 0) {
      log('failures (seed, invariant, reproduce):');
      for (const failure of failures.slice(0, 50)) log(`  ${failure.seed}  ${failure.kind.padEnd(20)} ${reproduce(spec, failure.seed)}`);
      if (failures.length > 50) log(`  ... ${failures.length - 50} more in ${values.out}`);
    }
    if (report.coldStart !== null) {
      const drawn = report.coldStart;
      log(
        `cold starts: ${drawn.majority} with an agreeing majority, ${drawn.middle} without; ${drawn.withWild} with wild clocks, ${drawn.wildMaster} with a wild master, ` +
          `${drawn.epochMaster + drawn.epochMember} with a clock at the Unix epoch (1970; ${drawn.epochMaster} of them the master); ` +
          `${drawn.staggered} booted in two waves (${drawn.staggeredMajority} of them with an agreeing majority)`,
      );
    } else {
      log(`time to liveness after the faults stop: p50 ${report.livenessMs.p50 ?? '-'} ms, p95 ${report.livenessMs.p95 ?? '-'} ms, max ${report.livenessMs.max ?? '-'} ms`);
    }
    log(`${report.seedsPerMinute} seeds/min on this machine (${jobs} job(s), ${report.seedsPerMinutePerJob}/min per job; ${report.simulatedSecondsPerWallSecond}x real time per job set); wrote ${values.out}`);
  }
  process.exitCode = failures.length > 0 ? 1 : 0;
}
