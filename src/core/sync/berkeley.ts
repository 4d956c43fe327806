// Berkeley arithmetic: offsets from four timestamps, the fault-tolerant average, corrections.
// Offsets are "member clock minus master clock" in nanoseconds.
import { OUTLIER_BOUND_NS_MIN, OUTLIER_MAD_FACTOR } from '../limits.ts';

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
  let sumNs = 0;
  for (const [id, offsetNs] of offsets) {
    if (Math.abs(offsetNs - medianNs) <= boundNs) {
      included.push(id);
      sumNs += offsetNs;
    } else {
      excluded.push(id);
    }
  }
  // With an even count the median can sit between two far-apart clusters and exclude everyone.
  if (included.length === 0) {
    return { medianNs, averageNs: medianNs, boundNs, included, excluded };
  }
  return { medianNs, averageNs: sumNs / included.length, boundNs, included, excluded };
}

export interface RoundResult extends AverageResult {
  /** Per node (master included): how far to move its clock, in ns. */
  correctionsNs: Map<string, number>;
}

/**
 * One Berkeley round's outcome. `memberOffsetsNs` holds each answering member's offset against
 * the master; the master takes part with offset 0. Every node, excluded or not, is told to move
 * to the average.
 */
/**
 * Splits offsets into groups wherever two neighbours (in sorted order) are more than `gapNs`
 * apart, and returns the group the cluster should follow: the largest, and of equally large ones
 * the one ahead. When two synchronized islands meet (a healed partition), following the one ahead
 * means the others step forward instead of slewing backwards for minutes; a lone wild clock is a
 * group of one and is never followed while any larger group exists.
 */
export function referenceGroup(offsets: ReadonlyMap<string, number>, gapNs: number): Map<string, number> {
  const sorted = [...offsets].sort((a, b) => a[1] - b[1]);
  let best: [string, number][] = [];
  let current: [string, number][] = [];
  for (const entry of sorted) {
    const last = current.at(-1);
    if (last !== undefined && entry[1] - last[1] > gapNs) current = [];
    current.push(entry);
    // >= : of equal sizes, the later (ahead) group wins.
    if (current.length >= best.length) best = current;
  }
  return new Map(best);
}

export function berkeleyRound(
  masterId: string,
  memberOffsetsNs: ReadonlyMap<string, number>,
  thresholdNs: number,
  votes: (id: string) => boolean = () => true,
): RoundResult {
  const offsets = new Map<string, number>([[masterId, 0], ...memberOffsetsNs]);
  // Only voters make the average (e.g. synchronized clocks: a box just booted with a wild clock
  // must not drag a synchronized cluster). But voters that are neither a majority nor joined by the
  // master do not decide alone: then everyone votes. Otherwise, while a cluster starts, a single
  // member claiming a synchronized clock (broken, or lying) would be the only voter and every
  // clock would step to it.
  const voters = new Map([...offsets].filter(([id]) => votes(id)));
  const electorate = voters.has(masterId) || voters.size * 2 > offsets.size ? voters : offsets;
  const group = referenceGroup(electorate, thresholdNs);
  const average = faultTolerantAverage(group, thresholdNs);
  const outside = [...offsets.keys()].filter((id) => !group.has(id));
  const correctionsNs = new Map<string, number>();
  for (const [id, offsetNs] of offsets) correctionsNs.set(id, average.averageNs - offsetNs);
  return { ...average, excluded: [...average.excluded, ...outside], correctionsNs };
}
