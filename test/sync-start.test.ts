// Starting at a cluster instant (issue 19), the command side: parsing `at` TIMEs exactly, and the
// wait against a fake host clock: it never ends before the instant on the participant's clock
// (host + offset, made later by the agent's anchor error), a release past the instant starts at
// once and reports how late, and long waits take the agent's new offset.
import { describe, expect, it } from 'vitest';
import { parseTime } from '../src/cli/at.ts';
import { splitCommand, waitForInstant, type ParticipantClock } from '../src/cli/sync-start.ts';

describe('at TIME', () => {
  it('+SECONDS and @EPOCH are exact to the nanosecond', () => {
    expect(parseTime('+0.5')).toEqual({ kind: 'relative', afterNs: 500_000_000n });
    expect(parseTime('+3')).toEqual({ kind: 'relative', afterNs: 3_000_000_000n });
    expect(parseTime('@1700000000.123456789')).toEqual({ kind: 'absolute', instantNs: 1_700_000_000_123_456_789n });
    expect(parseTime('@1700000000')).toEqual({ kind: 'absolute', instantNs: 1_700_000_000_000_000_000n });
  });

  it('ISO 8601 with fractional seconds and a zone', () => {
    expect(parseTime('2023-11-14T22:13:20.000000001Z')).toEqual({ kind: 'absolute', instantNs: 1_700_000_000_000_000_001n });
    expect(parseTime('2023-11-15T00:13:20.5+02:00')).toEqual({ kind: 'absolute', instantNs: 1_700_000_000_500_000_000n });
    expect(parseTime('2023-11-14T21:13:20-0100')).toEqual({ kind: 'absolute', instantNs: 1_700_000_000_000_000_000n });
    // No zone: local time, as date(1) reads it.
    const local = parseTime('2023-11-14T10:00:00.25');
    expect(local).toEqual({ kind: 'absolute', instantNs: BigInt(new Date(2023, 10, 14, 10, 0, 0).getTime()) * 1_000_000n + 250_000_000n });
  });

  it('anything else is refused with a reason', () => {
    for (const bad of ['soon', '', '0.5', '+-1', '+1.', '@x', '@1.1234567891', '2023-13-01T00:00:00Z', '2023-02-30T00:00:00Z', '2023-01-01T25:00:00Z', '2023-01-01T00:00:00+25:00', '2023-01-01']) {
      const parsed = parseTime(bad);
      expect('error' in parsed, bad).toBe(true);
    }
  });

  it('-- COMMAND is split off at the first --', () => {
    expect(splitCommand(['at', '+1', '--json', '--', 'echo', '--', 'x'])).toEqual({ own: ['at', '+1', '--json'], command: ['echo', '--', 'x'] });
    expect(splitCommand(['at', '+1'])).toEqual({ own: ['at', '+1'], command: null });
  });
});

/** A host clock that advances by `stepNs` at every read and jumps on every sleep. */
function fakeHost(startNs: bigint, stepNs = 1_000n) {
  let nowNs = startNs;
  const sleeps: number[] = [];
  return {
    hostNowNs: () => (nowNs += stepNs),
    sleepMs: async (ms: number) => {
      sleeps.push(ms);
      nowNs += BigInt(Math.round(ms * 1e6));
    },
    sleeps,
    get nowNs() {
      return nowNs;
    },
  };
}

const clock = (change: Partial<ParticipantClock> = {}): ParticipantClock => ({ mode: 'virtual', hostOffsetNs: 2_500_000_000, hostAnchorErrorNs: 0, errorBoundNs: 40_000, ...change });

describe('waiting for the instant', () => {
  it('never ends before the instant on the participant clock, and is not late', async () => {
    const host = fakeHost(1_000_000_000_000n);
    const instantNs = 1_000_000_000_000n + 2_500_000_000n + 20_000_000n; // 20 ms ahead on the agent's clock
    const report = await waitForInstant(instantNs, { hostNowNs: host.hostNowNs, clock: clock(), sleepMs: host.sleepMs });
    expect(report.lateNs).toBe(0);
    expect(BigInt(report.startedClockNs)).toBeGreaterThanOrEqual(instantNs);
    expect(report.instantNs).toBe(instantNs.toString());
    // It slept most of the way and spun the rest (no busy wait for 20 ms).
    expect(host.sleeps.length).toBeGreaterThan(0);
  });

  it('waits out the agent anchor error too (its reading of the host clock may be that far off)', async () => {
    const host = fakeHost(5_000_000_000n, 100n);
    const instantNs = 5_000_000_000n + 1_000_000n;
    const report = await waitForInstant(instantNs, { hostNowNs: host.hostNowNs, clock: clock({ hostOffsetNs: 0, hostAnchorErrorNs: 50_000 }), sleepMs: host.sleepMs });
    expect(BigInt(report.startedHostNs)).toBeGreaterThanOrEqual(instantNs + 50_000n);
  });

  it('a release that arrives after the instant starts at once and reports how late', async () => {
    const host = fakeHost(10_000_000_000n, 0n);
    const instantNs = 10_000_000_000n - 3_000_000n; // 3 ms ago (offset 0)
    const report = await waitForInstant(instantNs, { hostNowNs: host.hostNowNs, clock: clock({ hostOffsetNs: 0 }), sleepMs: host.sleepMs });
    expect(report.lateNs).toBe(3_000_000);
    expect(host.sleeps).toEqual([]);
  });

  it('a long wait asks the agent again and follows its new offset', async () => {
    const host = fakeHost(0n);
    let asked = 0;
    const instantNs = 30_000_000_000n; // 30 s ahead, offset 0 at first
    const report = await waitForInstant(instantNs, {
      hostNowNs: host.hostNowNs,
      clock: clock({ hostOffsetNs: 0 }),
      sleepMs: host.sleepMs,
      refresh: async () => {
        asked += 1;
        // The agent's clock was slewed 2 ms ahead meanwhile: the host target comes 2 ms sooner.
        return clock({ hostOffsetNs: 2_000_000 });
      },
    });
    expect(asked).toBeGreaterThan(1);
    expect(report.hostOffsetNs).toBe(2_000_000);
    expect(BigInt(report.startedClockNs)).toBeGreaterThanOrEqual(instantNs);
    expect(BigInt(report.startedHostNs)).toBeLessThan(instantNs);
  });
});
