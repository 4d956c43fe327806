import { Simulation, type SimNodeSpec } from '../src/sim/simulation.ts';
import { SeededRandom } from '../src/sim/random.ts';
const seed = Number(process.argv[2] ?? 2);
const random = new SeededRandom(seed * 7919 + 1);
const nodes: SimNodeSpec[] = ['n1', 'n2', 'n3', 'n4', 'n5'].map((nodeId) => ({ nodeId, initialOffsetNs: (2 * random.next() - 1) * 2e9, driftPpm: (2 * random.next() - 1) * 100, ...(nodeId === 'n3' ? { upstreams: ['u1'] } : {}) }));
const sim = new Simulation({ seed, discoverAll: true, upstreams: [{ id: 'u1' }], nodes, traceLines: 200000 });
for (let t = 10; t <= 200; t += 10) {
  sim.runUntil(t * 1000);
  const r = sim.clockReport('n3');
  console.log(t, 'master', sim.masters().join(), 'n3 freq', r.frequencyPpm.toFixed(2), 'drift', sim.driftPpm('n3').toFixed(2), 'sum', (r.frequencyPpm + sim.driftPpm('n3')).toFixed(2), 'off', ((sim.offsetsNs().get('n3') ?? 0) / 1e6).toFixed(3), sim.node('n3')?.status().upstream?.mode);
}
for (const line of sim.recentTrace()) if (/ n3 (step|slew|hold|refuse)/.test(line) && / from n3 /.test(line)) console.log(line);
