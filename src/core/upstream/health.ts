// Whether this node's upstream is healthy: the clock class it stands in elections with. Pure, with
// a stored deadline (the node's tick() and nextDeadlineMs() read the same one).
//
// Hysteresis both ways, because every change of class can move the master:
// - healthy after UPSTREAM_HEALTHY_SAMPLES usable estimates in a row (one good answer is not yet
//   an upstream), and, after a loss, only once it has stayed usable through a hold-down;
// - lost only after no usable estimate for UPSTREAM_LOST_AFTER_POLLS poll intervals (one missed
//   answer, or one round of disagreement, is not a loss);
// - the hold-down doubles with every loss within UPSTREAM_FLAP_WINDOW_MS (route-flap damping), so
//   an upstream that comes and goes moves the master at most once per hold-down.
import {
  CLOCK_CLASS_CLUSTER,
  CLOCK_CLASS_UPSTREAM,
  UPSTREAM_FLAP_WINDOW_MS,
  UPSTREAM_FLAPS_KEPT,
  UPSTREAM_HEALTHY_SAMPLES,
  UPSTREAM_HOLDDOWN_MS,
  UPSTREAM_HOLDDOWN_MS_MAX,
  UPSTREAM_LOST_AFTER_MS_MIN,
  UPSTREAM_LOST_AFTER_POLLS,
} from '../limits.ts';
import { unusableReason, type UpstreamEstimate } from './estimate.ts';

const NEVER = Number.POSITIVE_INFINITY;

export interface UpstreamHealthReport {
  healthy: boolean;
  clockClass: number;
  /** Monotonic ms of the last change of health (null: never healthy). */
  changedMs: number | null;
  /** Usable estimates in a row. */
  usableInRow: number;
  /** Monotonic ms of the last usable estimate. */
  lastUsableMs: number | null;
  /** Why the last estimate was not usable (or what the client said instead of one); null after a usable one. */
  lastUnusable: string | null;
  /** Losses within the flap window, and when a recovered upstream may count as healthy again. */
  recentLosses: number;
  holdDownUntilMs: number | null;
  /** Times it became healthy, and was lost, since start. */
  acquired: number;
  lost: number;
}

export class UpstreamHealth {
  private healthy = false;
  private changedMs: number | null = null;
  private usableInRow = 0;
  private lastUsableMs: number | null = null;
  private lastSampledMs: number | null = null;
  private lastUnusable: string | null = null;
  private losses: number[] = [];
  private holdDownUntilMs: number | null = null;
  private acquired = 0;
  private lostCount = 0;
  private deadlineMs = NEVER;
  private readonly lostAfterMs: number;

  constructor(upstreamPollIntervalMs: number) {
    this.lostAfterMs = Math.max(UPSTREAM_LOST_AFTER_MS_MIN, UPSTREAM_LOST_AFTER_POLLS * upstreamPollIntervalMs);
  }

  get isHealthy(): boolean {
    return this.healthy;
  }

  get clockClass(): number {
    return this.healthy ? CLOCK_CLASS_UPSTREAM : CLOCK_CLASS_CLUSTER;
  }

  /**
   * An estimate from the client (null: selection has none; `why` says why). Returns whether the
   * health changed. An estimate whose sample was seen already counts once.
   */
  update(nowMs: number, estimate: UpstreamEstimate | null, why: string | null = null): boolean {
    if (estimate === null) {
      this.usableInRow = 0;
      this.lastUnusable = why ?? 'no estimate';
      return this.settle(nowMs);
    }
    const unusable = unusableReason(estimate);
    if (unusable !== null) {
      this.usableInRow = 0;
      this.lastUnusable = unusable;
      return this.settle(nowMs);
    }
    if (this.lastSampledMs !== null && estimate.sampledMs <= this.lastSampledMs) return this.settle(nowMs);
    this.lastSampledMs = estimate.sampledMs;
    this.usableInRow += 1;
    this.lastUsableMs = nowMs;
    this.lastUnusable = null;
    return this.settle(nowMs);
  }

  tick(nowMs: number): boolean {
    return nowMs >= this.deadlineMs ? this.settle(nowMs) : false;
  }

  nextDeadlineMs(): number {
    return this.deadlineMs;
  }

  private settle(nowMs: number): boolean {
    const before = this.healthy;
    this.losses = this.losses.filter((atMs) => nowMs - atMs < UPSTREAM_FLAP_WINDOW_MS);
    if (this.healthy) {
      const lostAtMs = (this.lastUsableMs ?? nowMs) + this.lostAfterMs;
      if (nowMs >= lostAtMs) {
        this.healthy = false;
        this.changedMs = nowMs;
        this.lostCount += 1;
        this.losses.push(nowMs);
        if (this.losses.length > UPSTREAM_FLAPS_KEPT) this.losses.shift();
        this.holdDownUntilMs = nowMs + Math.min(UPSTREAM_HOLDDOWN_MS_MAX, UPSTREAM_HOLDDOWN_MS * 2 ** (this.losses.length - 1));
        this.usableInRow = 0;
      }
    } else if (this.usableInRow >= UPSTREAM_HEALTHY_SAMPLES && this.lastUsableMs !== null && nowMs - this.lastUsableMs < this.lostAfterMs && (this.holdDownUntilMs === null || nowMs >= this.holdDownUntilMs)) {
      this.healthy = true;
      this.changedMs = nowMs;
      this.acquired += 1;
    }
    this.deadlineMs = this.nextChangeMs(nowMs);
    return this.healthy !== before;
  }

  /** When settle() may change something without new input. */
  private nextChangeMs(nowMs: number): number {
    if (this.healthy) return (this.lastUsableMs ?? nowMs) + this.lostAfterMs;
    // Usable enough but held down: healthy at the end of the hold-down, if it is still usable then.
    if (this.usableInRow >= UPSTREAM_HEALTHY_SAMPLES && this.holdDownUntilMs !== null && this.holdDownUntilMs > nowMs) return this.holdDownUntilMs;
    return NEVER;
  }

  report(nowMs: number): UpstreamHealthReport {
    const recent = this.losses.filter((atMs) => nowMs - atMs < UPSTREAM_FLAP_WINDOW_MS);
    return {
      healthy: this.healthy,
      clockClass: this.clockClass,
      changedMs: this.changedMs,
      usableInRow: this.usableInRow,
      lastUsableMs: this.lastUsableMs,
      lastUnusable: this.lastUnusable,
      recentLosses: recent.length,
      holdDownUntilMs: this.holdDownUntilMs !== null && this.holdDownUntilMs > nowMs ? this.holdDownUntilMs : null,
      acquired: this.acquired,
      lost: this.lostCount,
    };
  }
}
