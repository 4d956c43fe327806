// The host's system clock with nanosecond resolution. Node offers realtime only in milliseconds
// (Date.now), so we anchor the monotonic hrtime to realtime on a millisecond edge of Date.now and
// re-anchor when the host clock is stepped under us. CLOCK_MONOTONIC is slewed together with
// CLOCK_REALTIME, so between steps the two advance alike. (performance.timeOrigin is not precise
// enough: with several processes starting at once on a busy machine it was measured 2.8 ms off.)
import { HOST_ANCHOR_CHECKS_KEPT, HOST_ANCHOR_EDGES_MAX, HOST_ANCHOR_EDGES_MIN, HOST_ANCHOR_MOVE_NS_MIN, HOST_ANCHOR_REFINE_INTERVAL_MS, HOST_ANCHOR_WIDTH_GOOD_NS, HOST_STEP_CHECK_INTERVAL_NS, HOST_STEP_TOLERANCE_MS } from '../core/limits.ts';

/** refine() calls closer together than this (agents sharing one clock) are skipped. */
const REFINE_SPACING_NS = BigInt(HOST_ANCHOR_REFINE_INTERVAL_MS / 2) * 1_000_000n;

export class HostClock {
  private anchorRealNs: bigint;
  private anchorMonoNs: bigint;
  private nextCheckMonoNs: bigint;
  reanchors = 0;
  refinements = 0;
  private recentChecks: { errorNs: number; widthNs: number }[] = [];
  private lastRefineMonoNs: bigint | null = null;
  private readonly listeners: ((moveNs: number) => void)[] = [];

  /** Half the width of the hrtime bracket around the chosen edge: the anchor's error bound. */
  anchorErrorNs = 0;

  private readonly monoNs: () => bigint;
  private readonly realMs: () => number;

  /** The sources are injectable for tests (a simulated preemption); the defaults are the real ones. */
  constructor(sources: { monoNs?: () => bigint; realMs?: () => number } = {}) {
    this.monoNs = sources.monoNs ?? (() => process.hrtime.bigint());
    this.realMs = sources.realMs ?? (() => Date.now());
    this.anchorMonoNs = 0n;
    this.anchorRealNs = 0n;
    this.reanchor();
    this.reanchors = 0;
    this.nextCheckMonoNs = this.monoNs() + HOST_STEP_CHECK_INTERVAL_NS;
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
    const monoNow = this.monoNs();
    if (monoNow >= this.nextCheckMonoNs) {
      this.nextCheckMonoNs = monoNow + HOST_STEP_CHECK_INTERVAL_NS;
      const driftMs = Number(this.anchorRealNs + (monoNow - this.anchorMonoNs)) / 1e6 - this.realMs();
      if (Math.abs(driftMs) > HOST_STEP_TOLERANCE_MS) this.reanchor();
    }
    return this.anchorRealNs + (this.monoNs() - this.anchorMonoNs);
  }

  /**
   * One millisecond edge of Date.now(), bracketed by hrtime: the edge lies after the start of the
   * last Date.now() call that still returned the old value and before the end of the first call
   * that returned the new one. Both ends are taken around the calls themselves, so a preemption
   * anywhere in between widens the bracket (and the sample loses) instead of hiding in it.
   */
  private measureEdge(): { edgeMs: number; monoNs: bigint; widthNs: bigint } {
    const startMs = this.realMs();
    let lastOldStartNs = this.monoNs();
    for (;;) {
      const callStartNs = this.monoNs();
      const nowMs = this.realMs();
      const callEndNs = this.monoNs();
      if (nowMs !== startMs) return { edgeMs: nowMs, monoNs: (lastOldStartNs + callEndNs) / 2n, widthNs: callEndNs - lastOldStartNs };
      lastOldStartNs = callStartNs;
    }
  }

  /**
   * Anchor on the most tightly bracketed of several edges: at least HOST_ANCHOR_EDGES_MIN, and more
   * (up to HOST_ANCHOR_EDGES_MAX ms of spinning, once at start) until one is within HOST_ANCHOR_WIDTH_GOOD_NS,
   * because on a loaded machine every sample can be preempted.
   */
  private reanchor(): void {
    let best: { edgeMs: number; monoNs: bigint; widthNs: bigint } | null = null;
    for (let edge = 0; edge < HOST_ANCHOR_EDGES_MAX; edge += 1) {
      const sample = this.measureEdge();
      if (best === null || sample.widthNs < best.widthNs) best = sample;
      if (edge + 1 >= HOST_ANCHOR_EDGES_MIN && best.widthNs <= HOST_ANCHOR_WIDTH_GOOD_NS) break;
    }
    const chosen = best as { edgeMs: number; monoNs: bigint; widthNs: bigint };
    this.anchorMonoNs = chosen.monoNs;
    this.anchorRealNs = BigInt(chosen.edgeMs) * 1_000_000n;
    this.anchorErrorNs = Number(chosen.widthNs) / 2;
    this.recentChecks = [];
    this.reanchors += 1;
  }

  /**
   * Checks the anchor against one more edge (about a millisecond of spinning; the daemon calls it
   * every few seconds). The anchor maps monotonic to real time by an offset only, so every check
   * measures the same error; when the best recent one shows the anchor off by more than that
   * check's own uncertainty, the anchor moves to it and the listeners hear by how much the host
   * clock's reading moved (the virtual clock compensates, so the agent's clock does not jump).
   * Returns the move in ns (0: none).
   */
  refine(): number {
    // Several agents may share one host clock (the demo): one check per interval is enough.
    const monoNow = this.monoNs();
    if (this.lastRefineMonoNs !== null && monoNow - this.lastRefineMonoNs < REFINE_SPACING_NS) return 0;
    this.lastRefineMonoNs = monoNow;
    const sample = this.measureEdge();
    const predictedNs = this.anchorRealNs + (sample.monoNs - this.anchorMonoNs);
    const errorNs = Number(BigInt(sample.edgeMs) * 1_000_000n - predictedNs);
    this.recentChecks.push({ errorNs, widthNs: Number(sample.widthNs) });
    if (this.recentChecks.length > HOST_ANCHOR_CHECKS_KEPT) this.recentChecks.shift();
    const best = this.recentChecks.reduce((a, b) => (b.widthNs < a.widthNs ? b : a));
    if (Math.abs(best.errorNs) <= Math.max(HOST_ANCHOR_MOVE_NS_MIN, best.widthNs)) return 0;
    const moveNs = Math.round(best.errorNs);
    this.anchorRealNs += BigInt(moveNs);
    this.anchorErrorNs = best.widthNs / 2;
    this.recentChecks = [];
    this.refinements += 1;
    for (const listener of this.listeners) listener(moveNs);
    return moveNs;
  }

  /** Called with the move (ns) whenever refine() moves the host clock's reading. */
  onRefined(listener: (moveNs: number) => void): void {
    this.listeners.push(listener);
  }
}
