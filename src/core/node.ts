// The node state machine: pure protocol logic, no sockets, timers or wall clock.
// The shell feeds it received frames (with their arrival time on this node's clock) and tick()
// calls with a monotonic time in milliseconds, and drains what it wants sent and done.
//
// The node owns its role, term and master, dispatches frames, and changes roles; everything else
// is a sub-machine of one shape (owned state, a stored deadline, frame handlers, output through the
// one outbox): the peer table and replay windows (membership/), the election
// (election/election.ts), the master's rounds and the member side (sync/), the cluster view
// (view/) and barriers (barrier/). Frames and timers whose meaning depends on the role go to the
// role's behaviour, swapped by becomeMaster, becomeMember and becomeElecting (as etcd-io/raft's
// becomeLeader/becomeFollower/becomeCandidate swap its step and tick functions). tick() and
// nextDeadlineMs() ask each sub-machine and the role in turn, so both read the same stored deadlines.
import { ALGORITHM_CODES, FrameType, ROLE_CODES, type Frame, type FrameBody } from './frames.ts';
import { TERM_ADOPT_MAX, DUPLICATE_ID_ANSWER_INTERVAL_MS, STALE_NOTICE_INTERVAL_MS } from './limits.ts';
import { KeyedRateLimiter, onceEvery } from './rate-limiter.ts';
import { PeerTable, type PeerTableHost } from './membership/peers.ts';
import { algorithmOf, Election, type ElectionHost } from './election/election.ts';
import { claimTerm } from './election/terms.ts';
import { MasterRounds, type MasterHost } from './sync/master.ts';
import { UpstreamReference, type UpstreamReport } from './upstream/reference.ts';
import type { UpstreamEstimate } from './upstream/estimate.ts';
import { ErrorBoundTracker } from './sync/error-bound.ts';
import { MemberSide } from './sync/member.ts';
import type { BarrierJoinRequest, BarrierJoinResult, BarrierOutcome } from './barrier/client.ts';
import { isBarrierBody } from './barrier/frames.ts';
import { NodeBarriers, type BarrierReport, type NodeBarriersHost } from './barrier/node-barriers.ts';
import { isFreshSequence } from './membership/replay-window.ts';
import type { ClusterView, Correction, NodeEvent } from './events.ts';
import { ClusterViewPull, ClusterViewServer } from './view/cluster-view.ts';
import { NodeOutbox, type SendRequest } from './outbox.ts';
import type { NodeConfig } from './node-config.ts';
import { copyNodeCounters, newNodeCounters, type NodeCounters, type NodeStatus, type PersistedNodeState } from './node-status.ts';
import { compareKeys, endpointKey, type ElectionAlgorithm, type ElectionKey, type Endpoint, type NodeId, type Role } from './types.ts';

// The node's vocabulary, importable from here as before the split.
export type { NodeConfig } from './node-config.ts';
export type { NodeCounters, NodeStatus, PersistedNodeState } from './node-status.ts';
export type { SendRequest } from './outbox.ts';
export { isNearMinimumDelay, isPoorSample } from './sync/delay-filter.ts';
export type { ReplayRecord, ReplayStreams } from './membership/replay-window.ts';
export type { PeerState } from './membership/peers.ts';
export type { ClusterView, Correction, ElectionRecord, NodeEvent, RoundRecord, ViewMember } from './events.ts';
export type { BarrierReport } from './barrier/node-barriers.ts';
export type { UpstreamEstimate } from './upstream/estimate.ts';
export type { UpstreamMode, UpstreamReport } from './upstream/reference.ts';

export interface Drained {
  sends: SendRequest[];
  corrections: Correction[];
  events: NodeEvent[];
  /** What happened to this node's barrier participants (acked, released, rejected). */
  barrierOutcomes: BarrierOutcome[];
}

/** The frames whose handling depends on the role. */
type RoleFrame = Extract<
  Frame,
  { type: typeof FrameType.hello | typeof FrameType.coordinator | typeof FrameType.poll | typeof FrameType.reply | typeof FrameType.correct | typeof FrameType.leave | typeof FrameType.viewQuery }
>;

/** What changes with the role: set only by setRole (through becomeMaster, becomeMember, becomeElecting). */
interface RoleBehaviour {
  /** HELLO, COORDINATOR, POLL, REPLY, CORRECT, LEAVE and VIEW_QUERY. */
  step(frame: RoleFrame, from: Endpoint, rxNs: bigint, nowMs: number): void;
  /** The role's timer work, due at nextDeadlineMs() (the same stored value). */
  tick(nowMs: number): void;
  nextDeadlineMs(): number;
}

const NEVER = Number.POSITIVE_INFINITY;

export class ProtocolNode {
  private readonly config: NodeConfig;
  /** Following an upstream (--upstream): its health is our clock class; null without one. */
  private readonly upstream: UpstreamReference | null;
  /** As member: what our master's last CORRECT said of the upstream it follows (null: none). */
  private masterUpstream: { stratum: number; leap: number } | null = null;
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
  /** The bound on |our clock - the master's| (sync/error-bound.ts), kept across rounds. */
  private readonly errorBound = new ErrorBoundTracker();
  /** See PersistedNodeState.lastMasterTerm. */
  private lastMasterTerm = 0;

  private role: Role = 'electing';
  private term = 0;
  private masterId: NodeId | null = null;
  /** The role's frame handling and timers (see RoleBehaviour); always behaviours[role]. */
  private behaviour: RoleBehaviour;
  private readonly behaviours: Record<Role, RoleBehaviour>;
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
  /** Answers to greetings from our own node id (see receiveFrame): one every DUPLICATE_ID_ANSWER_INTERVAL_MS. */
  private readonly duplicateIdAnswers = onceEvery(DUPLICATE_ID_ANSWER_INTERVAL_MS);
  /** Notices to senders of stale frames, per endpoint (see STALE_NOTICE_INTERVAL_MS). */
  private readonly staleNotices: KeyedRateLimiter<string>;

  /** Barriers: this node's participants (any role), and the table it serves while master. */
  private readonly barriers: NodeBarriers;

  /** The one outbox every sub-machine sends through (addressing, sequence numbers, the bound). */
  private readonly outbox: NodeOutbox;
  private corrections: Correction[] = [];

  readonly counters: NodeCounters = newNodeCounters();

  constructor(config: NodeConfig, nowMs: number, persisted: PersistedNodeState | null = null) {
    this.config = config;
    this.lastNowMs = nowMs;
    this.term = persisted?.term ?? 0;
    this.lastMasterTerm = persisted?.lastMasterTerm ?? 0;
    this.upstream = config.upstream ? new UpstreamReference(config.upstream) : null;
    // Sub-machines read the node's role, term and master live (getters), and change them only
    // through the role changes below.
    const node = this;
    const outbox = new NodeOutbox(
      config,
      {
        get term() {
          return node.term;
        },
        get clockClass() {
          return node.clockClass;
        },
        addressOf: (to) => this.peers.addressOf(to),
        endpointOf: (nodeId) => this.peers.get(nodeId)?.endpoint,
      },
      this.counters,
    );
    this.outbox = outbox;
    const host: ElectionHost = {
      get selfKey() {
        return node.selfKey;
      },
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
      enterElection: (term) => this.becomeElecting(term),
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
    this.staleNotices = new KeyedRateLimiter<string>({ burst: 1, intervalMs: STALE_NOTICE_INTERVAL_MS }, config.peersMax + 1);
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
      get ownErrorBoundNs() {
        return node.ownErrorBoundNs(node.lastNowMs);
      },
      get referencesRounds() {
        return node.upstream?.referencesRounds(node.role === 'master') ?? false;
      },
      get upstreamPassedOn() {
        return node.upstream?.passedOn(node.role === 'master') ?? null;
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
      clockNowNs: () => config.clockNowNs?.() ?? null,
      delayNsOf: (nodeId) => {
        if (nodeId === config.nodeId) return 0;
        const delays = this.peers.get(nodeId)?.recentDelaysNs ?? [];
        // The slowest recent round trip: the margin must cover the tail, not the best case.
        return delays.length === 0 ? null : Math.max(...delays);
      },
    };
    this.barriers = new NodeBarriers(config, barriersHost, outbox);
    this.master = new MasterRounds(config, masterHost, this.peers, this.viewServer, outbox, this.counters);
    this.behaviours = {
      master: { step: (frame, from, rxNs, nowMs) => this.stepMaster(frame, from, rxNs, nowMs), tick: (nowMs) => this.master.tick(nowMs), nextDeadlineMs: () => this.master.nextDeadlineMs() },
      slave: { step: (frame, from, rxNs, nowMs) => this.stepMember(frame, from, rxNs, nowMs), tick: (nowMs) => this.tickMember(nowMs), nextDeadlineMs: () => this.member.masterSilentAtMs },
      electing: { step: (frame, from, rxNs, nowMs) => this.stepElecting(frame, from, rxNs, nowMs), tick: () => {}, nextDeadlineMs: () => NEVER },
    };
    this.behaviour = this.behaviours[this.role];
  }

  // ---------------------------------------------------------------- inputs

  /** A peer announced by discovery (mDNS). Liveness still comes from its frames. */
  discovered(peer: { nodeId: NodeId; priority: number; endpoint: Endpoint }): void {
    this.peers.discovered(peer, this.lastNowMs);
  }

  /**
   * What the NTP client knows of the upstream now (after each new sample): the selection's estimate,
   * or null with why there is none (no server usable, or no majority agrees). Without --upstream
   * (config.upstream) it is ignored.
   */
  upstreamUpdate(nowMs: number, estimate: UpstreamEstimate | null, why: string | null = null): void {
    if (this.left || this.upstream === null) return;
    this.lastNowMs = nowMs;
    const changed = this.upstream.update(nowMs, estimate, why);
    this.upstreamSettled(nowMs, changed);
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
      if (frame.type === FrameType.hello && frame.wantReply && this.duplicateIdAnswers.allow(nowMs)) this.sendHello(from, false);
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
    // Our master's frames carry its clock class: one that lost its upstream may now be outranked.
    if (frame.from === this.masterId && this.role === 'slave') this.takeOverByClass(nowMs);
    if (isBarrierBody(frame)) return this.barriers.onFrame(frame, nowMs);
    switch (frame.type) {
      case FrameType.election:
        return this.election.onElection(frame, from, nowMs);
      case FrameType.electionAck:
        return this.election.onElectionAck(frame);
      case FrameType.bully:
        return this.election.onBully(frame, from, nowMs);
      case FrameType.bullyOk:
        return this.election.onBullyOk(frame, nowMs);
      case FrameType.view:
        return this.viewPull.onView(frame, this.term, nowMs);
      case FrameType.hello:
      case FrameType.coordinator:
      case FrameType.poll:
      case FrameType.reply:
      case FrameType.correct:
      case FrameType.leave:
      case FrameType.viewQuery:
        return this.behaviour.step(frame, from, rxNs, nowMs);
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
    if (this.upstream !== null) this.upstreamSettled(nowMs, this.upstream.tick(nowMs));
    // Every deadline is stored once and read by both tick() and nextDeadlineMs(): recomputing it
    // in two forms (`now - start >= timeout` against `start + timeout`) can disagree by float
    // rounding, and the caller would then re-tick at the same instant forever (it hung the simulator).
    const behaviour = this.behaviour;
    behaviour.tick(nowMs);
    this.election.tick(nowMs);
    // A master elected during this tick (at once, or at the election's deadline) starts its first
    // round in the same instant.
    if (this.behaviour !== behaviour) this.behaviour.tick(nowMs);
    this.barriers.tick(nowMs);
    this.barriers.settle(nowMs);
  }

  /** The earliest time tick() has something to do. */
  nextDeadlineMs(): number {
    if (this.left) return NEVER;
    let deadline = this.peers.nextDeadlineMs();
    if (this.upstream !== null) deadline = Math.min(deadline, this.upstream.nextDeadlineMs());
    deadline = Math.min(deadline, this.behaviour.nextDeadlineMs());
    deadline = Math.min(deadline, this.election.nextDeadlineMs());
    deadline = Math.min(deadline, this.barriers.nextDeadlineMs());
    return deadline;
  }

  drain(): Drained {
    const { sends, events } = this.outbox.take();
    const drained = { sends, corrections: this.corrections, events, barrierOutcomes: this.barriers.drainOutcomes() };
    this.corrections = [];
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

  /**
   * The bound on |our clock - the master's clock| at monotonic `nowMs`, ns: null while our clock
   * is not synchronized or no measurement of the master followed has come in.
   */
  errorBoundNs(nowMs: number): number | null {
    return this.clockSynchronized ? this.errorBound.boundNs(nowMs) : null;
  }

  /** Round trip of the measurement our last correction rests on, ns (0 on the master): NTP's root delay. */
  get measurementDelayNs(): number {
    return this.errorBound.measurementDelayNs;
  }

  /**
   * What the NTP server and GET /time announce, without copying the peer table (read per request):
   * the role, the master and its address (a member's NTP refid), and when this clock was last
   * corrected (a member) or last ran a round (the master), monotonic ms.
   */
  timeSource(): {
    role: Role;
    masterId: NodeId | null;
    masterAddress: string | null;
    lastCorrectedMs: number | null;
    reference: 'upstream' | 'cluster';
    /** While the cluster follows an upstream: its stratum (the master serves one below, a member two) and leap indicator. */
    upstream: { stratum: number; leap: number } | null;
  } {
    const master = this.masterId === null ? undefined : this.peers.get(this.masterId);
    const lastCorrectedMs = this.role === 'master' ? (this.master.lastRound?.atMs ?? null) : (this.lastCorrection?.atMs ?? null);
    const upstream = this.followedUpstream();
    return { role: this.role, masterId: this.masterId, masterAddress: master?.endpoint.address ?? null, lastCorrectedMs, reference: upstream === null ? 'cluster' : 'upstream', upstream };
  }

  /** The upstream the cluster follows through us: ours as master, our master's as member; null: none. */
  private followedUpstream(): { stratum: number; leap: number } | null {
    if (this.role === 'master') return this.upstream?.passedOn(true) ?? null;
    return this.role === 'slave' ? this.masterUpstream : null;
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
      clockClass: this.clockClass,
      reference: this.followedUpstream() === null ? 'cluster' : 'upstream',
      upstream: this.upstream?.report(this.lastNowMs, this.role === 'master') ?? null,
      lastCorrection: this.lastCorrection,
      peers: [...this.peers.values()].map((peer) => ({ ...peer, endpoint: { ...peer.endpoint } })),
      counters: copyNodeCounters(this.counters),
    };
  }

  // ---------------------------------------------------------------- role changes

  private setRole(role: Role): void {
    if (role === this.role) return;
    const from = this.role;
    this.role = role;
    this.behaviour = this.behaviours[role];
    // A master that steps down runs no more rounds.
    if (from === 'master') this.master.stop();
    // The bound is against the master followed: ours as master, none until a new master's round.
    this.upstream?.roleChanged(role === 'master');
    this.masterUpstream = null;
    if (role === 'master') this.errorBound.master((nowMs) => this.ownErrorBoundNs(nowMs));
    else this.errorBound.reset();
    this.emit({ kind: 'role', from, to: role, term: this.term, masterId: this.masterId });
  }

  /** Without a master in `term`: an election started (or joined), or a --never-master node lost its master. */
  private becomeElecting(term: number): void {
    this.term = term;
    this.masterId = null;
    this.setRole('electing');
  }

  /** Follow `masterId` in `term` (which is >= our term). */
  private becomeMember(masterId: NodeId, term: number, algorithm: ElectionAlgorithm | null, nowMs: number): void {
    const changed = this.masterId !== masterId || this.term !== term;
    this.term = term;
    this.masterId = masterId;
    this.member.heardMaster(nowMs);
    this.election.finish(masterId, algorithm, nowMs);
    if (this.role !== 'slave') this.setRole('slave');
    else if (changed) {
      this.errorBound.reset();
      this.masterUpstream = null;
      this.emit({ kind: 'role', from: 'slave', to: 'slave', term, masterId });
    }
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

  // ---------------------------------------------------------------- as master

  private stepMaster(frame: RoleFrame, from: Endpoint, rxNs: bigint, nowMs: number): void {
    switch (frame.type) {
      case FrameType.hello: {
        const masterId = this.greeted(frame, from);
        if (masterId === null || masterId === this.config.nodeId) return;
        // Evidence of another master: from itself, or from one of its members.
        const masterPeer = this.peers.get(masterId);
        const masterKey = masterId === frame.from ? senderKey(frame) : helloMasterKey(frame, masterId, masterPeer);
        if (masterKey === null) return;
        const masterEndpoint = masterId === frame.from ? from : (masterPeer?.endpoint ?? null);
        return this.otherMasterSeen(masterKey, frame.term, masterEndpoint, nowMs);
      }
      case FrameType.coordinator:
        return this.otherMasterSeen(senderKey(frame), frame.term, from, nowMs);
      case FrameType.poll:
        this.otherMasterSeen(senderKey(frame), frame.term, from, nowMs);
        // Stepped down to follow the poller: answer it as a member.
        if (this.role !== 'master') this.behaviour.step(frame, from, rxNs, nowMs);
        return;
      case FrameType.reply:
        return this.master.onReply(frame, rxNs, nowMs);
      case FrameType.correct:
        if (frame.term < this.term) this.informStale(from);
        return;
      case FrameType.leave:
        this.peerLeaving(frame.from);
        this.master.memberLeft(frame.from, nowMs);
        this.election.peerLeft(frame.from, nowMs);
        return;
      case FrameType.viewQuery:
        return this.viewServer.onViewQuery(frame, nowMs);
    }
  }

  /**
   * Two masters met (a partition healed, or a node came back as master of its own island). The
   * higher key stays master: it takes over in a term above both, so every member of either side
   * accepts it by the term rule. The lower one follows if that does not take its term backwards,
   * and otherwise tells the higher one, which then takes over.
   */
  private otherMasterSeen(other: ElectionKey, otherTerm: number, otherEndpoint: Endpoint | null, nowMs: number): void {
    if (other.nodeId === this.config.nodeId) return;
    if (compareKeys(this.selfKey, other) > 0) {
      if (otherTerm < this.term) {
        // Stale news (frames in flight from before our takeover): remind it, do not bump again.
        if (otherEndpoint !== null && this.mayNotify(otherEndpoint)) this.send(otherEndpoint, { type: FrameType.coordinator, algorithm: ALGORITHM_CODES[this.election.last?.algorithm ?? 'takeover'] });
        return;
      }
      this.takeOver(Math.max(this.term, otherTerm) + 1, otherEndpoint, nowMs);
    } else if (otherTerm > this.term) {
      this.becomeMember(other.nodeId, otherTerm, null, nowMs);
      // Bring our members along at once instead of leaving them to time out.
      for (const peer of this.peers.values()) if (peer.nodeId !== other.nodeId) this.sendHello(peer.endpoint, false);
    } else if (otherEndpoint !== null && this.mayNotify(otherEndpoint)) {
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

  // ---------------------------------------------------------------- as member, or electing

  private stepMember(frame: RoleFrame, from: Endpoint, rxNs: bigint, nowMs: number): void {
    switch (frame.type) {
      case FrameType.poll:
        return this.onPoll(frame, from, rxNs, nowMs, this.masterId === frame.from && this.term === frame.term);
      case FrameType.correct:
        if (this.masterId !== frame.from || this.term !== frame.term) {
          if (frame.term < this.term) this.informStale(from);
          return;
        }
        this.member.heardMaster(nowMs);
        if (!this.member.isNewCorrection(frame.term, frame.round)) return;
        // A master of an older version sends no bound: then we have none.
        if (frame.boundNs === undefined) this.errorBound.reset();
        else this.errorBound.corrected(nowMs, { delayNs: frame.delayNs ?? 0, boundNs: frame.boundNs });
        this.masterUpstream = frame.refStratum === undefined ? null : { stratum: frame.refStratum, leap: frame.refLeap ?? 0 };
        return this.applyCorrection({ correctionNs: frame.correctionNs, term: frame.term, round: frame.round, masterId: frame.from }, nowMs);
      case FrameType.leave: {
        const wasMaster = this.peerLeaving(frame.from);
        this.election.peerLeft(frame.from, nowMs);
        if (!wasMaster) return;
        if (this.config.neverMaster) this.becomeElecting(this.term);
        else this.election.start(`master ${frame.from} left`, nowMs);
        return;
      }
      default:
        return this.stepWithoutRounds(frame, from, rxNs, nowMs);
    }
  }

  /** A master silent for masterTimeoutMs: elect (it is left out of the ring at once), or wait for one. */
  private tickMember(nowMs: number): void {
    if (!this.member.masterSilent(nowMs)) return;
    // The silent master is out of the ring at once: skipping it hop by hop would cost two ack timeouts.
    if (this.masterId !== null) this.peers.markSuspect(this.masterId, 'master silent');
    if (this.config.neverMaster) this.becomeElecting(this.term);
    else this.election.start('master silent', nowMs);
  }

  private stepElecting(frame: RoleFrame, from: Endpoint, rxNs: bigint, nowMs: number): void {
    switch (frame.type) {
      case FrameType.poll:
        return this.onPoll(frame, from, rxNs, nowMs, false);
      case FrameType.correct:
        if (frame.term < this.term) this.informStale(from);
        return;
      case FrameType.leave:
        this.peerLeaving(frame.from);
        this.election.peerLeft(frame.from, nowMs);
        return;
      default:
        return this.stepWithoutRounds(frame, from, rxNs, nowMs);
    }
  }

  /** What a member and an electing node do alike: adopt a master they hear of; no rounds to serve. */
  private stepWithoutRounds(frame: RoleFrame, from: Endpoint, _rxNs: bigint, nowMs: number): void {
    switch (frame.type) {
      case FrameType.hello:
        return this.onHello(frame, from, nowMs);
      case FrameType.coordinator: {
        if (!this.acceptsMaster(senderKey(frame), frame.term, nowMs)) return this.informStale(from);
        const algorithm = frame.algorithm === ALGORITHM_CODES.bully ? 'bully' : frame.algorithm === ALGORITHM_CODES.takeover ? 'takeover' : 'ring';
        return this.becomeMember(frame.from, frame.term, algorithm, nowMs);
      }
      // A REPLY is for a master, a VIEW_QUERY for the master's view.
    }
  }

  private onHello(frame: Frame & { type: typeof FrameType.hello }, from: Endpoint, nowMs: number): void {
    const masterId = this.greeted(frame, from);
    if (masterId === null) return;
    if (masterId === this.config.nodeId) {
      // Someone still follows us in a term we do not remember: a past life of ours (restarted
      // without --state-dir). Never claim that term again, or our new rounds (numbered from 1)
      // would look like replays to members that applied the old ones.
      if (frame.term > this.lastMasterTerm) this.lastMasterTerm = frame.term;
      return;
    }
    // A master of an older term: tell it ours, so the two masters can settle it.
    if (frame.term < this.term && frame.role === ROLE_CODES.master && this.masterId !== null) return this.informStale(from);
    // Someone follows a master in a later term (or in ours while we have none): adopt it.
    if (frame.term < this.term || (frame.term === this.term && this.masterId === masterId)) return;
    const masterPeer = this.peers.get(masterId);
    const masterKey = masterId === frame.from ? senderKey(frame) : (helloMasterKey(frame, masterId, masterPeer) ?? { nodeId: masterId, priority: 0, clockClass: 0 });
    if (!this.acceptsMaster(masterKey, frame.term, nowMs)) {
      // A master we will not follow while ours lives: tell it about ours.
      if (frame.role === ROLE_CODES.master && masterId === frame.from) this.informStale(from);
      return;
    }
    this.becomeMember(masterId, frame.term, null, nowMs);
    // Make sure the master knows us, so it polls us.
    if (masterPeer) this.sendHello(masterPeer.endpoint, false);
  }

  /** A poll; unless it is from our master in our term, following the poller comes first. */
  private onPoll(frame: Frame & { type: typeof FrameType.poll }, from: Endpoint, rxNs: bigint, nowMs: number, fromOurMaster: boolean): void {
    if (!fromOurMaster) {
      if (!this.acceptsMaster(senderKey(frame), frame.term, nowMs)) return this.informStale(from);
      this.becomeMember(frame.from, frame.term, null, nowMs);
    }
    this.member.heardMaster(nowMs);
    this.send(from, this.member.reply(frame, rxNs, this.clockSynchronized, this.clockProvisionalNs));
  }

  /** Another node is master in our term or a later one: stop being master. */
  private acceptsMaster(candidateKey: ElectionKey, term: number, nowMs: number): boolean {
    const candidate = candidateKey.nodeId;
    if (term < this.term) return false;
    if (term > this.term) {
      // A member whose master is alive does not defect to a lower-key master of another island
      // (a healed partition): it points that master at ours instead, and the two masters settle
      // it (the higher key takes over, and its announcement is accepted here).
      const current = this.masterKey();
      const masterAlive = this.role === 'slave' && current !== null && !this.member.masterSilent(nowMs);
      if (masterAlive && current.nodeId !== candidate && compareKeys(candidateKey, current) < 0) return false;
      return true;
    }
    if (this.masterId === null || this.masterId === candidate) return this.election.current === null || this.election.current.term <= term;
    // Two masters in one term can only come from a split ring; the higher key wins.
    const current = this.masterKey();
    if (!current) return true;
    return compareKeys(candidateKey, current) > 0;
  }

  // ---------------------------------------------------------------- any role

  /** Answers a greeting that wants a reply; returns the master the sender names. */
  private greeted(frame: Frame & { type: typeof FrameType.hello }, from: Endpoint): NodeId | null {
    if (frame.wantReply) this.sendHello(from, false);
    return frame.masterId;
  }

  /** A peer said goodbye: forgotten at once. Returns whether it was our master. */
  private peerLeaving(nodeId: NodeId): boolean {
    const wasMaster = this.masterId === nodeId;
    const leaving = this.peers.get(nodeId);
    if (leaving) this.peers.forget(leaving.nodeId);
    this.emit({ kind: 'peer-left', nodeId, wasMaster });
    return wasMaster;
  }

  private applyCorrection(correction: Correction, nowMs: number): void {
    this.member.applied(correction.term, correction.round);
    this.counters.correctionsApplied += 1;
    this.lastCorrection = { ...correction, atMs: nowMs };
    this.corrections.push(correction);
  }

  private emit(event: NodeEvent): void {
    this.outbox.emit(event);
  }

  private send(to: Endpoint, body: FrameBody): void {
    this.outbox.send(to, body);
  }

  private sendHello(to: Endpoint, wantReply: boolean): void {
    const master = this.masterKey();
    this.send(to, { type: FrameType.hello, wantReply, role: ROLE_CODES[this.role], masterId: this.masterId, masterPrio: master?.priority ?? null, ...(master?.clockClass ? { masterCls: master.clockClass } : {}) });
  }

  /** The key of the master we follow (or are), if known. */
  private masterKey(): ElectionKey | null {
    if (this.masterId === null) return null;
    if (this.masterId === this.config.nodeId) return this.selfKey;
    const peer = this.peers.get(this.masterId);
    return peer ? { nodeId: peer.nodeId, priority: peer.priority, clockClass: peer.clockClass } : null;
  }

  // ---------------------------------------------------------------- the upstream

  /** Our election key now: the clock class follows the upstream's health. */
  private get selfKey(): ElectionKey {
    return { nodeId: this.config.nodeId, priority: this.config.priority, clockClass: this.clockClass };
  }

  private get clockClass(): number {
    return this.upstream?.clockClass ?? 0;
  }

  /** Our uncertainty as master: of our clock against the upstream while we follow or hold over, else 0 (we are the reference). */
  private ownErrorBoundNs(nowMs: number): number {
    return this.upstream?.ownBoundNs(nowMs, this.role === 'master') ?? 0;
  }

  /**
   * After the upstream's health was settled: a change of class is news (and may make us outrank our
   * master); as master, a new estimate may be a correction of our own clock.
   */
  private upstreamSettled(nowMs: number, classChanged: boolean): void {
    const upstream = this.upstream;
    if (upstream === null) return;
    if (classChanged) {
      const health = upstream.health.report(nowMs);
      this.emit({ kind: 'upstream', healthy: health.healthy, clockClass: health.clockClass, why: health.lastUnusable });
      // Tell everyone at once: members compare our class with their master's, and a master whose
      // class fell may now be outranked by a member.
      if (this.role === 'master') for (const peer of this.peers.values()) this.sendHello(peer.endpoint, false);
      else this.takeOverByClass(nowMs);
    }
    if (this.role !== 'master') return;
    // Established: our own time is locked, or a member's locked time answered our last round.
    const established = (this.clockSynchronized && this.clockProvisionalNs === null) || this.master.establishedMemberSeen;
    const steering = upstream.steer(nowMs, established);
    if (steering?.kind === 'refuse') {
      this.emit({ kind: 'upstream-refused', offsetNs: steering.offsetNs, limitNs: steering.limitNs });
    } else if (steering?.kind === 'correct') {
      this.counters.correctionsApplied += 1;
      this.corrections.push({ correctionNs: steering.correctionNs, term: this.term, round: steering.count, masterId: this.config.nodeId, source: 'upstream', slewOnly: steering.slewOnly, pollIntervalMs: this.config.upstream?.upstreamPollIntervalMs });
    }
  }

  /**
   * As member: our clock class beats our master's (our upstream became healthy, or its was lost):
   * we take over, unless a live peer with a key above ours and a class as good will (so that the
   * master changes once, to the best of them).
   */
  private takeOverByClass(nowMs: number): void {
    if (this.role !== 'slave' || this.config.neverMaster || this.left) return;
    const master = this.masterKey();
    const selfClass = this.clockClass;
    if (master === null || selfClass <= (master.clockClass ?? 0)) return;
    const self = this.selfKey;
    for (const peer of this.peers.values()) {
      if (peer.nodeId === master.nodeId || peer.suspect || peer.lastHeardMs === null) continue;
      if (nowMs - peer.lastHeardMs > 2 * this.config.masterTimeoutMs) continue;
      if (peer.clockClass >= selfClass && compareKeys({ nodeId: peer.nodeId, priority: peer.priority, clockClass: peer.clockClass }, self) > 0) return;
    }
    const from = master.nodeId;
    // A term above the master's that only we can claim; members accept the higher key by the term rule.
    this.term = Math.max(this.term + 1, this.lastMasterTerm + 1);
    this.becomeMaster('takeover', nowMs);
    this.counters.takeovers += 1;
    this.emit({ kind: 'upstream-takeover', from, term: this.term });
  }

  /** Tells a node acting on an old term which term and master we follow. */
  private informStale(to: Endpoint): void {
    this.counters.framesStale += 1;
    if (this.mayNotify(to)) this.sendHello(to, false);
  }

  /** Whether a notice may go to `to` now (one per endpoint per STALE_NOTICE_INTERVAL_MS); counts those held back. */
  private mayNotify(to: Endpoint): boolean {
    if (this.staleNotices.allow(endpointKey(to), this.lastNowMs)) return true;
    this.counters.staleNoticesSuppressed += 1;
    return false;
  }
}

/** The sender's election key, from any frame's header. */
function senderKey(frame: Frame): ElectionKey {
  return { nodeId: frame.from, priority: frame.prio, clockClass: frame.cls ?? 0 };
}

/** The key of the master a HELLO names (another node than its sender), from the frame or our table. */
function helloMasterKey(frame: Frame & { type: typeof FrameType.hello }, masterId: NodeId, masterPeer: { priority: number; clockClass: number } | undefined): ElectionKey | null {
  const priority = frame.masterPrio ?? masterPeer?.priority ?? null;
  if (priority === null) return null;
  return { nodeId: masterId, priority, clockClass: frame.masterCls ?? masterPeer?.clockClass ?? 0 };
}
