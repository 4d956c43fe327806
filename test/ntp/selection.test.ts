// Selection among upstream servers (src/ntp/selection.ts): Marzullo's intersection as RFC 5905
// writes it; truechimers' offsets combined by 1/rootDistance; falsetickers, a lack of majority
// (two servers seconds apart) and servers that are not candidates reported with reasons.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { UpstreamCandidate } from '../../src/ntp/client.ts';
import { intersection, selectUpstreams } from '../../src/ntp/selection.ts';

const ms = 1e6;
const server = (id: string, offsetMs: number, rootDistanceMs: number, stratum = 1): UpstreamCandidate =>
  ({ id, usable: true, offsetNs: offsetMs * ms, rootDistanceNs: rootDistanceMs * ms, stratum, leap: 0 });

describe('intersection', () => {
  it('is the overlap of all intervals when they all agree', () => {
    expect(intersection([{ offsetNs: 0, rootDistanceNs: 10 }, { offsetNs: 5, rootDistanceNs: 10 }, { offsetNs: 2, rootDistanceNs: 4 }]))
      .toEqual({ lowNs: -2, highNs: 6, allowed: 0 });
  });

  it('allows one falseticker among three', () => {
    expect(intersection([{ offsetNs: 0, rootDistanceNs: 10 }, { offsetNs: 5, rootDistanceNs: 10 }, { offsetNs: 1000, rootDistanceNs: 10 }]))
      .toEqual({ lowNs: -5, highNs: 10, allowed: 1 });
  });

  it('has no majority for two disjoint intervals, nor for none', () => {
    expect(intersection([{ offsetNs: 0, rootDistanceNs: 10 }, { offsetNs: 100, rootDistanceNs: 10 }])).toBeNull();
    expect(intersection([])).toBeNull();
  });

  it('counts touching intervals as overlapping', () => {
    expect(intersection([{ offsetNs: 0, rootDistanceNs: 10 }, { offsetNs: 20, rootDistanceNs: 10 }])).toEqual({ lowNs: 10, highNs: 10, allowed: 0 });
  });

  it('property: when more than half of the intervals contain the truth, a majority is found', () => {
    // Truechimers contain 0 (the truth); fewer than half are arbitrary.
    const interval = fc.record({ offsetNs: fc.integer({ min: -1_000_000, max: 1_000_000 }), rootDistanceNs: fc.integer({ min: 1, max: 2_000_000 }) });
    const truechimer = interval.filter(({ offsetNs, rootDistanceNs }) => Math.abs(offsetNs) <= rootDistanceNs);
    fc.assert(fc.property(fc.array(truechimer, { minLength: 1, maxLength: 5 }), fc.array(interval, { maxLength: 4 }), (good, bad) => {
      fc.pre(good.length > bad.length);
      const found = intersection([...good, ...bad]);
      expect(found).not.toBeNull();
      if (found === null) return;
      expect(found.lowNs).toBeLessThanOrEqual(found.highNs);
      expect(found.allowed).toBeLessThanOrEqual(bad.length);
    }));
  });
});

describe('selectUpstreams', () => {
  it('one server: it is selected and its offset followed', () => {
    const result = selectUpstreams([server('a', 3, 1)]);
    expect(result).toMatchObject({ ok: true, selected: ['a'], systemPeer: 'a', stratum: 1, offsetNs: 3 * ms, errorBoundNs: 1 * ms });
    expect(result.servers[0]).toMatchObject({ id: 'a', verdict: 'truechimer' });
  });

  it('three agreeing: all truechimers, offset weighted by 1/rootDistance, bound from the intersection', () => {
    const result = selectUpstreams([server('a', 1, 2), server('b', 2, 4, 2), server('c', 1.5, 1, 2)]);
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    expect(result.selected).toEqual(['a', 'b', 'c']);
    const expectedMs = (1 / 2 + 2 / 4 + 1.5 / 1) / (1 / 2 + 1 / 4 + 1);
    expect(result.offsetNs / ms).toBeCloseTo(expectedMs, 9);
    // The intersection is c's interval [0.5, 2.5] ms, inside a's [-1, 3] and b's [-2, 6].
    expect(result.lowNs / ms).toBeCloseTo(0.5, 9);
    expect(result.highNs / ms).toBeCloseTo(2.5, 9);
    expect(result.errorBoundNs / ms).toBeCloseTo(Math.max(expectedMs - 0.5, 2.5 - expectedMs), 9);
    // Lowest stratum wins the system peer, whatever its root distance.
    expect(result).toMatchObject({ systemPeer: 'a', stratum: 1 });
  });

  it('three servers, one 2 s off: it is a falseticker and does not move the offset', () => {
    const result = selectUpstreams([server('a', 0.1, 0.5), server('ours', 2000, 0.5), server('b', -0.1, 0.5)]);
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    expect(result.selected).toEqual(['a', 'b']);
    expect(Math.abs(result.offsetNs)).toBeLessThan(0.1 * ms);
    const ours = result.servers.find((entry) => entry.id === 'ours');
    expect(ours).toMatchObject({ verdict: 'falseticker', offsetNs: 2000 * ms });
    expect(ours?.reason).toMatch(/misses the intersection/);
  });

  it('two servers seconds apart: no majority, nothing selected, and it says why', () => {
    const result = selectUpstreams([server('a', 0, 1), server('b', 3000, 1)]);
    expect(result).toMatchObject({ ok: false, code: 'noMajority' });
    if (result.ok) return;
    expect(result.reason).toMatch(/no majority of the 2 usable servers agrees/);
    expect(result.reason).toContain('3000.000 ms');
    expect(result.servers.map((entry) => entry.verdict)).toEqual(['falseticker', 'falseticker']);
  });

  it('two of four against two: no majority', () => {
    const result = selectUpstreams([server('a', 0, 1), server('b', 0.5, 1), server('c', 100, 1), server('d', 100.5, 1)]);
    expect(result).toMatchObject({ ok: false, code: 'noMajority' });
  });

  it('servers that are not candidates are reported with their reasons and do not count in the majority', () => {
    const result = selectUpstreams([
      server('a', 1, 1),
      { id: 'down', usable: false, exclusion: 'unreachable', reason: 'no usable reply to the last 8 requests' },
      { id: 'lost', usable: false, exclusion: 'unsynchronized', reason: 'leap 3' },
    ]);
    expect(result).toMatchObject({ ok: true, selected: ['a'] });
    expect(result.servers.map((entry) => [entry.id, entry.verdict])).toEqual([['a', 'truechimer'], ['down', 'unreachable'], ['lost', 'unsynchronized']]);
    expect(result.servers[1]?.reason).toContain('no usable reply');
  });

  it('no candidate at all: noCandidates', () => {
    expect(selectUpstreams([])).toMatchObject({ ok: false, code: 'noCandidates', reason: 'no upstream servers' });
    expect(selectUpstreams([{ id: 'x', usable: false, exclusion: 'rejected', reason: 'DENY' }])).toMatchObject({ ok: false, code: 'noCandidates' });
  });

  it('property: with a majority of truechimers around the truth, the combined offset is within the bound of it', () => {
    const truth = fc.integer({ min: -5_000_000, max: 5_000_000 });
    fc.assert(fc.property(truth, fc.array(fc.record({ errNs: fc.integer({ min: -1_000_000, max: 1_000_000 }), slackNs: fc.integer({ min: 0, max: 1_000_000 }) }), { minLength: 1, maxLength: 5 }),
      fc.array(fc.integer({ min: 10_000_000, max: 3_000_000_000 }), { maxLength: 4 }), (truthNs, good, badOffsets) => {
        fc.pre(good.length > badOffsets.length);
        const candidates: UpstreamCandidate[] = [
          ...good.map(({ errNs, slackNs }, index): UpstreamCandidate => ({ id: `g${index}`, usable: true, offsetNs: truthNs + errNs, rootDistanceNs: Math.abs(errNs) + slackNs + 1, stratum: 1, leap: 0 })),
          ...badOffsets.map((offsetNs, index): UpstreamCandidate => ({ id: `f${index}`, usable: true, offsetNs: truthNs + offsetNs, rootDistanceNs: 1000, stratum: 1, leap: 0 })),
        ];
        const result = selectUpstreams(candidates);
        expect(result.ok).toBe(true);
        if (!result.ok) return;
        expect(Math.abs(result.offsetNs - truthNs)).toBeLessThanOrEqual(result.errorBoundNs + 1e-6);
      }));
  });
});
