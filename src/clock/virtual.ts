// The virtual clock: a base time plus an offset the agent controls. Pure arithmetic over the base
// (called "host" time below), so the daemon (base = CLOCK_MONOTONIC_RAW anchored to the system
// clock at start, see virtual-driver.ts) and the simulator (base = simulated true time) share it. Starting offset and drift make it deliberately wrong for demos and tests. It obeys
// step / slew / frequency like the kernel clock; the decisions are the discipline's.

export interface VirtualClockOptions {
  /** Offset from host time at `startHostNs`. */
  initialOffsetNs: number;
  /** Rate error relative to host time, in ppm (a bad oscillator). */
  driftPpm: number;
  startHostNs: bigint;
}

export class VirtualClock {
  private baseHostNs: bigint;
  /**
   * Offset at baseHostNs, not counting the slew in progress: a whole number of ns (exact, in
   * bigint) plus the rest (a float, below 1 ns after every rebase). A clock decades off (a box at
   * 1970, --virtual-offset of minus 56 years) has an offset of ~1.8e18 ns, where a float64 alone
   * resolves only 256 ns: its readings would move in 256 ns jumps and its slews and frequency be
   * rounded away.
   */
  private baseOffsetWholeNs: bigint;
  private baseOffsetNs: number;
  readonly driftPpm: number;
  /** The discipline's frequency adjustment, ppm. */
  private frequency = 0;
  /** The slew started at baseHostNs: its total and its rate. */
  private slewTotalNs = 0;
  private slewRate = 0;

  constructor(options: VirtualClockOptions) {
    this.baseHostNs = options.startHostNs;
    this.baseOffsetWholeNs = 0n;
    this.baseOffsetNs = 0;
    this.addOffset(options.initialOffsetNs);
    this.driftPpm = options.driftPpm;
  }

  private slewAppliedNs(elapsedNs: number): number {
    if (this.slewTotalNs === 0 || elapsedNs <= 0) return 0;
    const possibleNs = (elapsedNs * this.slewRate) / 1e6;
    return Math.sign(this.slewTotalNs) * Math.min(Math.abs(this.slewTotalNs), possibleNs);
  }

  /** Moves the base offset by `deltaNs`, its whole ns into the exact part. */
  private addOffset(deltaNs: number): void {
    const wholeNs = Math.trunc(deltaNs);
    this.baseOffsetWholeNs += BigInt(wholeNs);
    this.baseOffsetNs += deltaNs - wholeNs;
  }

  /** The offset at host time `hostNs` beyond the exact whole part (small: drift, frequency and slew since the base). */
  private restAtNs(hostNs: bigint): number {
    const elapsedNs = Number(hostNs - this.baseHostNs);
    return this.baseOffsetNs + (elapsedNs * (this.driftPpm + this.frequency)) / 1e6 + this.slewAppliedNs(elapsedNs);
  }

  /** This clock minus host time, at host time `hostNs` (a float64: 256 ns resolution at decades). */
  offsetAtNs(hostNs: bigint): number {
    return Number(this.baseOffsetWholeNs) + this.restAtNs(hostNs);
  }

  readAtNs(hostNs: bigint): bigint {
    return hostNs + this.baseOffsetWholeNs + BigInt(Math.round(this.restAtNs(hostNs)));
  }

  slewRemainingAtNs(hostNs: bigint): number {
    return this.slewTotalNs - this.slewAppliedNs(Number(hostNs - this.baseHostNs));
  }

  /** The rate of the slew in progress (0 once it is done). */
  slewRateAtNs(hostNs: bigint): number {
    return this.slewRemainingAtNs(hostNs) === 0 ? 0 : this.slewRate;
  }

  /** Fold everything up to `hostNs` into the base, dropping the unapplied part of any slew. */
  private rebase(hostNs: bigint): void {
    const restNs = this.restAtNs(hostNs);
    this.baseOffsetNs = 0;
    this.addOffset(restNs);
    this.baseHostNs = hostNs;
    this.slewTotalNs = 0;
    this.slewRate = 0;
  }

  /**
   * The host clock's reading was corrected by `moveNs` (a better anchor): the same instant now
   * reads moveNs later, so the offset shrinks by as much and this clock does not move.
   */
  hostShifted(moveNs: number): void {
    this.baseHostNs += BigInt(moveNs);
    this.addOffset(-moveNs);
  }

  step(deltaNs: number, hostNs: bigint): void {
    this.rebase(hostNs);
    this.addOffset(deltaNs);
  }

  /** Slews `phaseNs` at `ratePpm`, replacing what is left of the previous slew. */
  slew(phaseNs: number, ratePpm: number, hostNs: bigint): void {
    this.rebase(hostNs);
    if (!(ratePpm > 0)) return;
    this.slewTotalNs = phaseNs;
    this.slewRate = ratePpm;
  }

  /** Changes the frequency adjustment from `hostNs` on (keeping the slew in progress). */
  setFrequency(frequencyPpm: number, hostNs: bigint): void {
    const remainingNs = this.slewRemainingAtNs(hostNs);
    const rate = this.slewRate;
    this.rebase(hostNs);
    this.frequency = frequencyPpm;
    this.slewTotalNs = remainingNs;
    this.slewRate = remainingNs === 0 ? 0 : rate;
  }

  get frequencyPpm(): number {
    return this.frequency;
  }
}
