// The shared event loop alone (src/sim/harness.ts), which the seeded simulator, the node pump and
// the barrier simulation run on: time order with ties in insertion order, every event of an instant
// before what is due at it, polled deadlines, the end of a run, and a deadline that never clears.
import { describe, expect, it } from 'vitest';
import { EventLoop } from '../src/sim/harness.ts';

describe('event loop', () => {
  it('hands events over in time order, ties in insertion order, and never goes back in time', () => {
    const loop = new EventLoop<string>();
    const seen: string[] = [];
    loop.at(5, 'b');
    loop.at(1, 'a');
    loop.at(5, 'c');
    loop.run({
      endMs: 10,
      onEvent: (event, nowMs) => {
        seen.push(`${event}@${nowMs}`);
        // An event queued in the past is the earliest: it comes next, handed over now, not back then.
        if (event === 'b') loop.at(2, 'late');
      },
    });
    expect(seen).toEqual(['a@1', 'b@5', 'late@5', 'c@5']);
    expect(loop.nowMs).toBe(10);
  });

  it('runs every event of an instant before afterEvents, and polls deadlines between instants', () => {
    const loop = new EventLoop<string>();
    const seen: string[] = [];
    let deadlineMs = 3;
    loop.at(3, 'x');
    loop.at(3, 'y');
    loop.run({
      endMs: 20,
      nextDeadlineMs: () => deadlineMs,
      onEvent: (event, nowMs) => seen.push(`${event}@${nowMs}`),
      afterEvents: (nowMs) => {
        seen.push(`after@${nowMs}`);
        if (deadlineMs <= nowMs) deadlineMs = nowMs === 3 ? 7 : Number.POSITIVE_INFINITY;
      },
    });
    expect(seen).toEqual(['x@3', 'y@3', 'after@3', 'after@7']);
  });

  it('stops before an instant past endMs, and moves time to endMs', () => {
    const loop = new EventLoop<number>();
    const seen: number[] = [];
    loop.at(4, 4);
    loop.at(9, 9);
    loop.run({ endMs: 8, onEvent: (event) => seen.push(event) });
    expect(seen).toEqual([4]);
    expect(loop.nowMs).toBe(8);
    expect(loop.queued).toBe(1);
    loop.run({ endMs: 9, onEvent: (event) => seen.push(event) });
    expect(seen).toEqual([4, 9]);
  });

  it('without an end, runs until nothing is left or stop() says so', () => {
    const loop = new EventLoop<number>();
    let handled = 0;
    for (let atMs = 1; atMs <= 10; atMs += 1) loop.at(atMs, atMs);
    loop.run({ onEvent: () => (handled += 1), stop: () => handled >= 4 });
    expect(handled).toBe(4);
    expect(loop.nowMs).toBe(4);
    loop.run({ onEvent: () => (handled += 1) });
    expect(handled).toBe(10);
    expect(loop.nowMs).toBe(10);
  });

  it('throws on a deadline that afterEvents never clears, instead of spinning forever', () => {
    const loop = new EventLoop<never>();
    expect(() => loop.run({ endMs: 100, nextDeadlineMs: () => 5, onEvent: () => {}, afterEvents: () => {}, repeatsMax: 50 })).toThrow(/stuck at 5 ms/);
  });
});
