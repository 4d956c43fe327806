// Election benchmark (npm run bench:election): failover time and frames per election, for the
// ring and the bully algorithm, at 5, 20 and 100 simulated nodes with 1 ms one-way latency.
// Failover time runs from the master's crash (kill -9: no LEAVE) to the first round completed by
// the new master. Runs in the seeded simulator, so the numbers are exact for a seed and do not
// depend on this machine's load. Prints a table and writes bench-results/election.json.
//
//   npx tsx scripts/bench/election.ts [--seeds N] [--sizes 5,20,100] [--json]
import { mkdirSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { Simulation } from '../../src/sim/simulation.ts';
import type { FrameTypeName } from '../../src/core/frames.ts';
import { MASTER_TIMEOUT_POLLS_DEFAULT, POLL_INTERVAL_MS_DEFAULT } from '../../src/core/limits.ts';

const ELECTION_FRAMES: FrameTypeName[] = ['election', 'electionAck', 'coordinator', 'bully', 'bullyOk'];
const MASTER_TIMEOUT_MS = POLL_INTERVAL_MS_DEFAULT * MASTER_TIMEOUT_POLLS_DEFAULT;
const STEP_MS = 5;

interface Sample {
  failoverMs: number;
  electionFrames: number;
  newMaster: string;
  algorithmSeen: string;
}

function electionFramesSent(sim: Simulation): number {
  let total = 0;
  for (const id of sim.liveNodeIds()) {
    const counts = sim.node(id)?.status().counters.framesSentByType;
    if (counts) for (const name of ELECTION_FRAMES) total += counts[name];
  }
  return total;
}

function measure(nodes: number, algorithm: 'ring' | 'bully', seed: number): Sample {
  const specs = Array.from({ length: nodes }, (_, index) => ({ nodeId: `n${String(index).padStart(3, '0')}`, initialOffsetNs: 0, driftPpm: 0 }));
  const sim = new Simulation({ seed, nodes: specs, discoverAll: true, network: { latencyMs: 1, jitterMeanMs: 0.05 }, config: { electionAlgorithm: algorithm } });
  // Crash at a seed-dependent phase of the poll cycle: the members last heard the master up to a
  // poll interval before the crash, which is what a real failure looks like.
  sim.runUntil(10_000 + sim.random.next() * POLL_INTERVAL_MS_DEFAULT);
  const masters = sim.masters();
  if (masters.length !== 1) throw new Error(`seed ${seed}: ${masters.length} masters before the crash`);
  const oldMaster = masters[0] as string;
  const oldTerm = sim.node(oldMaster)!.status().term;
  // Crash right after a completed round, as a failure would most often find it.
  const framesBefore = electionFramesSent(sim);
  // The crashed master's counters leave with it: take them out of the baseline.
  const crashedCounts = sim.node(oldMaster)!.status().counters.framesSentByType;
  const crashedFrames = ELECTION_FRAMES.reduce((sum, name) => sum + crashedCounts[name], 0);
  const crashMs = sim.nowMs;
  sim.crash(oldMaster);
  const deadlineMs = crashMs + MASTER_TIMEOUT_MS + 30_000;
  while (sim.nowMs < deadlineMs) {
    sim.runFor(STEP_MS);
    const current = sim.masters();
    if (current.length !== 1) continue;
    const status = sim.node(current[0] as string)!.status();
    if (status.term > oldTerm && status.lastRound !== null && status.lastRound.term === status.term) {
      return {
        failoverMs: status.lastRound.atMs - crashMs,
        electionFrames: electionFramesSent(sim) - (framesBefore - crashedFrames),
        newMaster: status.nodeId,
        algorithmSeen: status.election.last?.algorithm ?? '?',
      };
    }
  }
  throw new Error(`seed ${seed}: no new master with a completed round within ${deadlineMs - crashMs} ms`);
}

function percentile(values: number[], fraction: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(fraction * sorted.length))] ?? Number.NaN;
}

const { values } = parseArgs({
  options: { seeds: { type: 'string', default: '5' }, sizes: { type: 'string', default: '5,20,100' }, json: { type: 'boolean', default: false } },
});
const seeds = Number(values.seeds);
const sizes = String(values.sizes).split(',').map(Number);
if (!Number.isInteger(seeds) || seeds < 1 || sizes.some((size) => !Number.isInteger(size) || size < 2 || size > 1000)) {
  process.stderr.write('bench:election: --seeds must be a positive whole number, --sizes a list of node counts (2..1000)\n');
  process.exit(2);
}

const rows: Record<string, unknown>[] = [];
const startedMs = Date.now();
for (const nodes of sizes) {
  for (const algorithm of ['ring', 'bully'] as const) {
    const samples = Array.from({ length: seeds }, (_, index) => measure(nodes, algorithm, 1000 + index));
    const failovers = samples.map((sample) => sample.failoverMs);
    const frames = samples.map((sample) => sample.electionFrames);
    rows.push({
      nodes,
      algorithm,
      seeds,
      failoverMsP50: Math.round(percentile(failovers, 0.5)),
      failoverMsMax: Math.round(Math.max(...failovers)),
      failoverBudgetMs: MASTER_TIMEOUT_MS + 500,
      withinBudget: Math.max(...failovers) <= MASTER_TIMEOUT_MS + 500,
      electionFramesP50: percentile(frames, 0.5),
      electionFramesMax: Math.max(...frames),
      algorithmsSeen: [...new Set(samples.map((sample) => sample.algorithmSeen))].join(','),
    });
  }
}
const result = {
  benchmark: 'election',
  when: new Date().toISOString(),
  latencyMs: 1,
  masterTimeoutMs: MASTER_TIMEOUT_MS,
  note: 'failover = crash of the master (no LEAVE) to the first round completed by the new master, simulated time',
  wallSeconds: (Date.now() - startedMs) / 1000,
  rows,
};
mkdirSync('bench-results', { recursive: true });
writeFileSync('bench-results/election.json', `${JSON.stringify(result, null, 2)}\n`);
if (values.json) {
  process.stdout.write(`${JSON.stringify(result)}\n`);
} else {
  const header = ['nodes', 'algorithm', 'failover p50 ms', 'failover max ms', 'budget ms', 'frames/election p50', 'frames max', 'won by'];
  const table = rows.map((row) => [row.nodes, row.algorithm, row.failoverMsP50, row.failoverMsMax, row.failoverBudgetMs, row.electionFramesP50, row.electionFramesMax, row.algorithmsSeen].map(String));
  const widths = header.map((title, index) => Math.max(title.length, ...table.map((row) => (row[index] ?? '').length)));
  const line = (cells: string[]) => cells.map((cell, index) => cell.padStart(widths[index] ?? 0)).join('  ');
  process.stdout.write(`${line(header)}\n${table.map(line).join('\n')}\n`);
  process.stdout.write(`(${seeds} seeds each, 1 ms latency, master timeout ${MASTER_TIMEOUT_MS} ms; written to bench-results/election.json in ${result.wallSeconds.toFixed(1)} s)\n`);
}
