// A bound on |this clock - the master's clock| (issue 17): what status publishes as
// clock.errorBoundNs, the NTP server as root delay and dispersion, and the kernel clock as
// maxerror/esterror.
//
// The master computes each member's bound when it sends the round's CORRECT (it alone knows the
// measurement), as NTP builds its root distance:
// - half the round trip of the member's measurement: an offset measured from a round trip can be
//   wrong by at most that much (the request and the answer may have taken any split of the delay);
// - the member's measured offset o and the round's average a: the member moves by any part of its
//   correction a - o (the discipline applies a fraction, holds a spike, refuses a panic) and the
//   master by any part of a, so what is left between them is (1 - g)o + (g - G)a for parts g, G in
//   [0, 1], at most |o| + |a|;
// - the drift since the round began: the two clocks drift apart at most at the frequency
//   tolerance (ERROR_BOUND_FREQUENCY_TOLERANCE_PPM, NTP's PHI);
// - the master's own bound (0 while its clock is the cluster's reference).
// The member then adds the tolerance times the time since. The master's bound is its own
// uncertainty. A clock that is not synchronized, or a member that has no measurement from the
// master it follows now (a new master's first round is not in yet), has no bound: null.
//
// Pure: times are monotonic ms from the caller, like the rest of the core.
import { ERROR_BOUND_FREQUENCY_TOLERANCE_PPM, ERROR_BOUND_NS_MAX } from '../limits.ts';

export interface RoundBoundInputs {
  /** Round trip of the member's measurement, ns. */
  delayNs: number;
  /** The member's measured offset (member minus master), ns. */
  offsetNs: number;
  /** The round's average (where everyone moves, the master included), ns. */
  averageNs: number;
  /** Time from the start of the round (no sample is older) to the CORRECT, ms. */
  sinceRoundMs: number;
  /** The master's own bound, ns. */
  masterBoundNs: number;
  /** Defaults to ERROR_BOUND_FREQUENCY_TOLERANCE_PPM. */
  frequencyTolerancePpm?: number;
}

/** The bound the master sends a member with its correction, ns. A ppm over a ms is one ns. */
export function roundBoundNs(inputs: RoundBoundInputs): number {
  const tolerancePpm = inputs.frequencyTolerancePpm ?? ERROR_BOUND_FREQUENCY_TOLERANCE_PPM;
  const boundNs =
    Math.abs(inputs.delayNs) / 2 +
    Math.abs(inputs.offsetNs) +
    Math.abs(inputs.averageNs) +
    tolerancePpm * Math.max(0, inputs.sinceRoundMs) +
    Math.max(0, inputs.masterBoundNs);
  return Math.min(ERROR_BOUND_NS_MAX, boundNs);
}

type BoundState =
  | { kind: 'none' }
  | { kind: 'master'; ownUncertaintyNs: (nowMs: number) => number }
  | { kind: 'member'; atMs: number; delayNs: number; boundNs: number };

/**
 * Holds what the bound needs between corrections. The node tells it about corrections and role
 * changes; anyone asks for the bound now.
 */
export class ErrorBoundTracker {
  private state: BoundState = { kind: 'none' };

  constructor(private readonly frequencyTolerancePpm = ERROR_BOUND_FREQUENCY_TOLERANCE_PPM) {}

  /**
   * This node is the master; its bound is its own uncertainty at the time asked (0 without an
   * upstream; following one, it grows between the upstream's samples).
   */
  master(ownUncertaintyNs: (nowMs: number) => number = () => 0): void {
    this.state = { kind: 'master', ownUncertaintyNs };
  }

  /** A CORRECT of the master followed, with the bound it sent, arrived at monotonic `atMs`. */
  corrected(atMs: number, measurement: { delayNs: number; boundNs: number }): void {
    this.state = { kind: 'member', atMs, delayNs: Math.max(0, measurement.delayNs), boundNs: Math.max(0, measurement.boundNs) };
  }

  /** No measurement of the master followed now (none yet, a new master, no master): no bound. */
  reset(): void {
    this.state = { kind: 'none' };
  }

  /** Round trip of the last measurement (NTP root delay), ns; 0 on the master or without one. */
  get measurementDelayNs(): number {
    return this.state.kind === 'member' ? this.state.delayNs : 0;
  }

  /** Monotonic ms of the last correction (member), or null. */
  get correctedAtMs(): number | null {
    return this.state.kind === 'member' ? this.state.atMs : null;
  }

  /** The bound at monotonic `nowMs`, ns, or null without one. */
  boundNs(nowMs: number): number | null {
    switch (this.state.kind) {
      case 'none':
        return null;
      case 'master':
        return Math.max(0, this.state.ownUncertaintyNs(nowMs));
      case 'member':
        return Math.min(ERROR_BOUND_NS_MAX, this.state.boundNs + this.frequencyTolerancePpm * Math.max(0, nowMs - this.state.atMs));
    }
  }
}
