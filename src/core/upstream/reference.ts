// Following an upstream (issue 18), pure: the node's upstream health (health.ts, its clock class),
// and, as master, what the upstream asks of its clock. The node composes it like its other
// sub-machines: owned state, a stored deadline (the health's), output through the node.
//
// The master with a healthy upstream *follows* it: each new estimate becomes a correction of its
// own clock, carried out by the same discipline the members run (a PI loop, so the master learns
// the upstream's rate), and its rounds correct the members to its clock instead of to the average.
// - While the cluster is forming (the master's time provisional and no locked member answered
//   its last round) it may step onto the upstream; a cluster whose time is established is only
//   ever slewed, so no synchronized clock jumps; beyond the panic threshold (--max-correction) the
//   upstream is *refused*: the cluster keeps its time, and status and the log say so.
// - Upstream lost: *holdover*. The master keeps correcting the members to its clock, which runs on
//   the learned frequency; nothing steps, and its bound grows by the frequency tolerance.
// - Upstream back (after the health's hold-down): following again, slewed onto it.
// Members only report: their master's CORRECT says whether it follows an upstream, at which stratum.
import { ERROR_BOUND_FREQUENCY_TOLERANCE_PPM, ERROR_BOUND_NS_MAX, UPSTREAM_STEER_STALL_POLLS } from '../limits.ts';
import { unusableReason, type UpstreamEstimate } from './estimate.ts';
import { UpstreamHealth, type UpstreamHealthReport } from './health.ts';

/**
 * - `acquiring`: no healthy upstream (yet, or any more) and nothing followed in this mastership;
 * - `standby`: healthy, but a member: the master sets the time;
 * - `following`: master, steering the cluster to the upstream;
 * - `holdover`: master, upstream lost after following it: the learned frequency carries on;
 * - `refused`: master, upstream healthy but beyond the panic threshold from the established time.
 */
export type UpstreamMode = 'acquiring' | 'standby' | 'following' | 'holdover' | 'refused';

/** What the newest estimate asks of the master's clock: a correction (the count-th), or a refusal. */
export type UpstreamSteering =
  | {
    kind: 'correct';
    correctionNs: number;
    /** The cluster's time is established: slew only, never step. */
    slewOnly: boolean;
    /** Corrections onto the upstream so far, this one included (numbers them). */
    count: number;
  }
  | { kind: 'refuse'; offsetNs: number; limitNs: number };

export interface UpstreamReport extends UpstreamHealthReport {
  mode: UpstreamMode;
  /** The last usable estimate (its offset as of when it came). */
  estimate: (UpstreamEstimate & { atMs: number }) | null;
  /** Estimates turned into corrections of this clock (as master), and when the last was. */
  corrections: number;
  lastFollowedMs: number | null;
  /** The last refusal: the upstream's offset, and the panic threshold it exceeded. */
  refused: { offsetNs: number; limitNs: number; atMs: number } | null;
}

export interface UpstreamReferenceConfig {
  upstreamPollIntervalMs: number;
  /** The panic threshold (--max-correction): an established cluster is never moved further at once. */
  correctionNsMax: number;
}

export class UpstreamReference {
  readonly health: UpstreamHealth;
  private estimate: (UpstreamEstimate & { atMs: number }) | null = null;
  /** The system peer's sample behind the last estimate acted on as master (each is acted on once). */
  private steeredPeerMs: number | null = null;
  /** The newest sample behind it, and when it was acted on (for a silent system peer). */
  private steeredSampleMs: number | null = null;
  private steeredAtMs: number | null = null;
  /** The last followed estimate's offset and bound, and when (for the master's own bound). */
  private followed: { offsetNs: number; errorBoundNs: number; atMs: number } | null = null;
  /** Followed the upstream during this mastership: its loss means holdover. */
  private followedAsMaster = false;
  private refusedNow = false;
  private lastRefused: { offsetNs: number; limitNs: number; atMs: number } | null = null;
  private corrections = 0;

  constructor(private readonly config: UpstreamReferenceConfig) {
    this.health = new UpstreamHealth(config.upstreamPollIntervalMs);
  }

  get clockClass(): number {
    return this.health.clockClass;
  }

  /** The estimate the client has now (null: none, `why`); returns whether the clock class changed. */
  update(nowMs: number, estimate: UpstreamEstimate | null, why: string | null = null): boolean {
    if (estimate !== null && unusableReason(estimate) === null) this.estimate = { ...estimate, atMs: nowMs };
    return this.health.update(nowMs, estimate, why);
  }

  tick(nowMs: number): boolean {
    return this.health.tick(nowMs);
  }

  nextDeadlineMs(): number {
    return this.health.nextDeadlineMs();
  }

  /** A new mastership (or none): holdover is about following during this one. */
  roleChanged(isMaster: boolean): void {
    this.followedAsMaster = false;
    this.refusedNow = false;
    if (!isMaster) this.followed = null;
  }

  /**
   * As master, with the health settled: what the newest estimate asks for, once per sample (null:
   * nothing new, or not healthy). `established`: the cluster's time is established (this clock is
   * locked, or a locked member answered the last round).
   */
  steer(nowMs: number, established: boolean): UpstreamSteering | null {
    const estimate = this.estimate;
    if (!this.health.isHealthy || estimate === null) return null;
    // Once per sample of the system peer (ntpd's rule): with several servers polled together,
    // acting on each one's reply would correct a few ms apart, and the discipline's rate estimate
    // (what is left over the interval) is meant for corrections a poll apart.
    const peerNew = this.steeredPeerMs === null || estimate.peerSampledMs > this.steeredPeerMs;
    const stalled = this.steeredAtMs !== null && (this.steeredSampleMs === null || estimate.sampledMs > this.steeredSampleMs)
      && nowMs - this.steeredAtMs >= UPSTREAM_STEER_STALL_POLLS * this.config.upstreamPollIntervalMs;
    if (!peerNew && !stalled) return null;
    this.steeredPeerMs = Math.max(this.steeredPeerMs ?? Number.NEGATIVE_INFINITY, estimate.peerSampledMs);
    this.steeredSampleMs = estimate.sampledMs;
    this.steeredAtMs = nowMs;
    if (established && Math.abs(estimate.offsetNs) > this.config.correctionNsMax) {
      this.refusedNow = true;
      this.lastRefused = { offsetNs: estimate.offsetNs, limitNs: this.config.correctionNsMax, atMs: nowMs };
      return { kind: 'refuse', offsetNs: estimate.offsetNs, limitNs: this.config.correctionNsMax };
    }
    this.refusedNow = false;
    this.followedAsMaster = true;
    this.followed = { offsetNs: estimate.offsetNs, errorBoundNs: estimate.errorBoundNs, atMs: nowMs };
    this.corrections += 1;
    return { kind: 'correct', correctionNs: estimate.offsetNs, slewOnly: established, count: this.corrections };
  }

  mode(isMaster: boolean): UpstreamMode {
    if (!isMaster) return this.health.isHealthy ? 'standby' : 'acquiring';
    if (this.health.isHealthy) return this.refusedNow ? 'refused' : this.followedAsMaster ? 'following' : 'acquiring';
    return this.followedAsMaster ? 'holdover' : 'acquiring';
  }

  /** As master: its rounds correct the members to its clock (following or holdover), not to the average. */
  referencesRounds(isMaster: boolean): boolean {
    const mode = this.mode(isMaster);
    return mode === 'following' || mode === 'holdover';
  }

  /**
   * As master following (or holding over): a bound on |its clock - the upstream's reference|, ns:
   * the last estimate's offset (it was at most that far, and corrections only shrink it) and its
   * error bound, grown by the frequency tolerance since. 0 otherwise: the master is the reference.
   */
  ownBoundNs(nowMs: number, isMaster: boolean): number {
    if (!this.referencesRounds(isMaster) || this.followed === null) return 0;
    const grownNs = ERROR_BOUND_FREQUENCY_TOLERANCE_PPM * Math.max(0, nowMs - this.followed.atMs);
    return Math.min(ERROR_BOUND_NS_MAX, Math.abs(this.followed.offsetNs) + this.followed.errorBoundNs + grownNs);
  }

  /** The stratum and leap indicator this master passes on while following, or null. */
  passedOn(isMaster: boolean): { stratum: number; leap: 0 | 1 | 2 } | null {
    if (this.mode(isMaster) !== 'following' || this.estimate === null) return null;
    const leap = this.estimate.leap === 3 ? 0 : this.estimate.leap;
    return { stratum: this.estimate.stratum, leap };
  }

  report(nowMs: number, isMaster: boolean): UpstreamReport {
    return {
      ...this.health.report(nowMs),
      mode: this.mode(isMaster),
      estimate: this.estimate === null ? null : { ...this.estimate },
      corrections: this.corrections,
      lastFollowedMs: this.followed?.atMs ?? null,
      refused: this.lastRefused === null ? null : { ...this.lastRefused },
    };
  }
}
