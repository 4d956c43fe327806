// The fault-injecting simulator: VOPR-style seeded runs (a safety phase of random faults with every
// invariant checked after every event, then a liveness phase), targeted tests for each fault
// kind, reproducibility from the seed, and the invariant checker's own tests.
// Every failure message carries the seed. Reproduce one with
//   npx tsx scripts/sim-seeds.ts --mix <mix> --start <seed> --seeds 1 --trace 200
// Every fault mix runs here for a few hundred seeds in all; the script runs thousands.
import { describe, expect, it } from 'vitest';
import type { Correction } from '../src/core/node.ts';
import { compareKeys, type NodeId } from '../src/core/types.ts';
import { InvariantChecker, InvariantViolation, type NodeView } from '../src/sim/invariants.ts';
import { Oscillator } from '../src/sim/oscillator.ts';
import { SeededRandom } from '../src/sim/random.ts';
import { Simulation, type SimNetworkSpec, type SimNodeSpec } from '../src/sim/simulation.ts';
import { FAULT_MIXES, run, runWithSimulation, type FaultMixName } from '../src/sim/vopr.ts';

const SEEDS_PER_MIX = 80;
/** Short runs keep a few hundred seeds within seconds: 12 s of faults, then liveness. */
const SHORT = { nodes: { min: 3, max: 12 }, safetyMs: 12_000 } as const;

function seedRun(mix: FaultMixName, seed: number) {
  return run(seed, { ...FAULT_MIXES[mix], ...SHORT, reproduce: `npx tsx scripts/sim-seeds.ts --mix ${mix} --nodes 3..12 --safety-ms 12000 --start ${seed} --seeds 1` });
}

describe.each(['network', 'crash', 'partition', 'nopartition', 'all'] as const)('VOPR seeds, %s faults', (mix) => {
  const seeds = Array.from({ length: SEEDS_PER_MIX }, (_, index) => 1 + index);
  it.each(seeds)(`${mix} seed %i: safe under faults, one followed master per component after`, (seed) => {
    const summary = seedRun(mix, seed);
    expect(summary.violations, `seed ${seed}`).toEqual([]);
    expect(summary.livenessMs, `seed ${seed}: liveness time`).toBeLessThanOrEqual(40_000);
    expect(summary.master, `seed ${seed}: a master at the end`).not.toBeNull();
    expect(summary.frames.rejected, `seed ${seed}: uncorrupted frames rejected`).toBe(0);
    // Islands that synchronized separately (partition mixes start apart by up to 2 s) merge by
    // stepping forward when the group ahead is followed, but a smaller group ahead must slew back
    // (a synchronized clock never steps backwards) at 5000 ppm: minutes for a second. Only mixes
    // without partitions can be held to a converged spread within the run.
    const partitions = mix === 'all' || mix === 'partition';
    if (!partitions) expect(summary.spreadNs, `seed ${seed}: clocks converged after liveness`).toBeLessThan(5_000_000);
  });
});

// ---------------------------------------------------------------- targeted fault tests

function cluster(seed: number, count: number, offsetNsMax = 5e7): SimNodeSpec[] {
  const random = new SeededRandom(seed);
  return Array.from({ length: count }, (_, index) => ({
    nodeId: `n${index + 1}`,
    initialOffsetNs: Math.round(random.between(-offsetNsMax, offsetNsMax)),
    driftPpm: random.between(-50, 50),
    startMs: random.between(0, 300),
  }));
}

function highest(ids: NodeId[]): NodeId {
  return [...ids].sort((a, b) => compareKeys({ nodeId: a, priority: 100 }, { nodeId: b, priority: 100 })).at(-1) as NodeId;
}

function simulation(seed: number, count: number, network: Partial<SimNetworkSpec> = {}): Simulation {
  return new Simulation({
    seed,
    nodes: cluster(seed, count),
    discoverAll: true,
    network: { latencyMs: 0.2, jitterMeanMs: 0.1, ...network },
    clock: { wanderPpmPerStep: 1, wanderStepMs: 1000, driftPpmMax: 500 },
    reproduce: `seed ${seed}`,
  });
}

function expectLive(sim: Simulation, context: string): void {
  expect(sim.livenessProblem(), `seed ${sim.seed}, ${context} at ${sim.nowMs.toFixed(0)} ms`).toBeNull();
}

describe('network faults', () => {
  it('duplication and reordering never apply a correction twice or out of order', () => {
    // Half the frames are duplicated, half held back by up to 1.5 s: later than the next round.
    const sim = simulation(11, 6, { duplicateRate: 0.5, reorderRate: 0.5, reorderDelayMsMax: 1500 });
    sim.runUntil(30_000);
    expectLive(sim, 'after 30 s');
    const { framesDuplicated, framesReordered } = sim.counters;
    expect(framesDuplicated).toBeGreaterThan(500);
    expect(framesReordered).toBeGreaterThan(500);
    const applied = sim.liveNodeIds().reduce((sum, id) => sum + (sim.node(id)?.status().counters.correctionsApplied ?? 0), 0);
    expect(applied).toBe(sim.counters.correctionsApplied);
    // Far more CORRECT frames arrived than were applied: the copies and the stale ones were refused
    // (the checker would have thrown on a replayed or out-of-order (term, round)).
    const master = sim.masters()[0] as NodeId;
    const ownApplied = sim.node(master)?.status().counters.correctionsApplied ?? 0;
    expect(sim.deliveredByType.get('correct') ?? 0).toBeGreaterThan((applied - ownApplied) * 1.3);
    expect(sim.checker?.checks.corrections).toBe(applied);
  });

  it('corrupted datagrams are counted: rejected by the codec or, still valid, processed', () => {
    const sim = simulation(5, 5, { corruptRate: 0.05, corruptBytesMax: 3 });
    // A corrupted frame that still decodes is processed (without --key-file nothing can tell it
    // from a real one): at 20 s in this seed n4 briefly follows "z5", n5's id with a flipped byte,
    // and recovers by the master timeout. Authenticated clusters drop such frames (bad-mac).
    sim.runUntil(25_000);
    expectLive(sim, 'after 25 s');
    // Stop every sender and let the frames in flight land, so each corrupted datagram is accounted for.
    for (const id of sim.nodeIds()) sim.crash(id);
    sim.runFor(1000);
    const { framesCorrupted, corruptRejected, corruptAccepted, corruptDropped, framesRejected } = sim.counters;
    expect(framesCorrupted).toBeGreaterThan(50);
    expect(corruptRejected).toBeGreaterThan(0);
    expect(corruptRejected + corruptAccepted + corruptDropped).toBe(framesCorrupted);
    expect(framesRejected, 'uncorrupted frames are never rejected').toBe(0);
    expect(sim.framesRejected).toBe(corruptRejected);
  });

  it('asymmetric links: each direction has its own latency factor', () => {
    const sim = simulation(3, 4, { asymmetry: 2 });
    const factors = sim.nodeIds().flatMap((from) => sim.nodeIds().filter((to) => to !== from).map((to) => sim.linkFactor(from, to)));
    expect(Math.min(...factors)).toBeGreaterThanOrEqual(1);
    expect(Math.max(...factors)).toBeLessThanOrEqual(3);
    expect(new Set(factors).size).toBe(factors.length);
    sim.setLinkFactor('n1', 'n2', 40);
    expect(sim.linkFactor('n1', 'n2')).toBe(40);
    expect(sim.linkFactor('n2', 'n1')).not.toBe(40);
    sim.runUntil(15_000);
    expectLive(sim, 'after 15 s');
    // Asymmetric delay biases the offset estimate by half the difference: still well within 1 ms here.
    expect(sim.spreadNs()).toBeLessThan(1_000_000);
  });

  it('a loss burst of 100% for a second does not break safety, and the cluster recovers', () => {
    const sim = simulation(8, 7);
    sim.runUntil(8000);
    expectLive(sim, 'before the burst');
    sim.setNetwork({ lossRate: 1 });
    sim.runFor(1000);
    sim.setNetwork({ lossRate: 0 });
    sim.runFor(10_000);
    expectLive(sim, 'after the burst');
    expect(sim.counters.framesLost).toBeGreaterThan(0);
  });
});

describe('partitions', () => {
  it('a 6-node cluster split 3+3 has one master per side; healed, one master overall', () => {
    const sim = simulation(21, 6);
    sim.runUntil(8000);
    expectLive(sim, 'before the split');
    const first = sim.masters()[0] as NodeId;
    expect(first).toBe('n6');
    const sideA: NodeId[] = ['n6', 'n1', 'n2'];
    const sideB: NodeId[] = ['n3', 'n4', 'n5'];
    sim.partition([sideA, sideB]);
    expect(sim.components().map((group) => group.length)).toEqual([3, 3]);
    sim.runFor(15_000);
    expect(sim.counters.framesPartitioned).toBeGreaterThan(0);
    expectLive(sim, 'split');
    expect(sim.masters().sort()).toEqual([highest(sideB), first].sort());
    sim.heal();
    sim.runFor(15_000);
    expectLive(sim, 'healed');
    expect(sim.masters()).toHaveLength(1);
    const terms = new Set(sim.liveNodeIds().map((id) => sim.node(id)?.status().term));
    expect(terms.size).toBe(1);
  });

  it('partitionBy groups nodes by a function; frames in flight across the cut are dropped', () => {
    const sim = simulation(4, 4, { latencyMs: 5 });
    sim.runUntil(5000);
    sim.partitionBy((id) => (id === 'n1' ? 'alone' : 'rest'));
    expect(sim.components().sort((a, b) => a.length - b.length)).toEqual([['n1'], ['n2', 'n3', 'n4']]);
    expect(sim.canReach('n1', 'n2')).toBe(false);
    expect(sim.canReach('n2', 'n3')).toBe(true);
    const before = sim.counters.framesPartitioned;
    sim.runFor(3000);
    expect(sim.counters.framesPartitioned).toBeGreaterThan(before);
    sim.heal();
    expect(sim.components()).toHaveLength(1);
  });
});

describe('crashes and restarts', () => {
  it('crash seed 4382: two members each following the other (one master gone) do not bounce stale notices off the live master without end', () => {
    // Before stale notices were rate limited per endpoint, this run never left simulated 13.6 s:
    // HELLO and COORDINATOR went round n0 -> n2 -> n3 -> n2 -> n0 at zero latency, multiplied by
    // duplicated datagrams, until the process ran out of memory.
    const { sim, summary } = runWithSimulation(4382, { ...FAULT_MIXES.crash, nodes: { min: 3, max: 12 } });
    expect(summary.violations).toEqual([]);
    expect(summary.master).not.toBeNull();
    const suppressed = sim.nodeIds().reduce((sum, id) => sum + (sim.node(id)?.status().counters.staleNoticesSuppressed ?? 0), 0);
    expect(suppressed).toBeGreaterThan(0);
  });

  it('kill -9 of the master: a new master; the old one restarts without its state and the cluster reconverges', () => {
    const sim = simulation(31, 5);
    sim.runUntil(8000);
    expectLive(sim, 'before the crash');
    const old = sim.masters()[0] as NodeId;
    const oldTerm = sim.node(old)?.status().term ?? 0;
    sim.crash(old);
    sim.runFor(10_000);
    expectLive(sim, 'after the crash');
    const next = sim.masters()[0] as NodeId;
    expect(next).not.toBe(old);
    expect(next).toBe(highest(sim.liveNodeIds()));
    expect(sim.node(next)?.status().term).toBeGreaterThan(oldTerm);
    sim.restart(old);
    sim.runFor(1);
    expect(sim.node(old)?.status().term, 'a restart without persisted state starts at term 0 or adopts').toBeGreaterThanOrEqual(0);
    sim.runFor(10_000);
    expectLive(sim, 'after the restart');
    expect(sim.counters.crashes).toBe(1);
    expect(sim.counters.restarts).toBe(1);
    expect(sim.spreadNs()).toBeLessThan(1_000_000);
  });

  it('a restart with persisted state resumes at its saved term; a save still in flight at the crash is lost (and caught)', () => {
    // The daemon saves the state after sending the input's frames; stateWriteMs models that delay.
    const sim = new Simulation({ seed: 33, nodes: cluster(33, 4), discoverAll: true, stateWriteMs: 5, check: 'collect' });
    sim.runUntil(8000);
    expectLive(sim, 'before');
    const master = sim.masters()[0] as NodeId;
    const member = sim.liveNodeIds().find((id) => id !== master) as NodeId;
    const term = sim.node(member)?.status().term ?? 0;
    expect(term).toBeGreaterThan(0);
    expect(sim.persistedState(member)).toMatchObject({ term });
    sim.crash(member);
    sim.restart(member, { state: 'persisted' });
    sim.runFor(0);
    expect(sim.node(member)?.status().term).toBe(term);
    // The master's crash makes the members elect in a later term; crash one of them within the
    // write delay of its term change: a restart then gets the term from before.
    sim.crash(master);
    let victim: NodeId | null = null;
    let savedTerm = 0;
    while (victim === null && sim.nowMs < 20_000) {
      sim.runFor(0.5);
      victim = sim.liveNodeIds().find((id) => (sim.node(id)?.status().term ?? 0) > term && (sim.persistedState(id)?.term ?? 0) === term) ?? null;
      if (victim !== null) savedTerm = sim.persistedState(victim)?.term ?? 0;
    }
    expect(victim, 'a node caught between its term change and the save').not.toBeNull();
    sim.crash(victim as NodeId);
    sim.restart(victim as NodeId, { state: 'persisted' });
    sim.runFor(0);
    expect(sim.node(victim as NodeId)?.status().term).toBe(savedTerm);
    // It had been seen in the later term: the checker reports the term going back.
    expect(sim.checker?.violations.map((violation) => `${violation.code} ${violation.nodeIds.join(',')}`)).toEqual([`term-decreased ${victim}`]);
    sim.restart(master, { state: 'persisted' });
    sim.runFor(10_000);
    expectLive(sim, 'after the restarts');
    expect(sim.checker?.violations).toHaveLength(1);
  });

  it('a restart with a fresh clock starts unsynchronized; with the clock kept, it stays synchronized', () => {
    const sim = simulation(32, 4);
    sim.runUntil(8000);
    const member = sim.liveNodeIds().find((id) => sim.masters()[0] !== id) as NodeId;
    const other = sim.liveNodeIds().find((id) => sim.masters()[0] !== id && id !== member) as NodeId;
    expect(sim.clockReport(member).synchronized).toBe(true);
    sim.crash(member);
    sim.crash(other);
    sim.restart(member, { clock: 'reset' });
    sim.restart(other, { clock: 'keep' });
    sim.runFor(1);
    expect(sim.clockReport(member)).toMatchObject({ synchronized: false, corrections: 0 });
    expect(sim.clockReport(other).synchronized).toBe(true);
    sim.runFor(10_000);
    expectLive(sim, 'after the restarts');
    expect(sim.clockReport(member).synchronized).toBe(true);
  });
});

describe('clocks', () => {
  it('drift wanders as a bounded, seeded random walk', () => {
    const spec = { initialOffsetNs: 1000, driftPpm: 20, wanderPpmPerStep: 5, wanderStepMs: 100, driftPpmMax: 30 };
    const a = new Oscillator(spec, 9);
    const b = new Oscillator(spec, 9);
    const drifts: number[] = [];
    let previousNs = a.offsetNs(0);
    expect(previousNs).toBe(1000);
    for (let ms = 50; ms <= 60_000; ms += 50) {
      drifts.push(a.driftPpm(ms));
      const offsetNs = a.offsetNs(ms);
      // The offset changes by at most driftPpmMax over the step (ms * ppm = ns).
      expect(Math.abs(offsetNs - previousNs)).toBeLessThanOrEqual(50 * 30 + 1e-6);
      previousNs = offsetNs;
    }
    expect(Math.max(...drifts.map(Math.abs))).toBeLessThanOrEqual(30);
    expect(new Set(drifts).size).toBeGreaterThan(100);
    // Read at other instants, the same oscillator gives the same clock.
    expect(b.offsetNs(60_000)).toBe(a.offsetNs(60_000));
    expect(new Oscillator(spec, 10).offsetNs(60_000)).not.toBe(a.offsetNs(60_000));
  });

  it('nodes keep within 1 ms of each other under drift wander', () => {
    const sim = new Simulation({
      seed: 77,
      nodes: cluster(77, 6, 1e9),
      discoverAll: true,
      clock: { wanderPpmPerStep: 5, wanderStepMs: 500, driftPpmMax: 300 },
    });
    sim.runUntil(10_000);
    const drift0 = sim.nodeIds().map((id) => sim.driftPpm(id));
    let spreadMaxNs = 0;
    for (let ms = 10_000; ms < 60_000; ms += 100) {
      sim.runUntil(ms);
      spreadMaxNs = Math.max(spreadMaxNs, sim.spreadNs());
    }
    const drift1 = sim.nodeIds().map((id) => sim.driftPpm(id));
    expect(drift1).not.toEqual(drift0);
    expect(spreadMaxNs).toBeLessThan(1_000_000);
  });
});

describe('reproducibility', () => {
  it('the same seed reproduces the exact same run (trace hash), with every fault kind', () => {
    const options = { check: 'collect' as const, nodes: 8, safetyMs: 15_000 };
    const first = run(1234, options);
    const second = run(1234, options);
    expect(second.traceHash).toBe(first.traceHash);
    expect(second).toEqual(first);
    const faults = first.faults;
    expect(faults.partitions + faults.crashes + faults.lossBursts).toBeGreaterThan(3);
    expect(first.frames.duplicated).toBeGreaterThan(0);
    expect(first.frames.reordered).toBeGreaterThan(0);
    expect(run(1235, options).traceHash).not.toBe(first.traceHash);
  });

  it('a Simulation driven by hand is deterministic too', () => {
    const drive = () => {
      const sim = simulation(99, 5, { lossRate: 0.05, duplicateRate: 0.1, reorderRate: 0.1, corruptRate: 0.01, asymmetry: 0.5 });
      sim.at(4000, 'split', () => sim.partition([['n1', 'n2']]));
      sim.at(9000, 'heal', () => sim.heal());
      sim.at(10_000, 'crash', () => sim.crash('n5'));
      sim.at(12_000, 'restart', () => sim.restart('n5', { clock: 'reset' }));
      sim.runUntil(20_000);
      return { hash: sim.traceHash(), counters: { ...sim.counters }, offsets: [...sim.offsetsNs()] };
    };
    expect(drive()).toEqual(drive());
  });

  it('runWithSimulation exposes the simulation of a run', () => {
    const { sim, summary } = runWithSimulation(7, { ...FAULT_MIXES.crash, ...SHORT });
    expect(sim.traceHash()).toBe(summary.traceHash);
    expect(sim.livenessProblem()).toBeNull();
  });
});

// ---------------------------------------------------------------- the checker checks

describe('invariant checker', () => {
  const atMs = 1234.5;
  const checker = () => new InvariantChecker({ seed: 42, nowMs: () => atMs, reproduce: 'rerun 42' });
  const master = (term: number): NodeView => ({ role: 'master', term, masterId: null });
  const slave = (term: number, masterId: NodeId): NodeView => ({ role: 'slave', term, masterId });
  const correction = (masterId: NodeId, term: number, round: number, correctionNs = 1000): Correction => ({ masterId, term, round, correctionNs });
  const clock = { beforeNs: 10n, afterNs: 20n, wasSynchronized: true };

  function expectViolation(action: () => void, code: string): void {
    let caught: unknown;
    try {
      action();
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(InvariantViolation);
    const violation = caught as InvariantViolation;
    expect(violation.code).toBe(code);
    expect(violation.message).toContain('seed 42');
    expect(violation.message).toContain('1234.500 ms');
    expect(violation.message).toContain('rerun 42');
  }

  it('two masters in one term', () => {
    const check = checker();
    check.started('a', { persistedState: false, clockKept: true });
    check.started('b', { persistedState: false, clockKept: true });
    check.started('c', { persistedState: false, clockKept: true });
    check.observeState('a', { ...master(3), masterId: 'a' });
    check.observeState('c', { ...master(4), masterId: 'c' }); // another term: fine
    check.observeState('b', slave(3, 'a'));
    expectViolation(() => check.observeState('b', { ...master(3), masterId: 'b' }), 'two-masters');
    // A crashed master does not count.
    const after = checker();
    after.started('a', { persistedState: false, clockKept: true });
    after.started('b', { persistedState: false, clockKept: true });
    after.observeState('a', { ...master(3), masterId: 'a' });
    after.crashed('a');
    after.observeState('b', { ...master(3), masterId: 'b' });
    expect(after.termsReusedByAnotherMaster).toBe(1);
  });

  it('a term that decreases, except across a restart without persisted state', () => {
    const check = checker();
    check.started('a', { persistedState: false, clockKept: true });
    check.observeState('a', slave(5, 'b'));
    expectViolation(() => check.observeState('a', slave(4, 'b')), 'term-decreased');
    const restarted = checker();
    restarted.started('a', { persistedState: false, clockKept: true });
    restarted.observeState('a', slave(5, 'b'));
    restarted.crashed('a');
    restarted.started('a', { persistedState: false, clockKept: true });
    restarted.observeState('a', { role: 'electing', term: 0, masterId: null });
    const persisted = checker();
    persisted.started('a', { persistedState: false, clockKept: true });
    persisted.observeState('a', slave(5, 'b'));
    persisted.started('a', { persistedState: true, clockKept: true });
    expectViolation(() => persisted.observeState('a', slave(2, 'b')), 'term-decreased');
  });

  it('corrections only from the master followed in the current term', () => {
    const check = checker();
    check.started('a', { persistedState: false, clockKept: true });
    check.observeCorrection('a', correction('m', 3, 1), slave(3, 'm'), clock);
    expectViolation(() => check.observeCorrection('a', correction('x', 3, 2), slave(3, 'm'), clock), 'foreign-correction');
    expectViolation(() => check.observeCorrection('a', correction('m', 2, 3), slave(3, 'm'), clock), 'foreign-correction');
    expectViolation(() => check.observeCorrection('a', correction('m', 3, 4), { role: 'electing', term: 3, masterId: null }, clock), 'foreign-correction');
    // The master's own correction names itself.
    check.started('m', { persistedState: false, clockKept: true });
    check.observeCorrection('m', correction('m', 3, 1), { role: 'master', term: 3, masterId: 'm' }, clock);
    expectViolation(() => check.observeCorrection('m', correction('m', 3, 2), slave(3, 'm'), clock), 'foreign-correction');
  });

  it('a correction applied twice or out of order', () => {
    const check = checker();
    check.started('a', { persistedState: false, clockKept: true });
    check.observeCorrection('a', correction('m', 3, 5), slave(3, 'm'), clock);
    expectViolation(() => check.observeCorrection('a', correction('m', 3, 5), slave(3, 'm'), clock), 'correction-replayed');
    expectViolation(() => check.observeCorrection('a', correction('m', 3, 4), slave(3, 'm'), clock), 'correction-replayed');
    check.observeCorrection('a', correction('n', 4, 1), slave(4, 'n'), clock);
  });

  it('a term claimed again by a master that restarted without its state is a new mastership, not a replay', () => {
    // Seed 186 of the upstream mix: m crashed, lost its state, was alone in a partition and
    // claimed the same term again (its slot's first), counting rounds from 1; a, restarted with
    // its state (its term, not its replay window), followed it. Counted, not a violation.
    const check = checker();
    check.started('a', { persistedState: false, clockKept: true });
    check.started('m', { persistedState: false, clockKept: true });
    check.observeCorrection('a', correction('m', 3, 16), slave(3, 'm'), clock);
    check.started('m', { persistedState: false, clockKept: true });
    check.started('a', { persistedState: true, clockKept: true });
    check.observeCorrection('a', correction('m', 3, 5), slave(3, 'm'), clock);
    expect(check.termsReusedAfterStateLoss).toBe(1);
    expect(check.violations).toEqual([]);
    // Within that new life, an old round again is a replay.
    expectViolation(() => check.observeCorrection('a', correction('m', 3, 4), slave(3, 'm'), clock), 'correction-replayed');
    // A restart that kept the master's state does not excuse it either.
    const kept = checker();
    kept.started('a', { persistedState: false, clockKept: true });
    kept.observeCorrection('a', correction('m', 3, 16), slave(3, 'm'), clock);
    kept.started('m', { persistedState: true, clockKept: true });
    expectViolation(() => kept.observeCorrection('a', correction('m', 3, 5), slave(3, 'm'), clock), 'correction-replayed');
  });

  it('a synchronized clock stepped backwards, or running backwards between corrections', () => {
    const check = checker();
    check.started('a', { persistedState: false, clockKept: true });
    // Initial steps may go back.
    check.observeCorrection('a', correction('m', 1, 1, -5e8), slave(1, 'm'), { beforeNs: 1000n, afterNs: 500n, wasSynchronized: false });
    expectViolation(
      () => check.observeCorrection('a', correction('m', 1, 2, -2e8), slave(1, 'm'), { beforeNs: 2000n, afterNs: 1999n, wasSynchronized: true }),
      'clock-stepped-back',
    );
    const running = checker();
    running.started('a', { persistedState: false, clockKept: true });
    running.observeReading('a', 100n);
    running.observeReading('a', 100n);
    expectViolation(() => running.observeReading('a', 99n), 'clock-ran-back');
    // A fresh clock starts over; a kept one is still watched.
    running.crashed('a');
    running.started('a', { persistedState: false, clockKept: false });
    running.observeReading('a', 5n);
    running.started('a', { persistedState: false, clockKept: true });
    expectViolation(() => running.observeReading('a', 4n), 'clock-ran-back');
  });

  it('a clock not yet synchronized stepped backwards a second time (a fresh clock starts over)', () => {
    const check = checker();
    check.started('a', { persistedState: false, clockKept: true });
    const back = { beforeNs: 1000n, afterNs: 500n, wasSynchronized: false };
    check.observeCorrection('a', correction('m', 1, 1, -5e8), slave(1, 'm'), back);
    // Forward steps do not count.
    check.observeCorrection('a', correction('m', 1, 2, 5e8), slave(1, 'm'), { beforeNs: 600n, afterNs: 900n, wasSynchronized: false });
    expectViolation(() => check.observeCorrection('a', correction('m', 1, 3, -5e8), slave(1, 'm'), back), 'clock-stepped-back-twice');
    // A restart with its clock kept is still watched; a fresh clock may step back once again.
    check.crashed('a');
    check.started('a', { persistedState: false, clockKept: true });
    expectViolation(() => check.observeCorrection('a', correction('m', 2, 1, -5e8), slave(2, 'm'), back), 'clock-stepped-back-twice');
    check.started('a', { persistedState: false, clockKept: false });
    check.observeCorrection('a', correction('m', 3, 1, -5e8), slave(3, 'm'), back);
    // (the two above, nothing more)
    expect(check.violations.map((violation) => violation.code)).toEqual(['clock-stepped-back-twice', 'clock-stepped-back-twice']);
  });

  it("collect mode records instead of throwing; a simulation's checker sees every input", () => {
    const check = new InvariantChecker({ seed: 1, nowMs: () => 0, mode: 'collect' });
    check.started('a', { persistedState: false, clockKept: true });
    check.observeState('a', slave(2, 'b'));
    check.observeState('a', slave(1, 'b'));
    expect(check.violations.map((violation) => violation.code)).toEqual(['term-decreased']);
    const sim = simulation(2, 3);
    sim.runUntil(5000);
    expect(sim.checker?.checks.states).toBeGreaterThan(100);
    expect(sim.checker?.checks.readings).toBe(sim.checker?.checks.states);
  });
});
