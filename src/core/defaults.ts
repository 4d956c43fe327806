// Node configuration with every timing derived from the poll interval unless given explicitly.
import type { NodeConfig } from './node-config.ts';
import {
  BULLY_ANSWER_TIMEOUT_MS_DEFAULT,
  BULLY_COORDINATOR_TIMEOUT_MS_DEFAULT,
  CLUSTER_DEFAULT,
  DISCOVERY_WINDOW_MS_DEFAULT,
  HOP_ACK_TIMEOUT_MS_DEFAULT,
  MASTER_TIMEOUT_POLLS_DEFAULT,
  OUTLIER_THRESHOLD_MS_DEFAULT,
  PEERS_MAX_DEFAULT,
  POLL_INTERVAL_MS_DEFAULT,
  PRIORITY_DEFAULT,
  PROBE_SPACING_MS_DEFAULT,
  PROBES_MIN_DEFAULT,
  PROBES_PER_ROUND_DEFAULT,
  REPLY_WAIT_MS_DEFAULT,
  RING_TIMEOUT_MS_DEFAULT,
} from './limits.ts';

export function nodeConfig(partial: Partial<NodeConfig> & Pick<NodeConfig, 'nodeId' | 'random'>): NodeConfig {
  const pollIntervalMs = partial.pollIntervalMs ?? POLL_INTERVAL_MS_DEFAULT;
  return {
    priority: PRIORITY_DEFAULT,
    cluster: CLUSTER_DEFAULT,
    masterTimeoutMs: pollIntervalMs * MASTER_TIMEOUT_POLLS_DEFAULT,
    probesPerRound: PROBES_PER_ROUND_DEFAULT,
    probesMin: PROBES_MIN_DEFAULT,
    probeSpacingMs: PROBE_SPACING_MS_DEFAULT,
    replyWaitMs: REPLY_WAIT_MS_DEFAULT,
    outlierThresholdNs: OUTLIER_THRESHOLD_MS_DEFAULT * 1e6,
    discoveryWindowMs: DISCOVERY_WINDOW_MS_DEFAULT,
    hopAckTimeoutMs: HOP_ACK_TIMEOUT_MS_DEFAULT,
    ringTimeoutMs: RING_TIMEOUT_MS_DEFAULT,
    bullyAnswerTimeoutMs: BULLY_ANSWER_TIMEOUT_MS_DEFAULT,
    bullyCoordinatorTimeoutMs: BULLY_COORDINATOR_TIMEOUT_MS_DEFAULT,
    peersMax: PEERS_MAX_DEFAULT,
    neverMaster: false,
    electionAlgorithm: 'ring',
    bootId: 1,
    replayProtection: false,
    ...partial,
    pollIntervalMs,
  };
}
