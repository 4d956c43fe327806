// An agent's side of barriers (issue 6): the participants its control clients are waiting for.
// Pure: the daemon calls join/withdraw for its HTTP clients, feeds received barrier frames, tick()
// and master changes, and drains frames (addressed by node id) and outcomes.
//
// The client never releases anything on its own: only a barrierRelease from a master does.
import {
  BARRIER_CLIENT_PARTICIPANTS_MAX,
  BARRIER_ERROR_CODE_MAX,
  BARRIER_IDS_PER_FRAME_MAX,
  BARRIER_NOTICE_MEMORY_MS,
  BARRIER_NOTICES_MAX,
  BARRIER_OUTBOX_FRAMES_MAX,
  BARRIER_REFRESH_MS,
  BARRIER_RETRY_MS,
  BARRIER_WAITERS_MAX,
  BARRIER_WITHDRAW_ATTEMPTS_MAX,
} from '../limits.ts';
import type { NodeId } from '../types.ts';
import {
  BarrierFrameType,
  barrierNameProblem,
  isSafeId,
  type BarrierAckBody,
  type BarrierBody,
  type BarrierReason,
  type BarrierReleaseAckBody,
  type BarrierReleaseBody,
  type BarrierSend,
} from './frames.ts';

export interface BarrierClientLimits {
  retryMs: number;
  refreshMs: number;
  participantsMax: number;
  withdrawAttemptsMax: number;
  noticesMax: number;
  noticeMemoryMs: number;
  outboxFramesMax: number;
  waitersMax: number;
}

export const BARRIER_CLIENT_LIMITS: BarrierClientLimits = {
  retryMs: BARRIER_RETRY_MS,
  refreshMs: BARRIER_REFRESH_MS,
  participantsMax: BARRIER_CLIENT_PARTICIPANTS_MAX,
  withdrawAttemptsMax: BARRIER_WITHDRAW_ATTEMPTS_MAX,
  noticesMax: BARRIER_NOTICES_MAX,
  noticeMemoryMs: BARRIER_NOTICE_MEMORY_MS,
  outboxFramesMax: BARRIER_OUTBOX_FRAMES_MAX,
  waitersMax: BARRIER_WAITERS_MAX,
};

export interface BarrierClientConfig {
  nodeId: NodeId;
  /**
   * First request id; ids then count up. The daemon passes a random 40-bit value, so a restarted
   * agent does not reuse the ids of its previous life (the master identifies participants by them).
   */
  requestIdBase: number;
  limits?: Partial<BarrierClientLimits>;
}

export interface BarrierJoinRequest {
  name: string;
  /** null: a waiter; N: the initializer, N waiters not counting itself. */
  count: number | null;
  /** 0..239 (--error). */
  errorCode: number;
  /** --synchronized: ask the master for a release instant (see frames.ts). */
  synchronized?: boolean;
}

export type BarrierJoinResult = { ok: true; requestId: number } | { ok: false; reason: BarrierReason; detail: string };

export type BarrierOutcome =
  /** The master has the participant (first ack, and again whenever its generation changes). */
  | { kind: 'acked'; requestId: number; name: string; generation: number; present: number; count: number | null }
  /** Final: released with exitCode (the largest error code of the barrier's participants). */
  | {
      kind: 'released';
      requestId: number;
      name: string;
      generation: number;
      exitCode: number;
      /** The generation's release instant on the cluster clock (ns since the epoch), or null for a plain release. */
      releaseAtNs: bigint | null;
    }
  /** Final: refused by the master (reason is a BarrierReason, or a newer master's own). */
  | { kind: 'rejected'; requestId: number; name: string; reason: string };

export interface BarrierParticipantStatus {
  requestId: number;
  name: string;
  count: number | null;
  errorCode: number;
  /** Asked for a synchronized release. */
  synchronized: boolean;
  /** The generation the current master acked it into, sent back with every join. */
  generation: number | null;
  /** The master counts it; until then joins go out every retryMs, after that every refreshMs. */
  confirmed: boolean;
  present: number | null;
  initializerCount: number | null;
  sinceMs: number;
}

export interface BarrierClientCounters {
  joinsSent: number;
  withdrawsSent: number;
  noticesSent: number;
  releasesReceived: number;
  /** Releases for participants that were already released or unknown (acked, nothing else). */
  releasesDuplicate: number;
  /** Acks from a node that is not the current master, or for unknown participants. */
  acksIgnored: number;
  withdrawsAbandoned: number;
  framesDroppedOutboxFull: number;
}

interface Pending extends BarrierParticipantStatus {
  nextSendMs: number;
}

interface Withdrawing {
  requestId: number;
  name: string;
  attempts: number;
  nextSendMs: number;
}

interface Notice {
  name: string;
  exitCode: number;
  releaseAtNs: bigint | null;
  seenMs: number;
  /** The current master knows this generation is released (it released it, or acked our notice). */
  acked: boolean;
  nextSendMs: number;
}

export function newBarrierClientCounters(): BarrierClientCounters {
  return { joinsSent: 0, withdrawsSent: 0, noticesSent: 0, releasesReceived: 0, releasesDuplicate: 0, acksIgnored: 0, withdrawsAbandoned: 0, framesDroppedOutboxFull: 0 };
}

export class BarrierClient {
  readonly nodeId: NodeId;
  private readonly limits: BarrierClientLimits;
  private nextRequestId: number;
  private master: NodeId | null = null;
  private readonly pending = new Map<number, Pending>();
  private readonly withdrawing = new Map<number, Withdrawing>();
  /** Generations this agent saw released recently (insertion order = time order). */
  private readonly notices = new Map<number, Notice>();
  private outbox: BarrierSend[] = [];
  private outcomes: BarrierOutcome[] = [];
  readonly counters: BarrierClientCounters = newBarrierClientCounters();

  constructor(config: BarrierClientConfig) {
    if (!isSafeId(config.requestIdBase)) throw new RangeError(`requestIdBase ${config.requestIdBase} is not a safe non-negative integer`);
    this.nodeId = config.nodeId;
    this.nextRequestId = config.requestIdBase;
    this.limits = { ...BARRIER_CLIENT_LIMITS, ...config.limits };
  }

  get masterId(): NodeId | null {
    return this.master;
  }

  /** Registers a participant; usage errors are answered at once, without asking the master. */
  join(request: BarrierJoinRequest, nowMs: number): BarrierJoinResult {
    const nameProblem = barrierNameProblem(request.name);
    if (nameProblem !== null) return { ok: false, reason: 'bad-name', detail: `barrier name ${nameProblem}` };
    if (request.count !== null && (!Number.isInteger(request.count) || request.count < 0)) {
      return { ok: false, reason: 'bad-count', detail: 'the count must be a non-negative integer' };
    }
    if (request.count !== null && request.count > this.limits.waitersMax) {
      return { ok: false, reason: 'waiter-limit', detail: `at most ${this.limits.waitersMax} waiters per barrier` };
    }
    if (!Number.isInteger(request.errorCode) || request.errorCode < 0 || request.errorCode > BARRIER_ERROR_CODE_MAX) {
      return { ok: false, reason: 'bad-error-code', detail: `the error code must be 0..${BARRIER_ERROR_CODE_MAX}` };
    }
    if (this.pending.size + this.withdrawing.size >= this.limits.participantsMax) {
      return { ok: false, reason: 'client-limit', detail: `at most ${this.limits.participantsMax} participants per agent` };
    }
    if (!isSafeId(this.nextRequestId)) throw new RangeError('request ids exhausted');
    const requestId = this.nextRequestId;
    this.nextRequestId += 1;
    const participant: Pending = {
      requestId,
      name: request.name,
      count: request.count,
      errorCode: request.errorCode,
      synchronized: request.synchronized === true,
      generation: null,
      confirmed: false,
      present: null,
      initializerCount: null,
      sinceMs: nowMs,
      nextSendMs: nowMs,
    };
    this.pending.set(requestId, participant);
    this.sendJoin(participant, nowMs);
    return { ok: true, requestId };
  }

  /**
   * The participant gave up (timeout, its control client went away). It produces no outcome; the
   * master is told until it acknowledges. False if it is not pending (already released or unknown).
   */
  withdraw(requestId: number, nowMs: number): boolean {
    const participant = this.pending.get(requestId);
    if (participant === undefined) return false;
    this.pending.delete(requestId);
    const entry: Withdrawing = { requestId, name: participant.name, attempts: 0, nextSendMs: nowMs };
    this.withdrawing.set(requestId, entry);
    this.sendWithdraw(entry, nowMs);
    return true;
  }

  /**
   * A master was elected (call on every change of master or term, including when it is this node;
   * null while electing). Everything pending is registered again, with the generation each
   * participant was acked into, and recent releases are reported so the new master can release
   * what the old one released only partly.
   */
  masterChanged(masterId: NodeId | null, nowMs: number): void {
    this.master = masterId;
    this.pruneNotices(nowMs);
    for (const notice of this.notices.values()) {
      notice.acked = false;
      notice.nextSendMs = nowMs;
    }
    for (const participant of this.pending.values()) {
      participant.confirmed = false;
      participant.nextSendMs = nowMs;
    }
    for (const entry of this.withdrawing.values()) entry.nextSendMs = nowMs;
    if (masterId === null) return;
    // Notices first: a master that hears of a release before the re-registrations releases at once.
    for (const [generation, notice] of this.notices) this.sendNotice(generation, notice, nowMs);
    for (const participant of this.pending.values()) this.sendJoin(participant, nowMs);
    for (const entry of this.withdrawing.values()) this.sendWithdraw(entry, nowMs);
  }

  receive(body: BarrierBody, from: NodeId, nowMs: number): void {
    switch (body.type) {
      case BarrierFrameType.barrierAck:
        this.acked(body, from, nowMs);
        return;
      case BarrierFrameType.barrierRelease:
        this.released(body, from, nowMs);
        return;
      case BarrierFrameType.barrierReleaseAck:
        this.noticeAcked(body, from);
        return;
      default:
        // Agent-to-master frames: this agent's table (if it is master) takes those, not the client.
        return;
    }
  }

  tick(nowMs: number): void {
    this.pruneNotices(nowMs);
    if (this.master === null) return;
    for (const participant of this.pending.values()) {
      if (participant.nextSendMs <= nowMs) this.sendJoin(participant, nowMs);
    }
    for (const [requestId, entry] of [...this.withdrawing]) {
      if (entry.nextSendMs > nowMs) continue;
      if (entry.attempts >= this.limits.withdrawAttemptsMax) {
        this.withdrawing.delete(requestId);
        this.counters.withdrawsAbandoned += 1;
        continue;
      }
      this.sendWithdraw(entry, nowMs);
    }
    for (const [generation, notice] of this.notices) {
      if (!notice.acked && notice.nextSendMs <= nowMs) this.sendNotice(generation, notice, nowMs);
    }
  }

  nextDeadlineMs(): number | null {
    let deadline = Number.POSITIVE_INFINITY;
    // Notices expire even without a master.
    for (const notice of this.notices.values()) {
      deadline = Math.min(deadline, notice.seenMs + this.limits.noticeMemoryMs);
      if (this.master !== null && !notice.acked) deadline = Math.min(deadline, notice.nextSendMs);
    }
    if (this.master !== null) {
      for (const participant of this.pending.values()) deadline = Math.min(deadline, participant.nextSendMs);
      for (const entry of this.withdrawing.values()) deadline = Math.min(deadline, entry.nextSendMs);
    }
    return deadline === Number.POSITIVE_INFINITY ? null : deadline;
  }

  drain(): { sends: BarrierSend[]; outcomes: BarrierOutcome[] } {
    const drained = { sends: this.outbox, outcomes: this.outcomes };
    this.outbox = [];
    this.outcomes = [];
    return drained;
  }

  participants(): BarrierParticipantStatus[] {
    return [...this.pending.values()].map(({ nextSendMs: _nextSendMs, ...status }) => status);
  }

  private acked(body: BarrierAckBody, from: NodeId, nowMs: number): void {
    // Only the current master's view counts: an old master's ack would carry a generation the
    // new master does not use.
    if (from !== this.master) {
      this.counters.acksIgnored += 1;
      return;
    }
    const withdrawing = this.withdrawing.get(body.requestId);
    if (withdrawing !== undefined) {
      if (body.error !== null) this.withdrawing.delete(body.requestId);
      // Still a member (an ack overtaken by our withdraw): keep withdrawing.
      return;
    }
    const participant = this.pending.get(body.requestId);
    if (participant === undefined) {
      this.counters.acksIgnored += 1;
      return;
    }
    if (body.error !== null || body.generation === null) {
      this.pending.delete(body.requestId);
      this.outcomes.push({ kind: 'rejected', requestId: body.requestId, name: participant.name, reason: body.error ?? 'refused' });
      return;
    }
    participant.present = body.present;
    participant.initializerCount = body.count;
    if (body.generation !== participant.generation) {
      participant.generation = body.generation;
      participant.confirmed = false;
      this.outcomes.push({
        kind: 'acked',
        requestId: body.requestId,
        name: participant.name,
        generation: body.generation,
        present: body.present,
        count: body.count,
      });
      // Confirm at once: until the master hears this generation back, it does not count us.
      this.sendJoin(participant, nowMs);
      return;
    }
    if (body.confirmed !== participant.confirmed) {
      // Counted: refresh slowly. Not (an older ack overtook a newer one): retry soon, which confirms.
      participant.confirmed = body.confirmed;
      participant.nextSendMs = nowMs + (body.confirmed ? this.limits.refreshMs : this.limits.retryMs);
    }
  }

  private released(body: BarrierReleaseBody, from: NodeId, nowMs: number): void {
    this.counters.releasesReceived += 1;
    for (const requestId of body.requestIds) {
      const participant = this.pending.get(requestId);
      if (participant !== undefined) {
        this.pending.delete(requestId);
        this.outcomes.push({ kind: 'released', requestId, name: participant.name, generation: body.generation, exitCode: body.exitCode, releaseAtNs: body.releaseAtNs ?? null });
      } else if (this.withdrawing.delete(requestId)) {
        // Released before our withdraw arrived: the withdraw is done; the daemon already gave up.
      } else {
        this.counters.releasesDuplicate += 1;
      }
    }
    // Acknowledge every release, even a duplicate, to whoever sent it, so it stops retransmitting.
    this.sendTo(from, { type: BarrierFrameType.barrierReleaseAck, generation: body.generation, requestIds: body.requestIds.slice(0, BARRIER_IDS_PER_FRAME_MAX) });
    this.rememberRelease(body, from, nowMs);
  }

  private rememberRelease(body: BarrierReleaseBody, from: NodeId, nowMs: number): void {
    const known = this.notices.get(body.generation);
    // A release from anyone but the current master (a late frame of the previous one) must be
    // reported to the current master: it may hold that generation's other participants.
    const masterKnows = from === this.master;
    if (known !== undefined) {
      if (!masterKnows && known.acked) {
        known.acked = false;
        this.sendNotice(body.generation, known, nowMs);
      }
      return;
    }
    const notice: Notice = { name: body.name, exitCode: body.exitCode, releaseAtNs: body.releaseAtNs ?? null, seenMs: nowMs, acked: masterKnows, nextSendMs: nowMs };
    this.notices.set(body.generation, notice);
    for (const generation of this.notices.keys()) {
      if (this.notices.size <= this.limits.noticesMax) break;
      this.notices.delete(generation);
    }
    if (!masterKnows) this.sendNotice(body.generation, notice, nowMs);
  }

  private noticeAcked(body: BarrierReleaseAckBody, from: NodeId): void {
    if (from !== this.master) return;
    const notice = this.notices.get(body.generation);
    if (notice !== undefined) notice.acked = true;
  }

  private pruneNotices(nowMs: number): void {
    for (const [generation, notice] of this.notices) {
      if (nowMs - notice.seenMs < this.limits.noticeMemoryMs) return;
      this.notices.delete(generation);
    }
  }

  private sendJoin(participant: Pending, nowMs: number): void {
    participant.nextSendMs = nowMs + (participant.confirmed ? this.limits.refreshMs : this.limits.retryMs);
    if (this.master === null) return;
    this.counters.joinsSent += 1;
    this.sendTo(this.master, {
      type: BarrierFrameType.barrierJoin,
      name: participant.name,
      requestId: participant.requestId,
      count: participant.count,
      errorCode: participant.errorCode,
      generation: participant.generation,
      // Only when asked: an older master refuses unknown fields, and plain barriers keep working with it.
      ...(participant.synchronized ? { synchronized: true as const } : {}),
    });
  }

  private sendWithdraw(entry: Withdrawing, nowMs: number): void {
    entry.nextSendMs = nowMs + this.limits.retryMs;
    if (this.master === null) return;
    entry.attempts += 1;
    this.counters.withdrawsSent += 1;
    this.sendTo(this.master, { type: BarrierFrameType.barrierWithdraw, name: entry.name, requestId: entry.requestId });
  }

  private sendNotice(generation: number, notice: Notice, nowMs: number): void {
    notice.nextSendMs = nowMs + this.limits.retryMs;
    if (this.master === null) return;
    this.counters.noticesSent += 1;
    this.sendTo(this.master, {
      type: BarrierFrameType.barrierReleased,
      name: notice.name,
      generation,
      exitCode: notice.exitCode,
      ...(notice.releaseAtNs === null ? {} : { releaseAtNs: notice.releaseAtNs }),
    });
  }

  private sendTo(to: NodeId, body: BarrierBody): void {
    if (this.outbox.length >= this.limits.outboxFramesMax) {
      // Every frame here is retried (or answered again when the master retransmits).
      this.counters.framesDroppedOutboxFull += 1;
      return;
    }
    this.outbox.push({ to, body });
  }
}

/**
 * Routes barrier frames on the node that is master: frames its own client addresses to itself go
 * straight into its table and back, without the network. Returns what must go over the network
 * and the client's outcomes. `table` is null when this node is not master.
 */
export function exchangeLocally(
  selfId: NodeId,
  client: BarrierClient,
  table: { deliver(from: NodeId, body: BarrierBody, nowMs: number): void; drain(): BarrierSend[] } | null,
  nowMs: number,
): { network: BarrierSend[]; outcomes: BarrierOutcome[] } {
  const network: BarrierSend[] = [];
  const outcomes: BarrierOutcome[] = [];
  // Each pass answers frames of the previous one; a join is answered by an ack, which may produce
  // a confirming join, which may release: a handful of passes. The bound only guards against a bug.
  for (let pass = 0; pass < 64; pass += 1) {
    const drained = client.drain();
    outcomes.push(...drained.outcomes);
    const fromTable = table?.drain() ?? [];
    if (drained.sends.length === 0 && fromTable.length === 0) break;
    for (const send of drained.sends) {
      if (send.to !== selfId) network.push(send);
      else if (table !== null) table.deliver(selfId, send.body, nowMs);
      // To itself with no table (no longer master): dropped like a lost frame; it is retried.
    }
    for (const send of fromTable) {
      if (send.to === selfId) client.receive(send.body, selfId, nowMs);
      else network.push(send);
    }
  }
  return { network, outcomes };
}
