// The early stop of a round's probes (PROBES_MIN_DEFAULT in src/core/limits.ts): a member's probes
// stop once enough were sent and the best delay is near its recent minimum, and every
// FULL_PROBE_ROUND_EVERY-th round probes in full. Driven by the seeded simulator.
import { describe, expect, it } from 'vitest';
import { Simulation, type SimNodeSpec } from '../src/sim/simulation.ts';
import { FULL_PROBE_ROUND_EVERY, PROBES_MIN_DEFAULT, PROBES_PER_ROUND_DEFAULT } from '../src/core/limits.ts';
import { isNearMinimumDelay, type NodeConfig } from '../src/core/node.ts';

const NODES = 6;

function specs(): SimNodeSpec[] {
  return Array.from({ length: NODES }, (_, index) => ({ nodeId: `n${index + 1}`, initialOffsetNs: index * 3e8, driftPpm: (index - 2) * 20 }));
}

interface Measured {
  probesPerMemberRound: number;
  rounds: number;
  /** Mean and worst spread of the clocks, sampled every 100 ms after convergence. */
  spreadMeanNs: number;
  spreadMaxNs: number;
}

function measure(seed: number, jitterMeanMs: number, config: Partial<NodeConfig> = {}): Measured {
  const sim = new Simulation({ seed, nodes: specs(), discoverAll: true, network: { latencyMs: 0.1, jitterMeanMs }, config });
  sim.runUntil(20_000);
  const masters = sim.masters();
  expect(masters, `seed ${seed}: one master`).toHaveLength(1);
  const master = sim.node(masters[0]!)!;
  const before = master.status().counters;
  let spreadSumNs = 0;
  let spreadMaxNs = 0;
  const samples = 400;
  for (let i = 0; i < samples; i += 1) {
    sim.runFor(100);
    spreadSumNs += sim.spreadNs();
    spreadMaxNs = Math.max(spreadMaxNs, sim.spreadNs());
  }
  const after = master.status().counters;
  const rounds = after.roundsCompleted - before.roundsCompleted;
  return { probesPerMemberRound: (after.probesSent - before.probesSent) / (rounds * (NODES - 1)), rounds, spreadMeanNs: spreadSumNs / samples, spreadMaxNs };
}

describe('probes stop early on a sample near the recent minimum delay', () => {
  it('near the minimum means within max(5 us, 5%) of it, and never without a history', () => {
    expect(isNearMinimumDelay(50_000, [])).toBe(false);
    // Floor 40 us: the margin is 5 us (5% would be 2 us).
    expect(isNearMinimumDelay(45_000, [60_000, 40_000, 80_000])).toBe(true);
    expect(isNearMinimumDelay(45_001, [60_000, 40_000, 80_000])).toBe(false);
    // Floor 1 ms: the margin is 5% (50 us).
    expect(isNearMinimumDelay(1_050_000, [1_000_000])).toBe(true);
    expect(isNearMinimumDelay(1_050_001, [1_000_000])).toBe(false);
  });

  it('on a quiet network most rounds send few probes, and one round in FULL_PROBE_ROUND_EVERY sends them all', () => {
    const measured = measure(1, 0.005);
    console.log(`quiet network (5 us mean jitter): ${measured.probesPerMemberRound.toFixed(1)} probes per member and round, spread mean ${(measured.spreadMeanNs / 1e3).toFixed(1)} us`);
    expect(measured.rounds).toBeGreaterThanOrEqual(38);
    // At least the full rounds' share: (1 full + 7 stopped at PROBES_MIN_DEFAULT or later) per 8.
    const floor = (PROBES_PER_ROUND_DEFAULT + (FULL_PROBE_ROUND_EVERY - 1) * PROBES_MIN_DEFAULT) / FULL_PROBE_ROUND_EVERY;
    expect(measured.probesPerMemberRound).toBeGreaterThanOrEqual(floor - 0.5);
    expect(measured.probesPerMemberRound).toBeLessThan(PROBES_PER_ROUND_DEFAULT / 2);
  });

  it('--min-probes equal to --probes turns it off: every round sends every probe', () => {
    const measured = measure(1, 0.005, { probesMin: PROBES_PER_ROUND_DEFAULT });
    expect(measured.probesPerMemberRound).toBe(PROBES_PER_ROUND_DEFAULT);
  });

  it('keeps the precision of full bursts (10 seeds, 50 us mean jitter)', () => {
    const lines: string[] = [];
    let earlySumNs = 0;
    let fullSumNs = 0;
    for (let seed = 1; seed <= 10; seed += 1) {
      const early = measure(seed, 0.05);
      const full = measure(seed, 0.05, { probesMin: PROBES_PER_ROUND_DEFAULT });
      earlySumNs += early.spreadMeanNs;
      fullSumNs += full.spreadMeanNs;
      lines.push(`seed ${seed}: early stop ${early.probesPerMemberRound.toFixed(1)} probes, spread mean ${(early.spreadMeanNs / 1e3).toFixed(1)} max ${(early.spreadMaxNs / 1e3).toFixed(1)} us; full ${(full.spreadMeanNs / 1e3).toFixed(1)} max ${(full.spreadMaxNs / 1e3).toFixed(1)} us`);
    }
    console.log(lines.join('\n'));
    expect(earlySumNs / 10).toBeLessThan((fullSumNs / 10) * 1.25);
  });
});
