// The clock discipline: initial steps, the step threshold, never backwards once synchronized, the
// panic threshold, the slew rate limit, and the phase-and-frequency loop closed over a drifting
// virtual clock (it learns the frequency, holds over when corrections stop, starts from a saved
// frequency, and one jump of the cluster's time does not throw the frequency off).
import { describe, expect, it } from 'vitest';
import { carryOut, Discipline, type DisciplineAction, type DisciplineConfig } from '../../src/core/sync/discipline.ts';
import { VirtualClock } from '../../src/clock/virtual.ts';
import { FREQUENCY_GAIN, FREQUENCY_PPM_MAX, INITIAL_STEPS, PHASE_GAIN } from '../../src/core/limits.ts';

/** Updates after synchronization until the acquisition gains have come down to the steady ones. */
const ACQUISITION_UPDATES = Math.ceil(1 / FREQUENCY_GAIN);
import { SeededRandom } from '../../src/sim/random.ts';

const MS = 1_000_000;
const S = 1_000_000_000;
const CONFIG: DisciplineConfig = { stepThresholdNs: 128 * MS, slewPpmMax: 5000, correctionNsMax: 600 * S, driverPpmMax: 100_000, pollIntervalMs: 1000, provisionalWindowMs: 0 };

function synchronized(config: Partial<DisciplineConfig> = {}): Discipline {
  const discipline = new Discipline({ ...CONFIG, ...config });
  for (let index = 0; index < INITIAL_STEPS; index += 1) expect(discipline.correct(0, index * 1000).kind).toBe('step');
  expect(discipline.isSynchronized).toBe(true);
  return discipline;
}

describe('initial synchronization', () => {
  it('the first corrections are stepped in full, whatever their size or sign, then the clock is synchronized', () => {
    const discipline = new Discipline(CONFIG);
    const corrections = [-2 * S, 3 * MS, 10, 5 * S];
    corrections.slice(0, INITIAL_STEPS).forEach((correctionNs, index) => {
      expect(discipline.isSynchronized).toBe(false);
      expect(discipline.correct(correctionNs, index * 1000)).toEqual({ kind: 'step', deltaNs: correctionNs, frequencyPpm: 0, why: 'initial' });
    });
    expect(discipline.isSynchronized).toBe(true);
    expect(discipline.state()).toMatchObject({ steps: INITIAL_STEPS, slews: 0, updates: INITIAL_STEPS, refused: 0 });
  });

  it('before synchronization a clock steps backwards only once (like chrony makestep); a later backward correction is slewed in full', () => {
    const discipline = new Discipline(CONFIG);
    expect(discipline.correct(5 * S, 0)).toMatchObject({ kind: 'step', deltaNs: 5 * S });
    expect(discipline.correct(-3600 * S, 1000)).toMatchObject({ kind: 'step', deltaNs: -3600 * S });
    expect(discipline.isSynchronized).toBe(false);
    // The second backward one: slewed, all of it, at the slew limit.
    expect(discipline.correct(-40 * MS, 2000)).toEqual({ kind: 'slew', phaseNs: -40 * MS, ratePpm: 5000, frequencyPpm: 0 });
    expect(discipline.isSynchronized).toBe(true);
    expect(discipline.state()).toMatchObject({ steps: 2, slews: 1, updates: 3 });
    // Carried out on a clock: it never reads less than before after its one step back.
    const clock = new VirtualClock({ initialOffsetNs: 0, driftPpm: 0, startHostNs: 0n });
    const fresh = new Discipline(CONFIG);
    let hostNs = 0n;
    let lastNs = clock.readAtNs(hostNs);
    let backSteps = 0;
    for (const correctionNs of [-2 * S, 30 * MS, -5 * MS, -1 * S]) {
      carryOut(fresh.correct(correctionNs, Number(hostNs / 1_000_000n), clock.slewRemainingAtNs(hostNs)), {
        step: (deltaNs) => clock.step(deltaNs, hostNs),
        slew: (phaseNs, ratePpm) => clock.slew(phaseNs, ratePpm, hostNs),
        setFrequency: (frequencyPpm) => clock.setFrequency(frequencyPpm, hostNs),
      });
      const nowNs = clock.readAtNs(hostNs);
      if (nowNs < lastNs) backSteps += 1;
      for (let tick = 0; tick < 100; tick += 1) {
        hostNs += 10_000_000n;
        const readNs = clock.readAtNs(hostNs);
        expect(readNs).toBeGreaterThanOrEqual(nowNs);
        lastNs = readNs;
      }
    }
    expect(backSteps).toBe(1);
  });

  it('before synchronization nothing is refused, not even a correction above the panic threshold', () => {
    const discipline = new Discipline({ ...CONFIG, correctionNsMax: 1 * S });
    expect(discipline.correct(3600 * S, 0).kind).toBe('step');
  });

  it('a clock that starts synchronized (the kernel kept it) slews from the first correction', () => {
    const discipline = new Discipline(CONFIG, { synchronized: true });
    expect(discipline.correct(-1 * MS, 0).kind).toBe('slew');
  });
});

describe('once synchronized', () => {
  it.each([
    ['at the threshold', 128 * MS, 'step'],
    ['above the threshold', 2 * S, 'step'],
    // Never backwards: large backward corrections are slewed.
    ['negative, at the threshold', -128 * MS, 'slew'],
    ['negative, above the threshold', -2 * S, 'slew'],
    ['just below the threshold', 128 * MS - 1, 'slew'],
    ['zero', 0, 'slew'],
  ])('a correction %s: %s', (_name, correctionNs, kind) => {
    const action = synchronized().correct(correctionNs, 10_000);
    expect(action.kind).toBe(kind);
    if (action.kind === 'step') expect(action.deltaNs).toBe(correctionNs);
  });

  it('a step threshold of 0 never steps once synchronized', () => {
    expect(synchronized({ stepThresholdNs: 0 }).correct(10 * S, 10_000).kind).toBe('slew');
  });

  it('acquisition: right after synchronization the phase gain starts near 1 and shrinks to the steady one', () => {
    const discipline = synchronized();
    const gains: number[] = [];
    for (let update = 1; update <= ACQUISITION_UPDATES + 2; update += 1) {
      gains.push((discipline.correct(10_000, 2000 + update * 1000) as Extract<DisciplineAction, { kind: 'slew' }>).phaseNs / 10_000);
    }
    expect(gains[0]).toBe(1);
    for (let index = 1; index < gains.length; index += 1) expect(gains[index] as number).toBeLessThanOrEqual(gains[index - 1] as number);
    expect(gains.at(-1)).toBeCloseTo(PHASE_GAIN, 9);
    // A frequency from the drift file is already close: no acquisition.
    const warm = new Discipline(CONFIG, { frequencyPpm: 3, synchronized: true, frequencyLearned: true });
    expect((warm.correct(10_000, 0) as Extract<DisciplineAction, { kind: 'slew' }>).phaseNs).toBeCloseTo(PHASE_GAIN * 10_000, 6);
    // One merely found in the kernel (maybe a slew cut short by a crash) is a start, not a lock.
    const found = new Discipline(CONFIG, { frequencyPpm: 3, synchronized: true });
    expect((found.correct(10_000, 0) as Extract<DisciplineAction, { kind: 'slew' }>).phaseNs).toBe(10_000);
  });

  it('a small correction slews only part of it (the phase gain); a jump beyond noise is slewed in full', () => {
    const discipline = synchronized();
    for (let update = 1; update <= ACQUISITION_UPDATES; update += 1) discipline.correct(0, 2000 + update * 1000);
    const small = discipline.correct(40_000, 20_000) as Extract<DisciplineAction, { kind: 'slew' }>;
    expect(small.phaseNs).toBeCloseTo(PHASE_GAIN * 40_000, 6);
    // A jump far beyond the recent noise is held once (a spike?), then, confirmed, slewed in full.
    expect(discipline.correct(-50 * MS, 21_000).kind).toBe('hold');
    const jump = discipline.correct(-50 * MS, 22_000) as Extract<DisciplineAction, { kind: 'slew' }>;
    expect(jump.phaseNs).toBe(-50 * MS);
  });

  it('holds a spike once: a correction far beyond the recent noise moves neither phase nor frequency unless the next confirms it', () => {
    const discipline = synchronized();
    for (let update = 1; update <= 20; update += 1) discipline.correct(update % 2 === 0 ? 10_000 : -10_000, 2000 + update * 1000);
    const before = discipline.state();
    expect(before.rmsOffsetNs).toBeGreaterThan(5_000);
    // 900 us against an RMS of ~10 us: a spoiled measurement.
    const held = discipline.correct(900_000, 23_000);
    expect(held).toMatchObject({ kind: 'hold', correctionNs: 900_000 });
    expect((held as { limitNs: number }).limitNs).toBe(50_000); // 4 x RMS, raised to the 50 us floor
    const touched: string[] = [];
    carryOut(held, { step: () => touched.push('step'), slew: () => touched.push('slew'), setFrequency: () => touched.push('frequency') });
    expect(touched).toEqual([]);
    expect(discipline.state()).toMatchObject({ spikes: 1, updates: before.updates, frequencyPpm: before.frequencyPpm, rmsOffsetNs: before.rmsOffsetNs });
    // The next one is ordinary: applied as usual, and the spike is forgotten.
    expect(discipline.correct(-8_000, 24_000).kind).toBe('slew');
    // Two large ones in a row: the second confirms the first.
    expect(discipline.correct(700_000, 25_000).kind).toBe('hold');
    expect(discipline.correct(690_000, 26_000).kind).toBe('slew');
    expect(discipline.state().spikes).toBe(2);
  });

  it('slews at the configured limit, within what the driver has left beside the frequency', () => {
    expect((synchronized().correct(1 * MS, 3000) as { ratePpm: number }).ratePpm).toBe(5000);
    // A kernel clock allows 500 ppm in all: with the frequency at +100 ppm, 400 are left to slew.
    const kernelLike = new Discipline({ ...CONFIG, driverPpmMax: 500 }, { frequencyPpm: 100, synchronized: true });
    const action = kernelLike.correct(-1 * MS, 0) as Extract<DisciplineAction, { kind: 'slew' }>;
    expect(action.frequencyPpm).toBe(100);
    expect(action.ratePpm).toBe(400);
  });

  it('refuses a correction above the panic threshold, in either direction, and counts it', () => {
    const discipline = synchronized({ correctionNsMax: 1 * S });
    const before = discipline.state();
    for (const correctionNs of [3600 * S, -1.5 * S]) {
      const action = discipline.correct(correctionNs, 10_000);
      expect(action).toEqual({ kind: 'refuse', correctionNs, correctionNsMax: 1 * S });
      // Nothing to carry out: the clock is not touched.
      const touched: string[] = [];
      carryOut(action, { step: () => touched.push('step'), slew: () => touched.push('slew'), setFrequency: () => touched.push('frequency') });
      expect(touched).toEqual([]);
    }
    const after = discipline.state();
    expect(after.refused).toBe(2);
    expect(after.lastRefused).toEqual({ correctionNs: -1.5 * S, atMs: 10_000 });
    // A refused correction changes neither the frequency nor the offset history.
    expect(after.frequencyPpm).toBe(before.frequencyPpm);
    expect(after.updates).toBe(before.updates);
    // At the threshold it is still accepted; Infinity means never refuse.
    expect(discipline.correct(1 * S, 11_000).kind).not.toBe('refuse');
    expect(synchronized({ correctionNsMax: Number.POSITIVE_INFINITY }).correct(1e6 * S, 10_000).kind).toBe('step');
  });

  it('refuses a non-finite correction', () => {
    expect(new Discipline(CONFIG).correct(Number.NaN, 0).kind).toBe('refuse');
  });
});

/** A closed loop: a drifting virtual clock corrected every round against true time (the host). */
function closedLoop(options: { driftPpm: number; rounds: number; noiseNs: number; seed?: number; discipline?: Discipline; intervalMs?: number }) {
  const intervalMs = options.intervalMs ?? 1000;
  const random = new SeededRandom(options.seed ?? 1);
  const clock = new VirtualClock({ initialOffsetNs: 0.7 * S, driftPpm: options.driftPpm, startHostNs: 0n });
  const discipline = options.discipline ?? new Discipline(CONFIG);
  const offsetsNs: number[] = [];
  let nowMs = 0;
  for (let round = 0; round < options.rounds; round += 1) {
    nowMs += intervalMs;
    const hostNs = BigInt(nowMs) * 1_000_000n;
    const offsetNs = clock.offsetAtNs(hostNs);
    offsetsNs.push(offsetNs);
    const measuredNs = offsetNs + (random.next() * 2 - 1) * options.noiseNs;
    const action = discipline.correct(-measuredNs, nowMs, clock.slewRemainingAtNs(hostNs));
    carryOut(action, { step: (d) => clock.step(d, hostNs), slew: (p, r) => clock.slew(p, r, hostNs), setFrequency: (f) => clock.setFrequency(f, hostNs) });
  }
  return { clock, discipline, offsetsNs, nowMs };
}

describe('the phase-and-frequency loop', () => {
  it.each([80, -100, 0, 250])('learns a drift of %d ppm and keeps the offset small', (driftPpm) => {
    const { discipline, offsetsNs } = closedLoop({ driftPpm, rounds: 120, noiseNs: 20_000 });
    expect(discipline.frequencyPpm).toBeCloseTo(-driftPpm, -0.5); // within ~1.6 ppm
    const late = offsetsNs.slice(-60).map(Math.abs);
    expect(Math.max(...late)).toBeLessThan(60_000);
    // Without the frequency loop, a 250 ppm clock would be 250 us off before every correction.
    expect(discipline.state().rmsOffsetNs).toBeLessThan(60_000);
  });

  it('holds over: when the corrections stop, the learned frequency keeps the clock close', () => {
    const { clock, nowMs } = closedLoop({ driftPpm: 90, rounds: 120, noiseNs: 10_000 });
    const startNs = clock.offsetAtNs(BigInt(nowMs) * 1_000_000n);
    const after30sNs = clock.offsetAtNs(BigInt(nowMs + 30_000) * 1_000_000n);
    // Free-running at 90 ppm it would be 2.7 ms off after 30 s.
    expect(Math.abs(after30sNs - startNs)).toBeLessThan(200_000);
  });

  it('starts from a saved frequency, so it is right from the first round', () => {
    const discipline = new Discipline(CONFIG, { frequencyPpm: -60 });
    expect(discipline.frequencyPpm).toBe(-60);
    const { offsetsNs } = closedLoop({ driftPpm: 60, rounds: 20, noiseNs: 0, discipline });
    // Right after the initial steps the clock holds within a few microseconds.
    expect(Math.max(...offsetsNs.slice(INITIAL_STEPS + 1).map(Math.abs))).toBeLessThan(5_000);
    // A saved frequency beyond the limit is clamped; garbage is ignored.
    expect(new Discipline(CONFIG, { frequencyPpm: 1e6 }).frequencyPpm).toBe(FREQUENCY_PPM_MAX);
    expect(new Discipline(CONFIG, { frequencyPpm: Number.NaN }).frequencyPpm).toBe(0);
  });

  it('one jump of the cluster time (a new master 300 us away) moves the frequency only a little', () => {
    const discipline = synchronized();
    for (let round = 1; round <= 10; round += 1) discipline.correct(0, 2000 + round * 1000);
    const before = discipline.frequencyPpm;
    discipline.correct(300_000, 13_000);
    expect(Math.abs(discipline.frequencyPpm - before)).toBeLessThan(10);
  });

  it('a correction that only repeats an unfinished slew says nothing about the frequency', () => {
    const discipline = synchronized();
    discipline.correct(-100 * MS, 3000); // a long slew back starts
    const before = discipline.frequencyPpm;
    // Next round the master measures what is still to slew (plus nothing else).
    discipline.correct(-95 * MS, 4000, -95 * MS);
    expect(discipline.frequencyPpm).toBe(before);
  });

  it('the frequency never leaves the limit, even with a wild clock', () => {
    const { discipline } = closedLoop({ driftPpm: 5000, rounds: 200, noiseNs: 0 });
    expect(Math.abs(discipline.frequencyPpm)).toBeLessThanOrEqual(FREQUENCY_PPM_MAX);
  });

  it('a long --poll-interval (120 s) still learns the frequency', () => {
    const discipline = new Discipline({ ...CONFIG, pollIntervalMs: 120_000 });
    const { offsetsNs } = closedLoop({ driftPpm: 100, rounds: 100, noiseNs: 10_000, discipline, intervalMs: 120_000 });
    expect(discipline.frequencyPpm).toBeCloseTo(-100, -0.5);
    expect(Math.max(...offsetsNs.slice(-20).map(Math.abs))).toBeLessThan(1_000_000);
  });

  it('one jump of the cluster time does not widen the spike limit for long', () => {
    const discipline = synchronized();
    let nowMs = 3000;
    const next = (correctionNs: number) => discipline.correct(correctionNs, (nowMs += 1000));
    for (let round = 0; round < 40; round += 1) next(round % 2 === 0 ? 5_000 : -5_000);
    // A 10 ms jump (held, then confirmed and slewed in full) ...
    expect(next(10_000_000).kind).toBe('hold');
    expect(next(10_000_000).kind).toBe('slew');
    for (let round = 0; round < 30; round += 1) next(round % 2 === 0 ? 5_000 : -5_000);
    // ... and 30 rounds later a lone 2 ms spike is still held.
    expect(next(2_000_000).kind).toBe('hold');
  });

  it('a forward correction above the step threshold is held once like a spike, then stepped', () => {
    const discipline = synchronized();
    for (let round = 1; round <= 10; round += 1) discipline.correct(round % 2 === 0 ? 5_000 : -5_000, 2000 + round * 1000);
    expect(discipline.correct(200 * MS, 13_000).kind).toBe('hold');
    expect(discipline.correct(200 * MS, 14_000)).toMatchObject({ kind: 'step', deltaNs: 200 * MS, why: 'threshold' });
  });

  it('corrections far apart (a long holdover) do not update the frequency', () => {
    const discipline = synchronized();
    const before = discipline.frequencyPpm;
    discipline.correct(200_000, 3000 + 10 * 60_000);
    expect(discipline.frequencyPpm).toBe(before);
  });
});

describe('the provisional window (the cluster still forming)', () => {
  const WINDOW_MS = 60_000;
  const provisional = () => new Discipline({ ...CONFIG, provisionalWindowMs: WINDOW_MS });

  it('within the window a clock steps back again by the step threshold or more (the reference moved back), and the panic threshold waits', () => {
    const discipline = provisional();
    expect(discipline.correct(1800 * S, 0)).toMatchObject({ kind: 'step', why: 'initial' });
    expect(discipline.correct(-2 * S, 1000)).toMatchObject({ kind: 'step', deltaNs: -2 * S, why: 'initial' });
    // A second backward initial correction: stepped only because it is at least the step threshold.
    expect(discipline.correct(-1800 * S, 2000)).toMatchObject({ kind: 'step', deltaNs: -1800 * S, why: 'initial' });
    expect(discipline.isSynchronized).toBe(true);
    expect(discipline.isProvisional).toBe(true);
    // Synchronized and provisional: a backward correction beyond the threshold (and beyond the
    // 600 s panic threshold) is stepped, once confirmed (the first is held as a spike).
    discipline.correct(0, 3000);
    expect(discipline.correct(-900 * S, 4000).kind).toBe('hold');
    expect(discipline.correct(-900 * S, 5000)).toMatchObject({ kind: 'step', deltaNs: -900 * S, why: 'provisional' });
    // Below the threshold, backwards is slewed as always.
    expect(discipline.correct(-50 * MS, 6000).kind).not.toBe('step');
  });

  it('after the window the clock is locked: it never steps back, and the panic threshold applies', () => {
    const discipline = provisional();
    for (let index = 0; index < INITIAL_STEPS; index += 1) discipline.correct(0, index * 1000);
    expect(discipline.isProvisional).toBe(true);
    expect(discipline.correct(0, WINDOW_MS)).toMatchObject({ kind: 'slew' });
    expect(discipline.isProvisional).toBe(false);
    expect(discipline.provisionalNsAt(WINDOW_MS + 1000, 0)).toBeNull();
    expect(discipline.correct(-900 * S, WINDOW_MS + 1000).kind).toBe('refuse');
    discipline.correct(0, WINDOW_MS + 2000);
    expect(discipline.correct(-1 * S, WINDOW_MS + 3000).kind).toBe('hold');
    expect(discipline.correct(-1 * S, WINDOW_MS + 4000).kind).toBe('slew');
  });

  it('a clock that starts synchronized (kept across a restart) is locked from the start, and window 0 means never provisional', () => {
    expect(new Discipline({ ...CONFIG, provisionalWindowMs: WINDOW_MS }, { synchronized: true }).isProvisional).toBe(false);
    expect(new Discipline(CONFIG).isProvisional).toBe(false);
    expect(new Discipline(CONFIG).provisionalNsAt(0, 0)).toBeNull();
  });

  it('provisionalNs is how far the clock has moved: steps, the part of slews carried out, and the frequency beyond the starting one', () => {
    const discipline = new Discipline({ ...CONFIG, provisionalWindowMs: WINDOW_MS }, { frequencyPpm: 10 });
    const clock = new VirtualClock({ initialOffsetNs: 0, driftPpm: 0, startHostNs: 0n });
    const raw = new VirtualClock({ initialOffsetNs: 0, driftPpm: 0, startHostNs: 0n });
    raw.setFrequency(10, 0n);
    clock.setFrequency(10, 0n);
    const random = new SeededRandom(14);
    let hostNs = 0n;
    for (let index = 0; index < 40; index += 1) {
      hostNs += 1_000_000_000n;
      const nowMs = Number(hostNs / 1_000_000n);
      const correctionNs = index < 3 ? random.between(-2, 2) * S : random.between(-300, 300) * MS;
      carryOut(discipline.correct(correctionNs, nowMs, clock.slewRemainingAtNs(hostNs)), {
        step: (deltaNs) => clock.step(deltaNs, hostNs),
        slew: (phaseNs, ratePpm) => clock.slew(phaseNs, ratePpm, hostNs),
        setFrequency: (frequencyPpm) => clock.setFrequency(frequencyPpm, hostNs),
      });
      // Half a second later, mid-slew: the clock minus provisionalNs is the clock left alone.
      const laterNs = hostNs + 500_000_000n;
      const movedNs = discipline.provisionalNsAt(nowMs + 500, clock.slewRemainingAtNs(laterNs));
      expect(movedNs).not.toBeNull();
      expect(Math.abs(Number(clock.readAtNs(laterNs) - raw.readAtNs(laterNs)) - (movedNs as number))).toBeLessThan(1000);
    }
  });
});

describe('corrections onto an upstream (issue 18)', () => {
  const UPSTREAM = { source: 'upstream' as const, pollIntervalMs: 16_000 };

  it('slew-only corrections never step, forward or back, however large below the panic threshold', () => {
    const discipline = synchronized();
    for (const [index, correctionNs] of [300 * MS, -2 * S, 50 * S].entries()) {
      const action = discipline.correct(correctionNs, 10_000 + index * 16_000, 0, { ...UPSTREAM, slewOnly: true });
      expect(action).toMatchObject({ kind: 'slew', phaseNs: correctionNs });
    }
    // Beyond the panic threshold: refused, even from a clock that is not synchronized yet.
    const fresh = new Discipline(CONFIG);
    expect(fresh.correct(700 * S, 0, 0, { ...UPSTREAM, slewOnly: true }).kind).toBe('refuse');
    // An unsynchronized clock's initial corrections are slewed too when the cluster is established.
    expect(fresh.correct(3 * S, 1_000, 0, { ...UPSTREAM, slewOnly: true })).toMatchObject({ kind: 'slew', phaseNs: 3 * S });
  });

  it('an upstream\'s correction is not held as a spike (the NTP client filtered it already)', () => {
    const discipline = synchronized();
    for (let index = 0; index < 20; index += 1) discipline.correct(1_000, 4_000 + index * 1000);
    expect(discipline.correct(900_000, 30_000).kind).toBe('hold');
    expect(discipline.correct(900_000, 46_000, 0, UPSTREAM).kind).toBe('slew');
  });

  it('an upstream correction that came a few ms after the previous one moves the phase but reads no rate out of it', () => {
    const discipline = synchronized();
    discipline.correct(200_000, 100_000, 0, UPSTREAM);
    const before = discipline.frequencyPpm;
    // 200 us left 5 ms later (the phase the loop chose to leave, not drift): as a rate, 40,000 ppm.
    const action = discipline.correct(200_000, 100_005, 0, UPSTREAM);
    expect(action.kind).toBe('slew');
    expect(discipline.frequencyPpm).toBe(before);
    // A poll later the same residual is a rate, and it is taken.
    discipline.correct(200_000, 116_005, 0, UPSTREAM);
    expect(discipline.frequencyPpm).not.toBe(before);
  });

  it('a change of reference learns the new rate without weighting the old frequency: a clock 60 ppm off the upstream is within 1 ppm after ten polls', () => {
    const clock = new VirtualClock({ initialOffsetNs: 0, driftPpm: 0, startHostNs: 0n });
    const discipline = synchronized();
    // Locked on a cluster that runs at the clock's own rate: the frequency stays near 0.
    for (let index = 0; index < ACQUISITION_UPDATES; index += 1) discipline.correct(0, 4_000 + index * 1000);
    const upstreamRatePpm = 60;
    let hostNs = 200n * BigInt(S);
    const random = new SeededRandom(3);
    for (let poll = 0; poll < 10; poll += 1) {
      hostNs += 16n * BigInt(S);
      // The upstream runs 60 ppm faster than this clock's oscillator; 10 us of measurement noise.
      const upstreamNs = Number(hostNs) * (1 + upstreamRatePpm / 1e6);
      const offsetNs = upstreamNs - Number(clock.readAtNs(hostNs)) + (random.next() - 0.5) * 20_000;
      carryOut(discipline.correct(offsetNs, Number(hostNs) / MS, clock.slewRemainingAtNs(hostNs), UPSTREAM), {
        step: (deltaNs) => clock.step(deltaNs, hostNs),
        slew: (phaseNs, ratePpm) => clock.slew(phaseNs, ratePpm, hostNs),
        setFrequency: (frequencyPpm) => clock.setFrequency(frequencyPpm, hostNs),
      });
    }
    expect(Math.abs(discipline.frequencyPpm - upstreamRatePpm)).toBeLessThan(1);
  });
});

describe('a box decades off (RTC reset to 1970, a bad image)', () => {
  // The member at the epoch, the cluster at 2026-01-01: ~1.77e18 ns, far beyond 2^53 (a float64
  // resolves 256 ns there) and beyond any panic threshold.
  const FIFTY_SIX_YEARS_NS = 1_767_225_600 * S;
  const WINDOW_MS = 60_000;

  it('an unsynchronized clock steps the whole 56 years with its first correction, and reads the cluster\'s time after it', () => {
    const discipline = new Discipline({ ...CONFIG, provisionalWindowMs: WINDOW_MS });
    const hostNs = 1_767_225_600_000_000_000n;
    const clock = new VirtualClock({ initialOffsetNs: -Number(hostNs) + 5 * S, driftPpm: 0, startHostNs: hostNs });
    const correctionNs = Number(hostNs - clock.readAtNs(hostNs));
    expect(correctionNs).toBeGreaterThan(FIFTY_SIX_YEARS_NS - 10 * S);
    const action = discipline.correct(correctionNs, 0);
    expect(action).toEqual({ kind: 'step', deltaNs: correctionNs, frequencyPpm: 0, why: 'initial' });
    carryOut(action, { step: (deltaNs) => clock.step(deltaNs, hostNs), slew: () => {}, setFrequency: (ppm) => clock.setFrequency(ppm, hostNs) });
    expect(clock.readAtNs(hostNs)).toBe(hostNs);
    // Provisional: it reports the whole step truthfully (the master judges its raw time by it).
    expect(discipline.provisionalNsAt(0, 0)).toBe(correctionNs);
    expect(discipline.state()).toMatchObject({ steps: 1, refused: 0 });
  });

  it('a synchronized, locked clock refuses it in either direction (the panic threshold still holds), and with --max-correction 0 takes it', () => {
    const locked = new Discipline(CONFIG, { synchronized: true });
    expect(locked.correct(FIFTY_SIX_YEARS_NS, 0)).toEqual({ kind: 'refuse', correctionNs: FIFTY_SIX_YEARS_NS, correctionNsMax: 600 * S });
    expect(locked.correct(-FIFTY_SIX_YEARS_NS, 1000).kind).toBe('refuse');
    const afterInitial = synchronized();
    expect(afterInitial.correct(FIFTY_SIX_YEARS_NS, 5000).kind).toBe('refuse');
    expect(afterInitial.state().refused).toBe(1);
    // 0 = never refuse (Infinity): a forward step, after the spike hold confirms it.
    const unlimited = new Discipline({ ...CONFIG, correctionNsMax: Number.POSITIVE_INFINITY }, { synchronized: true });
    unlimited.correct(0, 0);
    expect(unlimited.correct(FIFTY_SIX_YEARS_NS, 1000).kind).toBe('hold');
    expect(unlimited.correct(FIFTY_SIX_YEARS_NS, 2000)).toMatchObject({ kind: 'step', deltaNs: FIFTY_SIX_YEARS_NS, why: 'threshold' });
  });
});
