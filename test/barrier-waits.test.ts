// Control clients waiting on barriers (src/daemon/barrier-waits.ts) against a stand-in for the
// agent: what each client is told for every way a wait can end, and that the node hears of the
// withdrawals. Fake timers: no waiting for real time.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { BarrierJoinRequest } from '../src/core/barrier/client.ts';
import { BARRIER_LOCAL_WAITERS_MAX, BARRIER_REGISTER_TIMEOUT_MS, BARRIERS_OPEN_MAX } from '../src/core/limits.ts';
import { BarrierWaits, type BarrierRequest } from '../src/daemon/barrier-waits.ts';

function harness(options: { refuse?: boolean } = {}) {
  let nowMs = 1000;
  let stopped = false;
  let nextRequestId = 1;
  const joins: BarrierJoinRequest[] = [];
  const withdrawn: number[] = [];
  let pumps = 0;
  const waits = new BarrierWaits({
    monoMs: () => nowMs,
    stopped: () => stopped,
    join: (request) => {
      joins.push(request);
      return options.refuse ? { ok: false, reason: 'bad-name', detail: 'no' } : { ok: true, requestId: nextRequestId++ };
    },
    withdraw: (requestId) => void withdrawn.push(requestId),
    pump: () => void (pumps += 1),
    clockInfo: () => ({ mode: 'virtual' as const, hostOffsetNs: 1234, hostAnchorErrorNs: 0, synchronized: true, errorBoundNs: 50_000 }),
    log: { debug: () => {} },
  });
  return {
    waits,
    joins,
    withdrawn,
    pumps: () => pumps,
    advance: (ms: number) => {
      nowMs += ms;
      vi.advanceTimersByTime(ms);
    },
    stop: () => (stopped = true),
  };
}

const request = (change: Partial<BarrierRequest> = {}): BarrierRequest => ({ name: 'b1', count: null, errorCode: 0, wait: true, timeoutMs: null, ...change });

beforeEach(() => vi.useFakeTimers());
afterEach(() => vi.useRealTimers());

describe('BarrierWaits', () => {
  it('released: the client gets the exit code and how long it waited; the node was asked to join', async () => {
    const h = harness();
    const { result } = h.waits.start(request({ errorCode: 3 }));
    expect(h.joins).toEqual([{ name: 'b1', count: null, errorCode: 3, synchronized: false }]);
    expect(h.pumps()).toBe(1);
    h.waits.onOutcome({ kind: 'acked', requestId: 1, name: 'b1', generation: 7, present: 1, count: null });
    h.advance(250);
    h.waits.onOutcome({ kind: 'released', requestId: 1, name: 'b1', generation: 7, exitCode: 3, releaseAtNs: null });
    await expect(result).resolves.toEqual({ result: 'released', name: 'b1', exitCode: 3, waitedMs: 250 });
    expect(h.waits.size).toBe(0);
  });

  it('--no-wait: answered as registered at the first acknowledgement, and the participant is not withdrawn', async () => {
    const h = harness();
    const { result } = h.waits.start(request({ count: 2, wait: false }));
    h.waits.onOutcome({ kind: 'acked', requestId: 1, name: 'b1', generation: 7, present: 1, count: 2 });
    await expect(result).resolves.toEqual({ result: 'registered', name: 'b1', present: 1, count: 2 });
    expect(h.withdrawn).toEqual([]);
  });

  it('refused by the master: the reason in words', async () => {
    const h = harness();
    const { result } = h.waits.start(request());
    h.waits.onOutcome({ kind: 'rejected', requestId: 1, name: 'b1', reason: 'barrier-limit' });
    await expect(result).resolves.toMatchObject({ result: 'rejected', reason: 'barrier-limit', detail: expect.stringContaining(String(BARRIERS_OPEN_MAX)) });
  });

  it('refused by this agent: a bad join, or too many waiters here', async () => {
    await expect(harness({ refuse: true }).waits.start(request()).result).resolves.toEqual({ result: 'rejected', name: 'b1', reason: 'bad-name', detail: 'no' });
    const h = harness();
    for (let index = 0; index < BARRIER_LOCAL_WAITERS_MAX; index += 1) h.waits.start(request());
    await expect(h.waits.start(request()).result).resolves.toMatchObject({ result: 'rejected', reason: 'client-limit' });
    expect(h.joins).toHaveLength(BARRIER_LOCAL_WAITERS_MAX);
  });

  it('--timeout: withdrawn from the barrier and told how long it waited', async () => {
    const h = harness();
    const { result } = h.waits.start(request({ timeoutMs: 5000 }));
    h.waits.onOutcome({ kind: 'acked', requestId: 1, name: 'b1', generation: 7, present: 1, count: null });
    h.advance(5000);
    await expect(result).resolves.toEqual({ result: 'timeout', name: 'b1', waitedMs: 5000 });
    expect(h.withdrawn).toEqual([1]);
  });

  it('no master acknowledges it within BARRIER_REGISTER_TIMEOUT_MS: unreachable, withdrawn', async () => {
    const h = harness();
    const { result } = h.waits.start(request());
    h.advance(BARRIER_REGISTER_TIMEOUT_MS);
    await expect(result).resolves.toMatchObject({ result: 'unreachable', detail: expect.stringContaining('no master acknowledged') });
    expect(h.withdrawn).toEqual([1]);
  });

  it('an acknowledged participant is not given up at BARRIER_REGISTER_TIMEOUT_MS', () => {
    const h = harness();
    h.waits.start(request());
    h.waits.onOutcome({ kind: 'acked', requestId: 1, name: 'b1', generation: 7, present: 1, count: null });
    h.advance(BARRIER_REGISTER_TIMEOUT_MS * 2);
    expect(h.waits.size).toBe(1);
    expect(h.withdrawn).toEqual([]);
  });

  it('the client went away: withdrawn once, later outcomes ignored', async () => {
    const h = harness();
    const { result, cancel } = h.waits.start(request());
    cancel();
    cancel();
    h.waits.onOutcome({ kind: 'released', requestId: 1, name: 'b1', generation: 7, exitCode: 0, releaseAtNs: null });
    await expect(result).resolves.toMatchObject({ result: 'unreachable', detail: 'the control client went away' });
    expect(h.withdrawn).toEqual([1]);
  });

  it('the agent stops: every client told, nothing withdrawn through a stopped node, new waits refused', async () => {
    const h = harness();
    const first = h.waits.start(request()).result;
    const second = h.waits.start(request({ name: 'b2' })).result;
    h.stop();
    h.waits.abandonAll();
    await expect(first).resolves.toMatchObject({ result: 'unreachable', detail: 'the agent is stopping' });
    await expect(second).resolves.toMatchObject({ result: 'unreachable', name: 'b2' });
    await expect(h.waits.start(request()).result).resolves.toMatchObject({ result: 'unreachable' });
    h.advance(BARRIER_REGISTER_TIMEOUT_MS);
    expect(h.withdrawn).toEqual([]);
    expect(h.joins).toHaveLength(2);
  });
});
