// Cold starts (issue 14): a cluster whose clocks have never been synchronized boots at once, with
// random offsets and a minority of wild clocks (seconds to decades off, ahead or behind, master or
// not; in some seeds one at the Unix epoch, a box whose RTC battery died). Every clock, wild ones
// included, must end on the cluster's time: a CORRECT carries any difference of two timestamps. The property: if more than half of the clocks agree within the outlier threshold, the
// cluster ends within it of them; otherwise it ends inside the range of the middle clocks (those
// left when the f lowest and f highest are discarded, f < n/2, widened only by clocks that agree
// with them). Never at a lone extreme clock.
//
// Half the seeds boot in two waves, as a lab does after a power cut: a first wave (any clocks, wild
// ones among them) meets and agrees, the rest boot seconds later, within the provisional window.
// With an agreeing majority the property is the same: the boxes that boot later and agree with
// the majority's clocks are not captured by where the first wave met. Without one, the cluster
// may keep where the first wave met, but only inside the band of the clocks left when the
// f = floor((n - 1) / 3) lowest and highest are set aside (widened by clocks that agree with it,
// and by PROVISIONAL_BAND_SLACK_NS): never held at an extreme by a minority.
import { OUTLIER_THRESHOLD_MS_DEFAULT, PROVISIONAL_BAND_SLACK_NS } from '../core/limits.ts';
import { SeededRandom } from './random.ts';
import { EPOCH_NS, Simulation, type SimNodeSpec } from './simulation.ts';

export interface ColdStartOptions {
  nodes: { min: number; max: number };
  /** Run this long after boot before judging where the cluster settled. */
  settleMs: number;
  /** Machine clocks drift uniformly within +-this. */
  driftPpmMax: number;
  /** Good clocks that disagree are spread uniformly over +-this around a random centre. */
  spreadNsMax: number;
  /** Wild clocks are this far or more beyond the good ones (log-uniform up to wildNsMax). */
  wildNsMin: number;
  wildNsMax: number;
  /** Fraction of seeds with wild clocks in which one of them reads the Unix epoch (1970) at boot. */
  epochFraction: number;
  lossRate: number;
  /** Fraction of seeds that boot in two waves. */
  staggeredFraction: number;
  /** The second wave boots this long after the first (uniform). */
  secondWaveMs: { min: number; max: number };
}

export const COLD_START_DEFAULTS: ColdStartOptions = {
  nodes: { min: 2, max: 12 },
  settleMs: 15_000,
  driftPpmMax: 100,
  spreadNsMax: 5e9,
  wildNsMin: 1e9,
  // Forty years (a bad image, a clock set decades ahead); behind, never before the epoch.
  wildNsMax: 40 * 365 * 24 * 3600 * 1e9,
  epochFraction: 0.3,
  lossRate: 0.01,
  staggeredFraction: 0.5,
  secondWaveMs: { min: 2_000, max: 10_000 },
};

const THRESHOLD_NS = OUTLIER_THRESHOLD_MS_DEFAULT * 1e6;
/** Good clocks are never drawn this close to the threshold apart (drift could move them across it). */
const AMBIGUOUS_BAND_NS = 5e6;

export interface ColdStartCase {
  specs: SimNodeSpec[];
  wild: Set<string>;
  /** Whether the good clocks were drawn to agree (a majority within the threshold). */
  drawnToAgree: boolean;
  /** The nodes of the first wave, when the seed boots in two waves. */
  firstWave: Set<string> | null;
  /** The wild clock that boots at the Unix epoch (1970), if the seed has one. */
  epoch: string | null;
}

/** Simulated true time is EPOCH_NS after the Unix epoch: a clock this far behind reads 1970. */
const UNIX_EPOCH_OFFSET_NS = -Number(EPOCH_NS);

/** The cluster a seed describes. */
export function coldStartCase(seed: number, options: ColdStartOptions = COLD_START_DEFAULTS): ColdStartCase {
  const random = new SeededRandom((seed ^ 0x3c6ef372) >>> 0);
  const count = options.nodes.min + random.integer(options.nodes.max - options.nodes.min + 1);
  const wildCount = random.integer(Math.ceil(count / 2));
  const goodCount = count - wildCount;
  const centreNs = random.between(-2e9, 2e9);
  const drawnToAgree = random.next() < 0.5;
  let good: number[] = [];
  for (let attempt = 0; attempt < 1000; attempt += 1) {
    good = Array.from({ length: goodCount }, () =>
      drawnToAgree ? centreNs + random.between(0, THRESHOLD_NS / 2) : centreNs + random.between(-options.spreadNsMax, options.spreadNsMax),
    );
    const sorted = [...good].sort((a, b) => a - b);
    const ambiguous = sorted.some((value, index) => index > 0 && Math.abs(value - (sorted[index - 1] as number) - THRESHOLD_NS) < AMBIGUOUS_BAND_NS);
    if (!ambiguous) break;
  }
  const lowNs = Math.min(...good);
  const highNs = Math.max(...good);
  const wild = Array.from({ length: wildCount }, () => {
    const beyondNs = Math.exp(random.between(Math.log(options.wildNsMin), Math.log(options.wildNsMax)));
    // Behind, never before 1970: a timestamp cannot say so (the clock would read the epoch at most).
    return random.next() < 0.5 ? highNs + beyondNs : Math.max(UNIX_EPOCH_OFFSET_NS + 1e9, lowNs - beyondNs);
  });
  // A dead RTC battery: the box boots at the epoch (within a second of it).
  const hasEpoch = wildCount > 0 && random.next() < options.epochFraction;
  if (hasEpoch) wild[0] = UNIX_EPOCH_OFFSET_NS + random.between(0, 1e9);
  const offsets = [...good.map((offsetNs, index) => ({ offsetNs, wild: false, epoch: false, index })), ...wild.map((offsetNs, index) => ({ offsetNs, wild: true, epoch: hasEpoch && index === 0, index }))];
  // Shuffled, so wild clocks get any priority: sometimes the master, sometimes not.
  for (let index = offsets.length - 1; index > 0; index -= 1) {
    const other = random.integer(index + 1);
    [offsets[index], offsets[other]] = [offsets[other] as (typeof offsets)[number], offsets[index] as (typeof offsets)[number]];
  }
  // The epoch box is the master (the highest priority) in half of its seeds, a member in the rest.
  const epochMaster = hasEpoch && random.next() < 0.5;
  const specs: SimNodeSpec[] = offsets.map((entry, index) => ({
    nodeId: `n${index}${entry.wild ? 'w' : ''}`,
    priority: entry.epoch && epochMaster ? 103 : 100 + random.integer(3),
    initialOffsetNs: Math.round(entry.offsetNs),
    driftPpm: random.between(-options.driftPpmMax, options.driftPpmMax),
    startMs: random.between(0, 300),
  }));
  // Two waves: the first (shuffled above, so any clocks) is 1..n-1 nodes, and in half of them
  // holds a wild clock (the case that matters: a wild box meets a good one before the rest boot).
  let firstWave: Set<string> | null = null;
  if (count >= 2 && random.next() < options.staggeredFraction) {
    const firstCount = 1 + random.integer(count - 1);
    const order = [...specs];
    const wildIndex = order.findIndex((spec) => spec.nodeId.endsWith('w'));
    if (wildIndex > 0 && random.next() < 0.5) [order[0], order[wildIndex]] = [order[wildIndex] as SimNodeSpec, order[0] as SimNodeSpec];
    const laterMs = random.between(options.secondWaveMs.min, options.secondWaveMs.max);
    order.slice(firstCount).forEach((spec) => (spec.startMs = laterMs + random.between(0, 300)));
    firstWave = new Set(order.slice(0, firstCount).map((spec) => spec.nodeId));
  }
  const epochIndex = offsets.findIndex((entry) => entry.epoch);
  const epoch = epochIndex < 0 ? null : (specs[epochIndex] as SimNodeSpec).nodeId;
  return { specs, wild: new Set(specs.filter((spec) => spec.nodeId.endsWith('w')).map((spec) => spec.nodeId)), drawnToAgree, firstWave, epoch };
}

export interface ColdStartResult {
  seed: number;
  nodes: number;
  wild: number;
  /** The master at the end was a wild clock at the start. */
  wildMaster: boolean;
  /** 'majority': more than half agreed within the threshold; 'middle': they did not. */
  kind: 'majority' | 'middle';
  /** Booted in two waves (see coldStartCase). */
  staggered: boolean;
  /** Where the cluster may end (clock minus true time at the end), and where it did. */
  allowedNs: [number, number];
  settledNs: number | null;
  /** A clock booted at the Unix epoch (1970): 'master' if it was the master at the end, else 'member'. */
  epoch: 'master' | 'member' | null;
  problem: string | null;
}

/** Runs one cold start and judges it. */
export function runColdStart(seed: number, options: ColdStartOptions = COLD_START_DEFAULTS): ColdStartResult {
  const { specs, wild, firstWave, epoch } = coldStartCase(seed, options);
  const staggered = firstWave !== null;
  const lastStartMs = Math.max(...specs.map((spec) => spec.startMs ?? 0));
  const sim = new Simulation({
    seed,
    nodes: specs,
    network: { latencyMs: 0.2, jitterMeanMs: 0.1, asymmetry: 1, lossRate: options.lossRate },
    clock: { wanderPpmPerStep: 0, driftPpmMax: options.driftPpmMax },
    discoverAll: true,
  });
  // Settle counts from the last boot.
  const endMs = lastStartMs + options.settleMs;
  sim.runUntil(endMs);
  const initial = new Map(specs.map((spec) => [spec.nodeId, spec.initialOffsetNs ?? 0]));
  const n = initial.size;
  // The bound is computed here on its own, from the sorted starting offsets, not with the
  // functions under test (agreeingGroups, middleClocks): a bug in those must not move the bound too.
  // Clocks agree when consecutive ones are at most the outlier threshold apart.
  const sorted = [...initial.values()].sort((a, b) => a - b);
  const runs: number[][] = [];
  for (const offsetNs of sorted) {
    const run = runs.at(-1);
    if (run !== undefined && offsetNs - (run.at(-1) as number) <= THRESHOLD_NS) run.push(offsetNs);
    else runs.push([offsetNs]);
  }
  const majority = runs.find((run) => run.length * 2 > n);
  let allowed: [number, number];
  let kind: ColdStartResult['kind'];
  if (majority !== undefined) {
    kind = 'majority';
    allowed = [majority[0] as number, majority.at(-1) as number];
  } else {
    kind = 'middle';
    // The middle clocks (the f lowest and f highest left out, f < n/2), and the clocks that agree
    // with them (a group at the middle may be followed). Two waves: the band (see above).
    const f = staggered ? Math.floor((n - 1) / 3) : Math.ceil(n / 2) - 1;
    const low = sorted[f] as number;
    const high = sorted[n - 1 - f] as number;
    const touching = runs.filter((run) => run.some((offsetNs) => offsetNs >= low && offsetNs <= high)).flat();
    allowed = [Math.min(...touching), Math.max(...touching)];
    if (staggered) allowed = [allowed[0] - PROVISIONAL_BAND_SLACK_NS, allowed[1] + PROVISIONAL_BAND_SLACK_NS];
  }
  // Drift moves every clock until the cluster locks, and the cluster at its own rate after that.
  const driftNs = (options.driftPpmMax * 1e-6 * endMs * 1e6) * 2 + 1e6;
  const allowedNs: [number, number] = [allowed[0] - driftNs, allowed[1] + driftNs];
  const offsets = sim.offsetsNs();
  const masters = sim.masters();
  const epochRole: ColdStartResult['epoch'] = epoch === null ? null : masters.length === 1 && masters[0] === epoch ? 'master' : 'member';
  const base = { seed, nodes: n, wild: wild.size, wildMaster: masters.length === 1 && wild.has(masters[0] as string), kind, staggered, allowedNs, epoch: epochRole };
  const fail = (problem: string, settledNs: number | null = null): ColdStartResult => ({ ...base, settledNs, problem });
  if (masters.length !== 1) return fail(`${masters.length} masters after ${options.settleMs} ms`);
  const settledNs = offsets.get(masters[0] as string) as number;
  // Every clock, wild ones too (decades off, at the epoch): synchronized, and on the cluster's time.
  for (const [id] of offsets) if (!sim.clockReport(id).synchronized) return fail(`${id} not synchronized after ${options.settleMs} ms`, settledNs);
  const values = [...offsets.values()];
  const spreadNs = Math.max(...values) - Math.min(...values);
  if (spreadNs > 1e6) {
    const far = [...offsets].reduce((worst, entry) => (Math.abs(entry[1] - settledNs) > Math.abs(worst[1] - settledNs) ? entry : worst));
    return fail(`spread ${(spreadNs / 1e6).toFixed(3)} ms after ${options.settleMs} ms (${far[0]} ${((far[1] - settledNs) / 1e9).toFixed(6)} s from the master)`, settledNs);
  }
  if (settledNs < allowedNs[0] || settledNs > allowedNs[1]) {
    const at = (valueNs: number) => `${(valueNs / 1e9).toFixed(6)} s`;
    return fail(`settled at ${at(settledNs)}, outside ${kind === 'majority' ? 'the agreeing majority' : staggered ? 'the band of the middle clocks' : 'the middle clocks'} [${at(allowedNs[0])}, ${at(allowedNs[1])}]`, settledNs);
  }
  return { ...base, settledNs, problem: null };
}
