// Following an upstream (issue 18) in the seeded simulator: the real ProtocolNode, discipline and
// Marzullo selection, with modelled NTP servers (src/sim/upstream.ts). The invariant checker runs
// throughout (two masters, terms, foreign or replayed corrections, clocks stepped or run back, and
// a master's slew-only correction that stepped); these tests add what following must show: who is
// master, how many times it changed, where the clocks end, and that nothing steps.
import { describe, expect, it } from 'vitest';
import { Simulation, type SimNodeSpec } from '../src/sim/simulation.ts';
import { SeededRandom } from '../src/sim/random.ts';
import type { SimUpstreamSpec } from '../src/sim/upstream.ts';
import { CORRECTION_NS_MAX_DEFAULT } from '../src/core/limits.ts';
import { FAULT_MIXES, run } from '../src/sim/vopr.ts';

const MS = 1e6;
/** CPU-bound runs of simulated minutes: seconds alone, much longer on a loaded machine. */
const SIM_TIMEOUT_MS = 300_000;

/** Five nodes started up to +-2 s and +-100 ppm off; `withUpstream` poll `servers`. */
function cluster(seed: number, withUpstream: string[], servers: SimUpstreamSpec[], options: { offsetsNs?: number } = {}): Simulation {
  const random = new SeededRandom(seed * 7919 + 1);
  const spread = options.offsetsNs ?? 2e9;
  const nodes: SimNodeSpec[] = ['n1', 'n2', 'n3', 'n4', 'n5'].map((nodeId) => ({
    nodeId,
    initialOffsetNs: (2 * random.next() - 1) * spread,
    driftPpm: (2 * random.next() - 1) * 100,
    ...(withUpstream.includes(nodeId) ? { upstreams: servers.map((server) => server.id) } : {}),
  }));
  return new Simulation({ seed, discoverAll: true, upstreams: servers, nodes });
}

/** Runs to `untilMs`, sampling every 250 ms: the masters seen, in order (changes only). */
function runWatchingMasters(sim: Simulation, untilMs: number, seen: string[] = []): string[] {
  while (sim.nowMs < untilMs) {
    sim.runUntil(Math.min(untilMs, sim.nowMs + 250));
    const masters = sim.masters();
    if (masters.length === 1 && seen.at(-1) !== masters[0]) seen.push(masters[0] as string);
  }
  return seen;
}

/** The largest |clock - (true time + targetNs)| among live nodes, ns. */
function worstFromNs(sim: Simulation, targetNs: number): number {
  return Math.max(...[...sim.offsetsNs().values()].map((offsetNs) => Math.abs(offsetNs - targetNs)));
}

function stepsOf(sim: Simulation): Map<string, number> {
  return new Map(sim.nodeIds().map((id) => [id, sim.clockReport(id).steps]));
}

describe('following an upstream in the simulator', () => {
  it('clocks up to 2 s and 100 ppm off end on the upstream: its agent becomes master, the others follow it (12 seeds)', () => {
    for (let seed = 1; seed <= 12; seed += 1) {
      const upstreamNode = `n${1 + (seed % 5)}`;
      const sim = cluster(seed, [upstreamNode], [{ id: 'u1', jitterNs: 20_000, lossRate: 0.05 }]);
      const masters = runWatchingMasters(sim, 120_000);
      expect(sim.masters(), `seed ${seed}`).toEqual([upstreamNode]);
      // Before the upstream was healthy another node may have been master: then exactly one change.
      expect(masters.length, `seed ${seed}: masters ${masters.join(' -> ')}`).toBeLessThanOrEqual(2);
      expect(masters.at(-1)).toBe(upstreamNode);
      for (const id of sim.nodeIds()) {
        const status = sim.node(id)?.status();
        expect(status?.reference, `seed ${seed} ${id}`).toBe('upstream');
      }
      expect(sim.node(upstreamNode)?.status().upstream?.mode).toBe('following');
      // Server jitter 20 us, path jitter 30 us each way: the cluster within 0.5 ms of true time.
      expect(worstFromNs(sim, 0), `seed ${seed}`).toBeLessThan(0.5 * MS);
      expect(sim.checker?.violations).toEqual([]);
    }
  }, SIM_TIMEOUT_MS);

  it('an upstream that appears once the cluster\'s time is established: the master changes once, nothing steps, and the cluster slews onto it', () => {
    for (let seed = 1; seed <= 10; seed += 1) {
      // The server is 40 ms from where the cluster will settle (true time + its own error of 40 ms
      // against clocks that start within 1 ms of true time): a slew, well under the panic threshold.
      const sim = cluster(seed, ['n2'], [{ id: 'u1', offsetNs: 40 * MS, up: false }], { offsetsNs: 1e6 });
      const before = runWatchingMasters(sim, 90_000);
      expect(before.at(-1), `seed ${seed}`).not.toBe('n2'); // n2 is the lowest key but for n1
      const steps = stepsOf(sim);
      sim.setUpstream('u1', { up: true });
      const masters = runWatchingMasters(sim, 600_000, [...before]);
      expect(masters.slice(before.length), `seed ${seed}`).toEqual(['n2']);
      expect(sim.node('n2')?.status().counters.takeovers, `seed ${seed}`).toBe(1);
      // No clock was stepped after the cluster's time was established: all of it was slewed.
      expect(stepsOf(sim), `seed ${seed}`).toEqual(steps);
      expect(worstFromNs(sim, 40 * MS), `seed ${seed}`).toBeLessThan(1 * MS);
      expect(sim.checker?.violations).toEqual([]);
    }
  }, SIM_TIMEOUT_MS);

  it('the upstream lost: the master holds over on the learned frequency (no election, no step, ms over minutes); back: it slews onto it again', () => {
    for (let seed = 1; seed <= 6; seed += 1) {
      const sim = cluster(seed, ['n3'], [{ id: 'u1' }]);
      runWatchingMasters(sim, 180_000);
      const term = sim.node('n3')?.status().term;
      const steps = stepsOf(sim);
      sim.setUpstream('u1', { up: false });
      const during = runWatchingMasters(sim, 480_000);
      expect(during.at(-1), `seed ${seed}`).toBe('n3');
      expect(new Set(during).size, `seed ${seed}`).toBe(1);
      const status = sim.node('n3')?.status();
      expect(status?.term, `seed ${seed}`).toBe(term);
      expect(status?.upstream?.mode).toBe('holdover');
      expect(status?.reference).toBe('cluster');
      // Five minutes of holdover: within a few ms of true time (measured: well under 1 ms), together.
      expect(worstFromNs(sim, 0), `seed ${seed}`).toBeLessThan(3 * MS);
      expect(sim.spreadNs()).toBeLessThan(0.2 * MS);
      sim.setUpstream('u1', { up: true });
      runWatchingMasters(sim, 900_000);
      expect(sim.node('n3')?.status().upstream?.mode).toBe('following');
      expect(stepsOf(sim), `seed ${seed}`).toEqual(steps);
      expect(worstFromNs(sim, 0), `seed ${seed}`).toBeLessThan(0.5 * MS);
      expect(sim.checker?.violations).toEqual([]);
    }
  }, SIM_TIMEOUT_MS);

  it('a falseticker among three servers is outvoted; two servers seconds apart are not followed at all', () => {
    for (let seed = 1; seed <= 5; seed += 1) {
      const servers = [{ id: 'good1' }, { id: 'good2', offsetNs: 0.2 * MS }, { id: 'false', offsetNs: 3000 * MS }];
      const three = cluster(seed, ['n2'], servers);
      runWatchingMasters(three, 120_000);
      expect(three.masters()).toEqual(['n2']);
      expect(worstFromNs(three, 0.1 * MS), `seed ${seed}`).toBeLessThan(0.6 * MS);
      const selection = three.upstreamSelection('n2');
      expect(selection?.ok).toBe(true);
      expect(selection?.servers.find((server) => server.id === 'false')?.verdict).toBe('falseticker');

      const two = cluster(seed, ['n2'], [{ id: 'good1' }, { id: 'false', offsetNs: 3000 * MS }], { offsetsNs: 1e6 });
      runWatchingMasters(two, 120_000);
      const status = two.node('n2')?.status();
      expect(status?.clockClass).toBe(0);
      expect(status?.upstream?.healthy).toBe(false);
      expect(status?.upstream?.lastUnusable).toMatch(/no majority/);
      expect(two.upstreamSelection('n2')).toMatchObject({ ok: false, code: 'noMajority' });
      // The cluster kept its own time: nowhere near either server's 3 s disagreement.
      expect(worstFromNs(two, 0), `seed ${seed}`).toBeLessThan(10 * MS);
      expect(two.checker?.violations).toEqual([]);
    }
  }, SIM_TIMEOUT_MS);

  it('three servers polled together every second (each reply its own event, as in the daemon): one correction a poll, and the frequency settles on the clock\'s own error', () => {
    // Steered on every reply, the master corrected a few ms apart and read the phase it had left
    // as a rate: its frequency swung between the +-500 ppm limits for good (seen in namespaces).
    for (let seed = 1; seed <= 4; seed += 1) {
      const servers: SimUpstreamSpec[] = [{ id: 'good1', delayNs: 100_000 }, { id: 'good2', delayNs: 150_000 }, { id: 'false', delayNs: 120_000, offsetNs: 3000 * MS }];
      const driftPpm = 40 - 20 * seed;
      const sim = new Simulation({ seed, discoverAll: true, upstreams: servers, upstreamPollIntervalMs: 1_000,
        nodes: [{ nodeId: 'lone', initialOffsetNs: 1e9, driftPpm, upstreams: servers.map((server) => server.id) }] });
      sim.runUntil(120_000);
      const correctionsAt120 = sim.node('lone')?.status().upstream?.corrections ?? 0;
      let worstPpm = 0;
      for (let atMs = 130_000; atMs <= 400_000; atMs += 10_000) {
        sim.runUntil(atMs);
        // The clock's rate cancels its oscillator's error: frequency = -drift.
        worstPpm = Math.max(worstPpm, Math.abs(sim.clockReport('lone').frequencyPpm + driftPpm));
      }
      const status = sim.node('lone')?.status();
      expect(status?.upstream?.mode, `seed ${seed}`).toBe('following');
      expect(worstPpm, `seed ${seed}: frequency off its error by up to ${worstPpm.toFixed(1)} ppm`).toBeLessThan(10);
      // One correction per poll of the system peer (280 polls), not one per reply (two truechimers: 560).
      const corrections = (status?.upstream?.corrections ?? 0) - correctionsAt120;
      expect(corrections, `seed ${seed}`).toBeLessThanOrEqual(300);
      expect(corrections, `seed ${seed}`).toBeGreaterThan(200);
      expect(worstFromNs(sim, 0), `seed ${seed}`).toBeLessThan(0.3 * MS);
      expect(sim.checker?.violations).toEqual([]);
    }
  }, SIM_TIMEOUT_MS);

  it('an upstream-backed master partitioned away: the rest elect a master and hold together; healed, it takes over once and all converge on the upstream', () => {
    for (let seed = 1; seed <= 10; seed += 1) {
      const sim = cluster(seed, ['n1'], [{ id: 'u1' }]);
      runWatchingMasters(sim, 120_000);
      expect(sim.masters()).toEqual(['n1']);
      sim.partition([['n1'], ['n2', 'n3', 'n4', 'n5']]);
      runWatchingMasters(sim, 400_000);
      // The rest have a master of their own, without an upstream, holding their agreement.
      const rest = sim.masters().filter((id) => id !== 'n1');
      expect(rest.length, `seed ${seed}`).toBe(1);
      const restStatus = sim.node(rest[0] as string)?.status();
      expect(restStatus?.reference).toBe('cluster');
      const offsets = sim.offsetsNs();
      const restOffsets = ['n2', 'n3', 'n4', 'n5'].map((id) => offsets.get(id) as number);
      expect(Math.max(...restOffsets) - Math.min(...restOffsets), `seed ${seed}`).toBeLessThan(0.2 * MS);
      const takeoversBefore = sim.node('n1')?.status().counters.takeovers ?? 0;
      sim.heal();
      const masters = runWatchingMasters(sim, 700_000);
      expect(masters.at(-1), `seed ${seed}`).toBe('n1');
      expect(sim.masters()).toEqual(['n1']);
      // One takeover by n1 (the higher class), not a churn of elections.
      expect((sim.node('n1')?.status().counters.takeovers ?? 0) - takeoversBefore, `seed ${seed}`).toBeLessThanOrEqual(1);
      expect(worstFromNs(sim, 0), `seed ${seed}`).toBeLessThan(0.5 * MS);
      for (const id of sim.nodeIds()) expect(sim.node(id)?.status().reference).toBe('upstream');
      expect(sim.checker?.violations).toEqual([]);
    }
  }, SIM_TIMEOUT_MS);

  it('a flapping upstream: its health changes at most once per growing hold-down, and the master does not churn', () => {
    const sim = cluster(3, ['n2', 'n4'], [{ id: 'u1' }]);
    // n4 (higher key than n2) follows the same server; n2's path alone flaps every 20 s for 20 min.
    let cut = false;
    for (let atMs = 60_000; atMs < 1_260_000; atMs += 20_000) {
      sim.at(atMs, 'flap', () => {
        cut = !cut;
        sim.cutUpstream('n2', cut);
      });
    }
    const masters = runWatchingMasters(sim, 1_500_000);
    const n2 = sim.node('n2')?.status().upstream;
    // Losses double the hold-down (60 s, 120 s, 240 s, ...): a handful of changes in 20 minutes.
    expect(n2?.lost).toBeLessThanOrEqual(4);
    expect(n2?.acquired).toBeLessThanOrEqual(5);
    expect(masters.at(-1)).toBe('n4');
    expect(masters.length).toBeLessThanOrEqual(2);
    expect(sim.checker?.violations).toEqual([]);
  }, SIM_TIMEOUT_MS);

  it('refuses an upstream beyond the panic threshold from an established cluster, and says so', () => {
    const sim = cluster(4, ['n2'], [{ id: 'u1', offsetNs: 2000e9, up: false }], { offsetsNs: 1e6 });
    runWatchingMasters(sim, 90_000);
    const steps = stepsOf(sim);
    sim.setUpstream('u1', { up: true });
    runWatchingMasters(sim, 200_000);
    const status = sim.node('n2')?.status();
    expect(status?.role).toBe('master');
    expect(status?.upstream?.mode).toBe('refused');
    expect(status?.upstream?.refused?.limitNs).toBe(CORRECTION_NS_MAX_DEFAULT);
    expect(Math.abs(status?.upstream?.refused?.offsetNs ?? 0)).toBeGreaterThan(1999e9);
    expect(status?.reference).toBe('cluster');
    expect(stepsOf(sim)).toEqual(steps);
    expect(worstFromNs(sim, 0)).toBeLessThan(10 * MS);
  }, SIM_TIMEOUT_MS);
});

describe('VOPR seeds, upstream faults (servers stop and come back, paths cut, falsetickers, with partitions, crashes and loss)', () => {
  const seeds = Array.from({ length: 16 }, (_, index) => 1 + index);
  it.each(seeds)('upstream seed %i: safe under faults; after them one master per component, outranked by no member', (seed) => {
    const summary = run(seed, { ...FAULT_MIXES.upstream, nodes: { min: 3, max: 8 }, reproduce: `npx tsx scripts/sim-seeds.ts --mix upstream --nodes 3..8 --start ${seed} --seeds 1` });
    expect(summary.violations, `seed ${seed}`).toEqual([]);
    expect(summary.faults.upstreamEvents, `seed ${seed}: upstream faults drawn`).toBeGreaterThan(0);
    expect(summary.master, `seed ${seed}: a master at the end`).not.toBeNull();
  }, SIM_TIMEOUT_MS);
});
