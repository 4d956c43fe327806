import { Simulation, type SimNodeSpec } from '../src/sim/simulation.ts';
import { SeededRandom } from '../src/sim/random.ts';
const seed = Number(process.argv[2] ?? 6);
const random = new SeededRandom(seed * 7919 + 1);
const nodes: SimNodeSpec[] = ['n1', 'n2', 'n3', 'n4', 'n5'].map((nodeId) => ({ nodeId, initialOffsetNs: (2 * random.next() - 1) * 1e6, driftPpm: (2 * random.next() - 1) * 100, ...(nodeId === 'n2' ? { upstreams: ['u1'] } : {}) }));
const sim = new Simulation({ seed, discoverAll: true, upstreams: [{ id: 'u1', offsetNs: 40e6, up: false }], nodes, traceLines: 200000 });
sim.runUntil(90_000);
sim.setUpstream('u1', { up: true });
for (let t = 100; t <= 600; t += 20) {
  sim.runUntil(t * 1000);
  const r = sim.clockReport('n2');
  const o = sim.offsetsNs();
  console.log(t, 'master', sim.masters().join(), 'n2 freq', r.frequencyPpm.toFixed(2), 'drift', sim.driftPpm('n2').toFixed(2), 'n2', ((o.get('n2') ?? 0) / 1e6 - 40).toFixed(3), 'n1', ((o.get('n1') ?? 0) / 1e6 - 40).toFixed(3), sim.node('n2')?.status().upstream?.mode);
}
