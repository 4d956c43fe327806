// Long fuzz runs of the frame decoder and the protocol core (issue 7), outside npm test:
//   npx tsx scripts/fuzz.ts --frames 10000000 --seed 42 [--only decoder.burst,node.hostile] [--strict-terms]
// The frames are split over the properties of lab/fuzz-frames.ts in the proportions
// npm test uses. Prints frames/s per property; a failure prints fast-check's seed and path, which
// reproduce it with: --seed S --only NAME --path P.
import fc from 'fast-check';
import { decoderProperties, newStats, nodeProperties, simulationProperty, type FuzzStats } from '../lab/fuzz-frames.ts';

function option(name: string): string | undefined {
  const index = process.argv.indexOf(`--${name}`);
  return index === -1 ? undefined : process.argv[index + 1];
}

const framesTotal = Number(option('frames') ?? 1_000_000);
const seed = Number(option('seed') ?? Date.now() % 2 ** 31);
const only = option('only')?.split(',');
const path = option('path');
/** Also terms up to Number.MAX_SAFE_INTEGER (the known bug of test/fuzz.test.ts fails then). */
const strictTerms = process.argv.includes('--strict-terms');
if (!Number.isSafeInteger(framesTotal) || framesTotal <= 0 || !Number.isSafeInteger(seed)) {
  console.error('usage: npx tsx scripts/fuzz.ts --frames N --seed S [--only NAME,...] [--path P]');
  process.exit(2);
}

const BURST = 200;
const SEQUENCE = 40;

interface Plan {
  name: string;
  /** Share of the frames. */
  share: number;
  /** Frames one run feeds (about; the counters give the exact number). */
  framesPerRun: number;
  property: (stats: FuzzStats) => fc.IRawProperty<unknown[], false>;
}

const plans: Plan[] = [
  { name: 'decoder.bytes', share: 0.04, framesPerRun: 1, property: (stats) => decoderProperties(stats, BURST).bytes as unknown as fc.IRawProperty<unknown[], false> },
  { name: 'decoder.msgpack', share: 0.04, framesPerRun: 1, property: (stats) => decoderProperties(stats, BURST).msgpack as unknown as fc.IRawProperty<unknown[], false> },
  { name: 'decoder.structured', share: 0.08, framesPerRun: 1, property: (stats) => decoderProperties(stats, BURST).structured as unknown as fc.IRawProperty<unknown[], false> },
  { name: 'decoder.mutated', share: 0.08, framesPerRun: 4.5, property: (stats) => decoderProperties(stats, BURST).mutated as unknown as fc.IRawProperty<unknown[], false> },
  { name: 'decoder.burst', share: 0.6, framesPerRun: BURST, property: (stats) => decoderProperties(stats, BURST).burst as unknown as fc.IRawProperty<unknown[], false> },
  { name: 'node.invalid', share: 0.05, framesPerRun: SEQUENCE / 2, property: (stats) => nodeProperties(stats, SEQUENCE, strictTerms).invalid as unknown as fc.IRawProperty<unknown[], false> },
  { name: 'node.hostile', share: 0.08, framesPerRun: SEQUENCE / 2, property: (stats) => nodeProperties(stats, SEQUENCE, strictTerms).hostile as unknown as fc.IRawProperty<unknown[], false> },
  { name: 'node.otherCluster', share: 0.02, framesPerRun: SEQUENCE / 2, property: (stats) => nodeProperties(stats, SEQUENCE, strictTerms).otherCluster as unknown as fc.IRawProperty<unknown[], false> },
  { name: 'simulation', share: 0.01, framesPerRun: 10, property: (stats) => simulationProperty(stats, 20, strictTerms) as unknown as fc.IRawProperty<unknown[], false> },
];

let failures = 0;
let framesRun = 0;
const started = performance.now();
for (const plan of plans) {
  if (only !== undefined && !only.includes(plan.name)) continue;
  const stats = newStats();
  const numRuns = Math.max(1, Math.round((framesTotal * plan.share) / plan.framesPerRun));
  const t0 = performance.now();
  // The properties are synchronous, so check() returns its details directly.
  const details = fc.check(plan.property(stats), { seed, numRuns, endOnFailure: process.argv.includes("--no-shrink"), ...(path === undefined ? {} : { path }) }) as fc.RunDetails<unknown[]>;
  const seconds = (performance.now() - t0) / 1000;
  framesRun += stats.frames;
  const rate = Math.round(stats.frames / Math.max(seconds, 1e-9));
  console.log(
    `${plan.name.padEnd(18)} ${String(details.numRuns).padStart(9)} runs ${String(stats.frames).padStart(10)} frames (${stats.accepted} decoded, ${stats.delivered} to a node) ${seconds.toFixed(1)} s ${rate} frames/s`,
  );
  if (details.failed) {
    failures += 1;
    console.log(`FAILED ${plan.name}: seed ${details.seed} path ${details.counterexamplePath} (rerun: npx tsx scripts/fuzz.ts --frames ${framesTotal} --seed ${details.seed} --only ${plan.name} --path ${details.counterexamplePath})`);
    console.log(fc.defaultReportMessage(details));
    console.log(String(details.errorInstance instanceof Error ? details.errorInstance.message : details.errorInstance).slice(0, 4000));
  }
}
const seconds = (performance.now() - started) / 1000;
console.log(`seed ${seed}: ${framesRun} frames in ${seconds.toFixed(1)} s (${Math.round(framesRun / seconds)} frames/s), ${failures} failing properties`);
process.exit(failures === 0 ? 0 : 1);
