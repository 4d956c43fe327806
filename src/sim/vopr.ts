// VOPR-style runs (after TigerBeetle's Viewstamped Operation Replicator): from one seed, a cluster
// of simulated nodes goes through a safety phase of random faults (partitions and heals, crashes
// and restarts, loss bursts, on a network that also duplicates, reorders, corrupts and has
// asymmetric links), with every invariant checked after every event; then the faults stop
// (everything healed and restarted) and the liveness phase must reach, within a bound, one master
// per connected component followed by all its members, and keep it.
import type { NodeConfig } from '../core/node-config.ts';
import type { NodeId } from '../core/types.ts';
import { InvariantViolation, type CheckMode } from './invariants.ts';
import { SeededRandom } from './random.ts';
import type { SimUpstreamSpec } from './upstream.ts';
import { Simulation, type RestartOptions, type SimClockSpec, type SimNetworkSpec, type SimNodeSpec } from './simulation.ts';

/** Relative weights of the fault kinds drawn in the safety phase (0 disables one). */
export interface FaultMix {
  /** Split the nodes into 2..partitionGroupsMax random groups. */
  partition: number;
  /** Heal a partition (only drawn while partitioned). */
  heal: number;
  /** Crash a live node (the master with probability crashMasterBias). */
  crash: number;
  /** Restart a crashed node. */
  restart: number;
  /** Raise the loss rate to lossBurstRate for a while. */
  lossBurst: number;
  /** Stop or start an upstream server, or cut or restore a node's path to its servers (with VoprOptions.upstream). */
  upstream?: number;
}

export interface VoprOptions {
  /** Node count, or an inclusive range drawn from the seed. */
  nodes: number | { min: number; max: number };
  /** Simulated time of the safety phase (faults), after `warmupMs` without faults. */
  safetyMs: number;
  /** Fault-free time at the start (boot, first election, first rounds). */
  warmupMs: number;
  /** Mean simulated time between two faults (exponential). */
  faultIntervalMeanMs: number;
  faults: FaultMix;
  partitionGroupsMax: number;
  crashMasterBias: number;
  /** At most this many nodes down at once (a fraction of the cluster, rounded down, at least 1). */
  downFractionMax: number;
  lossBurstRate: number;
  lossBurstMsMax: number;
  /** How a restarted node's clock behaves: always kept, always fresh, or drawn per restart. */
  restartClock: 'keep' | 'reset' | 'mixed';
  /** Whether a restarted node has its persisted state (--state-dir): never, always, or drawn per restart. */
  restartState: 'fresh' | 'persisted' | 'mixed';
  /** A state change reaches the disk this long after the input (a crash before then loses it). */
  stateWriteMs: number;
  /** Network in both phases. */
  network: Partial<SimNetworkSpec>;
  /** Extra network impairments during the safety phase only (on top of `network`). */
  safetyNetwork: Partial<SimNetworkSpec>;
  clock: Partial<SimClockSpec>;
  /** Initial machine clock offsets are uniform in +-this. */
  initialOffsetNsMax: number;
  /** Initial drifts are uniform in +-this. */
  driftPpmMax: number;
  /** Fraction of nodes given a higher priority than the default. */
  higherPriorityFraction: number;
  config: Partial<NodeConfig>;
  /**
   * Upstream servers (issue 18): `servers` of them, each a falseticker (1-5 s off) with
   * `falsetickerRate`; each node polls all of them with probability `nodeFraction` (at least one
   * node does). null: none.
   */
  upstream: { servers: number; nodeFraction: number; falsetickerRate: number; pollIntervalMs: number } | null;
  /** After the faults stop, liveness must hold within this. */
  livenessBoundMs: number;
  /** ...and keep holding this long (sampled every livenessSampleMs). */
  livenessHoldMs: number;
  livenessSampleMs: number;
  check: CheckMode;
  traceLines: number;
  /** Appended to messages: how to rerun this seed. */
  reproduce: string;
}

export const VOPR_DEFAULTS: VoprOptions = {
  nodes: { min: 3, max: 12 },
  safetyMs: 20_000,
  warmupMs: 0,
  faultIntervalMeanMs: 1500,
  faults: { partition: 2, heal: 2, crash: 2, restart: 2, lossBurst: 1 },
  partitionGroupsMax: 3,
  crashMasterBias: 0.5,
  downFractionMax: 0.5,
  lossBurstRate: 0.5,
  lossBurstMsMax: 3000,
  restartClock: 'mixed',
  restartState: 'mixed',
  // The daemon saves state synchronously before sending (src/daemon/state.ts).
  stateWriteMs: 0,
  network: { latencyMs: 0.2, jitterMeanMs: 0.1, asymmetry: 1 },
  safetyNetwork: { lossRate: 0.02, duplicateRate: 0.02, reorderRate: 0.05, reorderDelayMsMax: 20, corruptRate: 0.002 },
  clock: { wanderPpmPerStep: 1, wanderStepMs: 1000, driftPpmMax: 500 },
  initialOffsetNsMax: 2e9,
  driftPpmMax: 100,
  higherPriorityFraction: 0.15,
  config: {},
  upstream: null,
  livenessBoundMs: 40_000,
  livenessHoldMs: 3000,
  livenessSampleMs: 10,
  check: 'throw',
  traceLines: 0,
  reproduce: '',
};

const NO_FAULTS: FaultMix = { partition: 0, heal: 0, crash: 0, restart: 0, lossBurst: 0 };

/**
 * Named fault mixes. Every one of them runs thousands of seeds without a violation (they once
 * found two masters in one term, backward steps and replayed rounds; see the git history).
 */
export const FAULT_MIXES = {
  /** Everything at once: partitions, heals, crashes, restarts, loss bursts on an impaired network. */
  all: {},
  /** No node or link faults: 2% loss, duplication, reordering, corruption, asymmetric links, 20% loss bursts. */
  network: { faults: { ...NO_FAULTS, lossBurst: 1 }, lossBurstRate: 0.2 },
  /**
   * Crashes and restarts (clocks kept or fresh, with or without persisted state) on a network that
   * duplicates and reorders but does not lose frames; machine clocks within +-100 ms of each other.
   */
  crash: {
    faults: { ...NO_FAULTS, crash: 2, restart: 2 },
    initialOffsetNsMax: 1e8,
    safetyNetwork: { lossRate: 0, duplicateRate: 0.05, reorderRate: 0.05, corruptRate: 0 },
    // Saves land at once: a persisted restart never loses its last term change (see stateWriteMs).
    stateWriteMs: 0,
  },
  /** Everything but partitions: crashes, restarts, 50% loss bursts on the impaired network. */
  nopartition: { faults: { ...NO_FAULTS, crash: 2, restart: 2, lossBurst: 1 } },
  /** Partitions into 2 or 3 random groups and heals, on a clean network. */
  partition: {
    faults: { ...NO_FAULTS, partition: 1, heal: 1 },
    safetyNetwork: { lossRate: 0, duplicateRate: 0, reorderRate: 0, corruptRate: 0 },
  },
  /**
   * Upstreams (issue 18) that appear, fail, disagree and are cut off, with partitions, crashes and
   * loss on top: long enough for the health's hysteresis (30 s to lose, 60 s and more to regain).
   */
  upstream: {
    faults: { partition: 1, heal: 1, crash: 1, restart: 1, lossBurst: 0.5, upstream: 3 },
    upstream: { servers: 3, nodeFraction: 0.4, falsetickerRate: 0.2, pollIntervalMs: 2_000 },
    safetyMs: 150_000,
    faultIntervalMeanMs: 5_000,
    initialOffsetNsMax: 1e8,
    livenessBoundMs: 120_000,
  },
} satisfies Record<string, Partial<VoprOptions>>;

export type FaultMixName = keyof typeof FAULT_MIXES;

export interface VoprSummary {
  seed: number;
  nodes: number;
  /** Simulated time the faults stopped. */
  faultsStoppedMs: number;
  /** From the faults stopping to liveness first holding for good. */
  livenessMs: number;
  endMs: number;
  faults: { partitions: number; heals: number; crashes: number; restarts: number; lossBursts: number; upstreamEvents: number };
  elections: { started: number; mastersElected: number };
  frames: {
    sent: number;
    delivered: number;
    lost: number;
    partitioned: number;
    duplicated: number;
    reordered: number;
    corruptRejected: number;
    corruptAccepted: number;
    rejected: number;
  };
  correctionsApplied: number;
  events: number;
  /** Invariant violations ('collect' mode; with 'throw' the first one throws). */
  violations: { code: string; atMs: number; message: string }[];
  termsReusedByAnotherMaster: number;
  master: NodeId | null;
  term: number;
  spreadNs: number;
  traceHash: string;
}

export class LivenessFailure extends Error {
  readonly seed: number;
  readonly atMs: number;
  readonly problem: string;
  readonly trace: string[];

  constructor(seed: number, atMs: number, boundMs: number, problem: string, reproduce: string, trace: string[]) {
    super(
      `seed ${seed}: liveness not reached within ${boundMs} ms after the faults stopped (at ${atMs.toFixed(3)} ms simulated): ${problem}${reproduce ? ` (reproduce: ${reproduce})` : ''}`,
    );
    this.name = 'LivenessFailure';
    this.seed = seed;
    this.atMs = atMs;
    this.problem = problem;
    this.trace = trace;
  }
}

/** Deep-enough merge of partial options over the defaults. */
export function voprOptions(partial: Partial<VoprOptions> = {}): VoprOptions {
  return {
    ...VOPR_DEFAULTS,
    ...partial,
    faults: { ...VOPR_DEFAULTS.faults, ...partial.faults },
    network: { ...VOPR_DEFAULTS.network, ...partial.network },
    safetyNetwork: { ...VOPR_DEFAULTS.safetyNetwork, ...partial.safetyNetwork },
    clock: { ...VOPR_DEFAULTS.clock, ...partial.clock },
    config: { ...VOPR_DEFAULTS.config, ...partial.config },
  };
}

/** The upstream servers a seed describes (with VoprOptions.upstream). */
function upstreamServers(seed: number, options: VoprOptions): SimUpstreamSpec[] {
  if (options.upstream === null) return [];
  const random = new SeededRandom((seed ^ 0x165667b1) >>> 0);
  const servers: SimUpstreamSpec[] = [];
  for (let index = 0; index < options.upstream.servers; index += 1) {
    const falseticker = random.next() < options.upstream.falsetickerRate;
    servers.push({ id: `u${index + 1}`, offsetNs: falseticker ? (random.next() < 0.5 ? -1 : 1) * random.between(1e9, 5e9) : random.between(-100_000, 100_000), lossRate: random.next() * 0.1, up: true });
  }
  return servers;
}

/** The cluster a seed describes (ids, priorities, clocks, boot times). */
export function voprNodes(seed: number, options: VoprOptions): SimNodeSpec[] {
  const random = new SeededRandom((seed ^ 0x5bd1e995) >>> 0);
  const count = typeof options.nodes === 'number' ? options.nodes : options.nodes.min + random.integer(options.nodes.max - options.nodes.min + 1);
  const specs: SimNodeSpec[] = [];
  for (let index = 0; index < count; index += 1) {
    specs.push({
      nodeId: `n${index}-${random.integer(1 << 20).toString(36)}`,
      priority: random.next() < options.higherPriorityFraction ? 101 + random.integer(2) : 100,
      initialOffsetNs: Math.round(random.between(-options.initialOffsetNsMax, options.initialOffsetNsMax)),
      driftPpm: random.between(-options.driftPpmMax, options.driftPpmMax),
      startMs: random.between(0, 300),
    });
  }
  if (options.upstream !== null) {
    const ids = Array.from({ length: options.upstream.servers }, (_, index) => `u${index + 1}`);
    for (const spec of specs) if (random.next() < options.upstream.nodeFraction) spec.upstreams = ids;
    if (!specs.some((spec) => spec.upstreams !== undefined)) (specs[random.integer(specs.length)] as SimNodeSpec).upstreams = ids;
  }
  return specs;
}

export interface VoprRun {
  sim: Simulation;
  summary: VoprSummary;
}

/** Runs one seed; throws InvariantViolation or LivenessFailure (both name the seed). */
export function run(seed: number, partial: Partial<VoprOptions> = {}): VoprSummary {
  return runWithSimulation(seed, partial).summary;
}

export function runWithSimulation(seed: number, partial: Partial<VoprOptions> = {}): VoprRun {
  const options = voprOptions(partial);
  const specs = voprNodes(seed, options);
  const upstreams = upstreamServers(seed, options);
  const sim = new Simulation({
    seed,
    nodes: specs,
    upstreams,
    upstreamPollIntervalMs: options.upstream?.pollIntervalMs,
    network: { ...options.network },
    clock: options.clock,
    config: options.config,
    discoverAll: true,
    check: options.check,
    reproduce: options.reproduce,
    traceLines: options.traceLines,
    stateWriteMs: options.stateWriteMs,
  });
  const ids = specs.map((spec) => spec.nodeId);
  const baseNetwork = { ...sim.network };
  const faults = { partitions: 0, heals: 0, crashes: 0, restarts: 0, lossBursts: 0, upstreamEvents: 0 };
  const cut = new Set<NodeId>();
  // The schedule has its own stream: the fault choices do not depend on how many frames were sent.
  const random = new SeededRandom((seed ^ 0x27d4eb2f) >>> 0);
  const startMs = options.warmupMs;
  const stopMs = options.warmupMs + options.safetyMs;
  const downMax = Math.max(1, Math.floor(ids.length * options.downFractionMax));
  let lossBurstUntilMs = 0;
  const safetyLossRate = { ...baseNetwork, ...options.safetyNetwork }.lossRate;

  const pickRestart = (): RestartOptions => ({
    clock: options.restartClock === 'mixed' ? (random.next() < 0.5 ? 'keep' : 'reset') : options.restartClock,
    state: options.restartState === 'mixed' ? (random.next() < 0.5 ? 'persisted' : 'fresh') : options.restartState,
  });

  const injectFault = (): void => {
    const live = sim.liveNodeIds();
    const down = ids.filter((id) => !live.includes(id));
    const weights: [keyof FaultMix, number][] = [
      ['partition', options.faults.partition],
      ['heal', sim.partitioned ? options.faults.heal : 0],
      ['crash', live.length > 1 && down.length < downMax ? options.faults.crash : 0],
      ['restart', down.length > 0 ? options.faults.restart : 0],
      ['lossBurst', sim.nowMs >= lossBurstUntilMs ? options.faults.lossBurst : 0],
      ['upstream', upstreams.length > 0 ? (options.faults.upstream ?? 0) : 0],
    ];
    const total = weights.reduce((sum, [, weight]) => sum + weight, 0);
    if (total <= 0) return;
    let pick = random.next() * total;
    let kind: keyof FaultMix = 'partition';
    for (const [name, weight] of weights) {
      if (pick < weight) {
        kind = name;
        break;
      }
      pick -= weight;
    }
    switch (kind) {
      case 'partition': {
        const groups = 2 + random.integer(Math.max(1, options.partitionGroupsMax - 1));
        const assignment = new Map(ids.map((id) => [id, random.integer(groups)]));
        sim.partitionBy((id) => assignment.get(id) as number);
        faults.partitions += 1;
        return;
      }
      case 'heal':
        sim.heal();
        faults.heals += 1;
        return;
      case 'crash': {
        const masters = sim.masters();
        const victim =
          masters.length > 0 && random.next() < options.crashMasterBias
            ? (masters[random.integer(masters.length)] as NodeId)
            : (live[random.integer(live.length)] as NodeId);
        sim.crash(victim);
        faults.crashes += 1;
        return;
      }
      case 'restart':
        sim.restart(down[random.integer(down.length)] as NodeId, pickRestart());
        faults.restarts += 1;
        return;
      case 'upstream': {
        // Half the time a server stops or comes back, half the time a node's path is cut or restored.
        if (random.next() < 0.5) {
          const server = upstreams[random.integer(upstreams.length)] as { id: string; up?: boolean };
          server.up = server.up === false;
          sim.setUpstream(server.id, { up: server.up });
        } else {
          const polling = specs.filter((spec) => spec.upstreams !== undefined);
          const node = polling[random.integer(polling.length)] as SimNodeSpec;
          cut.has(node.nodeId) ? cut.delete(node.nodeId) : cut.add(node.nodeId);
          sim.cutUpstream(node.nodeId, cut.has(node.nodeId));
        }
        faults.upstreamEvents += 1;
        return;
      }
      case 'lossBurst': {
        const durationMs = random.between(100, options.lossBurstMsMax);
        lossBurstUntilMs = sim.nowMs + durationMs;
        sim.setNetwork({ lossRate: options.lossBurstRate });
        sim.note(`loss burst ${options.lossBurstRate} for ${durationMs.toFixed(0)} ms`);
        sim.after(durationMs, 'loss burst over', () => {
          if (sim.nowMs < stopMs) sim.setNetwork({ lossRate: safetyLossRate });
          sim.note('loss burst ends');
        });
        faults.lossBursts += 1;
        return;
      }
    }
  };

  const scheduleNextFault = (): void => {
    const atMs = sim.nowMs + random.exponential(options.faultIntervalMeanMs);
    if (atMs >= stopMs) return;
    sim.at(atMs, 'fault', () => {
      injectFault();
      scheduleNextFault();
    });
  };

  sim.at(startMs, 'safety phase starts', () => {
    sim.setNetwork({ ...baseNetwork, ...options.safetyNetwork });
    scheduleNextFault();
  });
  sim.at(stopMs, 'faults stop', () => {
    sim.setNetwork(baseNetwork);
    sim.heal();
    for (const id of ids) if (sim.node(id) === null) sim.restart(id, pickRestart());
    for (const server of upstreams) if (server.up === false) sim.setUpstream(server.id, { up: true });
    for (const id of cut) sim.cutUpstream(id, false);
  });

  const fail = (error: unknown): never => {
    if (error instanceof InvariantViolation) {
      error.components = sim.components();
      error.nodeStates = error.nodeIds.map((id) => sim.describeNode(id));
      if (options.traceLines > 0) error.message += `\nlast events:\n${sim.recentTrace().join('\n')}`;
    }
    throw error;
  };

  try {
    sim.runUntil(stopMs);
    // Restarts are booted at the stop instant.
    sim.runFor(0);
  } catch (error) {
    fail(error);
  }

  // Liveness: sample until it has held for livenessHoldMs; measure from its last onset.
  const deadlineMs = stopMs + options.livenessBoundMs;
  let holdingSinceMs: number | null = null;
  let problem: string | null = 'not sampled yet';
  try {
    for (;;) {
      problem = sim.livenessProblem() ?? (upstreams.length > 0 ? sim.outrankedMaster() : null);
      if (problem === null) {
        holdingSinceMs ??= sim.nowMs;
        if (sim.nowMs - holdingSinceMs >= options.livenessHoldMs) break;
      } else {
        holdingSinceMs = null;
        if (sim.nowMs >= deadlineMs) break;
      }
      sim.runFor(options.livenessSampleMs);
    }
  } catch (error) {
    fail(error);
  }
  if (holdingSinceMs === null || problem !== null) {
    throw new LivenessFailure(seed, sim.nowMs, options.livenessBoundMs, problem ?? 'unknown', options.reproduce, sim.recentTrace());
  }

  const masterId = sim.masters()[0] ?? null;
  const counters = sim.counters;
  const checker = sim.checker;
  const summary: VoprSummary = {
    seed,
    nodes: ids.length,
    faultsStoppedMs: stopMs,
    livenessMs: holdingSinceMs - stopMs,
    endMs: sim.nowMs,
    faults,
    elections: { started: counters.electionsStarted, mastersElected: counters.mastersElected },
    frames: {
      sent: counters.framesSent,
      delivered: counters.framesDelivered,
      lost: counters.framesLost,
      partitioned: counters.framesPartitioned,
      duplicated: counters.framesDuplicated,
      reordered: counters.framesReordered,
      corruptRejected: counters.corruptRejected,
      corruptAccepted: counters.corruptAccepted,
      rejected: counters.framesRejected,
    },
    correctionsApplied: counters.correctionsApplied,
    events: counters.events,
    violations: (checker?.violations ?? []).map((violation) => ({ code: violation.code, atMs: violation.atMs, message: violation.message })),
    termsReusedByAnotherMaster: checker?.termsReusedByAnotherMaster ?? 0,
    master: masterId,
    term: masterId === null ? 0 : (sim.node(masterId)?.status().term ?? 0),
    spreadNs: sim.spreadNs(),
    traceHash: sim.traceHash(),
  };
  return { sim, summary };
}
