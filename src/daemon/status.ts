// The status report: filled by the daemon, served as JSON at GET /status, printed by `status`.
// Field names are a contract (README "Status fields"); add fields, do not rename them.
import type { ClockReport } from '../clock/driver.ts';
import type { ElectionAlgorithm, NodeId, Role } from '../core/types.ts';

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

export interface StatusReport {
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
  /** mode, hostOffsetNs, frequencyPpm, synchronized, slewRemainingNs, steps, slews. */
  clock: ClockReport;
  election: {
    inProgress: { term: number; algorithm: ElectionAlgorithm; forMs: number } | null;
    last: { term: number; algorithm: ElectionAlgorithm; winner: NodeId; durationMs: number; agoMs: number } | null;
    started: number;
    won: number;
    byAlgorithm: Record<ElectionAlgorithm, number>;
  };
  /** Master only: the last completed Berkeley round. */
  lastRound: {
    round: number;
    term: number;
    agoMs: number;
    members: number;
    answered: number;
    averageNs: number;
    medianNs: number;
    excluded: NodeId[];
  } | null;
  lastCorrection: { correctionNs: number; term: number; round: number; masterId: NodeId; agoMs: number } | null;
  peers: PeerReport[];
  counters: {
    framesReceived: number;
    framesSent: number;
    framesRejected: number;
    framesRejectedByReason: Record<string, number>;
    framesOtherCluster: number;
    framesStale: number;
    framesFromSelfId: number;
    sendErrors: number;
    roundsCompleted: number;
    samplesDiscarded: number;
    correctionsApplied: number;
    peersRefused: number;
  };
}
