// The error bound holds (issue 17), in the seeded simulator: eight nodes with drifting clocks on a
// network with jitter and 1% loss, the master crashed half-way. Every 20 ms of simulated time,
// each synchronized member that has a bound is compared with the master it follows (the true
// distance between their clocks, which the simulator knows): no sample may find it farther than
// its bound. The median bound is printed.
import { describe, expect, it } from 'vitest';
import { SeededRandom } from '../src/sim/random.ts';
import { Simulation, type SimNodeSpec } from '../src/sim/simulation.ts';

const SAMPLE_EVERY_MS = 20;

function run(seed: number): { samples: number; violations: string[]; boundsNs: number[]; nullWhileFollowing: number } {
  const random = new SeededRandom(seed);
  const specs: SimNodeSpec[] = Array.from({ length: 8 }, (_, index) => ({
    nodeId: `n${index}`,
    priority: 100,
    initialOffsetNs: Math.round(random.between(-0.5e9, 0.5e9)),
    driftPpm: random.between(-50, 50),
    startMs: random.between(0, 300),
  }));
  const sim = new Simulation({
    seed,
    nodes: specs,
    network: { latencyMs: 0.1, jitterMeanMs: 0.05, lossRate: 0.01, asymmetry: 0.5 },
    clock: { wanderPpmPerStep: 0.01, wanderStepMs: 1000, driftPpmMax: 50 },
    discoverAll: true,
  });
  const violations: string[] = [];
  const boundsNs: number[] = [];
  let samples = 0;
  let nullWhileFollowing = 0;
  let crashed = false;
  for (let atMs = 0; atMs <= 150_000; atMs += SAMPLE_EVERY_MS) {
    sim.runUntil(atMs);
    if (!crashed && atMs >= 70_000) {
      crashed = true;
      sim.crash(sim.masters()[0] as string);
    }
    const offsets = sim.offsetsNs();
    for (const nodeId of sim.liveNodeIds()) {
      const node = sim.node(nodeId);
      const status = node?.status();
      if (!node || !status || status.role !== 'slave' || status.masterId === null) continue;
      const master = sim.node(status.masterId);
      // The master followed must be alive and master in that term (not one that crashed).
      if (!master || master.status().role !== 'master' || master.status().term !== status.term) continue;
      const boundNs = node.errorBoundNs(sim.nowMs);
      if (boundNs === null) {
        if (sim.clockReport(nodeId).synchronized && node.status().lastCorrection !== null) nullWhileFollowing += 1;
        continue;
      }
      samples += 1;
      boundsNs.push(boundNs);
      const distanceNs = Math.abs((offsets.get(nodeId) as number) - (offsets.get(status.masterId) as number));
      if (distanceNs > boundNs) violations.push(`seed ${seed} at ${atMs} ms: ${nodeId} is ${distanceNs.toFixed(0)} ns from ${status.masterId}, bound ${boundNs.toFixed(0)} ns`);
    }
  }
  return { samples, violations, boundsNs, nullWhileFollowing };
}

describe('the error bound in the simulator', () => {
  it('holds at every sample over 150 s with 1% loss and a master crash, for several seeds; the master answers 0', () => {
    const all: number[] = [];
    for (const seed of [1, 2, 3]) {
      const result = run(seed);
      expect(result.violations.slice(0, 5), `seed ${seed}`).toEqual([]);
      // Members were sampled through both masters' reigns (7 members x ~7000 samples each).
      expect(result.samples).toBeGreaterThan(20_000);
      all.push(...result.boundsNs);
    }
    all.sort((a, b) => a - b);
    const at = (fraction: number) => all[Math.floor(fraction * (all.length - 1))] as number;
    console.info(`error bound in the simulator (0.1 ms + jitter one way, 1% loss, drift +-50 ppm): p50 ${(at(0.5) / 1e3).toFixed(1)} us, p90 ${(at(0.9) / 1e3).toFixed(1)} us, p99 ${(at(0.99) / 1e3).toFixed(1)} us, max ${(at(1) / 1e3).toFixed(1)} us over ${all.length} samples`);
    // Not a timing threshold: the simulation is deterministic. The bound is tight, not a token.
    expect(at(0.5)).toBeLessThan(500_000);
  });

  it('a member has no bound before it is synchronized, and the master alone has 0 once synchronized', () => {
    const sim = new Simulation({ seed: 9, nodes: [{ nodeId: 'a' }, { nodeId: 'b' }], discoverAll: true });
    sim.runUntil(100);
    for (const id of ['a', 'b']) expect(sim.node(id)?.errorBoundNs(sim.nowMs)).toBeNull();
    sim.runUntil(15_000);
    const [masterId] = sim.masters();
    const memberId = masterId === 'a' ? 'b' : 'a';
    expect(sim.node(masterId as string)?.errorBoundNs(sim.nowMs)).toBe(0);
    const boundNs = sim.node(memberId)?.errorBoundNs(sim.nowMs);
    expect(boundNs).not.toBeNull();
    expect(boundNs).toBeGreaterThan(0);
  });
});
