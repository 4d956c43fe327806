// The master's barrier table (issue 6): pure, no sockets, timers or wall clock. The shell feeds it
// frames from agents (`deliver`) and `tick`, and drains the frames it wants sent, addressed by node id.
//
// Semantics follow emulab-sync: waiters may arrive before the initializer (emulab's count goes
// negative); the barrier is released once the initializer and `count` waiters are present, all
// together, with the largest error code reported; the name is then free for a new generation.
//
// Three rules make it survive loss, duplication and the master's death:
// - Participants are (nodeId, requestId); a repeated join refreshes, never adds. Withdrawn or refused
//   participants and released ones are remembered for a while, so a stale duplicate join cannot
//   count them again in a later generation.
// - A participant counts only once it has *confirmed* its generation (a join carrying the
//   generation id this master acked it into). So everyone released in a generation knows its id,
//   and after a master change re-registers with it: the new master can tell an old participant
//   from a fresh one even when the old master died right after releasing.
// - A new master keeps participants re-registered from a previous master's generation G in a group
//   of their own for BARRIER_TAKEOVER_SETTLE_MS after it first hears of G. The group is released
//   alone if it is complete alone (as G), or pulled out and released with G's exit code if an agent
//   reports that the old master released G (barrierReleased); otherwise, once settled, it merges
//   with the fresh joins of the same name (keeping them apart for good would deadlock when the
//   initializer's fresh join and the re-registered waiters meet). Merging at once would count
//   participants of an already released use of the name with those of the next one.
import {
  BARRIER_ERROR_CODE_MAX,
  BARRIER_GENERATION_MEMORY_MS,
  BARRIER_GENERATIONS_REMEMBERED_MAX,
  BARRIER_IDS_PER_FRAME_MAX,
  BARRIER_MEMBER_EXPIRY_MS,
  BARRIER_OUTBOX_FRAMES_MAX,
  BARRIER_PARTICIPANTS_MAX,
  BARRIER_REFUSED_MEMORY_MS,
  BARRIER_REFUSED_REMEMBERED_MAX,
  BARRIER_RELEASE_ATTEMPTS_MAX,
  BARRIER_RELEASED_MEMORY_MS,
  BARRIER_RELEASED_REMEMBERED_MAX,
  BARRIER_RETRY_MS,
  BARRIER_SWEEP_MS,
  BARRIER_TAKEOVER_SETTLE_MS,
  BARRIER_WAITERS_MAX,
  BARRIERS_OPEN_MAX,
  BARRIER_GENERATION_DRAWS_MAX,
  BARRIER_SYNC_DELAY_FACTOR,
  BARRIER_SYNC_DELAY_UNKNOWN_NS,
  BARRIER_SYNC_MARGIN_FLOOR_NS,
  BARRIER_SYNC_MARGIN_MAX_NS,
} from '../limits.ts';
import type { NodeId } from '../types.ts';
import {
  BARRIER_REASONS,
  BarrierFrameType,
  barrierNameProblem,
  isSafeId,
  type BarrierBody,
  type BarrierJoinBody,
  type BarrierReason,
  type BarrierReleaseAckBody,
  type BarrierReleasedBody,
  type BarrierSend,
  type BarrierWithdrawBody,
} from './frames.ts';

export interface BarrierTableLimits {
  barriersOpenMax: number;
  waitersMax: number;
  participantsMax: number;
  retryMs: number;
  releaseAttemptsMax: number;
  memberExpiryMs: number;
  settleMs: number;
  releasedRememberedMax: number;
  releasedMemoryMs: number;
  generationsRememberedMax: number;
  generationMemoryMs: number;
  refusedRememberedMax: number;
  refusedMemoryMs: number;
  sweepMs: number;
  outboxFramesMax: number;
}

export const BARRIER_TABLE_LIMITS: BarrierTableLimits = {
  barriersOpenMax: BARRIERS_OPEN_MAX,
  waitersMax: BARRIER_WAITERS_MAX,
  participantsMax: BARRIER_PARTICIPANTS_MAX,
  retryMs: BARRIER_RETRY_MS,
  releaseAttemptsMax: BARRIER_RELEASE_ATTEMPTS_MAX,
  memberExpiryMs: BARRIER_MEMBER_EXPIRY_MS,
  settleMs: BARRIER_TAKEOVER_SETTLE_MS,
  releasedRememberedMax: BARRIER_RELEASED_REMEMBERED_MAX,
  releasedMemoryMs: BARRIER_RELEASED_MEMORY_MS,
  generationsRememberedMax: BARRIER_GENERATIONS_REMEMBERED_MAX,
  generationMemoryMs: BARRIER_GENERATION_MEMORY_MS,
  refusedRememberedMax: BARRIER_REFUSED_REMEMBERED_MAX,
  refusedMemoryMs: BARRIER_REFUSED_MEMORY_MS,
  sweepMs: BARRIER_SWEEP_MS,
  outboxFramesMax: BARRIER_OUTBOX_FRAMES_MAX,
};

export interface BarrierTableConfig {
  /** Uniform in [0, 1); generation ids are drawn from it (seeded in the simulator). */
  random: () => number;
  /**
   * This master's clock now (the cluster clock), ns since the epoch: synchronized releases are
   * scheduled on it. Injected like `random` (the daemon reads its clock driver, the simulator its
   * simulated clock); without it the table's input time (nowMs) stands in, as in unit tests.
   */
  clockNowNs?: () => bigint;
  /**
   * The recent round-trip delay to an agent, ns (the largest of the master's delay-filter history;
   * 0 for the master's own agent), or null if it was not measured yet.
   */
  delayNsOf?: (nodeId: NodeId) => number | null;
  limits?: Partial<BarrierTableLimits>;
}

/**
 * How far past the last arrival a synchronized generation is released: enough for the release to
 * reach the slowest participant's agent and its waiting command (see the limits' justification).
 * `delaysNs`: each participating agent's recent round trip, null when not measured.
 */
export function syncReleaseMarginNs(delaysNs: readonly (number | null)[]): number {
  let slowestNs = 0;
  for (const delayNs of delaysNs) slowestNs = Math.max(slowestNs, delayNs ?? BARRIER_SYNC_DELAY_UNKNOWN_NS);
  return Math.min(BARRIER_SYNC_MARGIN_MAX_NS, Math.round(slowestNs * BARRIER_SYNC_DELAY_FACTOR) + BARRIER_SYNC_MARGIN_FLOOR_NS);
}

export interface BarrierTableCounters {
  /** Generations released (by this table, not counting releases learned from notices). */
  generationsReleased: number;
  participantsReleased: number;
  /** Participants released because an agent reported the old master had released their generation. */
  participantsReleasedByNotice: number;
  /** Generations released with a release instant (some participant asked for --synchronized). */
  generationsReleasedSynchronized: number;
  withdrawn: number;
  /** Participants dropped because their agent stopped refreshing them. */
  expired: number;
  rejected: Record<BarrierReason, number>;
  /** Joins, withdraws and release acks that changed nothing (retries, duplicates, refreshes excluded). */
  duplicates: number;
  refreshes: number;
  noticesReceived: number;
  releaseRetransmits: number;
  /** Releases given up after BARRIER_RELEASE_ATTEMPTS_MAX (the participant's refresh asks again). */
  releasesAbandoned: number;
  framesDroppedOutboxFull: number;
}

export interface OpenBarrierStatus {
  name: string;
  generation: number;
  /** Waiters present (confirmed or not). */
  present: number;
  /** Waiters that count (confirmed their generation). */
  confirmed: number;
  initialized: boolean;
  /** The initializer's count, or null. */
  count: number | null;
  /** Largest error code reported so far. */
  errorCode: number;
  ageMs: number;
  /** Participants re-registered from a previous master's generations, not merged yet. */
  inherited: number;
  /** When the next of those groups settles and merges; null if none. */
  heldUntilMs: number | null;
}

export interface BarrierTableStatus {
  open: OpenBarrierStatus[];
  participants: number;
  pendingReleases: number;
  rememberedReleased: number;
  rememberedGenerations: number;
  counters: BarrierTableCounters;
}

interface Member {
  nodeId: NodeId;
  requestId: number;
  initializer: boolean;
  count: number | null;
  errorCode: number;
  confirmed: boolean;
  /** The previous master's generation this participant re-registered from (not yet known released), or null. */
  origin: number | null;
  lastHeardMs: number;
  /** Asked for a synchronized release: the generation it is released in gets a release instant. */
  synchronized: boolean;
}

interface OpenBarrier {
  name: string;
  generation: number;
  createdMs: number;
  members: Map<string, Member>;
  /** The initializer of this table's own group (participants with no origin). */
  initializer: Member | null;
  /** All waiters, whatever their group (for status and the waiter limit). */
  waiters: number;
  /** Confirmed waiters of this table's own group. */
  confirmedWaiters: number;
  /** Members with an origin (always confirmed: they joined carrying it). */
  inherited: number;
  heldUntilMs: number | null;
}

interface PendingRelease {
  to: NodeId;
  name: string;
  generation: number;
  exitCode: number;
  requestIds: Set<number>;
  attempts: number;
  nextMs: number;
  releaseAtNs: bigint | null;
}

interface ReleasedParticipant {
  name: string;
  generation: number;
  exitCode: number;
  atMs: number;
  releaseAtNs: bigint | null;
}

interface ReleasedGeneration {
  name: string;
  exitCode: number;
  atMs: number;
  releaseAtNs: bigint | null;
}

interface Refused {
  reason: BarrierReason;
  atMs: number;
}

// Node ids are printable ASCII without spaces, so a space separates the two halves unambiguously.
const participantKey = (nodeId: NodeId, requestId: number): string => `${nodeId} ${requestId}`;
const releaseKey = (nodeId: NodeId, generation: number): string => `${nodeId} ${generation}`;

export class BarrierTable {
  private readonly limits: BarrierTableLimits;
  private readonly random: () => number;
  private readonly clockNowNs: (() => bigint) | null;
  private readonly delayNsOf: (nodeId: NodeId) => number | null;
  private readonly barriers = new Map<string, OpenBarrier>();
  private participants = 0;
  private readonly pendingReleases = new Map<string, PendingRelease>();
  // Insertion-ordered maps whose entries are added in time order: the oldest is always first.
  private readonly releasedParticipants = new Map<string, ReleasedParticipant>();
  private readonly releasedGenerations = new Map<number, ReleasedGeneration>();
  private readonly refused = new Map<string, Refused>();
  /** When this table first heard of each previous master's generation that participants came from. */
  private readonly originFirstSeenMs = new Map<number, number>();
  private nextSweepMs: number | null = null;
  private outbox: BarrierSend[] = [];
  readonly counters: BarrierTableCounters = {
    generationsReleased: 0,
    participantsReleased: 0,
    participantsReleasedByNotice: 0,
    generationsReleasedSynchronized: 0,
    withdrawn: 0,
    expired: 0,
    rejected: Object.fromEntries(BARRIER_REASONS.map((reason) => [reason, 0])) as Record<BarrierReason, number>,
    duplicates: 0,
    refreshes: 0,
    noticesReceived: 0,
    releaseRetransmits: 0,
    releasesAbandoned: 0,
    framesDroppedOutboxFull: 0,
  };

  constructor(config: BarrierTableConfig) {
    this.random = config.random;
    this.clockNowNs = config.clockNowNs ?? null;
    this.delayNsOf = config.delayNsOf ?? (() => null);
    this.limits = { ...BARRIER_TABLE_LIMITS, ...config.limits };
  }

  /** A frame from an agent (`from` is its node id; the master's own agent delivers here directly). */
  deliver(from: NodeId, body: BarrierBody, nowMs: number): void {
    switch (body.type) {
      case BarrierFrameType.barrierJoin:
        this.join(from, body, nowMs);
        break;
      case BarrierFrameType.barrierWithdraw:
        this.withdraw(from, body, nowMs);
        break;
      case BarrierFrameType.barrierReleaseAck:
        this.releaseAcked(from, body);
        break;
      case BarrierFrameType.barrierReleased:
        this.notice(from, body, nowMs);
        break;
      default:
        // Master-to-agent frames sent to a master (a confused or old peer): nothing to do.
        this.counters.duplicates += 1;
    }
    this.scheduleSweep(nowMs);
  }

  tick(nowMs: number): void {
    for (const [key, pending] of this.pendingReleases) {
      if (pending.nextMs > nowMs) continue;
      if (pending.attempts >= this.limits.releaseAttemptsMax) {
        this.pendingReleases.delete(key);
        this.counters.releasesAbandoned += 1;
        continue;
      }
      pending.attempts += 1;
      pending.nextMs = nowMs + this.limits.retryMs;
      this.counters.releaseRetransmits += 1;
      this.sendRelease(pending.to, pending.name, pending.generation, pending.exitCode, [...pending.requestIds], pending.releaseAtNs);
    }
    for (const barrier of [...this.barriers.values()]) {
      if (barrier.heldUntilMs !== null && barrier.heldUntilMs <= nowMs) {
        barrier.heldUntilMs = null;
        this.evaluate(barrier, nowMs);
      }
    }
    if (this.nextSweepMs !== null && this.nextSweepMs <= nowMs) {
      this.nextSweepMs = null;
      this.sweep(nowMs);
      this.scheduleSweep(nowMs);
    }
  }

  /** When tick() next has something to do, or null if nothing is pending. */
  nextDeadlineMs(): number | null {
    let deadline = this.nextSweepMs ?? Number.POSITIVE_INFINITY;
    for (const pending of this.pendingReleases.values()) deadline = Math.min(deadline, pending.nextMs);
    for (const barrier of this.barriers.values()) {
      if (barrier.heldUntilMs !== null) deadline = Math.min(deadline, barrier.heldUntilMs);
    }
    return deadline === Number.POSITIVE_INFINITY ? null : deadline;
  }

  drain(): BarrierSend[] {
    const sends = this.outbox;
    this.outbox = [];
    return sends;
  }

  status(nowMs: number): BarrierTableStatus {
    const open: OpenBarrierStatus[] = [];
    for (const barrier of this.barriers.values()) {
      let errorCode = 0;
      for (const member of barrier.members.values()) errorCode = Math.max(errorCode, member.errorCode);
      open.push({
        name: barrier.name,
        generation: barrier.generation,
        present: barrier.waiters,
        confirmed: barrier.confirmedWaiters,
        initialized: barrier.initializer !== null,
        count: barrier.initializer?.count ?? null,
        errorCode,
        ageMs: nowMs - barrier.createdMs,
        inherited: barrier.inherited,
        heldUntilMs: barrier.heldUntilMs,
      });
    }
    return {
      open,
      participants: this.participants,
      pendingReleases: this.pendingReleases.size,
      rememberedReleased: this.releasedParticipants.size,
      rememberedGenerations: this.releasedGenerations.size,
      counters: structuredClone(this.counters),
    };
  }

  private join(from: NodeId, body: BarrierJoinBody, nowMs: number): void {
    const key = participantKey(from, body.requestId);
    const open = this.barriers.get(body.name);
    const member = open?.members.get(key);
    if (open !== undefined && member !== undefined) {
      member.lastHeardMs = nowMs;
      if (body.synchronized === true) member.synchronized = true;
      if (!member.confirmed && body.generation === (member.origin ?? open.generation)) {
        this.confirm(open, member);
        this.evaluate(open, nowMs);
      } else {
        this.counters.refreshes += 1;
      }
      this.ackIfMember(open, key);
      return;
    }
    const released = this.releasedParticipants.get(key);
    if (released !== undefined) {
      // Its release was lost (or this is a late duplicate): send it again.
      this.counters.duplicates += 1;
      this.sendRelease(from, released.name, released.generation, released.exitCode, [body.requestId], released.releaseAtNs);
      return;
    }
    const refused = this.refused.get(key);
    if (refused !== undefined) {
      this.counters.duplicates += 1;
      this.sendRefusal(from, body.name, body.requestId, refused.reason);
      return;
    }
    if (body.generation !== null) {
      const generation = this.releasedGenerations.get(body.generation);
      if (generation !== undefined) {
        // Acked into a generation that has been released since (by this master or, as an agent
        // reported, by the previous one): the participant was part of it.
        this.releaseParticipants(generation.name, body.generation, generation.exitCode, [{ nodeId: from, requestId: body.requestId }], nowMs, generation.releaseAtNs);
        return;
      }
    }
    const origin = body.generation !== null && body.generation !== open?.generation ? body.generation : null;
    const problem = this.joinProblem(body, open, origin);
    if (problem !== null) {
      this.refuse(from, body.name, body.requestId, problem, nowMs);
      return;
    }
    const barrier = open ?? this.openBarrier(body.name, nowMs);
    if (origin !== null && !this.originFirstSeenMs.has(origin)) this.originFirstSeenMs.set(origin, nowMs);
    const added: Member = {
      nodeId: from,
      requestId: body.requestId,
      initializer: body.count !== null,
      count: body.count,
      errorCode: body.errorCode,
      // Carrying its group's generation proves it knows it: a re-registration, or a re-join after expiry.
      confirmed: body.generation !== null,
      origin,
      lastHeardMs: nowMs,
      synchronized: body.synchronized === true,
    };
    this.addMember(barrier, key, added);
    this.evaluate(barrier, nowMs);
    this.ackIfMember(barrier, key);
  }

  private joinProblem(body: BarrierJoinBody, open: OpenBarrier | undefined, origin: number | null): BarrierReason | null {
    // Frames from the network were validated by the codec; the local agent's were not.
    if (barrierNameProblem(body.name) !== null) return 'bad-name';
    if (!isSafeId(body.requestId) || (body.generation !== null && !isSafeId(body.generation))) return 'bad-count';
    if (!Number.isInteger(body.errorCode) || body.errorCode < 0 || body.errorCode > BARRIER_ERROR_CODE_MAX) return 'bad-error-code';
    if (body.count !== null) {
      if (!Number.isInteger(body.count) || body.count < 0) return 'bad-count';
      // A count above the waiter limit could never be reached.
      if (body.count > this.limits.waitersMax) return 'waiter-limit';
    }
    if (open === undefined && this.barriers.size >= this.limits.barriersOpenMax) return 'barrier-limit';
    if (this.participants >= this.limits.participantsMax) return 'participant-limit';
    if (body.count !== null && open !== undefined) {
      if (origin === null ? open.initializer !== null : [...open.members.values()].some((m) => m.origin === origin && m.initializer)) {
        return 'second-initializer';
      }
    }
    if (body.count === null && open !== undefined && open.waiters >= this.limits.waitersMax) return 'waiter-limit';
    return null;
  }

  private withdraw(from: NodeId, body: BarrierWithdrawBody, nowMs: number): void {
    const key = participantKey(from, body.requestId);
    const open = this.barriers.get(body.name);
    const member = open?.members.get(key);
    if (open !== undefined && member !== undefined) {
      this.removeMember(open, key, member);
      this.counters.withdrawn += 1;
      if (open.members.size > 0) {
        // Only an inherited group that held the rest back can make withdrawing release anything.
        this.evaluate(open, nowMs);
        this.ackAll(open);
      }
    } else {
      const released = this.releasedParticipants.get(key);
      if (released !== undefined) {
        // Released before the withdraw arrived: it was counted, so tell the agent it was released.
        this.counters.duplicates += 1;
        this.sendRelease(from, released.name, released.generation, released.exitCode, [body.requestId], released.releaseAtNs);
        return;
      }
      this.counters.duplicates += 1;
    }
    // Remembered either way, so that a join still in flight cannot add it back.
    this.rememberRefused(key, 'withdrawn', nowMs);
    this.sendRefusal(from, body.name, body.requestId, 'withdrawn');
  }

  private releaseAcked(from: NodeId, body: BarrierReleaseAckBody): void {
    const key = releaseKey(from, body.generation);
    const pending = this.pendingReleases.get(key);
    if (pending === undefined) {
      this.counters.duplicates += 1;
      return;
    }
    for (const requestId of body.requestIds) pending.requestIds.delete(requestId);
    if (pending.requestIds.size === 0) this.pendingReleases.delete(key);
  }

  private notice(from: NodeId, body: BarrierReleasedBody, nowMs: number): void {
    this.counters.noticesReceived += 1;
    this.sendTo(from, { type: BarrierFrameType.barrierReleaseAck, generation: body.generation, requestIds: [] });
    const open = this.barriers.get(body.name);
    // A generation still open here was never released by anyone (only this table releases it).
    if (open?.generation === body.generation) return;
    if (!this.releasedGenerations.has(body.generation)) {
      this.rememberGeneration(body.generation, body.name, body.exitCode, nowMs, body.releaseAtNs ?? null);
    }
    // The instant the old master gave the generation (the participants it reached start then).
    const releaseAtNs = this.releasedGenerations.get(body.generation)?.releaseAtNs ?? null;
    if (open === undefined) return;
    const pulled: { nodeId: NodeId; requestId: number }[] = [];
    for (const [key, member] of [...open.members]) {
      if (member.origin !== body.generation) continue;
      this.removeMember(open, key, member, false);
      pulled.push({ nodeId: member.nodeId, requestId: member.requestId });
    }
    if (pulled.length === 0) return;
    this.counters.participantsReleasedByNotice += pulled.length;
    this.releaseParticipants(body.name, body.generation, body.exitCode, pulled, nowMs, releaseAtNs);
    this.evaluate(open, nowMs);
    if (this.barriers.get(open.name) === open) this.ackAll(open);
  }

  private confirm(barrier: OpenBarrier, member: Member): void {
    member.confirmed = true;
    if (member.origin === null && !member.initializer) barrier.confirmedWaiters += 1;
  }

  /**
   * Merges settled groups, releases every complete group, sets the next hold and drops the barrier
   * if empty. Whoever triggered it checks membership afterwards.
   */
  private evaluate(barrier: OpenBarrier, nowMs: number): void {
    if (barrier.inherited > 0) this.mergeSettled(barrier, nowMs);
    const initializer = barrier.initializer;
    if (initializer !== null && initializer.confirmed && barrier.confirmedWaiters >= (initializer.count as number)) {
      this.releaseGroup(barrier, null, nowMs);
    }
    barrier.heldUntilMs = null;
    if (barrier.inherited > 0) {
      const groups = new Map<number, { initializer: Member | null; waiters: number }>();
      for (const member of barrier.members.values()) {
        if (member.origin === null) continue;
        const group = groups.get(member.origin) ?? { initializer: null, waiters: 0 };
        if (member.initializer) group.initializer = member;
        else group.waiters += 1;
        groups.set(member.origin, group);
      }
      for (const [origin, group] of groups) {
        // Complete on its own: consistent whether or not the old master released it.
        if (group.initializer !== null && group.waiters >= (group.initializer.count as number)) this.releaseGroup(barrier, origin, nowMs);
        else {
          const untilMs = (this.originFirstSeenMs.get(origin) ?? nowMs) + this.limits.settleMs;
          barrier.heldUntilMs = Math.min(barrier.heldUntilMs ?? untilMs, untilMs);
        }
      }
    }
    if (barrier.members.size === 0 && this.barriers.get(barrier.name) === barrier) this.barriers.delete(barrier.name);
  }

  /** Inherited groups whose settle window has passed join this table's own group. */
  private mergeSettled(barrier: OpenBarrier, nowMs: number): void {
    for (const [key, member] of [...barrier.members]) {
      if (member.origin === null) continue;
      const firstSeenMs = this.originFirstSeenMs.get(member.origin);
      if (firstSeenMs !== undefined && nowMs < firstSeenMs + this.limits.settleMs) continue;
      if (member.initializer && barrier.initializer !== null) {
        // Two initializers for one use of the name: the one this master admitted itself stays.
        this.removeMember(barrier, key, member, false);
        this.refuse(member.nodeId, barrier.name, member.requestId, 'second-initializer', nowMs);
        continue;
      }
      this.removeMember(barrier, key, member, false);
      // It must confirm this table's generation before it counts (see the header).
      member.origin = null;
      member.confirmed = false;
      this.addMember(barrier, key, member);
      this.sendAck(barrier, member);
    }
  }

  /** Releases the confirmed members of one group (origin null: this table's own generation). */
  private releaseGroup(barrier: OpenBarrier, origin: number | null, nowMs: number): void {
    const released: Member[] = [];
    let exitCode = 0;
    for (const [key, member] of [...barrier.members]) {
      if (member.origin !== origin || !member.confirmed) continue;
      released.push(member);
      exitCode = Math.max(exitCode, member.errorCode);
      this.removeMember(barrier, key, member, false);
    }
    const generation = origin ?? barrier.generation;
    this.counters.generationsReleased += 1;
    const releaseAtNs = released.some((member) => member.synchronized) ? this.releaseInstantNs(released, nowMs) : null;
    if (releaseAtNs !== null) this.counters.generationsReleasedSynchronized += 1;
    this.rememberGeneration(generation, barrier.name, exitCode, nowMs, releaseAtNs);
    this.releaseParticipants(barrier.name, generation, exitCode, released, nowMs, releaseAtNs);
    if (origin !== null) return;
    // Waiters beyond the count that had not confirmed yet were not counted: they wait for the next
    // use of the name, in a new generation (releasing them would break the confirmation rule).
    barrier.generation = this.newGeneration();
    barrier.createdMs = nowMs;
    for (const member of barrier.members.values()) if (member.origin === null) this.sendAck(barrier, member);
  }

  /**
   * A synchronized generation's release instant: the master's clock now (the last arrival) plus a
   * margin covering delivery to the slowest of the released participants' agents.
   */
  private releaseInstantNs(released: readonly Member[], nowMs: number): bigint {
    const nodes = new Set(released.map((member) => member.nodeId));
    const marginNs = syncReleaseMarginNs([...nodes].map((nodeId) => this.delayNsOf(nodeId)));
    const clockNs = this.clockNowNs === null ? BigInt(Math.round(nowMs * 1e6)) : this.clockNowNs();
    return clockNs + BigInt(marginNs);
  }

  /** Releases participants (removed from any open barrier already) and remembers them. */
  private releaseParticipants(
    name: string,
    generation: number,
    exitCode: number,
    released: readonly { nodeId: NodeId; requestId: number }[],
    nowMs: number,
    releaseAtNs: bigint | null,
  ): void {
    const byNode = new Map<NodeId, number[]>();
    for (const { nodeId, requestId } of released) {
      this.rememberReleased(participantKey(nodeId, requestId), { name, generation, exitCode, atMs: nowMs, releaseAtNs });
      const ids = byNode.get(nodeId) ?? [];
      ids.push(requestId);
      byNode.set(nodeId, ids);
      this.counters.participantsReleased += 1;
    }
    for (const [nodeId, requestIds] of byNode) {
      const key = releaseKey(nodeId, generation);
      const pending = this.pendingReleases.get(key);
      if (pending !== undefined) {
        for (const requestId of requestIds) pending.requestIds.add(requestId);
      } else {
        this.pendingReleases.set(key, {
          to: nodeId,
          name,
          generation,
          exitCode,
          requestIds: new Set(requestIds),
          attempts: 1,
          nextMs: nowMs + this.limits.retryMs,
          releaseAtNs,
        });
      }
      this.sendRelease(nodeId, name, generation, exitCode, requestIds, releaseAtNs);
    }
  }

  private addMember(barrier: OpenBarrier, key: string, member: Member): void {
    barrier.members.set(key, member);
    this.participants += 1;
    if (!member.initializer) barrier.waiters += 1;
    if (member.origin !== null) barrier.inherited += 1;
    else if (member.initializer) barrier.initializer = member;
    else if (member.confirmed) barrier.confirmedWaiters += 1;
  }

  private removeMember(barrier: OpenBarrier, key: string, member: Member, dropEmpty = true): void {
    barrier.members.delete(key);
    this.participants -= 1;
    if (!member.initializer) barrier.waiters -= 1;
    if (member.origin !== null) barrier.inherited -= 1;
    else if (member.initializer) {
      if (barrier.initializer === member) barrier.initializer = null;
    } else if (member.confirmed) barrier.confirmedWaiters -= 1;
    if (dropEmpty && barrier.members.size === 0) this.barriers.delete(barrier.name);
  }

  private openBarrier(name: string, nowMs: number): OpenBarrier {
    const barrier: OpenBarrier = {
      name,
      generation: this.newGeneration(),
      createdMs: nowMs,
      members: new Map(),
      initializer: null,
      waiters: 0,
      confirmedWaiters: 0,
      inherited: 0,
      heldUntilMs: null,
    };
    this.barriers.set(name, barrier);
    return barrier;
  }

  /**
   * A random safe integer: unique across masters without coordination (a new master knows nothing
   * of the ids its predecessors used; 2^53 makes a collision negligible), never 0.
   */
  private newGeneration(): number {
    // 53 random bits against at most a few thousand remembered generations: a collision is rare,
    // so many in a row mean a broken random source (an assertion, not a hang).
    for (let attempt = 0; attempt < BARRIER_GENERATION_DRAWS_MAX; attempt += 1) {
      const high = Math.floor(this.random() * 0x20_0000); // 21 bits
      const low = Math.floor(this.random() * 0x1_0000_0000); // 32 bits
      const generation = high * 0x1_0000_0000 + low;
      if (generation === 0 || this.releasedGenerations.has(generation) || this.originFirstSeenMs.has(generation)) continue;
      let inUse = false;
      for (const barrier of this.barriers.values()) if (barrier.generation === generation) inUse = true;
      if (!inUse) return generation;
    }
    throw new Error(`barrier table: no unused generation in ${BARRIER_GENERATION_DRAWS_MAX} draws; the random source is broken`);
  }

  private refuse(from: NodeId, name: string, requestId: number, reason: BarrierReason, nowMs: number): void {
    this.counters.rejected[reason] += 1;
    this.rememberRefused(participantKey(from, requestId), reason, nowMs);
    this.sendRefusal(from, name, requestId, reason);
  }

  private sweep(nowMs: number): void {
    for (const barrier of [...this.barriers.values()]) {
      let changed = false;
      for (const [key, member] of [...barrier.members]) {
        if (nowMs - member.lastHeardMs < this.limits.memberExpiryMs) continue;
        // Its agent died or lost the master for long: not refused, so a later refresh re-adds it.
        this.removeMember(barrier, key, member);
        this.counters.expired += 1;
        changed = true;
      }
      if (changed && barrier.members.size > 0) {
        this.evaluate(barrier, nowMs);
        if (this.barriers.get(barrier.name) === barrier) this.ackAll(barrier);
      }
    }
    pruneOldest(this.releasedParticipants, (entry) => nowMs - entry.atMs >= this.limits.releasedMemoryMs);
    pruneOldest(this.releasedGenerations, (entry) => nowMs - entry.atMs >= this.limits.generationMemoryMs);
    pruneOldest(this.refused, (entry) => nowMs - entry.atMs >= this.limits.refusedMemoryMs);
    // Past the settle window a first-seen time no longer holds anything back.
    pruneOldest(this.originFirstSeenMs, (firstSeenMs) => nowMs - firstSeenMs >= this.limits.settleMs);
  }

  private scheduleSweep(nowMs: number): void {
    if (this.nextSweepMs !== null) return;
    const idle =
      this.barriers.size === 0 &&
      this.releasedParticipants.size === 0 &&
      this.releasedGenerations.size === 0 &&
      this.refused.size === 0 &&
      this.originFirstSeenMs.size === 0;
    if (!idle) this.nextSweepMs = nowMs + this.limits.sweepMs;
  }

  private rememberReleased(key: string, entry: ReleasedParticipant): void {
    this.releasedParticipants.delete(key);
    this.releasedParticipants.set(key, entry);
    trimToSize(this.releasedParticipants, this.limits.releasedRememberedMax);
  }

  private rememberGeneration(generation: number, name: string, exitCode: number, nowMs: number, releaseAtNs: bigint | null): void {
    this.releasedGenerations.delete(generation);
    this.releasedGenerations.set(generation, { name, exitCode, atMs: nowMs, releaseAtNs });
    trimToSize(this.releasedGenerations, this.limits.generationsRememberedMax);
  }

  private rememberRefused(key: string, reason: BarrierReason, nowMs: number): void {
    this.refused.delete(key);
    this.refused.set(key, { reason, atMs: nowMs });
    trimToSize(this.refused, this.limits.refusedRememberedMax);
  }

  /** Tells every participant of a barrier its state after a change they did not cause. */
  private ackAll(barrier: OpenBarrier): void {
    for (const member of barrier.members.values()) this.sendAck(barrier, member);
  }

  /** Acks a participant if it is still in the (still open) barrier, i.e. was not just released. */
  private ackIfMember(barrier: OpenBarrier, key: string): void {
    const member = barrier.members.get(key);
    if (member !== undefined && this.barriers.get(barrier.name) === barrier) this.sendAck(barrier, member);
  }

  private sendAck(barrier: OpenBarrier, member: Member): void {
    this.sendTo(member.nodeId, {
      type: BarrierFrameType.barrierAck,
      requestId: member.requestId,
      name: barrier.name,
      // An inherited participant keeps its old generation until its group merges, so that a
      // further master change still finds it under the id other agents may report released.
      generation: member.origin ?? barrier.generation,
      confirmed: member.confirmed,
      present: barrier.waiters,
      count: barrier.initializer?.count ?? null,
      error: null,
    });
  }

  private sendRefusal(to: NodeId, name: string, requestId: number, reason: BarrierReason): void {
    const open = this.barriers.get(name);
    this.sendTo(to, {
      type: BarrierFrameType.barrierAck,
      requestId,
      name,
      generation: null,
      confirmed: false,
      present: open?.waiters ?? 0,
      count: open?.initializer?.count ?? null,
      error: reason,
    });
  }

  private sendRelease(to: NodeId, name: string, generation: number, exitCode: number, requestIds: readonly number[], releaseAtNs: bigint | null): void {
    for (let start = 0; start < requestIds.length; start += BARRIER_IDS_PER_FRAME_MAX) {
      this.sendTo(to, {
        type: BarrierFrameType.barrierRelease,
        name,
        generation,
        exitCode,
        requestIds: requestIds.slice(start, start + BARRIER_IDS_PER_FRAME_MAX),
        // Omitted for plain generations: older agents refuse unknown fields.
        ...(releaseAtNs === null ? {} : { releaseAtNs }),
      });
    }
  }

  private sendTo(to: NodeId, body: BarrierBody): void {
    if (this.outbox.length >= this.limits.outboxFramesMax) {
      // Retransmission and the agents' refreshes recover whatever is dropped here.
      this.counters.framesDroppedOutboxFull += 1;
      return;
    }
    this.outbox.push({ to, body });
  }
}

function pruneOldest<K, V>(map: Map<K, V>, expired: (value: V) => boolean): void {
  for (const [key, value] of map) {
    if (!expired(value)) return;
    map.delete(key);
  }
}

function trimToSize<K, V>(map: Map<K, V>, sizeMax: number): void {
  for (const key of map.keys()) {
    if (map.size <= sizeMax) return;
    map.delete(key);
  }
}
