// A simulated machine clock (the "host" under a node's VirtualClock): an initial offset from true
// time, a rate error (drift) and a slow random walk of that drift (wander), as a real quartz
// oscillator does with temperature. Piecewise linear in simulated true time; the wander steps are
// drawn from the oscillator's own seeded stream at fixed simulated instants, so the clock reads
// the same whenever and however often it is read: a run reproduces from its seed.
import { SeededRandom } from './random.ts';

export interface OscillatorSpec {
  /** Machine clock minus true time at simulated time 0. */
  initialOffsetNs: number;
  driftPpm: number;
  /** Each wander step moves the drift uniformly within +-this (0: constant drift). */
  wanderPpmPerStep: number;
  /** Simulated time between two wander steps. */
  wanderStepMs: number;
  /** The drift never leaves +-this (a quartz stays within a few hundred ppm). */
  driftPpmMax: number;
}

export class Oscillator {
  private readonly spec: OscillatorSpec;
  private readonly random: SeededRandom;
  /**
   * The initial offset's whole ns, exact: a machine clock decades off (a box at 1970) is ~1.8e18
   * ns off, where a float64 resolves only 256 ns. The rest (drift, wander) stays small.
   */
  readonly wholeOffsetNs: bigint;
  /** Offset from true time at `baseMs`, beyond wholeOffsetNs. */
  private baseOffsetNs: number;
  private baseMs = 0;
  private drift: number;
  private nextWanderMs: number;

  constructor(spec: OscillatorSpec, seed: number) {
    if (!(spec.driftPpmMax > 0 && spec.driftPpmMax < 1e5)) throw new Error(`driftPpmMax ${spec.driftPpmMax} out of range`);
    if (Math.abs(spec.driftPpm) > spec.driftPpmMax) throw new Error(`driftPpm ${spec.driftPpm} beyond driftPpmMax ${spec.driftPpmMax}`);
    this.spec = spec;
    this.random = new SeededRandom(seed);
    const wholeNs = Math.trunc(spec.initialOffsetNs);
    this.wholeOffsetNs = BigInt(wholeNs);
    this.baseOffsetNs = spec.initialOffsetNs - wholeNs;
    this.drift = spec.driftPpm;
    this.nextWanderMs = spec.wanderPpmPerStep > 0 ? spec.wanderStepMs : Number.POSITIVE_INFINITY;
    if (spec.wanderPpmPerStep > 0 && !(spec.wanderStepMs > 0)) throw new Error('wanderStepMs must be positive');
  }

  private advance(nowMs: number): void {
    while (nowMs >= this.nextWanderMs) {
      // ms * ppm = ns.
      this.baseOffsetNs += (this.nextWanderMs - this.baseMs) * this.drift;
      this.baseMs = this.nextWanderMs;
      const step = this.spec.wanderPpmPerStep * (2 * this.random.next() - 1);
      this.drift = Math.max(-this.spec.driftPpmMax, Math.min(this.spec.driftPpmMax, this.drift + step));
      this.nextWanderMs += this.spec.wanderStepMs;
    }
  }

  /** Machine clock minus true time at simulated time `nowMs` (never earlier than a previous read). */
  offsetNs(nowMs: number): number {
    return Number(this.wholeOffsetNs) + this.restNs(nowMs);
  }

  /** The offset beyond wholeOffsetNs at `nowMs` (small, full float64 precision). */
  restNs(nowMs: number): number {
    this.advance(nowMs);
    return this.baseOffsetNs + (nowMs - this.baseMs) * this.drift;
  }

  /** Current rate error. */
  driftPpm(nowMs: number): number {
    this.advance(nowMs);
    return this.drift;
  }
}
