// Seeded in-memory network: 5 to 20 nodes with skewed, drifting virtual clocks, staggered starts,
// latency with exponential jitter and (for some seeds) 1% loss. Each seed must reach exactly one
// master (the highest key, named by all, in one term) and pull the clocks within 1 ms; after the
// master crashes, the rest must agree on the next highest key and stay within 1 ms.
// Every assertion message carries the seed: reproduce a failure with SIM_SEED=<seed>.
import { describe, expect, it } from 'vitest';
import { compareKeys, type ElectionKey, type NodeId } from '../src/core/types.ts';
import { SeededRandom } from '../src/sim/random.ts';
import { claimTerm } from '../src/core/election/terms.ts';
import { Simulation, type SimNodeSpec } from '../src/sim/simulation.ts';

const SPREAD_NS_MAX = 1_000_000;
const SAMPLE_EVERY_MS = 50;

interface Scenario {
  seed: number;
  size: number;
  lossRate: number;
  specs: SimNodeSpec[];
}

function scenario(seed: number): Scenario {
  const random = new SeededRandom(seed);
  const size = 5 + ((seed * 7) % 16); // 5..20, all sizes over 30 seeds
  const lossRate = seed % 3 === 0 ? 0.01 : 0;
  const specs: SimNodeSpec[] = [];
  for (let index = 0; index < size; index += 1) {
    specs.push({
      // Random ids, so the winner's position in the boot order varies.
      nodeId: `n${random.integer(1 << 30).toString(36)}-${index}`,
      // Mostly equal priorities (the id decides), sometimes a higher one.
      priority: random.next() < 0.15 ? 101 + random.integer(2) : 100,
      initialOffsetNs: Math.round(random.between(-2e9, 2e9)),
      driftPpm: random.between(-100, 100),
      startMs: random.between(0, 300),
    });
  }
  return { seed, size, lossRate, specs };
}

function ranked(specs: SimNodeSpec[]): NodeId[] {
  const keys: ElectionKey[] = specs.map((spec) => ({ nodeId: spec.nodeId, priority: spec.priority ?? 100 }));
  return keys.sort(compareKeys).reverse().map((key) => key.nodeId);
}

/** Exactly one master, the expected one; every live node names it and shares its term. */
function expectAgreement(sim: Simulation, expected: NodeId, context: string): number {
  expect(sim.masters(), `${context}: masters`).toEqual([expected]);
  const term = sim.node(expected)!.status().term;
  for (const id of sim.liveNodeIds()) {
    const status = sim.node(id)!.status();
    expect(status.masterId, `${context}: ${id} names ${status.masterId}`).toBe(expected);
    expect(status.term, `${context}: ${id} term`).toBe(term);
  }
  return term;
}

/** Runs for `durationMs`, sampling; returns the largest spread seen and checks at most one master. */
function watch(sim: Simulation, durationMs: number, context: string): number {
  let spreadMaxNs = 0;
  const endMs = sim.nowMs + durationMs;
  while (sim.nowMs < endMs) {
    sim.runFor(SAMPLE_EVERY_MS);
    spreadMaxNs = Math.max(spreadMaxNs, sim.spreadNs());
    // Safety: never two masters at once.
    expect(sim.masters().length, `${context}: masters at ${sim.nowMs.toFixed(1)} ms: ${sim.masters().join(',')}`).toBeLessThanOrEqual(1);
  }
  return spreadMaxNs;
}

const only = process.env.SIM_SEED ? [Number(process.env.SIM_SEED)] : Array.from({ length: 30 }, (_, index) => index + 1);
const summary: string[] = [];

describe('seeded simulation', () => {
  it.each(only)('seed %i: one master, the highest key; clocks within 1 ms; failover to the next highest', (seed) => {
    const { size, lossRate, specs } = scenario(seed);
    const context = `seed ${seed} (${size} nodes, loss ${lossRate})`;
    const sim = new Simulation({ seed, nodes: specs, discoverAll: true, network: { latencyMs: 0.1, jitterMeanMs: 0.05, lossRate } });
    const order = ranked(specs);
    const initialOffsetsNs = specs.map((spec) => spec.initialOffsetNs ?? 0);
    const initialSpreadNs = Math.max(...initialOffsetsNs) - Math.min(...initialOffsetsNs);
    expect(initialSpreadNs, `${context}: the clocks start far apart`).toBeGreaterThan(1e9);

    // Leaderless start, election, first rounds: converged well within 8 s.
    sim.runUntil(8000);
    const term = expectAgreement(sim, order[0]!, `${context}, converged`);
    // Without loss, one election settles it: no spurious re-election.
    // Without loss, one election: the winner's own term above term 1 (terms carry the winner's slot).
    if (lossRate === 0) expect(term, `${context}: term after start`).toBe(claimTerm(order[0]!, 1));
    const steadySpreadNs = watch(sim, 6000, `${context}, steady`);
    expect(steadySpreadNs, `${context}: steady-state spread ${steadySpreadNs} ns`).toBeLessThan(SPREAD_NS_MAX);
    expectAgreement(sim, order[0]!, `${context}, steady`);
    expect(sim.node(order[0]!)!.status().counters.roundsCompleted, `${context}: rounds`).toBeGreaterThanOrEqual(6);

    // kill -9 of the master, at a seeded moment within a poll interval.
    sim.runFor(sim.random.between(0, 1000));
    sim.crash(order[0]!);
    const failoverSpreadNs = watch(sim, 10_000, `${context}, failover`);
    const newTerm = expectAgreement(sim, order[1]!, `${context}, after failover`);
    expect(newTerm, `${context}: term after failover`).toBeGreaterThan(term);
    if (lossRate === 0) expect(newTerm, `${context}: term after failover`).toBe(claimTerm(order[1]!, term + 1));
    expect(failoverSpreadNs, `${context}: spread during failover ${failoverSpreadNs} ns`).toBeLessThan(SPREAD_NS_MAX);
    const afterSpreadNs = watch(sim, 3000, `${context}, after`);
    expect(afterSpreadNs, `${context}: spread after failover ${afterSpreadNs} ns`).toBeLessThan(SPREAD_NS_MAX);
    expect(sim.framesRejected, `${context}: frames rejected by the codec`).toBe(0);
    summary.push(
      `seed ${seed}: ${size} nodes loss ${lossRate} steady ${(steadySpreadNs / 1e3).toFixed(0)} us failover ${(failoverSpreadNs / 1e3).toFixed(0)} us after ${(afterSpreadNs / 1e3).toFixed(0)} us lost ${sim.framesLost}/${sim.framesSent}`,
    );
  });

  it('is deterministic: the same seed gives the same run', () => {
    const run = () => {
      const { specs } = scenario(7);
      const sim = new Simulation({ seed: 7, nodes: specs, discoverAll: true, network: { latencyMs: 0.1, jitterMeanMs: 0.05, lossRate: 0.01 } });
      sim.runUntil(6000);
      return { offsets: [...sim.offsetsNs()], sent: sim.framesSent, lost: sim.framesLost, masters: sim.masters() };
    };
    expect(run()).toEqual(run());
  });

  it('prints a summary', () => {
    if (process.env.SIM_VERBOSE) console.log(summary.join('\n'));
    expect(summary.length).toBe(only.length);
  });
});
