// The host's system clock with nanosecond resolution. Node offers realtime only in milliseconds
// (Date.now), so we anchor the monotonic hrtime to realtime on a millisecond edge of Date.now and
// re-anchor when the host clock is stepped under us. CLOCK_MONOTONIC is slewed together with
// CLOCK_REALTIME, so between steps the two advance alike. (performance.timeOrigin is not precise
// enough: with several processes starting at once on a busy machine it was measured 2.8 ms off.)

const STEP_CHECK_INTERVAL_NS = 1_000_000_000n;
const STEP_TOLERANCE_MS = 5;
/** Millisecond edges sampled per anchoring; the one bracketed most tightly wins. */
const ANCHOR_EDGES = 5;

export class HostClock {
  private anchorRealNs: bigint;
  private anchorMonoNs: bigint;
  private nextCheckMonoNs: bigint;
  reanchors = 0;

  /** Half the width of the hrtime bracket around the chosen edge: the anchor's error bound. */
  anchorErrorNs = 0;

  constructor() {
    this.anchorMonoNs = 0n;
    this.anchorRealNs = 0n;
    this.reanchor();
    this.reanchors = 0;
    this.nextCheckMonoNs = process.hrtime.bigint() + STEP_CHECK_INTERVAL_NS;
  }

  /**
   * The system clock was stepped by `deltaNs` (by us, through the kernel clock driver): the step is
   * relative and atomic and the monotonic clock does not move, so the anchor moves by exactly that.
   */
  applyStep(deltaNs: bigint): void {
    this.anchorRealNs += deltaNs;
  }

  /** Monotonic milliseconds, for timers. */
  monoMs(): number {
    return performance.now();
  }

  nowNs(): bigint {
    const monoNow = process.hrtime.bigint();
    if (monoNow >= this.nextCheckMonoNs) {
      this.nextCheckMonoNs = monoNow + STEP_CHECK_INTERVAL_NS;
      const driftMs = Number(this.anchorRealNs + (monoNow - this.anchorMonoNs)) / 1e6 - Date.now();
      if (Math.abs(driftMs) > STEP_TOLERANCE_MS) this.reanchor();
    }
    return this.anchorRealNs + (process.hrtime.bigint() - this.anchorMonoNs);
  }

  /**
   * Anchor on Date.now() millisecond edges: the realtime clock reads exactly `edge` ms somewhere
   * between the last hrtime reading before the change was seen and the first one after. Spins for
   * at most ANCHOR_EDGES ms; a preempted sample shows as a wide bracket and loses.
   */
  private reanchor(): void {
    let bestWidthNs = -1n;
    for (let edge = 0; edge < ANCHOR_EDGES; edge += 1) {
      const startMs = Date.now();
      let beforeNs = process.hrtime.bigint();
      let nowMs = Date.now();
      while (nowMs === startMs) {
        beforeNs = process.hrtime.bigint();
        nowMs = Date.now();
      }
      const afterNs = process.hrtime.bigint();
      const widthNs = afterNs - beforeNs;
      if (bestWidthNs < 0n || widthNs < bestWidthNs) {
        bestWidthNs = widthNs;
        this.anchorMonoNs = (beforeNs + afterNs) / 2n;
        this.anchorRealNs = BigInt(nowMs) * 1_000_000n;
      }
    }
    this.anchorErrorNs = Number(bestWidthNs) / 2;
    this.reanchors += 1;
  }
}
