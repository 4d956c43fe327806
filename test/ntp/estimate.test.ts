// The conversion of a selection into the core's UpstreamEstimate (src/ntp/estimate.ts): the
// combined offset, Marzullo's bound, the system peer's root distance, stratum and leap, and a
// sample time that names each sample once (falsetickers' samples do not count).
import { describe, expect, it } from 'vitest';
import type { UpstreamCandidate } from '../../src/ntp/client.ts';
import { upstreamEstimate } from '../../src/ntp/estimate.ts';
import { selectUpstreams } from '../../src/ntp/selection.ts';
import { unusableReason } from '../../src/core/upstream/estimate.ts';

const ms = 1e6;
const server = (id: string, offsetMs: number, rootDistanceMs: number, stratum = 2, leap: 0 | 1 | 2 = 0): UpstreamCandidate =>
  ({ id, usable: true, offsetNs: offsetMs * ms, rootDistanceNs: rootDistanceMs * ms, stratum, leap });

describe('upstreamEstimate', () => {
  it('carries the selection: offset, bound, the system peer and its root distance, stratum and leap', () => {
    const selection = selectUpstreams([server('a:123', 10, 5, 2), server('b:123', 12, 10, 1, 1), server('c:123', 900, 5, 1)]);
    expect(selection.ok).toBe(true);
    const outcome = upstreamEstimate(selection, new Map([['a:123', 1000], ['b:123', 1500], ['c:123', 2000]]));
    expect(outcome.why).toBeNull();
    const estimate = outcome.estimate;
    if (estimate === null || !selection.ok) throw new Error('expected an estimate');
    // b has the lowest stratum among the truechimers (c is a falseticker, though stratum 1).
    expect(estimate.systemPeer).toBe('b:123');
    expect(estimate.stratum).toBe(1);
    expect(estimate.leap).toBe(1);
    expect(estimate.rootDistanceNs).toBe(10 * ms);
    expect(estimate.truechimers).toBe(2);
    expect(estimate.offsetNs).toBe(selection.offsetNs);
    // 1/rootDistance weights: (10/5 + 12/10) / (1/5 + 1/10) ms.
    expect(estimate.offsetNs).toBeCloseTo(((10 / 5 + 12 / 10) / (1 / 5 + 1 / 10)) * ms, 3);
    expect(estimate.errorBoundNs).toBe(selection.errorBoundNs);
    // The falseticker's newer sample is not what the estimate rests on.
    expect(estimate.sampledMs).toBe(1500);
    expect(unusableReason(estimate)).toBeNull();
  });

  it('gives the same sampledMs until a truechimer has a new sample', () => {
    const candidates = [server('a:123', 1, 5), server('b:123', 2, 5), server('c:123', 500, 5)];
    const times = new Map([['a:123', 100], ['b:123', 200], ['c:123', 300]]);
    const first = upstreamEstimate(selectUpstreams(candidates), times).estimate?.sampledMs;
    times.set('c:123', 400);
    expect(upstreamEstimate(selectUpstreams(candidates), times).estimate?.sampledMs).toBe(first);
    times.set('a:123', 450);
    expect(upstreamEstimate(selectUpstreams(candidates), times).estimate?.sampledMs).toBe(450);
  });

  it('names the system peer\'s sample apart (peerSampledMs): another truechimer\'s new sample does not change it', () => {
    const candidates = [server('a:123', 1, 5), server('b:123', 2, 10), server('c:123', 3, 10)];
    const times = new Map([['a:123', 100], ['b:123', 200], ['c:123', 300]]);
    const first = upstreamEstimate(selectUpstreams(candidates), times).estimate;
    expect(first?.systemPeer).toBe('a:123');
    expect(first?.peerSampledMs).toBe(100);
    times.set('b:123', 400);
    const second = upstreamEstimate(selectUpstreams(candidates), times).estimate;
    expect(second?.sampledMs).toBe(400);
    expect(second?.peerSampledMs).toBe(100);
    times.set('a:123', 500);
    expect(upstreamEstimate(selectUpstreams(candidates), times).estimate?.peerSampledMs).toBe(500);
  });

  it('is null with the selection\'s reason when no majority agrees or no server is usable', () => {
    const disagree = upstreamEstimate(selectUpstreams([server('a:123', 0, 5), server('b:123', 2000, 5)]), new Map([['a:123', 1], ['b:123', 2]]));
    expect(disagree.estimate).toBeNull();
    expect(disagree.why).toMatch(/no majority/);
    const none = upstreamEstimate(selectUpstreams([{ id: 'a:123', usable: false, exclusion: 'unreachable', reason: 'no usable reply' }]), new Map());
    expect(none.estimate).toBeNull();
    expect(none.why).toMatch(/no upstream server is usable/);
  });

  it('is null when no sample time is known for the selected servers', () => {
    const outcome = upstreamEstimate(selectUpstreams([server('a:123', 0, 5)]), new Map());
    expect(outcome.estimate).toBeNull();
    expect(outcome.why).toMatch(/no sample time/);
  });
});
