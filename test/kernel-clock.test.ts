// The Linux kernel clock driver. The real kernel is only ever read (adjtimex with modes = 0): every
// write path runs against FakeKernel, which records what would have been set.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { FakeKernel, type Call } from './support/fake-kernel.ts';
import { KernelClockDriver, KernelClockError, timespecOf, type KernelClockOptions, type SlewScheduler } from '../src/clock/kernel.ts';
import { findTimeDaemons, hasCapSysTime, openSystemClock } from '../src/clock/system-check.ts';
import {
  ADJ_ESTERROR,
  ADJ_FREQUENCY,
  ADJ_MAXERROR,
  ADJ_NANO,
  ADJ_OFFSET,
  ADJ_OFFSET_SINGLESHOT,
  ADJ_SETOFFSET,
  ADJ_STATUS,
  STA_FLL,
  STA_INS,
  STA_NANO,
  STA_PLL,
  STA_UNSYNC,
  TIME_ERROR,
  TIME_OK,
  emptyTimex,
  errnoResult,
  loadTimexSyscall,
  readOnlySyscall,
  timexOf,
  type Timex,
} from '../src/clock/timex.ts';

// Safety net: whatever this file does, the real binding it can reach (also through
// openSystemClock's default loader) refuses every write before it gets to the kernel.
vi.mock('../src/clock/timex.ts', async (importOriginal) => {
  const actual = await importOriginal<typeof import('../src/clock/timex.ts')>();
  return { ...actual, loadTimexSyscall: vi.fn(() => actual.loadTimexSyscall({ readOnly: true })) };
});

const SCALE = 65_536;

/** Monotonic time that moves only when told; timers fire when their time has passed, late by as much as the jump. */
class FakeScheduler implements SlewScheduler {
  nowMs = 1_000;
  private nextId = 1;
  readonly timers = new Map<number, { atMs: number; callback: () => void; delayMs: number }>();

  monoMs(): number {
    return this.nowMs;
  }

  setTimer(callback: () => void, delayMs: number): unknown {
    const id = this.nextId++;
    this.timers.set(id, { atMs: this.nowMs + delayMs, callback, delayMs });
    return id;
  }

  clearTimer(handle: unknown): void {
    this.timers.delete(handle as number);
  }

  /** Moves time forward by `ms` and then runs every timer that is due (seeing the new time). */
  advance(ms: number): void {
    this.nowMs += ms;
    for (;;) {
      const due = [...this.timers.entries()].filter(([, timer]) => timer.atMs <= this.nowMs).sort((a, b) => a[1].atMs - b[1].atMs)[0];
      if (!due) return;
      this.timers.delete(due[0]);
      due[1].callback();
    }
  }

  /** The one pending timer's delay (the driver never keeps more than one). */
  pendingDelayMs(): number | null {
    expect(this.timers.size).toBeLessThanOrEqual(1);
    const timer = [...this.timers.values()][0];
    return timer ? timer.delayMs : null;
  }
}

const HOST_NS = 1_790_000_000_123_456_789n;

function setup(initial: Partial<Timex> = {}, options: KernelClockOptions = {}) {
  const kernel = new FakeKernel(initial);
  const scheduler = new FakeScheduler();
  const host = { nowNs: () => HOST_NS, monoMs: () => scheduler.monoMs() };
  const errors: KernelClockError[] = [];
  const stepped: number[] = [];
  const opened = KernelClockDriver.open(kernel, host, {
    scheduler,
    onError: (error) => errors.push(error),
    onStepped: (deltaNs) => stepped.push(deltaNs),
    ...options,
  });
  if (!opened.ok) throw new Error(opened.reason);
  kernel.calls = [];
  return { kernel, scheduler, driver: opened.driver, warnings: opened.warnings, errors, stepped };
}

const frequencyWrite = (ppm: number): Call => ({ via: 'adjtimex', request: { modes: ADJ_FREQUENCY, freq: Math.round(ppm * SCALE) } });

describe('live kernel, read only (adjtimex modes = 0)', () => {
  it('loadTimexSyscall is the read-only one in this file', () => {
    expect(vi.isMockFunction(loadTimexSyscall)).toBe(true);
  });

  it('reads the state, frequency and error estimates', (context) => {
    const live = loadTimexSyscall({ readOnly: true });
    if ('error' in live) {
      console.log(`skipping the live kernel read: ${live.error}`);
      context.skip();
      return;
    }
    const read = live.adjtimex({ modes: 0 });
    if (!read.ok) throw new Error(read.message);
    const { timex } = read;
    console.log(
      `live kernel: state ${read.state}, freq ${(timex.freq / SCALE).toFixed(3)} ppm, status 0x${timex.status.toString(16)}, ` +
        `maxerror ${timex.maxerror} us, esterror ${timex.esterror} us, tick ${timex.tick} us, offset ${timex.offset}`,
    );
    expect(read.state).toBeGreaterThanOrEqual(TIME_OK);
    expect(read.state).toBeLessThanOrEqual(TIME_ERROR);
    expect(Math.abs(timex.freq / SCALE)).toBeLessThanOrEqual(500);
    expect(Number.isInteger(timex.status)).toBe(true);
    expect(timex.maxerror).toBeGreaterThanOrEqual(0);
    expect(timex.maxerror).toBeLessThanOrEqual(16_000_000);
    expect(timex.esterror).toBeGreaterThanOrEqual(0);
    expect(timex.tick).toBeGreaterThan(0);
    expect(timex.tolerance).toBe(500 * SCALE);
    // The kernel's time, returned by the read, is today's.
    expect(Math.abs(timex.time.tv_sec - Date.now() / 1000)).toBeLessThan(5);

    const viaClock = live.clockAdjtime({ modes: 0 });
    if (!viaClock.ok) throw new Error(viaClock.message);
    expect(viaClock.timex.freq).toBe(timex.freq);
  });

  it('a read-only syscall refuses writes before they reach the (fake) kernel', () => {
    const kernel = new FakeKernel();
    const guarded = readOnlySyscall(kernel);
    const refused = guarded.adjtimex({ modes: ADJ_FREQUENCY, freq: 1 });
    expect(refused).toMatchObject({ ok: false, code: 'EPERM' });
    expect(guarded.clockAdjtime({ modes: ADJ_SETOFFSET | ADJ_NANO, time: { tv_sec: 1, tv_usec: 0 } })).toMatchObject({ ok: false, code: 'EPERM' });
    expect(kernel.calls).toEqual([]);
    expect(guarded.adjtimex({ modes: 0 }).ok).toBe(true);
    expect(kernel.calls).toHaveLength(1);
  });

  it('timexOf zero-fills what a request leaves out', () => {
    expect(timexOf({ modes: ADJ_FREQUENCY, freq: 5 })).toEqual({ ...emptyTimex(), modes: ADJ_FREQUENCY, freq: 5 });
    expect(errnoResult(1, 'adjtimex')).toMatchObject({ ok: false, code: 'EPERM', message: 'adjtimex failed: EPERM' });
  });
});

describe('opening the kernel clock', () => {
  it('turns the kernel PLL off after zeroing its offset, keeping frequency, sync state and leap flag', () => {
    const kernel = new FakeKernel({ status: STA_PLL | STA_FLL | STA_INS, freq: 12.5 * SCALE, offset: 3_000, maxerror: 2_000, esterror: 100 });
    const opened = KernelClockDriver.open(kernel, { nowNs: () => HOST_NS, monoMs: () => 0 }, { scheduler: new FakeScheduler() });
    if (!opened.ok) throw new Error(opened.reason);
    expect(kernel.calls).toEqual([
      { via: 'adjtimex', request: { modes: 0 } },
      { via: 'adjtimex', request: { modes: ADJ_OFFSET | ADJ_STATUS | ADJ_NANO, status: STA_INS | STA_PLL, offset: 0 } },
      { via: 'adjtimex', request: { modes: ADJ_STATUS, status: STA_INS } },
      // A pending adjtime() offset left by another program is cancelled.
      { via: 'adjtimex', request: { modes: ADJ_OFFSET_SINGLESHOT, offset: 0 } },
    ]);
    expect(kernel.timex.status).toBe(STA_INS | STA_NANO);
    expect(kernel.timex.offset).toBe(0);
    expect(opened.warnings.join('\n')).toMatch(/own clock loop was active/);
    const state = opened.driver.state();
    expect(state).toMatchObject({ mode: 'system', hostOffsetNs: 0, frequencyPpm: 12.5, slewRemainingNs: 0, slewRatePpm: 0 });
    expect(state.kernel).toEqual({ maxErrorNs: 2_000_000, estErrorNs: 100_000, unsync: false, frequencyPpm: 12.5, status: STA_INS | STA_NANO });
    expect(opened.driver.frequencyPpmMax).toBe(500);
  });

  it('keeps STA_UNSYNC when the kernel was unsynchronized and warns about a changed tick', () => {
    const { kernel, warnings } = setup({ status: STA_UNSYNC, tick: 10_001 });
    expect(kernel.timex.status).toBe(STA_UNSYNC | STA_NANO);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/tick is 10001 µs.*adds 100 ppm/);
  });

  it('fails with the reason when the kernel cannot be read or written', () => {
    const host = { nowNs: () => HOST_NS, monoMs: () => 0 };
    const unreadable = new FakeKernel();
    unreadable.failReads = true;
    expect(KernelClockDriver.open(unreadable, host)).toEqual({ ok: false, reason: 'cannot read the kernel clock: adjtimex failed: EINVAL' });
    const readOnly = new FakeKernel();
    readOnly.failWrites = 'EPERM';
    const refused = KernelClockDriver.open(readOnly, host);
    expect(refused.ok).toBe(false);
    if (!refused.ok) expect(refused.reason).toMatch(/EPERM; run as root or grant CAP_SYS_TIME \(AmbientCapabilities=CAP_SYS_TIME in the unit\)/);
  });

  it('reads pass through: host time is the system clock', () => {
    const { driver, kernel } = setup();
    expect(driver.nowNs()).toBe(HOST_NS);
    expect(driver.atHostNs(42n)).toBe(42n);
    expect(driver.mode).toBe('system');
    driver.state();
    expect(kernel.writes()).toEqual([]);
  });
});

describe('frequency', () => {
  it('writes ADJ_FREQUENCY in ppm * 2^16', () => {
    const { driver, kernel } = setup();
    driver.setFrequency(12.345);
    driver.setFrequency(-0.5);
    expect(kernel.writes()).toEqual([frequencyWrite(12.345), { via: 'adjtimex', request: { modes: ADJ_FREQUENCY, freq: -32_768 } }]);
    expect(kernel.writes()[0]!.request.freq).toBe(809_042);
    expect(driver.state().frequencyPpm).toBe(-0.5);
    expect(driver.state().kernel!.frequencyPpm).toBe(-0.5);
  });

  it('clamps at +-500 ppm', () => {
    const { driver, kernel } = setup();
    driver.setFrequency(600);
    driver.setFrequency(-1e9);
    expect(kernel.writes().map((call) => call.request.freq)).toEqual([32_768_000, -32_768_000]);
    expect(driver.state().frequencyPpm).toBe(-500);
  });

  it('ignores a value that is not a number, with an error instead of a throw', () => {
    const { driver, kernel, errors } = setup();
    driver.setFrequency(Number.NaN);
    driver.setFrequency(Number.POSITIVE_INFINITY);
    expect(kernel.writes()).toEqual([]);
    expect(errors.map((error) => error.code)).toEqual(['EINPUT', 'EINPUT']);
    expect(driver.writeErrors).toBe(2);
  });

  it('reports a failed write and keeps the old frequency', () => {
    const { driver, kernel, errors } = setup({ freq: 3 * SCALE });
    kernel.failWrites = 'EPERM';
    driver.setFrequency(10);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toBeInstanceOf(KernelClockError);
    expect(errors[0]).toMatchObject({ code: 'EPERM', operation: 'setFrequency' });
    expect(driver.state().frequencyPpm).toBe(3);
  });
});

describe('slew', () => {
  it('adds the rate to the frequency for |phase| / rate, then restores the base', () => {
    const { driver, kernel, scheduler } = setup();
    driver.setFrequency(10);
    driver.slew(1_000_000, 100);
    expect(kernel.writes()).toEqual([frequencyWrite(10), frequencyWrite(110)]);
    // 1 ms at 100 ppm is 10 s of oscillator time; the monotonic clock runs 110 ppm fast meanwhile.
    expect(scheduler.pendingDelayMs()).toBeCloseTo(10_000 * (1 + 110e-6), 6);
    expect(driver.state()).toMatchObject({ frequencyPpm: 10, slewRatePpm: 100, slewRemainingNs: 1_000_000 });
    expect(driver.slews).toBe(1);

    scheduler.advance(5_000);
    expect(driver.state().slewRemainingNs).toBe(Math.round(1_000_000 - (100 * 5_000) / (1 + 110e-6)));
    expect(kernel.writes()).toHaveLength(2);

    scheduler.advance(5_001.1);
    expect(kernel.writes()).toEqual([frequencyWrite(10), frequencyWrite(110), frequencyWrite(10)]);
    expect(driver.state()).toMatchObject({ frequencyPpm: 10, slewRatePpm: 0, slewRemainingNs: 0 });
    expect(scheduler.pendingDelayMs()).toBeNull();
  });

  it('slews backwards by lowering the frequency', () => {
    const { driver, kernel, scheduler } = setup();
    driver.slew(-2_000_000, 400);
    expect(kernel.writes()).toEqual([frequencyWrite(-400)]);
    expect(driver.state().slewRatePpm).toBe(400);
    expect(scheduler.pendingDelayMs()).toBeCloseTo(5_000 * (1 - 400e-6), 6);
    scheduler.advance(6_000);
    expect(kernel.writes().at(-1)).toEqual(frequencyWrite(0));
  });

  it('clamps the rate so that base + rate stays within 500 ppm', () => {
    const { driver, kernel, scheduler } = setup();
    driver.setFrequency(100);
    driver.slew(1_000_000, 500);
    expect(kernel.writes().at(-1)).toEqual(frequencyWrite(500));
    expect(driver.state().slewRatePpm).toBe(400);
    expect(scheduler.pendingDelayMs()).toBeCloseTo(2_500 * (1 + 500e-6), 6);
    // The other way there is room for the full rate.
    driver.slew(-1_000_000, 500);
    expect(kernel.writes().at(-1)).toEqual(frequencyWrite(-400));
    expect(driver.state().slewRatePpm).toBe(500);
  });

  it('leaves the phase owed when the base frequency sits at the limit', () => {
    const { driver, kernel, scheduler } = setup();
    driver.setFrequency(500);
    driver.slew(1_000, 50);
    expect(kernel.writes().at(-1)).toEqual(frequencyWrite(500));
    expect(driver.state()).toMatchObject({ slewRatePpm: 0, slewRemainingNs: 1_000 });
    expect(scheduler.pendingDelayMs()).toBeNull();
  });

  it('a new slew replaces what is left of the old one', () => {
    const { driver, kernel, scheduler } = setup();
    driver.slew(1_000_000, 100);
    scheduler.advance(3_000);
    driver.slew(-50_000, 200);
    expect(kernel.writes()).toEqual([frequencyWrite(100), frequencyWrite(-200)]);
    expect(driver.state()).toMatchObject({ slewRatePpm: 200, slewRemainingNs: -50_000 });
    expect(scheduler.pendingDelayMs()).toBeCloseTo(250 * (1 - 200e-6), 6);
    scheduler.advance(300);
    expect(kernel.writes().at(-1)).toEqual(frequencyWrite(0));
    expect(kernel.writes()).toHaveLength(3);
  });

  it('phase 0 ends a slew in progress', () => {
    const { driver, kernel, scheduler } = setup();
    driver.slew(1_000_000, 100);
    driver.slew(0, 100);
    expect(kernel.writes()).toEqual([frequencyWrite(100), frequencyWrite(0)]);
    expect(driver.state()).toMatchObject({ slewRatePpm: 0, slewRemainingNs: 0 });
    expect(scheduler.pendingDelayMs()).toBeNull();
  });

  it('a late timer records the overshoot as a negative remainder until the next slew', () => {
    const { driver, kernel, scheduler } = setup();
    driver.slew(100_000, 100); // 1 s
    scheduler.advance(1_250); // the timer fires 250 ms late
    expect(kernel.writes().at(-1)).toEqual(frequencyWrite(0));
    const overshootNs = (100 * 1_250) / (1 + 100e-6) - 100_000;
    expect(driver.state()).toMatchObject({ slewRatePpm: 0, slewRemainingNs: -Math.round(overshootNs) });
    expect(driver.state().slewRemainingNs).toBe(-24_988);
    driver.slew(10_000, 100);
    expect(driver.state().slewRemainingNs).toBe(10_000);
  });

  it('a timer that fires early is re-armed for the rest', () => {
    const { driver, kernel, scheduler } = setup();
    driver.slew(100_000, 100);
    const [id, timer] = [...scheduler.timers.entries()][0]!;
    scheduler.timers.delete(id);
    scheduler.nowMs += 900; // fires 100 ms early
    timer.callback();
    expect(kernel.writes()).toHaveLength(1);
    expect(scheduler.pendingDelayMs()).toBeCloseTo(1_000 * (1 + 100e-6) - 900, 6);
    scheduler.advance(100.1);
    expect(kernel.writes().at(-1)).toEqual(frequencyWrite(0));
  });

  it('a slew longer than setTimeout allows is done in chunks', () => {
    const { driver, kernel, scheduler } = setup();
    driver.slew(3_000_000_000, 1); // 3 s at 1 ppm: 35 days
    expect(scheduler.pendingDelayMs()).toBe(2_147_483_647);
    scheduler.advance(2_147_483_647);
    expect(scheduler.pendingDelayMs()).toBeCloseTo(3_000_003_000 - 2_147_483_647, 3);
    expect(kernel.writes()).toHaveLength(1);
    expect(driver.state().slewRatePpm).toBe(1);
    scheduler.advance(1e9);
    expect(kernel.writes().at(-1)).toEqual(frequencyWrite(0));
    expect(driver.state().slewRatePpm).toBe(0);
  });

  it('a failed end-of-slew write is retried while the slew keeps counting', () => {
    const { driver, kernel, scheduler, errors } = setup();
    driver.slew(100_000, 100);
    kernel.failWrites = 'EPERM';
    scheduler.advance(1_001);
    expect(errors.map((error) => [error.code, error.operation])).toEqual([['EPERM', 'slew end']]);
    expect(driver.state().slewRatePpm).toBe(100);
    expect(scheduler.pendingDelayMs()).toBe(1_000);
    kernel.failWrites = null;
    scheduler.advance(1_000);
    expect(kernel.timex.freq).toBe(0);
    expect(driver.state().slewRemainingNs).toBe(-Math.round((100 * 2_001) / (1 + 100e-6) - 100_000));
  });

  it('a frequency change during a slew re-plans it within the limit', () => {
    const { driver, kernel, scheduler } = setup();
    driver.slew(1_000_000, 400); // 2.5 s
    scheduler.advance(1_000);
    const remainingNs = 1_000_000 - (400 * 1_000) / (1 + 400e-6);
    driver.setFrequency(300); // room for 200 ppm only
    expect(kernel.writes()).toEqual([frequencyWrite(400), frequencyWrite(500)]);
    expect(driver.state()).toMatchObject({ frequencyPpm: 300, slewRatePpm: 200, slewRemainingNs: Math.round(remainingNs) });
    expect(scheduler.pendingDelayMs()).toBeCloseTo((remainingNs / 200) * (1 + 500e-6), 6);
    scheduler.advance(4_000);
    expect(kernel.writes().at(-1)).toEqual(frequencyWrite(300));
    expect(driver.state()).toMatchObject({ frequencyPpm: 300, slewRatePpm: 0 });
  });

  it('by default ends on an unref\'d setTimeout, timed by the host clock', () => {
    vi.useFakeTimers();
    try {
      const kernel = new FakeKernel();
      let monoMs = 50;
      const opened = KernelClockDriver.open(kernel, { nowNs: () => HOST_NS, monoMs: () => monoMs });
      if (!opened.ok) throw new Error(opened.reason);
      opened.driver.slew(100_000, 100);
      expect(vi.getTimerCount()).toBe(1);
      monoMs += 600;
      vi.advanceTimersByTime(600);
      expect(kernel.timex.freq).toBe(100 * SCALE);
      monoMs += 401;
      vi.advanceTimersByTime(401);
      expect(kernel.timex.freq).toBe(0);
      expect(vi.getTimerCount()).toBe(0);
      opened.driver.slew(100_000, 100);
      opened.driver.close();
      expect(vi.getTimerCount()).toBe(0);
    } finally {
      vi.useRealTimers();
    }
  });

  it('ignores a slew that is not a number', () => {
    const { driver, kernel, errors } = setup();
    driver.slew(Number.NaN, 100);
    driver.slew(100, Number.NaN);
    expect(kernel.writes()).toEqual([]);
    expect(errors).toHaveLength(2);
  });
});

describe('step', () => {
  it('is one clock_adjtime(ADJ_SETOFFSET | ADJ_NANO) with a normalized timespec', () => {
    const { driver, kernel, stepped } = setup();
    driver.step(2_250_000_000);
    driver.step(-1_500_000_000);
    driver.step(-1);
    expect(kernel.writes()).toEqual([
      { via: 'clockAdjtime', request: { modes: ADJ_SETOFFSET | ADJ_NANO, time: { tv_sec: 2, tv_usec: 250_000_000 } } },
      { via: 'clockAdjtime', request: { modes: ADJ_SETOFFSET | ADJ_NANO, time: { tv_sec: -2, tv_usec: 500_000_000 } } },
      { via: 'clockAdjtime', request: { modes: ADJ_SETOFFSET | ADJ_NANO, time: { tv_sec: -1, tv_usec: 999_999_999 } } },
    ]);
    expect(kernel.stepsNs).toEqual([2_250_000_000, -1_500_000_000, -1]);
    expect(stepped).toEqual([2_250_000_000, -1_500_000_000, -1]);
    expect(driver.steps).toBe(3);
  });

  it('a step of decades (a box at 1970) is an exact normalized timespec, both ways', () => {
    const { driver, kernel } = setup();
    // 56 years and a bit: above 2^53, where float64 arithmetic on the seconds rounds by 256 ns.
    const forwardNs = 1_767_225_600_123_456_768;
    driver.step(forwardNs);
    driver.step(-forwardNs);
    expect(kernel.writes()).toEqual([
      { via: 'clockAdjtime', request: { modes: ADJ_SETOFFSET | ADJ_NANO, time: { tv_sec: 1_767_225_600, tv_usec: 123_456_768 } } },
      { via: 'clockAdjtime', request: { modes: ADJ_SETOFFSET | ADJ_NANO, time: { tv_sec: -1_767_225_601, tv_usec: 876_543_232 } } },
    ]);
    expect(timespecOf(-1)).toEqual({ seconds: -1, nanoseconds: 999_999_999 });
    expect(timespecOf(-1_000_000_000)).toEqual({ seconds: -1, nanoseconds: 0 });
    // Every float64 step near 2^62 still gives 0 <= tv_nsec < 1e9 and adds up exactly.
    for (const wholeNs of [2 ** 62, -(2 ** 62), 2 ** 62 + 2 ** 10, 9_000_000_000_000_000_000, -9_000_000_000_000_000_000]) {
      const { seconds, nanoseconds } = timespecOf(wholeNs);
      expect(nanoseconds).toBeGreaterThanOrEqual(0);
      expect(nanoseconds).toBeLessThan(1e9);
      expect(BigInt(seconds) * 1_000_000_000n + BigInt(nanoseconds)).toBe(BigInt(wholeNs));
    }
  });

  it('cancels a slew in progress first (base frequency back), then steps', () => {
    const { driver, kernel, scheduler, stepped } = setup();
    driver.setFrequency(-20);
    driver.slew(5_000_000, 300);
    scheduler.advance(1_000);
    driver.step(7_000_000);
    expect(kernel.writes()).toEqual([
      frequencyWrite(-20),
      frequencyWrite(280),
      frequencyWrite(-20),
      { via: 'clockAdjtime', request: { modes: ADJ_SETOFFSET | ADJ_NANO, time: { tv_sec: 0, tv_usec: 7_000_000 } } },
    ]);
    expect(driver.state()).toMatchObject({ frequencyPpm: -20, slewRatePpm: 0, slewRemainingNs: 0 });
    expect(scheduler.pendingDelayMs()).toBeNull();
    expect(stepped).toEqual([7_000_000]);
    // The kernel forgets its synchronization on a step (ntp_clear).
    expect(driver.state().kernel!.unsync).toBe(true);
  });

  it('rounds to whole nanoseconds; nothing to do for less than half of one', () => {
    const { driver, kernel, stepped } = setup();
    driver.step(0.4);
    driver.step(1.6);
    expect(kernel.writes()).toEqual([{ via: 'clockAdjtime', request: { modes: ADJ_SETOFFSET | ADJ_NANO, time: { tv_sec: 0, tv_usec: 2 } } }]);
    expect(stepped).toEqual([2]);
  });

  it('reports a failed step and does not announce it', () => {
    const { driver, kernel, errors, stepped } = setup();
    kernel.failWrites = 'EINVAL';
    driver.step(1_000);
    driver.step(Number.NaN);
    expect(errors.map((error) => [error.code, error.operation])).toEqual([['EINVAL', 'step'], ['EINPUT', 'step']]);
    expect(stepped).toEqual([]);
    expect(driver.steps).toBe(0);
  });
});

describe('markSynchronized', () => {
  it('clears STA_UNSYNC, keeps the other bits, sets the error estimates in µs', () => {
    const { driver, kernel } = setup({ status: STA_UNSYNC | STA_INS });
    driver.markSynchronized(1_500, 250_000);
    expect(kernel.calls).toEqual([
      { via: 'adjtimex', request: { modes: 0 } },
      { via: 'adjtimex', request: { modes: ADJ_STATUS | ADJ_ESTERROR | ADJ_MAXERROR, status: STA_INS, esterror: 2, maxerror: 250 } },
    ]);
    const state = driver.state();
    expect(state.kernel).toMatchObject({ unsync: false, estErrorNs: 2_000, maxErrorNs: 250_000, status: STA_INS | STA_NANO });
  });

  it('saturates at 16 s, treats garbage as unknown and never claims max < est', () => {
    const { driver, kernel } = setup();
    driver.markSynchronized(20e9, Number.NaN);
    driver.markSynchronized(3_000, 1_000);
    driver.markSynchronized(-5, 1_000);
    expect(kernel.writes().map((call) => [call.request.esterror, call.request.maxerror])).toEqual([
      [16_000_000, 16_000_000],
      [3, 3],
      [16_000_000, 16_000_000],
    ]);
  });

  it('reports a failure to read or write the status', () => {
    const { driver, kernel, errors } = setup();
    kernel.failReads = true;
    driver.markSynchronized(1_000, 1_000);
    kernel.failReads = false;
    kernel.failWrites = 'EPERM';
    driver.markSynchronized(1_000, 1_000);
    expect(errors.map((error) => [error.code, error.operation])).toEqual([['EINVAL', 'markSynchronized'], ['EPERM', 'markSynchronized']]);
  });
});

describe('close', () => {
  it('ends the slew at the base frequency, clears the timer, and ignores writes after', () => {
    const { driver, kernel, scheduler, stepped } = setup();
    driver.setFrequency(7);
    driver.slew(1_000_000, 100);
    driver.close();
    driver.close();
    expect(kernel.writes()).toEqual([frequencyWrite(7), frequencyWrite(107), frequencyWrite(7)]);
    expect(scheduler.pendingDelayMs()).toBeNull();
    driver.setFrequency(1);
    driver.slew(1, 1);
    driver.step(1_000);
    driver.markSynchronized(1, 1);
    expect(kernel.writes()).toHaveLength(3);
    expect(stepped).toEqual([]);
    expect(driver.state()).toMatchObject({ frequencyPpm: 7, slewRatePpm: 0 });
  });

  it('without a slew writes nothing (the kernel keeps the frequency)', () => {
    const { driver, kernel } = setup();
    driver.setFrequency(7);
    driver.close();
    expect(kernel.writes()).toEqual([frequencyWrite(7)]);
  });
});

describe('system checks', () => {
  const root = mkdtempSync(join(tmpdir(), 'berkeley-proc-'));
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  function fakeProc(name: string, processes: Record<string, { comm?: string; stat?: string }>): string {
    const dir = join(root, name);
    mkdirSync(dir);
    for (const [entry, files] of Object.entries(processes)) {
      mkdirSync(join(dir, entry));
      if (files.comm !== undefined) writeFileSync(join(dir, entry, 'comm'), files.comm);
      if (files.stat !== undefined) writeFileSync(join(dir, entry, 'stat'), files.stat);
    }
    return dir;
  }

  const procWithDaemons = fakeProc('daemons', {
    '1': { comm: 'systemd\n' },
    '812': { comm: 'systemd-timesyn\n', stat: '812 (systemd-timesyn) S 1 812' },
    '95': { comm: 'chronyd\n', stat: '95 (chronyd) S 1 95' },
    '300': { comm: 'ntpd\n', stat: '300 (ntpd) Z 1 300' },
    '301': { comm: 'ptp4l\n' },
    '400': {},
    '401': { comm: 'chronyc\n' },
    self: { comm: 'chronyd\n' },
    acpi: {},
    '0123': { comm: 'ntpd\n' },
  });
  const procQuiet = fakeProc('quiet', { '1': { comm: 'init\n' }, '7': { comm: 'node\n' } });

  it('findTimeDaemons reads comm, skips zombies, non-pids and unreadable entries', () => {
    expect(findTimeDaemons(procWithDaemons)).toEqual([
      { pid: 95, name: 'chronyd' },
      { pid: 301, name: 'ptp4l' },
      { pid: 812, name: 'systemd-timesyncd' },
    ]);
    expect(findTimeDaemons(procQuiet)).toEqual([]);
    expect(findTimeDaemons(join(root, 'missing'))).toEqual([]);
  });

  it('hasCapSysTime reads bit 25 of CapEff', () => {
    const status = (capEff: string): string => {
      const path = join(root, `status-${capEff}`);
      writeFileSync(path, `Name:\tnode\nCapInh:\t0000000000000000\nCapPrm:\t${capEff}\nCapEff:\t${capEff}\nCapBnd:\t000001ffffffffff\n`);
      return path;
    };
    expect(hasCapSysTime(status('000001ffffffffff'))).toBe(true);
    expect(hasCapSysTime(status('0000000002000000'))).toBe(true);
    expect(hasCapSysTime(status('0000000001ffffff'))).toBe(false);
    expect(hasCapSysTime(status('0000000000000000'))).toBe(false);
    expect(hasCapSysTime(join(root, 'no-such-status'))).toBe(false);
    writeFileSync(join(root, 'garbage'), 'CapEff:\tnot-hex\n');
    expect(hasCapSysTime(join(root, 'garbage'))).toBe(false);
    expect(typeof hasCapSysTime()).toBe('boolean');
  });

  describe('openSystemClock', () => {
    const hostClock = { nowNs: () => HOST_NS, monoMs: () => 0 };
    let kernel: FakeKernel;
    beforeEach(() => {
      kernel = new FakeKernel();
    });
    const base = () => ({ force: false, hostClock, syscall: kernel, procDir: procQuiet, capCheck: () => true, driver: { scheduler: new FakeScheduler() } });

    it('opens the driver when everything allows it', () => {
      const opened = openSystemClock(base());
      expect(opened.ok).toBe(true);
      if (opened.ok) {
        expect(opened.warnings).toEqual([]);
        expect(opened.driver).toBeInstanceOf(KernelClockDriver);
      }
      expect(kernel.writes()).toHaveLength(3);
    });

    it('needs Linux', () => {
      expect(openSystemClock({ ...base(), platform: 'darwin' })).toEqual({ ok: false, reason: 'the kernel clock driver needs Linux (this is darwin)' });
      expect(kernel.calls).toEqual([]);
    });

    it('needs CAP_SYS_TIME', () => {
      const opened = openSystemClock({ ...base(), capCheck: () => false });
      expect(opened).toEqual({
        ok: false,
        reason: 'no permission to set the clock: run as root or grant CAP_SYS_TIME (AmbientCapabilities=CAP_SYS_TIME in the unit)',
      });
      expect(kernel.calls).toEqual([]);
    });

    it('refuses to fight another time daemon unless forced', () => {
      expect(openSystemClock({ ...base(), procDir: procWithDaemons })).toEqual({
        ok: false,
        reason: 'another time daemon is running: chronyd (pid 95), ptp4l (pid 301), systemd-timesyncd (pid 812); stop it or pass --force',
      });
      expect(kernel.calls).toEqual([]);
      const forced = openSystemClock({ ...base(), procDir: procWithDaemons, force: true });
      expect(forced.ok).toBe(true);
      if (forced.ok) expect(forced.warnings[0]).toMatch(/^--force: .*chronyd \(pid 95\).*will fight/);
    });

    it('says so when koffi cannot be loaded', () => {
      const { syscall: _unused, ...rest } = base();
      const opened = openSystemClock({ ...rest, loadSyscall: () => ({ error: 'cannot load koffi (Cannot find module)' }) });
      expect(opened).toEqual({ ok: false, reason: 'cannot use the kernel clock: cannot load koffi (Cannot find module)' });
    });

    it('passes on a kernel that refuses the write', () => {
      kernel.failWrites = 'EPERM';
      const opened = openSystemClock(base());
      expect(opened.ok).toBe(false);
      if (!opened.ok) expect(opened.reason).toMatch(/^cannot adjust the kernel clock: adjtimex failed: EPERM; run as root/);
    });
  });
});
