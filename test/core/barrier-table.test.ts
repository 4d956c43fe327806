// The master's barrier table, driven by hand: emulab-sync semantics, duplicates, withdraws,
// limits, the memory of released participants, retransmission, expiry, and a new master's handling
// of participants re-registered from a previous master's generation.
import { describe, expect, it } from 'vitest';
import { BarrierFrameType, type BarrierBody } from '../../src/core/barrier/frames.ts';
import {
  BARRIER_RELEASE_ATTEMPTS_MAX,
  BARRIER_RETRY_MS,
  BARRIER_TAKEOVER_SETTLE_MS,
  BARRIER_WAITERS_MAX,
  BARRIERS_OPEN_MAX,
  FRAME_BYTES_MAX,
} from '../../src/core/limits.ts';
import { TableDriver, acksIn, decodeBarrier, encodeBarrier, joinBody, releasedIds, releasesIn } from '../support/barrier.ts';

describe('emulab semantics', () => {
  it('waiters may arrive before the initializer; all are released together when it arrives', () => {
    const t = new TableDriver();
    expect(releasedIds(t.participate('a', 'b1', 1))).toEqual([]);
    expect(releasedIds(t.participate('b', 'b1', 2))).toEqual([]);
    expect(t.openBarrier('b1')).toMatchObject({ present: 2, confirmed: 2, initialized: false, count: null });
    // The initializer's join alone (not yet confirmed) releases nothing.
    const first = t.join('c', 'b1', 3, { count: 2 });
    expect(releasedIds(first)).toEqual([]);
    const ack = acksIn(first)[0];
    expect(ack).toMatchObject({ to: 'c', requestId: 3, confirmed: false, present: 2, count: 2, error: null });
    const sends = t.join('c', 'b1', 3, { count: 2, generation: ack?.generation ?? null });
    expect(releasedIds(sends)).toEqual(['a:1', 'b:2', 'c:3']);
    const generations = new Set(releasesIn(sends).map((release) => release.generation));
    expect(generations).toEqual(new Set([ack?.generation]));
    expect(releasesIn(sends).every((release) => release.exitCode === 0)).toBe(true);
    expect(t.openBarrier('b1')).toBeUndefined();
    expect(t.table.counters.generationsReleased).toBe(1);
  });

  it('the initializer first: nothing is released until the count of waiters is reached', () => {
    const t = new TableDriver();
    expect(releasedIds(t.participate('m', 'x', 10, { count: 3 }))).toEqual([]);
    expect(releasedIds(t.participate('a', 'x', 1))).toEqual([]);
    expect(releasedIds(t.participate('b', 'x', 2))).toEqual([]);
    expect(t.openBarrier('x')).toMatchObject({ present: 2, initialized: true, count: 3 });
    expect(releasedIds(t.participate('c', 'x', 3))).toEqual(['a:1', 'b:2', 'c:3', 'm:10']);
  });

  it('a name can be used again after release, in a new generation', () => {
    const t = new TableDriver();
    t.participate('a', 'loop', 1);
    const firstRelease = releasesIn(t.participate('m', 'loop', 2, { count: 1 }));
    expect(firstRelease).toHaveLength(2);
    const firstGeneration = firstRelease[0]?.generation;
    expect(releasedIds(t.participate('a', 'loop', 3))).toEqual([]);
    const open = t.openBarrier('loop');
    expect(open?.generation).not.toBe(firstGeneration);
    expect(open).toMatchObject({ present: 1, initialized: false });
    const second = t.participate('m', 'loop', 4, { count: 1 });
    expect(releasedIds(second)).toEqual(['a:3', 'm:4']);
    expect(releasesIn(second)[0]?.generation).toBe(open?.generation);
  });

  it('--count 0 releases the initializer alone, at once', () => {
    const t = new TableDriver();
    expect(releasedIds(t.participate('m', 'zero', 1, { count: 0 }))).toEqual(['m:1']);
    // Waiters already present are released with it (emulab's count would be negative).
    t.participate('a', 'zero2', 2);
    expect(releasedIds(t.participate('m', 'zero2', 3, { count: 0 }))).toEqual(['a:2', 'm:3']);
  });

  it('a second initializer is refused, and the barrier carries on with the first', () => {
    const t = new TableDriver();
    t.participate('m', 'two', 1, { count: 1 });
    const sends = t.join('n', 'two', 2, { count: 1 });
    expect(acksIn(sends)).toEqual([expect.objectContaining({ to: 'n', requestId: 2, generation: null, error: 'second-initializer' })]);
    expect(t.table.counters.rejected['second-initializer']).toBe(1);
    // A duplicate of the refused join is answered the same way and still not counted.
    expect(acksIn(t.join('n', 'two', 2, { count: 1 }))[0]?.error).toBe('second-initializer');
    expect(t.openBarrier('two')).toMatchObject({ count: 1, present: 0 });
    expect(releasedIds(t.participate('a', 'two', 3))).toEqual(['a:3', 'm:1']);
  });

  it('everyone is released with the largest error code reported', () => {
    const t = new TableDriver();
    t.participate('a', 'err', 1, { errorCode: 3 });
    t.participate('b', 'err', 2, { errorCode: 7 });
    const releases = releasesIn(t.participate('m', 'err', 3, { count: 2, errorCode: 0 }));
    expect(releases.map((release) => [release.to, release.exitCode]).sort()).toEqual([
      ['a', 7],
      ['b', 7],
      ['m', 7],
    ]);
  });

  it('duplicated joins count once', () => {
    const t = new TableDriver();
    t.participate('a', 'dup', 1);
    t.participate('a', 'dup', 1);
    t.join('a', 'dup', 1);
    expect(t.openBarrier('dup')).toMatchObject({ present: 1, confirmed: 1 });
    expect(t.table.counters.refreshes).toBeGreaterThanOrEqual(3);
    // The same request id from another node is another participant.
    t.participate('b', 'dup', 1);
    expect(t.openBarrier('dup')).toMatchObject({ present: 2 });
    expect(releasedIds(t.participate('m', 'dup', 9, { count: 3 }))).toEqual([]);
    expect(releasedIds(t.participate('c', 'dup', 1))).toEqual(['a:1', 'b:1', 'c:1', 'm:9']);
  });

  it('a participant counts only once it confirmed its generation', () => {
    const t = new TableDriver();
    t.participate('m', 'conf', 1, { count: 1 });
    const sends = t.join('a', 'conf', 2);
    expect(releasedIds(sends)).toEqual([]);
    expect(t.openBarrier('conf')).toMatchObject({ present: 1, confirmed: 0 });
    // A wrong generation does not confirm.
    expect(releasedIds(t.join('a', 'conf', 2, { generation: 12345 }))).toEqual([]);
    const generation = acksIn(sends)[0]?.generation ?? null;
    expect(releasedIds(t.join('a', 'conf', 2, { generation }))).toEqual(['a:2', 'm:1']);
  });

  it('a waiter beyond the count that has not confirmed yet waits for the next generation', () => {
    const t = new TableDriver();
    t.participate('a', 'extra', 1);
    const lateAck = acksIn(t.join('b', 'extra', 2))[0];
    const released = t.participate('m', 'extra', 3, { count: 1 });
    expect(releasedIds(released)).toEqual(['a:1', 'm:3']);
    const open = t.openBarrier('extra');
    expect(open).toMatchObject({ present: 1, initialized: false });
    expect(open?.generation).not.toBe(lateAck?.generation);
    // It was told its new generation; its confirmation of the old one does not count or release it.
    expect(acksIn(released)).toContainEqual(expect.objectContaining({ to: 'b', requestId: 2, generation: open?.generation }));
    expect(releasedIds(t.join('b', 'extra', 2, { generation: lateAck?.generation ?? null }))).toEqual([]);
    expect(t.openBarrier('extra')?.confirmed).toBe(0);
  });

  it('withdrawing decrements; the withdrawn participant cannot be added back by a stale join', () => {
    const t = new TableDriver();
    t.participate('a', 'w', 1);
    t.participate('b', 'w', 2);
    const sends = t.deliver('a', { type: BarrierFrameType.barrierWithdraw, name: 'w', requestId: 1 });
    expect(acksIn(sends)).toContainEqual(expect.objectContaining({ to: 'a', requestId: 1, error: 'withdrawn' }));
    expect(t.openBarrier('w')).toMatchObject({ present: 1, confirmed: 1 });
    expect(t.table.counters.withdrawn).toBe(1);
    expect(acksIn(t.join('a', 'w', 1))[0]?.error).toBe('withdrawn');
    expect(t.openBarrier('w')?.present).toBe(1);
    // A count of 2 is now not reached by b alone.
    expect(releasedIds(t.participate('m', 'w', 3, { count: 2 }))).toEqual([]);
    // The initializer withdrawing leaves the barrier uninitialized.
    t.deliver('m', { type: BarrierFrameType.barrierWithdraw, name: 'w', requestId: 3 });
    expect(t.openBarrier('w')).toMatchObject({ initialized: false, present: 1 });
    // The last one withdrawing frees the name.
    t.deliver('b', { type: BarrierFrameType.barrierWithdraw, name: 'w', requestId: 2 });
    expect(t.openBarrier('w')).toBeUndefined();
  });

  it('a withdraw that arrives after the release is answered with the release', () => {
    const t = new TableDriver();
    t.participate('a', 'late', 1);
    t.participate('m', 'late', 2, { count: 1 });
    const sends = t.deliver('a', { type: BarrierFrameType.barrierWithdraw, name: 'late', requestId: 1 });
    expect(releasedIds(sends)).toEqual(['a:1']);
  });
});

describe('limits', () => {
  it('names: up to 64 bytes of printable ASCII', () => {
    const t = new TableDriver();
    expect(acksIn(t.join('a', 'n'.repeat(64), 1))[0]?.error).toBeNull();
    expect(acksIn(t.join('a', 'n'.repeat(65), 2))[0]?.error).toBe('bad-name');
    expect(acksIn(t.join('a', 'with space', 3))[0]?.error).toBe('bad-name');
    expect(acksIn(t.join('a', '', 4))[0]?.error).toBe('bad-name');
    expect(t.table.counters.rejected['bad-name']).toBe(3);
  });

  it(`at most ${BARRIER_WAITERS_MAX} waiters per barrier, and no count above that`, () => {
    const t = new TableDriver();
    for (let id = 1; id <= BARRIER_WAITERS_MAX; id += 1) t.participate(`node${id % 97}`, 'big', id);
    expect(t.openBarrier('big')).toMatchObject({ present: BARRIER_WAITERS_MAX, confirmed: BARRIER_WAITERS_MAX });
    expect(acksIn(t.join('late', 'big', 1))[0]?.error).toBe('waiter-limit');
    expect(acksIn(t.join('m', 'other', 1, { count: BARRIER_WAITERS_MAX + 1 }))[0]?.error).toBe('waiter-limit');
    // The initializer is not a waiter: a full barrier can still be initialized and released.
    const released = t.participate('m', 'big', 2, { count: BARRIER_WAITERS_MAX });
    expect(releasedIds(released)).toHaveLength(BARRIER_WAITERS_MAX + 1);
    // Released in frames of at most 64 ids, each under the frame size limit.
    for (const release of releasesIn(released)) {
      expect(release.requestIds.length).toBeLessThanOrEqual(64);
    }
  });

  it(`at most ${BARRIERS_OPEN_MAX} open barriers`, () => {
    const t = new TableDriver();
    for (let index = 0; index < BARRIERS_OPEN_MAX; index += 1) {
      expect(acksIn(t.join('a', `b${index}`, index + 1))[0]?.error).toBeNull();
    }
    expect(acksIn(t.join('a', 'one-more', 5000))[0]?.error).toBe('barrier-limit');
    // Joining an open one is still fine, and a released one frees a slot.
    expect(acksIn(t.join('b', 'b0', 1))[0]?.error).toBeNull();
    t.participate('m', 'b1', 6000, { count: 0 });
    expect(acksIn(t.participate('m', 'b1', 6001, { count: 5 }))[0]?.error).toBeNull();
    t.participate('a', 'b2', 3); // joined above: a refresh and a confirmation, not a new participant
    t.participate('m', 'b2', 6002, { count: 1 });
    expect(t.openBarrier('b2')).toBeUndefined();
    expect(acksIn(t.join('c', 'new-name', 1))[0]?.error).toBeNull();
    expect(acksIn(t.join('c', 'newer-name', 2))[0]?.error).toBe('barrier-limit');
  });

  it('participants in all barriers together are bounded', () => {
    const t = new TableDriver({ participantsMax: 3 });
    t.join('a', 'p1', 1);
    t.join('a', 'p2', 2);
    t.join('a', 'p2', 3);
    expect(acksIn(t.join('a', 'p3', 4))[0]?.error).toBe('participant-limit');
  });
});

describe('releases: retransmission and memory', () => {
  it('retransmits a release until acknowledged, at most BARRIER_RELEASE_ATTEMPTS_MAX times', () => {
    const t = new TableDriver();
    t.participate('a', 'r', 1);
    t.participate('b', 'r', 2);
    const release = releasesIn(t.participate('m', 'r', 3, { count: 2 }));
    const generation = release[0]?.generation as number;
    t.deliver('m', { type: BarrierFrameType.barrierReleaseAck, generation, requestIds: [3] });
    t.deliver('b', { type: BarrierFrameType.barrierReleaseAck, generation, requestIds: [2] });
    const resent = t.advance(BARRIER_RETRY_MS * (BARRIER_RELEASE_ATTEMPTS_MAX + 5));
    // Only a (which never acked) gets it again; the first send counts as an attempt.
    expect(releasedIds(resent)).toEqual(Array(BARRIER_RELEASE_ATTEMPTS_MAX - 1).fill('a:1'));
    expect(t.table.counters.releasesAbandoned).toBe(1);
  });

  it('an ack stops the retransmission', () => {
    const t = new TableDriver();
    t.participate('a', 'r', 1);
    const release = releasesIn(t.participate('m', 'r', 2, { count: 1 }));
    expect(releasedIds(t.advance(BARRIER_RETRY_MS))).toEqual(['a:1', 'm:2']);
    t.deliver('a', { type: BarrierFrameType.barrierReleaseAck, generation: release[0]?.generation as number, requestIds: [1] });
    expect(releasedIds(t.advance(BARRIER_RETRY_MS * 3))).toEqual(['m:2', 'm:2', 'm:2']);
  });

  it('a participant that joins again after its release gets the release again, not a new generation', () => {
    const t = new TableDriver();
    const ack = acksIn(t.participate('a', 'again', 1))[0];
    const first = releasesIn(t.participate('m', 'again', 2, { count: 1 }));
    // A refresh carrying the generation, and a duplicate of the very first join (no generation).
    for (const body of [joinBody('again', 1, { generation: ack?.generation ?? null }), joinBody('again', 1)]) {
      const sends = t.deliver('a', body);
      expect(releasesIn(sends)).toEqual([expect.objectContaining({ to: 'a', requestIds: [1], generation: first[0]?.generation, exitCode: 0 })]);
    }
    expect(t.openBarrier('again')).toBeUndefined();
  });

  it('the memory of released participants is bounded in count and in age; the generation is remembered longer', () => {
    const t = new TableDriver({ releasedRememberedMax: 2, releasedMemoryMs: 10_000, generationMemoryMs: 100_000 });
    t.participate('a', 'm', 1);
    t.participate('b', 'm', 2);
    const release = releasesIn(t.participate('c', 'm', 3, { count: 2 }));
    const generation = release[0]?.generation as number;
    expect(t.table.status(t.nowMs).rememberedReleased).toBe(2);
    // a:1 was forgotten (count bound): a duplicate of its first join (no generation) starts a new
    // barrier; its join carrying the generation is still released thanks to the generation memory.
    expect(releasedIds(t.join('a', 'm', 1, { generation }))).toEqual(['a:1']);
    // Now c and a are remembered, b is not.
    expect(releasedIds(t.join('c', 'm', 3))).toEqual(['c:3']);
    expect(releasedIds(t.join('b', 'm', 2))).toEqual([]);
    expect(t.openBarrier('m')?.present).toBe(1);
    t.advance(10_500);
    expect(t.table.status(t.nowMs).rememberedReleased).toBe(0);
    expect(releasedIds(t.join('a', 'm', 1, { generation }))).toEqual(['a:1']);
    expect(releasedIds(t.join('c', 'm', 3))).toEqual([]);
    t.advance(100_000);
    expect(t.table.status(t.nowMs).rememberedGenerations).toBe(0);
  });

  it('a participant whose agent stops refreshing expires; a later refresh adds it back', () => {
    const t = new TableDriver({ memberExpiryMs: 5000 });
    const ack = acksIn(t.participate('a', 'exp', 1))[0];
    t.participate('b', 'exp', 2);
    t.advance(3000);
    t.join('b', 'exp', 2, { generation: ack?.generation ?? null });
    t.advance(3000);
    expect(t.openBarrier('exp')).toMatchObject({ present: 1 });
    expect(t.table.counters.expired).toBe(1);
    // Back with the generation it was acked into: counted again at once.
    t.join('a', 'exp', 1, { generation: ack?.generation ?? null });
    expect(t.openBarrier('exp')).toMatchObject({ present: 2, confirmed: 2 });
  });
});

describe('a new master', () => {
  const settle = BARRIER_TAKEOVER_SETTLE_MS;

  it('groups re-registered participants by their old generation and releases a group complete on its own at once', () => {
    const t = new TableDriver();
    const old = 777;
    expect(releasedIds(t.join('a', 'g', 1, { generation: old }))).toEqual([]);
    const sends = t.join('m', 'g', 2, { count: 1, generation: old });
    expect(releasedIds(sends)).toEqual(['a:1', 'm:2']);
    expect(releasesIn(sends)[0]?.generation).toBe(old);
  });

  it('merges an old generation with fresh joins only once settled', () => {
    const t = new TableDriver();
    const old = 777;
    const ackA = acksIn(t.join('a', 'g', 1, { generation: old }))[0];
    // Acked in its old generation and counted at once (it proved it knows it).
    expect(ackA).toMatchObject({ generation: old, confirmed: true });
    t.join('b', 'g', 2, { generation: old });
    // The initializer's join reaches the new master fresh.
    expect(releasedIds(t.participate('m', 'g', 3, { count: 2 }))).toEqual([]);
    expect(t.openBarrier('g')).toMatchObject({ inherited: 2, present: 2 });
    expect(releasedIds(t.advance(settle - 100))).toEqual([]);
    // Settled: merged, told the new generation, counted once confirmed.
    const merged = t.advance(200);
    const newGeneration = t.openBarrier('g')?.generation;
    expect(acksIn(merged).map((ack) => [ack.to, ack.generation, ack.confirmed])).toEqual([
      ['a', newGeneration, false],
      ['b', newGeneration, false],
    ]);
    expect(releasedIds(t.join('a', 'g', 1, { generation: newGeneration ?? null }))).toEqual([]);
    const released = t.join('b', 'g', 2, { generation: newGeneration ?? null });
    expect(releasedIds(released)).toEqual(['a:1', 'b:2', 'm:3']);
    expect(releasesIn(released)[0]?.generation).toBe(newGeneration);
  });

  it('pulls out and releases an old generation reported released, without counting it with the next use', () => {
    const t = new TableDriver();
    const old = 777;
    // The old master released `old` (a got it); b's and m's releases were lost. m is back for the
    // next use of the name already, as initializer again, and c is a waiter of that next use.
    t.join('b', 'g', 2, { generation: old, errorCode: 4 });
    t.join('m', 'g', 3, { generation: old, count: 2 });
    // Not complete on its own: it had two waiters (a and b), only b re-registered.
    expect(t.openBarrier('g')).toMatchObject({ inherited: 2 });
    t.participate('m', 'g', 10, { count: 2 });
    t.participate('c', 'g', 11);
    expect(releasedIds(t.advance(100))).toEqual([]);
    const sends = t.deliver('a', { type: BarrierFrameType.barrierReleased, name: 'g', generation: old, exitCode: 9 });
    expect(sends).toContainEqual({ to: 'a', body: { type: BarrierFrameType.barrierReleaseAck, generation: old, requestIds: [] } });
    const released = releasesIn(sends);
    expect(releasedIds(sends)).toEqual(['b:2', 'm:3']);
    expect(released.every((release) => release.generation === old && release.exitCode === 9)).toBe(true);
    expect(t.table.counters.participantsReleasedByNotice).toBe(2);
    t.deliver('b', { type: BarrierFrameType.barrierReleaseAck, generation: old, requestIds: [2] });
    t.deliver('m', { type: BarrierFrameType.barrierReleaseAck, generation: old, requestIds: [3] });
    // The next use is on its own now, and not complete: never merged with b (that would release it).
    expect(releasedIds(t.advance(settle + 500))).toEqual([]);
    expect(t.openBarrier('g')).toMatchObject({ inherited: 0, present: 1, count: 2 });
    expect(releasedIds(t.participate('d', 'g', 12))).toEqual(['c:11', 'd:12', 'm:10']);
  });

  it('answers a join for a generation reported released with the release, immediately or later', () => {
    const t = new TableDriver();
    t.deliver('a', { type: BarrierFrameType.barrierReleased, name: 'g', generation: 555, exitCode: 2 });
    const sends = t.join('b', 'g', 7, { generation: 555 });
    expect(releasesIn(sends)).toEqual([expect.objectContaining({ to: 'b', generation: 555, exitCode: 2, requestIds: [7] })]);
    expect(t.openBarrier('g')).toBeUndefined();
  });

  it('a notice for a generation this table has open is ignored', () => {
    const t = new TableDriver();
    const ack = acksIn(t.participate('a', 'g', 1))[0];
    const sends = t.deliver('b', { type: BarrierFrameType.barrierReleased, name: 'g', generation: ack?.generation as number, exitCode: 1 });
    expect(releasedIds(sends)).toEqual([]);
    expect(t.openBarrier('g')?.present).toBe(1);
  });

  it('when merging, the initializer this table admitted wins over an inherited second one', () => {
    const t = new TableDriver();
    t.join('x', 'g', 1, { generation: 777, count: 3 });
    t.participate('m', 'g', 2, { count: 1 });
    const merged = t.advance(settle + 100);
    expect(acksIn(merged)).toContainEqual(expect.objectContaining({ to: 'x', requestId: 1, error: 'second-initializer' }));
    expect(releasedIds(t.participate('a', 'g', 3))).toEqual(['a:3', 'm:2']);
  });
});

describe('frames', () => {
  const worst: BarrierBody[] = [
    { type: BarrierFrameType.barrierJoin, name: 'x'.repeat(64), requestId: Number.MAX_SAFE_INTEGER, count: 4096, errorCode: 239, generation: Number.MAX_SAFE_INTEGER },
    {
      type: BarrierFrameType.barrierAck,
      requestId: Number.MAX_SAFE_INTEGER,
      name: 'x'.repeat(64),
      generation: Number.MAX_SAFE_INTEGER,
      confirmed: true,
      present: 4096,
      count: 4096,
      error: 'e'.repeat(32),
    },
    {
      type: BarrierFrameType.barrierRelease,
      name: 'x'.repeat(64),
      generation: Number.MAX_SAFE_INTEGER,
      exitCode: 239,
      requestIds: Array.from({ length: 64 }, (_, index) => Number.MAX_SAFE_INTEGER - index),
    },
    { type: BarrierFrameType.barrierReleaseAck, generation: Number.MAX_SAFE_INTEGER, requestIds: Array.from({ length: 64 }, (_, index) => 2 ** 52 + index) },
    { type: BarrierFrameType.barrierWithdraw, name: 'x'.repeat(64), requestId: Number.MAX_SAFE_INTEGER },
    { type: BarrierFrameType.barrierReleased, name: 'x'.repeat(64), generation: Number.MAX_SAFE_INTEGER, exitCode: 239 },
  ];

  it('every body at its largest encodes under the frame limit with the largest header, and decodes back', () => {
    for (const body of worst) {
      const bytes = encodeBarrier(body);
      expect(bytes.length, `type ${body.type}`).toBeLessThan(FRAME_BYTES_MAX);
      expect(decodeBarrier(bytes)).toEqual({ ok: true, body });
    }
  });

  it('64-bit integers from other encoders (bigint after decoding) are accepted', () => {
    const decoded = decodeBarrier(encodeBarrier({ ...worst[0], requestId: 2n ** 40n } as unknown as BarrierBody));
    expect(decoded).toMatchObject({ ok: true, body: { requestId: 2 ** 40 } });
  });

  it('out-of-range fields are refused by the shapes', () => {
    const bad: Record<string, unknown>[] = [
      { ...worst[0], name: 'x'.repeat(65) },
      { ...worst[0], errorCode: 240 },
      { ...worst[0], requestId: -1 },
      { ...worst[2], requestIds: Array.from({ length: 65 }, (_, index) => index) },
      { ...worst[1], extra: 1 },
    ];
    for (const body of bad) expect(decodeBarrier(encodeBarrier(body as unknown as BarrierBody)).ok).toBe(false);
  });
});
