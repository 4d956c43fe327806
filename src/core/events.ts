// What the node reports to its shell: events (logged, counted, shown on the dashboard), the
// records they carry, and corrections. Shared by the node and its sub-machines (see outbox.ts).
import type { ReferenceBasis } from './sync/berkeley.ts';
import type { ElectionAlgorithm, Endpoint, NodeId, Role } from './types.ts';

export interface ElectionRecord {
  term: number;
  algorithm: ElectionAlgorithm;
  winner: NodeId;
  /** From this node entering the election to learning the result. */
  durationMs: number;
  endedMs: number;
}

export interface RoundRecord {
  round: number;
  term: number;
  atMs: number;
  members: number;
  answered: number;
  averageNs: number;
  medianNs: number;
  /** The second stage's bound around the median. */
  boundNs: number;
  excluded: NodeId[];
  /** Why the average follows the clocks it follows (src/core/sync/berkeley.ts). */
  reference: ReferenceBasis;
}

/** One member in a view of the cluster. */
export interface ViewMember {
  nodeId: NodeId;
  master: boolean;
  suspect: boolean;
  /** Left out of the round's average (an outlier, or not yet synchronized). */
  excluded: boolean;
  /** The round's sample was discarded by the delay filter. */
  discarded: boolean;
  /** Its reply said its clock is synchronized. */
  synced: boolean;
  /** The member's clock minus the master's, at its last sample. */
  offsetNs: number | null;
  delayNs: number | null;
  /** When the master last heard it, relative to `atMs`. */
  lastHeardAgoMs: number | null;
}

/**
 * The cluster as the master saw it at the end of a round: the master builds it itself, a member
 * pulls it from the master page by page (requestView). `atMs` is this node's monotonic time at
 * which the view was valid (the round's end, as near as this node can tell).
 */
export interface ClusterView {
  masterId: NodeId;
  term: number;
  round: number;
  atMs: number;
  averageNs: number;
  members: ViewMember[];
}

export type NodeEvent =
  | { kind: 'peer-new'; nodeId: NodeId; endpoint: Endpoint; via: 'frame' | 'discovery' }
  | { kind: 'peer-suspect'; nodeId: NodeId; why: string }
  | { kind: 'peer-alive'; nodeId: NodeId }
  | { kind: 'peer-limit'; nodeId: NodeId }
  /** Forgotten: it never answered (too long, or the table was full and a newcomer needed room). */
  | { kind: 'peer-expired'; nodeId: NodeId; why: 'never answered' | 'table full' }
  | { kind: 'peer-left'; nodeId: NodeId; wasMaster: boolean }
  | { kind: 'election-start'; term: number; algorithm: ElectionAlgorithm; reason: string }
  | { kind: 'election-end'; record: ElectionRecord }
  | { kind: 'election-failed'; term: number; why: string; retryInMs: number }
  | { kind: 'role'; from: Role; to: Role; term: number; masterId: NodeId | null }
  | { kind: 'round'; record: RoundRecord }
  | { kind: 'view'; view: ClusterView }
  | { kind: 'duplicate-id'; endpoint: Endpoint }
  /** The upstream's health changed (this node's clock class with it), or the master refused to follow it. */
  | { kind: 'upstream'; healthy: boolean; clockClass: number; why: string | null }
  | { kind: 'upstream-refused'; offsetNs: number; limitNs: number }
  /** A member whose clock class beats its master's took over (the master changes once). */
  | { kind: 'upstream-takeover'; from: NodeId; term: number }
  | { kind: 'outbox-full' }
  /** As master: a member's correction no frame can carry (not finite, or beyond CORRECTION_NS_MAX); not sent. */
  | { kind: 'correction-unsendable'; nodeId: NodeId; correctionNs: number; round: number };

export interface Correction {
  correctionNs: number;
  term: number;
  round: number;
  masterId: NodeId;
  /**
   * `upstream`: the master's own correction onto its upstream (round is the count of them); absent:
   * from the cluster's rounds. `slewOnly`: the cluster's time is established, so never step it.
   */
  source?: 'upstream';
  slewOnly?: boolean;
  /** For the discipline: how often corrections of this source come (the upstream's poll interval). */
  pollIntervalMs?: number;
}

