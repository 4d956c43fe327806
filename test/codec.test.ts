// Frame codec: round trips of every frame type, and a decoder that never throws on hostile input
// (truncated, garbage, wrong-typed, wrong-shaped, out-of-range, oversize, exotic msgpack types).
import { Packr } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import { FrameType, type Frame } from '../src/core/frames.ts';
import {
  CORRECTION_NS_MAX,
  COUNTER_MAX,
  FRAME_BYTES_MAX,
  NODE_ID_BYTES_MAX,
  PRIORITY_MAX,
  PROBES_PER_ROUND_MAX,
  PROTOCOL_VERSION,
  PROVISIONAL_NS_MAX,
  TIMESTAMP_NS_MAX,
} from '../src/core/limits.ts';
import { SeededRandom } from '../src/sim/random.ts';
import { decodeFrame, encodeFrame, FrameTooLargeError, REJECT_REASONS, type DecodeResult, type RejectReason } from '../src/wire/codec.ts';

/** A realistic epoch timestamp (2026) with odd low digits, which a float64 cannot hold exactly. */
const EPOCH_NS = 1_790_000_000_123_456_789n;

const header = { v: PROTOCOL_VERSION, cluster: 'lab-1', from: 'node-a', prio: 100, term: 7, boot: 1_790_000_000_123, seq: 42, to: 'node-b', toBoot: 1_790_000_000_456, txNs: EPOCH_NS };

/** One valid frame of every type. */
const SAMPLES: Record<string, Frame> = {
  hello: { ...header, type: FrameType.hello, wantReply: true, role: 2, masterId: 'node-z', masterPrio: 100 },
  helloNoMaster: { ...header, type: FrameType.hello, wantReply: false, role: 0, masterId: null, masterPrio: null },
  election: { ...header, type: FrameType.election, hopId: 42, candidateId: 'node-q', candidatePrio: 250 },
  electionAck: { ...header, type: FrameType.electionAck, hopId: 42 },
  coordinator: { ...header, type: FrameType.coordinator, algorithm: 1 },
  bully: { ...header, type: FrameType.bully },
  bullyOk: { ...header, type: FrameType.bullyOk },
  poll: { ...header, type: FrameType.poll, round: 12, probe: 3 },
  reply: { ...header, type: FrameType.reply, round: 12, probe: 3, pollTxNs: EPOCH_NS - 1_000_001n, rxNs: EPOCH_NS - 499_999n, synced: true },
  correct: { ...header, type: FrameType.correct, round: 12, correctionNs: -1234.5 },
  timeQuery: { ...header, type: FrameType.timeQuery, queryId: 99 },
  timeAnswer: { ...header, type: FrameType.timeAnswer, queryId: 99, queryTxNs: EPOCH_NS - 7n, rxNs: EPOCH_NS + 3n },
  leave: { ...header, type: FrameType.leave },
  viewQuery: { ...header, type: FrameType.viewQuery, queryId: 5, start: 0, round: 0 },
  barrierJoin: { ...header, type: FrameType.barrierJoin, name: 'setup-done', requestId: 2 ** 40 + 7, count: null, errorCode: 0, generation: null },
  barrierJoinInitializer: { ...header, type: FrameType.barrierJoin, name: 'setup-done', requestId: 9, count: 4096, errorCode: 239, generation: 2 ** 52 + 1 },
  barrierAck: { ...header, type: FrameType.barrierAck, requestId: 9, name: 'setup-done', generation: 77, confirmed: true, present: 3, count: 4, error: null },
  barrierAckRefused: { ...header, type: FrameType.barrierAck, requestId: 9, name: 'setup-done', generation: null, confirmed: false, present: 0, count: null, error: 'second-initializer' },
  barrierRelease: { ...header, type: FrameType.barrierRelease, name: 'setup-done', generation: 77, exitCode: 3, requestIds: [9, 10, 2 ** 40 + 7] },
  barrierReleaseAck: { ...header, type: FrameType.barrierReleaseAck, generation: 77, requestIds: [] },
  barrierWithdraw: { ...header, type: FrameType.barrierWithdraw, name: 'setup-done', requestId: 9 },
  barrierReleased: { ...header, type: FrameType.barrierReleased, name: 'setup-done', generation: 77, exitCode: 0 },
  view: {
    ...header,
    type: FrameType.view,
    queryId: 5,
    round: 12,
    roundAgoMs: 340,
    averageNs: -1520.5,
    total: 3,
    start: 1,
    members: [
      ['node-b', 4 | 16, -12_345, 41_000, 120],
      ['node-c', 2, null, null, null],
    ],
  },
  // Terms carry the winner's slot in their low 24 bits and pass 2^32, where msgpack uses 64 bits.
  bigTerm: { ...header, term: 2 ** 40 + 12_345, type: FrameType.bullyOk },
};

/** Type codes are append-only: the next code after the last one is unknown today. */
const UNKNOWN_TYPE = Math.max(...Object.values(FrameType)) + 1;

// An independent encoder, to build frames the production encoder would refuse to or could not make.
const rawPackr = new Packr({ useRecords: false, variableMapSize: true });
function raw(value: unknown): Uint8Array {
  return rawPackr.pack(value);
}

function expectRejected(result: DecodeResult, reason: RejectReason): void {
  expect(result.ok, JSON.stringify(result, (_key, value: unknown) => (typeof value === 'bigint' ? `${value}n` : value))).toBe(false);
  if (!result.ok) {
    expect(result.reason).toBe(reason);
    expect(typeof result.detail).toBe('string');
  }
}

/** Decodes, asserting it did not throw and that any success is a genuinely valid frame. */
function safeDecode(bytes: Uint8Array): DecodeResult {
  let result: DecodeResult | undefined;
  expect(() => {
    result = decodeFrame(bytes);
  }).not.toThrow();
  const decoded = result as DecodeResult;
  if (decoded.ok) {
    // Anything accepted must re-encode and decode to itself.
    const again = decodeFrame(encodeFrame(decoded.frame));
    expect(again).toEqual(decoded);
  } else {
    expect(REJECT_REASONS).toContain(decoded.reason);
  }
  return decoded;
}

describe('cluster view pages', () => {
  const view = () => structuredClone(SAMPLES.view!) as Frame & { type: typeof FrameType.view };
  it('a page that runs past the total is rejected', () => {
    expectRejected(decodeFrame(raw({ ...view(), total: 2 })), 'bad-field');
  });
  it('entries must be 5-tuples with an id, flags, finite offsets and non-negative delays', () => {
    const bad: unknown[][] = [
      [['node-b', 0, 1, 2]],
      [['node-b', 0, 1, 2, 3, 4]],
      [['', 0, 1, 2, 3]],
      [['node-b', 256, 1, 2, 3]],
      [['node-b', 0, Number.NaN, 2, 3]],
      [['node-b', 0, 1, -2, 3]],
      [['node-b', 0, 1, 2, -3]],
      [['node-b', 0, 1, 2, 1.5]],
    ];
    for (const members of bad) expectRejected(decodeFrame(raw({ ...view(), total: 10, members })), 'bad-field');
  });
  it('a query with a negative or fractional start is rejected', () => {
    expectRejected(decodeFrame(raw({ ...SAMPLES.viewQuery!, start: -1 })), 'bad-field');
    expectRejected(decodeFrame(raw({ ...SAMPLES.viewQuery!, start: 0.5 })), 'bad-field');
  });
});

describe('round trips', () => {
  for (const [name, frame] of Object.entries(SAMPLES)) {
    it(`${name} survives encode + decode unchanged`, () => {
      const bytes = encodeFrame(frame);
      expect(bytes.length).toBeLessThanOrEqual(FRAME_BYTES_MAX);
      const result = decodeFrame(bytes);
      expect(result).toEqual({ ok: true, frame });
    });
  }

  it('covers every frame type code', () => {
    const covered = new Set(Object.values(SAMPLES).map((frame) => frame.type));
    const byNumber = (a: number, b: number) => a - b;
    expect([...covered].sort(byNumber)).toEqual([...Object.values(FrameType)].sort(byNumber));
  });

  it('keeps 64-bit timestamps exact from 0 up to 2^63-1', () => {
    const values = [0n, 1n, 2n ** 53n + 1n, EPOCH_NS, EPOCH_NS + 1n, TIMESTAMP_NS_MAX - 1n, TIMESTAMP_NS_MAX];
    for (const value of values) {
      const frame: Frame = { ...SAMPLES.reply!, txNs: value, pollTxNs: value, rxNs: TIMESTAMP_NS_MAX - value } as Frame;
      const result = decodeFrame(encodeFrame(frame));
      expect(result.ok, `timestamp ${value}`).toBe(true);
      if (result.ok && result.frame.type === FrameType.reply) {
        expect(typeof result.frame.txNs).toBe('bigint');
        expect(result.frame.txNs).toBe(value);
        expect(result.frame.pollTxNs).toBe(value);
        expect(result.frame.rxNs).toBe(TIMESTAMP_NS_MAX - value);
      }
    }
  });

  it('accepts small timestamps packed as plain integers by other encoders, as bigint', () => {
    const result = decodeFrame(raw({ ...SAMPLES.bully, txNs: 12345 }));
    expect(result.ok).toBe(true);
    if (result.ok) expect(result.frame.txNs).toBe(12345n);
  });

  it('accepts the edges of every numeric range', () => {
    const edges: Frame[] = [
      { ...SAMPLES.correct!, correctionNs: CORRECTION_NS_MAX } as Frame,
      { ...SAMPLES.correct!, correctionNs: -CORRECTION_NS_MAX } as Frame,
      { ...SAMPLES.correct!, correctionNs: 0 } as Frame,
      { ...SAMPLES.poll!, probe: PROBES_PER_ROUND_MAX - 1, round: COUNTER_MAX } as Frame,
      { ...SAMPLES.bully!, term: COUNTER_MAX, prio: PRIORITY_MAX } as Frame,
      { ...SAMPLES.bully!, term: 0, prio: 0 } as Frame,
      { ...SAMPLES.bully!, from: 'x'.repeat(NODE_ID_BYTES_MAX), cluster: 'c'.repeat(64) } as Frame,
    ];
    for (const frame of edges) expect(decodeFrame(encodeFrame(frame)), JSON.stringify(frame, (_k, v: unknown) => (typeof v === 'bigint' ? String(v) : v))).toEqual({ ok: true, frame });
  });

  it('a CORRECT carries 56 years (a box at 1970, a master in 2026) and every difference of two valid timestamps, both ways', () => {
    // The master at 2026-01-01, the member's RTC reset to the epoch: ~1.77e18 ns, far above 2^53.
    const fiftySixYearsNs = Number(1_767_225_600_000_000_000n - 1_000_000_000n);
    const span = Number(TIMESTAMP_NS_MAX - 0n);
    expect(CORRECTION_NS_MAX).toBeGreaterThanOrEqual(span);
    for (const correctionNs of [fiftySixYearsNs, -fiftySixYearsNs, span, -span]) {
      const frame = { ...SAMPLES.correct!, correctionNs, delayNs: 120_000, boundNs: Math.abs(correctionNs) * 2 } as Frame;
      const result = decodeFrame(encodeFrame(frame));
      expect(result.ok, String(correctionNs)).toBe(true);
      if (result.ok && result.frame.type === FrameType.correct) {
        expect(result.frame.correctionNs).toBe(correctionNs);
        expect(result.frame.boundNs).toBe(Math.abs(correctionNs) * 2);
      }
    }
    // A REPLY of a box that stepped those 56 years while provisional says so truthfully.
    const reply = decodeFrame(encodeFrame({ ...SAMPLES.reply!, provisionalNs: fiftySixYearsNs } as Frame));
    expect(reply.ok && reply.frame.type === FrameType.reply && reply.frame.provisionalNs).toBe(fiftySixYearsNs);
  });

  it('encodeFrame refuses to produce a frame over the size limit', () => {
    const huge = { ...SAMPLES.bully!, cluster: 'c'.repeat(2000) } as Frame;
    expect(() => encodeFrame(huge)).toThrow(FrameTooLargeError);
    try {
      encodeFrame(huge);
    } catch (error) {
      expect((error as FrameTooLargeError).code).toBe('EFRAMESIZE');
    }
  });
});

describe('truncated frames', () => {
  for (const [name, frame] of Object.entries(SAMPLES)) {
    it(`every prefix of ${name} is rejected without throwing`, () => {
      const bytes = encodeFrame(frame);
      for (let length = 0; length < bytes.length; length += 1) {
        const result = safeDecode(bytes.subarray(0, length));
        // A frame is a map whose last field is required, so no proper prefix is a valid frame.
        expect(result.ok, `${name} prefix of ${length}/${bytes.length} bytes`).toBe(false);
      }
      expect(safeDecode(bytes).ok).toBe(true);
    });
  }

  it('the empty datagram is malformed', () => {
    expectRejected(decodeFrame(new Uint8Array(0)), 'malformed');
  });
});

describe('garbage', () => {
  it('thousands of seeded random datagrams never throw and are never accepted', () => {
    const random = new SeededRandom(0x5eed);
    const reasons = new Map<string, number>();
    for (let index = 0; index < 4000; index += 1) {
      const length = random.integer(index % 10 === 0 ? 1400 : 200);
      const bytes = new Uint8Array(length);
      for (let at = 0; at < length; at += 1) bytes[at] = random.integer(256);
      const result = safeDecode(bytes);
      expect(result.ok, `seed 0x5eed datagram ${index}`).toBe(false);
      if (!result.ok) reasons.set(result.reason, (reasons.get(result.reason) ?? 0) + 1);
    }
    // The generator reaches more than one failure path (sanity check of the test itself).
    expect(reasons.get('oversize')).toBeGreaterThan(0);
    expect(reasons.size).toBeGreaterThanOrEqual(3);
  });

  it('seeded random mutations of valid frames never throw', () => {
    const random = new SeededRandom(0xbad);
    const frames = Object.values(SAMPLES).map((frame) => encodeFrame(frame));
    let accepted = 0;
    for (let index = 0; index < 3000; index += 1) {
      const bytes = Uint8Array.from(frames[index % frames.length]!);
      const flips = 1 + random.integer(3);
      for (let flip = 0; flip < flips; flip += 1) bytes[random.integer(bytes.length)] = random.integer(256);
      // safeDecode checks that anything accepted is a valid frame that round-trips.
      if (safeDecode(bytes).ok) accepted += 1;
    }
    // Some flips land in string contents and stay valid; most must not.
    expect(accepted).toBeLessThan(3000);
  });
});

describe('wrong shape and wrong types', () => {
  const poll = SAMPLES.poll!;

  it.each([
    ['term as string', { term: '7' }],
    ['term as float', { term: 7.5 }],
    ['term as a bigint beyond 2^53', { term: 2n ** 60n }],
    ['cluster as number', { cluster: 1 }],
    ['from as array', { from: ['a'] }],
    ['prio as boolean', { prio: true }],
    ['txNs as string', { txNs: '1790000000123456789' }],
    ['txNs as float', { txNs: 1.5 }],
    ['round as null', { round: null }],
    ['probe as map', { probe: { n: 1 } }],
  ])('poll with %s is a bad field', (_name, patch) => {
    expectRejected(decodeFrame(raw({ ...poll, ...patch })), 'bad-field');
  });

  it('hello with wantReply as a number or role out of range is a bad field', () => {
    expectRejected(decodeFrame(raw({ ...SAMPLES.hello, wantReply: 1 })), 'bad-field');
    expectRejected(decodeFrame(raw({ ...SAMPLES.hello, role: 3 })), 'bad-field');
    expectRejected(decodeFrame(raw({ ...SAMPLES.hello, masterId: '' })), 'bad-field');
  });

  it('coordinator with an unknown algorithm is a bad field', () => {
    expectRejected(decodeFrame(raw({ ...SAMPLES.coordinator, algorithm: 3 })), 'bad-field');
  });

  it('an extra key is a bad field', () => {
    const result = decodeFrame(raw({ ...poll, extra: 1 }));
    expectRejected(result, 'bad-field');
    if (!result.ok) expect(result.detail).toContain('extra');
  });

  it("another type's field is a bad field", () => {
    expectRejected(decodeFrame(raw({ ...SAMPLES.bully, round: 1 })), 'bad-field');
  });

  for (const key of ['cluster', 'from', 'prio', 'term', 'txNs', 'round', 'probe']) {
    it(`a poll without ${key} is a bad field`, () => {
      const partial: Record<string, unknown> = { ...poll };
      delete partial[key];
      const result = decodeFrame(raw(partial));
      expectRejected(result, 'bad-field');
      if (!result.ok) expect(result.detail).toContain(key);
    });
  }

  it('a frame without a version or type is rejected with the matching reason', () => {
    const { v: _v, ...noVersion } = poll;
    expectRejected(decodeFrame(raw(noVersion)), 'bad-version');
    const { type: _type, ...noType } = poll;
    expectRejected(decodeFrame(raw(noType)), 'unknown-type');
  });

  it.each([
    ['NaN', Number.NaN],
    ['Infinity', Number.POSITIVE_INFINITY],
    ['-Infinity', Number.NEGATIVE_INFINITY],
    ['beyond any difference of two timestamps', CORRECTION_NS_MAX * 1.01],
    ['below minus any difference of two timestamps', -CORRECTION_NS_MAX * 1.01],
    ['1e300', 1e300],
    ['as bigint', 5n],
    ['as string', '5'],
  ])('correctionNs %s is a bad field', (_name, correctionNs) => {
    expectRejected(decodeFrame(raw({ ...SAMPLES.correct, correctionNs })), 'bad-field');
  });

  it.each([
    ['negative term', { term: -1 }],
    ['term beyond 2^53', { term: 2 ** 60 }],
    ['negative hop id', { hopId: -3 }],
    ['huge hop id', { hopId: 1e300 }],
  ])('%s is a bad field', (_name, patch) => {
    expectRejected(decodeFrame(raw({ ...SAMPLES.electionAck, ...patch })), 'bad-field');
  });

  it.each([
    ['negative round', { round: -1 }],
    ['probe at the limit', { probe: PROBES_PER_ROUND_MAX }],
    ['negative probe', { probe: -1 }],
  ])('poll with %s is a bad field', (_name, patch) => {
    expectRejected(decodeFrame(raw({ ...poll, ...patch })), 'bad-field');
  });

  it.each([
    ['negative', -1n],
    ['2^63', 1n << 63n],
    ['2^64-1', (1n << 64n) - 1n],
  ])('a %s timestamp is a bad field', (_name, value) => {
    expectRejected(decodeFrame(raw({ ...SAMPLES.reply, txNs: value })), 'bad-field');
    expectRejected(decodeFrame(raw({ ...SAMPLES.reply, rxNs: value })), 'bad-field');
    expectRejected(decodeFrame(raw({ ...SAMPLES.reply, pollTxNs: value })), 'bad-field');
  });

  it('a REPLY carries provisionalNs while the member\'s time is provisional (either sign, up to the limit), and nothing else in its place', () => {
    for (const provisionalNs of [0, -1800e9, 3.5e16, -PROVISIONAL_NS_MAX, PROVISIONAL_NS_MAX]) {
      const frame = { ...SAMPLES.reply, provisionalNs } as Frame;
      const result = decodeFrame(encodeFrame(frame));
      expect(result.ok && result.frame.type === FrameType.reply && result.frame.provisionalNs).toBe(provisionalNs);
    }
    const without = decodeFrame(encodeFrame(SAMPLES.reply as Frame));
    expect(without.ok && without.frame.type === FrameType.reply && 'provisionalNs' in without.frame).toBe(false);
    for (const provisionalNs of [PROVISIONAL_NS_MAX * 2, Number.NaN, Number.POSITIVE_INFINITY, '5', true]) {
      expectRejected(decodeFrame(raw({ ...SAMPLES.reply, provisionalNs })), 'bad-field');
    }
  });

  it('the clock class travels as optional cls / masterCls / candidateCls, and CORRECT may pass an upstream\'s stratum and leap on (issue 18)', () => {
    const cases: [keyof typeof SAMPLES, Record<string, unknown>][] = [
      ['bully', { cls: 1 }],
      ['hello', { cls: 1, masterCls: 1 }],
      ['election', { candidateCls: 1 }],
      ['correct', { refStratum: 2, refLeap: 1 }],
    ];
    for (const [name, fields] of cases) {
      const result = decodeFrame(encodeFrame({ ...SAMPLES[name], ...fields } as Frame));
      expect(result.ok, name).toBe(true);
      if (result.ok) expect(result.frame).toMatchObject(fields);
    }
    // Absent, they stay absent: an agent without an upstream sends what it always sent.
    const plain = decodeFrame(encodeFrame(SAMPLES.bully as Frame));
    expect(plain.ok && 'cls' in plain.frame).toBe(false);
    for (const patch of [{ cls: -1 }, { cls: 256 }, { cls: 0.5 }, { cls: null }]) expectRejected(decodeFrame(raw({ ...SAMPLES.bully, ...patch })), 'bad-field');
    for (const patch of [{ refStratum: 0 }, { refStratum: 16 }, { refLeap: 3 }]) expectRejected(decodeFrame(raw({ ...SAMPLES.correct, ...patch })), 'bad-field');
  });

  it.each([
    ['negative priority', { prio: -1 }],
    ['priority above the maximum', { prio: PRIORITY_MAX + 1 }],
    ['fractional priority', { prio: 1.5 }],
  ])('%s is a bad field', (_name, patch) => {
    expectRejected(decodeFrame(raw({ ...SAMPLES.bully, ...patch })), 'bad-field');
  });

  it('an election candidate priority out of range is a bad field', () => {
    expectRejected(decodeFrame(raw({ ...SAMPLES.election, candidatePrio: PRIORITY_MAX + 1 })), 'bad-field');
  });

  it.each([
    ['too long', { from: 'x'.repeat(NODE_ID_BYTES_MAX + 1) }],
    ['with a space', { from: 'node a' }],
    ['empty', { from: '' }],
    ['with a newline', { from: 'node\na' }],
    ['non-ASCII', { from: 'nödé' }],
    ['a candidate id with a space', { candidateId: 'node q' }],
    ['a candidate id too long', { candidateId: 'q'.repeat(NODE_ID_BYTES_MAX + 1) }],
    ['a cluster too long', { cluster: 'c'.repeat(65) }],
    ['a cluster with a tab', { cluster: 'lab\t1' }],
  ])('a node id %s is a bad field', (_name, patch) => {
    expectRejected(decodeFrame(raw({ ...SAMPLES.election, ...patch })), 'bad-field');
  });

  it.each([0, UNKNOWN_TYPE, 255, -1, 1.5, '1', null])('unknown type %s is rejected as unknown-type', (type) => {
    expectRejected(decodeFrame(raw({ ...poll, type })), 'unknown-type');
  });

  // 1: before frames carried boot and seq (replay protection).
  it.each([0, 1, 3, 255, '2', 2.0000001])('version %s is rejected as bad-version', (v) => {
    expectRejected(decodeFrame(raw({ ...poll, v })), 'bad-version');
  });

  it('a version given as bigint is rejected as bad-version', () => {
    expectRejected(decodeFrame(raw({ ...poll, v: 2n })), 'bad-version');
  });
});

describe('size and top-level value', () => {
  it('a datagram over 1200 bytes is oversize, even if it would decode', () => {
    const padded = raw({ ...SAMPLES.bully, cluster: 'c'.repeat(1300) });
    expect(padded.length).toBeGreaterThan(FRAME_BYTES_MAX);
    expectRejected(decodeFrame(padded), 'oversize');
    expectRejected(decodeFrame(new Uint8Array(FRAME_BYTES_MAX + 1)), 'oversize');
  });

  it('a datagram of exactly 1200 bytes is not rejected for its size', () => {
    const result = decodeFrame(new Uint8Array(FRAME_BYTES_MAX));
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.reason).not.toBe('oversize');
  });

  it.each([
    ['an array', [1, 2, 3]],
    ['an array holding a frame', [SAMPLES.bully]],
    ['a string', 'hello'],
    ['a number', 42],
    ['a boolean', true],
    ['null', null],
    ['a Set', new Set([1, 2])],
    ['a Date', new Date(0)],
    ['an Error', new Error('x')],
    ['a RegExp', /x/],
    ['a Uint8Array', new Uint8Array([1, 2, 3])],
  ])('%s at the top level is not a map', (_name, value) => {
    expectRejected(decodeFrame(raw(value)), 'not-a-map');
  });

  it('typed arrays other than Uint8Array are not a map', () => {
    const morePackr = new Packr({ useRecords: false, moreTypes: true });
    expectRejected(decodeFrame(morePackr.pack(new Float64Array([1, 2]))), 'not-a-map');
    expectRejected(decodeFrame(morePackr.pack(new Int32Array([1, 2]))), 'not-a-map');
  });

  it('an unknown msgpack ext value is malformed', () => {
    // fixext 1, application type 0x10, one data byte: the library does not know the type.
    expectRejected(decodeFrame(Uint8Array.from([0xd4, 0x10, 0x00])), 'malformed');
  });

  it('a known msgpack ext value (timestamp) is not a map', () => {
    // fixext 4, type -1 (timestamp 32): decodes to a Date.
    expectRejected(decodeFrame(Uint8Array.from([0xd6, 0xff, 0x00, 0x00, 0x00, 0x01])), 'not-a-map');
  });

  it('msgpackr records are not maps, even when they carry a valid frame', () => {
    const recordPackr = new Packr({ useRecords: true });
    expectRejected(decodeFrame(recordPackr.pack({ v: 1, zz: 2 })), 'not-a-map');
    expectRejected(decodeFrame(new Packr({ useRecords: true }).pack(SAMPLES.bully)), 'not-a-map');
  });

  it('a frame whose field holds a nested record is a bad field', () => {
    // A map at the top (written by hand), with a record as the cluster value.
    const fields = Object.entries(SAMPLES.bully!).filter(([key]) => key !== 'cluster');
    const recordPackr = new Packr({ useRecords: true });
    const parts: Uint8Array[] = [Uint8Array.from([0x80 | (fields.length + 1)])];
    for (const [key, value] of fields) parts.push(raw(key), raw(value));
    parts.push(raw('cluster'), recordPackr.pack({ x: 1 }));
    const bytes = Buffer.concat(parts);
    const result = decodeFrame(bytes);
    expectRejected(result, 'bad-field');
    if (!result.ok) expect(result.detail).toContain('cluster');
    // The same bytes with a string cluster are a valid frame (the construction itself is sound).
    const plain = Buffer.concat([...parts.slice(0, -1), raw('lab-1')]);
    expect(decodeFrame(plain)).toEqual({ ok: true, frame: SAMPLES.bully });
  });

  it('a msgpack map with integer keys has no version', () => {
    expectRejected(decodeFrame(raw(new Map<unknown, unknown>([[1, 1], [2, 7]]))), 'bad-version');
  });

  it('__proto__ keys neither pollute prototypes nor pass validation', () => {
    const hostile = JSON.parse(
      '{"v":2,"cluster":"c","from":"a","prio":1,"term":1,"boot":1,"seq":1,"txNs":5,"type":5,"__proto__":{"polluted":true,"v":2}}',
    ) as Record<string, unknown>;
    const bytes = raw(hostile);
    // The encoder really wrote a "__proto__" key.
    expect(Buffer.from(bytes).includes(Buffer.from('__proto__'))).toBe(true);
    const result = decodeFrame(bytes);
    expectRejected(result, 'bad-field');
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(Object.prototype).not.toHaveProperty('polluted');

    // A map holding only the __proto__ key (no version) is still a clean rejection.
    const alone = raw(JSON.parse('{"__proto__":{"v":1,"type":5}}'));
    const aloneResult = decodeFrame(alone);
    expectRejected(aloneResult, 'bad-version');
  });

  it('a constructor/prototype key is an unrecognized key', () => {
    expectRejected(decodeFrame(raw({ ...SAMPLES.bully, constructor: { prototype: { x: 1 } } })), 'bad-field');
  });
});
