// The status report: filled by the daemon, served as JSON at GET /status, printed by `status`.
// Field names are a contract (README "Status fields"); add fields, do not rename them.
import type { ClockMode, KernelClockState } from '../clock/driver.ts';
import type { ElectionAlgorithm, NodeId, Role } from '../core/types.ts';
import { VERDICT_HOLDOVER_POLLS } from '../core/limits.ts';

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
}

export interface ClockReport {
  mode: ClockMode;
  /** This clock minus the host's system clock at the moment of the reply; 0 in system mode. */
  hostOffsetNs: number;
  /** The discipline's frequency adjustment in effect, ppm (positive = sped up). */
  frequencyPpm: number;
  /** Past initial synchronization: from now on the clock never steps backwards. */
  synchronized: boolean;
  slewRemainingNs: number;
  /** Rate of the slew in progress, ppm (0 when none). */
  slewRatePpm: number;
  steps: number;
  slews: number;
  /** Virtual clock only: its deliberate oscillator error (--virtual-drift); null in system mode. */
  virtualDriftPpm: number | null;
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

/**
 * One word for scripts and people, in the spirit of `systemctl is-active`; `berkeley-agent status`
 * exits 0 only for "synchronized" (README "Status for scripts").
 * - synchronized: following a master (or the master of answering members), corrections arriving;
 * - unsynchronized: a master is known but the first corrections are not done yet;
 * - holdover: synchronized before, but no correction for over VERDICT_HOLDOVER_POLLS poll intervals;
 * - refusing: the last correction exceeded --max-correction (the panic threshold) and was refused;
 * - electing: no master (an election runs, or none was found yet);
 * - alone: the master, with no member answering its rounds.
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
    reference: 'majority' | 'islands' | 'middle' | 'midpoint';
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
    peersRefused: number;
  };
}

const agoText = (ms: number | null) => (ms === null ? 'never' : `${(ms / 1000).toFixed(1)} s ago`);

/** The verdict of a status report (an agent's own; `status` also computes it for older agents). */
export function verdictOf(status: Omit<StatusReport, 'verdict' | 'verdictReason'>): { verdict: Verdict; verdictReason: string } {
  const tracking = status.tracking;
  if (status.role === 'electing' || status.masterId === null) {
    const running = status.election.inProgress;
    return { verdict: 'electing', verdictReason: running ? `election for term ${running.term} running (${running.algorithm})` : 'no master known yet' };
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
