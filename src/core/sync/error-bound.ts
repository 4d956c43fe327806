// A bound on |this clock - the master's clock| (issue 17): what status publishes as
// clock.errorBoundNs, the NTP server as root delay and dispersion, and the kernel clock as
// maxerror/esterror.
//
// A member's bound, built as NTP builds its root distance:
// - half the round trip of the measurement the last correction rests on: the offset measured from
//   a round trip can be wrong by at most that much (the request and the answer may have taken any
//   split of the delay);
// - what that correction left uncorrected (the measured offset minus the correction: the
//   discipline applies part of each one, and Berkeley moves the master too) and what of it is
//   still being slewed in;
// - the master's own bound (0 without an upstream; its bound to its upstream once there is one);
// - a frequency tolerance times the time since the correction: the two clocks drift apart at most
//   that fast (ERROR_BOUND_FREQUENCY_TOLERANCE_PPM, NTP's PHI).
// The master's bound is its own uncertainty. A clock that is not synchronized has no bound: null.
//
// Pure: times are monotonic ms from the caller, like the rest of the core.
import { ERROR_BOUND_FREQUENCY_TOLERANCE_PPM } from '../limits.ts';

export interface MemberBoundInputs {
  /** Round trip of the measurement the last correction rests on, ns. */
  measurementDelayNs: number;
  /** |measured offset - correction applied for it|, ns: what the correction deliberately left. */
  uncorrectedNs: number;
  /** Part of the correction still being slewed in, ns (the clock driver's slewRemainingNs; 0 once done). */
  slewRemainingNs: number;
  /** The master's own bound when the measurement was made, ns. */
  masterErrorBoundNs: number;
  /** Time since the measurement, ms (monotonic). */
  sinceMeasurementMs: number;
  /** Defaults to ERROR_BOUND_FREQUENCY_TOLERANCE_PPM. */
  frequencyTolerancePpm?: number;
}

/** The member's bound, ns. A ppm over a ms is exactly one ns. */
export function memberErrorBoundNs(inputs: MemberBoundInputs): number {
  const tolerancePpm = inputs.frequencyTolerancePpm ?? ERROR_BOUND_FREQUENCY_TOLERANCE_PPM;
  return Math.abs(inputs.measurementDelayNs) / 2
    + Math.abs(inputs.uncorrectedNs)
    + Math.abs(inputs.slewRemainingNs)
    + Math.max(0, inputs.masterErrorBoundNs)
    + tolerancePpm * Math.max(0, inputs.sinceMeasurementMs);
}

type BoundState =
  | { kind: 'unsynchronized' }
  | { kind: 'master'; ownUncertaintyNs: number }
  | { kind: 'member'; atMs: number; measurementDelayNs: number; uncorrectedNs: number; masterErrorBoundNs: number };

/**
 * Holds what the bound needs between corrections. The node (or the agent shell) tells it about
 * corrections and role changes; anyone asks for the bound now.
 */
export class ErrorBoundTracker {
  private state: BoundState = { kind: 'unsynchronized' };

  constructor(private readonly frequencyTolerancePpm = ERROR_BOUND_FREQUENCY_TOLERANCE_PPM) {}

  /** This node became (or still is) the synchronized master; its bound is its own uncertainty (0 without an upstream). */
  master(ownUncertaintyNs = 0): void {
    this.state = { kind: 'master', ownUncertaintyNs: Math.max(0, ownUncertaintyNs) };
  }

  /**
   * A correction was applied to this member's clock. `atMs`: monotonic ms of the measurement it
   * rests on (the correction's own arrival time is later by up to the master's reply wait, which
   * would understate the drift term by that times the tolerance: 150 ms x 15 ppm = 2.25 us).
   */
  corrected(atMs: number, measurement: { delayNs: number; uncorrectedNs: number; masterErrorBoundNs: number }): void {
    this.state = { kind: 'member', atMs, measurementDelayNs: measurement.delayNs, uncorrectedNs: measurement.uncorrectedNs, masterErrorBoundNs: measurement.masterErrorBoundNs };
  }

  /** The clock is no longer synchronized (started, stepped by hand, panic, lost the cluster): no bound. */
  unsynchronized(): void {
    this.state = { kind: 'unsynchronized' };
  }

  /** Round trip of the last measurement (NTP root delay), ns; 0 on the master or unsynchronized. */
  get measurementDelayNs(): number {
    return this.state.kind === 'member' ? this.state.measurementDelayNs : 0;
  }

  /** Monotonic ms of the last correction (member), or null. */
  get correctedAtMs(): number | null {
    return this.state.kind === 'member' ? this.state.atMs : null;
  }

  /** The bound at monotonic `nowMs`, ns, or null when not synchronized. `slewRemainingNs` from the clock driver's state. */
  boundNs(nowMs: number, slewRemainingNs = 0): number | null {
    switch (this.state.kind) {
      case 'unsynchronized':
        return null;
      case 'master':
        return this.state.ownUncertaintyNs;
      case 'member':
        return memberErrorBoundNs({
          measurementDelayNs: this.state.measurementDelayNs,
          uncorrectedNs: this.state.uncorrectedNs,
          slewRemainingNs,
          masterErrorBoundNs: this.state.masterErrorBoundNs,
          sinceMeasurementMs: nowMs - this.state.atMs,
          frequencyTolerancePpm: this.frequencyTolerancePpm,
        });
    }
  }
}
