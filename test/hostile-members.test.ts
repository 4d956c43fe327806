// Members with the key that misbehave (issue 7): a member whose clock is an hour off and that
// ignores every correction while claiming to be synchronized is left out of the average and does
// not drag the others; a master that announces absurd corrections is refused by every member's
// panic threshold (--max-correction, 600 s), and their clocks stay where they were.
import { describe, expect, it } from 'vitest';
import { Simulation, type SimNodeSpec } from '../src/sim/simulation.ts';

const HOUR_NS = 3600e9;

function spread(values: number[]): number {
  return Math.max(...values) - Math.min(...values);
}

describe('hostile members (simulated, all with the key)', () => {
  it('a synchronized member whose clock is set an hour ahead and that refuses corrections is excluded and does not drag the others', () => {
    const specs: SimNodeSpec[] = ['n1', 'n2', 'n3', 'n4', 'n5'].map((nodeId, index) => ({ nodeId, startMs: index * 5, initialOffsetNs: index * 1e7 }));
    const sim = new Simulation({ seed: 31, nodes: specs, discoverAll: true });
    sim.runUntil(15_000);
    expect(sim.masters()).toEqual(['n5']);
    const before = sim.offsetsNs();
    // Someone sets n3's clock an hour ahead; its agent keeps claiming a synchronized clock and
    // ignores every correction (as one refusing them by its panic threshold would).
    sim.jumpClock('n3', HOUR_NS);
    specs[2]!.ignoresCorrections = true;
    sim.runUntil(30_000);
    const after = sim.offsetsNs();
    const good = ['n1', 'n2', 'n4', 'n5'];
    expect(spread(good.map((id) => after.get(id)!))).toBeLessThan(1e6);
    // Not dragged towards the hour: the good clocks are where they were, give or take drift.
    for (const id of good) expect(Math.abs(after.get(id)! - before.get(id)!), id).toBeLessThan(1e6);
    expect(after.get('n3')! - before.get('n3')!).toBeGreaterThan(HOUR_NS - 1e9);
    expect(sim.node('n5')!.status().lastRound?.excluded).toContain('n3');
  });

  it('a member an hour off that claims a synchronized clock from the start cannot capture a starting cluster', () => {
    const specs: SimNodeSpec[] = ['n1', 'n2', 'n3', 'n4', 'n5'].map((nodeId, index) => ({ nodeId, startMs: index * 5, initialOffsetNs: index * 1e7 }));
    specs[2]!.initialOffsetNs = HOUR_NS;
    specs[2]!.ignoresCorrections = true;
    const sim = new Simulation({ seed: 33, nodes: specs, discoverAll: true });
    sim.runUntil(20_000);
    const offsets = sim.offsetsNs();
    const good = ['n1', 'n2', 'n4', 'n5'].map((id) => offsets.get(id)!);
    expect(spread(good)).toBeLessThan(1e6);
    for (const offsetNs of good) expect(Math.abs(offsetNs)).toBeLessThan(1e8);
    expect(sim.node('n5')!.status().lastRound?.excluded).toContain('n3');
  });

  it("a master adding two hours to every correction is refused by every synchronized member's panic threshold", () => {
    const specs: SimNodeSpec[] = ['n1', 'n2', 'n3', 'n4'].map((nodeId, index) => ({ nodeId, startMs: index * 5, initialOffsetNs: index * 2e7 }));
    const sim = new Simulation({ seed: 32, nodes: specs, discoverAll: true });
    // Past the provisional window (60 s from the first correction), when the cluster's time is
    // established: within it, the panic threshold waits (a forming cluster may still move by
    // hours to a majority of clocks booting later; see the discipline).
    sim.runUntil(70_000);
    expect(sim.masters()).toEqual(['n4']);
    const before = sim.offsetsNs();
    for (const id of ['n1', 'n2', 'n3']) expect(sim.clockReport(id).synchronized).toBe(true);
    for (const id of ['n1', 'n2', 'n3']) expect(sim.node(id)?.status().role).toBe('slave');
    specs[3]!.tamperCorrectionsNs = 2 * HOUR_NS;
    sim.runUntil(80_000);
    const after = sim.offsetsNs();
    for (const id of ['n1', 'n2', 'n3']) {
      expect(sim.clockReport(id).refused, id).toBeGreaterThanOrEqual(5);
      // Still where the cluster was, give or take the free-running drift of 10 s.
      expect(Math.abs(after.get(id)! - before.get(id)!), id).toBeLessThan(1e6);
    }
  });
});
