// Frame codec: msgpack maps in, validated frames out. Decoding never throws: a bad datagram
// yields a reason, which the caller counts and drops (the library throws on truncated input and
// accepts exotic types, so everything is caught and the decoded shape is checked strictly).
import { Packr, Unpackr } from 'msgpackr';
import { z } from 'zod';
import { FrameType, type Frame } from '../core/frames.ts';
import {
  barrierAckShape,
  barrierJoinShape,
  barrierReleaseAckShape,
  barrierReleasedShape,
  barrierReleaseShape,
  barrierWithdrawShape,
} from '../core/barrier/frames.ts';
import {
  CLOCK_CLASS_MAX,
  CLUSTER_BYTES_MAX,
  CORRECTION_NS_MAX,
  ERROR_BOUND_NS_MAX,
  COUNTER_MAX,
  FRAME_BYTES_MAX,
  NODE_ID_BYTES_MAX,
  PRIORITY_MAX,
  PROBES_PER_ROUND_MAX,
  PROTOCOL_VERSION,
  PROVISIONAL_NS_MAX,
  TIMESTAMP_NS_MAX,
  UPSTREAM_STRATUM_MAX,
  VIEW_MEMBERS_MAX,
  VIEW_PAGE_ENTRIES_MAX,
} from '../core/limits.ts';

export type RejectReason =
  | 'oversize'
  | 'malformed'
  | 'not-a-map'
  | 'bad-version'
  | 'unknown-type'
  | 'bad-field';

export const REJECT_REASONS: readonly RejectReason[] = [
  'oversize',
  'malformed',
  'not-a-map',
  'bad-version',
  'unknown-type',
  'bad-field',
];

export type DecodeResult = { ok: true; frame: Frame } | { ok: false; reason: RejectReason; detail: string };

const packr = new Packr({ useRecords: false, variableMapSize: true });
const unpackr = new Unpackr({
  useRecords: false,
  structuredClone: false,
  mapsAsObjects: true,
  int64AsType: 'bigint',
});

// Printable ASCII without spaces: byte length equals character length, and ids print safely in logs.
const identifier = (maxBytes: number) => z.string().regex(/^[\x21-\x7e]+$/).max(maxBytes);
// Terms grow past 2^32 (they carry the winner's slot in their low bits), where msgpack packs them
// as 64-bit integers that decode as bigint: accept both, up to what a float64 holds exactly.
const counter = z
  .union([z.number().int().min(0).max(COUNTER_MAX), z.bigint().min(0n).max(BigInt(COUNTER_MAX))])
  .transform((value) => Number(value));
// 64-bit integers arrive as bigint; small ones may have been packed as plain numbers by other encoders.
const timestampNs = z
  .union([z.bigint(), z.number().int().min(0).max(Number.MAX_SAFE_INTEGER)])
  .transform((value) => BigInt(value))
  .refine((value) => value >= 0n && value <= TIMESTAMP_NS_MAX, 'timestamp out of range');

const header = {
  v: z.literal(PROTOCOL_VERSION),
  cluster: identifier(CLUSTER_BYTES_MAX),
  from: identifier(NODE_ID_BYTES_MAX),
  prio: z.number().int().min(0).max(PRIORITY_MAX),
  cls: z.number().int().min(0).max(CLOCK_CLASS_MAX).optional(),
  term: counter,
  boot: counter,
  seq: counter,
  to: z.union([identifier(NODE_ID_BYTES_MAX), z.literal('')]),
  toBoot: counter,
  txNs: timestampNs,
};

const frameSchema = z.discriminatedUnion('type', [
  z
    .object({
      ...header,
      type: z.literal(FrameType.hello),
      wantReply: z.boolean(),
      role: z.number().int().min(0).max(2),
      masterId: identifier(NODE_ID_BYTES_MAX).nullable(),
      masterPrio: z.number().int().min(0).max(PRIORITY_MAX).nullable(),
      masterCls: z.number().int().min(0).max(CLOCK_CLASS_MAX).optional(),
    })
    .strict(),
  z
    .object({
      ...header,
      type: z.literal(FrameType.election),
      hopId: counter,
      candidateId: identifier(NODE_ID_BYTES_MAX),
      candidatePrio: z.number().int().min(0).max(PRIORITY_MAX),
      candidateCls: z.number().int().min(0).max(CLOCK_CLASS_MAX).optional(),
    })
    .strict(),
  z.object({ ...header, type: z.literal(FrameType.electionAck), hopId: counter }).strict(),
  z.object({ ...header, type: z.literal(FrameType.coordinator), algorithm: z.number().int().min(0).max(2) }).strict(),
  z.object({ ...header, type: z.literal(FrameType.bully) }).strict(),
  z.object({ ...header, type: z.literal(FrameType.bullyOk) }).strict(),
  z
    .object({
      ...header,
      type: z.literal(FrameType.poll),
      round: counter,
      probe: z.number().int().min(0).max(PROBES_PER_ROUND_MAX - 1),
    })
    .strict(),
  z
    .object({
      ...header,
      type: z.literal(FrameType.reply),
      round: counter,
      probe: z.number().int().min(0).max(PROBES_PER_ROUND_MAX - 1),
      pollTxNs: timestampNs,
      rxNs: timestampNs,
      synced: z.boolean(),
      provisionalNs: z.number().finite().min(-PROVISIONAL_NS_MAX).max(PROVISIONAL_NS_MAX).optional(),
    })
    .strict(),
  z
    .object({
      ...header,
      type: z.literal(FrameType.correct),
      round: counter,
      correctionNs: z.number().finite().min(-CORRECTION_NS_MAX).max(CORRECTION_NS_MAX),
      delayNs: z.number().finite().min(0).max(CORRECTION_NS_MAX).optional(),
      boundNs: z.number().finite().min(0).max(ERROR_BOUND_NS_MAX).optional(),
      refStratum: z.number().int().min(1).max(UPSTREAM_STRATUM_MAX).optional(),
      refLeap: z.number().int().min(0).max(2).optional(),
    })
    .strict(),
  z.object({ ...header, type: z.literal(FrameType.timeQuery), queryId: counter }).strict(),
  z.object({ ...header, type: z.literal(FrameType.leave) }).strict(),
  z
    .object({
      ...header,
      type: z.literal(FrameType.timeAnswer),
      queryId: counter,
      queryTxNs: timestampNs,
      rxNs: timestampNs,
    })
    .strict(),
  z.object({ ...header, type: z.literal(FrameType.viewQuery), queryId: counter, start: z.number().int().min(0).max(VIEW_MEMBERS_MAX), round: counter }).strict(),
  z
    .object({
      ...header,
      type: z.literal(FrameType.view),
      queryId: counter,
      round: counter,
      roundAgoMs: z.number().int().min(0).max(COUNTER_MAX),
      averageNs: z.number().finite().min(-CORRECTION_NS_MAX).max(CORRECTION_NS_MAX),
      total: z.number().int().min(0).max(VIEW_MEMBERS_MAX),
      start: z.number().int().min(0).max(VIEW_MEMBERS_MAX),
      members: z
        .array(
          z.tuple([
            identifier(NODE_ID_BYTES_MAX),
            z.number().int().min(0).max(255),
            z.number().finite().min(-CORRECTION_NS_MAX).max(CORRECTION_NS_MAX).nullable(),
            z.number().finite().min(0).max(CORRECTION_NS_MAX).nullable(),
            z.number().int().min(0).max(COUNTER_MAX).nullable(),
          ]),
        )
        .max(VIEW_PAGE_ENTRIES_MAX),
    })
    .strict()
    .refine((frame) => frame.start + frame.members.length <= frame.total, 'page runs past the total'),
  z.object({ ...header, ...barrierJoinShape }).strict(),
  z.object({ ...header, ...barrierAckShape }).strict(),
  z.object({ ...header, ...barrierReleaseShape }).strict(),
  z.object({ ...header, ...barrierReleaseAckShape }).strict(),
  z.object({ ...header, ...barrierWithdrawShape }).strict(),
  z.object({ ...header, ...barrierReleasedShape }).strict(),
]);

const knownTypes = new Set<unknown>(Object.values(FrameType));

export function decodeFrame(datagram: Uint8Array): DecodeResult {
  if (datagram.length > FRAME_BYTES_MAX) {
    return { ok: false, reason: 'oversize', detail: `${datagram.length} bytes > ${FRAME_BYTES_MAX}` };
  }
  let value: unknown;
  try {
    value = unpackr.unpack(datagram);
  } catch (error) {
    return { ok: false, reason: 'malformed', detail: error instanceof Error ? error.message : String(error) };
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value) || Object.getPrototypeOf(value) !== Object.prototype) {
    return { ok: false, reason: 'not-a-map', detail: `decoded ${value === null ? 'null' : typeof value}` };
  }
  // A msgpackr record (ext 0x72) also decodes to a plain object; the wire format is a msgpack map,
  // so the datagram must start with a map marker (fixmap 0x80-0x8f, map16 0xde, map32 0xdf).
  const first = datagram[0] as number;
  if (!((first >= 0x80 && first <= 0x8f) || first === 0xde || first === 0xdf)) {
    return { ok: false, reason: 'not-a-map', detail: `top-level msgpack byte 0x${first.toString(16)}` };
  }
  const record = value as Record<string, unknown>;
  if (record.v !== PROTOCOL_VERSION) {
    return { ok: false, reason: 'bad-version', detail: `version ${String(record.v)}` };
  }
  if (!knownTypes.has(record.type)) {
    return { ok: false, reason: 'unknown-type', detail: `type ${String(record.type)}` };
  }
  const parsed = frameSchema.safeParse(record);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    return { ok: false, reason: 'bad-field', detail: issue ? `${issue.path.join('.') || '(frame)'}: ${issue.message}` : 'invalid' };
  }
  return { ok: true, frame: parsed.data as Frame };
}

export class FrameTooLargeError extends Error {
  readonly code = 'EFRAMESIZE';
}

/** Encodes a complete frame. Throws only on a programming error (a frame over the size limit). */
export function encodeFrame(frame: Frame): Buffer {
  const bytes = packr.pack(frame);
  if (bytes.length > FRAME_BYTES_MAX) {
    throw new FrameTooLargeError(`frame type ${frame.type} encodes to ${bytes.length} bytes > ${FRAME_BYTES_MAX}`);
  }
  return bytes;
}
