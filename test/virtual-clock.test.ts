// The virtual clock's mechanics: reading, drift, steps, slews at a given rate, slew replacement,
// frequency changes, monotonicity. (What to do with a correction is the discipline's; see
// discipline.test.ts.)
import { describe, expect, it } from 'vitest';
import { VirtualClock } from '../src/clock/virtual.ts';

const START_NS = 1_790_000_000_000_000_000n;
const S = 1_000_000_000;
const MS = 1_000_000;
const RATE_PPM = 500;

function clock(options: { initialOffsetNs?: number; driftPpm?: number } = {}): VirtualClock {
  return new VirtualClock({ initialOffsetNs: options.initialOffsetNs ?? 0, driftPpm: options.driftPpm ?? 0, startHostNs: START_NS });
}

/** Host time `seconds` after the start. */
const at = (seconds: number): bigint => START_NS + BigInt(Math.round(seconds * S));

describe('reading', () => {
  it('is host time plus the initial offset', () => {
    const c = clock({ initialOffsetNs: 1.5 * S });
    expect(c.offsetAtNs(at(10))).toBe(1.5 * S);
    expect(c.readAtNs(at(10))).toBe(at(10) + 1_500_000_000n);
    expect(c.frequencyPpm).toBe(0);
  });

  it('drifts at its configured rate', () => {
    const c = clock({ initialOffsetNs: -2 * S, driftPpm: 100 });
    expect(c.driftPpm).toBe(100);
    expect(c.offsetAtNs(at(0))).toBe(-2 * S);
    expect(c.offsetAtNs(at(1))).toBeCloseTo(-2 * S + 100_000, 3);
    expect(c.offsetAtNs(at(100))).toBeCloseTo(-2 * S + 10 * MS, 3);
    const slow = clock({ driftPpm: -37.5 });
    expect(slow.offsetAtNs(at(8))).toBeCloseTo(-300_000, 3);
  });

  it('keeps drifting after a step, from the stepped value', () => {
    const c = clock({ initialOffsetNs: 5 * S, driftPpm: 50 });
    c.step(-5 * S - 500_000, at(10)); // exactly cancels the offset at t = 10 s (5 s + 500 us of drift)
    expect(c.offsetAtNs(at(10))).toBeCloseTo(0, 3);
    expect(c.offsetAtNs(at(30))).toBeCloseTo(1 * MS, 3);
  });
});

describe('frequency', () => {
  it('a frequency adjustment adds to the drift from the moment it is set', () => {
    const c = clock({ driftPpm: 100 });
    c.setFrequency(-100, at(10));
    expect(c.frequencyPpm).toBe(-100);
    // 10 s at 100 ppm, then nothing.
    expect(c.offsetAtNs(at(10))).toBeCloseTo(1 * MS, 3);
    expect(c.offsetAtNs(at(1000))).toBeCloseTo(1 * MS, 3);
    c.setFrequency(-50, at(1000));
    expect(c.offsetAtNs(at(1010))).toBeCloseTo(1.5 * MS, 3);
  });

  it('changing the frequency keeps the slew in progress', () => {
    const c = clock();
    c.slew(2 * MS, RATE_PPM, at(0)); // 4 s
    c.setFrequency(10, at(1));
    expect(c.slewRemainingAtNs(at(1))).toBeCloseTo(1.5 * MS, 3);
    expect(c.offsetAtNs(at(4))).toBeCloseTo(2 * MS + 30_000, 3);
    expect(c.slewRemainingAtNs(at(4))).toBeCloseTo(0, 3);
  });
});

describe('slewing', () => {
  it('nothing moves at once; the offset moves at exactly the rate until the slew is done', () => {
    const c = clock();
    c.slew(10 * MS, RATE_PPM, at(0)); // 10 ms at 500 ppm takes 20 s
    expect(c.offsetAtNs(at(0))).toBe(0);
    expect(c.slewRateAtNs(at(0))).toBe(RATE_PPM);
    expect(c.offsetAtNs(at(1))).toBeCloseTo(500_000, 3);
    expect(c.offsetAtNs(at(10))).toBeCloseTo(5 * MS, 3);
    expect(c.slewRemainingAtNs(at(10))).toBeCloseTo(5 * MS, 3);
    expect(c.offsetAtNs(at(20))).toBeCloseTo(10 * MS, 3);
    expect(c.slewRemainingAtNs(at(20))).toBe(0);
    expect(c.slewRateAtNs(at(20))).toBe(0);
    // And stops there.
    expect(c.offsetAtNs(at(1000))).toBe(10 * MS);
  });

  it('slews negative corrections symmetrically', () => {
    const c = clock();
    c.slew(-3 * MS, RATE_PPM, at(0));
    expect(c.offsetAtNs(at(2))).toBeCloseTo(-1 * MS, 3);
    expect(c.offsetAtNs(at(6))).toBeCloseTo(-3 * MS, 3);
    expect(c.offsetAtNs(at(60))).toBe(-3 * MS);
  });

  it('a slew at rate 0 does nothing', () => {
    const c = clock();
    c.slew(5 * MS, 0, at(0));
    expect(c.offsetAtNs(at(100))).toBe(0);
    expect(c.slewRemainingAtNs(at(100))).toBe(0);
  });

  it.each([0, 100, -100])('never moves the offset faster than the slew rate beyond drift (drift %d ppm)', (driftPpm) => {
    const c = clock({ driftPpm });
    const stepNs = 10 * MS; // sample every 10 ms of host time
    let hostNs = START_NS;
    let previous = c.offsetAtNs(hostNs);
    const slews = [100 * MS, -50 * MS, 7 * MS, -127 * MS, 3 * MS];
    let moved = 0;
    for (let index = 0; index < 4000; index += 1) {
      if (index % 800 === 0) c.slew(slews[index / 800] as number, RATE_PPM, hostNs);
      hostNs += BigInt(stepNs);
      const offset = c.offsetAtNs(hostNs);
      const slewRateNs = offset - previous - (stepNs * driftPpm) / 1e6;
      expect(Math.abs(slewRateNs), `at ${index}`).toBeLessThanOrEqual((stepNs * RATE_PPM) / 1e6 + 1e-3);
      if (Math.abs(slewRateNs) > 1) moved += 1;
      previous = offset;
    }
    // The slews really ran (the bound was exercised, not trivially met).
    expect(moved).toBeGreaterThan(1000);
  });

  it('a new slew replaces the unfinished rest of the previous one', () => {
    const c = clock();
    c.slew(10 * MS, RATE_PPM, at(0));
    // After 5 s, 2.5 ms of the 10 ms has been applied; a new measurement says -1 ms.
    expect(c.offsetAtNs(at(5))).toBeCloseTo(2.5 * MS, 3);
    c.slew(-1 * MS, RATE_PPM, at(5));
    // No jump at the moment of replacement.
    expect(c.offsetAtNs(at(5))).toBeCloseTo(2.5 * MS, 3);
    expect(c.slewRemainingAtNs(at(5))).toBe(-1 * MS);
    // The old 7.5 ms remainder is dropped: the clock ends at 2.5 - 1 = 1.5 ms.
    expect(c.offsetAtNs(at(6))).toBeCloseTo(2 * MS, 3);
    expect(c.offsetAtNs(at(100))).toBeCloseTo(1.5 * MS, 3);
    expect(c.slewRemainingAtNs(at(100))).toBe(0);
  });

  it('a step during a slew cancels the slew', () => {
    const c = clock();
    c.slew(20 * MS, RATE_PPM, at(0));
    c.step(1 * S, at(4));
    // 4 s of slew (2 ms) plus the 1 s step, and nothing more afterwards.
    expect(c.offsetAtNs(at(4))).toBeCloseTo(1 * S + 2 * MS, 3);
    expect(c.offsetAtNs(at(100))).toBeCloseTo(1 * S + 2 * MS, 3);
    expect(c.slewRemainingAtNs(at(100))).toBe(0);
  });

  it('slews on top of drift', () => {
    const c = clock({ driftPpm: 100 });
    c.slew(-1 * MS, RATE_PPM, at(0));
    // -500 ppm slew + 100 ppm drift for 2 s, then drift only.
    expect(c.offsetAtNs(at(2))).toBeCloseTo(-1 * MS + 200_000, 3);
    expect(c.offsetAtNs(at(12))).toBeCloseTo(-1 * MS + 1.2 * MS, 3);
  });

  it.each([0, -100, 100])('the clock never goes backwards while slewing back (drift %d ppm)', (driftPpm) => {
    const c = clock({ driftPpm });
    c.slew(-100 * MS, RATE_PPM, at(0));
    let previous = c.readAtNs(at(0));
    // Coarse steps over the whole slew, then 1 ns steps where rounding could bite.
    for (let ms = 1; ms <= 2000; ms += 1) {
      const now = c.readAtNs(at(ms / 1000));
      expect(now > previous, `at ${ms} ms`).toBe(true);
      previous = now;
    }
    let host = at(1.5);
    previous = c.readAtNs(host);
    for (let index = 0; index < 20_000; index += 1) {
      host += 1n;
      const now = c.readAtNs(host);
      expect(now >= previous, `at +${index} ns`).toBe(true);
      previous = now;
    }
    // It did slew back: after 1 s at -500 ppm, 0.5 ms behind (plus drift).
    expect(c.offsetAtNs(at(1))).toBeCloseTo(-500_000 + driftPpm * 1000, 3);
  });
});

describe('a clock decades off (a box at 1970)', () => {
  // The host at START_NS (2026), the virtual clock at the epoch plus 3 s: an offset of ~-1.79e18
  // ns, where a float64 resolves 256 ns. The offset's whole ns are kept exactly.
  const offsetNs = -Number(START_NS) + 3 * S;

  it('drifts without 256 ns rounding, and a step of 56 years lands within a float64 rounding, the next one exactly', () => {
    const c = clock({ initialOffsetNs: offsetNs, driftPpm: 1 });
    expect(c.readAtNs(at(0))).toBe(START_NS + BigInt(offsetNs));
    expect(c.readAtNs(at(0))).toBeLessThan(4_000_000_000n);
    // 1 ppm over 1 ms is 1 ns: kept, not rounded away in the offset.
    expect(c.readAtNs(at(0.001)) - c.readAtNs(at(0))).toBe(1_000_001n);
    // The correction onto the host's time, as a frame carries it (a float64: rounded to 256 ns).
    const stepNs = Number(at(1) - c.readAtNs(at(1)));
    c.step(stepNs, at(1));
    const residualNs = Number(at(1) - c.readAtNs(at(1)));
    expect(Math.abs(residualNs)).toBeLessThanOrEqual(128);
    // The next correction is small, so exact.
    c.step(residualNs, at(1));
    expect(c.readAtNs(at(1))).toBe(at(1));
    expect(c.offsetAtNs(at(2))).toBeCloseTo(1000, 6);
    // And it keeps running forward, 1 ns resolution, as any clock.
    expect(c.readAtNs(at(2) + 1n) - c.readAtNs(at(2))).toBe(1n);
  });
});
