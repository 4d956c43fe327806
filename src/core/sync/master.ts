// The master side of Berkeley rounds: one round every pollIntervalMs (sync/probe-round.ts probes
// the members), then each member's best sample through the delay filter, the fault-tolerant
// average (sync/berkeley.ts), a CORRECT to every member, the round's record and view, and the
// master's own correction. The stored deadline is the next round's start, or the running round's.
import { FrameType, type Frame } from '../frames.ts';
import { CORRECTION_NS_MAX, FULL_PROBE_ROUND_EVERY } from '../limits.ts';
import type { Correction, RoundRecord } from '../events.ts';
import type { PeerTable } from '../membership/peers.ts';
import type { Outbox } from '../outbox.ts';
import type { NodeId } from '../types.ts';
import type { ClusterViewServer } from '../view/cluster-view.ts';
import { berkeleyRound, referenceRound } from './berkeley.ts';
import { fileRoundDelay } from './delay-filter.ts';
import { roundBoundNs } from './error-bound.ts';
import { ProbeRound, type ProbeRoundConfig } from './probe-round.ts';

export interface MasterConfig extends ProbeRoundConfig {
  nodeId: NodeId;
  pollIntervalMs: number;
  outlierThresholdNs: number;
}

/** What the rounds read of the node, and how the master's own correction is applied. */
export interface MasterHost {
  readonly term: number;
  /** Whether this node's own clock is synchronized (the shell says so after each correction). */
  readonly clockSynchronized: boolean;
  /** While this node's time is provisional, how far its discipline has moved it; null once locked. */
  readonly clockProvisionalNs: number | null;
  /** The master's own uncertainty, ns: 0 while the master's clock is the cluster's reference. */
  readonly ownErrorBoundNs: number;
  /**
   * The master's clock is the reference (it follows an upstream, or holds over after one): the
   * rounds correct the members to it, not to the average, and not the master itself.
   */
  readonly referencesRounds: boolean;
  /** While following an upstream: its stratum and leap indicator, passed on in every CORRECT. */
  readonly upstreamPassedOn: { stratum: number; leap: number } | null;
  applyCorrection(correction: Correction, nowMs: number): void;
}

/** What the rounds count (fields of the node's counters). */
export interface MasterCounters {
  roundsCompleted: number;
  samplesDiscarded: number;
  probesSent: number;
  correctionsUnsendable: number;
}

/**
 * Whether a frame can carry this correction (the member's decoder refuses anything else as a bad
 * field, without a word back). Any difference of two valid timestamps fits, so this fails only
 * for arithmetic gone wrong (not finite) or a clock pushed outside the timestamp range.
 */
export function correctionSendable(correctionNs: number): boolean {
  return Number.isFinite(correctionNs) && Math.abs(correctionNs) <= CORRECTION_NS_MAX;
}

const NEVER = Number.POSITIVE_INFINITY;

export class MasterRounds {
  private roundSeq = 0;
  private round: ProbeRound | null = null;
  private nextRoundMs = NEVER;
  private lastRecord: RoundRecord | null = null;
  /** The last round had an answer from a member whose time is established (synchronized, locked). */
  private lockedMemberAnswered = false;

  constructor(
    private readonly config: MasterConfig,
    private readonly host: MasterHost,
    private readonly peers: PeerTable,
    private readonly view: ClusterViewServer,
    private readonly outbox: Outbox,
    private readonly counters: MasterCounters,
  ) {}

  /** The last round completed (kept across role changes, for status). */
  get lastRound(): RoundRecord | null {
    return this.lastRecord;
  }

  /** Whether the last round heard from a member whose time is established (the cluster's time is, then). */
  get establishedMemberSeen(): boolean {
    return this.lockedMemberAnswered;
  }

  /** Not master (any more): no round runs or is due. */
  stop(): void {
    this.round = null;
    this.nextRoundMs = NEVER;
  }

  /** A new master, or a new term: the running round is void, the next starts now. */
  pollNow(nowMs: number): void {
    this.round = null;
    this.nextRoundMs = nowMs;
  }

  nextDeadlineMs(): number {
    return this.round === null ? this.nextRoundMs : this.round.nextDeadlineMs();
  }

  tick(nowMs: number): void {
    if (this.round === null && nowMs >= this.nextRoundMs) this.start(nowMs);
    this.advance(nowMs);
  }

  /** A member's REPLY; `term`: this node's term (a reply of another term or round is ignored). */
  onReply(frame: Frame & { type: typeof FrameType.reply }, rxNs: bigint, nowMs: number): void {
    const round = this.round;
    if (round === null || frame.term !== this.host.term || frame.round !== round.round) return;
    if (round.onReply(frame, rxNs, nowMs)) this.finish(round, nowMs);
  }

  /** A member left: the running round no longer waits for it. */
  memberLeft(nodeId: NodeId, nowMs: number): void {
    if (this.round === null) return;
    this.round.removeMember(nodeId);
    this.advance(nowMs);
  }

  private start(nowMs: number): void {
    this.roundSeq += 1;
    const members = this.peers.roundMembers(this.roundSeq, nowMs);
    const recentDelaysOf = (nodeId: NodeId) => this.peers.get(nodeId)?.recentDelaysNs;
    const probeSent = () => {
      this.counters.probesSent += 1;
    };
    this.round = new ProbeRound(this.roundSeq, members, this.roundSeq % FULL_PROBE_ROUND_EVERY === 0, nowMs, this.config, this.outbox, recentDelaysOf, probeSent);
    this.nextRoundMs = nowMs + this.config.pollIntervalMs;
  }

  private advance(nowMs: number): void {
    const round = this.round;
    if (round !== null && round.advance(nowMs)) this.finish(round, nowMs);
  }

  private finish(round: ProbeRound, nowMs: number): void {
    this.round = null;
    const offsetsNs = new Map<NodeId, number>();
    for (const nodeId of round.memberOrder) {
      const peer = this.peers.get(nodeId);
      if (!peer) continue;
      const sample = round.sampleOf(nodeId);
      if (sample === undefined) {
        peer.missedRounds += 1;
        if (peer.missedRounds >= 3) this.peers.markSuspect(nodeId, `missed ${peer.missedRounds} rounds`);
        continue;
      }
      peer.missedRounds = 0;
      const discarded = fileRoundDelay(peer, sample.delayNs);
      peer.lastSample = { ...sample, round: round.round, atMs: nowMs, discarded };
      // A poor sample neither moves the average nor its member: the next round supersedes it.
      if (discarded) {
        this.counters.samplesDiscarded += 1;
        continue;
      }
      offsetsNs.set(nodeId, sample.offsetNs);
    }
    const selfId = this.config.nodeId;
    this.lockedMemberAnswered = [...offsetsNs.keys()].some((id) => round.syncedOf(id) && round.provisionalOf(id) === null);
    const referenced = this.host.referencesRounds;
    const result = referenced
      ? referenceRound(selfId, offsetsNs)
      : berkeleyRound(
        selfId,
        offsetsNs,
        this.config.outlierThresholdNs,
        (id) => (id === selfId ? this.host.clockSynchronized : round.syncedOf(id)),
        (id) => (id === selfId ? this.host.clockProvisionalNs : round.provisionalOf(id)),
      );
    const passedOn = referenced ? this.host.upstreamPassedOn : null;
    const excluded = new Set(result.excluded);
    // Each member's bound once it has acted on its correction (see error-bound.ts): its
    // measurement's half round trip, its offset and the average (member and master each apply any
    // part of theirs), the drift since the round began, and the master's own bound.
    for (const [nodeId, correctionNs] of result.correctionsNs) {
      if (nodeId === selfId) continue;
      const peer = this.peers.get(nodeId);
      if (peer) peer.excluded = excluded.has(nodeId);
      // Never a silent drop: a correction no frame can carry is counted, reported and kept off the wire.
      const sendable = correctionSendable(correctionNs);
      if (peer) peer.correctionUnsendable = !sendable;
      if (!sendable) {
        this.unsendable(nodeId, correctionNs, round.round);
        continue;
      }
      const delayNs = round.sampleOf(nodeId)?.delayNs ?? 0;
      const offsetNs = offsetsNs.get(nodeId) ?? 0;
      const boundNs = roundBoundNs({ delayNs, offsetNs, averageNs: result.averageNs, sinceRoundMs: nowMs - round.startedMs, masterBoundNs: this.host.ownErrorBoundNs });
      const reference = passedOn === null ? {} : { refStratum: passedOn.stratum, refLeap: passedOn.leap };
      this.outbox.sendTo(nodeId, { type: FrameType.correct, round: round.round, correctionNs, delayNs: Math.min(CORRECTION_NS_MAX, Math.max(0, delayNs)), boundNs, ...reference });
    }
    this.counters.roundsCompleted += 1;
    const term = this.host.term;
    const record: RoundRecord = {
      round: round.round,
      term,
      atMs: nowMs,
      members: round.memberOrder.length,
      answered: offsetsNs.size,
      averageNs: result.averageNs,
      medianNs: result.medianNs,
      boundNs: result.boundNs,
      excluded: result.excluded,
      reference: result.basis,
    };
    this.lastRecord = record;
    const members = [...this.peers.values()].map((peer) => ({ ...peer, synced: round.syncedOf(peer.nodeId) }));
    this.view.record(round.round, result.averageNs, nowMs, { nodeId: selfId, synced: this.host.clockSynchronized }, members);
    this.outbox.emit({ kind: 'round', record });
    // The master moves to the average too (unless it is the reference); a round with nobody
    // answering changes nothing.
    if (offsetsNs.size > 0 && !referenced) {
      // The same bound for its own: beyond it the clock would leave the range of a timestamp.
      if (correctionSendable(result.averageNs)) this.host.applyCorrection({ correctionNs: result.averageNs, term, round: round.round, masterId: selfId }, nowMs);
      else this.unsendable(selfId, result.averageNs, round.round);
    }
  }

  /** A correction no frame can carry (for a member: not sent; its own: not applied), counted and told. */
  private unsendable(nodeId: NodeId, correctionNs: number, round: number): void {
    this.counters.correctionsUnsendable += 1;
    this.outbox.emit({ kind: 'correction-unsendable', nodeId, correctionNs, round });
  }
}
