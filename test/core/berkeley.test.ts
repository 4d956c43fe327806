// Berkeley arithmetic: four-timestamp samples, median, fault-tolerant average and round corrections.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { agreeingGroups, berkeleyRound, betterSample, faultTolerantAverage, median, middleClocks, sampleFromTimestamps } from '../../src/core/sync/berkeley.ts';

const MS = 1_000_000;
/** A realistic epoch in ns, with odd low digits that a float64 cannot represent exactly. */
const EPOCH_NS = 1_790_000_000_123_456_789n;

/**
 * Builds the four timestamps of one exchange. The member clock reads `offsetNs` ahead of the
 * master; the poll takes `outNs` to arrive, the member holds it `processingNs`, the reply takes `backNs`.
 */
function exchange(t1Ns: bigint, offsetNs: bigint, outNs: bigint, processingNs: bigint, backNs: bigint): [bigint, bigint, bigint, bigint] {
  const t2 = t1Ns + outNs + offsetNs;
  const t3 = t2 + processingNs;
  const t4 = t3 - offsetNs + backNs;
  return [t1Ns, t2, t3, t4];
}

describe('sampleFromTimestamps', () => {
  it.each([
    // name, member offset, out, processing, back, expected offset, expected delay
    ['in sync, symmetric', 0n, 1n * 100_000n, 0n, 100_000n, 0, 200_000],
    ['ahead, symmetric', 5n * 1_000_000n, 250_000n, 0n, 250_000n, 5 * MS, 500_000],
    ['behind, symmetric', -2_000_000_000n, 40_000n, 0n, 40_000n, -2000 * MS, 80_000],
    ['member processing time is excluded from the delay', 3n * 1_000_000n, 100_000n, 7n * 1_000_000n, 100_000n, 3 * MS, 200_000],
    ['zero delay', 123n, 0n, 0n, 0n, 123, 0],
    // Asymmetric paths bias the estimate by half the asymmetry: (out - back) / 2.
    ['asymmetric, slow return', 10n * 1_000_000n, 1_000_000n, 0n, 3_000_000n, 10 * MS - 1 * MS, 4 * MS],
    ['asymmetric, slow outbound', 10n * 1_000_000n, 3_000_000n, 500_000n, 1_000_000n, 10 * MS + 1 * MS, 4 * MS],
  ])('%s', (_name, offsetNs, outNs, processingNs, backNs, expectedOffsetNs, expectedDelayNs) => {
    const [t1, t2, t3, t4] = exchange(EPOCH_NS, offsetNs, outNs, processingNs, backNs);
    const sample = sampleFromTimestamps(t1, t2, t3, t4);
    expect(sample.offsetNs).toBe(expectedOffsetNs);
    expect(sample.delayNs).toBe(expectedDelayNs);
  });

  it('the asymmetry error never exceeds half the delay', () => {
    for (const [outNs, backNs] of [
      [0n, 10_000_000n],
      [10_000_000n, 0n],
      [1n, 999n],
    ] as const) {
      const [t1, t2, t3, t4] = exchange(EPOCH_NS, 777n, outNs, 1234n, backNs);
      const sample = sampleFromTimestamps(t1, t2, t3, t4);
      expect(Math.abs(sample.offsetNs - 777)).toBeLessThanOrEqual(sample.delayNs / 2);
    }
  });

  it('keeps nanosecond precision at epoch-sized timestamps', () => {
    // Number(EPOCH_NS) is off by tens of ns; the differences must be taken in bigint first.
    expect(BigInt(Number(EPOCH_NS))).not.toBe(EPOCH_NS);
    const [t1, t2, t3, t4] = exchange(EPOCH_NS, 1n, 3n, 5n, 7n);
    // offset 1 ns, biased by half the path asymmetry (3 - 7) / 2.
    expect(sampleFromTimestamps(t1, t2, t3, t4)).toEqual({ offsetNs: 1 + (3 - 7) / 2, delayNs: 10 });
    const [u1, u2, u3, u4] = exchange(EPOCH_NS + 1n, -1n, 1n, 0n, 1n);
    expect(sampleFromTimestamps(u1, u2, u3, u4)).toEqual({ offsetNs: -1, delayNs: 2 });
  });

  it('keeps precision near the top of the 63-bit range', () => {
    const top = (1n << 63n) - 1_000_000n;
    const [t1, t2, t3, t4] = exchange(top, 12_345n, 11n, 100n, 11n);
    expect(sampleFromTimestamps(t1, t2, t3, t4)).toEqual({ offsetNs: 12_345, delayNs: 22 });
  });

  it('betterSample keeps the lowest-delay sample', () => {
    const a = { offsetNs: 10, delayNs: 500 };
    const b = { offsetNs: 20, delayNs: 100 };
    const c = { offsetNs: 30, delayNs: 300 };
    expect(betterSample(undefined, a)).toBe(a);
    expect(betterSample(a, b)).toBe(b);
    expect(betterSample(b, c)).toBe(b);
    // A tie keeps the current one.
    expect(betterSample(b, { offsetNs: 99, delayNs: 100 })).toBe(b);
  });
});

describe('median', () => {
  it.each([
    [[5], 5],
    [[3, 1, 2], 2],
    [[4, 1, 3, 2], 2.5],
    [[-10, 10], 0],
    [[7, 7, 7, 100], 7],
    [[1e9, -1e9, 0, 5, 6], 5],
  ])('median(%j) = %d', (values, expected) => {
    expect(median(values)).toBe(expected);
  });

  it('sorts numerically, not as strings', () => {
    expect(median([10, 9, 100])).toBe(10);
  });

  it('does not reorder its input', () => {
    const values = [3, 1, 2];
    median(values);
    expect(values).toEqual([3, 1, 2]);
  });

  it('of nothing is a RangeError', () => {
    expect(() => median([])).toThrow(RangeError);
  });
});

describe('faultTolerantAverage', () => {
  const offsets = (entries: Record<string, number>) => new Map(Object.entries(entries));

  it('averages everyone within the bound', () => {
    const result = faultTolerantAverage(offsets({ a: 0, b: 10, c: 20 }), 100);
    expect(result).toEqual({ medianNs: 10, averageNs: 10, boundNs: 100, included: ['a', 'b', 'c'], excluded: [] });
  });

  it('leaves an outlier out of the average', () => {
    const result = faultTolerantAverage(offsets({ a: 0, b: 10, c: 20, wild: 5e9 }), 100);
    expect(result.medianNs).toBe(15);
    expect(result.averageNs).toBe(10);
    expect(result.included.sort()).toEqual(['a', 'b', 'c']);
    expect(result.excluded).toEqual(['wild']);
  });

  it('leaves outliers on both sides out', () => {
    const result = faultTolerantAverage(offsets({ low: -3e9, a: 100, b: 200, c: 300, high: 2e9 }), 1000);
    expect(result.medianNs).toBe(200);
    expect(result.averageNs).toBe(200);
    expect(result.excluded.sort()).toEqual(['high', 'low']);
  });

  it('includes an offset exactly at the bound', () => {
    const result = faultTolerantAverage(offsets({ a: 0, b: 100, c: 200 }), 100);
    expect(result.excluded).toEqual([]);
    expect(result.averageNs).toBe(100);
  });

  it('excludes an offset just past the bound', () => {
    const result = faultTolerantAverage(offsets({ a: 0, b: 100, c: 201 }), 100);
    expect(result.excluded).toEqual(['c']);
    expect(result.averageNs).toBe(50);
  });

  it('handles an even count with the median between the middle two', () => {
    const result = faultTolerantAverage(offsets({ a: 0, b: 40, c: 60, d: 100 }), 50);
    expect(result.medianNs).toBe(50);
    expect(result.excluded).toEqual([]);
    expect(result.averageNs).toBe(50);
  });

  it('an even count split into two far-apart pairs excludes everyone and falls back to the median', () => {
    const result = faultTolerantAverage(offsets({ a: 0, b: 10, c: 1e9, d: 1e9 + 10 }), 1000);
    expect(result.included).toEqual([]);
    expect(result.excluded.sort()).toEqual(['a', 'b', 'c', 'd']);
    expect(result.averageNs).toBe(result.medianNs);
    expect(result.medianNs).toBe((10 + 1e9) / 2);
  });

  it('when all are far apart, only the median itself is averaged (odd count)', () => {
    const result = faultTolerantAverage(offsets({ a: -5e6, b: 1e6, c: 9e6 }), 10);
    expect(result.included).toEqual(['b']);
    expect(result.averageNs).toBe(1e6);
  });

  it('second stage: the bound follows the round\'s spread (4 MAD), above the floor and below the threshold', () => {
    const us = 1000;
    // Nine quiet clocks within +-20 us and one 400 us away (a slow sample, a clock still slewing):
    // far inside the 20 ms threshold, but far outside this round's spread.
    const quiet = { a: -20 * us, b: -15 * us, c: -10 * us, d: -5 * us, e: 0, f: 5 * us, g: 10 * us, h: 15 * us, i: 20 * us };
    const result = faultTolerantAverage(offsets({ ...quiet, slow: 400 * us }), 20e6, 100 * us);
    expect(result.excluded).toEqual(['slow']);
    expect(result.averageNs).toBeCloseTo(0, 6);
    expect(result.boundNs).toBe(100 * us); // 4 MAD = 50 us, raised to the floor
    // On a noisy LAN (offsets spread over +-2 ms) the bound widens with the MAD and keeps them all.
    const noisy = Object.fromEntries(Object.entries(quiet).map(([id, value]) => [id, value * 100]));
    const wide = faultTolerantAverage(offsets({ ...noisy, far: 3e6 }), 20e6, 100 * us);
    // Median 250 us, median absolute deviation 1.25 ms: the bound is 5 ms.
    expect(wide.boundNs).toBeCloseTo(5e6, 0);
    expect(wide.excluded).toEqual([]);
    // Never wider than the threshold.
    expect(faultTolerantAverage(offsets({ ...noisy, far: 3e6 }), 1e6, 100 * us).boundNs).toBe(1e6);
  });

  it('a single clock is its own average', () => {
    expect(faultTolerantAverage(offsets({ solo: 42 }), 0)).toEqual({ medianNs: 42, averageNs: 42, boundNs: 0, included: ['solo'], excluded: [] });
  });

  it('the result is always finite', () => {
    const result = faultTolerantAverage(offsets({ a: 0, b: 1 }), 0);
    expect(Number.isFinite(result.averageNs)).toBe(true);
    expect(result.averageNs).toBe(0.5);
  });
});

describe('berkeleyRound', () => {
  function expectConverges(result: ReturnType<typeof berkeleyRound>, offsets: Map<string, number>): void {
    const targets = [...offsets].map(([id, offsetNs]) => offsetNs + (result.correctionsNs.get(id) as number));
    for (const target of targets) expect(target).toBeCloseTo(result.averageNs, 6);
  }

  it('includes the master with offset 0 and corrects it too', () => {
    const members = new Map([
      ['b', 300],
      ['c', 600],
    ]);
    const result = berkeleyRound('m', members, 1e6);
    expect(result.averageNs).toBe(300);
    expect(result.included.sort()).toEqual(['b', 'c', 'm']);
    expect(result.correctionsNs.get('m')).toBe(300);
    expect(result.correctionsNs.get('b')).toBe(0);
    expect(result.correctionsNs.get('c')).toBe(-300);
    expect(result.correctionsNs.size).toBe(3);
    expectConverges(result, new Map([['m', 0], ...members]));
  });

  it('a master alone corrects nothing', () => {
    const result = berkeleyRound('m', new Map(), 1000);
    expect([...result.correctionsNs]).toEqual([['m', 0]]);
  });

  it('corrects excluded outliers too, to the average of the others', () => {
    const members = new Map([
      ['b', 1_000],
      ['c', -1_000],
      ['d', 2_000],
      ['wild', 3_600e9],
    ]);
    const result = berkeleyRound('m', members, 20e6);
    expect(result.excluded).toEqual(['wild']);
    // (0 + 1000 - 1000 + 2000) / 4: the master counts, the wild clock does not.
    expect(result.averageNs).toBe(500);
    expect(result.correctionsNs.get('wild')).toBe(500 - 3_600e9);
    expect(result.correctionsNs.get('m')).toBe(500);
    expectConverges(result, new Map([['m', 0], ...members]));
  });

  it('brings everyone to the same value for realistic skews', () => {
    const members = new Map<string, number>();
    // Offsets up to +-2 s, deterministic.
    for (let index = 0; index < 19; index += 1) members.set(`n${index}`, Math.round(Math.sin(index * 1.7) * 2e9) + index);
    const result = berkeleyRound('m', members, 20e6);
    expect(result.correctionsNs.size).toBe(20);
    expectConverges(result, new Map([['m', 0], ...members]));
  });

  it('an even split follows the group ahead, so nobody has to go backwards', () => {
    const members = new Map([['far', 5e9]]);
    const result = berkeleyRound('m', members, 1000);
    expect(result.included).toEqual(['far']);
    expect(result.excluded).toEqual(['m']);
    expect(result.averageNs).toBe(5e9);
    expect(result.correctionsNs.get('m')).toBe(5e9);
    expect(result.correctionsNs.get('far')).toBe(0);
  });

  it('two islands meeting: the larger group is followed; of equal ones, the one ahead', () => {
    const islands = new Map([
      ['a1', 10],
      ['a2', 20],
      ['b1', 1e9],
      ['b2', 1e9 + 10],
      ['b3', 1e9 + 30],
    ]);
    const larger = berkeleyRound('a0', islands, 20e6);
    expect(larger.included.sort()).toEqual(['b1', 'b2', 'b3']);
    expect(larger.correctionsNs.get('a0')).toBeCloseTo(1e9 + 40 / 3, 3);
    const behindIsLarger = berkeleyRound('a0', new Map([...islands].filter(([id]) => id !== 'b3' && id !== 'b2')), 20e6);
    expect(behindIsLarger.included.sort()).toEqual(['a0', 'a1', 'a2']);
  });

  it('a lone wild clock is never followed while a larger group exists', () => {
    const result = berkeleyRound('m', new Map([['ok', 100], ['wild', 3600e9]]), 20e6);
    expect(result.included.sort()).toEqual(['m', 'ok']);
    expect(result.correctionsNs.get('wild')).toBeLessThan(-3599e9);
  });
});

describe('berkeleyRound with voters (only synchronized clocks vote)', () => {
  it('a member with a wild unsynchronized clock does not move the synchronized ones, and is still corrected', () => {
    const offsets = new Map([
      ['synced-a', 100],
      ['fresh-b', 5e9],
    ]);
    const result = berkeleyRound('master', offsets, 20e6, (id) => id !== 'fresh-b');
    expect(result.averageNs).toBe(50);
    expect(result.correctionsNs.get('fresh-b')).toBe(50 - 5e9);
    expect(result.correctionsNs.get('master')).toBe(50);
    expect(result.excluded).toContain('fresh-b');
  });

  it('a lone member claiming a synchronized clock while the cluster starts does not decide: everyone votes', () => {
    const offsets = new Map([
      ['a', 1000],
      ['b', 2000],
      ['c', 1500],
      ['liar', 3600e9],
    ]);
    const result = berkeleyRound('master', offsets, 20e6, (id) => id === 'liar');
    expect(Math.abs(result.averageNs)).toBeLessThan(3000);
    expect(result.excluded).toContain('liar');
    // A majority of voters, or the master among them, still decides alone.
    expect(berkeleyRound('master', offsets, 20e6, (id) => id !== 'a' && id !== 'master').averageNs).toBeGreaterThan(1000);
    expect(berkeleyRound('master', new Map([['a', 5e6]]), 20e6, (id) => id === 'master').averageNs).toBe(0);
  });

  it('with no voter at all (a cluster just starting), everyone votes', () => {
    const offsets = new Map([
      ['a', 1000],
      ['b', 2000],
    ]);
    const result = berkeleyRound('master', offsets, 20e6, () => false);
    expect(result.averageNs).toBe(1000);
    expect(result.excluded).toEqual([]);
  });

  it('an unsynchronized master does not vote either', () => {
    const offsets = new Map([['a', 4e9]]);
    const result = berkeleyRound('master', offsets, 20e6, (id) => id === 'a');
    expect(result.correctionsNs.get('master')).toBe(4e9);
    expect(result.correctionsNs.get('a')).toBe(0);
  });
});

describe('berkeleyRound while clocks are not synchronized (a cluster starting): one wrong clock must not capture it', () => {
  const S = 1e9;
  const THRESHOLD = 20e6;
  const nobody = () => false;
  /** Offsets against `masterId` from offsets against some common time. */
  function againstMaster(masterId: string, clocks: Record<string, number>): Map<string, number> {
    const masterNs = clocks[masterId] as number;
    return new Map(Object.entries(clocks).filter(([id]) => id !== masterId).map(([id, offsetNs]) => [id, offsetNs - masterNs]));
  }

  it.each(['a', 'b', 'c', 'd', 'e'])('the issue\'s five boxes (+3600, -1, 0, 1, -2 s): the middle clock is followed, whoever is master (%s)', (masterId) => {
    const clocks: Record<string, number> = { a: 3600 * S, b: -1 * S, c: 0, d: 1 * S, e: -2 * S };
    const result = berkeleyRound(masterId, againstMaster(masterId, clocks), THRESHOLD, nobody);
    expect(result.basis).toBe('midpoint');
    // Everyone moves to c's time (0 s on the common scale), not to a's hour.
    expect(result.averageNs + (clocks[masterId] as number)).toBe(0);
    expect(result.included).toEqual(['c']);
    expect(result.excluded).toContain('a');
  });

  it('an even count of clocks that all disagree follows the mean of the middle two', () => {
    const result = berkeleyRound('m', new Map([['a', -2 * S], ['b', 1 * S], ['wild', -3600 * S]]), THRESHOLD, nobody);
    // Sorted: wild, a, m (0), b: the middle two are a and m.
    expect(result.basis).toBe('midpoint');
    expect(result.averageNs).toBe(-1 * S);
    expect(result.included.sort()).toEqual(['a', 'm']);
  });

  it('two clocks that disagree meet half-way (neither is the extreme of the other)', () => {
    const result = berkeleyRound('m', new Map([['far', 5 * S]]), THRESHOLD, nobody);
    expect(result.averageNs).toBe(2.5 * S);
    expect(result.basis).toBe('midpoint');
  });

  it('a majority of agreeing clocks is followed and the wild one left out (unchanged)', () => {
    const result = berkeleyRound('m', new Map([['a', 4e6], ['b', 1e6], ['c', 2e6], ['wild', 3600 * S]]), THRESHOLD, nobody);
    expect(result.basis).toBe('majority');
    expect(result.averageNs).toBeCloseTo(7e6 / 4, 6);
    expect(result.excluded).toEqual(['wild']);
  });

  it('two wild clocks that agree with each other (the same bad image) do not capture five that disagree', () => {
    const clocks = { w1: 3600 * S, w2: 3600 * S + 1e6, a: -2 * S, b: -1 * S, m: 0, c: 1 * S, d: 2 * S };
    const result = berkeleyRound('m', againstMaster('m', clocks), THRESHOLD, nobody);
    // The old rule followed the largest group: the wild pair. Now the middle clock (c, sorted 4th
    // of 7: the pair moves the middle by one place, still among the good clocks).
    expect(result.basis).toBe('midpoint');
    expect(result.averageNs).toBe(1 * S);
    expect(result.excluded).toEqual(expect.arrayContaining(['w1', 'w2']));
  });

  it('a group with company at the middle is followed; of two equal ones at the middle, the one ahead', () => {
    // a1,a2 at 0 s and b1,b2 at +3 s, a wild clock ahead: n = 5, the middle clock is b1.
    const odd = berkeleyRound('a1', new Map([['a2', 1e6], ['b1', 3 * S], ['b2', 3 * S + 2e6], ['wild', 3600 * S]]), THRESHOLD, nobody);
    expect(odd.basis).toBe('middle');
    expect(odd.included.sort()).toEqual(['b1', 'b2']);
    expect(odd.averageNs).toBe(3 * S + 1e6);
    // n = 4, two pairs: both hold a middle clock, equally large: the one ahead (nobody steps back).
    const even = berkeleyRound('a1', new Map([['a2', 1e6], ['b1', 3 * S], ['b2', 3 * S + 2e6]]), THRESHOLD, nobody);
    expect(even.basis).toBe('middle');
    expect(even.included.sort()).toEqual(['b1', 'b2']);
    // n = 6, a pair at the middle and lone clocks around it: the pair, not a lone clock.
    const pair = berkeleyRound('m', new Map([['lo', -5 * S], ['x', -1 * S], ['p1', 1 * S], ['p2', 1 * S + 4e6], ['hi', 9 * S]]), THRESHOLD, nobody);
    expect(pair.basis).toBe('middle');
    expect(pair.averageNs).toBe(1 * S + 2e6);
  });

  it('a group with company away from the middle is not followed when no group has a majority', () => {
    // n = 5: lone clocks at -1, 0, +1 s and a pair at +10 s: the old rule followed the pair.
    const result = berkeleyRound('m', new Map([['a', -1 * S], ['b', 1 * S], ['p1', 10 * S], ['p2', 10 * S + 1e6]]), THRESHOLD, nobody);
    expect(result.basis).toBe('midpoint');
    expect(result.averageNs).toBe(1 * S);
  });

  it('synchronized islands meeting (every clock votes) keep the old rule: the largest, the one ahead on a tie', () => {
    const result = berkeleyRound('m', new Map([['a', 2 * S], ['b', 7 * S]]), THRESHOLD, () => true);
    expect(result.basis).toBe('islands');
    expect(result.averageNs).toBe(7 * S);
    expect(berkeleyRound('m', new Map([['a', 1e6], ['b', 7 * S]]), THRESHOLD, () => true).basis).toBe('majority');
  });

  it('property: whatever a minority of wild clocks says, the result lies between the good clocks, and inside the middle ones when all disagree', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 15 }),
        fc.array(fc.double({ min: -10, max: 10, noNaN: true }), { minLength: 15, maxLength: 15 }),
        fc.array(fc.tuple(fc.boolean(), fc.double({ min: 1, max: 3e7, noNaN: true })), { minLength: 7, maxLength: 7 }),
        fc.integer({ min: 0, max: 22 }),
        (count, goodS, wildSpec, masterPick) => {
          const wildCount = Math.min(wildSpec.length, Math.ceil(count / 2) - 1);
          const clocks = new Map<string, number>();
          // Good clocks within +-10 s; wild ones 1 s to a year beyond them, ahead or behind.
          for (let index = 0; index < count - wildCount; index += 1) clocks.set(`g${index}`, Math.round((goodS[index] as number) * S));
          for (let index = 0; index < wildCount; index += 1) {
            const [ahead, beyondS] = wildSpec[index] as [boolean, number];
            clocks.set(`w${index}`, Math.round((ahead ? 10 + beyondS : -10 - beyondS) * S));
          }
          const ids = [...clocks.keys()];
          const masterId = ids[masterPick % ids.length] as string;
          const masterNs = clocks.get(masterId) as number;
          const members = new Map([...clocks].filter(([id]) => id !== masterId).map(([id, offsetNs]) => [id, offsetNs - masterNs]));
          const result = berkeleyRound(masterId, members, THRESHOLD, nobody);
          const targetNs = result.averageNs + masterNs;
          const good = [...clocks].filter(([id]) => id.startsWith('g')).map(([, offsetNs]) => offsetNs);
          expect(targetNs).toBeGreaterThanOrEqual(Math.min(...good) - 1000);
          expect(targetNs).toBeLessThanOrEqual(Math.max(...good) + 1000);
          // No two clocks agree: exactly the fault-tolerant midpoint.
          if (agreeingGroups(clocks, THRESHOLD).every((group) => group.length === 1)) {
            const middle = [...middleClocks(clocks).values()];
            expect(targetNs).toBeCloseTo(middle.reduce((sum, value) => sum + value, 0) / middle.length, -4);
          }
        },
      ),
      { seed: 14, numRuns: 2000 },
    );
  });
});

describe('berkeleyRound while the cluster forms (provisional times): boxes that boot later are not captured by where the first ones met', () => {
  const S = 1e9;
  const THRESHOLD = 20e6;
  // G (good, 0 s) and W (an hour ahead) booted first and met at the midpoint, +1800 s: G moved
  // +1800 s, W -1800 s, and both are synchronized. Three good boxes boot later at 0 s.
  const pair = { g: 1800 * S, w: -1800 * S } as Record<string, number>;
  const synced = (id: string) => id === 'g' || id === 'w';

  it('a majority of raw clocks that agree outright outweighs a pair that agrees only because it moved (G is master)', () => {
    // Against G's clock (+1800 s): W agrees with it, the three later boxes are 1800 s behind.
    const members = new Map([['w', 0], ['a', -1800 * S], ['b', -1800 * S + 2e6], ['c', -1800 * S - 1e6]]);
    const result = berkeleyRound('g', members, THRESHOLD, synced, (id) => pair[id] ?? 0);
    expect(result.basis).toBe('majority');
    // Everyone to the later boxes' time (and G's and W's raw ones): 1800 s back, within a few ms.
    expect(Math.abs(result.averageNs + 1800 * S)).toBeLessThan(3e6);
    expect(result.included.sort()).toEqual(['a', 'b', 'c', 'g']);
    expect(result.correctionsNs.get('w')).toBeCloseTo(result.averageNs, 0);
  });

  it('with one later box agreeing with G (not a majority of current clocks), the raw majority {G, later box} is still followed', () => {
    const result = berkeleyRound('g', new Map([['w', 0], ['a', -1800 * S + 1e6]]), THRESHOLD, synced, (id) => pair[id] ?? 0);
    expect(result.basis).toBe('majority');
    expect(Math.abs(result.averageNs + 1800 * S)).toBeLessThan(2e6);
  });

  it('the same round without provisional times (the old rule) keeps the pair: the case this guards', () => {
    const result = berkeleyRound('g', new Map([['w', 0], ['a', -1800 * S + 1e6]]), THRESHOLD, synced);
    expect(result.averageNs).toBe(0);
  });

  it('an established (locked) voter is never outvoted by later boxes that agree among themselves', () => {
    // G's time is established (null): three fresh boxes that agree (e.g. cloned with one wrong time) do not move it.
    const result = berkeleyRound('g', new Map([['w', 0], ['a', -1800 * S], ['b', -1800 * S], ['c', -1800 * S]]), THRESHOLD, synced, (id) => (id === 'g' ? null : (pair[id] ?? 0)));
    expect(result.averageNs).toBe(0);
  });

  it('without a raw majority the cluster keeps where it stands: a later box seconds away does not move it', () => {
    const result = berkeleyRound('g', new Map([['w', 0], ['a', -1797 * S]]), THRESHOLD, synced, (id) => pair[id] ?? 0);
    expect(result.averageNs).toBe(0);
  });

  it('without a raw majority, a cluster held at an extreme by the first boxes moves to the middle of the raw clocks', () => {
    // G (raw +4 s) and W (raw two years behind) met far behind; five boxes seconds apart boot later.
    // Against G's clock: W agrees with it; the later boxes are about 1.7 years ahead of both.
    const yearNs = 365 * 24 * 3600 * S;
    const shifts: Record<string, number> = { g: -1.71 * yearNs - 4 * S, w: 0.57 * yearNs };
    const later = { a: 1.1, b: -3, c: 0.2, d: 3.3, e: 3 };
    const members = new Map<string, number>([['w', 0], ...Object.entries(later).map(([id, s]) => [id, 1.71 * yearNs + s * S] as [string, number])]);
    const result = berkeleyRound('g', members, THRESHOLD, synced, (id) => shifts[id] ?? 0);
    // The band (f = 2 of 7 left out at each end) is [0.2 s, 3.3 s] raw; the middle raw clock is a (1.1 s).
    expect(result.basis).toBe('midpoint');
    expect(result.included).toEqual(['a']);
    expect(Math.abs(result.averageNs - (1.71 * yearNs + 1.1 * S))).toBeLessThan(1e3);
  });

  it('inside the band the cluster keeps where it stands: a box booting later seconds away does not move it', () => {
    // The cluster stands at G's raw time (0 s); raw clocks at -3, 0 (g), 0.5, 2, 4 s and W an hour ahead.
    const shifts: Record<string, number> = { g: 0, w: -3600 * S };
    const members = new Map([['w', 0], ['a', -3 * S], ['b', 0.5 * S], ['c', 2 * S], ['d', 4 * S]]);
    const result = berkeleyRound('g', members, THRESHOLD, synced, (id) => shifts[id] ?? 0);
    expect(result.averageNs).toBe(0);
  });

  it('a chain of raw clocks (each within the threshold of the next, the ends further apart) is not an outright majority', () => {
    // Raw: g -50 ms, a -45 ms, b -25 ms, w and c seconds away: {g, a, b} is a chain of 3 of 5 spanning 25 ms.
    const shifts: Record<string, number> = { g: 50e6, w: -3 * S };
    const members = new Map([['w', 0], ['a', -45e6], ['b', -25e6], ['c', 5 * S]]);
    const withShift = berkeleyRound('g', members, THRESHOLD, synced, (id) => shifts[id] ?? 0);
    const withoutShift = berkeleyRound('g', members, THRESHOLD, synced);
    expect(withShift.averageNs).toBe(withoutShift.averageNs);
    expect(withShift.averageNs).toBe(0);
  });
});
