// What a node reports and keeps: its counters, its status (read by the daemon's status and
// metrics, and by the simulator's invariant checker) and the state that survives a restart.
import type { UpstreamReport } from './upstream/reference.ts';
import { FrameType, type FrameTypeName } from './frames.ts';
import type { Correction, ElectionRecord, RoundRecord } from './events.ts';
import type { PeerState } from './membership/peers.ts';
import type { ElectionAlgorithm, NodeId, Role } from './types.ts';

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

export interface NodeCounters {
  framesAccepted: number;
  framesOtherCluster: number;
  framesStale: number;
  /** Answers to stale frames not sent: one per peer per STALE_NOTICE_INTERVAL_MS (no ping-pong). */
  staleNoticesSuppressed: number;
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
  /** As master: members' corrections not sent because no frame can carry them (see correction-unsendable). */
  correctionsUnsendable: number;
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

/** Every counter at zero. */
export function newNodeCounters(): NodeCounters {
  return {
    framesAccepted: 0,
    framesOtherCluster: 0,
    framesStale: 0,
    staleNoticesSuppressed: 0,
    framesFromSelfId: 0,
    framesDroppedOutboxFull: 0,
    framesReplayed: 0,
    framesMisdirected: 0,
    roundsCompleted: 0,
    samplesDiscarded: 0,
    probesSent: 0,
    correctionsApplied: 0,
    correctionsUnsendable: 0,
    electionsStarted: 0,
    electionsWon: 0,
    electionsByAlgorithm: { ring: 0, bully: 0, takeover: 0 },
    takeovers: 0,
    framesSentByType: Object.fromEntries(Object.keys(FrameType).map((name) => [name, 0])) as Record<FrameTypeName, number>,
    peersRefused: 0,
    peersExpired: 0,
    greetingsDeferred: 0,
  };
}

/** A copy the caller may keep (nested records copied too). */
export function copyNodeCounters(counters: NodeCounters): NodeCounters {
  return { ...counters, electionsByAlgorithm: { ...counters.electionsByAlgorithm }, framesSentByType: { ...counters.framesSentByType } };
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
  /** Our clock class, the election key's leading field (1 while our upstream is healthy). */
  clockClass: number;
  /** What the cluster's time follows through us: an upstream (ours as master, our master's) or itself. */
  reference: 'upstream' | 'cluster';
  /** Our upstream's health and what we do with it; null without --upstream. */
  upstream: UpstreamReport | null;
  lastCorrection: (Correction & { atMs: number }) | null;
  peers: PeerState[];
  counters: NodeCounters;
}
