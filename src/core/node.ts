// The node state machine: pure protocol logic, no sockets, timers or wall clock.
// The shell feeds it received frames (with their arrival time on this node's clock) and tick()
// calls with a monotonic time in milliseconds, and drains what it wants sent and done.
//
// The node owns its role, term and master, dispatches frames, and changes roles (follow, become
// master, take over); everything else is a sub-machine of one shape (owned state, a stored
// deadline, frame handlers, output through the one outbox): the peer table and replay windows
// (membership/), the election (election/election.ts), the master's rounds and the member side
// (sync/), the cluster view (view/) and barriers (barrier/). tick() and nextDeadlineMs() ask each
// sub-machine in turn, so both read the same stored deadlines.
import { ALGORITHM_CODES, FRAME_TYPE_NAMES, FrameType, ROLE_CODES, type Frame, type FrameBody, type FrameTypeName, type OutgoingFrame } from './frames.ts';
import {
  EVENTS_MAX,
  OUTBOX_FRAMES_MAX,
  PROTOCOL_VERSION,
  TERM_ADOPT_MAX,
  DUPLICATE_ID_ANSWER_INTERVAL_MS,
} from './limits.ts';
import { PeerTable, type PeerState, type PeerTableHost } from './membership/peers.ts';
import { algorithmOf, Election, type ElectionHost } from './election/election.ts';
import { claimTerm } from './election/terms.ts';
import { MasterRounds, type MasterHost } from './sync/master.ts';
import { MemberSide } from './sync/member.ts';
import type { BarrierJoinRequest, BarrierJoinResult, BarrierOutcome } from './barrier/client.ts';
import { isBarrierBody } from './barrier/frames.ts';
import { NodeBarriers, type BarrierReport, type NodeBarriersHost } from './barrier/node-barriers.ts';
import { isFreshSequence, OutgoingSequences } from './membership/replay-window.ts';
import type { ClusterView, Correction, ElectionRecord, NodeEvent, RoundRecord } from './events.ts';
import { ClusterViewPull, ClusterViewServer } from './view/cluster-view.ts';
import type { Outbox } from './outbox.ts';
import { compareKeys, endpointKey, type ElectionAlgorithm, type ElectionKey, type Endpoint, type NodeId, type Role } from './types.ts';

/** What survives a restart (the daemon keeps it in --state-dir). */
export interface PersistedNodeState {
  /** The highest term this node had reached: a restarted node never goes back below it. */
  term: number;
  /**
   * The last term this node was master in. A restarted node never claims it again: its rounds
   * there restart at 1, and members that applied later rounds of that term would drop them.
   */
  lastMasterTerm: number;
}

export interface NodeConfig {
  nodeId: NodeId;
  priority: number;
  cluster: string;
  pollIntervalMs: number;
  masterTimeoutMs: number;
  probesPerRound: number;
  /**
   * Probes sent to a member before its round may stop early on a good enough sample (see
   * PROBES_MIN_DEFAULT); probesPerRound (or more) turns the early stop off.
   */
  probesMin: number;
  probeSpacingMs: number;
  replyWaitMs: number;
  outlierThresholdNs: number;
  discoveryWindowMs: number;
  hopAckTimeoutMs: number;
  ringTimeoutMs: number;
  bullyAnswerTimeoutMs: number;
  bullyCoordinatorTimeoutMs: number;
  peersMax: number;
  /** Never stand in an election (still synchronized by whoever is master). */
  neverMaster: boolean;
  /** The algorithm an election starts with: ring (falling back to bully when it stalls) or bully. */
  electionAlgorithm: 'ring' | 'bully';
  /** Uniform in [0, 1); injected so a seeded simulator reproduces every jitter. */
  random: () => number;
  /**
   * This run's boot id, larger than any earlier run's (the daemon: ms since the epoch, above the
   * one saved in the state directory). Frames carry it with a sequence number: replay protection.
   */
  bootId: number;
  /**
   * Refuse frames whose (boot, seq) was seen or is too old. On when frames are authenticated:
   * without a key anyone can forge a frame anyway, and a corrupted sequence number that got
   * through would lock its sender out.
   */
  replayProtection: boolean;
}

export { isNearMinimumDelay, isPoorSample } from './sync/delay-filter.ts';
export type { ReplayRecord, ReplayStreams } from './membership/replay-window.ts';

export type { PeerState } from './membership/peers.ts';

export type { ClusterView, Correction, ElectionRecord, NodeEvent, RoundRecord, ViewMember } from './events.ts';

export interface SendRequest {
  to: Endpoint;
  frame: OutgoingFrame;
}

export interface Drained {
  sends: SendRequest[];
  corrections: Correction[];
  events: NodeEvent[];
  /** What happened to this node's barrier participants (acked, released, rejected). */
  barrierOutcomes: BarrierOutcome[];
}

export type { BarrierReport } from './barrier/node-barriers.ts';

export interface NodeCounters {
  framesAccepted: number;
  framesOtherCluster: number;
  framesStale: number;
  framesFromSelfId: number;
  framesDroppedOutboxFull: number;
  /** Frames whose (boot, sequence) was seen already or is too old: replays and network duplicates. */
  framesReplayed: number;
  /** Frames addressed to another node id (a redirected capture), or to nobody when they should not be. */
  framesMisdirected: number;
  roundsCompleted: number;
  /** Round samples dropped by the delay filter. */
  samplesDiscarded: number;
  /** POLLs sent as master (probes); against roundsCompleted, the cost of a round. */
  probesSent: number;
  correctionsApplied: number;
  electionsStarted: number;
  electionsWon: number;
  electionsByAlgorithm: Record<ElectionAlgorithm, number>;
  /** Times this node, as master, met another master with a lower key and took over. */
  takeovers: number;
  /** Frames this node sent, by frame type name. */
  framesSentByType: Record<FrameTypeName, number>;
  peersRefused: number;
  /** Peers forgotten because they never answered (aged out, or pushed out by a newcomer). */
  peersExpired: number;
  /** Greetings to silent peers put off because the round's budget was spent. */
  greetingsDeferred: number;
}

export interface NodeStatus {
  nodeId: NodeId;
  cluster: string;
  priority: number;
  neverMaster: boolean;
  role: Role;
  masterId: NodeId | null;
  term: number;
  election: {
    inProgress: { term: number; algorithm: ElectionAlgorithm; sinceMs: number } | null;
    last: ElectionRecord | null;
    history: ElectionRecord[];
  };
  lastRound: RoundRecord | null;
  lastCorrection: (Correction & { atMs: number }) | null;
  peers: PeerState[];
  counters: NodeCounters;
}

const NEVER = Number.POSITIVE_INFINITY;

export class ProtocolNode {
  private readonly config: NodeConfig;
  private readonly selfKey: ElectionKey;
  /** Who this node knows (membership/peers.ts). */
  private readonly peers: PeerTable;
  /** The latest time an input carried (discovery calls carry none). */
  private lastNowMs = 0;
  /** Set by leave(): the node has said goodbye and takes no more input. */
  private left = false;
  /** Reported by the shell after each correction (the clock, not the core, decides). */
  private clockSynchronized = false;
  /** Reported with it: while the clock's time is provisional, how far it has been moved (null: locked). */
  private clockProvisionalNs: number | null = null;
  /** See PersistedNodeState.lastMasterTerm. */
  private lastMasterTerm = 0;

  private role: Role = 'electing';
  private term = 0;
  private masterId: NodeId | null = null;
  /** Answering polls, applying corrections, the master-silent deadline (sync/member.ts). */
  private readonly member: MemberSide;
  /** Ring, bully, backoff and the record of elections (election/election.ts). */
  private readonly election: Election;
  /** The master's rounds (sync/master.ts). */
  private readonly master: MasterRounds;

  private lastCorrection: (Correction & { atMs: number }) | null = null;

  /** The cluster view: served while master, pulled while member. */
  private readonly viewServer: ClusterViewServer;
  private readonly viewPull: ClusterViewPull;
  /** When a greeting from our own node id may be answered again (see receiveFrame). */
  private nextDuplicateIdAnswerMs = Number.NEGATIVE_INFINITY;
  /** Per destination: the last sequence number sent (see OutgoingSequences). */
  private readonly sequences: OutgoingSequences;

  /** Barriers: this node's participants (any role), and the table it serves while master. */
  private readonly barriers: NodeBarriers;

  private sends: SendRequest[] = [];
  private corrections: Correction[] = [];
  private events: NodeEvent[] = [];

  readonly counters: NodeCounters = {
    framesAccepted: 0,
    framesOtherCluster: 0,
    framesStale: 0,
    framesFromSelfId: 0,
    framesDroppedOutboxFull: 0,
    framesReplayed: 0,
    framesMisdirected: 0,
    roundsCompleted: 0,
    samplesDiscarded: 0,
    probesSent: 0,
    correctionsApplied: 0,
    electionsStarted: 0,
    electionsWon: 0,
    electionsByAlgorithm: { ring: 0, bully: 0, takeover: 0 },
    takeovers: 0,
    framesSentByType: Object.fromEntries(Object.keys(FrameType).map((name) => [name, 0])) as Record<FrameTypeName, number>,
    peersRefused: 0,
    peersExpired: 0,
    greetingsDeferred: 0,
  };

  constructor(config: NodeConfig, nowMs: number, persisted: PersistedNodeState | null = null) {
    this.config = config;
    this.lastNowMs = nowMs;
    this.term = persisted?.term ?? 0;
    this.lastMasterTerm = persisted?.lastMasterTerm ?? 0;
    this.selfKey = { nodeId: config.nodeId, priority: config.priority };
    // Two streams per peer (direct, anyone) and the unaddressed ones.
    this.sequences = new OutgoingSequences(2 * config.peersMax + 2);
    // The one outbox every sub-machine sends through (addressing, sequence numbers, the bound).
    const outbox: Outbox = { send: (to, body) => this.send(to, body), sendTo: (nodeId, body) => this.sendTo(nodeId, body), emit: (event) => this.emit(event) };
    // The election reads the node's role, term and master live (getters), and changes them only through enterElection.
    const node = this;
    const host: ElectionHost = {
      get term() {
        return node.term;
      },
      get role() {
        return node.role;
      },
      get masterId() {
        return node.masterId;
      },
      get lastMasterHeardMs() {
        return node.member.lastMasterHeardMs;
      },
      peers: () => this.peers.values(),
      peerCount: () => this.peers.size,
      enterElection: (term) => {
        this.term = term;
        this.masterId = null;
        this.setRole('electing');
      },
      becomeMaster: (algorithm, atMs) => this.becomeMaster(algorithm, atMs),
      informStale: (to) => this.informStale(to),
      sendHello: (to, wantReply) => this.sendHello(to, wantReply),
      markSuspect: (nodeId, why) => this.peers.markSuspect(nodeId, why),
    };
    const peerHost: PeerTableHost = {
      get masterId() {
        return node.masterId;
      },
      sendHello: (to, wantReply) => this.sendHello(to, wantReply),
    };
    this.peers = new PeerTable(config, peerHost, outbox, this.counters);
    this.election = new Election(config, host, outbox, this.counters, nowMs);
    this.member = new MemberSide(config.masterTimeoutMs);
    this.viewServer = new ClusterViewServer(outbox);
    this.viewPull = new ClusterViewPull(outbox, config.peersMax + 1);
    const masterHost: MasterHost = {
      get term() {
        return node.term;
      },
      get clockSynchronized() {
        return node.clockSynchronized;
      },
      get clockProvisionalNs() {
        return node.clockProvisionalNs;
      },
      applyCorrection: (correction, atMs) => this.applyCorrection(correction, atMs),
    };
    const barriersHost: NodeBarriersHost = {
      get role() {
        return node.role;
      },
      get masterId() {
        return node.masterId;
      },
      get term() {
        return node.term;
      },
      get left() {
        return node.left;
      },
    };
    this.barriers = new NodeBarriers(config, barriersHost, outbox);
    this.master = new MasterRounds(config, masterHost, this.peers, this.viewServer, outbox, this.counters);
  }

  // ---------------------------------------------------------------- inputs

  /** A peer announced by discovery (mDNS). Liveness still comes from its frames. */
  discovered(peer: { nodeId: NodeId; priority: number; endpoint: Endpoint }): void {
    this.peers.discovered(peer, this.lastNowMs);
  }

  /** A --peer HOST:PORT whose node id is learned from its first frame. */
  addStaticEndpoint(endpoint: Endpoint, nowMs: number): void {
    this.peers.addStaticEndpoint(endpoint, nowMs);
  }

  /**
   * Graceful shutdown: tell every peer we are leaving, so that a master's members elect at once
   * instead of waiting for the master timeout. The node ignores all input afterwards.
   */
  leave(): void {
    if (this.left) return;
    for (const peer of this.peers.values()) this.send(peer.endpoint, { type: FrameType.leave });
    this.left = true;
    this.barriers.stop();
    this.election.abandon();
    this.master.stop();
    this.peers.stop();
  }

  /** A decoded frame. `rxNs` is this node's clock when the datagram arrived. */
  receive(frame: Frame, from: Endpoint, rxNs: bigint, nowMs: number): void {
    if (this.left) return;
    this.lastNowMs = nowMs;
    this.receiveFrame(frame, from, rxNs, nowMs);
    this.barriers.settle(nowMs);
  }

  private receiveFrame(frame: Frame, from: Endpoint, rxNs: bigint, nowMs: number): void {
    // Time queries are read-only and come from tools, not members: answer them from any cluster
    // and do not take the querier for a peer.
    if (frame.type === FrameType.timeQuery) {
      this.send(from, { type: FrameType.timeAnswer, queryId: frame.queryId, queryTxNs: frame.txNs, rxNs });
      return;
    }
    if (frame.type === FrameType.timeAnswer) return;
    if (frame.cluster !== this.config.cluster) {
      this.counters.framesOtherCluster += 1;
      return;
    }
    if (frame.from === this.config.nodeId) {
      // Our own id from another endpoint: a misconfigured duplicate node id.
      this.counters.framesFromSelfId += 1;
      this.emit({ kind: 'duplicate-id', endpoint: from });
      // The other agent hears nothing from us otherwise (its frames are dropped here), so it would
      // never learn of the clash: answer its greeting, without asking for a reply (no ping-pong)
      // and at a bounded rate (a forged greeting is not amplified).
      if (frame.type === FrameType.hello && frame.wantReply && nowMs >= this.nextDuplicateIdAnswerMs) {
        this.nextDuplicateIdAnswerMs = nowMs + DUPLICATE_ID_ANSWER_INTERVAL_MS;
        this.sendHello(from, false);
      }
      return;
    }
    // A term so high that a few more elections would leave the exact range of a float64 (2^53) is
    // not one a real cluster reaches (2^28 elections): it is hostile or corrupt. Ignored.
    if (frame.term > TERM_ADOPT_MAX) {
      this.counters.framesStale += 1;
      return;
    }
    if (this.config.replayProtection) {
      // A frame must be for this node in this run; only a HELLO may come before the sender has
      // heard from us (it knows neither our id nor our boot yet).
      const forUs = frame.to === this.config.nodeId && frame.toBoot === this.config.bootId;
      const greeting = frame.type === FrameType.hello && frame.toBoot === 0 && (frame.to === '' || frame.to === this.config.nodeId);
      if (!forUs && !greeting) {
        this.counters.framesMisdirected += 1;
        return;
      }
      const sender = this.peers.get(frame.from);
      if (!isFreshSequence(sender?.replay ?? null, sender?.bootSeen ?? 0, frame)) {
        this.counters.framesReplayed += 1;
        return;
      }
    }
    this.counters.framesAccepted += 1;
    this.peers.heard(frame, from, nowMs);
    if (isBarrierBody(frame)) return this.barriers.onFrame(frame, nowMs);
    switch (frame.type) {
      case FrameType.hello:
        return this.onHello(frame, from, nowMs);
      case FrameType.election:
        return this.election.onElection(frame, from, nowMs);
      case FrameType.electionAck:
        return this.election.onElectionAck(frame);
      case FrameType.coordinator:
        return this.onCoordinator(frame, from, nowMs);
      case FrameType.bully:
        return this.election.onBully(frame, from, nowMs);
      case FrameType.bullyOk:
        return this.election.onBullyOk(frame, nowMs);
      case FrameType.poll:
        return this.onPoll(frame, from, rxNs, nowMs);
      case FrameType.reply:
        return this.onReply(frame, rxNs, nowMs);
      case FrameType.correct:
        return this.onCorrect(frame, from, nowMs);
      case FrameType.leave:
        return this.onLeave(frame, nowMs);
      case FrameType.viewQuery:
        if (this.role === 'master') this.viewServer.onViewQuery(frame, nowMs);
        return;
      case FrameType.view:
        return this.viewPull.onView(frame, this.term, nowMs);
    }
  }

  /**
   * A member asks its master for the cluster view (the shell calls this while someone reads its
   * dashboard). Pages follow one another; a pull whose page was lost resumes at that page on the
   * next request, and one that does not complete starts over. The master has its own view.
   */
  requestView(nowMs: number): void {
    if (this.left || this.role !== 'slave' || this.masterId === null) return;
    this.viewPull.request(this.masterId, this.term, nowMs);
  }

  /**
   * A participant of a barrier, for this node's control client: registered with the master (or
   * this node's own table) and retried until acknowledged. Usage errors are answered at once.
   */
  barrierJoin(request: BarrierJoinRequest, nowMs: number): BarrierJoinResult {
    if (this.left) return { ok: false, reason: 'client-limit', detail: 'the agent is stopping' };
    return this.barriers.join(request, nowMs);
  }

  /** The participant gave up (timed out, or its control client went away). */
  barrierWithdraw(requestId: number, nowMs: number): boolean {
    return this.barriers.withdraw(requestId, nowMs);
  }

  barrierReport(nowMs: number): BarrierReport {
    return this.barriers.report(nowMs);
  }

  /** The cluster as the master last reported it (the master's own view on the master). */
  clusterView(): ClusterView | null {
    return this.role === 'master' ? this.viewServer.view(this.config.nodeId, this.term) : this.viewPull.last;
  }

  /** Timer expiry is just another input: call at (or after) nextDeadlineMs(). */
  tick(nowMs: number): void {
    if (this.left) return;
    this.lastNowMs = nowMs;
    this.peers.tick(nowMs);
    // Every deadline is stored once and read by both tick() and nextDeadlineMs(): recomputing it
    // in two forms (`now - start >= timeout` against `start + timeout`) can disagree by float
    // rounding, and the caller would then re-tick at the same instant forever (it hung the simulator).
    if (this.role === 'slave' && this.member.masterSilent(nowMs)) {
      // The silent master is out of the ring at once: skipping it hop by hop would cost two ack timeouts.
      if (this.masterId !== null) this.peers.markSuspect(this.masterId, 'master silent');
      if (this.config.neverMaster) this.loseMaster();
      else this.election.start('master silent', nowMs);
    }
    this.election.tick(nowMs);
    if (this.role === 'master') this.master.tick(nowMs);
    this.barriers.tick(nowMs);
    this.barriers.settle(nowMs);
  }

  /** The earliest time tick() has something to do. */
  nextDeadlineMs(): number {
    if (this.left) return NEVER;
    let deadline = this.peers.nextDeadlineMs();
    if (this.role === 'slave') deadline = Math.min(deadline, this.member.masterSilentAtMs);
    deadline = Math.min(deadline, this.election.nextDeadlineMs());
    if (this.role === 'master') deadline = Math.min(deadline, this.master.nextDeadlineMs());
    deadline = Math.min(deadline, this.barriers.nextDeadlineMs());
    return deadline;
  }

  drain(): Drained {
    const drained = { sends: this.sends, corrections: this.corrections, events: this.events, barrierOutcomes: this.barriers.drainOutcomes() };
    this.sends = [];
    this.corrections = [];
    this.events = [];
    return drained;
  }

  /**
   * The shell tells the core whether its clock is synchronized and, while its time is provisional,
   * how far its discipline has moved it (null: locked), after each correction.
   */
  setClockSynchronized(synchronized: boolean, provisionalNs: number | null = null): void {
    this.clockSynchronized = synchronized;
    this.clockProvisionalNs = provisionalNs;
  }

  /** The state to keep across restarts; the shell saves it whenever it changes. */
  persistentState(): PersistedNodeState {
    return { term: this.term, lastMasterTerm: this.lastMasterTerm };
  }

  status(): NodeStatus {
    const election = this.election.current;
    return {
      nodeId: this.config.nodeId,
      cluster: this.config.cluster,
      priority: this.config.priority,
      neverMaster: this.config.neverMaster,
      role: this.role,
      masterId: this.masterId,
      term: this.term,
      election: {
        inProgress: election ? { term: election.term, algorithm: algorithmOf(election), sinceMs: election.startedMs } : null,
        last: this.election.last,
        history: [...this.election.history],
      },
      lastRound: this.master.lastRound,
      lastCorrection: this.lastCorrection,
      peers: [...this.peers.values()].map((peer) => ({ ...peer, endpoint: { ...peer.endpoint } })),
      counters: { ...this.counters, electionsByAlgorithm: { ...this.counters.electionsByAlgorithm }, framesSentByType: { ...this.counters.framesSentByType } },
    };
  }

  // ---------------------------------------------------------------- peers

  /** A --never-master node whose master went silent waits, masterless, for a new one. */
  private loseMaster(): void {
    this.masterId = null;
    this.setRole('electing');
  }

  // ---------------------------------------------------------------- output helpers

  private emit(event: NodeEvent): void {
    if (this.events.length < EVENTS_MAX) this.events.push(event);
  }

  private send(to: Endpoint, body: FrameBody): void {
    if (this.sends.length >= OUTBOX_FRAMES_MAX) {
      this.counters.framesDroppedOutboxFull += 1;
      if (this.counters.framesDroppedOutboxFull === 1) this.emit({ kind: 'outbox-full' });
      return;
    }
    // Addressed to the peer at that endpoint if we know it, in the run we last heard from, with
    // that destination's own sequence (never reset during our run: see replay-window.ts).
    const { toId, toBoot } = this.peers.addressOf(to);
    const seq = this.sequences.next(toId, toBoot);
    const frame = {
      v: PROTOCOL_VERSION,
      cluster: this.config.cluster,
      from: this.config.nodeId,
      prio: this.config.priority,
      term: this.term,
      boot: this.config.bootId,
      seq,
      to: toId,
      toBoot,
      ...body,
    } as OutgoingFrame;
    this.sends.push({ to, frame });
    this.counters.framesSentByType[FRAME_TYPE_NAMES[body.type]] += 1;
  }

  private sendTo(nodeId: NodeId, body: FrameBody): void {
    const peer = this.peers.get(nodeId);
    if (peer) this.send(peer.endpoint, body);
  }

  private sendHello(to: Endpoint, wantReply: boolean): void {
    this.send(to, { type: FrameType.hello, wantReply, role: ROLE_CODES[this.role], masterId: this.masterId, masterPrio: this.masterKey()?.priority ?? null });
  }

  /** The key of the master we follow (or are), if known. */
  private masterKey(): ElectionKey | null {
    if (this.masterId === null) return null;
    if (this.masterId === this.config.nodeId) return this.selfKey;
    const peer = this.peers.get(this.masterId);
    return peer ? { nodeId: peer.nodeId, priority: peer.priority } : null;
  }

  /** Tells a node acting on an old term which term and master we follow. */
  private informStale(to: Endpoint): void {
    this.counters.framesStale += 1;
    this.sendHello(to, false);
  }

  // ---------------------------------------------------------------- roles

  private setRole(role: Role): void {
    if (role === this.role) return;
    const from = this.role;
    this.role = role;
    if (role !== 'master') this.master.stop();
    this.emit({ kind: 'role', from, to: role, term: this.term, masterId: this.masterId });
  }

  /** Follow `masterId` in `term` (which is >= our term). */
  private follow(masterId: NodeId, term: number, algorithm: ElectionAlgorithm | null, nowMs: number): void {
    const changed = this.masterId !== masterId || this.term !== term;
    this.term = term;
    this.masterId = masterId;
    this.member.heardMaster(nowMs);
    this.election.finish(masterId, algorithm, nowMs);
    if (this.role !== 'slave') this.setRole('slave');
    else if (changed) this.emit({ kind: 'role', from: 'slave', to: 'slave', term, masterId });
  }

  private becomeMaster(algorithm: ElectionAlgorithm, nowMs: number): void {
    // The election ran in a term anyone could be in; the master takes one only it can claim.
    this.term = claimTerm(this.config.nodeId, Math.max(this.term, this.lastMasterTerm + 1));
    this.lastMasterTerm = this.term;
    this.masterId = this.config.nodeId;
    this.counters.electionsWon += 1;
    this.election.finish(this.config.nodeId, algorithm, nowMs);
    this.setRole('master');
    for (const peer of this.peers.values()) {
      this.send(peer.endpoint, { type: FrameType.coordinator, algorithm: ALGORITHM_CODES[algorithm] });
      peer.missedRounds = 0;
      // A peer marked suspect for an unacknowledged ring hop may be alive (the hop or its ack was
      // lost): left suspect it would be polled only every DEAD_PEER_POLL_EVERY_ROUNDS rounds, time
      // out on its silent master and force another election. Poll everyone; the really dead are
      // marked again after missing rounds.
      peer.suspect = false;
    }
    // Poll at once: the members have been without a master for a while.
    this.master.pollNow(nowMs);
  }

  /** Another node is master in our term or a later one: stop being master. */
  private acceptsMaster(candidate: NodeId, candidatePrio: number, term: number, nowMs: number): boolean {
    if (term < this.term) return false;
    if (term > this.term) {
      // A member whose master is alive does not defect to a lower-key master of another island
      // (a healed partition): it points that master at ours instead, and the two masters settle
      // it (the higher key takes over, and its announcement is accepted here).
      const current = this.masterKey();
      const masterAlive = this.role === 'slave' && current !== null && !this.member.masterSilent(nowMs);
      if (masterAlive && current.nodeId !== candidate && compareKeys({ nodeId: candidate, priority: candidatePrio }, current) < 0) return false;
      return true;
    }
    if (this.masterId === null || this.masterId === candidate) return this.election.current === null || this.election.current.term <= term;
    // Two masters in one term can only come from a split ring; the higher key wins.
    const current = this.masterKey();
    if (!current) return true;
    return compareKeys({ nodeId: candidate, priority: candidatePrio }, current) > 0;
  }

  // ---------------------------------------------------------------- masters meeting

  private onCoordinator(frame: Frame & { type: typeof FrameType.coordinator }, from: Endpoint, nowMs: number): void {
    if (this.role === 'master') return this.otherMasterSeen({ nodeId: frame.from, priority: frame.prio }, frame.term, from, nowMs);
    if (!this.acceptsMaster(frame.from, frame.prio, frame.term, nowMs)) return this.informStale(from);
    const algorithm = frame.algorithm === ALGORITHM_CODES.bully ? 'bully' : frame.algorithm === ALGORITHM_CODES.takeover ? 'takeover' : 'ring';
    this.follow(frame.from, frame.term, algorithm, nowMs);
  }

  /**
   * Two masters met (a partition healed, or a node came back as master of its own island). The
   * higher key stays master: it takes over in a term above both, so every member of either side
   * accepts it by the term rule. The lower one follows if that does not take its term backwards,
   * and otherwise tells the higher one, which then takes over.
   */
  private otherMasterSeen(other: ElectionKey, otherTerm: number, otherEndpoint: Endpoint | null, nowMs: number): void {
    if (other.nodeId === this.config.nodeId || this.role !== 'master') return;
    if (compareKeys(this.selfKey, other) > 0) {
      if (otherTerm < this.term) {
        // Stale news (frames in flight from before our takeover): remind it, do not bump again.
        if (otherEndpoint !== null) this.send(otherEndpoint, { type: FrameType.coordinator, algorithm: ALGORITHM_CODES[this.election.last?.algorithm ?? 'takeover'] });
        return;
      }
      this.takeOver(Math.max(this.term, otherTerm) + 1, otherEndpoint, nowMs);
    } else if (otherTerm > this.term) {
      this.follow(other.nodeId, otherTerm, null, nowMs);
      // Bring our members along at once instead of leaving them to time out.
      for (const peer of this.peers.values()) if (peer.nodeId !== other.nodeId) this.sendHello(peer.endpoint, false);
    } else if (otherEndpoint !== null) {
      this.sendHello(otherEndpoint, false);
    }
  }

  private takeOver(minTerm: number, otherEndpoint: Endpoint | null, nowMs: number): void {
    const term = claimTerm(this.config.nodeId, Math.max(minTerm, this.lastMasterTerm + 1));
    this.term = term;
    this.lastMasterTerm = term;
    this.counters.takeovers += 1;
    this.election.recordTakeover(term, nowMs);
    const announce = { type: FrameType.coordinator, algorithm: ALGORITHM_CODES.takeover } as const;
    for (const peer of this.peers.values()) this.send(peer.endpoint, announce);
    if (otherEndpoint !== null && ![...this.peers.values()].some((peer) => endpointKey(peer.endpoint) === endpointKey(otherEndpoint))) this.send(otherEndpoint, announce);
    // Rounds of the old term are void; poll everyone in the new one now.
    this.master.pollNow(nowMs);
  }

  private onLeave(frame: Frame & { type: typeof FrameType.leave }, nowMs: number): void {
    const wasMaster = this.masterId === frame.from;
    const leaving = this.peers.get(frame.from);
    if (leaving) this.peers.forget(leaving.nodeId);
    this.emit({ kind: 'peer-left', nodeId: frame.from, wasMaster });
    this.master.memberLeft(frame.from, nowMs);
    this.election.peerLeft(frame.from, nowMs);
    if (wasMaster && this.role === 'slave') {
      if (this.config.neverMaster) this.loseMaster();
      else this.election.start(`master ${frame.from} left`, nowMs);
    }
  }

  private onHello(frame: Frame & { type: typeof FrameType.hello }, from: Endpoint, nowMs: number): void {
    if (frame.wantReply) this.sendHello(from, false);
    const masterId = frame.masterId;
    if (masterId === null) return;
    if (masterId === this.config.nodeId) {
      // Someone still follows us in a term we do not remember: a past life of ours (restarted
      // without --state-dir). Never claim that term again, or our new rounds (numbered from 1)
      // would look like replays to members that applied the old ones.
      if (frame.term > this.lastMasterTerm && this.role !== 'master') this.lastMasterTerm = frame.term;
      return;
    }
    if (this.role === 'master') {
      // Evidence of another master: from itself, or from one of its members.
      const masterPeer = this.peers.get(masterId);
      const masterPrio = masterId === frame.from ? frame.prio : (frame.masterPrio ?? masterPeer?.priority ?? null);
      if (masterPrio === null) return;
      const masterEndpoint = masterId === frame.from ? from : (masterPeer?.endpoint ?? null);
      return this.otherMasterSeen({ nodeId: masterId, priority: masterPrio }, frame.term, masterEndpoint, nowMs);
    }
    // A master of an older term: tell it ours, so the two masters can settle it.
    if (frame.term < this.term && frame.role === ROLE_CODES.master && this.masterId !== null) return this.informStale(from);
    // Someone follows a master in a later term (or in ours while we have none): adopt it.
    if (frame.term < this.term || (frame.term === this.term && this.masterId === masterId)) return;
    const masterPeer = this.peers.get(masterId);
    const masterPrio = masterId === frame.from ? frame.prio : (frame.masterPrio ?? masterPeer?.priority ?? 0);
    if (!this.acceptsMaster(masterId, masterPrio, frame.term, nowMs)) {
      // A master we will not follow while ours lives: tell it about ours.
      if (frame.role === ROLE_CODES.master && masterId === frame.from) this.informStale(from);
      return;
    }
    this.follow(masterId, frame.term, null, nowMs);
    // Make sure the master knows us, so it polls us.
    if (masterPeer) this.sendHello(masterPeer.endpoint, false);
  }

  // ---------------------------------------------------------------- Berkeley rounds (master)

  private onReply(frame: Frame & { type: typeof FrameType.reply }, rxNs: bigint, nowMs: number): void {
    if (this.role === 'master') this.master.onReply(frame, rxNs, nowMs);
  }

  private applyCorrection(correction: Correction, nowMs: number): void {
    this.member.applied(correction.term, correction.round);
    this.counters.correctionsApplied += 1;
    this.lastCorrection = { ...correction, atMs: nowMs };
    this.corrections.push(correction);
  }

  // ---------------------------------------------------------------- Berkeley rounds (member)

  private onPoll(frame: Frame & { type: typeof FrameType.poll }, from: Endpoint, rxNs: bigint, nowMs: number): void {
    if (this.role === 'master') {
      this.otherMasterSeen({ nodeId: frame.from, priority: frame.prio }, frame.term, from, nowMs);
      if (this.role === 'master') return;
    }
    if (this.masterId !== frame.from || this.term !== frame.term || this.role !== 'slave') {
      if (!this.acceptsMaster(frame.from, frame.prio, frame.term, nowMs)) return this.informStale(from);
      this.follow(frame.from, frame.term, null, nowMs);
    }
    this.member.heardMaster(nowMs);
    this.send(from, this.member.reply(frame, rxNs, this.clockSynchronized, this.clockProvisionalNs));
  }

  private onCorrect(frame: Frame & { type: typeof FrameType.correct }, from: Endpoint, nowMs: number): void {
    if (this.role !== 'slave' || this.masterId !== frame.from || this.term !== frame.term) {
      if (frame.term < this.term) this.informStale(from);
      return;
    }
    this.member.heardMaster(nowMs);
    if (!this.member.isNewCorrection(frame.term, frame.round)) return;
    this.applyCorrection({ correctionNs: frame.correctionNs, term: frame.term, round: frame.round, masterId: frame.from }, nowMs);
  }
}
