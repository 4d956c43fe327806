// The virtual clock: step versus slew, the slew rate bound, slew replacement, drift, monotonicity.
import { describe, expect, it } from 'vitest';
import { VirtualClock } from '../src/clock/virtual.ts';
import { INITIAL_STEPS } from '../src/core/limits.ts';

const START_NS = 1_790_000_000_000_000_000n;
const S = 1_000_000_000;
const MS = 1_000_000;
const policy = { stepThresholdNs: 128 * MS, slewPpmMax: 500 };

function clock(options: { initialOffsetNs?: number; driftPpm?: number } = {}): VirtualClock {
  return new VirtualClock({ initialOffsetNs: options.initialOffsetNs ?? 0, driftPpm: options.driftPpm ?? 0, startHostNs: START_NS, policy });
}

/** Host time `seconds` after the start. */
const at = (seconds: number): bigint => START_NS + BigInt(Math.round(seconds * S));

/** A clock past its initial (always stepped) corrections, so later small ones slew. */
function synchronizedClock(options: { initialOffsetNs?: number; driftPpm?: number } = {}): VirtualClock {
  const result = clock(options);
  for (let index = 0; index < INITIAL_STEPS; index += 1) expect(result.correct(0, START_NS)).toBe('step');
  expect(result.synchronized).toBe(true);
  return result;
}

describe('reading', () => {
  it('is host time plus the initial offset', () => {
    const c = clock({ initialOffsetNs: 1.5 * S });
    expect(c.offsetAtNs(at(10))).toBe(1.5 * S);
    expect(c.readAtNs(at(10))).toBe(at(10) + 1_500_000_000n);
    expect(c.synchronized).toBe(false);
    expect(c.frequencyPpm).toBe(0);
  });

  it('drifts at its configured rate', () => {
    const c = clock({ initialOffsetNs: -2 * S, driftPpm: 100 });
    expect(c.frequencyPpm).toBe(100);
    expect(c.offsetAtNs(at(0))).toBe(-2 * S);
    expect(c.offsetAtNs(at(1))).toBeCloseTo(-2 * S + 100_000, 3);
    expect(c.offsetAtNs(at(100))).toBeCloseTo(-2 * S + 10 * MS, 3);
    const slow = clock({ driftPpm: -37.5 });
    expect(slow.offsetAtNs(at(8))).toBeCloseTo(-300_000, 3);
  });

  it('keeps drifting after a step, from the stepped value', () => {
    const c = clock({ initialOffsetNs: 5 * S, driftPpm: 50 });
    c.correct(-5 * S - 500_000, at(10)); // exactly cancels the offset at t = 10 s (5 s + 500 us of drift)
    expect(c.offsetAtNs(at(10))).toBeCloseTo(0, 3);
    expect(c.offsetAtNs(at(30))).toBeCloseTo(1 * MS, 3);
  });
});

describe('step versus slew', () => {
  it('the initial corrections step, however small', () => {
    expect(INITIAL_STEPS).toBeGreaterThanOrEqual(1);
    const c = clock({ initialOffsetNs: 1000 });
    for (let index = 1; index <= INITIAL_STEPS; index += 1) {
      expect(c.synchronized).toBe(false);
      expect(c.correct(-10, at(index))).toBe('step');
      expect(c.offsetAtNs(at(index))).toBe(1000 - 10 * index);
      expect(c.steps).toBe(index);
    }
    expect(c.synchronized).toBe(true);
    expect(c.slews).toBe(0);
    // The next small one slews.
    expect(c.correct(-10, at(INITIAL_STEPS + 1))).toBe('slew');
  });

  it('later corrections below the threshold slew', () => {
    const c = synchronizedClock();
    expect(c.correct(1 * MS, at(1))).toBe('slew');
    // Nothing moves instantly.
    expect(c.offsetAtNs(at(1))).toBe(0);
    expect(c.slewRemainingAtNs(at(1))).toBe(1 * MS);
    expect(c.slews).toBe(1);
    expect(c.steps).toBe(INITIAL_STEPS);
  });

  it.each([
    ['at the threshold', 128 * MS, 'step'],
    ['above the threshold', 2 * S, 'step'],
    // Once synchronized the clock never runs backwards: large backward corrections are slewed.
    ['negative, at the threshold', -128 * MS, 'slew'],
    ['negative, above the threshold', -2 * S, 'slew'],
    ['just below the threshold', 128 * MS - 1, 'slew'],
    ['negative, just below the threshold', -(128 * MS - 1), 'slew'],
    ['zero', 0, 'slew'],
  ])('a correction %s: %s', (_name, correctionNs, outcome) => {
    const c = synchronizedClock();
    expect(c.correct(correctionNs, at(5))).toBe(outcome);
    if (outcome === 'step') expect(c.offsetAtNs(at(5))).toBe(correctionNs);
    else expect(c.offsetAtNs(at(5))).toBe(0);
  });
});

describe('slewing', () => {
  it('moves the offset at exactly slewPpmMax until the correction is done', () => {
    const c = synchronizedClock();
    c.correct(10 * MS, at(0)); // 10 ms at 500 ppm takes 20 s
    expect(c.offsetAtNs(at(1))).toBeCloseTo(500_000, 3);
    expect(c.offsetAtNs(at(10))).toBeCloseTo(5 * MS, 3);
    expect(c.slewRemainingAtNs(at(10))).toBeCloseTo(5 * MS, 3);
    expect(c.offsetAtNs(at(20))).toBeCloseTo(10 * MS, 3);
    expect(c.slewRemainingAtNs(at(20))).toBe(0);
    // And stops there.
    expect(c.offsetAtNs(at(1000))).toBe(10 * MS);
  });

  it('slews negative corrections symmetrically', () => {
    const c = synchronizedClock({ initialOffsetNs: 0 });
    c.correct(-3 * MS, at(0));
    expect(c.offsetAtNs(at(2))).toBeCloseTo(-1 * MS, 3);
    expect(c.offsetAtNs(at(6))).toBeCloseTo(-3 * MS, 3);
    expect(c.offsetAtNs(at(60))).toBe(-3 * MS);
  });

  it.each([0, 100, -100])('never moves the offset faster than slewPpmMax beyond drift (drift %d ppm)', (driftPpm) => {
    const c = synchronizedClock({ driftPpm });
    const stepNs = 10 * MS; // sample every 10 ms of host time
    let hostNs = START_NS;
    let previous = c.offsetAtNs(hostNs);
    const corrections = [100 * MS, -50 * MS, 7 * MS, -127 * MS, 3 * MS];
    let moved = 0;
    for (let index = 0; index < 4000; index += 1) {
      if (index % 800 === 0) c.correct(corrections[index / 800] as number, hostNs);
      hostNs += BigInt(stepNs);
      const offset = c.offsetAtNs(hostNs);
      const slewRateNs = offset - previous - (stepNs * driftPpm) / 1e6;
      expect(Math.abs(slewRateNs), `at ${index}`).toBeLessThanOrEqual((stepNs * policy.slewPpmMax) / 1e6 + 1e-3);
      if (Math.abs(slewRateNs) > 1) moved += 1;
      previous = offset;
    }
    // The slews really ran (the bound was exercised, not trivially met).
    expect(moved).toBeGreaterThan(1000);
    expect(c.slews).toBe(5);
  });

  it('a new correction replaces the unfinished rest of the previous slew', () => {
    const c = synchronizedClock();
    c.correct(10 * MS, at(0));
    // After 5 s, 2.5 ms of the 10 ms has been applied; a new measurement says -1 ms.
    expect(c.offsetAtNs(at(5))).toBeCloseTo(2.5 * MS, 3);
    expect(c.correct(-1 * MS, at(5))).toBe('slew');
    // No jump at the moment of replacement.
    expect(c.offsetAtNs(at(5))).toBeCloseTo(2.5 * MS, 3);
    expect(c.slewRemainingAtNs(at(5))).toBe(-1 * MS);
    // The old 7.5 ms remainder is dropped: the clock ends at 2.5 - 1 = 1.5 ms.
    expect(c.offsetAtNs(at(6))).toBeCloseTo(2 * MS, 3);
    expect(c.offsetAtNs(at(100))).toBeCloseTo(1.5 * MS, 3);
    expect(c.slewRemainingAtNs(at(100))).toBe(0);
  });

  it('a step during a slew cancels the slew', () => {
    const c = synchronizedClock();
    c.correct(20 * MS, at(0));
    expect(c.correct(1 * S, at(4))).toBe('step');
    // 4 s of slew (2 ms) plus the 1 s step, and nothing more afterwards.
    expect(c.offsetAtNs(at(4))).toBeCloseTo(1 * S + 2 * MS, 3);
    expect(c.offsetAtNs(at(100))).toBeCloseTo(1 * S + 2 * MS, 3);
    expect(c.slewRemainingAtNs(at(100))).toBe(0);
  });

  it('slews on top of drift', () => {
    const c = synchronizedClock({ driftPpm: 100 });
    c.correct(-1 * MS, at(0));
    // -500 ppm slew + 100 ppm drift for 2 s, then drift only.
    expect(c.offsetAtNs(at(2))).toBeCloseTo(-1 * MS + 200_000, 3);
    expect(c.offsetAtNs(at(12))).toBeCloseTo(-1 * MS + 1.2 * MS, 3);
  });

  it.each([0, -100, 100])('the clock never goes backwards while slewing back (drift %d ppm)', (driftPpm) => {
    const c = synchronizedClock({ driftPpm });
    c.correct(-100 * MS, at(0));
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
