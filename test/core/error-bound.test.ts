// The error bound (src/core/sync/error-bound.ts): half the delay, what the correction left, the
// slew still to come, the master's own bound and the frequency tolerance over the time since;
// the master's bound is its own uncertainty; unsynchronized has none.
import { describe, expect, it } from 'vitest';
import { ERROR_BOUND_FREQUENCY_TOLERANCE_PPM } from '../../src/core/limits.ts';
import { ErrorBoundTracker, memberErrorBoundNs } from '../../src/core/sync/error-bound.ts';

describe('member error bound', () => {
  it('adds half the delay, the uncorrected part, the slew left, the master bound and tolerance x elapsed', () => {
    expect(memberErrorBoundNs({
      measurementDelayNs: 100_000, uncorrectedNs: -7_000, slewRemainingNs: -3_000, masterErrorBoundNs: 2_000,
      sinceMeasurementMs: 1000, frequencyTolerancePpm: 15,
    })).toBe(50_000 + 7_000 + 3_000 + 2_000 + 15_000);
  });

  it('uses the frequency tolerance from limits.ts by default: 1 ppm over 1 ms is 1 ns', () => {
    const base = { measurementDelayNs: 0, uncorrectedNs: 0, slewRemainingNs: 0, masterErrorBoundNs: 0 };
    expect(memberErrorBoundNs({ ...base, sinceMeasurementMs: 0 })).toBe(0);
    expect(memberErrorBoundNs({ ...base, sinceMeasurementMs: 2000 })).toBe(2000 * ERROR_BOUND_FREQUENCY_TOLERANCE_PPM);
  });

  it('never shrinks for an elapsed time that seems negative or a negative master bound', () => {
    expect(memberErrorBoundNs({ measurementDelayNs: 10, uncorrectedNs: 0, slewRemainingNs: 0, masterErrorBoundNs: -5, sinceMeasurementMs: -100 })).toBe(5);
  });
});

describe('ErrorBoundTracker', () => {
  it('has no bound until synchronized, and none again after losing it', () => {
    const tracker = new ErrorBoundTracker();
    expect(tracker.boundNs(0)).toBeNull();
    tracker.corrected(1000, { delayNs: 80_000, uncorrectedNs: 0, masterErrorBoundNs: 0 });
    expect(tracker.boundNs(1000)).toBe(40_000);
    tracker.unsynchronized();
    expect(tracker.boundNs(1000)).toBeNull();
    expect(tracker.correctedAtMs).toBeNull();
  });

  it('grows with the time since the measurement and with a slew in progress', () => {
    const tracker = new ErrorBoundTracker(10);
    tracker.corrected(5000, { delayNs: 60_000, uncorrectedNs: 4_000, masterErrorBoundNs: 1_000 });
    expect(tracker.measurementDelayNs).toBe(60_000);
    expect(tracker.correctedAtMs).toBe(5000);
    expect(tracker.boundNs(5000)).toBe(35_000);
    expect(tracker.boundNs(6000)).toBe(45_000);
    expect(tracker.boundNs(6000, 12_000)).toBe(57_000);
    // A new correction starts again from its own measurement.
    tracker.corrected(7000, { delayNs: 20_000, uncorrectedNs: 0, masterErrorBoundNs: 0 });
    expect(tracker.boundNs(7000)).toBe(10_000);
  });

  it("gives the master its own uncertainty, not growing with time", () => {
    const tracker = new ErrorBoundTracker();
    tracker.master();
    expect(tracker.boundNs(0)).toBe(0);
    expect(tracker.boundNs(1e9)).toBe(0);
    tracker.master(3_000);
    expect(tracker.boundNs(1e9, 50_000)).toBe(3_000);
    expect(tracker.measurementDelayNs).toBe(0);
  });
});
