// The peer table: who this node knows, at which endpoint, whether they answer, and how silent
// ones are greeted; plus the --peer endpoints not identified yet. Admission is bounded (peersMax):
// a peer that never answered is forgotten after UNANSWERED_PEER_TTL_MS, or pushed out by a
// newcomer when the table is full, so forged HELLOs cannot fill it. Any valid frame proves its
// sender alive (heard()). Greetings go out through the host (their content is the node's role and
// master); events through the outbox. Deadline: the next greeting of the static endpoints.
import type { Frame } from '../frames.ts';
import {
  DEAD_PEER_POLL_EVERY_ROUNDS,
  PEER_SWEEP_INTERVAL_MS,
  SILENT_PEER_FULL_RATE_GREETINGS,
  SILENT_PEER_GREET_INTERVAL_MS_MAX,
  SILENT_PEER_GREETINGS_PER_ROUND_MAX,
  STATIC_ENDPOINTS_MAX,
  STATIC_HELLO_INTERVAL_MS,
  UNANSWERED_PEER_TTL_MS,
} from '../limits.ts';
import type { Outbox } from '../outbox.ts';
import type { ClockSample } from '../sync/berkeley.ts';
import { endpointKey, type Endpoint, type NodeId } from '../types.ts';
import { newReplayStreams, recordSequence, type ReplayStreams } from './replay-window.ts';

export interface PeerState {
  nodeId: NodeId;
  priority: number;
  /** The clock class its last frame carried (0 until a frame says otherwise: discovery cannot know). */
  clockClass: number;
  endpoint: Endpoint;
  /** Monotonic ms of the last valid frame from this peer; null if only discovered. */
  lastHeardMs: number | null;
  /** Failed to answer (ring hop or polls); skipped in the ring, polled less often. */
  suspect: boolean;
  /** Consecutive rounds this peer was polled and did not answer. */
  missedRounds: number;
  lastSample: (ClockSample & { round: number; atMs: number; discarded: boolean }) | null;
  /** Best-probe delay of recent rounds (newest last), for the poor-sample filter. */
  recentDelaysNs: number[];
  /** Rounds in a row whose sample the filter discarded. */
  discardStreak: number;
  /** Whether it was left out of the last average. */
  excluded: boolean;
  /** The last round's correction for it could not be sent: no frame can carry it (see MasterRounds). */
  correctionUnsendable: boolean;
  /**
   * Replay protection, per stream (frames addressed to this node, and those sent before the sender
   * knew our id): its newest boot id, highest sequence number, and which of the 64 below it were seen.
   */
  replay: ReplayStreams;
  /** The newest boot id seen in its frames (0: none yet); our frames to it carry it as toBoot. */
  bootSeen: number;
  /**
   * It sent a frame addressed to this node's current run (our id and boot id), so it receives what
   * we send: a real agent. A forged frame with a spoofed source cannot do that without seeing our
   * frames. Peers that never answered age out and make room for newcomers (see limits.ts).
   */
  answered: boolean;
  /** When it entered the peer table. */
  admittedMs: number;
  /** Greetings (or polls) sent to it while silent, since it last answered; drives the back-off. */
  silentGreetings: number;
  /** Not greeted again before this (0: at the next round). */
  nextGreetMs: number;
  /** When it was last greeted while silent (-Infinity: never), to share the per-round budget fairly. */
  lastGreetMs: number;
}

export interface PeerTableConfig {
  nodeId: NodeId;
  bootId: number;
  peersMax: number;
  pollIntervalMs: number;
  /** Record each frame's (boot, seq) (see replay-window.ts). */
  replayProtection: boolean;
}

/** What the table reads of the node, and how it greets. */
export interface PeerTableHost {
  /** The master this node follows (or is): never forgotten as silent. */
  readonly masterId: NodeId | null;
  sendHello(to: Endpoint, wantReply: boolean): void;
}

/** What the table counts (fields of the node's counters). */
export interface PeerTableCounters {
  peersRefused: number;
  peersExpired: number;
  greetingsDeferred: number;
}

const NEVER = Number.POSITIVE_INFINITY;

export class PeerTable {
  private readonly byId = new Map<NodeId, PeerState>();
  /** Which peer is at an endpoint, to address frames sent to an endpoint. */
  private readonly idByEndpoint = new Map<string, NodeId>();
  /** --peer endpoints not yet identified by a frame; greeted until they answer. */
  private readonly staticEndpoints = new Map<string, Endpoint>();
  private nextSweepMs = 0;
  private nextStaticHelloMs = NEVER;

  constructor(
    private readonly config: PeerTableConfig,
    private readonly host: PeerTableHost,
    private readonly outbox: Outbox,
    private readonly counters: PeerTableCounters,
  ) {}

  get(nodeId: NodeId): PeerState | undefined {
    return this.byId.get(nodeId);
  }

  values(): IterableIterator<PeerState> {
    return this.byId.values();
  }

  get size(): number {
    return this.byId.size;
  }

  /** Where a frame to `endpoint` is addressed: the peer there ('' if unknown) and its run (0 if unknown). */
  addressOf(endpoint: Endpoint): { toId: NodeId; toBoot: number } {
    const toId = this.idByEndpoint.get(endpointKey(endpoint)) ?? '';
    const toBoot = toId === '' ? 0 : (this.byId.get(toId)?.bootSeen ?? 0);
    return { toId, toBoot };
  }

  /** A peer announced by discovery (mDNS) at `atMs` (the latest input's time). */
  discovered(peer: { nodeId: NodeId; priority: number; endpoint: Endpoint }, atMs: number): void {
    if (peer.nodeId === this.config.nodeId) return;
    const known = this.byId.get(peer.nodeId);
    if (known) {
      this.moveEndpoint(known, peer.endpoint);
      known.priority = peer.priority;
      return;
    }
    if (!this.admit(peer.nodeId, peer.priority, peer.endpoint, null, atMs, 'discovery')) return;
    // Introduce ourselves so a master adds us to its rounds, or a peer tells us who the master is.
    this.host.sendHello(peer.endpoint, this.host.masterId === null);
  }

  /** A --peer HOST:PORT whose node id is learned from its first frame. */
  addStaticEndpoint(endpoint: Endpoint, nowMs: number): void {
    if (this.staticEndpoints.size >= STATIC_ENDPOINTS_MAX) return;
    this.staticEndpoints.set(endpointKey(endpoint), endpoint);
    this.host.sendHello(endpoint, true);
    this.nextStaticHelloMs = Math.min(this.nextStaticHelloMs, nowMs + STATIC_HELLO_INTERVAL_MS);
  }

  /** The earliest time tick() has something to do (the sweep runs whenever the node ticks). */
  nextDeadlineMs(): number {
    return this.staticEndpoints.size > 0 ? this.nextStaticHelloMs : NEVER;
  }

  tick(nowMs: number): void {
    this.sweep(nowMs);
    if (nowMs >= this.nextStaticHelloMs) {
      // A static peer may simply not have been started yet: keep greeting it until it answers.
      for (const endpoint of this.staticEndpoints.values()) this.host.sendHello(endpoint, true);
      this.nextStaticHelloMs = this.staticEndpoints.size > 0 ? nowMs + STATIC_HELLO_INTERVAL_MS : NEVER;
    }
  }

  /** The node is leaving: no more greetings. */
  stop(): void {
    this.nextStaticHelloMs = NEVER;
  }

  /** Removes a peer (it left, or never answered). */
  forget(nodeId: NodeId): void {
    const peer = this.byId.get(nodeId);
    if (peer === undefined) return;
    this.byId.delete(peer.nodeId);
    const key = endpointKey(peer.endpoint);
    if (this.idByEndpoint.get(key) === peer.nodeId) this.idByEndpoint.delete(key);
  }

  private moveEndpoint(peer: PeerState, endpoint: Endpoint): void {
    const oldKey = endpointKey(peer.endpoint);
    if (this.idByEndpoint.get(oldKey) === peer.nodeId) this.idByEndpoint.delete(oldKey);
    peer.endpoint = endpoint;
    this.idByEndpoint.set(endpointKey(endpoint), peer.nodeId);
  }

  /** `heardMs`: null when only discovered; `atMs`: now (the latest input's time for a discovery). */
  private admit(nodeId: NodeId, priority: number, endpoint: Endpoint, heardMs: number | null, atMs: number, via: 'frame' | 'discovery'): PeerState | null {
    this.sweep(atMs);
    if (this.byId.size >= this.config.peersMax && !this.evictSilentPeer()) {
      this.counters.peersRefused += 1;
      this.outbox.emit({ kind: 'peer-limit', nodeId });
      return null;
    }
    const peer: PeerState = {
      nodeId,
      priority,
      clockClass: 0,
      endpoint,
      lastHeardMs: heardMs,
      suspect: false,
      missedRounds: 0,
      lastSample: null,
      recentDelaysNs: [],
      discardStreak: 0,
      excluded: false,
      correctionUnsendable: false,
      replay: newReplayStreams(),
      bootSeen: 0,
      answered: false,
      admittedMs: atMs,
      silentGreetings: 0,
      nextGreetMs: 0,
      lastGreetMs: Number.NEGATIVE_INFINITY,
    };
    this.idByEndpoint.set(endpointKey(endpoint), nodeId);
    this.byId.set(nodeId, peer);
    this.outbox.emit({ kind: 'peer-new', nodeId, endpoint, via });
    return peer;
  }

  /**
   * Forgets peers that never answered and have been greeted through the full-rate phase without
   * a word back for UNANSWERED_PEER_TTL_MS: forged HELLOs with spoofed sources, dead mDNS records.
   * Only a master greets silent peers, so only its table proves a peer silent this way; a member
   * keeps the peers it never exchanged a frame with (other members are real peers it has no reason
   * to talk to until an election). Runs at most every PEER_SWEEP_INTERVAL_MS.
   */
  private sweep(nowMs: number): void {
    if (nowMs < this.nextSweepMs) return;
    this.nextSweepMs = nowMs + PEER_SWEEP_INTERVAL_MS;
    for (const peer of [...this.byId.values()]) {
      if (!this.provedSilent(peer) || nowMs < peer.admittedMs + UNANSWERED_PEER_TTL_MS) continue;
      this.expirePeer(peer, 'never answered');
    }
  }

  /** A peer that never answered, was marked silent, and is not the master we follow. */
  private provedSilent(peer: PeerState): boolean {
    return !peer.answered && peer.suspect && peer.nodeId !== this.host.masterId;
  }

  /**
   * The table is full: the oldest peer proved silent (never answered, suspect) makes room. Peers
   * that answered are never pushed out by silent ones. Returns whether one was evicted.
   */
  private evictSilentPeer(): boolean {
    let oldest: PeerState | null = null;
    for (const peer of this.byId.values()) {
      if (this.provedSilent(peer) && (oldest === null || peer.admittedMs < oldest.admittedMs)) oldest = peer;
    }
    if (oldest === null) return false;
    this.expirePeer(oldest, 'table full');
    return true;
  }

  private expirePeer(peer: PeerState, why: 'never answered' | 'table full'): void {
    this.forget(peer.nodeId);
    this.counters.peersExpired += 1;
    this.outbox.emit({ kind: 'peer-expired', nodeId: peer.nodeId, why });
  }

  /** Any valid frame proves the sender alive and tells us its address and key. */
  heard(frame: Frame, from: Endpoint, nowMs: number): void {
    this.staticEndpoints.delete(endpointKey(from));
    let peer = this.byId.get(frame.from);
    if (!peer) {
      peer = this.admit(frame.from, frame.prio, from, nowMs, nowMs, 'frame') ?? undefined;
      if (!peer) return;
    }
    this.moveEndpoint(peer, from);
    peer.priority = frame.prio;
    peer.clockClass = frame.cls ?? 0;
    if (frame.boot > peer.bootSeen) peer.bootSeen = frame.boot;
    peer.lastHeardMs = nowMs;
    // Only with replay protection: without it sequence numbers are not checked, so not kept either.
    if (this.config.replayProtection) recordSequence(peer.replay, frame);
    if (frame.to === this.config.nodeId && frame.toBoot === this.config.bootId) {
      peer.answered = true;
      peer.silentGreetings = 0;
      peer.nextGreetMs = 0;
    }
    // A peer that never answered stays silent whatever it sends unaddressed: a forger repeating
    // HELLOs from a spoofed source must not put that address back into every round's polls.
    if (peer.suspect && peer.answered) {
      peer.suspect = false;
      this.outbox.emit({ kind: 'peer-alive', nodeId: peer.nodeId });
    }
  }

  markSuspect(nodeId: NodeId, why: string): void {
    const peer = this.byId.get(nodeId);
    if (!peer || peer.suspect) return;
    peer.suspect = true;
    this.outbox.emit({ kind: 'peer-suspect', nodeId, why });
  }

  /**
   * The round's members: every peer that answers, plus the silent ones due for a poll. Silent
   * peers are greeted (a small HELLO) every round at first, and polled every
   * DEAD_PEER_POLL_EVERY_ROUNDS rounds: a healed partition (and its master) is found within a
   * poll interval. After SILENT_PEER_FULL_RATE_GREETINGS greetings without an answer they back
   * off exponentially up to SILENT_PEER_GREET_INTERVAL_MS_MAX and are no longer polled; at most
   * SILENT_PEER_GREETINGS_PER_ROUND_MAX silent peers are greeted or polled per round, the longest
   * waiting first. So one forged HELLO no longer makes the master greet an address forever.
   */
  roundMembers(roundSeq: number, nowMs: number): NodeId[] {
    const members: NodeId[] = [];
    let due: PeerState[] = [];
    for (const peer of this.byId.values()) {
      if (!peer.suspect) members.push(peer.nodeId);
      else if (nowMs >= peer.nextGreetMs) due.push(peer);
    }
    if (due.length > SILENT_PEER_GREETINGS_PER_ROUND_MAX) {
      this.counters.greetingsDeferred += due.length - SILENT_PEER_GREETINGS_PER_ROUND_MAX;
      due = due.sort((a, b) => a.lastGreetMs - b.lastGreetMs).slice(0, SILENT_PEER_GREETINGS_PER_ROUND_MAX);
    }
    for (const peer of due) {
      const fullRate = peer.silentGreetings < SILENT_PEER_FULL_RATE_GREETINGS;
      if (fullRate && roundSeq % DEAD_PEER_POLL_EVERY_ROUNDS === 0) members.push(peer.nodeId);
      else this.host.sendHello(peer.endpoint, true);
      peer.silentGreetings += 1;
      peer.lastGreetMs = nowMs;
      const backoffSteps = peer.silentGreetings - SILENT_PEER_FULL_RATE_GREETINGS;
      peer.nextGreetMs = backoffSteps < 0 ? 0 : nowMs + Math.min(SILENT_PEER_GREET_INTERVAL_MS_MAX, this.config.pollIntervalMs * 2 ** Math.min(backoffSteps, 30));
    }
    return members;
  }
}
