// The host's system clock with nanosecond resolution. Node offers realtime only in milliseconds
// (Date.now), so we anchor the monotonic hrtime to realtime once (performance.timeOrigin carries
// microseconds) and re-anchor when the host clock is stepped under us. CLOCK_MONOTONIC is slewed
// together with CLOCK_REALTIME, so between steps the two advance alike.

const STEP_CHECK_INTERVAL_NS = 1_000_000_000n;
const STEP_TOLERANCE_MS = 5;

export class HostClock {
  private anchorRealNs: bigint;
  private anchorMonoNs: bigint;
  private nextCheckMonoNs: bigint;
  reanchors = 0;

  constructor() {
    const monoNow = process.hrtime.bigint();
    const sinceOriginNs = BigInt(Math.round(performance.now() * 1e6));
    this.anchorMonoNs = monoNow - sinceOriginNs;
    this.anchorRealNs = BigInt(Math.round(performance.timeOrigin * 1000)) * 1000n;
    this.nextCheckMonoNs = monoNow + STEP_CHECK_INTERVAL_NS;
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

  /** Find a Date.now() millisecond edge to anchor on (costs at most ~1 ms of spinning). */
  private reanchor(): void {
    const startMs = Date.now();
    let edgeMs = startMs;
    while ((edgeMs = Date.now()) === startMs) {
      // spin until the millisecond ticks over
    }
    this.anchorMonoNs = process.hrtime.bigint();
    this.anchorRealNs = BigInt(edgeMs) * 1_000_000n;
    this.reanchors += 1;
  }
}
