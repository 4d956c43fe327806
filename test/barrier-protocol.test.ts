// Barriers through the whole protocol core: ProtocolNode in the seeded simulator (elections,
// rounds, every frame encoded and decoded), participants joined on several nodes as the daemon
// would for its control clients. Many seeds with loss and duplication, and with the master killed
// in the middle of a barrier or just as it releases. Checked for every seed: nothing is released
// before the last participant arrived, every participant on a live node is released exactly once,
// with the largest error code reported. A failure prints its seed.
import { describe, expect, it } from 'vitest';
import type { BarrierOutcome } from '../src/core/barrier/client.ts';
import { SeededRandom } from '../src/sim/random.ts';
import { Simulation, type SimNodeSpec } from '../src/sim/simulation.ts';

const NODES = 5;

function specs(seed: number): SimNodeSpec[] {
  const random = new SeededRandom(seed);
  return Array.from({ length: NODES }, (_, index) => ({
    nodeId: `n${index + 1}`,
    initialOffsetNs: Math.round(random.between(-1e9, 1e9)),
    driftPpm: random.between(-50, 50),
    startMs: random.between(0, 200),
  }));
}

interface Joined {
  nodeId: string;
  requestId: number;
  atMs: number;
  errorCode: number;
}

function join(sim: Simulation, nodeId: string, name: string, count: number | null, errorCode: number, joined: Joined[]): void {
  sim.inject(nodeId, (node, nowMs) => {
    const result = node.barrierJoin({ name, count, errorCode }, nowMs);
    if (!result.ok) throw new Error(`join refused: ${result.detail}`);
    joined.push({ nodeId, requestId: result.requestId, atMs: nowMs, errorCode });
  });
}

function releases(sim: Simulation): (BarrierOutcome & { kind: 'released'; nodeId: string; atMs: number })[] {
  return sim
    .barrierOutcomes()
    .filter((entry) => entry.outcome.kind === 'released')
    .map((entry) => ({ ...(entry.outcome as BarrierOutcome & { kind: 'released' }), nodeId: entry.nodeId, atMs: entry.atMs }));
}

/** Everyone in `expected` released exactly once, not before `lastArrivalMs`, with `exitCode`. */
function checkReleased(sim: Simulation, expected: Joined[], lastArrivalMs: number, exitCode: number, context: string): void {
  const released = releases(sim);
  for (const participant of expected) {
    const mine = released.filter((entry) => entry.nodeId === participant.nodeId && entry.requestId === participant.requestId);
    expect(mine.length, `${context}: ${participant.nodeId}/${participant.requestId} released ${mine.length} times`).toBe(1);
    expect(mine[0]!.atMs, `${context}: released before the last arrival`).toBeGreaterThanOrEqual(lastArrivalMs);
    expect(mine[0]!.exitCode, context).toBe(exitCode);
  }
}

describe('barriers through ProtocolNode (simulated network)', () => {
  it('waiters block until the initializer and all waiters are present, then all are released together; the name is reused', () => {
    const sim = new Simulation({ seed: 7, nodes: specs(7), discoverAll: true });
    sim.runFor(6000);
    expect(sim.masters()).toEqual(['n5']);
    const joined: Joined[] = [];
    // Waiters first (emulab's count goes negative), on members and on the master itself.
    join(sim, 'n1', 'start', null, 0, joined);
    join(sim, 'n5', 'start', null, 0, joined);
    sim.runFor(2000);
    expect(releases(sim)).toEqual([]);
    // The initializer wants 3 waiters: still one short.
    join(sim, 'n2', 'start', 3, 0, joined);
    sim.runFor(2000);
    expect(releases(sim)).toEqual([]);
    join(sim, 'n3', 'start', null, 0, joined);
    const lastArrivalMs = sim.nowMs;
    sim.runFor(500);
    checkReleased(sim, joined, lastArrivalMs, 0, 'seed 7');
    // All four within one round trip or two of each other.
    const times = releases(sim).map((entry) => entry.atMs);
    expect(Math.max(...times) - Math.min(...times)).toBeLessThan(10);
    // Reuse after release: a new generation.
    const again: Joined[] = [];
    join(sim, 'n4', 'start', 1, 0, again);
    sim.runFor(500);
    expect(releases(sim)).toHaveLength(4);
    join(sim, 'n1', 'start', null, 0, again);
    const secondArrivalMs = sim.nowMs;
    sim.runFor(500);
    checkReleased(sim, again, secondArrivalMs, 0, 'seed 7, second use');
    expect(sim.node('n5')!.barrierReport(sim.nowMs).table?.open).toEqual([]);
  });

  it('every participant exits with the largest error code reported', () => {
    const sim = new Simulation({ seed: 8, nodes: specs(8), discoverAll: true });
    sim.runFor(6000);
    const joined: Joined[] = [];
    join(sim, 'n1', 'e', null, 3, joined);
    join(sim, 'n2', 'e', null, 0, joined);
    join(sim, 'n3', 'e', null, 7, joined);
    join(sim, 'n4', 'e', 3, 1, joined);
    const lastArrivalMs = sim.nowMs;
    sim.runFor(1000);
    checkReleased(sim, joined, lastArrivalMs, 7, 'seed 8');
  });

  for (const seed of Array.from({ length: 30 }, (_, index) => 100 + index)) {
    it(`seed ${seed}: 5% loss and duplication, the master killed in the middle of the barrier or as it releases`, () => {
      const random = new SeededRandom(seed);
      const sim = new Simulation({ seed, nodes: specs(seed), discoverAll: true, network: { lossRate: 0.05, duplicateRate: 0.05 } });
      sim.runFor(8000);
      const masters = sim.masters();
      expect(masters, `seed ${seed}`).toHaveLength(1);
      const master = masters[0]!;
      const members = sim.liveNodeIds().filter((id) => id !== master);
      const joined: Joined[] = [];
      // Three waiters on members (one with an error code), spread over a second.
      for (const [index, nodeId] of members.slice(0, 3).entries()) {
        join(sim, nodeId, 'phase-1', null, index === 1 ? 5 : 0, joined);
        sim.runFor(random.between(50, 400));
      }
      const killBeforeInit = random.next() < 0.5;
      if (killBeforeInit) {
        // In the middle: waiters registered with the old master; the initializer comes later.
        sim.crash(master);
        sim.runFor(random.between(0, 6000));
      }
      join(sim, members[3]!, 'phase-1', 3, 0, joined);
      const lastArrivalMs = sim.nowMs;
      if (!killBeforeInit) {
        // As it releases: the last join is on its way; kill within a few ms.
        sim.runFor(random.between(0, 5));
        sim.crash(master);
      }
      sim.runFor(15_000);
      expect(sim.masters(), `seed ${seed}`).toHaveLength(1);
      checkReleased(sim, joined, lastArrivalMs, 5, `seed ${seed} (${killBeforeInit ? 'killed before the initializer' : 'killed as it released'})`);
      // Nothing else was released, and nothing is still pending anywhere.
      expect(releases(sim), `seed ${seed}`).toHaveLength(joined.length);
      for (const nodeId of sim.liveNodeIds()) expect(sim.node(nodeId)!.barrierReport(sim.nowMs).participants, `seed ${seed} ${nodeId}`).toEqual([]);
    });
  }
});
