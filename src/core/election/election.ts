// The election sub-machine: when a node without a master starts an election, the Chang-Roberts
// ring (each hop acknowledged, a dead successor skipped), the bully fallback when the ring stalls,
// backoff after a failed election, and the record of elections won or lost. Its state is a tagged
// union (ring, waiting for bully answers, waiting for a coordinator); each state stores its own
// deadline, which tick() acts on and nextDeadlineMs() reports, so the two never disagree.
//
// It owns no role, term or master: the node does (src/core/node.ts), and the election reaches them
// through ElectionHost. Frames go out through the node's outbox. A takeover (two masters met, the
// higher one claims a new term) is not an election state: it happens at once, and is recorded here.
import { ALGORITHM_CODES, FrameType, type Frame } from '../frames.ts';
import { DISCOVERY_JITTER_FRACTION, ELECTION_BACKOFF_MS_MAX, ELECTION_HISTORY_MAX, HOP_ATTEMPTS_MAX } from '../limits.ts';
import type { ElectionRecord } from '../events.ts';
import type { Outbox } from '../outbox.ts';
import { compareKeys, type ElectionAlgorithm, type ElectionKey, type Endpoint, type NodeId, type Role } from '../types.ts';
import { higherKeyed } from './bully.ts';
import { bestCandidate, ringSuccessors } from './ring.ts';

export interface ElectionConfig {
  nodeId: NodeId;
  priority: number;
  /** Never stand (still answers ring hops, passing on the best candidate it saw). */
  neverMaster: boolean;
  /** The algorithm an election starts with: ring (falling back to bully when it stalls) or bully. */
  electionAlgorithm: 'ring' | 'bully';
  discoveryWindowMs: number;
  hopAckTimeoutMs: number;
  ringTimeoutMs: number;
  bullyAnswerTimeoutMs: number;
  bullyCoordinatorTimeoutMs: number;
  pollIntervalMs: number;
  random: () => number;
}

/** A peer as the election sees it. */
export interface ElectionPeer extends ElectionKey {
  endpoint: Endpoint;
  suspect: boolean;
}

/** What the election reads and changes of the node that runs it. */
export interface ElectionHost {
  /** This node's election key now. */
  readonly selfKey: ElectionKey;
  readonly term: number;
  readonly role: Role;
  readonly masterId: NodeId | null;
  /** Monotonic ms the master was last heard. */
  readonly lastMasterHeardMs: number;
  /** Every peer in the table, suspect or not. */
  peers(): Iterable<ElectionPeer>;
  peerCount(): number;
  /** Enter `term` as electing, without a master. */
  enterElection(term: number): void;
  becomeMaster(algorithm: ElectionAlgorithm, nowMs: number): void;
  /** Tells a node acting on an old term which term and master we follow. */
  informStale(to: Endpoint): void;
  sendHello(to: Endpoint, wantReply: boolean): void;
  markSuspect(nodeId: NodeId, why: string): void;
}

/** What the election counts (fields of the node's counters). */
export interface ElectionCounters {
  electionsStarted: number;
  electionsByAlgorithm: Record<ElectionAlgorithm, number>;
}

/** A ring message sent to the successor and not acknowledged yet. */
export interface PendingHop {
  toId: NodeId;
  hopId: number;
  candidate: ElectionKey;
  attempts: number;
  /** Sent again (or the successor skipped) then. */
  ackDeadlineMs: number;
}

interface ElectionCommon {
  term: number;
  /** When this node entered the election (kept across the ring-to-bully fallback). */
  startedMs: number;
  /** The ring gives up (bully), the bully challenger wins, or waiting for a coordinator fails then. */
  deadlineMs: number;
}

export type ElectionState =
  | (ElectionCommon & { kind: 'ring'; bestSent: ElectionKey | null; hop: PendingHop | null })
  /** Challenged every higher key; wins at the deadline unless one answers. */
  | (ElectionCommon & { kind: 'bully-answers' })
  /** A higher key answered (or challenged us): its COORDINATOR is due by the deadline. */
  | (ElectionCommon & { kind: 'bully-coordinator' });

const NEVER = Number.POSITIVE_INFINITY;

export function algorithmOf(state: ElectionState): 'ring' | 'bully' {
  return state.kind === 'ring' ? 'ring' : 'bully';
}

export class Election {
  private state: ElectionState | null = null;
  /** No election before the first discovery window has passed (jittered, so nodes do not start together). */
  private readonly discoveryUntilMs: number;
  /** A retry after a failed election waits until then (exponential backoff with jitter). */
  private notBeforeMs = 0;
  private failedElections = 0;
  private hopSeq = 0;
  private lastRecord: ElectionRecord | null = null;
  private readonly records: ElectionRecord[] = [];

  constructor(
    private readonly config: ElectionConfig,
    private readonly host: ElectionHost,
    private readonly outbox: Outbox,
    private readonly counters: ElectionCounters,
    nowMs: number,
  ) {
    const jitter = 1 + DISCOVERY_JITTER_FRACTION * (2 * config.random() - 1);
    this.discoveryUntilMs = nowMs + config.discoveryWindowMs * jitter;
  }

  /** Our key now (its clock class changes with the upstream's health). */
  private get selfKey(): ElectionKey {
    return this.host.selfKey;
  }

  /** The election in progress, if any. */
  get current(): ElectionState | null {
    return this.state;
  }

  /** The last election this node saw end (won, lost or a takeover). */
  get last(): ElectionRecord | null {
    return this.lastRecord;
  }

  get history(): readonly ElectionRecord[] {
    return this.records;
  }

  /** Whether this node should start an election now that it has no master. */
  mayInitiate(): boolean {
    return this.host.role === 'electing' && this.state === null && !this.config.neverMaster;
  }

  /** The earliest time tick() has something to do. */
  nextDeadlineMs(): number {
    let deadline = this.mayInitiate() ? this.initiateAtMs() : NEVER;
    const state = this.state;
    if (state !== null) {
      deadline = Math.min(deadline, state.deadlineMs);
      if (state.kind === 'ring' && state.hop !== null) deadline = Math.min(deadline, state.hop.ackDeadlineMs);
    }
    return deadline;
  }

  tick(nowMs: number): void {
    if (this.mayInitiate() && nowMs >= this.initiateAtMs()) this.start(this.lastRecord === null ? 'no master found' : 'retry', nowMs);
    const state = this.state;
    if (state === null) return;
    if (state.kind === 'ring') {
      if (state.hop !== null && nowMs >= state.hop.ackDeadlineMs) this.hopTimedOut(state, state.hop, nowMs);
      if (this.state === state && nowMs >= state.deadlineMs) {
        if (this.config.neverMaster) this.state = null; // wait for a node that can stand
        else this.startBully(this.host.term + 1, nowMs, 'ring timed out');
      }
    } else if (nowMs >= state.deadlineMs) {
      if (state.kind === 'bully-answers') this.host.becomeMaster('bully', nowMs);
      else this.failed('no coordinator after bully answer', nowMs);
    }
  }

  /** Starts a new election in the next term with the configured algorithm. */
  start(reason: string, nowMs: number): void {
    this.state = null;
    if (this.config.electionAlgorithm === 'bully') return this.startBully(this.host.term + 1, nowMs, reason);
    const ring = this.enterRing(this.host.term + 1, nowMs, reason);
    this.forwardRing(ring, this.selfKey, nowMs);
  }

  /** Drops the election in progress without a record (the node is leaving). */
  abandon(): void {
    this.state = null;
  }

  /** The election is decided (`winner` is master in the node's term now); records it. */
  finish(winner: NodeId, algorithm: ElectionAlgorithm | null, nowMs: number): void {
    this.failedElections = 0;
    this.notBeforeMs = 0;
    const state = this.state;
    this.state = null;
    if (state === null) return;
    this.record({ term: this.host.term, algorithm: algorithm ?? algorithmOf(state), winner, durationMs: nowMs - state.startedMs, endedMs: nowMs });
  }

  /** This node, as master, took over from another master in `term`. */
  recordTakeover(term: number, nowMs: number): void {
    this.counters.electionsByAlgorithm.takeover += 1;
    this.record({ term, algorithm: 'takeover', winner: this.config.nodeId, durationMs: 0, endedMs: nowMs });
  }

  /** A peer left: if it was our ring successor, pass the message on at once instead of waiting for the ack timeout. */
  peerLeft(nodeId: NodeId, nowMs: number): void {
    const state = this.state;
    if (state?.kind !== 'ring' || state.hop?.toId !== nodeId) return;
    const candidate = state.hop.candidate;
    state.hop = null;
    this.forwardRing(state, candidate, nowMs);
  }

  // ---------------------------------------------------------------- ring

  onElection(frame: Frame & { type: typeof FrameType.election }, from: Endpoint, nowMs: number): void {
    const host = this.host;
    this.outbox.send(from, { type: FrameType.electionAck, hopId: frame.hopId });
    if (frame.term < host.term) return host.informStale(from);
    let state = this.state;
    if (frame.term > host.term) {
      // Joining because someone lost our master? If we have not heard it for a poll interval either,
      // leave it out of the ring rather than wait for it to miss two hop acknowledgements.
      if (host.masterId !== null && host.masterId !== this.config.nodeId && nowMs >= host.lastMasterHeardMs + this.config.pollIntervalMs) {
        host.markSuspect(host.masterId, 'master silent');
      }
      state = this.enterRing(frame.term, nowMs, `ring message from ${frame.from}`);
    }
    // Same term: only an ongoing ring election of this term takes part.
    if (state === null || state.kind !== 'ring' || state.term !== frame.term) {
      // The sender missed this term's result: tell it who won.
      if (state === null && host.masterId !== null) host.sendHello(from, false);
      return;
    }
    const candidate = { nodeId: frame.candidateId, priority: frame.candidatePrio, clockClass: frame.candidateCls ?? 0 };
    if (candidate.nodeId === this.config.nodeId) {
      // Our own candidacy came all the way round: nobody live has a higher key.
      host.becomeMaster('ring', nowMs);
      return;
    }
    const best = this.config.neverMaster ? candidate : bestCandidate(candidate, this.selfKey);
    if (state.bestSent !== null && compareKeys(best, state.bestSent) <= 0) return;
    state.hop = null;
    this.forwardRing(state, best, nowMs);
  }

  onElectionAck(frame: Frame & { type: typeof FrameType.electionAck }): void {
    const state = this.state;
    if (state?.kind === 'ring' && state.hop && state.hop.hopId === frame.hopId && state.hop.toId === frame.from) state.hop = null;
  }

  private enterRing(term: number, nowMs: number, reason: string): ElectionState & { kind: 'ring' } {
    const startedMs = this.enter(term, 'ring', nowMs, reason);
    const ring = { kind: 'ring' as const, term, startedMs, deadlineMs: nowMs + this.config.ringTimeoutMs, bestSent: null, hop: null };
    this.state = ring;
    return ring;
  }

  /** Send the ring message on to the first live successor; with none, fall back to bully. */
  private forwardRing(ring: ElectionState & { kind: 'ring' }, candidate: ElectionKey, nowMs: number): void {
    const live = [...this.host.peers()].filter((peer) => !peer.suspect);
    const successor = ringSuccessors(this.selfKey, live)[0];
    if (successor === undefined) {
      if (this.config.neverMaster) this.state = null; // nobody to pass to; wait
      else if (this.host.peerCount() === 0) this.host.becomeMaster('ring', nowMs); // a ring of one
      else this.startBully(this.host.term + 1, nowMs, 'no live successor');
      return;
    }
    this.hopSeq += 1;
    ring.bestSent = candidate;
    ring.hop = { toId: successor.nodeId, hopId: this.hopSeq, candidate, attempts: 1, ackDeadlineMs: nowMs + this.config.hopAckTimeoutMs };
    this.sendHop(ring.hop);
  }

  private sendHop(hop: PendingHop): void {
    this.outbox.sendTo(hop.toId, { type: FrameType.election, hopId: hop.hopId, candidateId: hop.candidate.nodeId, candidatePrio: hop.candidate.priority, ...(hop.candidate.clockClass ? { candidateCls: hop.candidate.clockClass } : {}) });
  }

  private hopTimedOut(ring: ElectionState & { kind: 'ring' }, hop: PendingHop, nowMs: number): void {
    if (hop.attempts < HOP_ATTEMPTS_MAX) {
      hop.attempts += 1;
      hop.ackDeadlineMs = nowMs + this.config.hopAckTimeoutMs;
      this.sendHop(hop);
      return;
    }
    // Skip the dead successor.
    this.host.markSuspect(hop.toId, 'ring hop not acknowledged');
    ring.hop = null;
    this.forwardRing(ring, hop.candidate, nowMs);
  }

  // ---------------------------------------------------------------- bully

  private startBully(term: number, nowMs: number, reason: string): void {
    const startedMs = this.enter(term, 'bully', nowMs, reason);
    // Until the challenges are out: a node with nobody above it wins at once (and records this).
    const state: ElectionState = { kind: 'bully-answers', term, startedMs, deadlineMs: NEVER };
    this.state = state;
    const higher = higherKeyed(this.selfKey, [...this.host.peers()]);
    if (higher.length === 0) {
      this.host.becomeMaster('bully', nowMs);
      return;
    }
    for (const peer of higher) this.outbox.send(peer.endpoint, { type: FrameType.bully });
    state.deadlineMs = nowMs + this.config.bullyAnswerTimeoutMs;
  }

  /** A challenge from a node that started a bully election. */
  onBully(frame: Frame & { type: typeof FrameType.bully }, from: Endpoint, nowMs: number): void {
    // A node that never stands must not answer: the challenger would wait for its announcement.
    if (this.config.neverMaster) return;
    const host = this.host;
    const senderIsLower = compareKeys({ nodeId: frame.from, priority: frame.prio, clockClass: frame.cls ?? 0 }, this.selfKey) < 0;
    if (frame.term > host.term) {
      if (senderIsLower) {
        this.startBully(frame.term, nowMs, `bully challenge from ${frame.from}`);
      } else {
        // Taken over by a higher node: wait for its announcement.
        const startedMs = this.enter(frame.term, 'bully', nowMs, `bully challenge from ${frame.from}`);
        this.state = { kind: 'bully-coordinator', term: frame.term, startedMs, deadlineMs: nowMs + this.config.bullyCoordinatorTimeoutMs };
      }
    } else if (frame.term === host.term && senderIsLower && host.role === 'electing' && (this.state === null || this.state.kind === 'ring')) {
      this.state = null;
      this.startBully(frame.term, nowMs, `bully challenge from ${frame.from}`);
    }
    if (!senderIsLower) return;
    this.outbox.send(from, { type: FrameType.bullyOk });
    // Behind us: tell it who the master is, or remind it that we already are.
    if (frame.term < host.term) host.informStale(from);
    else if (host.role === 'master') this.outbox.send(from, { type: FrameType.coordinator, algorithm: ALGORITHM_CODES[this.lastRecord?.algorithm ?? 'bully'] });
  }

  onBullyOk(frame: Frame & { type: typeof FrameType.bullyOk }, nowMs: number): void {
    const state = this.state;
    if (state === null || state.kind !== 'bully-answers' || frame.term !== state.term) return;
    this.state = { kind: 'bully-coordinator', term: state.term, startedMs: state.startedMs, deadlineMs: nowMs + this.config.bullyCoordinatorTimeoutMs };
  }

  // ---------------------------------------------------------------- common

  /** Enters an election in `term`; returns its start (kept from the election it replaces). */
  private enter(term: number, algorithm: ElectionAlgorithm, nowMs: number, reason: string): number {
    const startedMs = this.state?.startedMs ?? nowMs;
    this.host.enterElection(term);
    this.counters.electionsStarted += 1;
    this.counters.electionsByAlgorithm[algorithm] += 1;
    this.outbox.emit({ kind: 'election-start', term, algorithm, reason });
    return startedMs;
  }

  private failed(why: string, nowMs: number): void {
    this.failedElections += 1;
    const backoffMs = Math.min(ELECTION_BACKOFF_MS_MAX, this.config.hopAckTimeoutMs * 2 ** this.failedElections);
    this.notBeforeMs = nowMs + backoffMs * (0.5 + this.config.random());
    this.state = null;
    this.outbox.emit({ kind: 'election-failed', term: this.host.term, why, retryInMs: this.notBeforeMs - nowMs });
  }

  private initiateAtMs(): number {
    return Math.max(this.discoveryUntilMs, this.notBeforeMs);
  }

  private record(record: ElectionRecord): void {
    this.lastRecord = record;
    this.records.push(record);
    if (this.records.length > ELECTION_HISTORY_MAX) this.records.shift();
    this.outbox.emit({ kind: 'election-end', record });
  }
}
