// The error bound on real processes (issue 17): lab/netns/error-bound.ts measures (N agents in
// network namespaces, 1% loss, kill -9 of the master half-way); this prints and writes the bound's
// distribution, the distance's, and every sample that found a member farther than its bound.
//
// A benchmark, not a test (test/e2e/error-bound.test.ts asserts the property on a shorter run): it
// reports; it fails only when the run cannot be made. Needs root for the namespaces. Never touches
// this machine's clock (--clock virtual).
//
//   npx tsx scripts/bench/error-bound.ts [--agents 5] [--measure-s 120] [--loss 1] [--out bench-results/error-bound.json]
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { parseArgs } from 'node:util';
import { netnsAvailable } from '../../lab/netns/netns.ts';
import { measureErrorBound, summarize } from '../../lab/netns/error-bound.ts';

function fail(message: string): never {
  process.stderr.write(`bench:error-bound: ${message}\n`);
  process.exit(2);
}

const { values } = parseArgs({
  options: {
    agents: { type: 'string', default: '5' },
    'measure-s': { type: 'string', default: '120' },
    loss: { type: 'string', default: '1' },
    out: { type: 'string', default: 'bench-results/error-bound.json' },
  },
});
const agentCount = Number(values.agents);
const measureS = Number(values['measure-s']);
const lossPercent = Number(values.loss);
if (!Number.isInteger(agentCount) || agentCount < 3 || agentCount > 16) fail(`--agents: must be an integer 3..16, got ${values.agents}`);
if (!(measureS >= 20 && measureS <= 3600)) fail(`--measure-s: must be 20..3600, got ${values['measure-s']}`);
if (!(lossPercent >= 0 && lossPercent < 50)) fail(`--loss: must be 0..50 (percent), got ${values.loss}`);

async function main(): Promise<void> {
  const availability = netnsAvailable();
  if (!availability.ok) {
    process.stdout.write(`bench:error-bound: skipped: ${availability.reason}\n`);
    return;
  }
  const run = await measureErrorBound({ agents: agentCount, measureS, lossPercent, prefix: 'ebnd' });
  const { bound, distance } = summarize(run);
  const us = (ns: number) => `${(ns / 1e3).toFixed(1)} µs`;
  const line = (name: string, stats: typeof bound) => `${name}: p50 ${us(stats.p50)}, p90 ${us(stats.p90)}, p99 ${us(stats.p99)}, max ${us(stats.max)}`;
  process.stdout.write(
    `error bound, ${agentCount} agents in namespaces, ${lossPercent}% loss, kill -9 of the master at ${run.killedMasterAtS?.toFixed(0) ?? '-'} s (${run.masterBefore} -> ${run.masterAfter ?? '?'}), ${run.samples.length} member samples over ${measureS} s\n` +
      `${line('bound', bound)}\n${line('distance to the master', distance)}\n` +
      `members farther from the master than their bound: ${run.violations.length}; synchronized members without a bound while following (a new master's first round not in): ${run.nullWhileFollowing}\n`,
  );
  const result = { generatedAt: new Date().toISOString(), ...run, samples: run.samples.length, violations: run.violations.slice(0, 50), violationCount: run.violations.length, boundNs: bound, distanceNs: distance };
  mkdirSync(dirname(values.out), { recursive: true });
  writeFileSync(values.out, `${JSON.stringify(result, null, 2)}\n`);
  process.stdout.write(`written to ${values.out}\n`);
}

main().catch((error: unknown) => fail(error instanceof Error ? error.message : String(error)));
