// The agent side of barriers, driven by hand: retries and refreshes, acks and releases, rejections,
// withdraws, master changes (re-registration with the acked generation, released notices), and the
// local route when the agent is the master.
import { describe, expect, it } from 'vitest';
import { BarrierClient, exchangeLocally } from '../../src/core/barrier/client.ts';
import { BarrierFrameType, barrierRecipient, type BarrierBody, type BarrierSend } from '../../src/core/barrier/frames.ts';
import { BarrierTable } from '../../src/core/barrier/table.ts';
import { BARRIER_NOTICE_MEMORY_MS, BARRIER_REFRESH_MS, BARRIER_RETRY_MS } from '../../src/core/limits.ts';
import { SeededRandom } from '../../src/sim/random.ts';

const BASE = 0x12_3456_7890;

function client(master: string | null = 'M'): { c: BarrierClient; nowMs: number } {
  const c = new BarrierClient({ nodeId: 'a', requestIdBase: BASE });
  if (master !== null) c.masterChanged(master, 0);
  c.drain();
  return { c, nowMs: 0 };
}

const bodies = (sends: BarrierSend[], type: number) => sends.filter((send) => send.body.type === type);

function ack(requestId: number, generation: number | null, extra: Partial<Extract<BarrierBody, { type: 16 }>> = {}): BarrierBody {
  return { type: BarrierFrameType.barrierAck, requestId, name: 'b', generation, confirmed: false, present: 1, count: null, error: null, ...extra };
}

function release(requestIds: number[], generation = 42, exitCode = 0): BarrierBody {
  return { type: BarrierFrameType.barrierRelease, name: 'b', generation, exitCode, requestIds };
}

/** Ticks every ms from `fromMs` to `toMs`, returning everything sent. */
function run(c: BarrierClient, fromMs: number, toMs: number): BarrierSend[] {
  const sends: BarrierSend[] = [];
  for (let nowMs = fromMs; nowMs <= toMs; nowMs += 1) {
    c.tick(nowMs);
    sends.push(...c.drain().sends);
  }
  return sends;
}

describe('joining', () => {
  it('sends the join to the master at once, with request ids counting up from the base', () => {
    const { c } = client();
    const first = c.join({ name: 'b', count: null, errorCode: 0 }, 0);
    const second = c.join({ name: 'b', count: 3, errorCode: 5 }, 0);
    expect(first).toEqual({ ok: true, requestId: BASE });
    expect(second).toEqual({ ok: true, requestId: BASE + 1 });
    expect(c.drain().sends).toEqual([
      { to: 'M', body: { type: BarrierFrameType.barrierJoin, name: 'b', requestId: BASE, count: null, errorCode: 0, generation: null } },
      { to: 'M', body: { type: BarrierFrameType.barrierJoin, name: 'b', requestId: BASE + 1, count: 3, errorCode: 5, generation: null } },
    ]);
  });

  it('refuses usage errors without asking the master', () => {
    const { c } = client();
    expect(c.join({ name: 'x'.repeat(65), count: null, errorCode: 0 }, 0)).toMatchObject({ ok: false, reason: 'bad-name' });
    expect(c.join({ name: 'b', count: -1, errorCode: 0 }, 0)).toMatchObject({ ok: false, reason: 'bad-count' });
    expect(c.join({ name: 'b', count: 4097, errorCode: 0 }, 0)).toMatchObject({ ok: false, reason: 'waiter-limit' });
    expect(c.join({ name: 'b', count: null, errorCode: 240 }, 0)).toMatchObject({ ok: false, reason: 'bad-error-code' });
    expect(c.drain().sends).toEqual([]);
  });

  it('without a master nothing is sent until one is known', () => {
    const { c } = client(null);
    c.join({ name: 'b', count: null, errorCode: 0 }, 0);
    expect(run(c, 0, 1000)).toEqual([]);
    expect(c.nextDeadlineMs()).toBeNull();
    c.masterChanged('M', 1000);
    expect(bodies(c.drain().sends, BarrierFrameType.barrierJoin)).toHaveLength(1);
  });

  it('retries an unacknowledged join every BARRIER_RETRY_MS, then refreshes every BARRIER_REFRESH_MS once counted', () => {
    const { c } = client();
    const result = c.join({ name: 'b', count: null, errorCode: 0 }, 0);
    const requestId = result.ok ? result.requestId : -1;
    c.drain();
    const retries = run(c, 1, 1000);
    expect(retries.map((send) => send.body.type)).toEqual(Array(1000 / BARRIER_RETRY_MS).fill(BarrierFrameType.barrierJoin));
    expect(c.nextDeadlineMs()).toBe(1000 + BARRIER_RETRY_MS);
    // Acked: it confirms at once, carrying the generation.
    c.receive(ack(requestId, 77), 'M', 1001);
    const drained = c.drain();
    expect(drained.sends).toEqual([{ to: 'M', body: expect.objectContaining({ type: BarrierFrameType.barrierJoin, requestId, generation: 77 }) }]);
    expect(drained.outcomes).toEqual([{ kind: 'acked', requestId, name: 'b', generation: 77, present: 1, count: null }]);
    // Not confirmed yet: keeps retrying quickly.
    expect(run(c, 1002, 1001 + BARRIER_RETRY_MS)).toHaveLength(1);
    c.receive(ack(requestId, 77, { confirmed: true }), 'M', 1300);
    expect(c.drain().outcomes).toEqual([]);
    expect(run(c, 1301, 1300 + BARRIER_REFRESH_MS - 1)).toEqual([]);
    const refresh = run(c, 1300 + BARRIER_REFRESH_MS, 1300 + BARRIER_REFRESH_MS);
    expect(refresh).toEqual([{ to: 'M', body: expect.objectContaining({ requestId, generation: 77 }) }]);
    expect(c.participants()).toEqual([expect.objectContaining({ requestId, generation: 77, confirmed: true })]);
  });

  it('ignores acks from a node that is not its master', () => {
    const { c } = client();
    const result = c.join({ name: 'b', count: null, errorCode: 0 }, 0);
    c.drain();
    c.receive(ack(result.ok ? result.requestId : -1, 77), 'OLD', 10);
    expect(c.drain()).toEqual({ sends: [], outcomes: [] });
    expect(c.counters.acksIgnored).toBe(1);
  });

  it('a refusal is final', () => {
    const { c } = client();
    const result = c.join({ name: 'b', count: 1, errorCode: 0 }, 0);
    const requestId = result.ok ? result.requestId : -1;
    c.drain();
    c.receive(ack(requestId, null, { error: 'second-initializer' }), 'M', 10);
    expect(c.drain().outcomes).toEqual([{ kind: 'rejected', requestId, name: 'b', reason: 'second-initializer' }]);
    expect(run(c, 11, 3000)).toEqual([]);
  });
});

describe('releases', () => {
  it('a release resolves the participant once and is acknowledged to its sender, duplicates too', () => {
    const { c } = client();
    const result = c.join({ name: 'b', count: null, errorCode: 0 }, 0);
    const requestId = result.ok ? result.requestId : -1;
    c.drain();
    c.receive(release([requestId], 42, 7), 'M', 10);
    const first = c.drain();
    expect(first.outcomes).toEqual([{ kind: 'released', requestId, name: 'b', generation: 42, exitCode: 7, releaseAtNs: null }]);
    expect(first.sends).toEqual([{ to: 'M', body: { type: BarrierFrameType.barrierReleaseAck, generation: 42, requestIds: [requestId] } }]);
    c.receive(release([requestId], 42, 7), 'M', 20);
    const second = c.drain();
    expect(second.outcomes).toEqual([]);
    expect(bodies(second.sends, BarrierFrameType.barrierReleaseAck)).toHaveLength(1);
    expect(c.counters.releasesDuplicate).toBe(1);
    // Nothing is pending any more.
    expect(run(c, 21, 3000).filter((send) => send.body.type === BarrierFrameType.barrierJoin)).toEqual([]);
  });

  it('a release from the old master after a change is reported to the new one', () => {
    const { c } = client();
    const result = c.join({ name: 'b', count: null, errorCode: 0 }, 0);
    c.masterChanged('N', 5);
    c.drain();
    c.receive(release([result.ok ? result.requestId : -1], 42, 3), 'M', 10);
    const sends = c.drain().sends;
    expect(sends).toContainEqual({ to: 'M', body: expect.objectContaining({ type: BarrierFrameType.barrierReleaseAck }) });
    expect(sends).toContainEqual({ to: 'N', body: { type: BarrierFrameType.barrierReleased, name: 'b', generation: 42, exitCode: 3 } });
  });
});

describe('master changes', () => {
  it('re-registers pending participants with their acked generation and reports recent releases until acknowledged', () => {
    const { c } = client();
    const one = c.join({ name: 'b', count: null, errorCode: 2 }, 0);
    const two = c.join({ name: 'b', count: null, errorCode: 0 }, 0);
    const idOne = one.ok ? one.requestId : -1;
    const idTwo = two.ok ? two.requestId : -1;
    c.receive(ack(idOne, 77, { confirmed: true }), 'M', 5);
    c.receive(release([idTwo], 99, 0), 'M', 6);
    c.drain();
    c.masterChanged('N', 100);
    const sends = c.drain().sends;
    expect(sends).toEqual([
      { to: 'N', body: { type: BarrierFrameType.barrierReleased, name: 'b', generation: 99, exitCode: 0 } },
      { to: 'N', body: { type: BarrierFrameType.barrierJoin, name: 'b', requestId: idOne, count: null, errorCode: 2, generation: 77 } },
    ]);
    // The notice is repeated until N acknowledges it (an empty release ack).
    const repeated = run(c, 101, 100 + 2 * BARRIER_RETRY_MS);
    expect(bodies(repeated, BarrierFrameType.barrierReleased)).toHaveLength(2);
    c.receive({ type: BarrierFrameType.barrierReleaseAck, generation: 99, requestIds: [] }, 'N', 500);
    expect(bodies(run(c, 501, 2000), BarrierFrameType.barrierReleased)).toEqual([]);
    // Re-registered participants retry quickly again until the new master counts them.
    expect(c.participants()[0]?.confirmed).toBe(false);
  });

  it('forgets released generations after BARRIER_NOTICE_MEMORY_MS', () => {
    const { c } = client();
    c.receive(release([1], 99, 0), 'M', 0);
    c.drain();
    c.masterChanged('N', BARRIER_NOTICE_MEMORY_MS + 1);
    expect(c.drain().sends).toEqual([]);
  });
});

describe('withdrawing', () => {
  it('withdraws until the master acknowledges, with no outcome', () => {
    const { c } = client();
    const result = c.join({ name: 'b', count: null, errorCode: 0 }, 0);
    const requestId = result.ok ? result.requestId : -1;
    c.drain();
    expect(c.withdraw(requestId, 10)).toBe(true);
    expect(c.withdraw(requestId, 10)).toBe(false);
    expect(c.drain().sends).toEqual([{ to: 'M', body: { type: BarrierFrameType.barrierWithdraw, name: 'b', requestId } }]);
    expect(run(c, 11, 10 + BARRIER_RETRY_MS)).toHaveLength(1);
    c.receive(ack(requestId, null, { error: 'withdrawn' }), 'M', 300);
    expect(c.drain().outcomes).toEqual([]);
    expect(run(c, 301, 3000)).toEqual([]);
    expect(c.participants()).toEqual([]);
  });

  it('a release that overtakes the withdraw ends it too', () => {
    const { c } = client();
    const result = c.join({ name: 'b', count: null, errorCode: 0 }, 0);
    const requestId = result.ok ? result.requestId : -1;
    c.withdraw(requestId, 10);
    c.drain();
    c.receive(release([requestId]), 'M', 20);
    expect(c.drain().outcomes).toEqual([]);
    expect(run(c, 21, 3000)).toEqual([]);
  });
});

describe('on the master itself', () => {
  it('frames to itself go through its own table, without the network', () => {
    const random = new SeededRandom(3);
    const table = new BarrierTable({ random: () => random.next() });
    const { c } = client('a');
    const waiter = c.join({ name: 'b', count: null, errorCode: 4 }, 0);
    const initializer = c.join({ name: 'b', count: 1, errorCode: 0 }, 0);
    const { network, outcomes } = exchangeLocally('a', c, table, 0);
    expect(network).toEqual([]);
    const released = outcomes.filter((outcome) => outcome.kind === 'released');
    expect(released.map((outcome) => outcome.requestId).sort()).toEqual([waiter.ok && waiter.requestId, initializer.ok && initializer.requestId].sort());
    expect(released.every((outcome) => outcome.kind === 'released' && outcome.exitCode === 4)).toBe(true);
    expect(table.status(0).open).toEqual([]);
  });

  it('routes each frame type to the table or the client', () => {
    expect(barrierRecipient({ type: BarrierFrameType.barrierJoin, name: 'b', requestId: 1, count: null, errorCode: 0, generation: null })).toBe('table');
    expect(barrierRecipient({ type: BarrierFrameType.barrierReleaseAck, generation: 1, requestIds: [1] })).toBe('table');
    expect(barrierRecipient({ type: BarrierFrameType.barrierReleaseAck, generation: 1, requestIds: [] })).toBe('client');
    expect(barrierRecipient(release([1]))).toBe('client');
    expect(barrierRecipient({ type: BarrierFrameType.barrierReleased, name: 'b', generation: 1, exitCode: 0 })).toBe('table');
  });
});
