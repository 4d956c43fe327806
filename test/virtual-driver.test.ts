// The virtual-clock driver's time base (issue 17, "Beside chrony"): over CLOCK_MONOTONIC_RAW it
// must hold still when anyone slews or steps the host clock (chronyd following this very agent
// does both), and follow the RAW clock exactly. A fake world drives it: a RAW clock (true time),
// the host's monotonic clock running at RAW's rate times (1 + a frequency anyone may change), and
// the host's realtime = monotonic + an offset that a step changes; every reading costs 100 ns.
// The HostClock under the driver is the real one over the fake monotonic/realtime sources.
import { describe, expect, it } from 'vitest';
import { HostClock } from '../src/clock/host.ts';
import { openMonotonicRaw } from '../src/clock/raw.ts';
import { VirtualClockDriver } from '../src/clock/virtual-driver.ts';
import { CLOCK_MONOTONIC_RAW } from '../src/native/libc.ts';

const CALL_NS = 100n;
const S = 1_000_000_000n;
const MS = 1_000_000;

class World {
  /** True time = the RAW clock's reading. */
  rawNowNs = 7n * S;
  /** The value the last rawNs() call returned. */
  lastRawNs = 0n;
  private hostFrequencyPpm = 0;
  private monoAtBaseNs = 7n * S;
  private rawAtBaseNs = 7n * S;
  private realMinusMonoNs = 1_790_000_000_000_123_457n;

  private tick(): bigint {
    const value = this.rawNowNs;
    this.rawNowNs += CALL_NS;
    return value;
  }

  private monoAt(rawNs: bigint): bigint {
    const elapsedNs = Number(rawNs - this.rawAtBaseNs);
    return this.monoAtBaseNs + BigInt(Math.round(elapsedNs * (1 + this.hostFrequencyPpm / 1e6)));
  }

  rawNs = (): bigint => {
    this.lastRawNs = this.tick();
    return this.lastRawNs;
  };

  monoNs = (): bigint => this.monoAt(this.tick());
  realMs = (): number => Number((this.monoAt(this.tick()) + this.realMinusMonoNs) / 1_000_000n);
  /** CLOCK_REALTIME read directly (clock_gettime), in ns. */
  realNs = (): bigint => this.monoAt(this.tick()) + this.realMinusMonoNs;

  /** The host's realtime now, without a call. */
  trueHostRealNs(): bigint {
    return this.monoAt(this.rawNowNs) + this.realMinusMonoNs;
  }

  /** adjtimex frequency (or an offset slew, which runs as one): monotonic and realtime both. */
  slewHost(frequencyPpm: number): void {
    this.monoAtBaseNs = this.monoAt(this.rawNowNs);
    this.rawAtBaseNs = this.rawNowNs;
    this.hostFrequencyPpm = frequencyPpm;
  }

  /** settimeofday / clock_settime: realtime jumps, monotonic does not. */
  stepHost(deltaNs: bigint): void {
    this.realMinusMonoNs += deltaNs;
  }

  advance(ns: bigint): void {
    this.rawNowNs += ns;
  }
}

/** The driver over the fake world, with RAW (or, `raw: false`, the host clock) as its base. */
function setUp(options: { raw?: boolean; initialOffsetNs?: number; driftPpm?: number; realtime?: boolean } = {}) {
  const world = new World();
  const host = new HostClock({ monoNs: world.monoNs, realMs: world.realMs });
  const driver = new VirtualClockDriver(host, {
    initialOffsetNs: options.initialOffsetNs ?? 0,
    driftPpm: options.driftPpm ?? 0,
    rawNs: options.raw === false ? null : world.rawNs,
    realtimeNs: options.realtime === true ? world.realNs : null,
  });
  return { world, host, driver };
}

/** The virtual clock minus the RAW reading it was computed from (constant while nothing disciplines it). */
function minusRaw(driver: VirtualClockDriver, world: World): bigint {
  return driver.nowNs() - world.lastRawNs;
}

describe('a virtual clock over CLOCK_MONOTONIC_RAW', () => {
  it('starts at the host clock plus the initial offset, and says its base', () => {
    const { world, driver } = setUp({ initialOffsetNs: 2_500_000 });
    const error = Number(driver.nowNs() - world.trueHostRealNs()) - 2_500_000;
    // The host clock's anchor and the pairing cost a few calls of 100 ns.
    expect(Math.abs(error)).toBeLessThan(5_000);
    expect(driver.base).toBe('monotonic-raw');
    expect(driver.state()).toMatchObject({ mode: 'virtual', virtualBase: 'monotonic-raw' });
    expect(Math.abs(driver.state().hostOffsetNs - 2_500_000)).toBeLessThan(5_000);
  });

  it('does not move when the host clock is slewed (chronyd at 500 ppm for 10 s), and hostOffsetNs shows the host moving', () => {
    const { world, driver } = setUp();
    const before = minusRaw(driver, world);
    const hostOffsetBeforeNs = driver.state().hostOffsetNs;
    world.slewHost(500);
    world.advance(10n * S);
    expect(minusRaw(driver, world)).toBe(before);
    // The host gained 5 ms on RAW: this clock is now 5 ms behind it.
    const movedNs = driver.state().hostOffsetNs - hostOffsetBeforeNs;
    expect(Math.abs(movedNs + 5 * MS)).toBeLessThan(5_000);
  });

  // Found by the VM lab: `date -s +0.5 s` in a guest, and within the HostClock's step check (1 s) a
  // poll's kernel arrival stamp (already stepped) was converted against the stale anchor: 0.5 s in
  // the future, and the master stepped the (provisional) clock by half of it.
  it('converts an arrival stamp taken just after a step of the host clock to the right instant, with CLOCK_REALTIME read directly', () => {
    for (const realtime of [true, false]) {
      const { world, driver } = setUp({ realtime });
      world.advance(S);
      driver.state(); // the host clock checked just now: its next check is a second away
      world.stepHost(S / 2n);
      world.advance(1_000_000n);
      const arrivalHostNs = world.trueHostRealNs(); // the kernel's stamp, on the stepped clock
      world.advance(50_000n); // handled 50 us later
      const stampNs = driver.atHostNs(arrivalHostNs);
      const ageNs = Number(driver.nowNs() - stampNs);
      if (realtime) {
        expect(Math.abs(ageNs - 50_000)).toBeLessThan(5_000);
        expect(Math.abs(driver.state().hostOffsetNs + 500 * MS)).toBeLessThan(5_000);
      } else {
        // Through the anchor alone the stamp lands half a second in the future: why the driver reads realtime directly.
        expect(ageNs).toBeLessThan(-400 * MS);
      }
    }
  });

  it('does not move when the host clock is stepped (by someone else), before or after the host clock re-anchors', () => {
    const { world, host, driver } = setUp();
    const before = minusRaw(driver, world);
    const reanchorsBefore = host.reanchors;
    world.stepHost(-3n * S);
    expect(minusRaw(driver, world)).toBe(before);
    world.advance(2n * S); // past the host clock's step check: the next reading of it re-anchors
    expect(minusRaw(driver, world)).toBe(before);
    const hostOffsetNs = driver.state().hostOffsetNs; // reads the host clock
    expect(host.reanchors).toBe(reanchorsBefore + 1);
    expect(Math.abs(hostOffsetNs - 3_000_000_000)).toBeLessThan(5_000);
    expect(minusRaw(driver, world)).toBe(before);
  });

  it('does not move when the host clock\'s anchor is refined', () => {
    const { world, host, driver } = setUp();
    const before = minusRaw(driver, world);
    host.applyStep(300_000n); // the host clock's anchor is now 300 us off the fake realtime...
    world.advance(6n * S);
    expect(host.refine()).toBeLessThan(-299_000); // ...and the periodic check finds and moves it
    expect(minusRaw(driver, world)).toBe(before);
  });

  it('follows the RAW clock: one RAW second is one virtual second (times its drift and frequency)', () => {
    const { world, driver } = setUp({ driftPpm: 40 });
    world.slewHost(-300); // whatever the host does meanwhile
    const t0 = driver.nowNs();
    const raw0 = world.lastRawNs;
    world.advance(10n * S);
    const t1 = driver.nowNs();
    const rawElapsedNs = Number(world.lastRawNs - raw0);
    expect(Number(t1 - t0) - rawElapsedNs).toBeCloseTo((rawElapsedNs * 40) / 1e6, -1);
    // With frequency = -drift it runs at exactly RAW's rate.
    driver.setFrequency(-40);
    const t3 = driver.nowNs();
    const raw3 = world.lastRawNs;
    world.advance(10n * S);
    expect(driver.nowNs() - t3).toBe(world.lastRawNs - raw3);
  });

  it('steps and slews itself as told, on the RAW base', () => {
    const { world, driver } = setUp();
    const before = minusRaw(driver, world);
    driver.step(1_000_000);
    expect(minusRaw(driver, world) - before).toBe(1_000_000n);
    driver.slew(-500_000, 500);
    world.slewHost(200);
    world.advance(S / 2n); // half the slew: 250 us
    expect(Number(minusRaw(driver, world) - before)).toBeCloseTo(750_000, -1);
    world.advance(S);
    expect(minusRaw(driver, world) - before).toBe(500_000n);
    expect(driver.state()).toMatchObject({ slewRemainingNs: 0, slewRatePpm: 0 });
  });

  it('puts an arrival stamp in host realtime on this clock by its age', () => {
    const { world, driver } = setUp({ initialOffsetNs: 7 * MS });
    world.slewHost(100);
    world.advance(5n * S);
    const stampHostNs = world.trueHostRealNs();
    const atArrivalNs = driver.nowNs();
    world.advance(2_000_000n); // handled 2 ms later
    const converted = driver.atHostNs(stampHostNs);
    expect(Math.abs(Number(converted - atArrivalNs))).toBeLessThan(2_000);
  });
});

describe('the fallback: no RAW clock, the host clock as the base', () => {
  it('says so, and moves with the host clock (what RAW avoids)', () => {
    const { world, driver } = setUp({ raw: false });
    expect(driver.base).toBe('host');
    expect(driver.state().virtualBase).toBe('host');
    const hostOffsetBeforeNs = driver.state().hostOffsetNs;
    world.rawNs(); // the test's own RAW reference (the driver never reads it)
    const before = driver.nowNs() - world.rawNowNs;
    world.slewHost(500);
    world.advance(10n * S);
    const movedNs = Number(driver.nowNs() - world.rawNowNs - before);
    expect(Math.abs(movedNs - 5 * MS)).toBeLessThan(5_000);
    expect(driver.state().hostOffsetNs).toBe(hostOffsetBeforeNs);
  });

  it('does not move when only the host clock\'s anchor is refined (compensated, as before)', () => {
    const { world, host, driver } = setUp({ raw: false });
    host.applyStep(300_000n);
    world.advance(6n * S);
    const before = driver.nowNs() - world.rawNowNs;
    expect(host.refine()).toBeLessThan(-299_000);
    expect(Math.abs(Number(driver.nowNs() - world.rawNowNs - before))).toBeLessThan(2_000);
  });
});

describe('openMonotonicRaw', () => {
  it('reports why when libc or clock_gettime cannot be had, or the clock is refused', () => {
    expect(openMonotonicRaw(() => ({ error: 'cannot load koffi (x)' }))).toEqual({ error: 'cannot load koffi (x)' });
    const refused = openMonotonicRaw(() => ({ clockGettime: () => -1 }));
    expect(refused).toEqual({ error: 'clock_gettime(CLOCK_MONOTONIC_RAW) returned -1' });
    const threw = openMonotonicRaw(() => ({
      clockGettime: () => {
        throw new Error('boom\nstack');
      },
    }));
    expect(threw).toEqual({ error: 'clock_gettime(CLOCK_MONOTONIC_RAW) threw: boom' });
  });

  it('reads tv_sec and tv_nsec of clock 4', () => {
    const clocks: number[] = [];
    const opened = openMonotonicRaw(() => ({
      clockGettime: (clockId, out) => {
        clocks.push(clockId);
        out[0] = 12n;
        out[1] = 345_678_901n;
        return 0;
      },
    }));
    if ('error' in opened) throw new Error(opened.error);
    expect(opened.nowNs()).toBe(12_345_678_901n);
    expect(clocks).toEqual([CLOCK_MONOTONIC_RAW, CLOCK_MONOTONIC_RAW]);
  });

  it.runIf(process.platform === 'linux')('on this Linux machine reads a clock that runs with hrtime (within 1000 ppm, bracketed)', async () => {
    const opened = openMonotonicRaw();
    if ('error' in opened) throw new Error(`no RAW clock on Linux: ${opened.error}`);
    const h1 = process.hrtime.bigint();
    const r1 = opened.nowNs();
    const h2 = process.hrtime.bigint();
    await new Promise((resolve) => setTimeout(resolve, 200));
    const h3 = process.hrtime.bigint();
    const r2 = opened.nowNs();
    const h4 = process.hrtime.bigint();
    // RAW's interval lies within hrtime's brackets (however the process was preempted), give or
    // take the kernel's frequency adjustment of CLOCK_MONOTONIC (at most 500 ppm).
    const rawElapsed = Number(r2 - r1);
    expect(rawElapsed).toBeGreaterThanOrEqual(Number(h3 - h2) * (1 - 1e-3));
    expect(rawElapsed).toBeLessThanOrEqual(Number(h4 - h1) * (1 + 1e-3));
  });
});
