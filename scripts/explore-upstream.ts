import { Simulation } from '../src/sim/simulation.ts';
const seed = Number(process.argv[2] ?? 1);
const sim = new Simulation({
  seed,
  discoverAll: true,
  upstreams: [{ id: 'u1' }],
  nodes: [
    { nodeId: 'n1', initialOffsetNs: 1.5e9, driftPpm: 80 },
    { nodeId: 'n2', initialOffsetNs: -1.2e9, driftPpm: -60, upstreams: ['u1'] },
    { nodeId: 'n3', initialOffsetNs: 0.3e9, driftPpm: 20 },
    { nodeId: 'n4', initialOffsetNs: -2e9, driftPpm: -100 },
    { nodeId: 'n5', initialOffsetNs: 2e9, driftPpm: 100 },
  ],
});
const show = (label: string) => {
  const offsets = [...sim.offsetsNs()].map(([id, ns]) => `${id}:${(ns / 1e6).toFixed(3)}ms`).join(' ');
  const m = sim.masters().join(',');
  const st = sim.node('n2')?.status();
  console.log(`${label} t=${(sim.nowMs / 1000).toFixed(0)}s master=${m} ${offsets} n2:${st?.upstream?.mode} class=${st?.clockClass} ref=${st?.reference}`);
};
for (let t = 5; t <= 200; t += t < 30 ? 5 : 20) { sim.runUntil(t * 1000); show('follow'); }
sim.setUpstream('u1', { up: false });
for (let t = 220; t <= 500; t += 40) { sim.runUntil(t * 1000); show('lost'); }
sim.setUpstream('u1', { up: true });
for (let t = 520; t <= 800; t += 40) { sim.runUntil(t * 1000); show('back'); }
for (const id of sim.nodeIds()) console.log(id, JSON.stringify(sim.clockReport(id)));
