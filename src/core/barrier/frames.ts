// Barrier frames (issue 6): bodies only; the common header is added by the codec.
// Type codes 15..20 are reserved for these; like every type code they are append-only.
//
// Direction and meaning:
//   barrierJoin        agent -> master  register (or refresh, or confirm) a participant
//   barrierAck         master -> agent  the participant's state, or why it was refused
//   barrierRelease     master -> agent  these participants are released with exitCode
//   barrierReleaseAck  agent -> master  the release of these ids arrived;
//                      master -> agent  with no ids: the barrierReleased notice arrived
//   barrierWithdraw    agent -> master  a participant gave up (timeout, client gone)
//   barrierReleased    agent -> master  notice: this agent saw `generation` released (for a new master)
import { z } from 'zod';
import {
  BARRIER_ERROR_CODE_MAX,
  BARRIER_IDS_PER_FRAME_MAX,
  BARRIER_NAME_BYTES_MAX,
  BARRIER_REASON_BYTES_MAX,
  COUNTER_MAX,
  TIMESTAMP_NS_MAX,
} from '../limits.ts';
import type { NodeId } from '../types.ts';

export const BarrierFrameType = {
  barrierJoin: 15,
  barrierAck: 16,
  barrierRelease: 17,
  barrierReleaseAck: 18,
  barrierWithdraw: 19,
  barrierReleased: 20,
} as const;

export type BarrierFrameTypeName = keyof typeof BarrierFrameType;
export type BarrierFrameTypeCode = (typeof BarrierFrameType)[BarrierFrameTypeName];

export interface BarrierJoinBody {
  type: typeof BarrierFrameType.barrierJoin;
  name: string;
  /** With the sender's node id, the participant's identity; never reused by that agent. */
  requestId: number;
  /** null: a waiter. N: the initializer, N = waiters not counting itself. */
  count: number | null;
  /** 0..239; everyone is released with the largest code reported. */
  errorCode: number;
  /**
   * The generation the master last acknowledged this participant in, or null before any ack. Sent
   * again equal to the acked one, it confirms the participant knows its generation: only confirmed
   * participants count (see table.ts for why).
   */
  generation: number | null;
  /**
   * Present (true) only when the participant asks for a synchronized release (issue 19): the master
   * then gives the generation's release a release instant. Omitted otherwise, so that a plain join
   * still decodes at an older master (its decoder refuses unknown fields).
   */
  synchronized?: true;
}

export interface BarrierAckBody {
  type: typeof BarrierFrameType.barrierAck;
  requestId: number;
  name: string;
  /** The generation the participant is in; null when refused or withdrawn. */
  generation: number | null;
  /** The participant counts towards the release (it confirmed `generation`). */
  confirmed: boolean;
  /** Waiters present in that generation (confirmed or not). */
  present: number;
  /** The initializer's count, or null while the barrier is not initialized. */
  count: number | null;
  /** null, or why the participant is not (or no longer) in the barrier: a BarrierReason. */
  error: string | null;
}

export interface BarrierReleaseBody {
  type: typeof BarrierFrameType.barrierRelease;
  name: string;
  generation: number;
  exitCode: number;
  /** Participants of the receiving agent released by this frame (at most BARRIER_IDS_PER_FRAME_MAX). */
  requestIds: number[];
  /**
   * Synchronized generations only: the instant on the cluster clock (the releasing master's clock,
   * ns since the epoch) at which the participants start. The same in every release (and
   * retransmission) of the generation, so an agent that has the frame knows the instant even if
   * the master dies right after sending it.
   */
  releaseAtNs?: bigint;
}

export interface BarrierReleaseAckBody {
  type: typeof BarrierFrameType.barrierReleaseAck;
  generation: number;
  requestIds: number[];
}

export interface BarrierWithdrawBody {
  type: typeof BarrierFrameType.barrierWithdraw;
  name: string;
  requestId: number;
}

export interface BarrierReleasedBody {
  type: typeof BarrierFrameType.barrierReleased;
  name: string;
  generation: number;
  exitCode: number;
  /** The generation's release instant, if it had one: a new master releases the rest at it too. */
  releaseAtNs?: bigint;
}

export type BarrierBody =
  | BarrierJoinBody
  | BarrierAckBody
  | BarrierReleaseBody
  | BarrierReleaseAckBody
  | BarrierWithdrawBody
  | BarrierReleasedBody;

/** A barrier frame body and the node it goes to (the shell adds the header and the endpoint). */
export interface BarrierSend {
  to: NodeId;
  body: BarrierBody;
}

/** Why a participant was refused or left a barrier (stable codes, for the CLI and metrics). */
export const BARRIER_REASONS = [
  'bad-name',
  'bad-count',
  'bad-error-code',
  'barrier-limit',
  'waiter-limit',
  'participant-limit',
  'second-initializer',
  'withdrawn',
  'client-limit',
] as const;
export type BarrierReason = (typeof BARRIER_REASONS)[number];

const BARRIER_TYPE_CODES = new Set<number>(Object.values(BarrierFrameType));

export function isBarrierBody(body: { type: number }): body is BarrierBody {
  return BARRIER_TYPE_CODES.has(body.type);
}

/**
 * Which side of a node takes a received barrier frame: its table (when it is master) or its client.
 * A release ack with ids acknowledges a master's release; without ids, an agent's notice.
 */
export function barrierRecipient(body: BarrierBody): 'table' | 'client' {
  switch (body.type) {
    case BarrierFrameType.barrierAck:
    case BarrierFrameType.barrierRelease:
      return 'client';
    case BarrierFrameType.barrierReleaseAck:
      return body.requestIds.length > 0 ? 'table' : 'client';
    default:
      return 'table';
  }
}

const NAME_PATTERN = /^[\x21-\x7e]+$/;

/** Why a barrier name is unusable, or null. Printable ASCII without spaces, 1..64 bytes. */
export function barrierNameProblem(name: string): string | null {
  if (name.length === 0) return 'empty';
  if (!NAME_PATTERN.test(name)) return 'only printable ASCII without spaces is allowed';
  if (name.length > BARRIER_NAME_BYTES_MAX) return `longer than ${BARRIER_NAME_BYTES_MAX} bytes`;
  return null;
}

export function isSafeId(value: number): boolean {
  return Number.isSafeInteger(value) && value >= 0;
}

// Zod shapes for the codec's discriminatedUnion: `z.object({ ...header, ...barrierJoinShape }).strict()`.
// Integers past 2^32 are packed by msgpackr as float64 but by other encoders as uint64, which the
// codec's unpacker returns as bigint: accept both, as the codec's `counter` does.
const safeId = z
  .union([z.number().int().min(0).max(COUNTER_MAX), z.bigint().min(0n).max(BigInt(COUNTER_MAX))])
  .transform((value) => Number(value));
const barrierName = z.string().regex(NAME_PATTERN).max(BARRIER_NAME_BYTES_MAX);
const exitCode = z.number().int().min(0).max(BARRIER_ERROR_CODE_MAX);
// Counts above the waiter limit are accepted here so that the master can refuse them with a reason.
const count = z.number().int().min(0).max(0x7fff_ffff);
const ids = z.array(safeId).max(BARRIER_IDS_PER_FRAME_MAX);
// An instant on the cluster clock, as the codec's header timestamps: 64-bit integers decode as bigint.
const instantNs = z
  .union([z.bigint(), z.number().int().min(0).max(Number.MAX_SAFE_INTEGER)])
  .transform((value) => BigInt(value))
  .refine((value) => value >= 0n && value <= TIMESTAMP_NS_MAX, 'instant out of range');

export const barrierJoinShape = {
  type: z.literal(BarrierFrameType.barrierJoin),
  name: barrierName,
  requestId: safeId,
  count: count.nullable(),
  errorCode: exitCode,
  generation: safeId.nullable(),
  synchronized: z.literal(true).optional(),
};
export const barrierAckShape = {
  type: z.literal(BarrierFrameType.barrierAck),
  requestId: safeId,
  name: barrierName,
  generation: safeId.nullable(),
  confirmed: z.boolean(),
  present: count,
  count: count.nullable(),
  // Not an enum: a newer master may refuse for a reason this agent does not know yet.
  error: z.string().regex(NAME_PATTERN).max(BARRIER_REASON_BYTES_MAX).nullable(),
};
export const barrierReleaseShape = {
  type: z.literal(BarrierFrameType.barrierRelease),
  name: barrierName,
  generation: safeId,
  exitCode,
  requestIds: ids,
  releaseAtNs: instantNs.optional(),
};
export const barrierReleaseAckShape = {
  type: z.literal(BarrierFrameType.barrierReleaseAck),
  generation: safeId,
  requestIds: ids,
};
export const barrierWithdrawShape = {
  type: z.literal(BarrierFrameType.barrierWithdraw),
  name: barrierName,
  requestId: safeId,
};
export const barrierReleasedShape = {
  type: z.literal(BarrierFrameType.barrierReleased),
  name: barrierName,
  generation: safeId,
  exitCode,
  releaseAtNs: instantNs.optional(),
};

/** All six, in type-code order, for the codec's discriminatedUnion. */
export const BARRIER_BODY_SHAPES = [
  barrierJoinShape,
  barrierAckShape,
  barrierReleaseShape,
  barrierReleaseAckShape,
  barrierWithdrawShape,
  barrierReleasedShape,
] as const;
