// Failure detection without election storms: with 10% random frame loss and a healthy master, a
// 10-node cluster holds no election for a whole simulated hour. A member refreshes its master's
// liveness from any of the 8 polls or the correction of a round, and times out only after 3
// silent rounds, so one lost frame (or a whole lost round) is harmless.
import { describe, expect, it } from 'vitest';
import { Simulation } from '../src/sim/simulation.ts';

function electionsStarted(sim: Simulation): number {
  return sim.liveNodeIds().reduce((sum, id) => sum + (sim.node(id)?.status().counters.electionsStarted ?? 0), 0);
}

describe('no election storms under loss', () => {
  for (const seed of [1, 2]) {
    it(`10 nodes, 10% loss, healthy master: no election in one simulated hour (seed ${seed})`, () => {
      const nodes = Array.from({ length: 10 }, (_, index) => ({ nodeId: `n${index}`, initialOffsetNs: (index - 5) * 1e8, driftPpm: (index - 5) * 10 }));
      const sim = new Simulation({ seed, nodes, discoverAll: true, network: { lossRate: 0.1 } });
      sim.runUntil(10_000);
      expect(sim.masters(), `seed ${seed}`).toEqual(['n9']);
      const before = electionsStarted(sim);
      sim.runUntil(10_000 + 3_600_000);
      expect(electionsStarted(sim) - before, `seed ${seed}: elections during the hour`).toBe(0);
      expect(sim.masters(), `seed ${seed}`).toEqual(['n9']);
      for (const id of sim.liveNodeIds()) expect(sim.node(id)?.status().masterId, `seed ${seed} ${id}`).toBe('n9');
      expect(sim.spreadNs(), `seed ${seed}`).toBeLessThan(1e6);
    }, 60_000);
  }
});
