// `npm run bench`: the precision benchmark of issue 4 in one run.
//   1. the seeded simulator at 8, 32 and 128 nodes (scripts/bench/sim.ts);
//   2. 8 real agent processes in network namespaces, with two chronyd -x instances measuring the
//      same network side by side (scripts/bench/real.ts; needs root, else reported as skipped).
// Prints each table and a summary against the targets, and writes everything to
// bench-results/precision.json. A benchmark reports; it never fails on a number.
//
//   npm run bench [-- --seeds 3] [--measure-s 60] [--probes N] [--no-sim] [--no-real] [--out FILE]
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { parseArgs } from 'node:util';
import os from 'node:os';
import { formatSimBench, runSimBench, type SimBenchResult } from './sim.ts';
import { formatRealBench, runRealBench, type RealBenchResult } from './real.ts';

const { values } = parseArgs({
  options: {
    seeds: { type: 'string', default: '3' },
    nodes: { type: 'string', default: '8,32,128' },
    'measure-s': { type: 'string', default: '60' },
    probes: { type: 'string' },
    'no-sim': { type: 'boolean', default: false },
    'no-real': { type: 'boolean', default: false },
    out: { type: 'string', default: 'bench-results/precision.json' },
  },
});

function positiveNumber(name: string, text: string): number {
  const value = Number(text);
  if (!Number.isFinite(value) || value <= 0) {
    process.stderr.write(`bench: --${name}: must be a positive number (got ${JSON.stringify(text)})\n`);
    process.exit(2);
  }
  return value;
}

const us = (ns: number | null | undefined) => (ns === null || ns === undefined || !Number.isFinite(ns) ? '-' : `${(ns / 1000).toFixed(1)} µs`);

async function main(): Promise<void> {
  const startedAt = new Date().toISOString();
  let sim: SimBenchResult | null = null;
  let real: RealBenchResult | null = null;
  if (!values['no-sim']) {
    const nodeCounts = String(values.nodes).split(',').map((text) => positiveNumber('nodes', text));
    process.stderr.write(`simulation: ${nodeCounts.join(', ')} nodes, ${values.seeds} seeds each\n`);
    sim = runSimBench({ nodeCounts, seeds: positiveNumber('seeds', String(values.seeds)), onProgress: (line) => process.stderr.write(`  ${line}\n`) });
    process.stdout.write(`\n${formatSimBench(sim)}\n`);
  }
  if (!values['no-real']) {
    process.stderr.write('\nreal processes: 8 agents in network namespaces, chronyd -x beside them\n');
    real = await runRealBench({
      measureS: positiveNumber('measure-s', String(values['measure-s'])),
      ...(values.probes === undefined ? {} : { probes: positiveNumber('probes', values.probes) }),
    });
    process.stdout.write(`\n${formatRealBench(real)}\n`);
  }
  const summary = summarize(sim, real);
  process.stdout.write(`\n${summary.join('\n')}\n`);
  const out = String(values.out);
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, `${JSON.stringify({ startedAt, machine: { cpus: os.cpus().length, node: process.version }, sim, real }, null, 2)}\n`);
  process.stdout.write(`\nwritten to ${out}\n`);
}

/** The targets next to what was measured. */
function summarize(sim: SimBenchResult | null, real: RealBenchResult | null): string[] {
  const lines = ['Targets (issue 4)'];
  if (real !== null && !('skipped' in real)) {
    lines.push(
      `  real-process p99 spread <= 50 µs (stretch 20 µs): p50 ${us(real.steady.spreadNs.p50)}, p99 ${us(real.steady.spreadNs.p99)} over the ${real.parameters.measureS} s after every discipline locked; ` +
        `second half (locked) p50 ${us(real.steady.secondHalf.spreadNs.p50)}, p99 ${us(real.steady.secondHalf.spreadNs.p99)}`,
    );
    lines.push(`  through a master failure < 100 µs:                 p99 ${us(real.failover.spreadNs.p99)}, max ${us(real.failover.spreadNs.max)}`);
    if (!('skipped' in real.chrony)) lines.push(`  chronyd -x on the same network: RMS ${us(real.chrony.rmsOffsetNs)}; ours p99 / chrony = ${real.ratio === null ? '-' : real.ratio.toFixed(1)}`);
  } else if (real !== null) {
    lines.push(`  real processes: skipped (${real.skipped})`);
  }
  if (sim !== null) {
    for (const row of sim.rows) {
      const settled = row.settledUnder1msMsMax === null ? 'never' : `${(row.settledUnder1msMsMax / 1000).toFixed(1)} s`;
      lines.push(
        `  sim ${String(row.nodes).padStart(3)} nodes: ±2 s to < 1 ms in ${settled} (target 10 s), steady p99 ${us(row.steadySpreadNs.p99)}, ` +
          `30 s after master loss max ${us(row.afterLossSpreadNs.max)} (target < 100 µs)`,
      );
    }
  }
  return lines;
}

main().catch((error: unknown) => {
  process.stderr.write(`bench: ${(error as Error).stack ?? String(error)}\n`);
  process.exit(1);
});
