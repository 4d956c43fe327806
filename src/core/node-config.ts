// What a node is configured with (the daemon builds it from options, the simulator and tests
// through defaults.ts nodeConfig()).
import type { NodeId } from './types.ts';

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
   * This node's clock now, ns since the epoch: read only to schedule synchronized barrier releases
   * (issue 19). Injected like `random` (the daemon: its clock driver; the simulator: the node's
   * simulated clock). Absent: the node's monotonic input time stands in.
   */
  clockNowNs?: () => bigint;
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
  /**
   * --upstream was given (issue 18): how often the client polls it (its health is judged against
   * that), and the panic threshold beyond which an established cluster refuses to follow it.
   * Absent or null: no upstream, and everything is as without one.
   */
  upstream?: { upstreamPollIntervalMs: number; correctionNsMax: number } | null;
}
