// Berkeley arithmetic: offsets from four timestamps, the fault-tolerant average, corrections.
// Offsets are "member clock minus master clock" in nanoseconds.
import { OUTLIER_BOUND_NS_MIN, OUTLIER_MAD_FACTOR, PROVISIONAL_BAND_SLACK_NS } from '../limits.ts';

export interface ClockSample {
  /** Member clock minus master clock, compensated for the round trip. */
  offsetNs: number;
  /** Round-trip network delay, excluding the member's processing time. */
  delayNs: number;
}

/**
 * The NTP/Cristian four-timestamp estimate. t1: poll sent (master clock), t2: poll received
 * (member clock), t3: reply sent (member clock), t4: reply received (master clock). Assumes
 * symmetric paths; the error is at most half the delay.
 */
export function sampleFromTimestamps(t1Ns: bigint, t2Ns: bigint, t3Ns: bigint, t4Ns: bigint): ClockSample {
  // Differences first, in bigint, so 64-bit epoch timestamps keep full precision.
  const outboundNs = Number(t2Ns - t1Ns);
  const inboundNs = Number(t3Ns - t4Ns);
  return {
    offsetNs: (outboundNs + inboundNs) / 2,
    delayNs: Number(t4Ns - t1Ns) - Number(t3Ns - t2Ns),
  };
}

/** The better of two samples of one member: the one with the lower delay (least error bound). */
export function betterSample(current: ClockSample | undefined, candidate: ClockSample): ClockSample {
  return current === undefined || candidate.delayNs < current.delayNs ? candidate : current;
}

export function median(values: readonly number[]): number {
  if (values.length === 0) throw new RangeError('median of no values');
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2 === 1 ? (sorted[middle] as number) : ((sorted[middle - 1] as number) + (sorted[middle] as number)) / 2;
}

export interface AverageResult {
  medianNs: number;
  averageNs: number;
  /** Distance from the median within which offsets were averaged. */
  boundNs: number;
  included: string[];
  excluded: string[];
}

/**
 * Fault-tolerant average in two stages, like BSD timed's networkdelta: the median of the offsets,
 * then the mean of those within a bound of it. The bound follows the spread of this round (a
 * multiple of the median absolute deviation, so it tightens on a quiet LAN and widens on a noisy
 * one), never below `boundNsMin` and never above `thresholdNs` (--outlier-threshold). One wild
 * clock or one slow sample then cannot drag the others. The median always has company (itself),
 * so with an odd count the included set is never empty.
 */
export function faultTolerantAverage(offsets: ReadonlyMap<string, number>, thresholdNs: number, boundNsMin = OUTLIER_BOUND_NS_MIN): AverageResult {
  const values = [...offsets.values()];
  const medianNs = median(values);
  const deviationNs = median(values.map((value) => Math.abs(value - medianNs)));
  const boundNs = Math.min(thresholdNs, Math.max(boundNsMin, OUTLIER_MAD_FACTOR * deviationNs));
  const included: string[] = [];
  const excluded: string[] = [];
  // Summed as distances from the median: offsets of decades (a box at 1970) are float64s with a
  // resolution of hundreds of ns, and a plain sum of a dozen would lose microseconds.
  let sumFromMedianNs = 0;
  for (const [id, offsetNs] of offsets) {
    if (Math.abs(offsetNs - medianNs) <= boundNs) {
      included.push(id);
      sumFromMedianNs += offsetNs - medianNs;
    } else {
      excluded.push(id);
    }
  }
  // With an even count the median can sit between two far-apart clusters and exclude everyone.
  if (included.length === 0) {
    return { medianNs, averageNs: medianNs, boundNs, included, excluded };
  }
  return { medianNs, averageNs: medianNs + sumFromMedianNs / included.length, boundNs, included, excluded };
}

/**
 * Why the cluster follows the clocks it follows (see berkeleyRound):
 * - `majority`: a group of agreeing clocks holds more than half of the votes;
 * - `islands`: synchronized clocks decide without a majority group (islands meeting after a
 *   partition): the largest group, of equally large ones the one ahead;
 * - `middle`: no majority; the group at the middle with company (or a synchronized clock there);
 * - `midpoint`: no majority and no company at the middle: the fault-tolerant midpoint of all clocks.
 */
export type ReferenceBasis = 'majority' | 'islands' | 'middle' | 'midpoint' | 'master';

export interface RoundResult extends AverageResult {
  /** Per node (master included): how far to move its clock, in ns. */
  correctionsNs: Map<string, number>;
  basis: ReferenceBasis;
}

/**
 * Splits offsets into groups of agreeing clocks wherever two neighbours (in sorted order) are more
 * than `gapNs` apart. Groups and their members come in ascending order.
 */
export function agreeingGroups(offsets: ReadonlyMap<string, number>, gapNs: number): [string, number][][] {
  const sorted = [...offsets].sort((a, b) => a[1] - b[1]);
  const groups: [string, number][][] = [];
  let current: [string, number][] = [];
  for (const entry of sorted) {
    const last = current.at(-1);
    if (last !== undefined && entry[1] - last[1] > gapNs) {
      groups.push(current);
      current = [];
    }
    current.push(entry);
  }
  if (current.length > 0) groups.push(current);
  return groups;
}

/**
 * The rule for synchronized islands: the largest group, and of equally large ones the one ahead.
 * When two synchronized islands meet (a healed partition), following the one ahead means the
 * others step forward instead of slewing backwards for minutes; a lone clock is a group of one and
 * is never followed while any larger group exists.
 */
export function referenceGroup(offsets: ReadonlyMap<string, number>, gapNs: number): Map<string, number> {
  let best: [string, number][] = [];
  // >= : of equal sizes, the later (ahead) group wins.
  for (const group of agreeingGroups(offsets, gapNs)) if (group.length >= best.length) best = group;
  return new Map(best);
}

/**
 * The classic fault-tolerant midpoint (Welch-Lynch, Marzullo): of n clocks, tolerate f < n/2
 * wrong ones by discarding the f lowest and the f highest and averaging the rest. With the largest
 * such f the rest is the middle clock (n odd) or the middle two (n even). Returns those clocks.
 */
export function middleClocks(offsets: ReadonlyMap<string, number>): Map<string, number> {
  const sorted = [...offsets].sort((a, b) => a[1] - b[1]);
  const f = Math.ceil(sorted.length / 2) - 1;
  return new Map(sorted.slice(f, sorted.length - f));
}

/**
 * The rule while clocks are not (all) synchronized, e.g. a cluster starting: a group of agreeing
 * clocks that holds a majority is followed. Otherwise nobody may capture the cluster from an
 * extreme: the cluster follows the middle. A group at the middle (holding a middle clock) that has
 * company, or a synchronized clock (`votes`), is followed; with n even there may be two, then the
 * larger, of equal ones the one ahead. Else the fault-tolerant midpoint of all clocks. Whatever a
 * minority of wild clocks says, the result lies within the range of the others (up to the spread
 * of one group of agreeing clocks).
 */
export function startReference(
  offsets: ReadonlyMap<string, number>,
  gapNs: number,
  votes: (id: string) => boolean = () => false,
): { group: Map<string, number>; basis: ReferenceBasis } {
  const groups = agreeingGroups(offsets, gapNs);
  const n = offsets.size;
  for (const group of groups) if (group.length * 2 > n) return { group: new Map(group), basis: 'majority' };
  const middle = middleClocks(offsets);
  let best: [string, number][] = [];
  for (const group of groups) {
    if (!group.some(([id]) => middle.has(id))) continue;
    if (group.length < 2 && !votes((group[0] as [string, number])[0])) continue;
    // >= : of equal sizes, the later (ahead) group wins.
    if (group.length >= best.length) best = group;
  }
  return best.length > 0 ? { group: new Map(best), basis: 'middle' } : { group: middle, basis: 'midpoint' };
}

/**
 * One Berkeley round's outcome. `memberOffsetsNs` holds each answering member's offset against
 * the master; the master takes part with offset 0. Every node, excluded or not, is told to move
 * to the average. `provisionalNs` says, of a clock whose time is still provisional (its first
 * minute, see PROVISIONAL_WINDOW_MS_DEFAULT), how far it has been moved since it started; null
 * for a clock whose time is established (locked).
 */
export function berkeleyRound(
  masterId: string,
  memberOffsetsNs: ReadonlyMap<string, number>,
  thresholdNs: number,
  votes: (id: string) => boolean = () => true,
  provisionalNs: (id: string) => number | null = () => null,
): RoundResult {
  const offsets = new Map<string, number>([[masterId, 0], ...memberOffsetsNs]);
  // Only voters make the average (e.g. synchronized clocks: a box just booted with a wild clock
  // must not drag a synchronized cluster). But voters that are neither a majority nor joined by the
  // master do not decide alone: then everyone votes. Otherwise, while a cluster starts, a single
  // member claiming a synchronized clock (broken, or lying) would be the only voter and every
  // clock would step to it.
  const voters = new Map([...offsets].filter(([id]) => votes(id)));
  const votersDecide = voters.has(masterId) || voters.size * 2 > offsets.size;
  let group: Map<string, number>;
  let basis: ReferenceBasis;
  if (votersDecide) {
    // Synchronized clocks: groups among them are islands of a partition (or a clock someone set).
    group = referenceGroup(voters, thresholdNs);
    basis = group.size * 2 > voters.size ? 'majority' : 'islands';
  } else {
    // Clocks not yet synchronized: the group ahead must not win just by being ahead (one box with
    // its RTC an hour fast would capture a starting cluster).
    ({ group, basis } = startReference(offsets, thresholdNs, votes));
  }
  // While no voter's time is established, the clocks that met first may have agreed only because
  // they moved together (a good box and one an hour off, met at the midpoint). That is no
  // evidence against the boxes that boot after them, so the clocks as they were before any
  // correction (raw) are consulted:
  // - a majority of raw clocks agreeing outright (all within the threshold, not a chain) outweighs
  //   where the cluster stands when that is elsewhere;
  // - without one, the cluster must stand inside the band of the raw clocks left when the
  //   f = floor((n - 1) / 3) lowest and highest are set aside; outside it, a minority at one end
  //   holds it, and it moves to the middle of the raw clocks (a second outside is tolerated:
  //   PROVISIONAL_BAND_SLACK_NS).
  // Inside the band it keeps where it stands, so that clocks booting one by one do not move it
  // each time (only an extreme can, and once).
  if ([...voters.keys()].every((id) => provisionalNs(id) !== null)) {
    const raw = new Map([...offsets].map(([id, offsetNs]) => [id, offsetNs - (provisionalNs(id) ?? 0)]));
    const standsNs = median([...group.values()]);
    const rawMajority = agreeingGroups(raw, thresholdNs).find((candidate) => candidate.length * 2 > raw.size);
    const rawValues = rawMajority?.map(([, valueNs]) => valueNs) ?? [];
    if (rawMajority !== undefined && Math.max(...rawValues) - Math.min(...rawValues) <= thresholdNs) {
      if (Math.abs(median(rawValues) - standsNs) > thresholdNs) {
        basis = 'majority';
        // Once they have moved there their clocks agree again, and are averaged as they are now.
        const now = new Map(rawMajority.map(([id]) => [id, offsets.get(id) as number]));
        const values = [...now.values()];
        group = Math.max(...values) - Math.min(...values) <= thresholdNs ? now : new Map(rawMajority);
      }
    } else if (raw.size >= 3) {
      const sorted = [...raw.values()].sort((a, b) => a - b);
      const f = Math.floor((sorted.length - 1) / 3);
      const slackNs = Math.max(thresholdNs, PROVISIONAL_BAND_SLACK_NS);
      if (standsNs < (sorted[f] as number) - slackNs || standsNs > (sorted[sorted.length - 1 - f] as number) + slackNs) {
        ({ group, basis } = startReference(raw, thresholdNs, votes));
      }
    }
  }
  const average = basis === 'midpoint' ? midpointOf(group) : faultTolerantAverage(group, thresholdNs);
  const outside = [...offsets.keys()].filter((id) => !group.has(id));
  const correctionsNs = new Map<string, number>();
  for (const [id, offsetNs] of offsets) correctionsNs.set(id, average.averageNs - offsetNs);
  return { ...average, excluded: [...average.excluded, ...outside], correctionsNs, basis };
}

/** The mean of the middle clocks, all of them included (they have no company to filter them). */
function midpointOf(middle: ReadonlyMap<string, number>): AverageResult {
  const values = [...middle.values()];
  // From the lowest, not a plain sum: two clocks at +-decades would overflow nothing but lose precision.
  const lowNs = Math.min(...values);
  const averageNs = lowNs + values.reduce((sum, value) => sum + (value - lowNs), 0) / values.length;
  return { medianNs: median(values), averageNs, boundNs: 0, included: [...middle.keys()], excluded: [] };
}

/**
 * A round of a master that is the reference itself (it follows an upstream, or holds over after
 * losing one): every member that answered is corrected to the master's clock, and the master is
 * not corrected. No average, so no outliers: a member far off is simply brought to the master.
 */
export function referenceRound(masterId: string, offsets: ReadonlyMap<string, number>): RoundResult {
  const correctionsNs = new Map<string, number>();
  for (const [nodeId, offsetNs] of offsets) if (nodeId !== masterId) correctionsNs.set(nodeId, -offsetNs);
  const values = [...offsets.values()];
  return {
    medianNs: values.length === 0 ? 0 : median(values),
    averageNs: 0,
    boundNs: 0,
    included: [...correctionsNs.keys()],
    excluded: [],
    correctionsNs,
    basis: 'master',
  };
}
