// Frame fuzzing (issue 7, "Hostile and broken input"): fast-check generators of random, hostile
// and mutated datagrams, and the properties that the decoder and the protocol core must keep.
// Shared by test/fuzz.test.ts (fixed seeds, part of npm test) and scripts/fuzz.ts (long runs).
// Everything is pure and in-process: no sockets, no timers, no wall clock.
import { isDeepStrictEqual } from 'node:util';
import fc from 'fast-check';
import { Packr } from 'msgpackr';
import { BarrierFrameType } from '../src/core/barrier/frames.ts';
import { nodeConfig } from '../src/core/defaults.ts';
import { FrameType, type Frame, type OutgoingFrame } from '../src/core/frames.ts';
import {
  BARRIER_ERROR_CODE_MAX,
  BARRIER_IDS_PER_FRAME_MAX,
  BARRIER_NAME_BYTES_MAX,
  BARRIER_REASON_BYTES_MAX,
  CLUSTER_BYTES_MAX,
  CORRECTION_NS_MAX,
  COUNTER_MAX,
  FRAME_BYTES_MAX,
  NODE_ID_BYTES_MAX,
  PRIORITY_MAX,
  PROBES_PER_ROUND_MAX,
  PROTOCOL_VERSION,
  TIMESTAMP_NS_MAX,
  VIEW_MEMBERS_MAX,
  VIEW_PAGE_ENTRIES_MAX,
} from '../src/core/limits.ts';
import { ProtocolNode, type NodeConfig, type NodeStatus } from '../src/core/node.ts';
import type { Endpoint } from '../src/core/types.ts';
import { Simulation } from '../src/sim/simulation.ts';
import { decodeFrame, encodeFrame, REJECT_REASONS } from '../src/wire/codec.ts';

// ------------------------------------------------------------------------------------ basics

/** Frames (datagrams or decoded frames) fed to the decoder or to a node, per property. */
export interface FuzzStats {
  frames: number;
  /** Datagrams the decoder accepted. */
  accepted: number;
  /** Frames that reached ProtocolNode.receive. */
  delivered: number;
}

export function newStats(): FuzzStats {
  return { frames: 0, accepted: 0, delivered: 0 };
}

/** The codec's own packing options (src/wire/codec.ts). */
export const packr = new Packr({ useRecords: false, variableMapSize: true });
/** Another encoder's choices: 32-bit floats where exact (frames may legitimately arrive like this). */
const packrFloat32 = new Packr({ useRecords: false, variableMapSize: true, useFloat32: 1 });

export function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');
}

/** JSON with bigints, -0, NaN and Infinity spelled out (for failure messages). */
export function show(value: unknown): string {
  return JSON.stringify(value, (_key, item: unknown) => {
    if (typeof item === 'bigint') return `${item}n`;
    if (typeof item === 'number' && (!Number.isFinite(item) || Object.is(item, -0))) return Object.is(item, -0) ? '-0' : String(item);
    if (item === undefined) return 'undefined';
    if (item instanceof Uint8Array) return `bytes:${hex(item)}`;
    return item;
  });
}

/** mulberry32: a fast seeded PRNG for mutation bursts (fast-check draws the seed). */
export function prng(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// ------------------------------------------------------------------------------------ frame shapes

type FieldKind =
  | 'counter'
  | 'counterNullable'
  | 'timestamp'
  | 'prio'
  | 'prioNullable'
  | 'id'
  | 'idNullable'
  | 'bool'
  | 'role'
  | 'algorithm'
  | 'probe'
  | 'correction'
  | 'viewIndex'
  | 'agoMs'
  | 'members'
  | 'name'
  | 'exitCode'
  | 'count'
  | 'countNullable'
  | 'ids'
  | 'reason'
  | 'toId';

/** Every frame type's body fields (src/core/frames.ts, src/core/barrier/frames.ts). */
export const BODY_FIELDS: Record<number, Record<string, FieldKind>> = {
  [FrameType.hello]: { wantReply: 'bool', role: 'role', masterId: 'idNullable', masterPrio: 'prioNullable' },
  [FrameType.election]: { hopId: 'counter', candidateId: 'id', candidatePrio: 'prio' },
  [FrameType.electionAck]: { hopId: 'counter' },
  [FrameType.coordinator]: { algorithm: 'algorithm' },
  [FrameType.bully]: {},
  [FrameType.bullyOk]: {},
  [FrameType.poll]: { round: 'counter', probe: 'probe' },
  [FrameType.reply]: { round: 'counter', probe: 'probe', pollTxNs: 'timestamp', rxNs: 'timestamp', synced: 'bool' },
  [FrameType.correct]: { round: 'counter', correctionNs: 'correction' },
  [FrameType.timeQuery]: { queryId: 'counter' },
  [FrameType.timeAnswer]: { queryId: 'counter', queryTxNs: 'timestamp', rxNs: 'timestamp' },
  [FrameType.leave]: {},
  [FrameType.viewQuery]: { queryId: 'counter', start: 'viewIndex', round: 'counter' },
  [FrameType.view]: { queryId: 'counter', round: 'counter', roundAgoMs: 'agoMs', averageNs: 'correction', total: 'viewIndex', start: 'viewIndex', members: 'members' },
  [BarrierFrameType.barrierJoin]: { name: 'name', requestId: 'counter', count: 'countNullable', errorCode: 'exitCode', generation: 'counterNullable' },
  [BarrierFrameType.barrierAck]: { requestId: 'counter', name: 'name', generation: 'counterNullable', confirmed: 'bool', present: 'count', count: 'countNullable', error: 'reason' },
  [BarrierFrameType.barrierRelease]: { name: 'name', generation: 'counter', exitCode: 'exitCode', requestIds: 'ids' },
  [BarrierFrameType.barrierReleaseAck]: { generation: 'counter', requestIds: 'ids' },
  [BarrierFrameType.barrierWithdraw]: { name: 'name', requestId: 'counter' },
  [BarrierFrameType.barrierReleased]: { name: 'name', generation: 'counter', exitCode: 'exitCode' },
};

/**
 * The header is being extended (protocol 2: the sender's boot id and sequence number for replay
 * protection, and the addressee `to`). Which of these the codec requires is probed once at load,
 * so the generators follow the codec. Like txNs, boot and seq may be stamped by the shell.
 */
const OPTIONAL_HEADER: Record<string, [FieldKind, unknown]> = { boot: ['counter', 1], seq: ['counter', 1], to: ['toId', ''] };
/** For a header field this file does not know yet: the first value the codec takes tells its kind. */
const PROBE_VALUES: [FieldKind, unknown][] = [['counter', 0], ['toId', ''], ['id', 'a'], ['timestamp', 0n], ['bool', false], ['idNullable', null]];
function probeHeader(): string[] {
  const present: string[] = [];
  for (let attempt = 0; attempt < 16; attempt += 1) {
    const frame: Record<string, unknown> = { v: PROTOCOL_VERSION, type: FrameType.leave, cluster: 'default', from: 'a', prio: 0, term: 0, txNs: 0n };
    for (const key of present) frame[key] = (OPTIONAL_HEADER[key] as [FieldKind, unknown])[1];
    const result = decodeFrame(packr.pack(frame));
    if (result.ok) return present;
    const key = /^([A-Za-z]+):/.exec(result.detail)?.[1];
    if (key === undefined || key in frame) throw new Error(`fuzz setup: cannot build a valid header (${result.reason}: ${result.detail})`);
    if (!(key in OPTIONAL_HEADER)) {
      const accepted = PROBE_VALUES.find(([, value]) => {
        const retry = decodeFrame(packr.pack({ ...frame, [key]: value }));
        return retry.ok || !retry.detail.startsWith(`${key}:`);
      });
      if (accepted === undefined) throw new Error(`fuzz setup: no value fits header field ${key}`);
      OPTIONAL_HEADER[key] = accepted;
    }
    present.push(key);
  }
  throw new Error('fuzz setup: header probe did not settle');
}
const PROBED_HEADER = probeHeader();
const REPLAY_FIELDS = PROBED_HEADER.includes('seq');
const HEADER_FIELDS: Record<string, FieldKind> = {
  cluster: 'id',
  from: 'id',
  prio: 'prio',
  term: 'counter',
  ...Object.fromEntries(PROBED_HEADER.map((key) => [key, (OPTIONAL_HEADER[key] as [FieldKind, unknown])[0]])),
  txNs: 'timestamp',
};
const SHELL_STAMPED = REPLAY_FIELDS ? ['txNs', 'boot', 'seq'] : ['txNs'];
let shellSeq = 0;
/** What a shell adds to an outgoing frame of the core (fields the core set itself are kept). */
export function stampOutgoing(frame: OutgoingFrame, txNs: bigint): Frame {
  shellSeq += 1;
  const fields = frame as unknown as Record<string, unknown>;
  return (REPLAY_FIELDS ? { boot: 1, seq: shellSeq, to: '', toBoot: 0, ...fields, txNs } : { ...fields, txNs }) as unknown as Frame;
}
/** Header fields of a frame built by the harness (boot/seq increase, as a live sender's do). */
function replayHeader(): Record<string, number | string> {
  shellSeq += 1;
  return REPLAY_FIELDS ? { boot: 1, seq: shellSeq, to: '', toBoot: 0 } : {};
}

export const TYPE_CODES: number[] = Object.keys(BODY_FIELDS).map(Number);

// ------------------------------------------------------------------------------------ limits check

const PRINTABLE = /^[\x21-\x7e]+$/;
const isIdentifier = (value: unknown, maxBytes: number) => typeof value === 'string' && PRINTABLE.test(value) && value.length <= maxBytes;
const isSafeCounter = (value: unknown) => typeof value === 'number' && Number.isSafeInteger(value) && value >= 0 && value <= COUNTER_MAX;
const isIntIn = (value: unknown, min: number, max: number) => typeof value === 'number' && Number.isInteger(value) && value >= min && value <= max;
const isFiniteIn = (value: unknown, min: number, max: number) => typeof value === 'number' && Number.isFinite(value) && value >= min && value <= max;

function fieldProblem(kind: FieldKind, value: unknown): string | null {
  const ok = (() => {
    switch (kind) {
      case 'counter':
        return isSafeCounter(value);
      case 'counterNullable':
        return value === null || isSafeCounter(value);
      case 'timestamp':
        return typeof value === 'bigint' && value >= 0n && value <= TIMESTAMP_NS_MAX;
      case 'prio':
        return isIntIn(value, 0, PRIORITY_MAX);
      case 'prioNullable':
        return value === null || isIntIn(value, 0, PRIORITY_MAX);
      case 'id':
        return isIdentifier(value, NODE_ID_BYTES_MAX);
      case 'idNullable':
        return value === null || isIdentifier(value, NODE_ID_BYTES_MAX);
      case 'bool':
        return typeof value === 'boolean';
      case 'role':
      case 'algorithm':
        return isIntIn(value, 0, 2);
      case 'probe':
        return isIntIn(value, 0, PROBES_PER_ROUND_MAX - 1);
      case 'correction':
        return isFiniteIn(value, -CORRECTION_NS_MAX, CORRECTION_NS_MAX);
      case 'viewIndex':
        return isIntIn(value, 0, VIEW_MEMBERS_MAX);
      case 'agoMs':
        return isIntIn(value, 0, COUNTER_MAX);
      case 'members':
        return (
          Array.isArray(value) &&
          value.length <= VIEW_PAGE_ENTRIES_MAX &&
          value.every(
            (entry) =>
              Array.isArray(entry) &&
              entry.length === 5 &&
              isIdentifier(entry[0], NODE_ID_BYTES_MAX) &&
              isIntIn(entry[1], 0, 255) &&
              (entry[2] === null || isFiniteIn(entry[2], -CORRECTION_NS_MAX, CORRECTION_NS_MAX)) &&
              (entry[3] === null || isFiniteIn(entry[3], 0, CORRECTION_NS_MAX)) &&
              (entry[4] === null || isIntIn(entry[4], 0, COUNTER_MAX)),
          )
        );
      case 'name':
        return isIdentifier(value, BARRIER_NAME_BYTES_MAX);
      case 'exitCode':
        return isIntIn(value, 0, BARRIER_ERROR_CODE_MAX);
      case 'count':
        return isIntIn(value, 0, 0x7fff_ffff);
      case 'countNullable':
        return value === null || isIntIn(value, 0, 0x7fff_ffff);
      case 'ids':
        return Array.isArray(value) && value.length <= BARRIER_IDS_PER_FRAME_MAX && value.every(isSafeCounter);
      case 'reason':
        return value === null || isIdentifier(value, BARRIER_REASON_BYTES_MAX);
      case 'toId':
        return value === '' || isIdentifier(value, NODE_ID_BYTES_MAX);
    }
  })();
  return ok ? null : `${kind} out of limits: ${show(value)}`;
}

/** Why a decoded (or outgoing) frame breaks src/core/limits.ts, or null. */
export function frameLimitProblem(frame: Record<string, unknown>, withTxNs = true): string | null {
  if (frame.v !== PROTOCOL_VERSION) return `v ${show(frame.v)}`;
  const body = BODY_FIELDS[frame.type as number];
  if (body === undefined) return `unknown type ${show(frame.type)}`;
  if (!isIdentifier(frame.cluster, CLUSTER_BYTES_MAX)) return `cluster ${show(frame.cluster)}`;
  const expected: Record<string, FieldKind> = { ...HEADER_FIELDS, ...body };
  // An outgoing frame of the core: the shell stamps these (when the core did not).
  if (!withTxNs) for (const key of SHELL_STAMPED) if (!(key in frame)) delete expected[key];
  const keys = Object.keys(frame).filter((key) => key !== 'v' && key !== 'type');
  for (const key of keys) if (!(key in expected)) return `extra key ${key}`;
  for (const [key, kind] of Object.entries(expected)) {
    if (key === 'cluster') continue;
    if (!(key in frame)) return `missing key ${key}`;
    const problem = fieldProblem(kind, frame[key]);
    if (problem !== null) return `${key}: ${problem}`;
  }
  if (frame.type === FrameType.view) {
    const view = frame as { start: number; total: number; members: unknown[] };
    if (view.start + view.members.length > view.total) return 'view page runs past its total';
  }
  return null;
}

// ------------------------------------------------------------------------------------ value arbitraries

const TWO_POW_53 = 2 ** 53;

/** Values that break any field: wrong types, non-finite, out of every range. */
const anyHostile: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom<unknown>(
    Number.NaN,
    Number.POSITIVE_INFINITY,
    Number.NEGATIVE_INFINITY,
    -0,
    -1,
    0.5,
    -0.5,
    TWO_POW_53,
    TWO_POW_53 + 2,
    2 ** 63,
    2 ** 64,
    1e308,
    -1e308,
    Number.MIN_VALUE,
    -Number.MAX_SAFE_INTEGER,
    BigInt(Number.MAX_SAFE_INTEGER) + 1n,
    (1n << 63n) - 1n,
    1n << 63n,
    (1n << 64n) - 1n,
    -1n,
    -(1n << 63n),
    '',
    ' ',
    'with space',
    'x'.repeat(65),
    'é'.repeat(40),
    'ノード',
    '\u0000',
    '\u{1F600}',
    true,
    false,
    null,
    undefined,
    [],
    {},
    new Uint8Array([1, 2, 3]),
  ),
  fc.double(),
  fc.bigInt({ min: -(1n << 64n), max: 1n << 64n }),
  fc.string({ maxLength: 80, unit: 'binary' }),
  fc.integer(),
);

const printableUpTo = (max: number) => fc.string({ minLength: 1, maxLength: max, unit: fc.integer({ min: 0x21, max: 0x7e }).map((code) => String.fromCharCode(code)) });

/** Ids a node under test knows: itself, a master, peers; and odd valid ones. */
export const KNOWN_IDS = ['self', 'm', 'a', 'b', 'c'];
const oddIds = ['!', '~', '~'.repeat(NODE_ID_BYTES_MAX), '!'.repeat(NODE_ID_BYTES_MAX), 'zzzz', '0', 'default'];
const validId = fc.oneof({ weight: 4, arbitrary: fc.constantFrom(...KNOWN_IDS) }, { weight: 2, arbitrary: fc.constantFrom(...oddIds) }, { weight: 1, arbitrary: printableUpTo(NODE_ID_BYTES_MAX) });

const validCounter = fc.oneof(
  fc.constantFrom(0, 1, 2, 3, 2 ** 31, 2 ** 32 - 1, 2 ** 32, 2 ** 52, COUNTER_MAX - 1, COUNTER_MAX),
  fc.nat({ max: 100 }),
  fc.integer({ min: 0, max: COUNTER_MAX }),
  fc.bigInt({ min: 0n, max: BigInt(COUNTER_MAX) }),
);
const validTimestamp = fc.oneof(
  fc.constantFrom(0n, 1n, TIMESTAMP_NS_MAX, TIMESTAMP_NS_MAX - 1n, 1_790_000_000_000_000_000n, 9_000_000_000_000_000_000n),
  fc.bigInt({ min: 0n, max: TIMESTAMP_NS_MAX }),
  // Small ones packed as plain numbers by other encoders.
  fc.integer({ min: 0, max: COUNTER_MAX }),
);
const validCorrection = fc.oneof(
  fc.constantFrom(0, -0, 1, -1, CORRECTION_NS_MAX, -CORRECTION_NS_MAX, 600e9, -600e9, Number.MIN_VALUE, 0.5),
  fc.double({ min: -CORRECTION_NS_MAX, max: CORRECTION_NS_MAX, noNaN: true }),
  fc.integer({ min: -1_000_000_000, max: 1_000_000_000 }),
);

function validMembers(): fc.Arbitrary<unknown[]> {
  const entry = fc.tuple(
    validId,
    fc.integer({ min: 0, max: 255 }),
    fc.option(validCorrection, { nil: null }),
    fc.option(fc.oneof(fc.constantFrom(0, CORRECTION_NS_MAX), fc.double({ min: 0, max: CORRECTION_NS_MAX, noNaN: true })), { nil: null }),
    fc.option(fc.oneof(fc.constantFrom(0, COUNTER_MAX), fc.nat()), { nil: null }),
  );
  return fc.array(entry, { maxLength: VIEW_PAGE_ENTRIES_MAX, size: 'small' });
}

function validValue(kind: FieldKind): fc.Arbitrary<unknown> {
  switch (kind) {
    case 'counter':
      return validCounter;
    case 'counterNullable':
      return fc.option(validCounter, { nil: null });
    case 'timestamp':
      return validTimestamp;
    case 'prio':
      return fc.oneof(fc.constantFrom(0, 100, PRIORITY_MAX), fc.integer({ min: 0, max: PRIORITY_MAX }));
    case 'prioNullable':
      return fc.option(fc.oneof(fc.constantFrom(0, 100, PRIORITY_MAX), fc.integer({ min: 0, max: PRIORITY_MAX })), { nil: null });
    case 'id':
      return validId;
    case 'idNullable':
      return fc.option(validId, { nil: null });
    case 'bool':
      return fc.boolean();
    case 'role':
    case 'algorithm':
      return fc.integer({ min: 0, max: 2 });
    case 'probe':
      return fc.oneof(fc.constantFrom(0, 1, 15, PROBES_PER_ROUND_MAX - 1), fc.integer({ min: 0, max: PROBES_PER_ROUND_MAX - 1 }));
    case 'correction':
      return validCorrection;
    case 'viewIndex':
      return fc.oneof(fc.constantFrom(0, 1, 2, 64, VIEW_MEMBERS_MAX), fc.integer({ min: 0, max: VIEW_MEMBERS_MAX }));
    case 'agoMs':
      return fc.oneof(fc.constantFrom(0, COUNTER_MAX), fc.nat());
    case 'members':
      return validMembers();
    case 'name':
      return fc.oneof(fc.constantFrom('b', 'x'.repeat(BARRIER_NAME_BYTES_MAX)), printableUpTo(BARRIER_NAME_BYTES_MAX));
    case 'exitCode':
      return fc.integer({ min: 0, max: BARRIER_ERROR_CODE_MAX });
    case 'count':
      return fc.oneof(fc.constantFrom(0, 1, 4096, 0x7fff_ffff), fc.integer({ min: 0, max: 0x7fff_ffff }));
    case 'countNullable':
      return fc.option(fc.oneof(fc.constantFrom(0, 1, 4096, 0x7fff_ffff), fc.integer({ min: 0, max: 0x7fff_ffff })), { nil: null });
    case 'ids':
      return fc.array(validCounter, { maxLength: BARRIER_IDS_PER_FRAME_MAX, size: 'small' });
    case 'reason':
      return fc.option(fc.oneof(fc.constantFrom('bad-name', 'withdrawn', 'x'.repeat(BARRIER_REASON_BYTES_MAX)), printableUpTo(BARRIER_REASON_BYTES_MAX)), { nil: null });
    case 'toId':
      return fc.oneof(fc.constant(''), validId);
  }
}

/** Just past each kind's limits (and the general hostile pool). */
function hostileValue(kind: FieldKind): fc.Arbitrary<unknown> {
  const edge: Partial<Record<FieldKind, unknown[]>> = {
    counter: [-1, COUNTER_MAX + 1, TWO_POW_53, BigInt(COUNTER_MAX) + 1n, -1n, 1.5],
    counterNullable: [-1, TWO_POW_53, BigInt(COUNTER_MAX) + 1n],
    timestamp: [-1n, TIMESTAMP_NS_MAX + 1n, (1n << 64n) - 1n, -1, 1.5, 2 ** 63, 18_000_000_000_000_000_000n],
    prio: [-1, PRIORITY_MAX + 1, 1.5, 2 ** 32],
    prioNullable: [-1, PRIORITY_MAX + 1],
    id: ['', 'x'.repeat(NODE_ID_BYTES_MAX + 1), 'a b', 'nöde', 'ノード', '\t', 'a\u0000'],
    idNullable: ['', 'x'.repeat(NODE_ID_BYTES_MAX + 1), 'nöde'],
    role: [-1, 3, 255, 1.5],
    algorithm: [-1, 3, 2 ** 31],
    probe: [-1, PROBES_PER_ROUND_MAX, 1000, 1.5],
    correction: [CORRECTION_NS_MAX * 2, -CORRECTION_NS_MAX * 2, Number.NaN, Number.POSITIVE_INFINITY, 1e300, 9_000_000_000_000_000_000n],
    viewIndex: [-1, VIEW_MEMBERS_MAX + 1, 2 ** 32],
    agoMs: [-1, TWO_POW_53, 0.5],
    members: [
      Array.from({ length: VIEW_PAGE_ENTRIES_MAX + 1 }, (_, index) => [`n${index}`, 0, 0, 0, 0]),
      [['a', 0, 0, 0]],
      [['a', 256, 0, 0, 0]],
      [['a', 0, Number.NaN, 0, 0]],
      [['a', 0, 0, -1, 0]],
      [['a', 0, 0, 0, 0, 'extra']],
      [{ nodeId: 'a' }],
    ],
    name: ['', 'x'.repeat(BARRIER_NAME_BYTES_MAX + 1), 'with space', 'ñ'],
    exitCode: [-1, BARRIER_ERROR_CODE_MAX + 1, 255, 1.5],
    count: [-1, 0x8000_0000, 1.5],
    countNullable: [-1, 0x8000_0000],
    ids: [Array.from({ length: BARRIER_IDS_PER_FRAME_MAX + 1 }, (_, index) => index), [-1], [TWO_POW_53], [1.5], ['1']],
    reason: ['x'.repeat(BARRIER_REASON_BYTES_MAX + 1), 'with space', ''],
    toId: ['x'.repeat(NODE_ID_BYTES_MAX + 1), 'with space', 'nöde'],
  };
  const edges = edge[kind] ?? [];
  return edges.length > 0 ? fc.oneof({ weight: 2, arbitrary: fc.constantFrom(...edges) }, { weight: 1, arbitrary: anyHostile }) : anyHostile;
}

/** One field's value: mostly within limits, now and then hostile. */
function fieldValue(kind: FieldKind, hostileWeight: number): fc.Arbitrary<unknown> {
  return fc.oneof({ weight: 10, arbitrary: validValue(kind) }, { weight: hostileWeight, arbitrary: hostileValue(kind) });
}

export interface FrameOptions {
  /** Relative weight (against 10) of a hostile value per field; 0: every field within limits. */
  hostileWeight: number;
  /** Structural damage (wrong version/type/cluster, extra and missing keys): 0..1 chance. */
  structural: boolean;
  cluster: string;
}

const frameArbitraries = new Map<string, fc.Arbitrary<Record<string, unknown>>>();

/** A frame-shaped object of one type (arbitraries are built once per type and options). */
export function frameObjectOfType(type: number, options: FrameOptions): fc.Arbitrary<Record<string, unknown>> {
  const key = `${type} ${options.hostileWeight} ${options.structural} ${options.cluster}`;
  let arbitrary = frameArbitraries.get(key);
  if (arbitrary === undefined) {
    arbitrary = buildFrameObjectOfType(type, options);
    frameArbitraries.set(key, arbitrary);
  }
  return arbitrary;
}

function buildFrameObjectOfType(type: number, options: FrameOptions): fc.Arbitrary<Record<string, unknown>> {
  const fields = { ...HEADER_FIELDS, ...(BODY_FIELDS[type] as Record<string, FieldKind>) };
  const record: Record<string, fc.Arbitrary<unknown>> = {};
  for (const [key, kind] of Object.entries(fields)) record[key] = fieldValue(kind, options.hostileWeight);
  record.cluster = options.hostileWeight > 0 ? fc.oneof({ weight: 8, arbitrary: fc.constant(options.cluster) }, { weight: 1, arbitrary: validId }, { weight: 1, arbitrary: hostileValue('id') }) : fc.constant(options.cluster);
  const base = fc.record(record).map((body) => ({ v: PROTOCOL_VERSION, type, ...body }) as Record<string, unknown>);
  if (!options.structural) return base;
  const damage = fc.oneof(
    { weight: 6, arbitrary: fc.constant({ kind: 'none' as const }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('version' as const), value: fc.oneof(fc.constantFrom<unknown>(0, 2, 255, -1, '1', 1.0000001, 1n, null), anyHostile) }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('type' as const), value: fc.oneof(fc.constantFrom<unknown>(0, 21, 22, 255, 65535, -1, 7.5, '7', 7n, null), fc.integer(), anyHostile) }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('extra' as const), key: fc.oneof(fc.constantFrom('__proto__', 'constructor', 'toString', 'x', 'v2', ''), fc.string({ maxLength: 20 })), value: anyHostile }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('missing' as const), index: fc.nat() }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('padding' as const), bytes: fc.integer({ min: 1000, max: 1500 }) }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('long' as const), length: fc.integer({ min: 65, max: 2000 }), key: fc.constantFrom('from', 'cluster', 'candidateId', 'masterId', 'name') }) },
  );
  return fc.tuple(base, damage).map(([generated, hurt]) => {
    const frame = { ...generated }; // a copy: fast-check may reuse the generated value when shrinking
    switch (hurt.kind) {
      case 'version':
        frame.v = hurt.value;
        break;
      case 'type':
        frame.type = hurt.value;
        break;
      case 'extra':
        // defineProperty, so that '__proto__' becomes an own key that msgpackr packs.
        Object.defineProperty(frame, hurt.key, { value: hurt.value, enumerable: true, configurable: true, writable: true });
        break;
      case 'missing': {
        const keys = Object.keys(frame);
        delete frame[keys[hurt.index % keys.length] as string];
        break;
      }
      case 'padding':
        // Oversize: a valid frame otherwise, with a view page padded past 1200 bytes, or a long extra.
        if (Array.isArray(frame.members)) frame.members = Array.from({ length: Math.ceil(hurt.bytes / 70) }, (_, index) => ['p'.repeat(60), 0, index, 0, 0]);
        else frame.pad = 'p'.repeat(hurt.bytes);
        break;
      case 'long':
        if (hurt.key in frame) frame[hurt.key] = 'L'.repeat(hurt.length);
        break;
    }
    return frame;
  });
}

const anyTypeCode = fc.constantFrom(...TYPE_CODES);

/** (c) Frame objects of every type with hostile fields and structural damage. */
export function hostileFrameObject(cluster = 'default'): fc.Arbitrary<Record<string, unknown>> {
  return anyTypeCode.chain((type) => frameObjectOfType(type, { hostileWeight: 3, structural: true, cluster }));
}

/** Frame objects with every field within limits (they must decode). */
export function validFrameObject(cluster = 'default'): fc.Arbitrary<Record<string, unknown>> {
  return anyTypeCode.chain((type) => frameObjectOfType(type, { hostileWeight: 0, structural: false, cluster }));
}

/** Encodes a frame object the way a peer might: the codec's packer, sometimes with float32s. */
export function packObject(value: unknown, float32 = false): Uint8Array | null {
  try {
    return (float32 ? packrFloat32 : packr).pack(value);
  } catch {
    return null; // a value msgpackr cannot pack (then no peer could send it either)
  }
}

/** (a) Arbitrary bytes, often starting with a map marker to get past the first checks. */
export const bytesArb: fc.Arbitrary<Uint8Array> = fc.oneof(
  fc.uint8Array({ maxLength: 64 }),
  fc.uint8Array({ maxLength: FRAME_BYTES_MAX + 100, size: 'max' }),
  fc
    .tuple(fc.constantFrom(0x80, 0x81, 0x85, 0x86, 0x8f, 0xde, 0xdf, 0xc7, 0xd4, 0xd5, 0xd6, 0xd7, 0xd8, 0xc8, 0xc9), fc.uint8Array({ maxLength: 200 }))
    .map(([first, rest]) => Uint8Array.of(first, ...rest)),
);

const FRAME_KEYS = ['v', 'type', 'cluster', 'from', 'prio', 'term', 'txNs', ...new Set(Object.values(BODY_FIELDS).flatMap((fields) => Object.keys(fields)))];

/** (b) Arbitrary msgpack values: anything, and maps with frame keys and arbitrary values. */
export const msgpackValueArb: fc.Arbitrary<unknown> = fc.oneof(
  fc.anything({ withBigInt: true, withDate: true, withTypedArray: true, withMap: true, withSet: true, withNullPrototype: true, withBoxedValues: true, withSparseArray: true, maxDepth: 3 }),
  fc.dictionary(fc.oneof(fc.constantFrom(...FRAME_KEYS), fc.string({ maxLength: 8 })), fc.oneof(anyHostile, fc.anything({ withBigInt: true, maxDepth: 2 })), { maxKeys: 16 }).map((record) => ({
    v: PROTOCOL_VERSION,
    ...record,
  })),
  fc
    .record({ v: fc.constant(PROTOCOL_VERSION), type: anyTypeCode })
    .chain((head) => fc.dictionary(fc.constantFrom(...FRAME_KEYS), fc.oneof(anyHostile, validCounter, validId), { maxKeys: 14 }).map((rest) => ({ ...rest, ...head }))),
);

// ------------------------------------------------------------------------------------ mutations

export type Mutation =
  | { kind: 'flip'; at: number; bit: number }
  | { kind: 'set'; at: number; byte: number }
  | { kind: 'insert'; at: number; bytes: Uint8Array }
  | { kind: 'delete'; at: number; length: number }
  | { kind: 'truncate'; at: number }
  | { kind: 'splice'; at: number; from: number }
  | { kind: 'duplicate'; at: number; length: number };

/** Byte values that matter to msgpack: markers and lengths at their boundaries. */
const INTERESTING_BYTES = [0x00, 0x01, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xc1, 0xc2, 0xc3, 0xc4, 0xc7, 0xca, 0xcb, 0xcc, 0xcf, 0xd0, 0xd3, 0xd4, 0xd9, 0xdc, 0xdd, 0xde, 0xdf, 0xe0, 0xff];

export const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
  fc.record({ kind: fc.constant('set' as const), at: fc.nat(), byte: fc.oneof(fc.constantFrom(...INTERESTING_BYTES), fc.integer({ min: 0, max: 255 })) }),
  fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 8 }) }),
  fc.record({ kind: fc.constant('delete' as const), at: fc.nat(), length: fc.integer({ min: 1, max: 8 }) }),
  fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('splice' as const), at: fc.nat(), from: fc.nat() }),
  fc.record({ kind: fc.constant('duplicate' as const), at: fc.nat(), length: fc.integer({ min: 1, max: 64 }) }),
);

/** Applies one mutation; `other` is a second valid frame for splicing. */
export function applyMutation(bytes: Uint8Array, mutation: Mutation, other: Uint8Array): Uint8Array {
  const length = bytes.length;
  const at = length === 0 ? 0 : mutation.at % (length + 1);
  switch (mutation.kind) {
    case 'flip': {
      if (length === 0) return bytes;
      const copy = Uint8Array.from(bytes);
      copy[at % length] = (copy[at % length] as number) ^ (1 << mutation.bit);
      return copy;
    }
    case 'set': {
      if (length === 0) return bytes;
      const copy = Uint8Array.from(bytes);
      copy[at % length] = mutation.byte;
      return copy;
    }
    case 'insert':
      return concat(bytes.subarray(0, at), mutation.bytes, bytes.subarray(at));
    case 'delete':
      return concat(bytes.subarray(0, at), bytes.subarray(at + mutation.length));
    case 'truncate':
      return bytes.slice(0, at);
    case 'splice': {
      // The head of this frame, the tail of another (or the other frame appended whole).
      const from = other.length === 0 ? 0 : mutation.from % (other.length + 1);
      return concat(bytes.subarray(0, at), other.subarray(from));
    }
    case 'duplicate':
      return concat(bytes.subarray(0, at + mutation.length), bytes.subarray(at));
  }
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

/** A mutation drawn from a PRNG (for bursts of thousands per fast-check run). */
export function randomMutation(random: () => number): Mutation {
  const pick = random();
  const at = Math.floor(random() * 4096);
  if (pick < 0.3) return { kind: 'flip', at, bit: Math.floor(random() * 8) };
  if (pick < 0.5) {
    const byte = random() < 0.5 ? (INTERESTING_BYTES[Math.floor(random() * INTERESTING_BYTES.length)] as number) : Math.floor(random() * 256);
    return { kind: 'set', at, byte };
  }
  if (pick < 0.6) return { kind: 'insert', at, bytes: Uint8Array.from({ length: 1 + Math.floor(random() * 8) }, () => Math.floor(random() * 256)) };
  if (pick < 0.72) return { kind: 'delete', at, length: 1 + Math.floor(random() * 8) };
  if (pick < 0.82) return { kind: 'truncate', at };
  if (pick < 0.92) return { kind: 'splice', at, from: Math.floor(random() * 4096) };
  return { kind: 'duplicate', at, length: 1 + Math.floor(random() * 64) };
}

/** An encoded frame with every field within limits (and the codec's encoding of it). */
export const validEncodedArb: fc.Arbitrary<Uint8Array> = fc
  .tuple(validFrameObject(), fc.boolean())
  .map(([frame, float32]) => packObject(frame, float32))
  .filter((bytes): bytes is Uint8Array => bytes !== null && bytes.length <= FRAME_BYTES_MAX);

// ------------------------------------------------------------------------------------ decoder property

/**
 * The decoder's contract for one datagram: it never throws; an accepted frame is within every
 * limit, re-encodes with encodeFrame and decodes to an equal frame; a rejection has a known reason.
 * Throws (with the datagram in hex) when the contract is broken.
 */
export function checkDecode(bytes: Uint8Array, stats: FuzzStats): void {
  stats.frames += 1;
  let result: ReturnType<typeof decodeFrame>;
  try {
    result = decodeFrame(bytes);
  } catch (error) {
    throw new Error(`decodeFrame threw ${String(error)} on ${hex(bytes)}`);
  }
  if (!result.ok) {
    if (!REJECT_REASONS.includes(result.reason)) throw new Error(`unknown reject reason ${show(result.reason)} on ${hex(bytes)}`);
    if (typeof result.detail !== 'string') throw new Error(`reject without detail on ${hex(bytes)}`);
    return;
  }
  stats.accepted += 1;
  const frame = result.frame as unknown as Record<string, unknown>;
  const problem = frameLimitProblem(frame);
  if (problem !== null) throw new Error(`accepted a frame out of limits (${problem}): ${hex(bytes)} -> ${show(frame)}`);
  let again: Uint8Array;
  try {
    again = encodeFrame(result.frame);
  } catch (error) {
    throw new Error(`accepted frame does not re-encode (${String(error)}): ${hex(bytes)} -> ${show(frame)}`);
  }
  const second = decodeFrame(again);
  if (!second.ok) throw new Error(`re-encoded frame rejected (${second.reason}: ${second.detail}): ${hex(bytes)} -> ${hex(again)}`);
  // -0 is accepted where the limits allow 0 (a float32 -0 from another encoder) and re-encodes as 0.
  if (!isDeepStrictEqual(withoutNegativeZero(second.frame), withoutNegativeZero(result.frame))) throw new Error(`re-encoded frame differs: ${hex(bytes)} -> ${show(frame)} vs ${show(second.frame)}`);
}

/** -0 as 0, deeply (numerically equal; msgpackr packs -0 as the integer 0). */
export function withoutNegativeZero(value: unknown): unknown {
  if (Object.is(value, -0)) return 0;
  if (Array.isArray(value)) return value.map(withoutNegativeZero);
  if (typeof value === 'object' && value !== null && !(value instanceof Uint8Array)) return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, withoutNegativeZero(item)]));
  return value;
}

export interface DecoderProperties {
  bytes: fc.IPropertyWithHooks<[Uint8Array]>;
  msgpack: fc.IPropertyWithHooks<[unknown]>;
  structured: fc.IPropertyWithHooks<[Record<string, unknown>, boolean]>;
  mutated: fc.IPropertyWithHooks<[Uint8Array, Uint8Array, Mutation[]]>;
  burst: fc.IPropertyWithHooks<[Uint8Array, Uint8Array, number]>;
}

/** `burstSize` mutated datagrams per run of the `burst` property (stacked mutations from a seeded PRNG). */
export function decoderProperties(stats: FuzzStats, burstSize: number): DecoderProperties {
  return {
    bytes: fc.property(bytesArb, (bytes) => checkDecode(bytes, stats)),
    msgpack: fc.property(msgpackValueArb, (value) => {
      const bytes = packObject(value);
      if (bytes !== null) checkDecode(bytes, stats);
    }),
    structured: fc.property(hostileFrameObject(), fc.boolean(), (frame, float32) => {
      const bytes = packObject(frame, float32);
      if (bytes !== null) checkDecode(bytes, stats);
    }),
    mutated: fc.property(validEncodedArb, validEncodedArb, fc.array(mutationArb, { minLength: 1, maxLength: 6 }), (bytes, other, mutations) => {
      checkDecode(bytes, stats);
      let current = bytes;
      for (const mutation of mutations) {
        current = applyMutation(current, mutation, other);
        checkDecode(current, stats);
      }
    }),
    burst: fc.property(validEncodedArb, validEncodedArb, fc.integer(), (bytes, other, seed) => {
      const random = prng(seed);
      for (let index = 0; index < burstSize; index += 1) {
        let current = bytes;
        const depth = 1 + Math.floor(random() * 4);
        for (let step = 0; step < depth; step += 1) current = applyMutation(current, randomMutation(random), other);
        try {
          checkDecode(current, stats);
        } catch (error) {
          throw new Error(`burst datagram ${index}: ${(error as Error).message}`);
        }
      }
    }),
  };
}

// ------------------------------------------------------------------------------------ node core

/** The shell's clock for the node under test: a 2026 epoch plus the monotonic ms. */
const EPOCH_NS = 1_790_000_000_000_000_000n;
export const clockNs = (nowMs: number): bigint => EPOCH_NS + BigInt(Math.round(nowMs * 1e6));

export const endpointOf = (id: string): Endpoint => ({ address: '10.0.0.' + (KNOWN_IDS.indexOf(id) + 10), port: 7412 });
const FAKE_ENDPOINT: Endpoint = { address: '10.0.0.99', port: 7412 };

export type NodeState = 'fresh' | 'electing' | 'slave' | 'master' | 'master-mid-round';
export const NODE_STATES: NodeState[] = ['fresh', 'electing', 'slave', 'master', 'master-mid-round'];

export interface NodeUnderTest {
  node: ProtocolNode;
  config: NodeConfig;
  nowMs: number;
}

function header(from: string, prio: number, term: number, nowMs: number) {
  return { v: PROTOCOL_VERSION, cluster: 'default', from, prio, term, ...replayHeader(), ...(PROBED_HEADER.includes('to') ? { to: 'self' } : {}), txNs: clockNs(nowMs) };
}

/**
 * A ProtocolNode ('self', priority 100) in a known state, reached through its ordinary inputs:
 * electing (ring election under way), a slave of 'm' (priority 500) that applied a correction, a
 * master between rounds, or a master with polls outstanding.
 */
export function buildNode(state: NodeState, seed: number): NodeUnderTest {
  const random = prng(seed);
  const config = nodeConfig({ nodeId: 'self', priority: state.startsWith('master') ? 1000 : 100, random, peersMax: 8, probesPerRound: 4 });
  const node = new ProtocolNode(config, 0);
  let nowMs = 0;
  const drainAll = () => void node.drain();
  if (state === 'fresh') return { node, config, nowMs };
  for (const [id, prio] of [['a', 50], ['b', 150], ['c', 20]] as const) node.discovered({ nodeId: id, priority: prio, endpoint: endpointOf(id) });
  if (state === 'electing') {
    nowMs = 4000;
    node.tick(nowMs); // discovery window over: a ring election starts
  } else if (state === 'slave') {
    nowMs = 1000;
    node.receive({ ...header('m', 500, 7, nowMs), type: FrameType.coordinator, algorithm: 0 } as Frame, endpointOf('m'), clockNs(nowMs), nowMs);
    nowMs += 100;
    node.receive({ ...header('m', 500, 7, nowMs), type: FrameType.poll, round: 1, probe: 0 } as Frame, endpointOf('m'), clockNs(nowMs), nowMs);
    node.receive({ ...header('m', 500, 7, nowMs), type: FrameType.correct, round: 1, correctionNs: 12_345 } as Frame, endpointOf('m'), clockNs(nowMs), nowMs);
  } else {
    // Peers greet it (so they are live), then it wins: every ring hop goes unanswered, bully follows.
    for (const id of ['a', 'b', 'c']) node.receive({ ...header(id, id === 'b' ? 150 : 20, 0, 10), type: FrameType.hello, wantReply: false, role: 0, masterId: null, masterPrio: null } as Frame, endpointOf(id), clockNs(10), 10);
    nowMs = 4000;
    node.tick(nowMs);
    for (let guard = 0; guard < 100 && node.status().role !== 'master'; guard += 1) {
      const next = node.nextDeadlineMs();
      nowMs = Number.isFinite(next) ? Math.max(nowMs, next) : nowMs + 100;
      node.tick(nowMs);
    }
    if (node.status().role !== 'master') throw new Error('fuzz setup: node did not become master');
    // First round: poll everyone, let the members answer, finish it.
    node.tick(nowMs);
    const term = node.status().term;
    for (let guard = 0; guard < 200; guard += 1) {
      const out = node.drain();
      for (const send of out.sends) {
        if (send.frame.type !== FrameType.poll) continue;
        const member = send.frame.from === 'self' ? KNOWN_IDS.find((id) => endpointOf(id).address === send.to.address) : undefined;
        if (member === undefined) continue;
        const txNs = clockNs(nowMs);
        node.receive(
          { ...header(member, 20, term, nowMs + 0.2), type: FrameType.reply, round: send.frame.round, probe: send.frame.probe, pollTxNs: txNs, rxNs: txNs + 100_000n, synced: true } as Frame,
          endpointOf(member),
          clockNs(nowMs + 0.2),
          nowMs + 0.2,
        );
      }
      if (node.status().lastRound !== null) break;
      nowMs = Math.max(nowMs + 0.2, node.nextDeadlineMs());
      node.tick(nowMs);
    }
    if (node.status().lastRound === null) throw new Error('fuzz setup: master finished no round');
    if (state === 'master-mid-round') {
      nowMs = Math.max(nowMs, node.nextDeadlineMs());
      node.tick(nowMs); // the next round starts: polls outstanding
    }
  }
  drainAll();
  return { node, config, nowMs };
}

// Hostile-but-decodable frames for a node, with fields resolved against the node's state at the
// moment of delivery (its term, master, round), so that they reach the deep paths.
type TermChoice = { rel: number } | { abs: unknown };
type RoundChoice = { rel: number } | { abs: unknown };
type FromChoice = { role: 'master' | 'peer' | 'self' } | { id: unknown };

export type NodeCommand =
  | { kind: 'frame'; frame: Record<string, unknown>; from: FromChoice; term: TermChoice; round: RoundChoice; echoPoll: boolean; freshSeq: boolean }
  | { kind: 'tick'; advanceMs: number }
  | { kind: 'toDeadline' }
  | { kind: 'datagram'; bytes: Uint8Array };

/**
 * Terms a hostile frame may carry: the whole range the decoder accepts (nodes ignore terms above
 * TERM_ADOPT_MAX; before that fix a term near 2^53 pushed a node past Number.MAX_SAFE_INTEGER).
 * `strictTerms` is kept for scripts/fuzz.ts's option and means the same now.
 */
export const TERM_FUZZ_MAX = COUNTER_MAX;

function termChoiceArb(strictTerms: boolean): fc.Arbitrary<TermChoice> {
  const termMax = strictTerms ? COUNTER_MAX : TERM_FUZZ_MAX;
  return fc.oneof(
    { weight: 4, arbitrary: fc.record({ rel: fc.integer({ min: -2, max: 2 }) }) },
    { weight: 2, arbitrary: fc.record({ abs: fc.constantFrom(0, 1, termMax, termMax - 1, BigInt(termMax), 2 ** 32 - 1, 2 ** 32, 2 ** 48) }) },
    { weight: 1, arbitrary: fc.record({ abs: fc.oneof(fc.integer({ min: 0, max: termMax }), fc.bigInt({ min: 0n, max: BigInt(termMax) })) }) },
  );
}
const roundChoice: fc.Arbitrary<RoundChoice> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ rel: fc.integer({ min: -1, max: 2 }) }) },
  { weight: 1, arbitrary: fc.record({ abs: validCounter }) },
);
const fromChoice: fc.Arbitrary<FromChoice> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ role: fc.constantFrom('master' as const, 'peer' as const, 'self' as const) }) },
  { weight: 2, arbitrary: fc.record({ id: validId }) },
);

export function nodeCommandArb(strictTerms = false): fc.Arbitrary<NodeCommand> {
  const termChoice = termChoiceArb(strictTerms);
  return fc.oneof(
  {
    weight: 8,
    arbitrary: fc.record({
      kind: fc.constant('frame' as const),
      frame: anyTypeCode.chain((type) => frameObjectOfType(type, { hostileWeight: 1, structural: false, cluster: 'default' })),
      from: fromChoice,
      term: termChoice,
      round: roundChoice,
      echoPoll: fc.boolean(),
      // A (boot, seq) newer than any before (past replay protection), or the generated one.
      freshSeq: fc.boolean(),
    }),
  },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('tick' as const), advanceMs: fc.oneof(fc.constantFrom(0, 0.001, 2, 150, 1000, 3000, 10_000, 1e9), fc.double({ min: 0, max: 5000, noNaN: true })) }) },
  { weight: 2, arbitrary: fc.constant({ kind: 'toDeadline' as const }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('datagram' as const), bytes: fc.oneof(bytesArb, fc.tuple(validEncodedArb, mutationArb).map(([bytes, mutation]) => applyMutation(bytes, mutation, bytes))) }) },
  );
}

/** Status without its counters (a frame of another cluster may count, nothing else). */
export function statusWithoutCounters(status: NodeStatus): Omit<NodeStatus, 'counters'> {
  const { counters: _counters, ...rest } = status;
  return rest;
}

/** The node's invariants after an input, and its outputs drained. Throws with a description. */
export function checkNodeAfter(subject: NodeUnderTest, previousTerm: number, context: () => string): number {
  const { node, config } = subject;
  const status = node.status();
  const fail = (what: string): never => {
    throw new Error(`${what} after ${context()}`);
  };
  if (!Number.isSafeInteger(status.term) || status.term < 0) fail(`term ${status.term} is not a safe integer`);
  if (status.term < previousTerm) fail(`term went back from ${previousTerm} to ${status.term}`);
  const persisted = node.persistentState();
  if (!Number.isSafeInteger(persisted.term) || !Number.isSafeInteger(persisted.lastMasterTerm)) fail(`persistent state ${show(persisted)} not safe integers`);
  if (!['master', 'slave', 'electing'].includes(status.role)) fail(`role ${show(status.role)}`);
  if (status.peers.length > config.peersMax) fail(`${status.peers.length} peers > ${config.peersMax}`);
  const deadlineMs = node.nextDeadlineMs();
  if (typeof deadlineMs !== 'number' || Number.isNaN(deadlineMs)) fail(`nextDeadlineMs ${deadlineMs}`);
  const out = node.drain();
  for (const correction of out.corrections) {
    if (!Number.isFinite(correction.correctionNs) || Math.abs(correction.correctionNs) > CORRECTION_NS_MAX) fail(`correction ${show(correction)} beyond CORRECTION_NS_MAX`);
  }
  for (const send of out.sends) {
    const frame = stampOutgoing(send.frame, clockNs(subject.nowMs));
    let bytes: Buffer;
    try {
      bytes = encodeFrame(frame);
    } catch (error) {
      return fail(`outgoing frame ${show(send.frame)} does not encode: ${String(error)}`);
    }
    if (bytes.length > FRAME_BYTES_MAX) fail(`outgoing frame of ${bytes.length} bytes`);
    // Stronger than encoding: a peer's decoder must accept what we send.
    const decoded = decodeFrame(bytes);
    if (!decoded.ok) fail(`outgoing frame ${show(send.frame)} is rejected by a peer's decoder (${decoded.reason}: ${decoded.detail})`);
    const problem = frameLimitProblem(send.frame as unknown as Record<string, unknown>, false);
    if (problem !== null) fail(`outgoing frame ${show(send.frame)} out of limits: ${problem}`);
  }
  return status.term;
}

/** Resolves a command's frame against the node's current state. */
function resolveFrame(subject: NodeUnderTest, command: Extract<NodeCommand, { kind: 'frame' }>): Record<string, unknown> {
  const status = subject.node.status();
  const frame: Record<string, unknown> = { ...command.frame };
  const choice = command.from;
  if ('role' in choice) {
    if (choice.role === 'master') frame.from = status.masterId ?? 'm';
    else if (choice.role === 'self') frame.from = 'self';
    else frame.from = status.peers[0]?.nodeId ?? 'a';
  } else frame.from = choice.id;
  frame.term = 'rel' in command.term ? Math.max(0, status.term + command.term.rel) : command.term.abs;
  if ('round' in frame) {
    const current = (status.lastRound?.round ?? 0) + 1;
    frame.round = 'rel' in command.round ? Math.max(0, current + command.round.rel) : command.round.abs;
  }
  // Fresh: a (boot, seq) newer than any before and addressed to the node (past replay protection).
  if (command.freshSeq) Object.assign(frame, replayHeader(), PROBED_HEADER.includes('to') ? { to: 'self' } : {});
  if (command.echoPoll && frame.type === FrameType.reply) {
    // A reply whose t1 is near the node's own clock: a plausible sample with a hostile t2/t3.
    frame.pollTxNs = clockNs(Math.max(0, subject.nowMs - 1));
  }
  return frame;
}

/**
 * The shell's receive path (src/daemon/agent.ts): decode, drop and count what fails, pass the rest
 * to the core. Returns whether the frame reached the node. A rejected datagram must leave the
 * node's state, persistent state, deadline and outbox exactly as they were.
 */
export function deliverDatagram(subject: NodeUnderTest, bytes: Uint8Array, stats: FuzzStats, onDeliver: (frame: Frame) => void): boolean {
  stats.frames += 1;
  const { node } = subject;
  const before = node.status();
  const persistedBefore = node.persistentState();
  const deadlineBefore = node.nextDeadlineMs();
  const result = decodeFrame(bytes);
  if (!result.ok) {
    // Dropped by the shell: nothing may have reached the node.
    if (!isDeepStrictEqual(node.status(), before) || !isDeepStrictEqual(node.persistentState(), persistedBefore) || !Object.is(node.nextDeadlineMs(), deadlineBefore)) {
      throw new Error(`a rejected datagram changed the node: ${hex(bytes)}`);
    }
    const out = node.drain();
    if (out.sends.length + out.corrections.length + out.events.length + out.barrierOutcomes.length > 0) throw new Error(`a rejected datagram produced output: ${hex(bytes)}`);
    return false;
  }
  stats.accepted += 1;
  onDeliver(result.frame);
  return true;
}

export function receiveChecked(subject: NodeUnderTest, frame: Frame, stats: FuzzStats): void {
  stats.delivered += 1;
  const { node } = subject;
  const otherCluster = frame.cluster !== subject.config.cluster && frame.type !== FrameType.timeQuery && frame.type !== FrameType.timeAnswer;
  const before = otherCluster ? { status: statusWithoutCounters(node.status()), persisted: node.persistentState(), deadline: node.nextDeadlineMs() } : null;
  try {
    node.receive(frame, FAKE_ENDPOINT, clockNs(subject.nowMs), subject.nowMs);
  } catch (error) {
    throw new Error(`receive threw ${String((error as Error).stack ?? error)} on ${hex(encodeFrame(frame))} (${show(frame)})`);
  }
  if (before !== null) {
    if (!isDeepStrictEqual(statusWithoutCounters(node.status()), before.status) || !isDeepStrictEqual(node.persistentState(), before.persisted) || !Object.is(node.nextDeadlineMs(), before.deadline)) {
      throw new Error(`a frame of cluster ${show(frame.cluster)} changed the node: ${hex(encodeFrame(frame))}`);
    }
    const out = node.drain();
    if (out.sends.length + out.corrections.length + out.events.length + out.barrierOutcomes.length > 0) throw new Error(`a frame of another cluster produced output: ${show(frame)}`);
  }
}

/** Runs a command sequence against a node, checking after each. */
export function runNodeCommands(subject: NodeUnderTest, commands: NodeCommand[], stats: FuzzStats): void {
  let term = subject.node.status().term;
  const log: string[] = [];
  const context = () => `${log.length} commands: ${log.slice(-3).join(' | ')}`;
  const trace = process.env.FUZZ_TRACE === '1';
  for (const command of commands) {
    if (trace) process.stderr.write(`${show(command).slice(0, 400)}\n`);
    switch (command.kind) {
      case 'tick':
      case 'toDeadline': {
        const next = subject.node.nextDeadlineMs();
        subject.nowMs = command.kind === 'tick' ? subject.nowMs + command.advanceMs : Number.isFinite(next) ? Math.max(subject.nowMs, next) : subject.nowMs + 1000;
        log.push(`tick ${subject.nowMs}`);
        try {
          subject.node.tick(subject.nowMs);
        } catch (error) {
          throw new Error(`tick threw ${String((error as Error).stack ?? error)} after ${context()}`);
        }
        break;
      }
      case 'datagram':
        log.push(`datagram ${hex(command.bytes)}`);
        deliverDatagram(subject, command.bytes, stats, (frame) => receiveChecked(subject, frame, stats));
        break;
      case 'frame': {
        const frame = resolveFrame(subject, command);
        const bytes = packObject(frame);
        if (bytes === null) continue;
        log.push(`frame ${hex(bytes)}`);
        deliverDatagram(subject, bytes, stats, (decoded) => receiveChecked(subject, decoded, stats));
        break;
      }
    }
    term = checkNodeAfter(subject, term, context);
  }
}

export interface NodeProperties {
  /** (i) Datagrams that fail to decode: dropped before the node, which stays exactly as it was. */
  invalid: fc.IPropertyWithHooks<[NodeState, number, Uint8Array[]]>;
  /** (ii) Decodable hostile frames and ticks: no exception, invariants hold after every input. */
  hostile: fc.IPropertyWithHooks<[NodeState, number, NodeCommand[]]>;
  /** Frames of another cluster change nothing but a counter. */
  otherCluster: fc.IPropertyWithHooks<[NodeState, number, Record<string, unknown>[]]>;
}

const invalidDatagram: fc.Arbitrary<Uint8Array> = fc.oneof(
  bytesArb,
  fc.tuple(validEncodedArb, validEncodedArb, fc.array(mutationArb, { minLength: 1, maxLength: 4 })).map(([bytes, other, mutations]) => mutations.reduce((current, mutation) => applyMutation(current, mutation, other), bytes)),
  hostileFrameObject().map((frame) => packObject(frame) ?? new Uint8Array()),
);

export function nodeProperties(stats: FuzzStats, sequenceLength: number, strictTerms = false): NodeProperties {
  const state = fc.constantFrom(...NODE_STATES);
  const seed = fc.integer();
  return {
    invalid: fc.property(state, seed, fc.array(invalidDatagram, { minLength: 1, maxLength: sequenceLength }), (which, setupSeed, datagrams) => {
      const subject = buildNode(which, setupSeed);
      let receives = 0;
      const original = subject.node.receive.bind(subject.node);
      subject.node.receive = (...args) => {
        receives += 1;
        original(...args);
      };
      for (const bytes of datagrams) {
        const before = receives;
        const delivered = deliverDatagram(subject, bytes, stats, (frame) => receiveChecked(subject, frame, stats));
        if (!delivered && receives !== before) throw new Error(`a rejected datagram reached node.receive: ${hex(bytes)}`);
        checkNodeAfter(subject, 0, () => `datagram ${hex(bytes)}`);
      }
    }),
    hostile: fc.property(state, seed, fc.array(nodeCommandArb(strictTerms), { minLength: 1, maxLength: sequenceLength }), (which, setupSeed, commands) => {
      if (process.env.FUZZ_TRACE === '1') process.stderr.write(`RUN ${which} ${setupSeed}\n`);
      runNodeCommands(buildNode(which, setupSeed), commands, stats);
    }),
    otherCluster: fc.property(
      state,
      seed,
      fc.array(
        anyTypeCode.chain((type) => frameObjectOfType(type, { hostileWeight: 0, structural: false, cluster: 'other' })),
        { minLength: 1, maxLength: sequenceLength },
      ),
      (which, setupSeed, frames) => {
        const subject = buildNode(which, setupSeed);
        for (const frame of frames) {
          const clusterFrame = { ...frame, cluster: frame.type === FrameType.hello ? 'other' : ['other', 'Default', 'default2', 'x'.repeat(CLUSTER_BYTES_MAX)][Number(frame.prio) % 4] };
          const bytes = packObject(clusterFrame);
          if (bytes === null) continue;
          deliverDatagram(subject, bytes, stats, (decoded) => receiveChecked(subject, decoded, stats));
          checkNodeAfter(subject, 0, () => `frame of another cluster ${hex(bytes)}`);
        }
      },
    ),
  };
}

// ------------------------------------------------------------------------------------ simulation

/**
 * Hostile frames injected into the nodes of a running simulation (3 nodes, real codec between
 * them): after a leader is elected and rounds run, each injected frame goes to a random node,
 * and the simulation carries on; nothing may throw and each node's invariants must hold.
 */
export function simulationProperty(stats: FuzzStats, sequenceLength: number, strictTerms = false): fc.IPropertyWithHooks<[number, NodeCommand[]]> {
  return fc.property(fc.integer({ min: 1, max: 2 ** 31 - 1 }), fc.array(nodeCommandArb(strictTerms), { minLength: 1, maxLength: sequenceLength }), (seed, commands) => {
    const sim = new Simulation({ seed, nodes: [{ nodeId: 'a', priority: 50 }, { nodeId: 'b', priority: 150 }, { nodeId: 'self', priority: 100 }], discoverAll: true, check: 'off', config: { probesPerRound: 4 } });
    sim.runFor(5000);
    const ids = sim.nodeIds();
    let index = 0;
    for (const command of commands) {
      const id = ids[index % ids.length] as string;
      index += 1;
      if (command.kind === 'tick' || command.kind === 'toDeadline') {
        sim.runFor(command.kind === 'tick' ? Math.min(command.advanceMs, 3000) : 50);
        continue;
      }
      const node = sim.node(id);
      if (node === null) continue;
      const subject: NodeUnderTest = { node, config: nodeConfig({ nodeId: id, random: Math.random }), nowMs: 0 };
      const bytes = command.kind === 'datagram' ? command.bytes : packObject(resolveFrame(subject, command));
      if (bytes === null) continue;
      stats.frames += 1;
      const result = decodeFrame(bytes);
      if (!result.ok) continue;
      stats.accepted += 1;
      stats.delivered += 1;
      try {
        sim.inject(id, (target, nowMs) => target.receive(result.frame, FAKE_ENDPOINT, BigInt(Math.round(nowMs * 1e6)) + EPOCH_NS, nowMs));
        sim.runFor(20);
      } catch (error) {
        throw new Error(`simulation seed ${seed}: ${String((error as Error).stack ?? error)} after injecting ${hex(bytes)} into ${id}`);
      }
      for (const other of sim.liveNodeIds()) {
        const status = sim.node(other)?.status();
        if (status === undefined) continue;
        if (!Number.isSafeInteger(status.term)) throw new Error(`simulation seed ${seed}: ${other} term ${status.term} after ${hex(bytes)}`);
        if (!Number.isFinite(sim.node(other)?.nextDeadlineMs() ?? 0) && Number.isNaN(sim.node(other)?.nextDeadlineMs())) throw new Error(`NaN deadline`);
      }
    }
  });
}
