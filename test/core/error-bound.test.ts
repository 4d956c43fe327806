// The error bound (src/core/sync/error-bound.ts): what the master sends with a correction (half
// the delay, the member's offset and the average, the drift since the round began, its own bound)
// and what the member makes of it over time; the master's bound is its own uncertainty; without
// a measurement of the master followed there is none.
import { describe, expect, it } from 'vitest';
import { ERROR_BOUND_FREQUENCY_TOLERANCE_PPM, ERROR_BOUND_NS_MAX } from '../../src/core/limits.ts';
import { ErrorBoundTracker, roundBoundNs } from '../../src/core/sync/error-bound.ts';

describe('the bound a master sends with a correction', () => {
  it('adds half the delay, |offset|, |average|, the tolerance over the round and the master bound', () => {
    expect(roundBoundNs({ delayNs: 100_000, offsetNs: -7_000, averageNs: 3_000, sinceRoundMs: 100, masterBoundNs: 2_000, frequencyTolerancePpm: 15 })).toBe(
      50_000 + 7_000 + 3_000 + 1_500 + 2_000,
    );
  });

  it('uses the tolerance from limits.ts by default (1 ppm over 1 ms is 1 ns), never shrinks for odd inputs, and is capped', () => {
    const base = { delayNs: 0, offsetNs: 0, averageNs: 0, masterBoundNs: 0 };
    expect(roundBoundNs({ ...base, sinceRoundMs: 200 })).toBe(200 * ERROR_BOUND_FREQUENCY_TOLERANCE_PPM);
    expect(roundBoundNs({ ...base, delayNs: 10, sinceRoundMs: -100, masterBoundNs: -5 })).toBe(5);
    // Beyond any two timestamps apart (offsets of 56 years are a legitimate bound: not capped).
    expect(roundBoundNs({ ...base, offsetNs: 1.77e18, averageNs: 0, delayNs: 1e5, sinceRoundMs: 0 })).toBe(1.77e18 + 5e4);
    expect(roundBoundNs({ ...base, offsetNs: 3e19, averageNs: -3e19, delayNs: 1e16, sinceRoundMs: 0 })).toBe(ERROR_BOUND_NS_MAX);
  });

  it('holds for every split of the correction between member and master (parts in [0, 1] each)', () => {
    // True offset within delay/2 of the measured one; afterwards member - master = o' + g(a - o) - G a.
    const delayNs = 40_000;
    for (const offsetNs of [-30_000, -1, 0, 5_000, 90_000]) {
      for (const averageNs of [-20_000, 0, 12_000]) {
        const boundNs = roundBoundNs({ delayNs, offsetNs, averageNs, sinceRoundMs: 0, masterBoundNs: 0 });
        for (const errorNs of [-delayNs / 2, 0, delayNs / 2]) {
          for (const g of [0, 0.2, 0.5, 1]) {
            for (const G of [0, 0.2, 1]) {
              const leftNs = offsetNs + errorNs + g * (averageNs - offsetNs) - G * averageNs;
              expect(Math.abs(leftNs)).toBeLessThanOrEqual(boundNs);
            }
          }
        }
      }
    }
  });
});

describe('ErrorBoundTracker', () => {
  it('has no bound until a correction, and none again after a reset (a new master, no master)', () => {
    const tracker = new ErrorBoundTracker();
    expect(tracker.boundNs(0)).toBeNull();
    tracker.corrected(1000, { delayNs: 80_000, boundNs: 45_000 });
    expect(tracker.boundNs(1000)).toBe(45_000);
    expect(tracker.measurementDelayNs).toBe(80_000);
    expect(tracker.correctedAtMs).toBe(1000);
    tracker.reset();
    expect(tracker.boundNs(1000)).toBeNull();
    expect(tracker.correctedAtMs).toBeNull();
    expect(tracker.measurementDelayNs).toBe(0);
  });

  it('grows with the time since the correction at the tolerance; a new correction starts again', () => {
    const tracker = new ErrorBoundTracker(10);
    tracker.corrected(5000, { delayNs: 60_000, boundNs: 35_000 });
    expect(tracker.boundNs(5000)).toBe(35_000);
    expect(tracker.boundNs(6000)).toBe(45_000);
    // A clock read at an earlier monotonic time than the correction's does not shrink it.
    expect(tracker.boundNs(4000)).toBe(35_000);
    tracker.corrected(7000, { delayNs: 20_000, boundNs: 10_000 });
    expect(tracker.boundNs(7000)).toBe(10_000);
  });

  it('gives the master its own uncertainty, not growing with time', () => {
    const tracker = new ErrorBoundTracker();
    tracker.master();
    expect(tracker.boundNs(0)).toBe(0);
    expect(tracker.boundNs(1e9)).toBe(0);
    tracker.master(() => 3_000);
    expect(tracker.boundNs(1e9)).toBe(3_000);
    // Following an upstream, the master's own bound is asked at the time it is read.
    tracker.master((nowMs) => 1_000 + nowMs);
    expect(tracker.boundNs(2_000)).toBe(3_000);
    expect(tracker.measurementDelayNs).toBe(0);
  });
});
