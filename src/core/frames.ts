// Frame vocabulary of the wire protocol. Type codes are append-only: never renumber or reuse one.
import type { NodeId } from './types.ts';
import { BarrierFrameType, type BarrierBody } from './barrier/frames.ts';

export const FrameType = {
  /** Announce presence; `wantReply` asks the receiver to answer with its own HELLO. */
  hello: 1,
  /** Chang-Roberts ring message carrying the best candidate seen so far. */
  election: 2,
  /** Acknowledges one ring hop, so a dead successor can be detected and skipped. */
  electionAck: 3,
  /** The winner of an election announces itself to every member. */
  coordinator: 4,
  /** Bully algorithm: sent to every higher-key node. */
  bully: 5,
  /** Bully algorithm: a higher-key node is alive and takes over the election. */
  bullyOk: 6,
  /** Berkeley round: the master asks a member for its clock. */
  poll: 7,
  /** Answer to a poll: echoes the poll's transmit time and gives the receive time. */
  reply: 8,
  /** The master tells one member how far to move its clock. */
  correct: 9,
  /** One-shot time query (the `query` command, Cristian's algorithm); answered by any agent. */
  timeQuery: 10,
  /** Answer to a time query: echoes its txNs and gives the receive time. */
  timeAnswer: 11,
  /** The sender is shutting down gracefully (SIGTERM): forget it; if it was the master, elect now. */
  leave: 12,
  /** Asks the master for a page of its view of the cluster (for a member's dashboard). */
  viewQuery: 13,
  /** One page of the master's view: every member's offset, delay and last-heard at its last round. */
  view: 14,
  /** Barriers, 15..20 (src/core/barrier/frames.ts): join, ack, release, releaseAck, withdraw, released. */
  ...BarrierFrameType,
} as const;

export type FrameTypeName = keyof typeof FrameType;
export type FrameTypeCode = (typeof FrameType)[FrameTypeName];

/** Type code to name, for counters and logs. */
export const FRAME_TYPE_NAMES = Object.fromEntries(Object.entries(FrameType).map(([name, code]) => [code, name])) as Record<FrameTypeCode, FrameTypeName>;

export const ROLE_CODES = { electing: 0, slave: 1, master: 2 } as const;

/** Fields every frame carries. */
export interface FrameHeader {
  /** Protocol version. */
  v: number;
  cluster: string;
  from: NodeId;
  /** Sender's election priority, so keys are known from any frame. */
  prio: number;
  /**
   * Sender's clock class, the election key's leading field (CLOCK_CLASS_UPSTREAM while it follows
   * a healthy upstream); absent means 0, so an agent without an upstream sends what it always did.
   */
  cls?: number;
  /** Sender's current term. */
  term: number;
  /**
   * Replay protection: the sender's boot id (larger at every start: ms since the epoch, above the
   * last one saved in its state directory) and a sequence number counted from 1 at each boot.
   * A receiver accepts each (boot, seq) of a sender once, and no boot older than the newest it saw.
   */
  boot: number;
  seq: number;
  /**
   * The node the frame is for ('' when its id is not known yet: a HELLO to a --peer endpoint, a
   * time answer). Authenticated with the rest, so a captured frame cannot be redirected to another
   * node; sequence numbers count per destination.
   */
  to: NodeId | '';
  /**
   * The destination's boot id as the sender last heard it (0 before it heard any frame of the
   * destination): a frame captured before the destination restarted is not for its new run.
   */
  toBoot: number;
  /** Sender's clock when the frame left, stamped by the shell just before encoding. */
  txNs: bigint;
}

export interface HelloBody {
  type: typeof FrameType.hello;
  wantReply: boolean;
  role: number;
  /** The master the sender follows in `term`, or null. */
  masterId: NodeId | null;
  /** That master's priority (so a receiver can compare keys with a master it does not know). */
  masterPrio: number | null;
  /** That master's clock class, when not 0. */
  masterCls?: number;
}
export interface ElectionBody {
  type: typeof FrameType.election;
  hopId: number;
  candidateId: NodeId;
  candidatePrio: number;
  /** The candidate's clock class, when not 0. */
  candidateCls?: number;
}
export interface ElectionAckBody {
  type: typeof FrameType.electionAck;
  hopId: number;
}
export interface CoordinatorBody {
  type: typeof FrameType.coordinator;
  /** 0 = ring, 1 = bully, 2 = takeover. */
  algorithm: number;
}
export interface BullyBody {
  type: typeof FrameType.bully;
}
export interface BullyOkBody {
  type: typeof FrameType.bullyOk;
}
export interface PollBody {
  type: typeof FrameType.poll;
  round: number;
  probe: number;
}
export interface ReplyBody {
  type: typeof FrameType.reply;
  round: number;
  probe: number;
  /** t1: the poll's txNs, echoed. */
  pollTxNs: bigint;
  /** t2: when the poll arrived at the member, on the member's clock. */
  rxNs: bigint;
  /** The member's clock is synchronized: only synchronized clocks vote in the average. */
  synced: boolean;
  /**
   * Present while the member's time is provisional (its first minute, see the provisional window):
   * how far its discipline has moved its clock since it started. Its raw time is its time minus
   * this; the master chooses the reference from raw times while nobody's time is established.
   */
  provisionalNs?: number;
}
export interface CorrectBody {
  type: typeof FrameType.correct;
  round: number;
  /** How far the member should move its clock, in ns (positive = forward). */
  correctionNs: number;
  /** Round trip of the measurement the correction rests on, ns (the member's NTP root delay). */
  delayNs?: number;
  /**
   * A bound on |member clock - master clock| once the member has acted on this correction, ns, as
   * of the master's sending: see ERROR_BOUND_FREQUENCY_TOLERANCE_PPM and core/sync/error-bound.ts.
   */
  boundNs?: number;
  /**
   * Present while the master follows an upstream: the upstream's stratum (the master serves NTP
   * one below it, its members two) and leap indicator (0 none, 1 insert, 2 delete).
   */
  refStratum?: number;
  refLeap?: number;
}

export interface TimeQueryBody {
  type: typeof FrameType.timeQuery;
  /** Chosen by the querier to match answers to queries. */
  queryId: number;
}
export interface TimeAnswerBody {
  type: typeof FrameType.timeAnswer;
  queryId: number;
  /** t1: the query's txNs, echoed. */
  queryTxNs: bigint;
  /** t2: when the query arrived, on the answering agent's clock. */
  rxNs: bigint;
}

export interface LeaveBody {
  type: typeof FrameType.leave;
}

export interface ViewQueryBody {
  type: typeof FrameType.viewQuery;
  /** Chosen by the querier to match pages to its request. */
  queryId: number;
  /** Index of the first member wanted (0 for a new view). */
  start: number;
  /** The round of the view being pulled (0 for the latest): the master keeps the one before too. */
  round: number;
}

/** Bits of ViewEntry's flags. */
export const VIEW_FLAGS = { master: 1, suspect: 2, excluded: 4, discarded: 8, synced: 16 } as const;

/**
 * One member as the master saw it: [nodeId, flags (VIEW_FLAGS), offset from the master in ns,
 * round-trip delay in ns, ms since the master last heard it]. Numbers are null when unknown.
 */
export type ViewEntryTuple = [nodeId: NodeId, flags: number, offsetNs: number | null, delayNs: number | null, lastHeardAgoMs: number | null];

export interface ViewBody {
  type: typeof FrameType.view;
  queryId: number;
  /** The round this view was taken at, and how long ago (ms, at the master). */
  round: number;
  roundAgoMs: number;
  /** The round's average offset from the master (the cluster's time minus the master's), ns. */
  averageNs: number;
  /** Members in the whole view, and the index of this page's first entry. */
  total: number;
  start: number;
  members: ViewEntryTuple[];
}

export type FrameBody =
  | HelloBody
  | ElectionBody
  | ElectionAckBody
  | CoordinatorBody
  | BullyBody
  | BullyOkBody
  | PollBody
  | ReplyBody
  | CorrectBody
  | TimeQueryBody
  | TimeAnswerBody
  | LeaveBody
  | ViewQueryBody
  | ViewBody
  | BarrierBody;

/** A complete frame as it travels. */
export type Frame = FrameHeader & FrameBody;

/** What the core emits: the shell adds `txNs` at the moment of sending. */
export type OutgoingFrame = Omit<FrameHeader, 'txNs'> & FrameBody;

export const ALGORITHM_CODES = { ring: 0, bully: 1, takeover: 2 } as const;
