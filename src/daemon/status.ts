// The status report: the contract (served as JSON at GET /status, printed by `status`) and the
// code that fills it from a plain snapshot of the agent (buildStatus), so both live together and
// the filling is tested without sockets. Field names are a contract (README "Status fields"); add
// fields, do not rename them.
import type { ClockMode, ClockState, KernelClockState, VirtualBase } from '../clock/driver.ts';
import type { BarrierReport, NodeStatus } from '../core/node.ts';
import type { DisciplineConfig, DisciplineState } from '../core/sync/discipline.ts';
import type { ElectionAlgorithm, Endpoint, NodeId, Role } from '../core/types.ts';
import { PROTOCOL_VERSION, VERDICT_HOLDOVER_POLLS } from '../core/limits.ts';
import type { NtpReport } from './ntp-service.ts';
import type { UpstreamMode, UpstreamReport } from '../core/upstream/reference.ts';
import type { UpstreamServerStatus } from '../net/ntp-client.ts';
import type { SelectionResult, ServerVerdict } from '../ntp/selection.ts';

export type { NtpReport } from './ntp-service.ts';

export interface PeerReport {
  nodeId: NodeId;
  address: string;
  port: number;
  priority: number;
  /** ms since the last valid frame from this peer; null if never heard (only discovered). */
  lastHeardAgoMs: number | null;
  suspect: boolean;
  /** Master only: the peer's clock minus ours at the last round, in ns. */
  offsetNs: number | null;
  /** Master only: round-trip delay of the best probe of the last round, in ns. */
  delayNs: number | null;
  /** Master only: left out of the last average as an outlier. */
  excluded: boolean;
  /** Master only: the last sample's delay was far above the recent minimum, so it was not used. */
  sampleDiscarded: boolean;
  /**
   * Master only: the last round's correction for this peer could not be sent (not finite, or
   * beyond the range of a timestamp; logged as "correction not sent"). Absent from older agents.
   */
  correctionUnsendable?: boolean;
}

export interface ClockReport {
  mode: ClockMode;
  /**
   * What this clock's time follows: 'upstream' while the cluster follows an upstream NTP server
   * through this agent (its own as master, its master's as member), else 'cluster' (the cluster's
   * own fault-tolerant average, or a master in holdover).
   */
  reference: 'upstream' | 'cluster';
  /** This clock minus the host's system clock at the moment of the reply; 0 in system mode. */
  hostOffsetNs: number;
  /** The discipline's frequency adjustment in effect, ppm (positive = sped up). */
  frequencyPpm: number;
  /** Past initial synchronization: from now on the clock never steps backwards. */
  synchronized: boolean;
  /**
   * The clock's time is still provisional (the first minute after its first correction): a
   * majority of clocks that boot later may still move it, backwards too. Then it is locked.
   */
  provisional: boolean;
  /**
   * A bound on |this clock - the master's clock| at the moment of the reply, ns (README "Error
   * bound"); 0 on the master; null while the clock is not synchronized or before a measurement of
   * the master followed.
   */
  errorBoundNs: number | null;
  slewRemainingNs: number;
  /** Rate of the slew in progress, ppm (0 when none). */
  slewRatePpm: number;
  steps: number;
  slews: number;
  /** Virtual clock only: its deliberate oscillator error (--virtual-drift); null in system mode. */
  virtualDriftPpm: number | null;
  /**
   * Virtual clock only: its time base, 'monotonic-raw' (no one steering the host clock moves it)
   * or 'host' (RAW could not be read: it moves with the host clock); null in system mode.
   */
  virtualBase: VirtualBase | null;
  /** System clock only: what the kernel reports (adjtimex); null for the virtual clock. */
  kernel: KernelClockState | null;
  /**
   * How this process reads the host clock (hrtime anchored on Date.now() millisecond edges): the
   * anchor's error bound, full re-anchorings (the host clock was stepped by someone else), and
   * refinements (a check found the anchor off and moved it).
   */
  host: { anchorErrorNs: number; reanchors: number; refinements: number };
}

/** How well the clock follows the cluster, in the spirit of `chronyc tracking`. */
export interface TrackingReport {
  /** The master whose correction was applied last. */
  referenceId: NodeId | null;
  /** This clock minus the cluster's time at the last accepted correction. */
  lastOffsetNs: number | null;
  /** Root mean square of the recent offsets (synchronized corrections only). */
  rmsOffsetNs: number | null;
  frequencyPpm: number;
  /** Corrections accepted (stepped or slewed) and refused by the panic threshold. */
  updates: number;
  refused: number;
  /** Corrections held once as spikes (far beyond the recent noise and not confirmed by the next). */
  spikes: number;
  lastRefused: { correctionNs: number; agoMs: number } | null;
  lastUpdateAgoMs: number | null;
  /** No correction for over two poll intervals: running on the learned frequency alone. */
  holdover: boolean;
  /** The policy in effect. */
  stepThresholdNs: number;
  /** The slew rate available now (the configured limit within what the clock allows). */
  slewRatePpmMax: number;
  /** null: no panic threshold (--max-correction 0). */
  correctionNsMax: number | null;
}

/** One upstream server (--upstream) as the NTP client and the selection see it. */
export interface UpstreamServerReport {
  host: string;
  port: number;
  /** The IPv4 address asked; null until the name resolved. */
  address: string | null;
  /** 'resolving', or the client's state: 'burst', 'polling', 'backoff' (a RATE kiss), 'denied' (DENY/RSTR). */
  state: UpstreamServerStatus['state'];
  reachable: boolean;
  /** The 8-bit reach register (newest request in bit 0). */
  reach: number;
  stratum: number | null;
  leap: number | null;
  /** Server minus this clock, ns (the filter's choice: the newest sample whose delay is not poor, shifted by every correction since). */
  offsetNs: number | null;
  delayNs: number | null;
  jitterNs: number | null;
  rootDistanceNs: number | null;
  lastSampleAgoMs: number | null;
  pollIntervalMs: number;
  /** The selection's verdict: truechimer, falseticker, or why it was no candidate (unreachable, unsynchronized, rejected). */
  verdict: ServerVerdict;
  reason: string;
}

/** status.upstream: --upstream, what the node does with it, and what the client sees. */
export interface UpstreamStatusReport {
  /** acquiring, standby (healthy, a member), following, holdover or refused (see README "Status fields"). */
  mode: UpstreamMode;
  healthy: boolean;
  clockClass: number;
  changedAgoMs: number | null;
  usableInRow: number;
  lastUsableAgoMs: number | null;
  lastUnusable: string | null;
  recentLosses: number;
  /** After a loss: how long until a recovered upstream may count as healthy again (route-flap damping). */
  holdDownRemainingMs: number | null;
  acquired: number;
  lost: number;
  /** The last usable estimate handed to the node (its offset as of then). */
  estimate: { agoMs: number; offsetNs: number; errorBoundNs: number; rootDistanceNs: number; stratum: number; leap: number; systemPeer: string; truechimers: number } | null;
  /** As master: estimates turned into corrections of this clock, and the last one. */
  corrections: number;
  lastFollowedAgoMs: number | null;
  /** The last upstream offset refused (beyond --max-correction), and how many were refused since start. */
  refused: { offsetNs: number; limitNs: number | null; agoMs: number } | null;
  refusals: number;
  pollIntervalMs: number;
  servers: UpstreamServerReport[];
  selection:
    | { ok: true; systemPeer: string; offsetNs: number; errorBoundNs: number; stratum: number; leap: number; truechimers: string[] }
    | { ok: false; code: 'noCandidates' | 'noMajority'; reason: string };
}

/**
 * One word for scripts and people, in the spirit of `systemctl is-active`; `berkeley-agent status`
 * exits 0 only for "synchronized" (README "Status for scripts").
 * - synchronized: following a master (or the master of answering members), corrections arriving;
 * - unsynchronized: a master is known but the first corrections are not done yet;
 * - holdover: synchronized before, but no correction for over VERDICT_HOLDOVER_POLLS poll intervals;
 * - refusing: the last correction exceeded --max-correction (the panic threshold) and was refused;
 * - electing: no master (an election runs, or none was found yet);
 * - alone: the master, with no member answering its rounds (and no upstream followed).
 * A master following an upstream (--upstream) is synchronized while the upstream's estimates keep
 * coming (holdover after VERDICT_HOLDOVER_POLLS upstream polls without one), members or not, and
 * refusing while it refuses the upstream (beyond --max-correction).
 */
export type Verdict = 'synchronized' | 'unsynchronized' | 'holdover' | 'refusing' | 'electing' | 'alone';
export const VERDICTS: readonly Verdict[] = ['synchronized', 'unsynchronized', 'holdover', 'refusing', 'electing', 'alone'];

export interface StatusReport {
  /** This agent's state in one word, and why (see Verdict). */
  verdict: Verdict;
  verdictReason: string;
  nodeId: NodeId;
  cluster: string;
  priority: number;
  /** The election key's leading field: 1 while this agent's upstream is healthy, else 0. */
  clockClass: number;
  /** Started with --never-master: takes part in elections but never stands. */
  neverMaster: boolean;
  role: Role;
  masterId: NodeId | null;
  term: number;
  version: string;
  protocolVersion: number;
  pid: number;
  uptimeMs: number;
  listen: { address: string; port: number };
  interface: string | null;
  pollIntervalMs: number;
  clock: ClockReport;
  tracking: TrackingReport;
  /** The NTP server (--ntp-port): whether it serves, on which addresses, why not, its counters. */
  ntp: NtpReport;
  /** The upstream NTP servers (--upstream) and what this agent does with them; null without --upstream. */
  upstream: UpstreamStatusReport | null;
  election: {
    inProgress: { term: number; algorithm: ElectionAlgorithm; forMs: number } | null;
    last: { term: number; algorithm: ElectionAlgorithm; winner: NodeId; durationMs: number; agoMs: number } | null;
    started: number;
    won: number;
    byAlgorithm: Record<ElectionAlgorithm, number>;
  };
  /**
   * Where arrival timestamps come from: 'kernel' (the kernel's stamp of each datagram; a datagram
   * without a usable one is stamped in user space and counted) or 'user' (kernel stamps turned
   * off or unavailable: whyNotKernel says why).
   */
  timestamps: { rx: 'kernel' | 'user'; whyNotKernel: string | null; rxStampedByKernel: number; rxStampedByUser: number };
  /** Master only: the last completed Berkeley round. */
  lastRound: {
    round: number;
    term: number;
    agoMs: number;
    members: number;
    answered: number;
    averageNs: number;
    medianNs: number;
    /** Offsets within this of the median were averaged (two-stage median, see README). */
    boundNs: number;
    /** Left out of the average: outliers, and clocks not yet synchronized (they do not vote). */
    excluded: NodeId[];
    /**
     * Which clocks the average follows: 'majority' (a group of agreeing clocks holding more than
     * half of the votes), 'islands' (synchronized clocks without a majority group: the largest
     * group, the one ahead on a tie), 'middle' (no majority: the group at the middle clock(s)),
     * 'midpoint' (the clocks disagree: the middle clock, or the mean of the middle two).
     */
    reference: 'majority' | 'islands' | 'middle' | 'midpoint' | 'master';
  } | null;
  lastCorrection: { correctionNs: number; term: number; round: number; masterId: NodeId; agoMs: number } | null;
  peers: PeerReport[];
  /** Frame authentication: the key file, the key frames are sent with, and the keys accepted. */
  auth: { enabled: boolean; keyFile: string | null; sendKeyId: number | null; keyIds: number[] };
  /**
   * Barriers: `waiting` are this agent's participants (its control clients); `open` the barriers
   * the master serves (null on other agents); `counters` this agent's side and, on the master, the table's.
   */
  barriers: {
    waiting: { name: string; count: number | null; errorCode: number; acknowledged: boolean; present: number | null; waitingMs: number }[];
    open: { name: string; generation: number; present: number; count: number | null; initialized: boolean; errorCode: number; ageMs: number; inherited: number }[] | null;
    counters: {
      released: number;
      withdrawn: number;
      expired: number;
      rejected: Record<string, number>;
      releaseRetransmits: number;
      joinsSent: number;
      releasesReceived: number;
    };
  };
  counters: {
    framesReceived: number;
    framesSent: number;
    framesRejected: number;
    framesRejectedByReason: Record<string, number>;
    framesOtherCluster: number;
    framesStale: number;
    /** Answers to stale frames left unsent (one per peer per STALE_NOTICE_INTERVAL_MS). */
    staleNoticesSuppressed: number;
    /** Frames whose (boot, sequence number) was seen already or is too old: replays and network duplicates. */
    framesReplayed: number;
    /** With a key: frames for another node id, or for this node's previous run. */
    framesMisdirected: number;
    /** Frames not sent because the outgoing queue (OUTBOX_FRAMES_MAX between two drains) was full. */
    framesDroppedOutboxFull: number;
    framesFromSelfId: number;
    sendErrors: number;
    roundsCompleted: number;
    samplesDiscarded: number;
    /** POLLs sent as master; per round and member, what the early stop saved (PROBES_MIN_DEFAULT). */
    probesSent: number;
    correctionsApplied: number;
    /** As master: corrections not sent (or, its own, not applied) because no frame can carry them. Absent from older agents. */
    correctionsUnsendable?: number;
    peersRefused: number;
  };
}

const formatSeconds = (ns: number | null) => (ns === null ? 'an unknown offset' : `${ns >= 0 ? '+' : ''}${(ns / 1e9).toFixed(3)} s`);
const agoText = (ms: number | null) => (ms === null ? 'never' : `${(ms / 1000).toFixed(1)} s ago`);

/** The verdict of a status report (an agent's own; `status` also computes it for older agents). */
export function verdictOf(status: Omit<StatusReport, 'verdict' | 'verdictReason'>): { verdict: Verdict; verdictReason: string } {
  const tracking = status.tracking;
  if (status.role === 'electing' || status.masterId === null) {
    const running = status.election.inProgress;
    return { verdict: 'electing', verdictReason: running ? `election for term ${running.term} running (${running.algorithm})` : 'no master known yet' };
  }
  // A master following an upstream has a reference even alone, and corrects its own clock only
  // when the upstream answers (every upstream poll), not every round. (Older agents: no upstream.)
  const upstream = status.upstream ?? null;
  if (status.role === 'master' && upstream !== null && (upstream.mode === 'following' || upstream.mode === 'refused')) {
    const peer = upstream.selection.ok ? `${upstream.selection.systemPeer} (stratum ${upstream.selection.stratum})` : 'its upstream';
    if (upstream.mode === 'refused') {
      return { verdict: 'refusing', verdictReason: `master, refusing ${peer}: ${formatSeconds(upstream.refused?.offsetNs ?? null)} from the cluster's time, beyond --max-correction` };
    }
    if (!status.clock.synchronized) return { verdict: 'unsynchronized', verdictReason: `master following ${peer}, initial corrections not done yet (${tracking.updates} applied)` };
    const upstreamQuietMs = VERDICT_HOLDOVER_POLLS * Math.max(status.pollIntervalMs, upstream.pollIntervalMs);
    if (tracking.lastUpdateAgoMs === null || tracking.lastUpdateAgoMs > upstreamQuietMs) {
      return { verdict: 'holdover', verdictReason: `master, no correction from ${peer} since ${agoText(tracking.lastUpdateAgoMs)}: running on the learned frequency` };
    }
    const round = status.lastRound;
    return { verdict: 'synchronized', verdictReason: `master following ${peer}, ${round?.answered ?? 0} of ${round?.members ?? 0} members answered the last round` };
  }
  if (status.role === 'master' && (status.lastRound === null || status.lastRound.answered === 0)) {
    return { verdict: 'alone', verdictReason: status.peers.length === 0 ? 'master with no peers' : `master, but none of ${status.peers.length} peers answers its rounds` };
  }
  if (!status.clock.synchronized) {
    return { verdict: 'unsynchronized', verdictReason: `${status.role === 'master' ? 'master' : `following ${status.masterId}`}, initial corrections not done yet (${tracking.updates} applied)` };
  }
  // One late or lost round is not worth a verdict scripts act on: only a silence longer than a
  // member's master timeout (3 poll intervals by default) is.
  const quietMs = VERDICT_HOLDOVER_POLLS * status.pollIntervalMs;
  const lastRefused = tracking.lastRefused;
  if (lastRefused !== null && lastRefused.agoMs <= quietMs && (tracking.lastUpdateAgoMs === null || lastRefused.agoMs < tracking.lastUpdateAgoMs)) {
    return { verdict: 'refusing', verdictReason: `the last correction was refused: above --max-correction (${tracking.refused} refused, the last ${agoText(lastRefused.agoMs)})` };
  }
  if (tracking.lastUpdateAgoMs === null || tracking.lastUpdateAgoMs > quietMs) {
    return { verdict: 'holdover', verdictReason: `no correction since ${agoText(tracking.lastUpdateAgoMs)}: running on the learned frequency` };
  }
  if (status.role === 'master') {
    const round = status.lastRound;
    return { verdict: 'synchronized', verdictReason: `master, ${round?.answered ?? 0} of ${round?.members ?? 0} members answered the last round` };
  }
  return { verdict: 'synchronized', verdictReason: `following ${status.masterId}, last correction ${agoText(tracking.lastUpdateAgoMs)}` };
}

/** Everything a status report is made of, read from the agent's parts at one moment. */
export interface StatusInputs {
  /** The agent's monotonic clock now, and when it started (ms). */
  nowMs: number;
  startedMonoMs: number;
  pid: number;
  version: string;
  listen: Endpoint;
  interfaceName: string | null;
  pollIntervalMs: number;
  /** The protocol node's status and barrier report. */
  node: NodeStatus;
  barriers: BarrierReport;
  clock: ClockState;
  /** The node's bound on |this clock - the master's| at nowMs (null: not synchronized). */
  errorBoundNs: number | null;
  ntp: NtpReport;
  /** The NTP client of --upstream, read now; null without --upstream. */
  upstreams: { servers: UpstreamServerStatus[]; selection: SelectionResult; pollIntervalMs: number; refusals: number } | null;
  virtualDriftPpm: number | null;
  hostClock: { anchorErrorNs: number; reanchors: number; refinements: number };
  discipline: DisciplineState;
  policy: Readonly<DisciplineConfig>;
  /** The slew rate the discipline may use now. */
  slewRatePpmMax: number;
  transport: { rxTimestamps: 'kernel' | 'user'; rxTimestampsWhyNot: string | null; rxStampedByKernel: number; rxStampedByUser: number; sendErrors: number };
  auth: { sendKeyId: number; keyIds: number[] } | null;
  keyFile: string | null;
  frames: { received: number; sent: number; rejectedByReason: Record<string, number> };
}

/** The status report of a snapshot, verdict included. */
export function buildStatus(inputs: StatusInputs): StatusReport {
  const report = statusWithoutVerdict(inputs);
  return { ...report, ...verdictOf(report) };
}

function statusWithoutVerdict(inputs: StatusInputs): Omit<StatusReport, 'verdict' | 'verdictReason'> {
  const { nowMs, node: core, clock: clockState, discipline, policy } = inputs;
  const framesRejected = Object.values(inputs.frames.rejectedByReason).reduce((sum, count) => sum + count, 0);
  const last = core.election.last;
  return {
    nodeId: core.nodeId,
    cluster: core.cluster,
    priority: core.priority,
    clockClass: core.clockClass,
    neverMaster: core.neverMaster,
    role: core.role,
    masterId: core.masterId,
    term: core.term,
    version: inputs.version,
    protocolVersion: PROTOCOL_VERSION,
    pid: inputs.pid,
    uptimeMs: Math.round(nowMs - inputs.startedMonoMs),
    listen: { address: inputs.listen.address, port: inputs.listen.port },
    interface: inputs.interfaceName,
    pollIntervalMs: inputs.pollIntervalMs,
    clock: {
      mode: clockState.mode,
      reference: core.reference,
      hostOffsetNs: clockState.hostOffsetNs,
      frequencyPpm: clockState.frequencyPpm,
      synchronized: discipline.synchronized,
      provisional: discipline.provisionalNs !== null,
      errorBoundNs: inputs.errorBoundNs === null ? null : Math.round(inputs.errorBoundNs),
      slewRemainingNs: clockState.slewRemainingNs,
      slewRatePpm: clockState.slewRatePpm,
      steps: discipline.steps,
      slews: discipline.slews,
      virtualDriftPpm: inputs.virtualDriftPpm,
      virtualBase: clockState.virtualBase,
      kernel: clockState.kernel,
      host: { anchorErrorNs: Math.round(inputs.hostClock.anchorErrorNs), reanchors: inputs.hostClock.reanchors, refinements: inputs.hostClock.refinements },
    },
    tracking: {
      referenceId: core.lastCorrection?.masterId ?? null,
      lastOffsetNs: discipline.lastOffsetNs === null ? null : Math.round(discipline.lastOffsetNs),
      rmsOffsetNs: discipline.rmsOffsetNs === null ? null : Math.round(discipline.rmsOffsetNs),
      frequencyPpm: Math.round(discipline.frequencyPpm * 1000) / 1000,
      updates: discipline.updates,
      refused: discipline.refused,
      spikes: discipline.spikes,
      lastRefused: discipline.lastRefused ? { correctionNs: Math.round(discipline.lastRefused.correctionNs), agoMs: Math.round(nowMs - discipline.lastRefused.atMs) } : null,
      lastUpdateAgoMs: discipline.lastUpdateMs === null ? null : Math.round(nowMs - discipline.lastUpdateMs),
      holdover: discipline.lastUpdateMs !== null && nowMs - discipline.lastUpdateMs > 2 * inputs.pollIntervalMs,
      stepThresholdNs: policy.stepThresholdNs,
      slewRatePpmMax: inputs.slewRatePpmMax,
      correctionNsMax: Number.isFinite(policy.correctionNsMax) ? policy.correctionNsMax : null,
    },
    ntp: inputs.ntp,
    upstream: core.upstream === null || inputs.upstreams === null ? null : upstreamStatus(core.upstream, inputs.upstreams, nowMs),
    election: {
      inProgress: core.election.inProgress
        ? { term: core.election.inProgress.term, algorithm: core.election.inProgress.algorithm, forMs: Math.round(nowMs - core.election.inProgress.sinceMs) }
        : null,
      last: last ? { term: last.term, algorithm: last.algorithm, winner: last.winner, durationMs: Math.round(last.durationMs * 1000) / 1000, agoMs: Math.round(nowMs - last.endedMs) } : null,
      started: core.counters.electionsStarted,
      won: core.counters.electionsWon,
      byAlgorithm: core.counters.electionsByAlgorithm,
    },
    timestamps: {
      rx: inputs.transport.rxTimestamps,
      whyNotKernel: inputs.transport.rxTimestampsWhyNot,
      rxStampedByKernel: inputs.transport.rxStampedByKernel,
      rxStampedByUser: inputs.transport.rxStampedByUser,
    },
    lastRound: core.lastRound
      ? {
          round: core.lastRound.round,
          term: core.lastRound.term,
          agoMs: Math.round(nowMs - core.lastRound.atMs),
          members: core.lastRound.members,
          answered: core.lastRound.answered,
          averageNs: Math.round(core.lastRound.averageNs),
          medianNs: Math.round(core.lastRound.medianNs),
          boundNs: Math.round(core.lastRound.boundNs),
          excluded: core.lastRound.excluded,
          reference: core.lastRound.reference,
        }
      : null,
    lastCorrection: core.lastCorrection
      ? {
          correctionNs: Math.round(core.lastCorrection.correctionNs),
          term: core.lastCorrection.term,
          round: core.lastCorrection.round,
          masterId: core.lastCorrection.masterId,
          agoMs: Math.round(nowMs - core.lastCorrection.atMs),
        }
      : null,
    peers: core.peers
      .map((peer) => ({
        nodeId: peer.nodeId,
        address: peer.endpoint.address,
        port: peer.endpoint.port,
        priority: peer.priority,
        lastHeardAgoMs: peer.lastHeardMs === null ? null : Math.round(nowMs - peer.lastHeardMs),
        suspect: peer.suspect,
        offsetNs: peer.lastSample ? Math.round(peer.lastSample.offsetNs) : null,
        delayNs: peer.lastSample ? Math.round(peer.lastSample.delayNs) : null,
        excluded: peer.excluded,
        sampleDiscarded: peer.lastSample?.discarded ?? false,
        correctionUnsendable: peer.correctionUnsendable,
      }))
      .sort((a, b) => (a.nodeId < b.nodeId ? -1 : a.nodeId > b.nodeId ? 1 : 0)),
    auth: {
      enabled: inputs.auth !== null,
      keyFile: inputs.keyFile,
      sendKeyId: inputs.auth?.sendKeyId ?? null,
      keyIds: inputs.auth?.keyIds ?? [],
    },
    barriers: barrierStatus(inputs.barriers, nowMs),
    counters: {
      framesReceived: inputs.frames.received,
      framesSent: inputs.frames.sent,
      framesRejected,
      framesRejectedByReason: { ...inputs.frames.rejectedByReason },
      framesOtherCluster: core.counters.framesOtherCluster,
      framesStale: core.counters.framesStale,
      staleNoticesSuppressed: core.counters.staleNoticesSuppressed,
      framesReplayed: core.counters.framesReplayed,
      framesMisdirected: core.counters.framesMisdirected,
      framesDroppedOutboxFull: core.counters.framesDroppedOutboxFull,
      framesFromSelfId: core.counters.framesFromSelfId,
      sendErrors: inputs.transport.sendErrors,
      roundsCompleted: core.counters.roundsCompleted,
      samplesDiscarded: core.counters.samplesDiscarded,
      probesSent: core.counters.probesSent,
      correctionsApplied: core.counters.correctionsApplied,
      correctionsUnsendable: core.counters.correctionsUnsendable,
      peersRefused: core.counters.peersRefused,
    },
  };
}

const roundOrNull = (value: number | null) => (value === null ? null : Math.round(value));
const agoOrNull = (nowMs: number, atMs: number | null) => (atMs === null ? null : Math.round(nowMs - atMs));

/** status.upstream from the node's report (monotonic times become ago/remaining) and the client's. */
export function upstreamStatus(core: UpstreamReport, client: NonNullable<StatusInputs['upstreams']>, nowMs: number): UpstreamStatusReport {
  const selection = client.selection;
  const verdicts = new Map(selection.servers.map((server) => [server.id, server]));
  return {
    mode: core.mode,
    healthy: core.healthy,
    clockClass: core.clockClass,
    changedAgoMs: agoOrNull(nowMs, core.changedMs),
    usableInRow: core.usableInRow,
    lastUsableAgoMs: agoOrNull(nowMs, core.lastUsableMs),
    lastUnusable: core.lastUnusable,
    recentLosses: core.recentLosses,
    holdDownRemainingMs: core.holdDownUntilMs === null ? null : Math.max(0, Math.round(core.holdDownUntilMs - nowMs)),
    acquired: core.acquired,
    lost: core.lost,
    estimate: core.estimate === null ? null : {
      agoMs: Math.round(nowMs - core.estimate.atMs),
      offsetNs: Math.round(core.estimate.offsetNs),
      errorBoundNs: Math.round(core.estimate.errorBoundNs),
      rootDistanceNs: Math.round(core.estimate.rootDistanceNs),
      stratum: core.estimate.stratum,
      leap: core.estimate.leap,
      systemPeer: core.estimate.systemPeer,
      truechimers: core.estimate.truechimers,
    },
    corrections: core.corrections,
    lastFollowedAgoMs: agoOrNull(nowMs, core.lastFollowedMs),
    // An infinite limit (--max-correction 0) cannot refuse anything; JSON has no Infinity anyway.
    refused: core.refused === null ? null : { offsetNs: Math.round(core.refused.offsetNs), limitNs: Number.isFinite(core.refused.limitNs) ? core.refused.limitNs : null, agoMs: Math.round(nowMs - core.refused.atMs) },
    refusals: client.refusals,
    pollIntervalMs: client.pollIntervalMs,
    servers: client.servers.map((server) => {
      const judged = verdicts.get(server.id);
      return {
        host: server.host,
        port: server.port,
        address: server.address,
        state: server.state,
        reachable: server.reachable,
        reach: server.reach,
        stratum: server.stratum,
        leap: server.leap,
        offsetNs: roundOrNull(server.offsetNs),
        delayNs: roundOrNull(server.delayNs),
        jitterNs: roundOrNull(server.jitterNs),
        rootDistanceNs: roundOrNull(server.rootDistanceNs),
        lastSampleAgoMs: roundOrNull(server.lastSampleAgoMs),
        pollIntervalMs: server.pollIntervalMs,
        verdict: judged?.verdict ?? 'unreachable',
        reason: judged?.reason ?? 'not judged by the selection',
      };
    }),
    selection: selection.ok
      ? { ok: true, systemPeer: selection.systemPeer, offsetNs: Math.round(selection.offsetNs), errorBoundNs: Math.round(selection.errorBoundNs), stratum: selection.stratum, leap: selection.leap, truechimers: [...selection.selected] }
      : { ok: false, code: selection.code, reason: selection.reason },
  };
}

function barrierStatus(report: BarrierReport, nowMs: number): StatusReport['barriers'] {
  const table = report.table;
  return {
    waiting: report.participants.map((participant) => ({
      name: participant.name,
      count: participant.count,
      errorCode: participant.errorCode,
      acknowledged: participant.generation !== null,
      present: participant.present,
      waitingMs: Math.round(nowMs - participant.sinceMs),
    })),
    open:
      table === null
        ? null
        : table.open.map((open) => ({
            name: open.name,
            generation: open.generation,
            present: open.present,
            count: open.count,
            initialized: open.initialized,
            errorCode: open.errorCode,
            ageMs: Math.round(open.ageMs),
            inherited: open.inherited,
          })),
    counters: {
      released: table?.counters.participantsReleased ?? 0,
      withdrawn: table?.counters.withdrawn ?? 0,
      expired: table?.counters.expired ?? 0,
      rejected: { ...(table?.counters.rejected ?? {}) },
      releaseRetransmits: table?.counters.releaseRetransmits ?? 0,
      joinsSent: report.client.joinsSent,
      releasesReceived: report.client.releasesReceived,
    },
  };
}
