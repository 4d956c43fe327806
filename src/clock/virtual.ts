// The virtual clock: host time plus an offset the agent controls. Pure arithmetic over host time,
// so the daemon (host = the real system clock) and the simulator (host = simulated true time)
// share it. Starting offset and drift make it deliberately wrong for demos and tests.
import type { CorrectionOutcome, DisciplinePolicy } from './driver.ts';
import { INITIAL_STEPS } from '../core/limits.ts';

export interface VirtualClockOptions {
  /** Offset from host time at `startHostNs`. */
  initialOffsetNs: number;
  /** Rate error relative to host time, in ppm (a bad oscillator). */
  driftPpm: number;
  startHostNs: bigint;
  policy: DisciplinePolicy;
}

export class VirtualClock {
  private baseHostNs: bigint;
  /** Offset at baseHostNs, not counting the slew in progress. */
  private baseOffsetNs: number;
  private readonly driftPpm: number;
  private slewTotalNs = 0;
  private readonly policy: DisciplinePolicy;
  /** False during initial synchronization (the first INITIAL_STEPS corrections, all stepped). */
  synchronized = false;
  corrections = 0;
  steps = 0;
  slews = 0;

  constructor(options: VirtualClockOptions) {
    this.baseHostNs = options.startHostNs;
    this.baseOffsetNs = options.initialOffsetNs;
    this.driftPpm = options.driftPpm;
    this.policy = options.policy;
  }

  private slewAppliedNs(elapsedNs: number): number {
    if (this.slewTotalNs === 0 || elapsedNs <= 0) return 0;
    const possibleNs = (elapsedNs * this.policy.slewPpmMax) / 1e6;
    return Math.sign(this.slewTotalNs) * Math.min(Math.abs(this.slewTotalNs), possibleNs);
  }

  /** This clock minus host time, at host time `hostNs`. */
  offsetAtNs(hostNs: bigint): number {
    const elapsedNs = Number(hostNs - this.baseHostNs);
    return this.baseOffsetNs + (elapsedNs * this.driftPpm) / 1e6 + this.slewAppliedNs(elapsedNs);
  }

  readAtNs(hostNs: bigint): bigint {
    return hostNs + BigInt(Math.round(this.offsetAtNs(hostNs)));
  }

  slewRemainingAtNs(hostNs: bigint): number {
    return this.slewTotalNs - this.slewAppliedNs(Number(hostNs - this.baseHostNs));
  }

  /** Fold everything up to `hostNs` into the base, dropping the unapplied part of any slew. */
  private rebase(hostNs: bigint): void {
    this.baseOffsetNs = this.offsetAtNs(hostNs);
    this.baseHostNs = hostNs;
    this.slewTotalNs = 0;
  }

  /**
   * Apply a correction measured against this clock. A new correction supersedes what is left of
   * the previous slew (it was measured after part of it had been applied).
   */
  correct(correctionNs: number, hostNs: bigint): CorrectionOutcome {
    this.rebase(hostNs);
    // Once synchronized the clock never runs backwards: a large backward correction is slewed.
    const step = !this.synchronized || (Math.abs(correctionNs) >= this.policy.stepThresholdNs && correctionNs > 0);
    this.corrections += 1;
    if (this.corrections >= INITIAL_STEPS) this.synchronized = true;
    if (step) {
      this.baseOffsetNs += correctionNs;
      this.steps += 1;
      return 'step';
    }
    this.slewTotalNs = correctionNs;
    this.slews += 1;
    return 'slew';
  }

  get frequencyPpm(): number {
    return this.driftPpm;
  }
}
