// One Berkeley round of the master: the probes to every member, their replies, and the best
// sample of each. One record per member. Probes to a member go out in ping-pong: the next as soon
// as the previous one is answered (the member's process is awake then, so its arrival stamp is not
// late by a wake-up), else after probeSpacingMs. A member's probing stops early once its best
// delay is near its recent minimum (see delay-filter.ts), except in a full round. The round is
// over when every probe went out and every reply came in, or replyWaitMs after the last probe.
// The node starts a round, feeds it ticks and replies, and averages what it collected.
import { FrameType, type Frame } from '../frames.ts';
import type { Outbox } from '../outbox.ts';
import type { NodeId } from '../types.ts';
import { betterSample, sampleFromTimestamps, type ClockSample } from './berkeley.ts';
import { isNearMinimumDelay } from './delay-filter.ts';

export interface ProbeRoundConfig {
  probesPerRound: number;
  /** Probes before a member's probing may stop early (probesPerRound or more: never). */
  probesMin: number;
  probeSpacingMs: number;
  replyWaitMs: number;
}

/** What the round keeps of one member. */
interface MemberProbes {
  /** Probes sent so far; probe numbers count from 0. */
  sent: number;
  nextProbeMs: number;
  /** Not all its probes have been sent yet (and it has not probed enough). */
  probing: boolean;
  /** Probe numbers sent and not answered yet (a duplicate answer counts once). */
  unanswered: Set<number>;
  best: ClockSample | undefined;
  /** A reply said its clock is synchronized. */
  synced: boolean;
  /** What a reply said of its provisional time (null: locked, or no reply yet). */
  provisionalNs: number | null;
}

interface DueProbe {
  nodeId: NodeId;
  dueMs: number;
  sent: number;
}

const NEVER = Number.POSITIVE_INFINITY;

export class ProbeRound {
  readonly round: number;
  /** Monotonic ms the round began: no sample of it is older. */
  readonly startedMs: number;
  /** Every FULL_PROBE_ROUND_EVERY-th round: no early stop (keeps the delay minimum honest). */
  readonly full: boolean;
  private memberIds: NodeId[];
  private readonly members = new Map<NodeId, MemberProbes>();
  private probingCount: number;
  private unansweredCount = 0;
  /**
   * When probes fall due, in order: due times are the send time plus a constant spacing, so
   * appending keeps the queue sorted. An entry is stale once its member has sent more probes
   * (a reply released the next one early). Keeps each tick and deadline O(1) amortized at 1024
   * members instead of a scan of every member per reply.
   */
  private readonly dueQueue: DueProbe[];
  private dueHead = 0;
  /** Replies are waited for until then (set once no member has probes left to send). */
  private replyDeadlineMs: number | null = null;

  constructor(
    round: number,
    memberIds: NodeId[],
    full: boolean,
    nowMs: number,
    private readonly config: ProbeRoundConfig,
    private readonly outbox: Outbox,
    /** The member's recent best delays (for the early stop); undefined if it is not in the table. */
    private readonly recentDelaysOf: (nodeId: NodeId) => readonly number[] | undefined,
    /** Counts each POLL sent (the node's probesSent counter). */
    private readonly probeSent: () => void,
  ) {
    this.round = round;
    this.startedMs = nowMs;
    this.full = full;
    this.memberIds = memberIds;
    for (const nodeId of memberIds) this.members.set(nodeId, { sent: 0, nextProbeMs: nowMs, probing: true, unanswered: new Set(), best: undefined, synced: false, provisionalNs: null });
    this.probingCount = this.members.size;
    this.dueQueue = memberIds.map((nodeId) => ({ nodeId, dueMs: nowMs, sent: 0 }));
  }

  /** The members polled this round, in the order they were chosen (leavers removed). */
  get memberOrder(): readonly NodeId[] {
    return this.memberIds;
  }

  /** The member's best sample this round (least delay), if it answered. */
  sampleOf(nodeId: NodeId): ClockSample | undefined {
    return this.members.get(nodeId)?.best;
  }

  /** Whether a reply of the member this round said its clock is synchronized. */
  syncedOf(nodeId: NodeId): boolean {
    return this.members.get(nodeId)?.synced ?? false;
  }

  /** How far the member's provisional time has been moved (see ReplyBody.provisionalNs); null if locked. */
  provisionalOf(nodeId: NodeId): number | null {
    return this.members.get(nodeId)?.provisionalNs ?? null;
  }

  /** The earliest time advance() has something to do. */
  nextDeadlineMs(): number {
    const due = this.firstDue();
    return Math.min(due?.dueMs ?? NEVER, this.replyDeadlineMs ?? NEVER);
  }

  /** Sends the probes that are due; returns whether the round is over. */
  advance(nowMs: number): boolean {
    for (let due = this.firstDue(); due !== null && due.dueMs <= nowMs; due = this.firstDue()) {
      this.dueHead += 1;
      this.probeMember(due.nodeId, nowMs);
    }
    return this.isOver(nowMs);
  }

  /** A member's REPLY of this round (the caller checks term and round); returns whether the round is over. */
  onReply(frame: Frame & { type: typeof FrameType.reply }, rxNs: bigint, nowMs: number): boolean {
    const member = this.members.get(frame.from);
    // Only an answer to a poll we sent and have not had answered yet counts (no duplicates).
    if (member === undefined || !member.unanswered.delete(frame.probe)) return false;
    this.unansweredCount -= 1;
    const sample = sampleFromTimestamps(frame.pollTxNs, frame.rxNs, frame.txNs, rxNs);
    // The member cannot send its reply before the poll arrived (t3 >= t2), nor the reply arrive
    // before the poll left: otherwise a clock was stepped mid-probe, or a stamp is wrong (an
    // arrival converted across a step of the member's host clock), and the sample is void.
    if (sample.delayNs >= 0 && frame.txNs >= frame.rxNs) {
      member.best = betterSample(member.best, sample);
      if (frame.synced) member.synced = true;
      member.provisionalNs = frame.provisionalNs ?? null;
    } // else inconsistent timestamps: a clock stepped mid-probe
    if (member.probing && this.probedEnough(frame.from, member)) {
      this.stopProbing(member);
    } else if (frame.probe === member.sent - 1) {
      // Ping-pong: the answer to the latest probe releases the next one at once.
      member.nextProbeMs = nowMs;
      this.probeMember(frame.from, nowMs);
    }
    return this.isOver(nowMs);
  }

  /**
   * The member left: it is no longer polled or waited for, nor averaged. Its record stays (what
   * its replies said still shows in the round's view if it comes back). Call advance() after.
   */
  removeMember(nodeId: NodeId): void {
    const member = this.members.get(nodeId);
    if (member === undefined) return;
    this.memberIds = this.memberIds.filter((id) => id !== nodeId);
    if (member.probing) this.probingCount -= 1;
    member.probing = false;
    this.unansweredCount -= member.unanswered.size;
    member.unanswered.clear();
  }

  private isOver(nowMs: number): boolean {
    if (this.probingCount > 0) return false;
    if (this.replyDeadlineMs === null) this.replyDeadlineMs = nowMs + this.config.replyWaitMs;
    return this.unansweredCount === 0 || nowMs >= this.replyDeadlineMs;
  }

  /** Sends a member its next probe if it is due. */
  private probeMember(nodeId: NodeId, nowMs: number): void {
    const member = this.members.get(nodeId);
    const probesPerRound = this.config.probesPerRound;
    if (member === undefined || member.sent >= probesPerRound || nowMs < member.nextProbeMs) return;
    const probe = member.sent;
    member.unanswered.add(probe);
    this.unansweredCount += 1;
    this.outbox.sendTo(nodeId, { type: FrameType.poll, round: this.round, probe });
    this.probeSent();
    member.sent = probe + 1;
    member.nextProbeMs = nowMs + this.config.probeSpacingMs;
    if (member.sent < probesPerRound) this.dueQueue.push({ nodeId, dueMs: nowMs + this.config.probeSpacingMs, sent: member.sent });
    if (member.sent === probesPerRound) {
      member.probing = false;
      this.probingCount -= 1;
      // Replies may take until replyWaitMs after the last probe of the last member.
      if (this.probingCount === 0) this.replyDeadlineMs = nowMs + this.config.replyWaitMs;
    }
  }

  /**
   * Whether a member's round has a sample as good as more probes could give: enough probes sent
   * and the best delay near the member's recent minimum (PROBES_MIN_DEFAULT). Never in a full round.
   */
  private probedEnough(nodeId: NodeId, member: MemberProbes): boolean {
    if (this.full || member.sent < this.config.probesMin) return false;
    const recent = this.recentDelaysOf(nodeId);
    return member.best !== undefined && recent !== undefined && isNearMinimumDelay(member.best.delayNs, recent);
  }

  /** Ends a member's probing for this round; probes still unanswered are not waited for. */
  private stopProbing(member: MemberProbes): void {
    this.unansweredCount -= member.unanswered.size;
    member.unanswered.clear();
    member.probing = false;
    this.probingCount -= 1;
  }

  /** The earliest live entry of the due queue (stale ones at the head are dropped). */
  private firstDue(): DueProbe | null {
    while (this.dueHead < this.dueQueue.length) {
      const entry = this.dueQueue[this.dueHead] as DueProbe;
      const member = this.members.get(entry.nodeId);
      if (member !== undefined && member.probing && member.sent === entry.sent) return entry;
      this.dueHead += 1;
    }
    return null;
  }
}
